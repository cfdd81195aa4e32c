package dbagent

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/pkg/replication"
)

// The bootstrap against Debian's real MariaDB: a volume root with lost+found (as on ext4) gets its
// data directory in a subdirectory, root gets the Secret's password on 127.0.0.1 and refuses an
// empty one, a second run changes nothing (rows survive), and an unfinished bootstrap (no marker)
// is redone from scratch.
func TestBootstrapInitializesOnceAndKeepsData(t *testing.T) {
	if _, err := lookPath("mariadb-install-db", "mysql_install_db"); err != nil {
		t.Fatalf("MariaDB is not installed (hack/test-deps.sh installs it): %v", err)
	}
	vol := t.TempDir()
	for _, d := range []string{"lost+found", "run", "tmp"} {
		if err := os.MkdirAll(filepath.Join(vol, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	b := Bootstrap{Engine: replication.MariaDB, DataDir: filepath.Join(vol, "data"), RunDir: filepath.Join(vol, "run"),
		TmpDir: filepath.Join(vol, "tmp"), RootPassword: "s3cret-root", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Output: &out}
	ctx := context.Background()
	if err := b.Run(ctx); err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, out.String())
	}
	if _, err := os.Stat(b.Marker()); err != nil {
		t.Fatalf("no marker after a bootstrap: %v", err)
	}
	if strings.Contains(out.String(), "s3cret-root") {
		t.Fatal("the server output carries the root password")
	}

	srv := startOn(t, b)
	if err := ping(srv.addr, "root", ""); err == nil {
		t.Fatal("root logs in with an empty password")
	}
	db := open(t, srv.addr, "root", "s3cret-root")
	mustExec(t, db, "CREATE DATABASE kept", "CREATE TABLE kept.t (id INT PRIMARY KEY)", "INSERT INTO kept.t VALUES (42)")
	_ = db.Close()
	srv.stop(t)

	// A restart: the marker is there, nothing is touched.
	if err := b.Run(ctx); err != nil {
		t.Fatalf("second bootstrap: %v", err)
	}
	srv = startOn(t, b)
	db = open(t, srv.addr, "root", "s3cret-root")
	var id int
	if err := db.QueryRow("SELECT id FROM kept.t").Scan(&id); err != nil || id != 42 {
		t.Fatalf("the row did not survive a second bootstrap: %d, %v", id, err)
	}
	_ = db.Close()
	srv.stop(t)

	// Interrupted before the marker: redone from scratch, with the new password.
	if err := os.Remove(b.Marker()); err != nil {
		t.Fatal(err)
	}
	b.RootPassword = "another-root"
	if err := b.Run(ctx); err != nil {
		t.Fatalf("bootstrap after an interruption: %v\n%s", err, out.String())
	}
	srv = startOn(t, b)
	db = open(t, srv.addr, "root", "another-root")
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'kept'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("an unfinished bootstrap's data directory was kept: %d, %v", n, err)
	}
	_ = db.Close()
	srv.stop(t)
	if _, err := os.Stat(filepath.Join(vol, "lost+found")); err != nil {
		t.Fatalf("lost+found at the volume root was touched: %v", err)
	}
}

type server struct {
	addr string
	cmd  *exec.Cmd
	done chan error
}

func startOn(t *testing.T, b Bootstrap) *server {
	t.Helper()
	port := localservers.FreePort(t)
	cmd := exec.Command(b.server(), asRoot([]string{"--no-defaults", "--datadir=" + b.DataDir, "--tmpdir=" + b.TmpDir,
		"--socket=" + filepath.Join(b.RunDir, "s.sock"), "--pid-file=" + filepath.Join(b.RunDir, "s.pid"),
		"--bind-address=127.0.0.1", fmt.Sprintf("--port=%d", port), "--skip-name-resolve", "--innodb-buffer-pool-size=16M"})...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := ping(s.addr, "nobody", "x")
		var me *mysql.MySQLError
		if err == nil || (asMySQLError(err, &me) && me.Number == 1045) { // access denied: it answers
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("mariadbd did not answer: %v\n%s", err, log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *server) stop(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Logf("mariadbd exited: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("mariadbd did not stop")
	}
}

func asMySQLError(err error, target **mysql.MySQLError) bool {
	return errors.As(err, target)
}

func dsn(addr, user, pw string) string {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.Timeout = user, pw, "tcp", addr, 2*time.Second
	return c.FormatDSN()
}

func ping(addr, user, pw string) error {
	db, err := sql.Open("mysql", dsn(addr, user, pw))
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	return db.Ping()
}

func open(t *testing.T, addr, user, pw string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn(addr, user, pw))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		t.Fatalf("%s on %s: %v", user, addr, err)
	}
	return db
}

func mustExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
