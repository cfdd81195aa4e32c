package replication

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/localservers"
)

func mustSet(t *testing.T, s string) GTIDSet {
	t.Helper()
	g, err := ParseGTIDSet(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGTIDSets(t *testing.T) {
	const u1, u2 = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "4e11fa47-71ca-11e1-9e33-c80aa9429562"
	a := mustSet(t, u1+":1-5:7-9,\n"+u2+":1-3")
	if a.Count() != 11 || a.String() != u1+":1-5:7-9,"+u2+":1-3" {
		t.Errorf("parsed %v (%d)", a, a.Count())
	}
	cases := []struct {
		have, want string
		contains   bool
		missing    string
	}{
		{u1 + ":1-9", u1 + ":1-5:7-9", true, ""},
		{u1 + ":1-5:7-9", u1 + ":1-9", false, u1 + ":6"},
		{u1 + ":1-9", u1 + ":1-9," + u2 + ":1", false, u2 + ":1"},
		{"", "", true, ""},
		{u1 + ":1-3:5-6", u1 + ":2-7", false, u1 + ":4:7"},
		// The key is case-insensitive, as MySQL prints UUIDs in either case.
		{strings.ToUpper(u1) + ":1-2", u1 + ":2", true, ""},
	}
	for _, tc := range cases {
		have, want := mustSet(t, tc.have), mustSet(t, tc.want)
		if got := have.Contains(want); got != tc.contains {
			t.Errorf("%q contains %q = %v", tc.have, tc.want, got)
		}
		if got := have.Missing(want).String(); got != tc.missing {
			t.Errorf("%q missing from %q = %q, want %q", tc.want, tc.have, got, tc.missing)
		}
	}
	for _, bad := range []string{u1, u1 + ":x", u1 + ":5-3", u1 + ":0"} {
		if _, err := ParseGTIDSet(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if got := mustSet(t, u1+":1-3").Union(mustSet(t, u1+":4-6,"+u2+":2")).String(); got != u1+":1-6,"+u2+":2" {
		t.Errorf("union %q", got)
	}

	// MariaDB: a state has one entry per domain and server, a position one per domain.
	state, err := ParseMariaDBState("0-101-500,0-102-510,1-101-7")
	if err != nil || state.String() != "0-101:1-500,0-102:1-510,1-101:1-7" {
		t.Errorf("state %v %v", state, err)
	}
	pos, err := ParseMariaDBPosition("0-102-510,1-101-7")
	if err != nil || pos.String() != "0:1-510,1:1-7" {
		t.Errorf("position %v %v", pos, err)
	}
	// The old primary (101) wrote up to 500; a new primary that had only 498 of them lacks 2.
	newPrimary, _ := ParseMariaDBState("0-101-498,0-102-510")
	oldPrimary, _ := ParseMariaDBState("0-101-500")
	if got := newPrimary.Missing(oldPrimary).String(); got != "0-101:499-500" {
		t.Errorf("diverged by %q", got)
	}
	for _, bad := range []string{"0-1", "a-1-2", "0-1-x"} {
		if _, err := ParseMariaDBState(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// A property: Missing(a, b) is exactly b's transactions not in a, checked against a plain set of
// numbers, and Contains agrees with it.
func TestGTIDSetMissingAgreesWithPlainSets(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	random := func() (GTIDSet, map[int64]bool) {
		plain := map[int64]bool{}
		var b strings.Builder
		b.WriteString("u")
		for range r.IntN(4) {
			lo := 1 + r.Int64N(40)
			hi := lo + r.Int64N(6)
			fmt.Fprintf(&b, ":%d-%d", lo, hi)
			for n := lo; n <= hi; n++ {
				plain[n] = true
			}
		}
		if b.Len() == 1 {
			return GTIDSet{}, plain
		}
		return mustSet(t, b.String()), plain
	}
	for range 2000 {
		a, pa := random()
		b, pb := random()
		lack := a.Missing(b)
		var want int64
		for n := range pb {
			if !pa[n] {
				want++
			}
		}
		if lack.Count() != want || a.Contains(b) != (want == 0) {
			t.Fatalf("%v missing %v = %v (%d), want %d", a, b, lack, lack.Count(), want)
		}
		for _, iv := range lack["u"] {
			for n := iv.Lo; n <= iv.Hi; n++ {
				if pa[n] || !pb[n] {
					t.Fatalf("%v missing %v lists %d", a, b, n)
				}
			}
		}
	}
}

func TestMySQLPromotionStatements(t *testing.T) {
	d := dialects[MySQL]
	if d.stopIO != "STOP REPLICA IO_THREAD" || d.reset != "RESET REPLICA ALL" ||
		d.waitApplied != "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)" || !strings.Contains(d.position, "gtid_executed") {
		t.Errorf("MySQL 8.4 promotion statements %+v", d)
	}
	p, err := position(MySQL, "u1:1-10", "u1:1-10", "u1:1-12", true)
	if err != nil || p.Received.String() != "u1:1-12" || p.Executed.String() != "u1:1-10" || !p.ReadOnly {
		t.Errorf("MySQL position %+v %v", p, err)
	}
	m := dialects[MariaDB]
	if m.stopIO != "STOP SLAVE IO_THREAD" || m.waitApplied != "SELECT MASTER_GTID_WAIT(?, ?)" || !strings.Contains(m.position, "gtid_binlog_state") {
		t.Errorf("MariaDB promotion statements %+v", m)
	}
}

// shard starts a primary and n replicas replicating from it, with social.posts.
func shard(t *testing.T, n int) (*localservers.MariaDB, *Client, []*localservers.MariaDB, []*Client) {
	t.Helper()
	ctx := context.Background()
	pm := localservers.StartMariaDB(t)
	p := &Client{DB: pm.DB(t), Engine: MariaDB}
	for _, q := range []string{"CREATE DATABASE social", "CREATE TABLE social.posts (id BIGINT PRIMARY KEY, body TEXT)"} {
		if _, err := p.DB.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.EnsureUsers(ctx, creds); err != nil {
		t.Fatal(err)
	}
	if err := p.ConfigurePrimary(ctx); err != nil {
		t.Fatal(err)
	}
	var servers []*localservers.MariaDB
	var clients []*Client
	for range n {
		m := localservers.StartMariaDB(t)
		c := &Client{DB: m.DB(t), Engine: MariaDB}
		if _, err := c.ConfigureReplica(ctx, source(pm)); err != nil {
			t.Fatal(err)
		}
		servers, clients = append(servers, m), append(clients, c)
	}
	return pm, p, servers, clients
}

func insert(t *testing.T, db *sql.DB, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := db.Exec("INSERT INTO social.posts VALUES (?, 'x')", i); err != nil {
			t.Fatal(err)
		}
	}
}

func caughtUp(ctx context.Context, c *Client, want int) func() error {
	return func() error {
		n, err := count(ctx, c.DB)
		if err != nil {
			return err
		}
		if n != want {
			return fmt.Errorf("%d rows, want %d", n, want)
		}
		return nil
	}
}

// Failover by hand with the primitives the agent uses: the primary dies, the most advanced
// replica is promoted with every row, the other replica follows it after checking it lacks
// nothing, and the old primary rejoins; one that took writes after the failover is refused.
func TestPromoteFollowAndDivergence(t *testing.T) {
	ctx := context.Background()
	pm, p, servers, rs := shard(t, 2)
	insert(t, p.DB, 0, 50)
	for i, r := range rs {
		waitFor(t, fmt.Sprint("replica ", i, " caught up"), caughtUp(ctx, r, 50))
	}
	oldState, err := p.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}

	pm.Stop()
	// Both replicas received everything; either is the most advanced. Promote the first.
	p0, err := rs[0].Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := rs[1].Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !p0.Received.Contains(p1.Received) || !p0.ReadOnly {
		t.Fatalf("replica positions %v / %v (read-only %v)", p0.Received, p1.Received, p0.ReadOnly)
	}
	if err := rs[0].Promote(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if st, _ := rs[0].Status(ctx); st.Configured {
		t.Errorf("the promoted server still replicates: %+v", st)
	}
	insert(t, rs[0].DB, 50, 60)

	newSrc := source(servers[0])
	newExecuted, err := ExecutedAt(ctx, MariaDB, newSrc)
	if err != nil {
		t.Fatal(err)
	}
	if lack := newExecuted.Missing(p1.Executed); len(lack) != 0 {
		t.Fatalf("the new primary lacks %v of the other replica", lack)
	}
	if _, err := rs[1].ConfigureReplica(ctx, newSrc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the other replica follows the new primary", caughtUp(ctx, rs[1], 60))

	// The old primary returns with nothing the new one lacks: it rejoins as a replica.
	pm.Restart()
	old := &Client{DB: pm.DB(t), Engine: MariaDB}
	if lack := newExecuted.Missing(oldState.Executed); len(lack) != 0 {
		t.Fatalf("old primary diverged by %v", lack)
	}
	if _, err := old.ConfigureReplica(ctx, newSrc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old primary rejoins", caughtUp(ctx, old, 60))

	// A server that took a write the primary never had is seen as diverged.
	if _, err := old.DB.ExecContext(ctx, "STOP SLAVE"); err != nil {
		t.Fatal(err)
	}
	if _, err := old.DB.ExecContext(ctx, "INSERT INTO social.posts VALUES (1000, 'errant')"); err != nil {
		t.Fatal(err)
	}
	errant, err := old.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now, err := ExecutedAt(ctx, MariaDB, newSrc)
	if err != nil {
		t.Fatal(err)
	}
	// (A MariaDB state keeps one sequence number per domain and server, so what is missing is
	// named by its server: the old primary's, 101 and up in the test servers.)
	if lack := now.Missing(errant.Executed); len(lack) != 1 {
		t.Errorf("the errant write shows as %v", lack)
	}
}

// Fence makes a primary refuse the apps' writes and closes their connections; Promote refuses a
// replica that cannot apply its relay log in time.
func TestFenceAndPromoteTimeout(t *testing.T) {
	ctx := context.Background()
	pm, p, _, rs := shard(t, 1)
	app, err := sql.Open("mysql", pm.DSN("app", creds.AppPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = app.Close() }()
	app.SetMaxIdleConns(4)
	if _, err := app.ExecContext(ctx, "INSERT INTO social.posts VALUES (1, 'before')"); err != nil {
		t.Fatal(err)
	}
	conn, err := app.Conn(ctx) // a pooled connection, like an app's
	if err != nil {
		t.Fatal(err)
	}
	killed, err := p.Fence(ctx)
	if err != nil || killed < 1 {
		t.Fatalf("fence: killed %d, %v", killed, err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO social.posts VALUES (2, 'stale connection')"); err == nil {
		t.Error("a connection opened before the fence still wrote")
	}
	_ = conn.Close()
	if _, err := app.ExecContext(ctx, "INSERT INTO social.posts VALUES (3, 'after')"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("a write after the fence gave %v, want a read-only refusal", err)
	}
	waitFor(t, "replica caught up", caughtUp(ctx, rs[0], 1))

	// The replica's SQL thread is stopped with received transactions pending: no promotion.
	if _, err := rs[0].DB.ExecContext(ctx, "STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	if err := p.Promote(ctx, 0); err != nil { // unfence the primary: it replicates from nobody
		t.Fatal(err)
	}
	insert(t, p.DB, 10, 20)
	waitFor(t, "replica received the rows", func() error {
		st, err := rs[0].Status(ctx)
		if err != nil {
			return err
		}
		if !strings.HasSuffix(st.GTIDPos, "-"+fmt.Sprint(pos(t, p))) {
			return fmt.Errorf("received up to %q", st.GTIDPos)
		}
		return nil
	})
	if err := rs[0].Promote(ctx, time.Second); !errors.Is(err, ErrRelayNotApplied) {
		t.Errorf("promoting a replica with an unapplied relay log: %v", err)
	}
	if n, _ := count(ctx, rs[0].DB); n != 1 {
		t.Errorf("%d rows on the replica", n)
	}
}

// pos is the primary's last sequence number in domain 0.
func pos(t *testing.T, c *Client) int64 {
	t.Helper()
	p, err := c.Position(ctx0)
	if err != nil {
		t.Fatal(err)
	}
	return p.Received["0"][0].Hi
}

var ctx0 = context.Background()
