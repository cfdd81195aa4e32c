package dbagent

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/pkg/replication"
)

// peers resolves the test's pod names to its servers.
func peers(servers map[string]*localservers.MariaDB) func(string) (string, int) {
	return func(pod string) (string, int) {
		if m, ok := servers[pod]; ok {
			return "127.0.0.1", m.Port
		}
		return "unknown." + pod, 3306
	}
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

// The agents of a primary and a replica, against two real MariaDB servers: the replica is not
// ready until the primary has made the replication account, then it is.
func TestAgentsMakeAShard(t *testing.T) {
	ctx := context.Background()
	primary := localservers.StartMariaDB(t)
	replica := localservers.StartMariaDB(t)
	bootReadOnly(t, primary)
	bootReadOnly(t, replica)
	creds := replication.Credentials{AppPassword: "a-pw", ReplicationPassword: "r-pw", ExporterPassword: "e-pw"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	base := Config{Engine: replication.MariaDB, Shard: 3, Primary: "s-primary-0",
		Peer:        peers(map[string]*localservers.MariaDB{"s-primary-0": primary, "s-replicas-1": replica}),
		Credentials: creds, MaxLag: 10 * time.Second, Interval: time.Second}

	rcfg := base
	rcfg.Role, rcfg.Ordinal, rcfg.Pod = "replica", 1, "s-replicas-1"
	ra := New(rcfg, replica.DB(t), log)
	if err := ra.Tick(ctx); err != nil {
		t.Fatalf("replica tick: %v", err)
	}
	if code, body := get(t, ra.Handler(), "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("replica ready before its primary has the replication account: %d %s", code, body)
	}

	pcfg := base
	pcfg.Role, pcfg.Pod = "primary", "s-primary-0"
	pa := New(pcfg, primary.DB(t), log)
	if err := pa.Tick(ctx); err != nil {
		t.Fatalf("primary tick: %v", err)
	}
	if code, body := get(t, pa.Handler(), "/readyz"); code != http.StatusOK {
		t.Errorf("primary not ready: %d %s", code, body)
	}
	// A converged primary's ticks write nothing to its binary log (account statements are
	// binlogged and replicated: repeated every tick they grew it by about 1.6 KB each).
	pos := binlogPosition(t, primary.DB(t))
	for range 3 {
		if err := pa.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := binlogPosition(t, primary.DB(t)); got != pos {
		t.Errorf("the binary log grew from %s to %s over three ticks of a converged primary", pos, got)
	}
	// Nor does a restarted agent beside it: a primary whose pod restarts while its replicas are
	// away must not commit transactions of its own, which a replica promoted meanwhile would lack.
	restarted := New(pcfg, primary.DB(t), log)
	if err := restarted.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := binlogPosition(t, primary.DB(t)); got != pos {
		t.Errorf("the binary log grew from %s to %s on a restarted agent's first tick", pos, got)
	}
	// A rotated password is applied on the next tick.
	rotated := pcfg
	rotated.Credentials.ExporterPassword = "e-pw-2"
	pa = New(rotated, primary.DB(t), log)
	if err := pa.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := pa.rep.UsersCurrent(ctx, rotated.Credentials); err != nil || !ok {
		t.Errorf("the rotated credentials are not current: %v %v", ok, err)
	}
	if ok, _ := pa.rep.UsersCurrent(ctx, creds); ok {
		t.Error("the credentials before the rotation are still current")
	}
	loginAs(t, primary, "exporter", "e-pw-2")
	// An account dropped by hand is made again on the next tick.
	if _, err := primary.DB(t).ExecContext(ctx, "DROP USER 'exporter'@'%'"); err != nil {
		t.Fatal(err)
	}
	if err := pa.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := (&replication.Client{DB: primary.DB(t), Engine: replication.MariaDB}).UsersExist(ctx); err != nil || !ok {
		t.Errorf("the dropped account was not made again: %v %v", ok, err)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := ra.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		code, body := get(t, ra.Handler(), "/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica never ready: %s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var id int
	if err := replica.DB(t).QueryRowContext(ctx, "SELECT @@server_id").Scan(&id); err != nil || id != 303 {
		t.Errorf("replica server_id %d (%v), want 303", id, err)
	}
	if code, body := get(t, ra.Handler(), "/metrics"); code != http.StatusOK ||
		!strings.Contains(body, `scalestack_replication_healthy{role="replica",shard="3"} 1`) {
		t.Errorf("metrics: %d\n%s", code, body)
	}
	if code, _ := get(t, ra.Handler(), "/healthz"); code != http.StatusOK {
		t.Errorf("healthz %d", code)
	}
	// Passwords never reach the metrics or the probe bodies.
	for _, path := range []string{"/metrics", "/readyz", "/healthz"} {
		for _, h := range []http.Handler{pa.Handler(), ra.Handler()} {
			if _, body := get(t, h, path); strings.Contains(body, "r-pw") || strings.Contains(body, "a-pw") {
				t.Errorf("%s shows a password", path)
			}
		}
	}
}

func TestServerIDsAndOrdinals(t *testing.T) {
	if id := (Config{Role: "primary", Shard: 0}).ServerID(); id != 1 {
		t.Errorf("primary of shard 0: %d", id)
	}
	if id := (Config{Role: "replica", Shard: 63, Ordinal: 4}).ServerID(); id != 6306 {
		t.Errorf("replica 4 of shard 63: %d", id)
	}
	if o, err := OrdinalFromPodName("demo-shard-2-replicas-3"); err != nil || o != 3 {
		t.Errorf("ordinal %d %v", o, err)
	}
	if _, err := OrdinalFromPodName("nodash"); err == nil {
		t.Error("a pod name without ordinal accepted")
	}
}

// binlogPosition is the server's current binary log file and offset.
func binlogPosition(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query("SHOW MASTER STATUS")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	cols, _ := rows.Columns()
	if !rows.Next() {
		t.Fatal("SHOW MASTER STATUS: no binary log")
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	return string(vals[0]) + ":" + string(vals[1])
}

// loginAs connects to a server as user with password and fails the test when it cannot.
func loginAs(t *testing.T, m *localservers.MariaDB, user, password string) {
	t.Helper()
	db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/", user, password, m.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if err := db.Ping(); err != nil {
		t.Errorf("logging in as %s: %v", user, err)
	}
}
