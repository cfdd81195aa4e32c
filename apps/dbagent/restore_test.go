package dbagent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/pkg/agentapi"
	"github.com/scalestack/scalestack/pkg/backup"
	"github.com/scalestack/scalestack/pkg/replication"
)

func TestPickBase(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2026, 12, 2, h, 0, 0, 0, time.UTC) }
	bases := []backup.Manifest{{ID: "a", FinishedAt: at(1)}, {ID: "b", FinishedAt: at(5)}, {ID: "c", FinishedAt: at(9)}}
	for _, tc := range []struct {
		until time.Time
		want  string
	}{{time.Time{}, "c"}, {at(9), "c"}, {at(8), "b"}, {at(1), "a"}, {at(0), ""}} {
		m, err := PickBase(bases, tc.until)
		if tc.want == "" {
			if err == nil || !strings.Contains(err.Error(), "after the point in time") {
				t.Errorf("until %v: %v, %v; want an error naming the oldest backup", tc.until, m, err)
			}
			continue
		}
		if err != nil || m.ID != tc.want {
			t.Errorf("until %v: %v, %v; want %s", tc.until, m, err, tc.want)
		}
	}
	if _, err := PickBase(nil, time.Time{}); err == nil {
		t.Error("no backups: no error")
	}
}

// TestANewPlatformsShardIsRestoredFromBackups restores, with the bootstrap a new platform's shard
// primary runs, from a real MariaDB's backup and archived binary logs in a real object store: to a
// point in time between two batches of writes, with root given the new platform's password, and a
// record of what was restored; a shard the source never had starts empty; a point in time before
// every backup fails naming it; a second run changes nothing.
func TestANewPlatformsShardIsRestoredFromBackups(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s3 := localservers.StartS3(t)
	sc := backup.StoreConfig{Endpoint: s3.Endpoint, Bucket: "backups", Prefix: "shop/old", Insecure: true,
		AccessKey: s3.AccessKey, SecretKey: s3.SecretKey}
	store, err := backup.Open(sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}

	src := localservers.StartMariaDB(t)
	db := src.DB(t)
	mustExec(t, db, "CREATE DATABASE app", "CREATE TABLE app.rows (id INT PRIMARY KEY, phase VARCHAR(16))")
	insert := func(phase string, from, n int) {
		for i := from; i < from+n; i++ {
			if _, err := db.ExecContext(ctx, "INSERT INTO app.rows VALUES (?, ?)", i, phase); err != nil {
				t.Fatal(err)
			}
		}
	}
	var logBase string
	if err := db.QueryRowContext(ctx, "SELECT @@log_bin_basename").Scan(&logBase); err != nil {
		t.Fatal(err)
	}
	archive := func() {
		t.Helper()
		mustExec(t, db, "FLUSH BINARY LOGS")
		if _, err := (&backup.Archiver{Store: store, Shard: 0, DB: db, Dir: filepath.Dir(logBase)}).Archive(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	insert("before", 0, 100)
	m, err := backup.TakeFull(ctx, store, 0, backup.Server{Host: "127.0.0.1", Port: src.Port, User: "root", DataDir: src.DataDir()}, backup.Tool{}, "old-0")
	if err != nil {
		t.Fatal(err)
	}
	insert("t1", 100, 50)
	archive()
	time.Sleep(1100 * time.Millisecond)
	target := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(target.Add(1100 * time.Millisecond)))
	insert("t2", 150, 50)
	archive()

	newBootstrap := func(t *testing.T, shard int, until time.Time) (Bootstrap, *bytes.Buffer) {
		vol := t.TempDir()
		for _, d := range []string{"run", "tmp"} {
			if err := os.MkdirAll(filepath.Join(vol, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		var out bytes.Buffer
		return Bootstrap{Engine: replication.MariaDB, DataDir: filepath.Join(vol, "data"), RunDir: filepath.Join(vol, "run"),
			TmpDir: filepath.Join(vol, "tmp"), RootPassword: "new-root", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Output: &out,
			Restore: &RestoreSource{Store: sc, Shard: shard, Until: until}, Report: filepath.Join(vol, "termination-log")}, &out
	}

	t.Run("to a point in time", func(t *testing.T) {
		b, out := newBootstrap(t, 0, target)
		if err := b.Run(ctx); err != nil {
			t.Fatalf("restore: %v\n%s", err, out.String())
		}
		rec, err := ReadRestoreRecord(b.DataDir)
		if err != nil || rec == nil {
			t.Fatalf("no restore record: %v", err)
		}
		if rec.Backup != m.ID || rec.BackupGTID != m.GTID || rec.Binlogs == 0 || rec.Until == nil || !rec.Until.Equal(target) || rec.Source != "backups/shop/old" {
			t.Errorf("restore record %+v: want backup %s at %s, binary logs replayed, until %s", rec, m.ID, m.GTID, target)
		}
		if strings.Contains(out.String(), "new-root") {
			t.Error("the server output carries the root password")
		}
		srv := startOn(t, b)
		if err := ping(srv.addr, "root", ""); err == nil {
			t.Error("root logs in with the source's (empty) password")
		}
		rdb := open(t, srv.addr, "root", "new-root")
		got := map[string]int{}
		rows, err := rdb.QueryContext(ctx, "SELECT phase, COUNT(*) FROM app.rows GROUP BY phase")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var p string
			var n int
			if err := rows.Scan(&p, &n); err != nil {
				t.Fatal(err)
			}
			got[p] = n
		}
		_ = rows.Close()
		if got["before"] != 100 || got["t1"] != 50 || got["t2"] != 0 {
			t.Errorf("restored rows by phase = %v, want before 100, t1 50, t2 0", got)
		}
		_ = rdb.Close()
		srv.stop(t)
		// Restarted: the marker is there, nothing is redone.
		if err := b.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if again, _ := ReadRestoreRecord(b.DataDir); again == nil || !again.FinishedAt.Equal(rec.FinishedAt) {
			t.Errorf("a second run restored again: %+v", again)
		}
		// Every start reports the record as the init container's termination message: that is
		// how the operator follows the restore.
		msg, err := os.ReadFile(b.Report)
		if err != nil {
			t.Fatal(err)
		}
		if got := agentapi.ParseRestoreReport(string(msg)); got == nil || got.Backup != rec.Backup || got.GTID != rec.GTID || got.Binlogs != rec.Binlogs {
			t.Errorf("termination message %q: want the record %+v", msg, rec)
		}
	})
	t.Run("a shard the source never had starts empty", func(t *testing.T) {
		b, out := newBootstrap(t, 1, time.Time{})
		if err := b.Run(ctx); err != nil {
			t.Fatalf("bootstrap: %v\n%s", err, out.String())
		}
		if rec, err := ReadRestoreRecord(b.DataDir); err != nil || rec == nil || !rec.Empty {
			t.Fatalf("restore record %+v, %v: want empty", rec, err)
		}
		srv := startOn(t, b)
		rdb := open(t, srv.addr, "root", "new-root")
		var n int
		if err := rdb.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'app'").Scan(&n); err != nil || n != 0 {
			t.Errorf("the new shard has the source's database: %d, %v", n, err)
		}
		_ = rdb.Close()
		srv.stop(t)
	})
	t.Run("a point in time before every backup", func(t *testing.T) {
		b, _ := newBootstrap(t, 0, m.StartedAt.Add(-time.Hour))
		err := b.Run(ctx)
		if err == nil || !strings.Contains(err.Error(), "after the point in time") || !strings.Contains(err.Error(), "shard 0") {
			t.Fatalf("restore before every backup: %v; want an error naming the shard and the backup", err)
		}
		if _, err := os.Stat(b.Marker()); err == nil {
			t.Error("a failed restore wrote the marker")
		}
		if msg, _ := os.ReadFile(b.Report); string(msg) != err.Error() {
			t.Errorf("termination message %q, want the error", msg)
		}
	})
}
