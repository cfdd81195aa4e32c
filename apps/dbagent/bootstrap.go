package dbagent

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/scalestack/scalestack/pkg/agentapi"
	"github.com/scalestack/scalestack/pkg/backup"
	"github.com/scalestack/scalestack/pkg/replication"
)

// Bootstrap initializes a shard pod's data directory, so that the database pods never depend on an
// image's entrypoint script: the official mariadb and mysql images and the project's own Debian
// image behave alike. It runs as an init container in the database image (the agent binary copied
// in by the container before it).
//
// The first time it creates the system tables (mariadb-install-db, or mysqld --initialize-insecure),
// starts the server on a private socket with networking and binary logs off, gives root its
// password from the Secret (root@localhost and root@127.0.0.1/::1: the agent connects over TCP to
// 127.0.0.1; there is no root@'%'), and shuts the server down. Only then does it write the marker
// beside the data directory; a bootstrap interrupted before that leaves no marker and is redone
// from scratch on the next start (no user data can exist yet: the database container never ran).
// With the marker present it does nothing, so restarts and rescheduling keep the data as it is.
//
// A new replica whose primary is up starts from a copy of the primary instead (Seed), and a
// replica with a rebuild request is rebuilt from one (RebuildRequest).
type Bootstrap struct {
	Engine replication.Engine
	// DataDir is the server's data directory: a subdirectory of the volume, since an ext4 volume
	// root holds lost+found, which MySQL refuses in a data directory.
	DataDir string
	// RunDir holds the bootstrap server's socket and pid file.
	RunDir string
	// TmpDir is the server's tmpdir.
	TmpDir       string
	RootPassword string
	Log          *slog.Logger
	// Output receives the servers' own messages (default: standard error).
	Output io.Writer
	// Clone is where a rebuild copies the data from; nil when the pod cannot be rebuilt (MySQL).
	Clone *CloneSource
	// ServerConfig is the server's defaults file (scalestack.cnf), which the server that records a
	// copy's GTID state reads, so that its binary log is the server's; empty: --log-bin=binlog.
	ServerConfig string
	// Seed: a new replica starts from a copy of the primary, when the primary is up, rather than
	// empty (see seedable).
	Seed bool
	// Restore fills a new platform's data directory from another platform's backups: on the
	// shard's first primary; a replica (Seed) waits for that primary and copies it.
	Restore *RestoreSource
	// Report is the init container's termination message file (/dev/termination-log): a
	// restored shard's record (agentapi.RestoreReportPrefix and JSON) on every start once
	// restored, or the error that stopped the bootstrap. Empty: none is written.
	Report string
}

// CloneSource is the shard's primary, as a rebuild reaches it.
type CloneSource struct {
	// PrimaryURL returns the base URL of the agent of the shard's primary of record, read when the
	// rebuild starts.
	PrimaryURL func() (string, error)
	Client     agentapi.Client
	Tool       backup.Tool
}

// Marker is the file, beside the data directory, that says the bootstrap completed.
func (b Bootstrap) Marker() string { return markerPath(b.DataDir) }

func markerPath(dataDir string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(dataDir)), ".scalestack-initialized")
}

// Incarnation names the data directory by when the bootstrap completed it (its marker): a data
// directory made again (a rebuild, a copy of the primary, a restore, a new claim) has a new one,
// and its server numbers its binary logs from 1 again. "" when there is no readable marker.
func Incarnation(dataDir string) string {
	data, err := os.ReadFile(markerPath(dataDir))
	if err != nil {
		return ""
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(data)))
	if err != nil {
		return ""
	}
	return t.UTC().Format("20060102T150405Z")
}

// writeMarker records that the data directory is complete, at its last step.
func (b Bootstrap) writeMarker() error {
	return os.WriteFile(b.Marker(), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o640)
}

// Run bootstraps the data directory unless the marker says it was done, and reports how it ended.
func (b Bootstrap) Run(ctx context.Context) error {
	err := b.run(ctx)
	if b.Report == "" {
		return err
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	} else if b.Restore != nil && !b.Seed {
		rec, rerr := ReadRestoreRecord(b.DataDir)
		if rerr != nil {
			return rerr
		}
		if rec != nil {
			data, merr := json.Marshal(rec)
			if merr != nil {
				return merr
			}
			msg = agentapi.RestoreReportPrefix + string(data)
		}
	}
	// The kubelet keeps at most 4096 bytes of it.
	if werr := os.WriteFile(b.Report, []byte(truncateBytes(msg, 4000)), 0o644); werr != nil && err == nil {
		b.Log.Warn("Could not write the termination message", "path", b.Report, "error", werr.Error())
	}
	return err
}

// truncateBytes cuts s to at most n bytes.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func (b Bootstrap) run(ctx context.Context) error {
	if b.RootPassword == "" {
		return errors.New("no root password")
	}
	if b.Output == nil {
		b.Output = os.Stderr
	}
	req, err := ReadRebuild(b.DataDir)
	if err != nil {
		return err
	}
	if req != nil {
		return b.rebuild(ctx, *req)
	}
	if _, err := os.Stat(b.Marker()); err == nil {
		b.Log.Info("Data directory already initialized", "datadir", b.DataDir)
		return nil
	}
	if err := os.RemoveAll(b.DataDir); err != nil {
		return fmt.Errorf("removing an unfinished data directory: %w", err)
	}
	if b.Restore != nil && b.Seed && b.Clone != nil {
		url, err := b.waitForPrimary(ctx)
		if err != nil {
			return err
		}
		return b.copyPrimary(ctx, url)
	}
	if b.Restore != nil {
		return b.restore(ctx)
	}
	if url, ok := b.seedable(ctx); ok {
		return b.copyPrimary(ctx, url)
	}
	if err := os.MkdirAll(b.DataDir, 0o750); err != nil {
		return err
	}
	start := time.Now()
	if err := b.install(ctx); err != nil {
		return err
	}
	if err := b.setRootPassword(ctx); err != nil {
		return err
	}
	if err := b.writeMarker(); err != nil {
		return err
	}
	b.Log.Info("Data directory initialized", "datadir", b.DataDir, "engine", string(b.Engine), "seconds", time.Since(start).Seconds())
	return nil
}

// asRoot adds --user=root when the bootstrap itself runs as root (tests on a host); in pods it
// runs as the database user and the servers refuse --user.
func asRoot(args []string) []string {
	if os.Geteuid() == 0 {
		return append(args, "--user=root")
	}
	return args
}

func (b Bootstrap) install(ctx context.Context) error {
	var cmd *exec.Cmd
	if b.Engine == replication.MySQL {
		cmd = exec.CommandContext(ctx, "mysqld", asRoot([]string{"--no-defaults", "--initialize-insecure",
			"--datadir=" + b.DataDir, "--tmpdir=" + b.TmpDir})...)
	} else {
		bin, err := lookPath("mariadb-install-db", "mysql_install_db")
		if err != nil {
			return err
		}
		cmd = exec.CommandContext(ctx, bin, asRoot([]string{"--no-defaults", "--datadir=" + b.DataDir,
			"--auth-root-authentication-method=normal", "--skip-test-db", "--tmpdir=" + b.TmpDir})...)
	}
	cmd.Stdout, cmd.Stderr = b.Output, b.Output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("creating the system tables (%s): %w", filepath.Base(cmd.Path), err)
	}
	return nil
}

func (b Bootstrap) server() string {
	if b.Engine == replication.MySQL {
		return "mysqld"
	}
	if p, err := lookPath("mariadbd", "mysqld"); err == nil {
		return p
	}
	return "mariadbd"
}

// setRootPassword starts the server with no network and no binary log, sets root's password over
// the socket and shuts the server down again.
func (b Bootstrap) setRootPassword(ctx context.Context) error {
	return b.privateServer(ctx, []string{"--skip-log-bin"}, func(db *sql.DB) error { return b.rootPassword(ctx, db) })
}

// rootPassword gives root@localhost, root@127.0.0.1 and root@::1 the password.
func (b Bootstrap) rootPassword(ctx context.Context, db *sql.DB) error {
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		stmts := []string{
			"CREATE USER IF NOT EXISTS 'root'@'" + host + "' IDENTIFIED BY ?",
			"ALTER USER 'root'@'" + host + "' IDENTIFIED BY ?",
			"GRANT ALL PRIVILEGES ON *.* TO 'root'@'" + host + "' WITH GRANT OPTION",
		}
		for _, q := range stmts {
			var args []any
			if strings.Contains(q, "?") {
				args = []any{b.RootPassword}
			}
			if _, err := db.ExecContext(ctx, q, args...); err != nil {
				// The statement carries the password: name the account, not the statement.
				return fmt.Errorf("setting the password of root@%s: %s", host, strings.ReplaceAll(err.Error(), b.RootPassword, "<redacted>"))
			}
		}
	}
	return nil
}

// privateSocket is the socket of the private server.
func (b Bootstrap) privateSocket() string { return filepath.Join(b.RunDir, "bootstrap.sock") }

// privateServer starts the server on the data directory with no network, on a socket of the run
// directory, as root over that socket (passwordless: the system tables are fresh, or grants are
// skipped), runs do and shuts the server down cleanly.
func (b Bootstrap) privateServer(ctx context.Context, extra []string, do func(*sql.DB) error) error {
	return b.privateServerWith(ctx, "--no-defaults", extra, do)
}

// privateServerWith is privateServer reading defaults (--no-defaults, or --defaults-file=F).
func (b Bootstrap) privateServerWith(ctx context.Context, defaults string, extra []string, do func(*sql.DB) error) error {
	sock := b.privateSocket()
	args := []string{defaults, "--datadir=" + b.DataDir, "--tmpdir=" + b.TmpDir,
		"--socket=" + sock, "--pid-file=" + filepath.Join(b.RunDir, "bootstrap.pid"),
		"--skip-networking", "--innodb-buffer-pool-size=32M"}
	if b.Engine == replication.MySQL {
		args = append(args, "--mysqlx=OFF")
	}
	srv := exec.Command(b.server(), asRoot(append(args, extra...))...)
	srv.Stdout, srv.Stderr = b.Output, b.Output
	if err := srv.Start(); err != nil {
		return fmt.Errorf("starting the bootstrap server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = srv.Process.Kill()
			if err := <-exited; err != nil {
				b.Log.Debug("The bootstrap server was killed", "error", err.Error())
			}
		}
	}()

	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", sock
	cfg.InterpolateParams = true
	cfg.Timeout = 2 * time.Second
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	db.SetMaxOpenConns(1)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err = db.PingContext(ctx); err == nil {
			break
		}
		select {
		case e := <-exited:
			stopped = true
			return fmt.Errorf("the bootstrap server exited: %w", e)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the bootstrap server did not answer on its socket: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := do(db); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "SHUTDOWN"); err != nil {
		return fmt.Errorf("shutting the bootstrap server down: %w", err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			return fmt.Errorf("the bootstrap server did not shut down cleanly: %w", err)
		}
	case <-time.After(2 * time.Minute):
		return errors.New("the bootstrap server did not stop within 2 minutes")
	}
	return nil
}

// rebuild replaces a diverged server's data with a copy of the primary's (see RebuildRequest).
// Every step can be redone: a rebuild interrupted anywhere starts over at the next start, and the
// binary logs it kept stay where they were put.
func (b Bootstrap) rebuild(ctx context.Context, req RebuildRequest) error {
	if b.Clone == nil {
		return fmt.Errorf("a rebuild was asked for at %s, but this pod cannot copy its primary (%s); rebuild it by hand (docs/runbooks.md, ScalestackShardDiverged)",
			req.RequestedAt.Format(time.RFC3339), b.Engine)
	}
	start := time.Now()
	if req.Kept == "" {
		kept, err := b.keepBinlogs(req)
		if err != nil {
			return fmt.Errorf("keeping the diverged server's binary logs: %w", err)
		}
		req.Kept = kept
		if err := writeRebuild(b.DataDir, req); err != nil {
			return err
		}
	}
	if err := os.Remove(b.Marker()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.RemoveAll(b.DataDir); err != nil {
		return fmt.Errorf("clearing the data directory: %w", err)
	}
	url, err := b.Clone.PrimaryURL()
	if err != nil {
		return fmt.Errorf("finding the primary to copy: %w", err)
	}
	b.Log.Info("Rebuilding the server from a copy of the primary", "primary", url, "errant", req.Errant, "kept", req.Kept)
	if err := b.copyPrimary(ctx, url); err != nil {
		return err
	}
	if err := os.Remove(RebuildMarker(b.DataDir)); err != nil {
		return err
	}
	b.Log.Info("Rebuilt the server from the primary", "seconds", time.Since(start).Seconds(), "kept", req.Kept)
	return nil
}

// seedable reports the primary's agent URL when a new replica should start from a copy of the
// primary rather than empty: the primary of record is another pod, its agent answers within a
// few seconds, and its server is ready. An empty replica replicates the whole binary log, which
// the primary keeps only for binlog_expire_logs_seconds; a copy needs none of it. When the primary
// is not up (the platform is being created) the replica starts empty, as the primary does.
func (b Bootstrap) seedable(ctx context.Context) (string, bool) {
	if b.Clone == nil || !b.Seed {
		return "", false
	}
	url, err := b.Clone.PrimaryURL()
	if err != nil {
		return "", false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := b.Clone.Client.Status(ctx, url)
	if err != nil || st.Role != agentapi.RolePrimary || !st.Ready {
		b.Log.Info("Starting empty: the primary is not up to be copied", "primary", url, "error", fmt.Sprint(err), "role", st.Role, "ready", st.Ready)
		return "", false
	}
	return url, true
}

// copyPrimary fills the empty data directory with a prepared copy of the primary whose agent is
// at url, records where the copy stands in the GTID history and writes the marker.
func (b Bootstrap) copyPrimary(ctx context.Context, url string) error {
	start := time.Now()
	stream, err := b.Clone.Client.Clone(ctx, url)
	if err != nil {
		return fmt.Errorf("copying the primary: %w", err)
	}
	defer func() { _ = stream.Close() }()
	if err := b.Clone.Tool.Extract(ctx, stream, b.DataDir); err != nil {
		return fmt.Errorf("copying the primary: %w", err)
	}
	state, err := stream.BinlogState()
	if err != nil {
		return fmt.Errorf("copying the primary: %w", err)
	}
	copied := time.Since(start)
	point, err := b.Clone.Tool.Prepare(ctx, b.DataDir)
	if err != nil {
		return err
	}
	executed, err := ClonedState(state, point.GTID)
	if err != nil {
		return fmt.Errorf("the copy's GTID state: %w", err)
	}
	// The copy has no binary logs: record what it holds, so that the server replicates on from
	// there and is compared with its peers by it.
	// With the server's own configuration, so that the binary log it starts is the one the server
	// reads at its start (same name and place).
	defaults, extra := "--no-defaults", []string{"--log-bin=binlog"}
	if b.ServerConfig != "" {
		defaults, extra = "--defaults-file="+b.ServerConfig, nil
	}
	err = b.privateServerWith(ctx, defaults, append(extra, "--skip-grant-tables", "--read-only=OFF"), func(db *sql.DB) error {
		for _, q := range []struct {
			stmt string
			args []any
		}{
			{"RESET MASTER", nil},
			{"SET GLOBAL gtid_binlog_state = ?", []any{executed}},
			{"SET GLOBAL gtid_slave_pos = ?", []any{point.GTID}},
		} {
			if _, err := db.ExecContext(ctx, q.stmt, q.args...); err != nil {
				return fmt.Errorf("%s: %w", q.stmt, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := b.writeMarker(); err != nil {
		return err
	}
	b.Log.Info("Copied the primary", "primary", url, "gtid", point.GTID, "copySeconds", copied.Seconds(), "seconds", time.Since(start).Seconds())
	return nil
}

// keepBinlogs moves the server's binary logs, which hold the transactions only it has, to a
// directory of the volume beside the data directory, with the request that says why.
func (b Bootstrap) keepBinlogs(req RebuildRequest) (string, error) {
	kept := filepath.Join(filepath.Dir(filepath.Clean(b.DataDir)), "diverged-"+req.RequestedAt.UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(kept, 0o750); err != nil {
		return "", err
	}
	base := req.Binlogs
	if base == "" {
		base = filepath.Join(b.DataDir, "binlog") // the name scalestack.cnf gives them
	}
	logs, err := filepath.Glob(base + ".*")
	if err != nil {
		return "", err
	}
	for _, f := range logs {
		if err := os.Rename(f, filepath.Join(kept, filepath.Base(f))); err != nil {
			return "", err
		}
	}
	data, err := json.MarshalIndent(req, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(kept, "rebuild.json"), append(data, '\n'), 0o640); err != nil {
		return "", err
	}
	b.Log.Warn("Kept the diverged server's binary logs", "dir", kept, "files", len(logs), "errant", req.Errant)
	return kept, nil
}

func lookPath(names ...string) (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/mysql/bin"} {
			if p := filepath.Join(dir, n); isExecutable(p) {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("none of %s is in the image", strings.Join(names, ", "))
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// CopySelf copies the running binary to dst (an emptyDir shared with the database image's init
// container), so the agent runs in an image that does not ship it.
func CopySelf(dst string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst+".tmp", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(dst+".tmp", dst)
}
