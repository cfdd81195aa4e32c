package backup

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/localservers"
)

// TestPointInTimeRestore writes rows, takes a full backup, writes more at t1 and more at t2,
// archives the binary logs (purging them from the server only once archived), then restores
// twice into new servers: to a time between t1 and t2 (every row before it, none after), and to
// the end of the archive (every row).
func TestPointInTimeRestore(t *testing.T) {
	t.Parallel()
	st, _ := testStore(t, "pitr")
	src := localservers.StartMariaDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db := src.DB(t)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("CREATE DATABASE app")
	exec("CREATE TABLE app.rows (id INT PRIMARY KEY, phase VARCHAR(16))")
	insert := func(phase string, from, n int) {
		for i := from; i < from+n; i++ {
			exec("INSERT INTO app.rows VALUES (?, ?)", i, phase)
		}
	}
	insert("before", 0, 100)
	var logBase string
	if err := db.QueryRowContext(ctx, "SELECT @@log_bin_basename").Scan(&logBase); err != nil {
		t.Fatal(err)
	}
	arch := &Archiver{Store: st, Shard: 0, DB: db, Dir: filepath.Dir(logBase)}
	m, err := TakeFull(ctx, st, 0, Server{Host: "127.0.0.1", Port: src.Port, User: "root", DataDir: src.DataDir()}, Tool{}, "test")
	if err != nil {
		t.Fatal(err)
	}

	insert("t1", 100, 50)
	exec("FLUSH BINARY LOGS") // t1's rows in a closed file, t2's in a later one
	// The target: a whole second after t1's last commit and a whole second before t2's first
	// (binary log timestamps have a resolution of one second).
	time.Sleep(1100 * time.Millisecond)
	target := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(target.Add(1100 * time.Millisecond)))
	insert("t2", 150, 50)

	// Not yet archived: nothing may be purged.
	if purged, err := arch.Purge(ctx, 0); err != nil || purged != "" {
		t.Fatalf("Purge before archiving: %q, %v", purged, err)
	}
	// Rotation: the first pass notes the file being written, a pass after rotateAfter closes it.
	arch.now = func() time.Time { return time.Now().Add(-time.Minute) }
	uploaded, err := arch.Archive(ctx, time.Second) // the file t1 closed
	if err != nil {
		t.Fatal(err)
	}
	arch.now = time.Now
	more, err := arch.Archive(ctx, time.Second) // rotated: t2's file is closed and archived
	if err != nil {
		t.Fatal(err)
	}
	uploaded = append(uploaded, more...)
	files, _ := arch.binlogs(ctx)
	if len(uploaded) != len(files)-1 || len(files) < 3 {
		t.Fatalf("archived %v of %d files (the last is open)", uploaded, len(files))
	}
	if again, err := arch.Archive(ctx, 0); err != nil || len(again) != 0 {
		t.Fatalf("a second pass archived %v again (%v)", again, err)
	}
	first, err := arch.Purge(ctx, 1)
	if err != nil || first == "" {
		t.Fatalf("Purge after archiving: %q, %v", first, err)
	}
	archivedFiles, err := st.ArchivedBinlogs(ctx, 0)
	if err != nil || len(archivedFiles) != len(uploaded) {
		t.Fatalf("ArchivedBinlogs: %d files (%v), uploaded %d", len(archivedFiles), err, len(uploaded))
	}
	for _, f := range archivedFiles {
		if f.Start == nil || f.ServerID != src.ServerID {
			t.Errorf("archived %d/%s: no GTID start recorded, or another server's", f.ServerID, f.Name)
		}
	}
	left, _ := arch.binlogs(ctx)
	if len(left) != 2 {
		t.Errorf("after Purge(keep 1) the server has %d files, want the newest closed one and the open one", len(left))
	}

	count := func(t *testing.T, until time.Time) map[string]int {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "data")
		if err := PrepareRestore(ctx, st, m, dir, Tool{}); err != nil {
			t.Fatal(err)
		}
		dst := localservers.StartMariaDBOn(t, dir)
		if _, err := Replay(ctx, st, m, until, Server{Host: "127.0.0.1", Port: dst.Port, User: "root"}); err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		rows, err := dst.DB(t).QueryContext(ctx, "SELECT phase, COUNT(*) FROM app.rows GROUP BY phase")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = rows.Close() }()
		for rows.Next() {
			var p string
			var n int
			if err := rows.Scan(&p, &n); err != nil {
				t.Fatal(err)
			}
			out[p] = n
		}
		return out
	}
	t.Run("to a time between t1 and t2", func(t *testing.T) {
		got := count(t, target)
		if got["before"] != 100 || got["t1"] != 50 || got["t2"] != 0 {
			t.Errorf("restored rows by phase = %v, want before 100, t1 50, t2 0", got)
		}
	})
	t.Run("to the end of the archive", func(t *testing.T) {
		got := count(t, time.Time{})
		if got["before"] != 100 || got["t1"] != 50 || got["t2"] != 50 {
			t.Errorf("restored rows by phase = %v, want before 100, t1 50, t2 50", got)
		}
	})
}

// TestAServerMadeAgainKeepsItsArchive: a server whose data directory is made again (a rebuild, a
// copy of the primary) numbers its binary logs from 1 again under the same server_id. Archived
// under its new incarnation, its files never overwrite the earlier ones, which a restore to a
// point before still needs.
func TestAServerMadeAgainKeepsItsArchive(t *testing.T) {
	t.Parallel()
	st, _ := testStore(t, "incarnations")
	src := localservers.StartMariaDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := src.DB(t)
	exec := func(q string) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var logBase string
	if err := db.QueryRowContext(ctx, "SELECT @@log_bin_basename").Scan(&logBase); err != nil {
		t.Fatal(err)
	}
	archive := func(incarnation string) {
		t.Helper()
		exec("FLUSH BINARY LOGS")
		if _, err := (&Archiver{Store: st, Shard: 0, DB: db, Dir: filepath.Dir(logBase), Incarnation: incarnation}).Archive(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	exec("CREATE DATABASE app")
	exec("CREATE TABLE app.rows (id INT PRIMARY KEY, body TEXT)")
	exec("INSERT INTO app.rows VALUES (1, REPEAT('a', 5000))")
	archive("20261203T070000Z")
	before, err := st.ArchivedBinlogs(ctx, 0)
	if err != nil || len(before) == 0 {
		t.Fatalf("first incarnation archived %d files: %v", len(before), err)
	}

	// Made again: the numbering starts over, with other content.
	exec("RESET MASTER")
	exec("INSERT INTO app.rows VALUES (2, 'b')")
	archive("20261203T080000Z")

	after, err := st.ArchivedBinlogs(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	streams := map[string]map[string]int64{}
	for _, f := range after {
		if streams[f.Stream] == nil {
			streams[f.Stream] = map[string]int64{}
		}
		streams[f.Stream][f.Name] = f.Size
	}
	id := strconv.Itoa(src.ServerID)
	old, made := streams[id+"-20261203T070000Z"], streams[id+"-20261203T080000Z"]
	if len(streams) != 2 || len(made) == 0 {
		t.Fatalf("streams %v: want the two incarnations of server %s", streams, id)
	}
	for _, f := range before {
		if old[f.Name] != f.Size {
			t.Errorf("the first incarnation's %s is %d bytes now, was %d: overwritten", f.Name, old[f.Name], f.Size)
		}
	}
	if _, ok := made[filepath.Base(logBase)+".000001"]; !ok {
		t.Errorf("the new incarnation's files %v: want its own binlog.000001", made)
	}
}

// TestArchivedBinlogsOlderThanEveryBackupArePruned: once a full backup exists, the archived files
// every transaction of which it holds are removed, and a restore from it to the end of the
// archive still has every row.
func TestArchivedBinlogsOlderThanEveryBackupArePruned(t *testing.T) {
	t.Parallel()
	st, _ := testStore(t, "prune")
	src := localservers.StartMariaDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db := src.DB(t)
	exec := func(q string) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var logBase string
	if err := db.QueryRowContext(ctx, "SELECT @@log_bin_basename").Scan(&logBase); err != nil {
		t.Fatal(err)
	}
	arch := &Archiver{Store: st, Shard: 0, DB: db, Dir: filepath.Dir(logBase), Incarnation: "20261203T070000Z"}
	archive := func() {
		t.Helper()
		exec("FLUSH BINARY LOGS")
		if _, err := arch.Archive(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	exec("CREATE DATABASE app")
	exec("CREATE TABLE app.rows (id INT PRIMARY KEY)")
	exec("INSERT INTO app.rows VALUES (1)")
	archive()
	exec("INSERT INTO app.rows VALUES (2)")
	archive()
	if removed, err := st.PruneBinlogs(ctx, 0); err != nil || len(removed) != 0 {
		t.Fatalf("with no backup, PruneBinlogs removed %v (%v)", removed, err)
	}
	m, err := TakeFull(ctx, st, 0, Server{Host: "127.0.0.1", Port: src.Port, User: "root", DataDir: src.DataDir()}, Tool{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	exec("INSERT INTO app.rows VALUES (3)")
	archive()
	removed, err := st.PruneBinlogs(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// .000001 and .000002 end before the backup's position (.000003 starts at or before it);
	// .000003 holds row 3, after the backup, and the newest file is always kept.
	file := strconv.Itoa(src.ServerID) + "-20261203T070000Z/" + filepath.Base(logBase)
	want := []string{file + ".000001", file + ".000002"}
	if !slices.Equal(removed, want) {
		t.Fatalf("PruneBinlogs removed %v, want %v", removed, want)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := PrepareRestore(ctx, st, m, dir, Tool{}); err != nil {
		t.Fatal(err)
	}
	dst := localservers.StartMariaDBOn(t, dir)
	if _, err := Replay(ctx, st, m, time.Time{}, Server{Host: "127.0.0.1", Port: dst.Port, User: "root"}); err != nil {
		t.Fatalf("restore after pruning: %v", err)
	}
	var n int
	if err := dst.DB(t).QueryRowContext(ctx, "SELECT COUNT(*) FROM app.rows").Scan(&n); err != nil || n != 3 {
		t.Errorf("restored %d rows (%v), want 3", n, err)
	}
}
