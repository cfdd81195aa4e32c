package backup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is how the backup tool reaches the database it copies: over TCP as a user with the
// BACKUP privileges (RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR), and through the data
// directory, which mariadb-backup reads directly (it runs where the server's files are).
type Server struct {
	Host     string
	Port     int
	User     string
	Password string
	// Socket, when set, is used instead of Host and Port (a server with networking off).
	Socket  string
	DataDir string
}

// Tool names the engine's programs; empty fields are looked up on PATH.
type Tool struct {
	MariaBackup string // mariadb-backup (or mariabackup)
	MBStream    string // mbstream
}

func (t Tool) find(name string, alts ...string) (string, error) {
	for _, n := range append([]string{name}, alts...) {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
		// Images put the server's tools in sbin, which a container's PATH may lack.
		for _, dir := range []string{"/usr/bin", "/usr/sbin", "/usr/local/bin"} {
			if p := filepath.Join(dir, n); isExecutable(p) {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s not found (Debian's mariadb-backup package has it)", name)
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// resolve fills the tool's paths from PATH where they are empty.
func (t Tool) resolve() (Tool, error) {
	var err error
	if t.MariaBackup == "" {
		if t.MariaBackup, err = t.find("mariadb-backup", "mariabackup"); err != nil {
			return t, err
		}
	}
	if t.MBStream == "" {
		if t.MBStream, err = t.find("mbstream"); err != nil {
			return t, err
		}
	}
	return t, nil
}

// Point is where a physical backup is consistent: the server's binary log file and position
// and its GTID position at that moment.
type Point struct {
	BinlogFile string
	BinlogPos  uint64
	GTID       string
}

// binlogLine is what mariadb-backup prints when it has the consistent point (10.x and 11.x):
//
//	MySQL binlog position: filename 'binlog.000003', position '1234', GTID of the last change '0-101-42'
var binlogLine = regexp.MustCompile(`binlog position: filename '([^']*)', position '(\d+)'(?:, GTID of the last change '([^']*)')?`)

// Stream writes a physical backup of the server to w as it is produced (mariadb-backup --backup
// --stream=mbstream; only a small scratch directory is used on disk) and returns the point it is
// consistent at. The password reaches the tool through a private defaults file, never its command
// line. An error means w did not receive a complete backup.
func (t Tool) Stream(ctx context.Context, srv Server, w io.Writer) (Point, error) {
	t, err := t.resolve()
	if err != nil {
		return Point{}, err
	}
	scratch, err := os.MkdirTemp("", "scalestack-backup-")
	if err != nil {
		return Point{}, err
	}
	defer func() { _ = os.RemoveAll(scratch) }()
	defaults := filepath.Join(scratch, "client.cnf")
	if err := os.WriteFile(defaults, []byte(srv.clientConfig()), 0o600); err != nil {
		return Point{}, err
	}
	target := filepath.Join(scratch, "target")
	if err := os.Mkdir(target, 0o700); err != nil {
		return Point{}, err
	}
	cmd := exec.CommandContext(ctx, t.MariaBackup, "--defaults-extra-file="+defaults, "--backup", "--stream=mbstream",
		"--datadir="+srv.DataDir, "--target-dir="+target)
	cmd.Stdout = w
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return Point{}, ctx.Err()
		}
		return Point{}, fmt.Errorf("mariadb-backup: %w: %s", err, lastLines(stderr.String(), 5))
	}
	sub := binlogLine.FindStringSubmatch(stderr.String())
	if sub == nil {
		return Point{}, fmt.Errorf("mariadb-backup did not report its binlog position: %s", lastLines(stderr.String(), 5))
	}
	pos, _ := strconv.ParseUint(sub[2], 10, 64)
	return Point{BinlogFile: sub[1], BinlogPos: pos, GTID: sub[3]}, nil
}

// TakeFull streams a physical backup of the server into the store (uploaded as it is produced,
// never staged whole on the pod's disk) and returns its manifest, written last.
func TakeFull(ctx context.Context, store *Store, shard int, srv Server, tool Tool, source string) (Manifest, error) {
	return TakeFullAt(ctx, store, shard, srv, tool, source, time.Now())
}

// TakeFullAt is TakeFull for a backup whose ID is its start time, started.
func TakeFullAt(ctx context.Context, store *Store, shard int, srv Server, tool Tool, source string, started time.Time) (Manifest, error) {
	started = started.UTC()
	m := Manifest{ID: BaseID(started), Shard: shard, Engine: "mariadb", StartedAt: started, Source: source}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	type result struct {
		p   Point
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := tool.Stream(cctx, srv, pw)
		// The reader sees the tool's failure instead of a clean end of the stream.
		_ = pw.CloseWithError(err)
		done <- result{p, err}
	}()
	m, werr := store.WriteBase(cctx, m, pr, func(m *Manifest) error {
		// The stream is complete; the tool still has to exit cleanly for the backup to count.
		r := <-done
		if r.err != nil {
			return r.err
		}
		m.BinlogFile, m.BinlogPos, m.GTID = r.p.BinlogFile, r.p.BinlogPos, r.p.GTID
		m.FinishedAt = time.Now().UTC()
		return nil
	})
	if werr != nil {
		cancel()
		_ = pr.CloseWithError(werr)
		if r := <-done; r.err != nil && !errors.Is(r.err, context.Canceled) && !errors.Is(werr, r.err) {
			return m, fmt.Errorf("%w (%w)", werr, r.err)
		}
		return m, werr
	}
	return m, nil
}

// Extract unpacks an mbstream backup read from r into dir, which must be empty or absent.
func (t Tool) Extract(ctx context.Context, r io.Reader, dir string) error {
	t, err := t.resolve()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		return fmt.Errorf("restore target %s is not empty", dir)
	}
	x := exec.CommandContext(ctx, t.MBStream, "-x", "-C", dir)
	x.Stdin = r
	var xerr bytes.Buffer
	x.Stderr = &xerr
	if err := x.Run(); err != nil {
		return fmt.Errorf("extracting the backup: %w: %s", err, lastLines(xerr.String(), 5))
	}
	// Read to the end: mbstream may stop before the trailing bytes, and a verifying reader only
	// checks its sum there.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	return nil
}

// Prepare applies an extracted backup's redo log (mariadb-backup --prepare), so that dir is a data
// directory a server starts on, consistent at the backup's point, which it returns (from the
// backup's xtrabackup_binlog_info).
func (t Tool) Prepare(ctx context.Context, dir string) (Point, error) {
	t, err := t.resolve()
	if err != nil {
		return Point{}, err
	}
	prep := exec.CommandContext(ctx, t.MariaBackup, "--prepare", "--target-dir="+dir)
	if out, err := prep.CombinedOutput(); err != nil {
		return Point{}, fmt.Errorf("preparing the backup: %w: %s", err, lastLines(string(out), 5))
	}
	return ReadPoint(dir)
}

// ReadPoint reads the consistent point a backup recorded in its directory (xtrabackup_binlog_info:
// file, position and GTID position, separated by tabs).
func ReadPoint(dir string) (Point, error) {
	data, err := os.ReadFile(filepath.Join(dir, "xtrabackup_binlog_info"))
	if err != nil {
		return Point{}, fmt.Errorf("the backup has no binlog position: %w", err)
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return Point{}, fmt.Errorf("xtrabackup_binlog_info %q: want file, position and GTID", strings.TrimSpace(string(data)))
	}
	p := Point{BinlogFile: f[0]}
	if p.BinlogPos, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return Point{}, fmt.Errorf("xtrabackup_binlog_info position %q: %w", f[1], err)
	}
	if len(f) > 2 {
		// A position of several domains is printed with commas, possibly across fields.
		p.GTID = strings.Join(f[2:], "")
	}
	return p, nil
}

// PrepareRestore downloads a complete backup into dir (which must be empty or absent), extracts
// it and prepares it, so that dir is a data directory a server starts on, consistent at the
// manifest's GTID. Binary logs written after it are replayed separately.
func PrepareRestore(ctx context.Context, store *Store, m Manifest, dir string, tool Tool) error {
	r, err := store.OpenBase(ctx, m)
	if err != nil {
		return err
	}
	defer func() { _ = r.Close() }()
	if err := tool.Extract(ctx, r, dir); err != nil {
		return fmt.Errorf("backup %s: %w", m.ID, err)
	}
	if _, err := tool.Prepare(ctx, dir); err != nil {
		return fmt.Errorf("backup %s: %w", m.ID, err)
	}
	return nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func lastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
