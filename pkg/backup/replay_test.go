package backup

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/localservers"
)

func TestGTIDPos(t *testing.T) {
	p, err := ParseGTIDPos("0-101-42, 1-7-3")
	if err != nil || p[0] != (GTID{101, 42}) || p[1] != (GTID{7, 3}) {
		t.Fatalf("ParseGTIDPos = %v, %v", p, err)
	}
	if got := p.String(); got != "0-101-42,1-7-3" {
		t.Errorf("String = %q", got)
	}
	for _, bad := range []string{"0-1", "x-1-2", "0-1-y", "0-x-1"} {
		if _, err := ParseGTIDPos(bad); err == nil {
			t.Errorf("ParseGTIDPos(%q) accepted", bad)
		}
	}
	q, _ := ParseGTIDPos("0-102-50")
	if !p.AtOrBefore(p) || p.AtOrBefore(q) || q.AtOrBefore(p) {
		t.Errorf("AtOrBefore: p<=p %v, p<=q %v (domain 1 is missing from q), q<=p %v", p.AtOrBefore(p), p.AtOrBefore(q), q.AtOrBefore(p))
	}
	if m := p.Merge(q); m.String() != "0-102-50,1-7-3" {
		t.Errorf("Merge = %s", m)
	}
	if empty, _ := ParseGTIDPos(""); len(empty) != 0 || !empty.AtOrBefore(p) {
		t.Errorf("the empty position: %v", empty)
	}
}

func TestNextReplayStep(t *testing.T) {
	base := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
	f := func(stream string, n int, start string, archived int) ArchivedBinlog {
		var pos GTIDPos
		if start != "?" {
			var err error
			if pos, err = ParseGTIDPos(start); err != nil {
				t.Fatal(err)
			}
		}
		id, _ := parseBinlogStream(stream)
		return ArchivedBinlog{Stream: stream, ServerID: id, Name: "binlog." + strings.Repeat("0", 5) + string(rune('0'+n)), Start: pos, Archived: at(archived)}
	}
	pos := func(s string) GTIDPos { p, _ := ParseGTIDPos(s); return p }
	names := func(s ReplayStep) string {
		var out []string
		for _, f := range s.Files {
			out = append(out, f.Name[len(f.Name)-1:])
		}
		return strings.Join(out, ",")
	}
	// The old primary (1) wrote files 1..3 and failed at minute 30; the replica (2) was promoted.
	oldPrimary := []ArchivedBinlog{f("1", 1, "", 10), f("1", 2, "0-1-100", 20), f("1", 3, "0-1-200", 30)}
	cases := []struct {
		name    string
		files   []ArchivedBinlog
		pos     string
		done    map[string]bool
		covered time.Time
		until   time.Time
		stream  string
		want    string // file numbers, "" for no step
		wantErr bool
	}{
		{name: "one primary: from the file holding the position", files: oldPrimary, pos: "0-1-150", covered: at(0), stream: "1", want: "2,3"},
		{name: "a position at a file's start begins there", files: oldPrimary, pos: "0-1-200", covered: at(0), stream: "1", want: "3"},
		{name: "nothing archived after the backup", files: oldPrimary, pos: "0-1-250", covered: at(40)},
		{name: "past until: done", files: oldPrimary, pos: "0-1-150", covered: at(20), until: at(15)},
		{
			name:  "the new primary logged its replica-era transactions too: it alone carries the history on",
			files: append([]ArchivedBinlog{f("2", 1, "", 12), f("2", 2, "0-1-160", 25), f("2", 3, "0-2-260", 50)}, oldPrimary...),
			pos:   "0-1-150", covered: at(0), stream: "2", want: "1,2,3",
		},
		{
			name:  "the new primary purged its replica-era files: the old primary's first",
			files: append([]ArchivedBinlog{f("2", 5, "0-1-240", 40), f("2", 6, "0-2-300", 50)}, oldPrimary...),
			pos:   "0-1-150", covered: at(0), stream: "1", want: "2,3",
		},
		{
			name:  "then the new primary's, from the old one's end",
			files: append([]ArchivedBinlog{f("2", 5, "0-1-240", 40), f("2", 6, "0-2-300", 50)}, oldPrimary...),
			pos:   "0-1-250", done: map[string]bool{"1": true}, covered: at(30), stream: "2", want: "5,6",
		},
		{
			name:  "a gap: the new primary starts after the old one's end",
			files: append([]ArchivedBinlog{f("2", 5, "0-2-400", 40)}, oldPrimary...),
			pos:   "0-1-250", done: map[string]bool{"1": true}, covered: at(30), wantErr: true,
		},
		{
			name:  "a missing file ends a server's run",
			files: []ArchivedBinlog{f("1", 1, "", 10), f("1", 3, "0-1-200", 30)},
			pos:   "0-1-50", covered: at(0), stream: "1", want: "1",
		},
		{
			// Server 1's data directory was made again (a rebuild): its files restart at 1 in a
			// stream of their own, and the old ones stay where they were.
			name: "a server made again is a stream of its own",
			files: []ArchivedBinlog{f("1-20261202T100000Z", 1, "", 10), f("1-20261202T100000Z", 2, "0-1-100", 20),
				f("1-20261202T103500Z", 1, "0-2-300", 40), f("1-20261202T103500Z", 2, "0-1-400", 50)},
			pos: "0-1-150", covered: at(0), stream: "1-20261202T100000Z", want: "2",
		},
		{
			name:  "files that cannot say where they start are read whole",
			files: []ArchivedBinlog{f("1", 1, "?", 10), f("1", 2, "?", 20)},
			pos:   "0-1-150", covered: at(0), stream: "1", want: "2",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			step, ok, err := NextReplayStep(tc.files, pos(tc.pos), tc.done, tc.covered, tc.until)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error %v", err, tc.wantErr)
			}
			if got := names(step); ok != (tc.want != "") || got != tc.want || (ok && step.Stream != tc.stream) {
				t.Errorf("step = stream %s files %q (ok %v), want stream %s files %q", step.Stream, got, ok, tc.stream, tc.want)
			}
		})
	}
}

// TestRestoreFromAReplicaAcrossAFailover takes the backup on a replica, fails the primary over to
// it, and restores to the end and to a time after the failover: the replay starts in the old
// primary's archive (the new one purged its replica-era files) and goes on in the new primary's,
// applying every transaction exactly once (a repeat would break the primary key).
func TestRestoreFromAReplicaAcrossAFailover(t *testing.T) {
	t.Parallel()
	st, _ := testStore(t, "failover")
	primary, replica := localservers.StartMariaDB(t), localservers.StartMariaDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pdb, rdb := primary.DB(t), replica.DB(t)
	exec := func(db *sql.DB, q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	insert := func(db *sql.DB, phase string, from, n int) {
		for i := from; i < from+n; i++ {
			exec(db, "INSERT INTO app.rows VALUES (?, ?)", i, phase)
		}
	}
	caughtUp := func() {
		t.Helper()
		var gtid string
		if err := pdb.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&gtid); err != nil {
			t.Fatal(err)
		}
		var res int
		if err := rdb.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 30)", gtid).Scan(&res); err != nil || res != 0 {
			t.Fatalf("the replica did not reach %s: %d, %v", gtid, res, err)
		}
	}
	archive := func(db *sql.DB) {
		t.Helper()
		var logBase string
		if err := db.QueryRowContext(ctx, "SELECT @@log_bin_basename").Scan(&logBase); err != nil {
			t.Fatal(err)
		}
		exec(db, "FLUSH BINARY LOGS")
		if _, err := (&Archiver{Store: st, Shard: 0, DB: db, Dir: filepath.Dir(logBase)}).Archive(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}

	exec(rdb, "CHANGE MASTER TO master_host='127.0.0.1', master_port=?, master_user='root', master_use_gtid=slave_pos", primary.Port)
	exec(rdb, "START SLAVE")
	exec(pdb, "CREATE DATABASE app")
	exec(pdb, "CREATE TABLE app.rows (id INT PRIMARY KEY, phase VARCHAR(16))")
	insert(pdb, "before", 0, 100)
	caughtUp()
	m, err := TakeFull(ctx, st, 0, Server{Host: "127.0.0.1", Port: replica.Port, User: "root", DataDir: replica.DataDir()}, Tool{}, "replica")
	if err != nil {
		t.Fatal(err)
	}
	insert(pdb, "t1", 100, 50)
	caughtUp()
	archive(pdb)
	// The replica keeps none of its replica-era files: its archive begins after t1.
	exec(rdb, "FLUSH BINARY LOGS")
	files, err := (&Archiver{DB: rdb}).binlogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The server purges a file only once its binlog checkpoint has moved past it.
	for deadline := time.Now().Add(30 * time.Second); ; {
		exec(rdb, "PURGE BINARY LOGS TO ?", files[len(files)-1].name)
		left, err := (&Archiver{DB: rdb}).binlogs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica kept %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Failover: the old primary stops taking writes, the replica is promoted.
	exec(pdb, "SET GLOBAL read_only = ON")
	exec(rdb, "STOP SLAVE")
	exec(rdb, "RESET SLAVE ALL")
	insert(rdb, "t2", 150, 50)
	time.Sleep(1100 * time.Millisecond)
	target := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(target.Add(1100 * time.Millisecond)))
	insert(rdb, "t3", 200, 50)
	archive(rdb)

	restore := func(t *testing.T, until time.Time) (map[string]int, ReplayResult) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "data")
		if err := PrepareRestore(ctx, st, m, dir, Tool{}); err != nil {
			t.Fatal(err)
		}
		dst := localservers.StartMariaDBOn(t, dir)
		res, err := Replay(ctx, st, m, until, Server{Host: "127.0.0.1", Port: dst.Port, User: "root"})
		if err != nil {
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
		return out, res
	}
	t.Run("to the end", func(t *testing.T) {
		got, res := restore(t, time.Time{})
		if got["before"] != 100 || got["t1"] != 50 || got["t2"] != 50 || got["t3"] != 50 {
			t.Errorf("restored rows by phase = %v, want before 100, t1 50, t2 50, t3 50", got)
		}
		var servers []string
		for _, f := range res.Files {
			servers = append(servers, strings.Split(f, "/")[0])
		}
		if len(servers) < 2 || servers[0] == servers[len(servers)-1] {
			all, _ := st.ArchivedBinlogs(ctx, 0)
			for _, f := range all {
				t.Logf("archived %d/%s from %v at %s", f.ServerID, f.Name, f.Start, f.Archived)
			}
			t.Errorf("replayed %v: want the old primary's files, then the new primary's", res.Files)
		}
		var want string
		if err := rdb.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&want); err != nil {
			t.Fatal(err)
		}
		if res.GTID != want {
			t.Errorf("restored to GTID %s, the source is at %s", res.GTID, want)
		}
	})
	t.Run("to a time after the failover", func(t *testing.T) {
		got, _ := restore(t, target)
		if got["before"] != 100 || got["t1"] != 50 || got["t2"] != 50 || got["t3"] != 0 {
			t.Errorf("restored rows by phase = %v, want before 100, t1 50, t2 50, t3 0", got)
		}
	})
}

func TestObsoleteBinlogs(t *testing.T) {
	pos := func(s string) GTIDPos {
		if s == "?" {
			return nil
		}
		p, err := ParseGTIDPos(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	f := func(stream, name, start string) ArchivedBinlog {
		return ArchivedBinlog{Stream: stream, Name: name, Start: pos(start)}
	}
	files := []ArchivedBinlog{
		f("1-a", "binlog.000001", ""), f("1-a", "binlog.000002", "0-1-100"), f("1-a", "binlog.000003", "0-1-200"),
		// A missing file: 000005's predecessor is not 000004's successor.
		f("1-a", "binlog.000005", "0-1-250"),
		f("2-b", "binlog.000001", "?"), f("2-b", "binlog.000002", "0-1-120"),
		f("2-c", "binlog.000007", "0-1-90"), f("2-c", "binlog.000008", "?"),
	}
	var got []string
	for _, o := range ObsoleteBinlogs(files, pos("0-1-200")) {
		got = append(got, o.Stream+"/"+o.Name)
	}
	// 1-a/000001 and 000002 end at or before 0-1-200 (their successors start there); 000003 is
	// followed by a gap; 2-b/000001 ends at 0-1-120; 2-c/000007's successor cannot say.
	want := []string{"1-a/binlog.000001", "1-a/binlog.000002", "2-b/binlog.000001"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("obsolete %v, want %v", got, want)
	}
	if o := ObsoleteBinlogs(files, GTIDPos{}); len(o) != 0 {
		t.Errorf("before any transaction, obsolete %v", o)
	}
}
