package dbagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalestack/scalestack/pkg/agentapi"
	"github.com/scalestack/scalestack/pkg/backup"
)

// Continuous binary log archiving (spec.database.backup): on the shard's primary, and only there,
// every closed binary log goes to the object store with its SHA-256, the file being written is
// closed once it has held transactions for Interval (that bounds the recovery point), and a file
// is purged from the server only once it is archived and KeepFor old. The server itself never
// purges (binlog_expire_logs_seconds = 0 in scalestack.cnf), so an upload that stalls loses
// nothing: the binary logs grow on disk and ScalestackBinlogArchivingStalled pages.

// ArchiveConfig says where and how often the agent archives.
type ArchiveConfig struct {
	// Store is the object store, without the access key: it is read from AccessKeyFile and
	// SecretKeyFile on every pass (a mounted Secret: a rotated key is used without a restart).
	Store         backup.StoreConfig
	AccessKeyFile string
	SecretKeyFile string
	Interval      time.Duration
	KeepFor       time.Duration
}

// archiveState is what the archiving loop last did, for the status report and the metrics.
type archiveState struct {
	lastSuccess time.Time
	lastFile    string
	err         error
}

type archiveMetrics struct {
	lastSuccess prometheus.Gauge
	uploaded    prometheus.Counter
	failures    *prometheus.CounterVec
}

// newArchiveMetrics makes the archiving metrics, registered only when the agent archives (so the
// stall alert sees only archiving primaries).
func newArchiveMetrics(labels prometheus.Labels, reg *prometheus.Registry, archiving bool) *archiveMetrics {
	m := &archiveMetrics{
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "scalestack_backup_binlog_archived_timestamp_seconds",
			Help: "When the primary's agent last completed an archiving pass (every closed binary log in the object store); 0 before the first.", ConstLabels: labels}),
		uploaded: prometheus.NewCounter(prometheus.CounterOpts{Name: "scalestack_backup_binlogs_archived_total",
			Help: "Binary log files uploaded to the object store.", ConstLabels: labels}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalestack_backup_archive_failures_total",
			Help: "Archiving passes that failed, by reason (ObjectStoreUnreachable, CredentialsRejected, BucketMissing, BackupFailed).", ConstLabels: labels}, []string{"reason"}),
	}
	if archiving {
		reg.MustRegister(m.lastSuccess, m.uploaded, m.failures)
	}
	return m
}

// archiveOnce runs one pass when this server is the primary and not fenced.
func (a *Agent) archiveOnce(ctx context.Context) {
	cfg := a.cfg.Archive
	a.mu.Lock()
	primary := a.role == agentapi.RolePrimary && a.fence == nil && a.readyErr == nil
	a.mu.Unlock()
	if !primary {
		return
	}
	file, uploaded, err := a.archive(ctx, cfg)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.archived.err = err
	if err != nil {
		a.archiveM.failures.WithLabelValues(backup.ReasonOf(err)).Inc()
		a.log.Warn("Archiving the binary logs failed", "reason", backup.ReasonOf(err), "error", err.Error())
		return
	}
	a.archived.lastSuccess = time.Now()
	if file != "" {
		a.archived.lastFile = file
	}
	a.archiveM.lastSuccess.Set(float64(a.archived.lastSuccess.Unix()))
	a.archiveM.uploaded.Add(float64(uploaded))
}

func (a *Agent) archive(ctx context.Context, cfg *ArchiveConfig) (last string, uploaded int, err error) {
	store, err := a.openStore()
	if err != nil {
		return "", 0, err
	}
	var base string
	if err := a.db.QueryRowContext(ctx, "SELECT @@GLOBAL.log_bin_basename").Scan(&base); err != nil {
		return "", 0, fmt.Errorf("reading where the binary logs are: %w", err)
	}
	if a.archiver == nil {
		a.archiver = &backup.Archiver{Shard: a.cfg.Shard, DB: a.db}
	}
	ar := a.archiver
	ar.Store, ar.Dir, ar.KeepFor = store, filepath.Dir(base), cfg.KeepFor
	if a.cfg.Backup != nil {
		// A data directory made again numbers its binary logs from 1: a stream of its own.
		ar.Incarnation = Incarnation(a.cfg.Backup.DataDir)
	}
	files, err := ar.Archive(ctx, cfg.Interval)
	if err != nil {
		return "", len(files), err
	}
	if len(files) > 0 {
		last = files[len(files)-1]
		a.log.Info("Archived binary logs", "files", len(files), "last", last)
	}
	// Keep the two newest closed files whatever their age: a replica a file behind reads them.
	if purged, err := ar.Purge(ctx, 2); err != nil {
		return last, len(files), err
	} else if purged != "" {
		a.log.Info("Purged archived binary logs", "serverStartsWith", purged)
	}
	a.listNewest(ctx, store)
	return last, len(files), nil
}

// readKey reads an access key file (a key of the mounted Secret); a missing file is a missing
// Secret or key.
// ReadKey reads an access key from a mounted Secret's file.
func ReadKey(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s is missing: the credentials Secret or its key does not exist", filepath.Base(path))
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

// archiveLoop archives every interval/4 (at most a minute apart), so that a closed file waits
// little and the file being written is rotated close to Interval.
func (a *Agent) archiveLoop(ctx context.Context) {
	every := min(max(a.cfg.Archive.Interval/4, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			passCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
			a.archiveOnce(passCtx)
			cancel()
		}
	}
}

// archiveStatus is the report of the archiving loop, nil when archiving is off or this server
// is not the primary.
func (a *Agent) archiveStatus() *agentapi.ArchiveStatus {
	if a.cfg.Archive == nil || a.role != agentapi.RolePrimary {
		return nil
	}
	st := &agentapi.ArchiveStatus{LastFile: a.archived.lastFile}
	if !a.archived.lastSuccess.IsZero() {
		at := a.archived.lastSuccess
		st.LastSuccess = &at
	}
	if err := a.archived.err; err != nil {
		st.Reason, st.Error = backup.ReasonOf(err), err.Error()
	}
	return st
}
