package backup

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// Binary logs are archived per server and data directory (its incarnation), since every server
// numbers its own files, and a server whose data directory was made again (a rebuild, a copy of
// the primary, a claim deleted) starts again at file 1:
//
//	shard-<n>/binlog/<server_id>-<incarnation>/<file name>   with the file's SHA-256 and the GTID
//	                                                       position it starts at in the object's
//	                                                       metadata
//
// A server that cannot name its incarnation archives to shard-<n>/binlog/<server_id>/ (as
// archives written before incarnations did).
const (
	binlogDir     = "binlog"
	gtidStartMeta = "Gtid-Start"
	// emptyPos stands for the empty GTID position in metadata, which drops empty values.
	emptyPos = "empty"
)

// Archiver uploads a shard server's closed binary logs and purges them from the server once they
// are archived.
type Archiver struct {
	Store *Store
	Shard int
	// DB is the server, as a user who may SHOW BINARY LOGS, FLUSH and PURGE BINARY LOGS.
	DB *sql.DB
	// Dir is where the server writes its binary logs (the directory of @@log_bin_basename as the
	// archiver sees it: the same volume, mounted in the archiver's container).
	Dir string
	// KeepFor keeps a closed, archived file on the server until it is this old (by its last
	// write), so that replicas that fell behind, and a primary demoted and re-pointed, still find
	// it. Zero purges archived files at once (beyond Purge's keep).
	KeepFor time.Duration
	// Incarnation names the server's data directory (when it was made, see the bootstrap's
	// marker), so that a server made again never overwrites its earlier files in the archive.
	Incarnation string

	// current is the file being written, with its size when this archiver started it (its
	// header events; 0 when another started it) and when it was first seen: it is rotated once
	// it has grown past that size and is older than Archive's rotateAfter.
	current     string
	currentSize int64
	currentAt   time.Time
	now         func() time.Time
}

// binlogPrefix is where a stream of binary logs (one server's data directory) is archived.
func (s *Store) binlogPrefix(shard int, stream string) string {
	return s.Key(path.Join("shard-"+strconv.Itoa(shard), binlogDir, stream)) + "/"
}

// binlogStream names the files of server serverID's data directory incarnation in the archive.
func binlogStream(serverID int, incarnation string) string {
	if incarnation == "" {
		return strconv.Itoa(serverID)
	}
	return strconv.Itoa(serverID) + "-" + incarnation
}

// parseBinlogStream reads a stream's server_id ("<server_id>" or "<server_id>-<incarnation>").
func parseBinlogStream(stream string) (int, bool) {
	id, _, _ := strings.Cut(stream, "-")
	n, err := strconv.Atoi(id)
	return n, err == nil && n >= 0
}

// stream is where this archiver's server archives.
func (a *Archiver) stream(serverID int) string { return binlogStream(serverID, a.Incarnation) }

type binlogFile struct {
	name string
	size int64
}

func (a *Archiver) serverID(ctx context.Context) (int, error) {
	var id int
	err := a.DB.QueryRowContext(ctx, "SELECT @@server_id").Scan(&id)
	return id, err
}

// binlogs lists the server's binary logs, oldest first; the last one is the file being written.
func (a *Archiver) binlogs(ctx context.Context) ([]binlogFile, error) {
	rows, err := a.DB.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, fmt.Errorf("SHOW BINARY LOGS: %w", err)
	}
	defer func() { _ = rows.Close() }()
	cols, _ := rows.Columns()
	var out []binlogFile
	for rows.Next() {
		vals := make([]any, len(cols))
		var name string
		var size int64
		vals[0], vals[1] = &name, &size
		for i := 2; i < len(cols); i++ {
			vals[i] = new(sql.RawBytes)
		}
		if err := rows.Scan(vals...); err != nil {
			return nil, err
		}
		out = append(out, binlogFile{name: name, size: size})
	}
	return out, rows.Err()
}

// Archive uploads every closed binary log not yet in the store and returns the names uploaded.
// When rotateAfter is positive and the file being written has events and is older than that,
// the server first starts a new file (FLUSH BINARY LOGS), so no committed transaction waits
// longer than about rotateAfter plus one pass to be archived: that bounds the RPO.
func (a *Archiver) Archive(ctx context.Context, rotateAfter time.Duration) ([]string, error) {
	id, err := a.serverID(ctx)
	if err != nil {
		return nil, err
	}
	files, err := a.binlogs(ctx)
	if err != nil {
		return nil, err
	}
	if rotateAfter > 0 && len(files) > 0 {
		now := time.Now
		if a.now != nil {
			now = a.now
		}
		cur := files[len(files)-1]
		if cur.name != a.current {
			// Not rotated by this archiver: whatever it holds may be transactions (after a
			// restart of the agent, at most one needless rotation).
			a.current, a.currentSize, a.currentAt = cur.name, 0, now()
		} else if cur.size > a.currentSize && now().Sub(a.currentAt) >= rotateAfter {
			// It has transactions the store does not have, and has had them for long enough.
			if _, err := a.DB.ExecContext(ctx, "FLUSH BINARY LOGS"); err != nil {
				return nil, fmt.Errorf("FLUSH BINARY LOGS: %w", err)
			}
			if files, err = a.binlogs(ctx); err != nil {
				return nil, err
			}
			cur = files[len(files)-1]
			a.current, a.currentSize, a.currentAt = cur.name, cur.size, now()
		}
	}
	archived, err := a.Store.archivedBinlogs(ctx, a.Shard, a.stream(id))
	if err != nil {
		return nil, err
	}
	var uploaded []string
	for _, f := range files[:max(len(files)-1, 0)] {
		if size, ok := archived[f.name]; ok && size == f.size {
			continue
		}
		// Where the file starts in the GTID history lets a restore pick the files it needs among
		// every server's; a server that cannot say (MySQL) leaves it out, and a restore reads
		// all of that server's files.
		var start sql.NullString
		if err := a.DB.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, 4)", f.name).Scan(&start); err != nil {
			start = sql.NullString{}
		}
		gtidStart := start.String
		if start.Valid && gtidStart == "" {
			gtidStart = emptyPos // the server's first file: nothing before it
		}
		if err := a.Store.uploadBinlog(ctx, a.Shard, a.stream(id), filepath.Join(a.Dir, f.name), gtidStart); err != nil {
			return uploaded, err
		}
		uploaded = append(uploaded, f.name)
	}
	return uploaded, nil
}

// Purge removes from the server the binary logs that are archived, keeping the newest keep
// closed files on disk (replicas that fell a little behind still read them). It never purges a
// file that is not archived, nor one after such a file. It returns the file the server now
// starts with, or "" when nothing was purged.
func (a *Archiver) Purge(ctx context.Context, keep int) (string, error) {
	id, err := a.serverID(ctx)
	if err != nil {
		return "", err
	}
	files, err := a.binlogs(ctx)
	if err != nil {
		return "", err
	}
	archived, err := a.Store.archivedBinlogs(ctx, a.Shard, a.stream(id))
	if err != nil {
		return "", err
	}
	closed := files[:max(len(files)-1, 0)]
	// to is the first file that stays: PURGE BINARY LOGS TO removes every file before it.
	to := 0
	now := time.Now
	if a.now != nil {
		now = a.now
	}
	for to < len(closed)-keep {
		if size, ok := archived[closed[to].name]; !ok || size != closed[to].size {
			break
		}
		if a.KeepFor > 0 {
			st, err := os.Stat(filepath.Join(a.Dir, closed[to].name))
			if err != nil || now().Sub(st.ModTime()) < a.KeepFor {
				break
			}
		}
		to++
	}
	if to == 0 {
		return "", nil
	}
	name := files[to].name
	if _, err := a.DB.ExecContext(ctx, "PURGE BINARY LOGS TO ?", name); err != nil {
		return "", fmt.Errorf("PURGE BINARY LOGS TO %s: %w", name, err)
	}
	return name, nil
}

func (s *Store) archivedBinlogs(ctx context.Context, shard int, stream string) (map[string]int64, error) {
	prefix := s.binlogPrefix(shard, stream)
	out := map[string]int64{}
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, s.classify("listing binary logs", obj.Err)
		}
		out[strings.TrimPrefix(obj.Key, prefix)] = obj.Size
	}
	return out, nil
}

func (s *Store) uploadBinlog(ctx context.Context, shard int, stream, file, gtidStart string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	key := s.binlogPrefix(shard, stream) + filepath.Base(file)
	_, err = s.client.PutObject(ctx, s.cfg.Bucket, key, f, size, minio.PutObjectOptions{
		ContentType:  "application/octet-stream",
		UserMetadata: map[string]string{"Sha256": hex.EncodeToString(h.Sum(nil)), gtidStartMeta: gtidStart},
	})
	if err != nil {
		return s.classify("archiving "+filepath.Base(file), err)
	}
	return nil
}

func (s *Store) downloadBinlog(ctx context.Context, shard int, stream, name, dst string) error {
	key := s.binlogPrefix(shard, stream) + name
	info, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return s.classify("reading "+name, err)
	}
	if err := s.client.FGetObject(ctx, s.cfg.Bucket, key, dst, minio.GetObjectOptions{}); err != nil {
		return s.classify("downloading "+name, err)
	}
	f, err := os.Open(dst)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if want := info.UserMetadata["Sha256"]; want != "" && want != hex.EncodeToString(h.Sum(nil)) {
		return fmt.Errorf("archived binary log %s does not match its checksum", name)
	}
	return nil
}
