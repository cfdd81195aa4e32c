// Package localservers starts real, throwaway MariaDB, Redis and SMTP servers on free loopback
// ports in temporary directories, for as long as a Lifetime lasts: a test's (*testing.T), or a
// program's (a Session: the dev stack of make run-apps, the apps benchmark). Nothing here touches
// the servers a machine may already run on the standard ports.
package localservers

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

var serverIDs atomic.Int32

// MariaDB is one mariadbd process.
type MariaDB struct {
	Port       int
	ServerID   int
	dir        string
	cmd        *exec.Cmd
	t          Lifetime
	bufferPool string
	data       string
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on.
func FreePort(t Lifetime) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func find(t Lifetime, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin"} {
			if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
				return filepath.Join(dir, n)
			}
		}
	}
	t.Fatalf("%s not found: install Debian's mariadb-server (hack/test-deps.sh does)", names[0])
	return ""
}

// StartMariaDB initialises a data directory and starts mariadbd as root on a free port, with
// binary logs and GTIDs on so that it can serve as a primary or a replica. Root has no password
// and is reached over TCP on 127.0.0.1.
func StartMariaDB(t Lifetime) *MariaDB { t.Helper(); return StartMariaDBWith(t, MariaDBOptions{}) }

// MariaDBOptions size a server.
type MariaDBOptions struct {
	// BufferPool is innodb_buffer_pool_size (default 16M).
	BufferPool string
}

// StartMariaDBWith is StartMariaDB with options.
func StartMariaDBWith(t Lifetime, opts MariaDBOptions) *MariaDB {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	// Its own tmpdir: concurrent bootstraps and servers sharing /tmp have been seen to trip over
	// each other's temporary tables.
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	bin := find(t, "mariadb-install-db", "mysql_install_db")
	var out []byte
	var err error
	for attempt := 0; attempt < 2; attempt++ { // a failed bootstrap is retried once, from scratch
		_ = os.RemoveAll(data)
		install := exec.Command(bin, "--no-defaults", "--datadir="+data, "--user=root",
			"--auth-root-authentication-method=normal", "--skip-test-db", "--tmpdir="+tmp)
		if out, err = install.CombinedOutput(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	if opts.BufferPool == "" {
		opts.BufferPool = "16M"
	}
	m := &MariaDB{dir: dir, data: data, ServerID: int(serverIDs.Add(1)) + 100, t: t, bufferPool: opts.BufferPool}
	m.start(FreePort(t))
	t.Cleanup(m.Stop)
	return m
}

func (m *MariaDB) start(port int) {
	m.t.Helper()
	m.Port = port
	m.cmd = exec.Command(find(m.t, "mariadbd", "mysqld"), "--no-defaults",
		"--datadir="+m.data,
		"--port="+strconv.Itoa(port), "--bind-address=127.0.0.1",
		"--socket="+filepath.Join(m.dir, "mysqld.sock"), "--tmpdir="+filepath.Join(m.dir, "tmp"),
		"--pid-file="+filepath.Join(m.dir, "mysqld.pid"),
		"--user=root", "--server-id="+strconv.Itoa(m.ServerID),
		"--log-bin=binlog", "--log-basename=test", "--binlog-format=ROW", "--gtid-strict-mode=ON",
		"--log-slave-updates=ON", "--relay-log-recovery=ON", "--skip-name-resolve",
		"--innodb-buffer-pool-size="+m.bufferPool, "--innodb-log-file-size=8M", "--performance-schema=OFF",
		"--log-error="+filepath.Join(m.dir, "error.log"))
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("starting mariadbd: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		db, err := sql.Open("mysql", m.DSN("root", ""))
		if err == nil {
			err = db.Ping()
			_ = db.Close()
		}
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(m.dir, "error.log"))
	m.t.Fatalf("mariadbd on port %d did not answer within 60s:\n%s", port, tail(string(log), 2000))
}

// StartMariaDBOn starts mariadbd, like StartMariaDB, on an existing data directory (a restored
// backup, say). The directory is the caller's; the server stops when the Lifetime ends.
func StartMariaDBOn(t Lifetime, data string) *MariaDB {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	m := &MariaDB{dir: dir, data: data, ServerID: int(serverIDs.Add(1)) + 100, t: t, bufferPool: "16M"}
	m.start(FreePort(t))
	t.Cleanup(m.Stop)
	return m
}

// DataDir is the server's data directory.
func (m *MariaDB) DataDir() string { return m.data }

// Stop stops the server; its data directory stays until the test ends.
func (m *MariaDB) Stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
		<-done
	}
	m.cmd = nil
}

// Restart stops the server and starts it again on the same port with the same data.
func (m *MariaDB) Restart() {
	m.t.Helper()
	m.Stop()
	m.start(m.Port)
}

// Addr is host:port.
func (m *MariaDB) Addr() string { return fmt.Sprintf("127.0.0.1:%d", m.Port) }

// DSN is a go-sql-driver DSN for user on this server.
func (m *MariaDB) DSN(user, password string) string {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = user, password, "tcp", m.Addr()
	c.InterpolateParams = true
	c.Timeout = 5 * time.Second
	return c.FormatDSN()
}

// DB opens a connection pool as root, closed when the test ends.
func (m *MariaDB) DB(t Lifetime) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", m.DSN("root", ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[strings.LastIndex(s[:len(s)-n], "\n")+1:]
}
