package replication

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/internal/testutil"
)

// These tests run real MariaDB servers (Debian's mariadb-server) on free ports: one primary and
// two replicas.

var creds = Credentials{AppPassword: "app-secret-1", ReplicationPassword: "repl-secret-2", ExporterPassword: "exp-secret-3"}

func source(m *localservers.MariaDB) Source {
	return Source{Host: "127.0.0.1", Port: m.Port, User: "replication", Password: creds.ReplicationPassword}
}

func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	testutil.Eventually(t, what, 60*time.Second, cond)
}

func count(ctx context.Context, db *sql.DB) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM social.posts").Scan(&n)
	return n, err
}

func TestReplicationPrimaryAndTwoReplicas(t *testing.T) {
	ctx := context.Background()
	primary := localservers.StartMariaDB(t)
	r1 := localservers.StartMariaDB(t)
	r2 := localservers.StartMariaDB(t)
	p := &Client{DB: primary.DB(t), Engine: MariaDB}
	if err := p.SetServerID(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := p.EnsureUsers(ctx, creds); err != nil {
		t.Fatal(err)
	}
	if err := p.ConfigurePrimary(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DB.ExecContext(ctx, "CREATE DATABASE social"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DB.ExecContext(ctx, "CREATE TABLE social.posts (id BIGINT PRIMARY KEY, body TEXT)"); err != nil {
		t.Fatal(err)
	}

	replicas := []*Client{{DB: r1.DB(t), Engine: MariaDB}, {DB: r2.DB(t), Engine: MariaDB}}
	for i, r := range replicas {
		if err := r.SetServerID(ctx, 2+i); err != nil {
			t.Fatal(err)
		}
		changed, err := r.ConfigureReplica(ctx, source(primary))
		if err != nil || !changed {
			t.Fatalf("replica %d: changed=%v err=%v", i, changed, err)
		}
	}
	for i := range 100 {
		if _, err := p.DB.ExecContext(ctx, "INSERT INTO social.posts VALUES (?, ?)", i, fmt.Sprint("post ", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range replicas {
		waitFor(t, fmt.Sprintf("replica %d has the rows and is healthy", i), func() error {
			n, err := count(ctx, r.DB)
			if err != nil {
				return err
			}
			if n != 100 {
				return fmt.Errorf("%d rows", n)
			}
			st, err := r.Status(ctx)
			if err != nil {
				return err
			}
			return Check(st, source(primary), 5*time.Second)
		})
		st, _ := r.Status(ctx)
		if st.Lag == nil || *st.Lag != 0 || st.GTIDPos == "" {
			t.Errorf("replica %d: lag %v, gtid %q", i, st.Lag, st.GTIDPos)
		}
		// Read-only: a write on a replica is refused (the app user has no SUPER).
		server := []*localservers.MariaDB{r1, r2}[i]
		appDB, err := sql.Open("mysql", server.DSN("app", creds.AppPassword))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := appDB.ExecContext(ctx, "INSERT INTO social.posts VALUES (1000, 'x')"); err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("replica %d: a write from the app user (whose account replicated) gave %v, want a read-only refusal", i, err)
		}
		_ = appDB.Close()
	}

	// Idempotent: a healthy replica is not touched again.
	if changed, err := replicas[0].ConfigureReplica(ctx, source(primary)); err != nil || changed {
		t.Errorf("second ConfigureReplica: changed=%v err=%v", changed, err)
	}

	// A restarted replica resumes where it stopped.
	r2.Stop()
	for i := 100; i < 150; i++ {
		if _, err := p.DB.ExecContext(ctx, "INSERT INTO social.posts VALUES (?, 'while down')", i); err != nil {
			t.Fatal(err)
		}
	}
	r2.Restart()
	restarted := &Client{DB: r2.DB(t), Engine: MariaDB}
	waitFor(t, "restarted replica catches up", func() error {
		if _, err := restarted.ConfigureReplica(ctx, source(primary)); err != nil {
			return err
		}
		n, err := count(ctx, restarted.DB)
		if err != nil {
			return err
		}
		if n != 150 {
			return fmt.Errorf("%d rows", n)
		}
		st, err := restarted.Status(ctx)
		if err != nil {
			return err
		}
		return Check(st, source(primary), 5*time.Second)
	})

	// A replica pointed at the wrong primary is reported, not trusted, and re-pointed.
	if _, err := replicas[0].DB.ExecContext(ctx, "STOP SLAVE"); err != nil {
		t.Fatal(err)
	}
	q, args := Statements(MariaDB, source(r2))
	if _, err := replicas[0].DB.ExecContext(ctx, q, args...); err != nil {
		t.Fatal(err)
	}
	if _, err := replicas[0].DB.ExecContext(ctx, "START SLAVE"); err != nil {
		t.Fatal(err)
	}
	st, err := replicas[0].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(st, source(primary), 5*time.Second); !errors.Is(err, ErrWrongSource) {
		t.Errorf("a replica of the wrong primary checked as %v", err)
	}
	if changed, err := replicas[0].ConfigureReplica(ctx, source(primary)); err != nil || !changed {
		t.Fatalf("re-pointing: changed=%v err=%v", changed, err)
	}
	waitFor(t, "re-pointed replica healthy", func() error {
		st, err := replicas[0].Status(ctx)
		if err != nil {
			return err
		}
		return Check(st, source(primary), 5*time.Second)
	})
}

func TestCheck(t *testing.T) {
	src := Source{Host: "p", Port: 3306}
	zero, big := time.Duration(0), 30*time.Second
	ok := Status{Configured: true, SourceHost: "p", SourcePort: 3306, IORunning: true, SQLRunning: true, Lag: &zero}
	cases := []struct {
		name   string
		mutate func(*Status)
		want   error
	}{
		{"healthy", func(*Status) {}, nil},
		{"not configured", func(s *Status) { *s = Status{} }, ErrNotReplicating},
		{"wrong host", func(s *Status) { s.SourceHost = "q" }, ErrWrongSource},
		{"wrong port", func(s *Status) { s.SourcePort = 3307 }, ErrWrongSource},
		{"io stopped", func(s *Status) { s.IORunning, s.IOError = false, "error connecting" }, ErrNotReplicating},
		{"sql stopped", func(s *Status) { s.SQLRunning = false }, ErrNotReplicating},
		{"lag unknown", func(s *Status) { s.Lag = nil }, ErrNotReplicating},
		{"lagging", func(s *Status) { s.Lag = &big }, ErrLagging},
	}
	for _, tc := range cases {
		st := ok
		tc.mutate(&st)
		if err := Check(st, src, 10*time.Second); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestMySQLStatements(t *testing.T) {
	q, args := Statements(MySQL, Source{Host: "h", Port: 3306, User: "replication", Password: "pw"})
	if !strings.HasPrefix(q, "CHANGE REPLICATION SOURCE TO SOURCE_HOST=?") || !strings.Contains(q, "SOURCE_AUTO_POSITION=1") || len(args) != 4 {
		t.Errorf("MySQL 8.4 statement %q %v", q, args)
	}
	d := dialects[MySQL]
	if d.start != "START REPLICA" || d.status != "SHOW REPLICA STATUS" || d.cols["lag"] != "Seconds_Behind_Source" {
		t.Errorf("MySQL dialect %+v", d)
	}
	if q, _ := Statements(MariaDB, Source{}); !strings.Contains(q, "MASTER_USE_GTID=slave_pos") {
		t.Errorf("MariaDB statement %q", q)
	}
}

func TestRedact(t *testing.T) {
	err := redact(errors.New("Access denied using password 's3cret'"), "s3cret")
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("secret leaked: %v", err)
	}
}
