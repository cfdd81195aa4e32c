package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// Layout under the store's prefix, per physical shard:
//
//	shard-<n>/base/<id>/data.mbstream   the physical backup stream, uploaded in parts as it is produced
//	shard-<n>/base/<id>/manifest.json   written last: a base without it is not a backup
//
// <id> is the start time (UTC, sortable) so listing returns bases oldest first.
const (
	baseDir      = "base"
	dataObject   = "data.mbstream"
	manifestName = "manifest.json"
	// partSize bounds the memory an upload of unknown length holds (minio-go buffers one part).
	partSize = 16 << 20
)

// Manifest describes one complete full backup of a shard.
type Manifest struct {
	ID         string    `json:"id"`
	Shard      int       `json:"shard"`
	Engine     string    `json:"engine"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	// GTID is the server's gtid_binlog_pos the backup is consistent with; BinlogFile and
	// BinlogPos the binary log coordinates of the same point, where replay starts.
	GTID       string `json:"gtid"`
	BinlogFile string `json:"binlogFile,omitempty"`
	BinlogPos  uint64 `json:"binlogPos,omitempty"`
	// Size and SHA256 are of the data object, checked again before a restore uses it.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Source is the pod the backup was taken from.
	Source string `json:"source,omitempty"`
}

// BaseID is the ID of a backup started at t.
func BaseID(t time.Time) string { return t.UTC().Format("20060102T150405.000Z") }

func (s *Store) baseKey(shard int, id, name string) string {
	return s.Key(path.Join("shard-"+strconv.Itoa(shard), baseDir, id, name))
}

// WriteBase uploads a backup stream of unknown length (in parts, never staged whole), then,
// only once every byte is stored, its manifest. fill completes the manifest from what the
// producer learned while streaming (the GTID position) and is called after r reaches EOF; it may
// return an error to abandon the backup. A failure or cancellation at any point leaves no
// manifest, so the partial upload is never taken for a backup (Prune removes it later).
func (s *Store) WriteBase(ctx context.Context, m Manifest, r io.Reader, fill func(*Manifest) error) (Manifest, error) {
	if m.ID == "" {
		return m, fmt.Errorf("backup of shard %d: no ID", m.Shard)
	}
	h := sha256.New()
	info, err := s.client.PutObject(ctx, s.cfg.Bucket, s.baseKey(m.Shard, m.ID, dataObject), io.TeeReader(r, h), -1,
		minio.PutObjectOptions{PartSize: partSize, ContentType: "application/octet-stream"})
	if err != nil {
		return m, s.classify("upload of "+m.ID, err)
	}
	m.Size = info.Size
	m.SHA256 = hex.EncodeToString(h.Sum(nil))
	if fill != nil {
		if err := fill(&m); err != nil {
			return m, fmt.Errorf("backup %s of shard %d: %w", m.ID, m.Shard, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return m, err
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	if _, err := s.client.PutObject(ctx, s.cfg.Bucket, s.baseKey(m.Shard, m.ID, manifestName), bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ContentType: "application/json"}); err != nil {
		return m, s.classify("manifest of "+m.ID, err)
	}
	return m, nil
}

// Bases returns the shard's complete backups (those with a manifest), oldest first.
func (s *Store) Bases(ctx context.Context, shard int) ([]Manifest, error) {
	var out []Manifest
	for _, id := range s.baseIDs(ctx, shard) {
		if id.err != nil {
			return nil, s.classify("listing", id.err)
		}
		m, err := s.manifest(ctx, shard, id.name)
		if err != nil {
			return nil, err
		}
		if m != nil { // else an incomplete or abandoned upload
			out = append(out, *m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Newest returns the shard's newest complete backup, or nil when it has none. It reads the
// manifests newest first and stops at the first it finds (usually one listing and one read;
// known, when it is the newest, saves the read).
func (s *Store) Newest(ctx context.Context, shard int, known *Manifest) (*Manifest, error) {
	ids := s.baseIDs(ctx, shard)
	for i := len(ids) - 1; i >= 0; i-- {
		id := ids[i]
		if id.err != nil {
			return nil, s.classify("listing", id.err)
		}
		if known != nil && known.ID == id.name {
			return known, nil
		}
		m, err := s.manifest(ctx, shard, id.name)
		if err != nil {
			return nil, err
		}
		if m != nil {
			return m, nil
		}
	}
	return nil, nil
}

// manifest reads one backup's manifest; nil when the backup has none (incomplete or abandoned).
func (s *Store) manifest(ctx context.Context, shard int, id string) (*Manifest, error) {
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, s.baseKey(shard, id, manifestName), minio.GetObjectOptions{})
	if err != nil {
		return nil, s.classify("reading a manifest", err)
	}
	body, err := io.ReadAll(obj)
	_ = obj.Close()
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, nil
		}
		return nil, s.classify("reading a manifest", err)
	}
	var m Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("manifest of backup %s of shard %d: %w", id, shard, err)
	}
	return &m, nil
}

type listed struct {
	name string
	err  error
}

// baseIDs lists the IDs of every base upload of the shard, complete or not: those with at least
// one object (a listing by delimiter would also return directories an S3 gateway over a file
// system keeps after their objects are gone).
func (s *Store) baseIDs(ctx context.Context, shard int) []listed {
	prefix := s.Key(path.Join("shard-"+strconv.Itoa(shard), baseDir)) + "/"
	var out []listed
	seen := map[string]bool{}
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return append(out, listed{err: obj.Err})
		}
		id, _, ok := strings.Cut(strings.TrimPrefix(obj.Key, prefix), "/")
		if ok && id != "" && !seen[id] {
			seen[id] = true
			out = append(out, listed{name: id})
		}
	}
	return out
}

// Retention says which complete backups to keep: the newest Count, and any younger than MaxAge.
// Zero values do not limit. The newest complete backup is always kept.
type Retention struct {
	Count  int
	MaxAge time.Duration
}

// Expired returns the backups (oldest first, as Bases returns them) that retention removes.
func (r Retention) Expired(bases []Manifest, now time.Time) []Manifest {
	var out []Manifest
	for i, b := range bases {
		newerCount := len(bases) - 1 - i
		if newerCount == 0 {
			break // the newest complete backup is never removed
		}
		byCount := r.Count > 0 && newerCount >= r.Count
		byAge := r.MaxAge > 0 && now.Sub(b.FinishedAt) > r.MaxAge
		if (r.Count > 0 || r.MaxAge > 0) && (r.Count == 0 || byCount) && (r.MaxAge == 0 || byAge) {
			out = append(out, b)
		}
	}
	return out
}

// Prune removes the backups retention expires and uploads abandoned for longer than
// abandonedAfter (no manifest; one still in progress is younger than that). It returns the IDs
// removed.
func (s *Store) Prune(ctx context.Context, shard int, r Retention, abandonedAfter time.Duration, now time.Time) ([]string, error) {
	bases, err := s.Bases(ctx, shard)
	if err != nil {
		return nil, err
	}
	complete := map[string]bool{}
	for _, b := range bases {
		complete[b.ID] = true
	}
	var remove []string
	for _, b := range r.Expired(bases, now) {
		remove = append(remove, b.ID)
	}
	for _, id := range s.baseIDs(ctx, shard) {
		if id.err != nil {
			return nil, s.classify("listing", id.err)
		}
		if complete[id.name] {
			continue
		}
		started, err := time.Parse("20060102T150405.000Z", id.name)
		if err == nil && now.Sub(started) > abandonedAfter {
			remove = append(remove, id.name)
		}
	}
	for _, id := range remove {
		// The manifest goes first: a backup whose data is half deleted must not look complete.
		for _, name := range []string{manifestName, dataObject} {
			err := s.client.RemoveObject(ctx, s.cfg.Bucket, s.baseKey(shard, id, name), minio.RemoveObjectOptions{})
			if err != nil && minio.ToErrorResponse(err).Code != "NoSuchKey" {
				return nil, s.classify("removing backup "+id, err)
			}
		}
	}
	return remove, nil
}

// OpenBase streams a complete backup's data; the reader fails at EOF if the bytes differ from
// the manifest's size or SHA-256 (a corrupt or replaced object is never restored).
func (s *Store) OpenBase(ctx context.Context, m Manifest) (io.ReadCloser, error) {
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, s.baseKey(m.Shard, m.ID, dataObject), minio.GetObjectOptions{})
	if err != nil {
		return nil, s.classify("download of "+m.ID, err)
	}
	return &verifying{r: obj, c: obj, h: sha256.New(), m: m}, nil
}

type verifying struct {
	r io.Reader
	c io.Closer
	h hash.Hash
	n int64
	m Manifest
}

func (v *verifying) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.n += int64(n)
	_, _ = v.h.Write(p[:n])
	if err == io.EOF {
		if v.n != v.m.Size || hex.EncodeToString(v.h.Sum(nil)) != v.m.SHA256 {
			return n, fmt.Errorf("backup %s of shard %d: data does not match its manifest (%d bytes read, %d expected)", v.m.ID, v.m.Shard, v.n, v.m.Size)
		}
	}
	return n, err
}

func (v *verifying) Close() error { return v.c.Close() }
