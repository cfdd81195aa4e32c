package dbagent

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalestack/scalestack/pkg/agentapi"
	"github.com/scalestack/scalestack/pkg/backup"
)

// Full backups (spec.database.backup). The operator decides when a shard needs one and on which
// pod (a healthy replica when there is one), and asks that pod's agent (POST /v1/backup); the agent
// streams mariadb-backup into the object store in the background (never staged whole on the pod's
// disk), writes the manifest last, then applies the retention the request carries. The primary's
// agent lists the shard's newest complete backup with every archiving pass, so the operator and
// the ScalestackBackupTooOld alert see what the store holds, whichever pod took it.

// abandonedAfter: an upload without a manifest older than this is an interrupted backup, and
// retention removes it. A backup in progress is younger (a full backup of a large shard takes
// hours, not a day).
const abandonedAfter = 24 * time.Hour

// fullBackupState is this agent's own backups: the one running, the last it completed, its last
// failure; newest is the store's newest complete backup as the primary's agent last listed it.
type fullBackupState struct {
	running   *agentapi.BackupRun
	completed *agentapi.Base
	failed    *agentapi.BackupFailure
	newest    *backup.Manifest
	listedAt  time.Time
}

type fullBackupMetrics struct {
	newest   prometheus.Gauge
	taken    *prometheus.CounterVec
	lastSize prometheus.Gauge
	duration prometheus.Gauge
}

func newFullBackupMetrics(labels prometheus.Labels, reg *prometheus.Registry, on bool) *fullBackupMetrics {
	m := &fullBackupMetrics{
		newest: prometheus.NewGauge(prometheus.GaugeOpts{Name: "scalestack_backup_full_newest_timestamp_seconds",
			Help: "On the shard's primary: when the shard's newest complete full backup in the object store finished; 0 when there is none.", ConstLabels: labels}),
		taken: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalestack_backup_full_total",
			Help: "Full backups this agent took, by result (completed, or the BackupReady reason of the failure).", ConstLabels: labels}, []string{"result"}),
		lastSize: prometheus.NewGauge(prometheus.GaugeOpts{Name: "scalestack_backup_full_last_bytes",
			Help: "Size of the last full backup this agent completed.", ConstLabels: labels}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{Name: "scalestack_backup_full_last_duration_seconds",
			Help: "How long the last full backup this agent completed took, upload included.", ConstLabels: labels}),
	}
	if on {
		reg.MustRegister(m.newest, m.taken, m.lastSize, m.duration)
	}
	return m
}

// StartBackup starts a full backup of the server in the background. It refuses when backup is
// off, when the agent does not run beside the data, and while it takes a backup or streams a copy.
func (a *Agent) StartBackup(req agentapi.BackupRequest) error {
	if a.cfg.Archive == nil {
		return errUnsupported{errors.New("backup is off: the platform declares no spec.database.backup")}
	}
	if err := a.canClone(); err != nil {
		return err
	}
	if req.Retention.Count < 1 {
		return badRequest{errors.New("retention.count must be at least 1")}
	}
	if !a.cloning.TryLock() {
		return errConflict{errors.New("a backup or a copy of this server is being made already")}
	}
	started := time.Now().UTC()
	run := &agentapi.BackupRun{ID: backup.BaseID(started), StartedAt: started}
	a.mu.Lock()
	a.full.running = run
	ctx := a.runCtx
	a.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	a.log.Info("Taking a full backup", "id", run.ID, "why", req.Why)
	go func() {
		defer a.cloning.Unlock()
		a.takeFull(ctx, run, req.Retention)
	}()
	return nil
}

// takeFull takes the backup, records the outcome, and applies the retention.
func (a *Agent) takeFull(ctx context.Context, run *agentapi.BackupRun, keep agentapi.Retention) {
	m, err := a.backupOnce(ctx, run, keep)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.full.running = nil
	if err != nil {
		reason := backup.ReasonOf(err)
		a.full.failed = &agentapi.BackupFailure{At: time.Now().UTC(), Reason: reason, Error: err.Error()}
		a.fullM.taken.WithLabelValues(reason).Inc()
		a.log.Warn("The full backup failed", "id", run.ID, "reason", reason, "error", err.Error())
		return
	}
	a.full.failed = nil
	a.full.completed = baseOf(m)
	a.fullM.taken.WithLabelValues("completed").Inc()
	a.fullM.lastSize.Set(float64(m.Size))
	a.fullM.duration.Set(m.FinishedAt.Sub(m.StartedAt).Seconds())
}

func (a *Agent) backupOnce(ctx context.Context, run *agentapi.BackupRun, keep agentapi.Retention) (backup.Manifest, error) {
	store, err := a.openStore()
	if err != nil {
		return backup.Manifest{}, err
	}
	m, err := backup.TakeFullAt(ctx, store, a.cfg.Shard, *a.cfg.Backup, a.cfg.Tool, a.cfg.Pod, run.StartedAt)
	if err != nil {
		return m, err
	}
	a.log.Info("Took a full backup", "id", m.ID, "bytes", m.Size, "seconds", m.FinishedAt.Sub(m.StartedAt).Seconds(), "gtid", m.GTID)
	removed, err := store.Prune(ctx, a.cfg.Shard, backup.Retention{Count: keep.Count, MaxAge: time.Duration(keep.MaxAgeSeconds) * time.Second},
		abandonedAfter, time.Now())
	if err != nil {
		// The backup is complete; the next one prunes again.
		a.log.Warn("Applying the backup retention failed", "error", err.Error())
	} else if len(removed) > 0 {
		a.log.Info("Removed backups by retention", "ids", removed)
	}
	// The archived binary logs older than the oldest backup kept serve no restore any more.
	if files, err := store.PruneBinlogs(ctx, a.cfg.Shard); err != nil {
		a.log.Warn("Removing archived binary logs older than every backup failed", "error", err.Error())
	} else if len(files) > 0 {
		a.log.Info("Removed archived binary logs older than every backup", "files", len(files), "last", files[len(files)-1])
	}
	return m, nil
}

// openStore opens the object store with the access key read afresh from the mounted Secret.
func (a *Agent) openStore() (*backup.Store, error) {
	cfg := a.cfg.Archive
	sc := cfg.Store
	var err error
	if sc.AccessKey, err = ReadKey(cfg.AccessKeyFile); err != nil {
		return nil, &backup.StoreError{Reason: backup.ReasonCredentialsRejected, Op: "reading the access key", Err: err}
	}
	if sc.SecretKey, err = ReadKey(cfg.SecretKeyFile); err != nil {
		return nil, &backup.StoreError{Reason: backup.ReasonCredentialsRejected, Op: "reading the access key", Err: err}
	}
	return backup.Open(sc)
}

// listNewest records the shard's newest complete backup (the primary's agent, after an archiving
// pass). A failure keeps the last listing: the archiving pass reports the store's trouble.
func (a *Agent) listNewest(ctx context.Context, store *backup.Store) {
	a.mu.Lock()
	known := a.full.newest
	a.mu.Unlock()
	m, err := store.Newest(ctx, a.cfg.Shard, known)
	if err != nil {
		a.log.Warn("Listing the full backups failed", "error", err.Error())
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.full.newest, a.full.listedAt = m, time.Now()
	if m == nil {
		a.fullM.newest.Set(0)
		return
	}
	a.fullM.newest.Set(float64(m.FinishedAt.Unix()))
}

// fullBackupStatus is the report of the full backups; nil with backup off. Called with a.mu held.
func (a *Agent) fullBackupStatus() *agentapi.BackupStatus {
	if a.cfg.Archive == nil {
		return nil
	}
	st := &agentapi.BackupStatus{Running: a.full.running, Completed: a.full.completed, Failed: a.full.failed}
	if a.role == agentapi.RolePrimary && !a.full.listedAt.IsZero() {
		at := a.full.listedAt
		st.ListedAt = &at
		if a.full.newest != nil {
			st.Newest = baseOf(*a.full.newest)
		}
	}
	return st
}

func baseOf(m backup.Manifest) *agentapi.Base {
	return &agentapi.Base{ID: m.ID, StartedAt: m.StartedAt, FinishedAt: m.FinishedAt, Size: m.Size, GTID: m.GTID, Source: m.Source}
}
