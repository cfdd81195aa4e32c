package dbagent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pkg/agentapi"
	"github.com/scalestack/scalestack/pkg/backup"
	"github.com/scalestack/scalestack/pkg/replication"
)

// member is one pod of a test shard: its server, its agent and the agent's API.
type member struct {
	pod    string
	server *localservers.MariaDB
	agent  *Agent
	url    string
}

func (m *member) rows(t *testing.T) int {
	t.Helper()
	var n int
	if err := m.server.DB(t).QueryRow("SELECT COUNT(*) FROM social.posts").Scan(&n); err != nil {
		return -1
	}
	return n
}

// testShard starts a primary and two replicas with their agents, and ticks them until ready.
func testShard(t *testing.T) (map[string]*member, agentapi.Client) {
	t.Helper()
	creds := replication.Credentials{AppPassword: "a-pw", ReplicationPassword: "r-pw", ExporterPassword: "e-pw"}
	pods := []string{"s-primary-0", "s-replicas-0", "s-replicas-1"}
	servers := map[string]*localservers.MariaDB{}
	for _, p := range pods {
		servers[p] = localservers.StartMariaDB(t)
		bootReadOnly(t, servers[p])
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	shard := map[string]*member{}
	for i, p := range pods {
		cfg := Config{Engine: replication.MariaDB, Shard: 1, Pod: p, Primary: pods[0], Peer: peers(servers),
			Credentials: creds, MaxLag: 10 * time.Second, Interval: 200 * time.Millisecond,
			FenceAfter: 2 * time.Second, PromoteWait: 10 * time.Second, SemiSyncTimeout: 5 * time.Second, Token: agentapi.Token(creds.ReplicationPassword)}
		cfg.Backup = &backup.Server{Host: "127.0.0.1", Port: servers[p].Port, User: "root", DataDir: servers[p].DataDir()}
		cfg.Role, cfg.Ordinal = "replica", i-1
		if i == 0 {
			cfg.Role, cfg.Ordinal = "primary", 0
		}
		a := New(cfg, servers[p].DB(t), log)
		srv := httptest.NewServer(a.Handler())
		t.Cleanup(srv.Close)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go a.Run(ctx)
		shard[p] = &member{pod: p, server: servers[p], agent: a, url: srv.URL}
	}
	client := agentapi.Client{Token: agentapi.Token(creds.ReplicationPassword)}
	for _, p := range pods {
		waitReady(t, client, shard[p])
	}
	if _, err := servers[pods[0]].DB(t).Exec("CREATE DATABASE social"); err != nil {
		t.Fatal(err)
	}
	if _, err := servers[pods[0]].DB(t).Exec("CREATE TABLE social.posts (id BIGINT PRIMARY KEY, body TEXT)"); err != nil {
		t.Fatal(err)
	}
	return shard, client
}

// bootReadOnly makes a test server what the operator starts: read-only until its agent decides.
func bootReadOnly(t *testing.T, m *localservers.MariaDB) {
	t.Helper()
	if _, err := m.DB(t).Exec("SET GLOBAL read_only = ON"); err != nil {
		t.Fatal(err)
	}
}

func waitReady(t *testing.T, c agentapi.Client, m *member) agentapi.Status {
	t.Helper()
	var st agentapi.Status
	testutil.Eventually(t, m.pod+" ready", 60*time.Second, func() error {
		var err error
		if st, err = c.Status(context.Background(), m.url); err != nil {
			return err
		}
		if !st.Ready {
			return errors.New(st.Reason)
		}
		return nil
	})
	return st
}

func write(db *sql.DB, from, to int) error {
	for i := from; i < to; i++ {
		if _, err := db.Exec("INSERT INTO social.posts VALUES (?, 'x')", i); err != nil {
			return fmt.Errorf("row %d: %w", i, err)
		}
	}
	return nil
}

func appDB(t *testing.T, m *member) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", m.server.DSN("app", "a-pw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func hasRows(t *testing.T, m *member, want int) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%s has %d rows", m.pod, want), 60*time.Second, func() error {
		if n := m.rows(t); n != want {
			return fmt.Errorf("%d rows", n)
		}
		return nil
	})
}

// A switchover and a failover driven through the agents' API, the way the operator drives them,
// against three real MariaDB servers.
func TestSwitchoverFailoverAndDivergence(t *testing.T) {
	ctx := context.Background()
	shard, c := testShard(t)
	p, r0, r1 := shard["s-primary-0"], shard["s-replicas-0"], shard["s-replicas-1"]
	if err := write(appDB(t, p), 0, 50); err != nil {
		t.Fatal(err)
	}

	// Without the token nothing is done.
	resp, err := http.Post(p.url+"/v1/fence", "application/json", strings.NewReader(`{"epoch":0}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("fence without a token: %s", resp.Status)
	}

	// Switchover p -> r0: fence p, wait until r0 has all p has, move the topology.
	fenced, err := c.Fence(ctx, p.url, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fenced.Fenced == "" || !fenced.Position.ReadOnly {
		t.Fatalf("fenced primary reports %+v", fenced)
	}
	if err := write(appDB(t, p), 50, 51); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("a write to the fenced primary: %v", err)
	}
	testutil.Eventually(t, "r0 has everything the fenced primary has", 30*time.Second, func() error {
		st, err := c.Status(ctx, r0.url)
		if err != nil {
			return err
		}
		if lack := st.Position.Executed.Missing(fenced.Position.Executed); len(lack) > 0 {
			return fmt.Errorf("lacks %v", lack)
		}
		return nil
	})
	next := agentapi.Topology{Primary: r0.pod, Epoch: 1}
	st, err := c.SetTopology(ctx, r0.url, next)
	if err != nil || st.Role != agentapi.RolePrimary || !st.Ready {
		t.Fatalf("promoting r0: %+v %v", st, err)
	}
	for _, m := range []*member{p, r1} {
		if _, err := c.SetTopology(ctx, m.url, next); err != nil {
			t.Fatal(err)
		}
	}
	if err := write(appDB(t, r0), 50, 80); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{p, r1} {
		waitReady(t, c, m)
		hasRows(t, m, 80)
	}
	if _, err := c.SetTopology(ctx, p.url, agentapi.Topology{Primary: p.pod, Epoch: 0}); err == nil {
		t.Error("an agent took an older epoch")
	}

	// r0 takes a write that nobody receives (both replicas' replication stopped), then dies:
	// the write is lost by the failover, and r0 must not rejoin with it.
	for _, m := range []*member{p, r1} {
		if _, err := m.server.DB(t).Exec("STOP SLAVE"); err != nil {
			t.Fatal(err)
		}
	}
	if err := write(appDB(t, r0), 80, 81); err != nil {
		t.Fatal(err)
	}
	r0.server.Stop()

	// Failover: the most advanced of the others is promoted (both have 80 rows).
	sp, err := c.Status(ctx, p.url)
	if err != nil {
		t.Fatal(err)
	}
	sr1, err := c.Status(ctx, r1.url)
	if err != nil {
		t.Fatal(err)
	}
	if !sp.Position.Received.Contains(sr1.Position.Received) || sp.LagSeconds == nil || sp.LagObservedAt == nil {
		t.Fatalf("positions %v / %v, lag %v", sp.Position.Received, sr1.Position.Received, sp.LagSeconds)
	}
	after := agentapi.Topology{Primary: p.pod, Epoch: 2}
	if st, err := c.SetTopology(ctx, p.url, after); err != nil || st.Role != agentapi.RolePrimary || !st.Ready {
		t.Fatalf("promoting p: %+v %v", st, err)
	}
	if _, err := c.SetTopology(ctx, r1.url, after); err != nil {
		t.Fatal(err)
	}
	if err := write(appDB(t, p), 100, 110); err != nil {
		t.Fatal(err)
	}
	hasRows(t, r1, 90)

	// r0 returns still believing it is the primary at epoch 1: it stalled longer than FenceAfter,
	// so it fences itself and takes no write.
	time.Sleep(2500 * time.Millisecond) // down longer than FenceAfter in any case
	r0.server.Restart()
	testutil.Eventually(t, "the returning primary fences itself", 30*time.Second, func() error {
		st, err := c.Status(ctx, r0.url)
		if err != nil {
			return err
		}
		if st.Fenced == "" || !st.Position.ReadOnly {
			return fmt.Errorf("not fenced: %+v", st)
		}
		return nil
	})
	if err := write(appDB(t, r0), 200, 201); err == nil {
		t.Error("the stalled primary took a write")
	}
	// Told of the failover it refuses to follow p: it has the write p never received.
	st, err = c.SetTopology(ctx, r0.url, after)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready || st.Diverged == "" || st.Role != agentapi.RoleReplica || !st.Position.ReadOnly {
		t.Errorf("diverged old primary reports %+v", st)
	}
	if code, body := get(t, r0.agent.Handler(), "/metrics"); code != http.StatusOK || !strings.Contains(body, "scalestack_dbagent_diverged{shard=\"1\"} 1") {
		t.Errorf("metrics do not show the divergence:\n%s", body)
	}
}

// A primary that stalled is confirmed by the operator and takes writes again.
func TestStalledPrimaryConfirmed(t *testing.T) {
	ctx := context.Background()
	shard, c := testShard(t)
	p := shard["s-primary-0"]
	p.server.Stop()
	time.Sleep(2500 * time.Millisecond) // longer than FenceAfter
	p.server.Restart()
	testutil.Eventually(t, "fenced after the stall", 30*time.Second, func() error {
		st, err := c.Status(ctx, p.url)
		if err != nil {
			return err
		}
		if st.Fenced == "" {
			return fmt.Errorf("not fenced: %+v", st)
		}
		return nil
	})
	st, err := c.SetTopology(ctx, p.url, agentapi.Topology{Primary: p.pod, Epoch: 0, Confirm: true})
	if err != nil || st.Fenced != "" || !st.Ready || st.Position.ReadOnly {
		t.Fatalf("confirmed primary reports %+v %v", st, err)
	}
	if err := write(appDB(t, p), 0, 5); err != nil {
		t.Fatal(err)
	}

	// A new agent (a restarted agent container) beside the running, writable server fences it:
	// it cannot know what happened while no agent watched.
	time.Sleep(3 * time.Second) // the server has run for longer than the new agent
	again := New(p.agent.cfg, p.server.DB(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := again.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := again.Status(ctx); err != nil || st.Fenced == "" || !st.Position.ReadOnly {
		t.Fatalf("a restarted agent beside a writable server: %+v %v", st, err)
	}
	if err := again.SetTopology(ctx, agentapi.Topology{Primary: p.pod, Epoch: 0, Confirm: true}); err != nil {
		t.Fatal(err)
	}
	if st, _ := again.Status(ctx); st.Fenced != "" || st.Position.ReadOnly {
		t.Errorf("confirmed, still fenced: %+v", st)
	}
}
