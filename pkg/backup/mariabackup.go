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
	DataDir  string
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
	}
	return "", fmt.Errorf("%s not found on PATH (Debian's mariadb-backup package has it)", name)
}

// binlogLine is what mariadb-backup prints when it has the consistent point (10.x and 11.x):
//
//	MySQL binlog position: filename 'binlog.000003', position '1234', GTID of the last change '0-101-42'
var binlogLine = regexp.MustCompile(`binlog position: filename '([^']*)', position '(\d+)'(?:, GTID of the last change '([^']*)')?`)

// TakeFull streams a physical backup of the server into the store (mariadb-backup --backup
// --stream=mbstream, uploaded as it is produced; only a small scratch directory is used on the
// pod's disk) and returns its manifest, written last. The password reaches the tool through a
// private defaults file, never its command line.
func TakeFull(ctx context.Context, store *Store, shard int, srv Server, tool Tool, source string) (Manifest, error) {
	bin := tool.MariaBackup
	if bin == "" {
		var err error
		if bin, err = tool.find("mariadb-backup", "mariabackup"); err != nil {
			return Manifest{}, err
		}
	}
	scratch, err := os.MkdirTemp("", "scalestack-backup-")
	if err != nil {
		return Manifest{}, err
	}
	defer func() { _ = os.RemoveAll(scratch) }()
	defaults := filepath.Join(scratch, "client.cnf")
	cnf := fmt.Sprintf("[client]\nhost=%s\nport=%d\nuser=%s\npassword=%s\n", srv.Host, srv.Port, srv.User, srv.Password)
	if err := os.WriteFile(defaults, []byte(cnf), 0o600); err != nil {
		return Manifest{}, err
	}
	target := filepath.Join(scratch, "target")
	if err := os.Mkdir(target, 0o700); err != nil {
		return Manifest{}, err
	}
	started := time.Now().UTC()
	m := Manifest{ID: BaseID(started), Shard: shard, Engine: "mariadb", StartedAt: started, Source: source}

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(cctx, bin, "--defaults-extra-file="+defaults, "--backup", "--stream=mbstream",
		"--datadir="+srv.DataDir, "--target-dir="+target)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return m, err
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return m, fmt.Errorf("starting %s: %w", bin, err)
	}
	m, werr := store.WriteBase(cctx, m, stdout, func(m *Manifest) error {
		// The stream is complete; the tool still has to exit cleanly for the backup to count.
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("mariadb-backup: %w: %s", err, lastLines(stderr.String(), 5))
		}
		sub := binlogLine.FindStringSubmatch(stderr.String())
		if sub == nil {
			return fmt.Errorf("mariadb-backup did not report its binlog position: %s", lastLines(stderr.String(), 5))
		}
		m.BinlogFile = sub[1]
		m.BinlogPos, _ = strconv.ParseUint(sub[2], 10, 64)
		m.GTID = sub[3]
		m.FinishedAt = time.Now().UTC()
		return nil
	})
	if werr != nil {
		cancel()
		_ = cmd.Wait()
		if msg := lastLines(stderr.String(), 3); msg != "" && !errors.Is(werr, context.Canceled) {
			return m, fmt.Errorf("%w (mariadb-backup: %s)", werr, msg)
		}
		return m, werr
	}
	return m, nil
}

// PrepareRestore downloads a complete backup into dir (which must be empty or absent), extracts
// it and applies its redo log (mariadb-backup --prepare), so that dir is a data directory a
// server starts on, consistent at the manifest's GTID. Binary logs written after it are replayed
// separately.
func PrepareRestore(ctx context.Context, store *Store, m Manifest, dir string, tool Tool) error {
	mbstream := tool.MBStream
	if mbstream == "" {
		var err error
		if mbstream, err = tool.find("mbstream"); err != nil {
			return err
		}
	}
	bin := tool.MariaBackup
	if bin == "" {
		var err error
		if bin, err = tool.find("mariadb-backup", "mariabackup"); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		return fmt.Errorf("restore target %s is not empty", dir)
	}
	r, err := store.OpenBase(ctx, m)
	if err != nil {
		return err
	}
	defer func() { _ = r.Close() }()
	x := exec.CommandContext(ctx, mbstream, "-x", "-C", dir)
	x.Stdin = r
	var xerr bytes.Buffer
	x.Stderr = &xerr
	if err := x.Run(); err != nil {
		return fmt.Errorf("extracting backup %s: %w: %s", m.ID, err, lastLines(xerr.String(), 5))
	}
	// Read to EOF through the verifying reader: mbstream may stop before the trailing bytes.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	prep := exec.CommandContext(ctx, bin, "--prepare", "--target-dir="+dir)
	if out, err := prep.CombinedOutput(); err != nil {
		return fmt.Errorf("preparing backup %s: %w: %s", m.ID, err, lastLines(string(out), 5))
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
