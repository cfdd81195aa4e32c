package dbagent

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/scalestack/scalestack/pkg/agentapi"
	"github.com/scalestack/scalestack/pkg/backup"
)

// RestoreSource is where a new platform's shard is restored from (spec.database.restore).
type RestoreSource struct {
	// Store is the source platform's object store, with its access key.
	Store backup.StoreConfig
	Shard int
	// Until restores the shard to just before this time; zero restores everything archived.
	Until time.Time
}

// RestoreRecordPath is the record's file, beside the data directory.
func RestoreRecordPath(dataDir string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(dataDir)), ".scalestack-restored.json")
}

// ReadRestoreRecord reads the record; nil when the data directory was not restored.
func ReadRestoreRecord(dataDir string) (*agentapi.RestoreRecord, error) {
	data, err := os.ReadFile(RestoreRecordPath(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r agentapi.RestoreRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", RestoreRecordPath(dataDir), err)
	}
	return &r, nil
}

// PickBase returns the newest complete backup that finished at or before until (any, for a zero
// until), with the error that says why there is none.
func PickBase(bases []backup.Manifest, until time.Time) (*backup.Manifest, error) {
	for i := len(bases) - 1; i >= 0; i-- {
		if until.IsZero() || !bases[i].FinishedAt.After(until) {
			return &bases[i], nil
		}
	}
	if len(bases) == 0 {
		return nil, errors.New("it has no complete full backup")
	}
	return nil, fmt.Errorf("its oldest complete full backup (%s) finished at %s, after the point in time %s",
		bases[0].ID, bases[0].FinishedAt.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
}

// restore fills the empty data directory from the source's backups of the shard: the newest full
// backup at or before the point in time, prepared, then the archived binary logs replayed on a
// private server (with the server's own configuration, so the replayed transactions, with their
// GTIDs, are in its binary log), and root given this platform's password. Every step is redone
// from scratch when it is interrupted: the marker is written last.
func (b Bootstrap) restore(ctx context.Context) error {
	src := *b.Restore
	start := time.Now()
	where := src.Store.Bucket + "/" + src.Store.Prefix
	store, err := backup.Open(src.Store)
	if err != nil {
		return fmt.Errorf("restoring shard %d from %s: %w", src.Shard, where, err)
	}
	bases, err := store.Bases(ctx, src.Shard)
	if err != nil {
		return fmt.Errorf("restoring shard %d from %s: %w", src.Shard, where, err)
	}
	rec := agentapi.RestoreRecord{Source: where}
	if !src.Until.IsZero() {
		u := src.Until.UTC()
		rec.Until = &u
	}
	if len(bases) == 0 && src.Shard > 0 {
		// A platform with more shards than its source: a shard the source never had starts
		// empty. Only when the source has shard 0 (the right place) and nothing of this one.
		first, err := store.Bases(ctx, 0)
		if err != nil {
			return fmt.Errorf("restoring shard %d from %s: %w", src.Shard, where, err)
		}
		logs, err := store.ArchivedBinlogs(ctx, src.Shard)
		if err != nil {
			return fmt.Errorf("restoring shard %d from %s: %w", src.Shard, where, err)
		}
		if len(first) > 0 && len(logs) == 0 {
			b.Log.Info("The source has no such shard: starting empty", "shard", src.Shard, "source", where)
			if err := os.MkdirAll(b.DataDir, 0o750); err != nil {
				return err
			}
			if err := b.install(ctx); err != nil {
				return err
			}
			if err := b.setRootPassword(ctx); err != nil {
				return err
			}
			rec.Empty = true
			return b.finishRestore(rec, start)
		}
	}
	m, err := PickBase(bases, src.Until)
	if err != nil {
		return fmt.Errorf("restoring shard %d from %s: %w", src.Shard, where, err)
	}
	b.Log.Info("Restoring the shard from a full backup", "shard", src.Shard, "source", where, "backup", m.ID, "gtid", m.GTID, "until", fmt.Sprint(rec.Until))
	tool := backup.Tool{}
	if b.Clone != nil {
		tool = b.Clone.Tool
	}
	if err := backup.PrepareRestore(ctx, store, *m, b.DataDir, tool); err != nil {
		return fmt.Errorf("restoring shard %d from %s: %w", src.Shard, where, err)
	}
	rec.Backup, rec.BackupGTID = m.ID, m.GTID
	prepared := time.Since(start)
	defaults, extra := "--no-defaults", []string{"--log-bin=binlog"}
	if b.ServerConfig != "" {
		defaults, extra = "--defaults-file="+b.ServerConfig, nil
	}
	err = b.privateServerWith(ctx, defaults, append(extra, "--skip-grant-tables", "--read-only=OFF"), func(db *sql.DB) error {
		// The backup has no binary logs: its history starts at the backup's position.
		for _, q := range []struct {
			stmt string
			args []any
		}{
			{"RESET MASTER", nil},
			{"SET GLOBAL gtid_binlog_state = ?", []any{m.GTID}},
			{"SET GLOBAL gtid_slave_pos = ?", []any{m.GTID}},
		} {
			if _, err := db.ExecContext(ctx, q.stmt, q.args...); err != nil {
				return fmt.Errorf("%s: %w", q.stmt, err)
			}
		}
		res, err := backup.Replay(ctx, store, *m, src.Until, backup.Server{Socket: b.privateSocket(), User: "root"})
		if err != nil {
			return fmt.Errorf("replaying the archived binary logs: %w", err)
		}
		rec.Binlogs, rec.GTID = len(res.Files), res.GTID
		// The grants are the source's: load them, and give root this platform's password.
		if _, err := db.ExecContext(ctx, "FLUSH PRIVILEGES"); err != nil {
			return fmt.Errorf("FLUSH PRIVILEGES: %w", err)
		}
		return b.rootPassword(ctx, db)
	})
	if err != nil {
		return fmt.Errorf("restoring shard %d from %s: %w", src.Shard, where, err)
	}
	b.Log.Info("Restored the shard", "shard", src.Shard, "backup", m.ID, "binlogs", rec.Binlogs, "gtid", rec.GTID,
		"prepareSeconds", prepared.Seconds(), "seconds", time.Since(start).Seconds())
	return b.finishRestore(rec, start)
}

func (b Bootstrap) finishRestore(rec agentapi.RestoreRecord, start time.Time) error {
	rec.FinishedAt, rec.Seconds = time.Now().UTC(), time.Since(start).Seconds()
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(RestoreRecordPath(b.DataDir), append(data, '\n'), 0o640); err != nil {
		return err
	}
	return b.writeMarker()
}

// waitForPrimary waits until the shard's primary is up to be copied: a replica of a restored
// shard never starts empty (the restored history is not in the primary's binary log).
func (b Bootstrap) waitForPrimary(ctx context.Context) (string, error) {
	for {
		if url, ok := b.seedable(ctx); ok {
			return url, nil
		}
		b.Log.Info("Waiting for the restored primary to copy it")
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
}
