package dbagent

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pkg/agentapi"
	"github.com/scalestack/scalestack/pkg/backup"
	"github.com/scalestack/scalestack/pkg/replication"
)

// serverConfig writes the defaults file of a localservers MariaDB (the binary log settings it
// starts with), for the bootstrap's server.
func serverConfig(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "server.cnf")
	cnf := "[mysqld]\nlog_bin = binlog\nlog_basename = test\nbinlog_format = ROW\ngtid_strict_mode = ON\nlog_slave_updates = ON\n"
	if err := os.WriteFile(f, []byte(cnf), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestClonedState(t *testing.T) {
	for _, tc := range []struct {
		name, state, pos, want string
	}{
		{"one server", "0-101-500", "0-101-450", "0-101-450"},
		// 102 wrote up to 300, then 101 again: the copy at 0-101-450 holds both histories.
		{"older servers kept", "0-102-300,0-101-500", "0-101-450", "0-102-300,0-101-450"},
		// The copy was taken while 102 was the primary; 101's later entry is capped below it.
		{"later writers capped", "0-101-270,0-102-260", "0-102-250", "0-101-249,0-102-250"},
		{"domains the copy lacks dropped", "0-101-5,1-101-9", "0-101-5", "0-101-5"},
		{"two domains", "0-101-5,1-102-9,1-101-3", "0-101-5,1-102-8", "1-101-3,0-101-5,1-102-8"},
		{"empty", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ClonedState(tc.state, tc.pos)
			if err != nil || got != tc.want {
				t.Fatalf("ClonedState(%q, %q) = %q, %v; want %q", tc.state, tc.pos, got, err, tc.want)
			}
		})
	}
	if _, err := ClonedState("0-101", "0-101-1"); err == nil {
		t.Fatal("a malformed state was accepted")
	}
}

// A replica that diverged (it has a transaction its primary lacks) is rebuilt from a copy of the
// primary: its binary logs, which hold the errant transaction, are kept on the volume; the copy
// catches up with what the primary wrote meanwhile; and its GTID state is complete enough for it
// to become the primary of the others, which find nothing missing.
func TestADivergedReplicaIsRebuiltFromThePrimary(t *testing.T) {
	ctx := context.Background()
	shard, c := testShard(t)
	p, r0, r1 := shard["s-primary-0"], shard["s-replicas-0"], shard["s-replicas-1"]
	if err := write(appDB(t, p), 0, 50); err != nil {
		t.Fatal(err)
	}
	hasRows(t, r0, 50)

	// r0 takes a write its primary never gets, and forgets its source, as an old primary does.
	root := r0.server.DB(t)
	if _, err := root.Exec("INSERT INTO social.posts VALUES (1000, 'errant write')"); err != nil {
		t.Fatal(err)
	}
	// Forgetting the source makes the agent point the server at the primary again, checking first
	// what the primary lacks. The agent may restart replication between the two statements: then
	// again.
	testutil.Eventually(t, "r0 reports that it diverged", 30*time.Second, func() error {
		st, err := c.Status(ctx, r0.url)
		if err == nil && st.Diverged != "" {
			return nil
		}
		_, _ = root.Exec("STOP SLAVE")
		_, _ = root.Exec("RESET SLAVE ALL")
		return fmt.Errorf("status %+v %w", st, err)
	})
	if _, err := c.Rebuild(ctx, p.url); err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("the primary accepted a rebuild: %v", err)
	}
	st, err := c.Rebuild(ctx, r0.url)
	if err != nil || st.Rebuild == nil {
		t.Fatalf("rebuild request: %+v %v", st, err)
	}
	if _, err := c.Rebuild(ctx, r0.url); err != nil {
		t.Fatalf("asking twice: %v", err)
	}
	if _, err := c.Clone(ctx, r1.url); err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("a replica served a copy: %v", err)
	}

	// The primary goes on taking writes while r0's pod restarts.
	if err := write(appDB(t, p), 50, 80); err != nil {
		t.Fatal(err)
	}
	r0.server.Stop()
	run := t.TempDir()
	var out bytes.Buffer
	b := Bootstrap{Engine: replication.MariaDB, DataDir: r0.server.DataDir(), RunDir: run, TmpDir: run, RootPassword: "unused by a rebuild",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Output: &out, ServerConfig: serverConfig(t),
		Clone: &CloneSource{PrimaryURL: func() (string, error) { return p.url, nil }, Client: c, Tool: backup.Tool{}}}
	start := time.Now()
	if err := b.Run(ctx); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out.String())
	}
	t.Logf("rebuilt r0 from the primary in %v", time.Since(start).Round(10*time.Millisecond))
	if req, err := ReadRebuild(b.DataDir); err != nil || req != nil {
		t.Fatalf("the rebuild request is still there: %+v %v", req, err)
	}
	// A second start finds an initialized data directory and leaves it.
	if err := b.Run(ctx); err != nil {
		t.Fatal(err)
	}

	// The errant transaction is in the kept binary logs, and nowhere else.
	kept, _ := filepath.Glob(filepath.Join(filepath.Dir(b.DataDir), "diverged-*", "*-bin.0*"))
	found := false
	for _, f := range kept {
		if data, err := os.ReadFile(f); err == nil && bytes.Contains(data, []byte("errant write")) {
			found = true
		}
	}
	if !found {
		var names []string
		_ = filepath.Walk(filepath.Dir(b.DataDir), func(path string, info os.FileInfo, err error) error {
			if err == nil && !strings.Contains(path, "/data/") {
				names = append(names, path)
			}
			return nil
		})
		t.Fatalf("the errant write is in none of the kept binary logs %v (the volume holds %v)", kept, names)
	}

	r0.server.Restart()
	waitReady(t, c, r0)
	hasRows(t, r0, 80)
	var n int
	if err := r0.server.DB(t).QueryRow("SELECT COUNT(*) FROM social.posts WHERE id = 1000").Scan(&n); err != nil || n != 0 {
		t.Fatalf("the errant row is on the rebuilt server: %d %v", n, err)
	}
	if err := write(appDB(t, p), 80, 90); err != nil {
		t.Fatal(err)
	}
	hasRows(t, r0, 90)

	// The rebuilt server can be the primary: the others find nothing it lacks.
	next := agentapi.Topology{Primary: r0.pod, Epoch: 1}
	if _, err := c.Fence(ctx, p.url, 0); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "r0 applied everything", 30*time.Second, func() error {
		pst, err := c.Status(ctx, p.url)
		if err != nil {
			return err
		}
		rst, err := c.Status(ctx, r0.url)
		if err != nil {
			return err
		}
		if !rst.Position.Executed.Contains(pst.Position.Executed) {
			return fmt.Errorf("r0 %s lacks some of %s", rst.Position.Executed, pst.Position.Executed)
		}
		return nil
	})
	for _, m := range []*member{r0, p, r1} {
		if _, err := c.SetTopology(ctx, m.url, next); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []*member{r0, p, r1} {
		st := waitReady(t, c, m)
		if st.Diverged != "" {
			t.Fatalf("%s diverged from the rebuilt primary: %s", m.pod, st.Diverged)
		}
	}
	if err := write(appDB(t, r0), 90, 100); err != nil {
		t.Fatal(err)
	}
	hasRows(t, p, 100)
	hasRows(t, r1, 100)
}

// A replica added to a shard whose primary has long purged its first binary logs starts from a
// copy of the primary (an empty one could never catch up); one whose primary is not up starts
// empty, as at the platform's creation.
func TestANewReplicaStartsFromACopyOfThePrimary(t *testing.T) {
	ctx := context.Background()
	shard, c := testShard(t)
	p := shard["s-primary-0"]
	if err := write(appDB(t, p), 0, 40); err != nil {
		t.Fatal(err)
	}
	root := p.server.DB(t)
	// A transaction of another server in the history, as after a failover: the copy must record it.
	conn, err := root.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SET SESSION server_id = 4242", "INSERT INTO social.posts VALUES (4242, 'by another server')"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_ = conn.Close()
	if err := write(appDB(t, p), 40, 45); err != nil {
		t.Fatal(err)
	}
	purgeAll(t, root)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	volume := t.TempDir()
	unreachable := Bootstrap{DataDir: filepath.Join(volume, "data"), Seed: true, Log: log,
		Clone: &CloneSource{PrimaryURL: func() (string, error) { return "http://127.0.0.1:1", nil }, Client: c}}
	if _, ok := unreachable.seedable(ctx); ok {
		t.Fatal("a primary that does not answer was taken for one to copy")
	}

	b := Bootstrap{Engine: replication.MariaDB, DataDir: filepath.Join(volume, "data"), RunDir: volume, TmpDir: volume, RootPassword: "unused by a copy",
		Log: log, Output: io.Discard, Seed: true, ServerConfig: serverConfig(t),
		Clone: &CloneSource{PrimaryURL: func() (string, error) { return p.url, nil }, Client: c}}
	if err := b.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.Marker()); err != nil {
		t.Fatalf("no marker after the copy: %v", err)
	}
	server := localservers.StartMariaDBOn(t, b.DataDir)
	bootReadOnly(t, server)
	var state string
	if err := server.DB(t).QueryRow("SELECT @@GLOBAL.gtid_binlog_state").Scan(&state); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(state, "0-4242-") {
		t.Fatalf("the copy's gtid_binlog_state %q lacks the other server's transaction", state)
	}
	servers := map[string]*localservers.MariaDB{p.pod: p.server, "s-replicas-2": server}
	cfg := Config{Engine: replication.MariaDB, Shard: 1, Pod: "s-replicas-2", Primary: p.pod, Peer: peers(servers), Role: "replica", Ordinal: 2,
		Credentials: replication.Credentials{AppPassword: "a-pw", ReplicationPassword: "r-pw", ExporterPassword: "e-pw"},
		MaxLag:      10 * time.Second, Interval: 200 * time.Millisecond, SemiSyncTimeout: 5 * time.Second, Token: c.Token}
	a := New(cfg, server.DB(t), log)
	runCtx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go a.Run(runCtx)
	if err := write(appDB(t, p), 45, 60); err != nil {
		t.Fatal(err)
	}
	m := &member{pod: "s-replicas-2", server: server, agent: a}
	hasRows(t, m, 61)
	testutil.Eventually(t, "the new replica ready", 30*time.Second, func() error {
		st, err := a.Status(ctx)
		if err != nil || !st.Ready {
			return fmt.Errorf("%+v %w", st, err)
		}
		return nil
	})
}

// A replica that was away while its primary purged the binary logs it needs next cannot catch up
// (fatal error 1236): its agent reports it stranded, and a rebuild from a copy brings it back.
func TestAStrandedReplicaIsRebuilt(t *testing.T) {
	ctx := context.Background()
	shard, c := testShard(t)
	p, r0 := shard["s-primary-0"], shard["s-replicas-0"]
	if err := write(appDB(t, p), 0, 20); err != nil {
		t.Fatal(err)
	}
	hasRows(t, r0, 20)
	r0.server.Stop()
	if err := write(appDB(t, p), 20, 40); err != nil {
		t.Fatal(err)
	}
	purgeAll(t, p.server.DB(t))
	r0.server.Restart()
	testutil.Eventually(t, "r0 reports that it is stranded", 60*time.Second, func() error {
		st, err := c.Status(ctx, r0.url)
		if err != nil || st.Stranded == "" {
			return fmt.Errorf("status %+v %w", st, err)
		}
		return nil
	})
	if _, err := c.Rebuild(ctx, r0.url); err != nil {
		t.Fatal(err)
	}
	r0.server.Stop()
	run := t.TempDir()
	b := Bootstrap{Engine: replication.MariaDB, DataDir: r0.server.DataDir(), RunDir: run, TmpDir: run, RootPassword: "unused",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Output: io.Discard, ServerConfig: serverConfig(t),
		Clone: &CloneSource{PrimaryURL: func() (string, error) { return p.url, nil }, Client: c}}
	if err := b.Run(ctx); err != nil {
		t.Fatal(err)
	}
	r0.server.Restart()
	hasRows(t, r0, 40)
	st := waitReady(t, c, r0)
	if st.Stranded != "" || st.Diverged != "" {
		t.Fatalf("after the rebuild: %+v", st)
	}
}

// purgeAll leaves the server only the binary log it writes (again while a replica still reads an
// older one: the server keeps a file a replica reads).
func purgeAll(t *testing.T, root *sql.DB) {
	t.Helper()
	if _, err := root.Exec("FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "every closed binary log purged", 30*time.Second, func() error {
		if _, err := root.Exec("PURGE BINARY LOGS BEFORE NOW() + INTERVAL 1 DAY"); err != nil {
			return err
		}
		logs, err := binaryLogs(root)
		if err != nil {
			return err
		}
		if len(logs) != 1 {
			return fmt.Errorf("binary logs left: %v", logs)
		}
		return nil
	})
}
