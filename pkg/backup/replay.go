package backup

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/minio/minio-go/v7"
)

// GTIDPos is a GTID position: the last transaction of each replication domain.
type GTIDPos map[uint32]GTID

// GTID names a transaction: the server that first wrote it and its sequence number in its domain.
type GTID struct {
	Server uint32
	Seq    uint64
}

// ParseGTIDPos reads a MariaDB GTID position ("0-101-42,1-7-3"; empty is the empty position).
func ParseGTIDPos(s string) (GTIDPos, error) {
	out := GTIDPos{}
	for part := range strings.SplitSeq(strings.TrimSpace(s), ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		f := strings.Split(part, "-")
		if len(f) != 3 {
			return nil, fmt.Errorf("GTID %q: want domain-server-sequence", part)
		}
		d, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("GTID %q: domain: %w", part, err)
		}
		srv, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("GTID %q: server: %w", part, err)
		}
		n, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("GTID %q: sequence: %w", part, err)
		}
		if n >= out[uint32(d)].Seq {
			out[uint32(d)] = GTID{Server: uint32(srv), Seq: n}
		}
	}
	return out, nil
}

// AtOrBefore reports whether every domain of p is at or before the same domain of q: every
// transaction p names, q has too.
func (p GTIDPos) AtOrBefore(q GTIDPos) bool {
	for d, g := range p {
		if g.Seq > q[d].Seq {
			return false
		}
	}
	return true
}

// ArchivedBinlog is one archived binary log file.
type ArchivedBinlog struct {
	// Stream is the server and data directory that wrote it (binlogStream); ServerID its server.
	Stream   string
	ServerID int
	Name     string
	Size     int64
	// Archived is when the file was uploaded: after it was closed, so every event in it is older.
	Archived time.Time
	// Start is the GTID position the server had when it began the file; nil when the server did
	// not say (the file may start anywhere).
	Start GTIDPos
}

// ArchivedBinlogs lists the shard's archived binary logs of every server, each server's in the
// order it wrote them.
func (s *Store) ArchivedBinlogs(ctx context.Context, shard int) ([]ArchivedBinlog, error) {
	prefix := s.Key(path.Join("shard-"+strconv.Itoa(shard), binlogDir)) + "/"
	var out []ArchivedBinlog
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, s.classify("listing binary logs", obj.Err)
		}
		stream, name, ok := strings.Cut(strings.TrimPrefix(obj.Key, prefix), "/")
		id, idOK := parseBinlogStream(stream)
		if !ok || !idOK || strings.Contains(name, "/") {
			continue // not ours
		}
		info, err := s.client.StatObject(ctx, s.cfg.Bucket, obj.Key, minio.StatObjectOptions{})
		if err != nil {
			return nil, s.classify("reading "+name, err)
		}
		f := ArchivedBinlog{Stream: stream, ServerID: id, Name: name, Size: obj.Size, Archived: obj.LastModified}
		if v := info.UserMetadata[gtidStartMeta]; v == emptyPos {
			f.Start = GTIDPos{}
		} else if v != "" {
			if f.Start, err = ParseGTIDPos(v); err != nil {
				return nil, fmt.Errorf("archived binary log %s/%s: %w", stream, name, err)
			}
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b ArchivedBinlog) int {
		if a.Stream != b.Stream {
			return strings.Compare(a.Stream, b.Stream)
		}
		return strings.Compare(a.Name, b.Name) // <basename>.NNNNNN: zero-padded
	})
	return out, nil
}

// ReplayStep is a run of one server's consecutive binary logs (of one stream) that carries the
// history on from a GTID position.
type ReplayStep struct {
	Stream string
	Files  []ArchivedBinlog
}

// NextReplayStep picks, among the servers not yet replayed (done), the run of archived files that
// continues the history from pos the furthest: the server whose file starting at or before pos is
// followed, with no file missing, by the most recently archived one. Every server's binary log
// holds the whole history it saw (a replica logs what it applies), so after a failover the new
// primary's files continue where the old primary's stop, and replay by GTID skips what a run
// repeats. The step is not needed (ok false) when no server has a file archived after covered
// (the newest archive time replayed so far) or, with a non-zero until, when covered is after until.
// An error says that files archived later exist but none continues from pos: the history has a gap.
func NextReplayStep(files []ArchivedBinlog, pos GTIDPos, done map[string]bool, covered, until time.Time) (ReplayStep, bool, error) {
	if !until.IsZero() && covered.After(until) {
		return ReplayStep{}, false, nil
	}
	var best ReplayStep
	var bestEnd time.Time
	newer := false
	for stream, run := range byStream(files) {
		if done[stream] {
			continue
		}
		if run[len(run)-1].Archived.After(covered) {
			newer = true
		}
		// The last file that starts at or before pos (a file that cannot say might).
		from := -1
		for i, f := range run {
			if f.Start == nil || f.Start.AtOrBefore(pos) {
				from = i
			}
		}
		if from < 0 {
			continue
		}
		to := from + 1
		for to < len(run) && consecutive(run[to-1].Name, run[to].Name) {
			to++
		}
		end := run[to-1].Archived
		if !end.After(covered) {
			continue
		}
		if best.Files == nil || end.After(bestEnd) {
			best, bestEnd = ReplayStep{Stream: stream, Files: run[from:to]}, end
		}
	}
	if best.Files == nil {
		if newer {
			return ReplayStep{}, false, fmt.Errorf("no archived binary log continues the history from GTID %s: files are missing", pos)
		}
		return ReplayStep{}, false, nil
	}
	return best, true, nil
}

func byStream(files []ArchivedBinlog) map[string][]ArchivedBinlog {
	out := map[string][]ArchivedBinlog{}
	for _, f := range files {
		out[f.Stream] = append(out[f.Stream], f)
	}
	return out
}

// consecutive reports whether file b directly follows file a (binlog.000007, binlog.000008).
func consecutive(a, b string) bool {
	ab, an, ok1 := cutNumber(a)
	bb, bn, ok2 := cutNumber(b)
	return ok1 && ok2 && ab == bb && bn == an+1
}

func cutNumber(name string) (string, int, bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(name[i+1:])
	return name[:i], n, err == nil
}

// Merge returns the position with, in each domain, the later of p's and q's.
func (p GTIDPos) Merge(q GTIDPos) GTIDPos {
	out := GTIDPos{}
	for d, g := range p {
		out[d] = g
	}
	for d, g := range q {
		if g.Seq >= out[d].Seq {
			out[d] = g
		}
	}
	return out
}

// String prints the position as MariaDB does (domains in order).
func (p GTIDPos) String() string {
	domains := make([]uint32, 0, len(p))
	for d := range p {
		domains = append(domains, d)
	}
	slices.Sort(domains)
	parts := make([]string, 0, len(p))
	for _, d := range domains {
		parts = append(parts, fmt.Sprintf("%d-%d-%d", d, p[d].Server, p[d].Seq))
	}
	return strings.Join(parts, ",")
}

// ReplayResult says what a replay applied.
type ReplayResult struct {
	// Files are the files replayed, as <stream>/<name> (stream: <server_id>-<incarnation>).
	Files []string
	// GTID is the position the target is at afterwards (it logs what it replays: its binary log
	// must be on).
	GTID string
}

// Replay applies, on the server target (restored from the backup m), the shard's archived binary
// logs from the backup's GTID position on, across every server that was the shard's primary (a
// backup taken on a replica, a point in time after a failover), up to (not including) the first
// event at or after until; a zero until replays everything archived. Each file's checksum is
// verified first. Transactions keep their GTIDs, so the target's history continues the source's.
func Replay(ctx context.Context, store *Store, m Manifest, until time.Time, target Server) (ReplayResult, error) {
	files, err := store.ArchivedBinlogs(ctx, m.Shard)
	if err != nil {
		return ReplayResult{}, err
	}
	pos, err := ParseGTIDPos(m.GTID)
	if err != nil {
		return ReplayResult{}, fmt.Errorf("backup %s: %w", m.ID, err)
	}
	db, err := sql.Open("mysql", target.dsn())
	if err != nil {
		return ReplayResult{}, err
	}
	defer func() { _ = db.Close() }()
	var res ReplayResult
	done := map[string]bool{}
	covered := m.StartedAt
	for {
		step, ok, err := NextReplayStep(files, pos, done, covered, until)
		if err != nil {
			return res, err
		}
		if !ok {
			break
		}
		if err := replayStep(ctx, store, m.Shard, step, pos, until, target); err != nil {
			return res, err
		}
		for _, f := range step.Files {
			res.Files = append(res.Files, f.Stream+"/"+f.Name)
		}
		done[step.Stream] = true
		covered = step.Files[len(step.Files)-1].Archived
		if err := db.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&res.GTID); err != nil {
			return res, fmt.Errorf("reading the restored server's GTID position: %w", err)
		}
		now, err := ParseGTIDPos(res.GTID)
		if err != nil {
			return res, err
		}
		// A run that added nothing leaves a server that never recorded the backup's position
		// empty: the position only grows.
		pos = pos.Merge(now)
	}
	res.GTID = pos.String()
	return res, nil
}

func (s Server) dsn() string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = s.User, s.Password
	if s.Socket != "" {
		cfg.Net, cfg.Addr = "unix", s.Socket
	} else {
		cfg.Net, cfg.Addr = "tcp", fmt.Sprintf("%s:%d", s.Host, s.Port)
	}
	cfg.Timeout = 5 * time.Second
	return cfg.FormatDSN()
}

func (s Server) clientConfig() string {
	where := fmt.Sprintf("host=%s\nport=%d\n", s.Host, s.Port)
	if s.Socket != "" {
		where = "socket=" + s.Socket + "\n"
	}
	return fmt.Sprintf("[client]\n%suser=%s\npassword=%s\n", where, s.User, s.Password)
}

// replayStep downloads and verifies one run of files and pipes them, from pos on, through
// mariadb-binlog into the mariadb client.
func replayStep(ctx context.Context, store *Store, shard int, step ReplayStep, pos GTIDPos, until time.Time, target Server) error {
	scratch, err := os.MkdirTemp("", "scalestack-replay-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(scratch) }()
	var paths []string
	for _, f := range step.Files {
		p := filepath.Join(scratch, f.Name)
		if err := store.downloadBinlog(ctx, shard, f.Stream, f.Name, p); err != nil {
			return err
		}
		paths = append(paths, p)
	}
	defaults := filepath.Join(scratch, "client.cnf")
	if err := os.WriteFile(defaults, []byte(target.clientConfig()), 0o600); err != nil {
		return err
	}
	binlogTool, err := Tool{}.find("mariadb-binlog", "mysqlbinlog")
	if err != nil {
		return err
	}
	client, err := Tool{}.find("mariadb", "mysql")
	if err != nil {
		return err
	}
	var args []string
	if len(pos) > 0 {
		// By GTID: events of every domain after pos (what the restored server already has, and
		// what a run repeats from another server, is skipped).
		args = append(args, "--start-position="+pos.String())
	}
	if !until.IsZero() {
		// mariadb-binlog reads the time in its own time zone: run it in UTC.
		args = append(args, "--stop-datetime="+until.UTC().Format("2006-01-02 15:04:05"))
	}
	dump := exec.CommandContext(ctx, binlogTool, append(args, paths...)...)
	dump.Env = append(os.Environ(), "TZ=UTC")
	apply := exec.CommandContext(ctx, client, "--defaults-extra-file="+defaults, "--binary-mode")
	pipe, err := dump.StdoutPipe()
	if err != nil {
		return err
	}
	apply.Stdin = pipe
	var dumpErr, applyOut lockedBuffer
	dump.Stderr = &dumpErr
	apply.Stdout, apply.Stderr = &applyOut, &applyOut
	if err := apply.Start(); err != nil {
		return err
	}
	if err := dump.Run(); err != nil {
		_ = apply.Wait()
		return fmt.Errorf("reading the archived binary logs of %s: %w: %s", step.Stream, err, lastLines(dumpErr.String(), 5))
	}
	if err := apply.Wait(); err != nil {
		return fmt.Errorf("applying the archived binary logs of %s: %w: %s", step.Stream, err, lastLines(applyOut.String(), 5))
	}
	return nil
}

// ObsoleteBinlogs returns the archived files that no restore from a backup at or after oldest
// (the oldest complete backup kept) can need: those whose next file in the same stream starts at
// or before oldest, so that every transaction they hold is in that backup already. A stream's
// newest file, and a file whose successor cannot say where it starts, are kept.
func ObsoleteBinlogs(files []ArchivedBinlog, oldest GTIDPos) []ArchivedBinlog {
	var out []ArchivedBinlog
	for _, run := range byStream(files) {
		for i := 0; i+1 < len(run); i++ {
			next := run[i+1]
			if !consecutive(run[i].Name, next.Name) || next.Start == nil || !next.Start.AtOrBefore(oldest) {
				continue
			}
			out = append(out, run[i])
		}
	}
	slices.SortFunc(out, func(a, b ArchivedBinlog) int { return strings.Compare(a.Stream+"/"+a.Name, b.Stream+"/"+b.Name) })
	return out
}

// PruneBinlogs removes the shard's archived binary logs that the oldest complete backup kept
// makes obsolete (ObsoleteBinlogs), after retention removed older backups: the archive then
// holds what a restore to any time since that backup needs, and no more. Nothing is removed
// while the shard has no complete backup. It returns the files removed, as <stream>/<name>.
func (s *Store) PruneBinlogs(ctx context.Context, shard int) ([]string, error) {
	bases, err := s.Bases(ctx, shard)
	if err != nil || len(bases) == 0 {
		return nil, err
	}
	oldest, err := ParseGTIDPos(bases[0].GTID)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", bases[0].ID, err)
	}
	files, err := s.ArchivedBinlogs(ctx, shard)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, f := range ObsoleteBinlogs(files, oldest) {
		err := s.client.RemoveObject(ctx, s.cfg.Bucket, s.binlogPrefix(shard, f.Stream)+f.Name, minio.RemoveObjectOptions{})
		if err != nil && minio.ToErrorResponse(err).Code != "NoSuchKey" {
			return removed, s.classify("removing archived binary log "+f.Name, err)
		}
		removed = append(removed, f.Stream+"/"+f.Name)
	}
	return removed, nil
}
