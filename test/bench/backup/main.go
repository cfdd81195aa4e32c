// Command backup (make bench-backup) measures a full backup and a restore of one shard, a real
// MariaDB holding -mb megabytes of incompressible rows, into a real SeaweedFS on this machine, each
// side by side with its floors in the same run:
//
//   - backup: backup.TakeFull (mariadb-backup streamed into the store in parts, SHA-256, manifest
//     last) against the tool alone (mariadb-backup --stream into io.Discard) and the store alone
//     (the same number of random bytes uploaded the same way);
//   - restore: backup.PrepareRestore (download verified, mbstream -x, mariadb-backup --prepare)
//     against the download alone (verified, into io.Discard).
//
// It prints MB/s and the ratios; docs/benchmarks.md records them.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/pkg/backup"
)

func main() {
	mb := flag.Int("mb", 256, "megabytes of rows in the shard")
	flag.Parse()
	s := localservers.NewSession("bench-backup")
	defer s.Close()
	if err := run(s, *mb); err != nil {
		s.Fatal(err)
	}
}

type result struct {
	name  string
	bytes int64
	took  time.Duration
}

func (r result) mbps() float64 { return float64(r.bytes) / 1e6 / r.took.Seconds() }

func run(s *localservers.Session, mb int) error {
	ctx := context.Background()
	fmt.Printf("starting MariaDB and SeaweedFS, loading %d MB of rows\n", mb)
	db := localservers.StartMariaDB(s)
	s3 := localservers.StartS3(s)
	st, err := backup.Open(backup.StoreConfig{Endpoint: s3.Endpoint, Bucket: "bench", Insecure: true, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if err != nil {
		return err
	}
	if err := st.CreateBucket(ctx); err != nil {
		return err
	}
	if err := load(s, db, mb); err != nil {
		return err
	}
	srv := backup.Server{Host: "127.0.0.1", Port: db.Port, User: "root", DataDir: db.DataDir()}

	var results []result
	timed := func(name string, f func() (int64, error)) error {
		start := time.Now()
		n, err := f()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, result{name, n, time.Since(start)})
		fmt.Printf("  %-44s %8.1f MB in %6.2f s: %6.1f MB/s\n", name, float64(n)/1e6, time.Since(start).Seconds(), results[len(results)-1].mbps())
		return nil
	}
	var m backup.Manifest
	steps := []struct {
		name string
		f    func() (int64, error)
	}{
		{"tool alone: mariadb-backup --stream > discard", func() (int64, error) {
			c := &counter{}
			_, err := backup.Tool{}.Stream(ctx, srv, c)
			return c.n, err
		}},
		{"full backup: TakeFull into the store", func() (int64, error) {
			var err error
			m, err = backup.TakeFull(ctx, st, 0, srv, backup.Tool{}, "bench")
			return m.Size, err
		}},
		{"store alone: as many random bytes uploaded", func() (int64, error) {
			r := io.LimitReader(rand.Reader, m.Size)
			up, err := st.WriteBase(ctx, backup.Manifest{ID: backup.BaseID(time.Now()), Shard: 9}, r, nil)
			return up.Size, err
		}},
		{"download alone: verified, > discard", func() (int64, error) {
			r, err := st.OpenBase(ctx, m)
			if err != nil {
				return 0, err
			}
			defer func() { _ = r.Close() }()
			return io.Copy(io.Discard, r)
		}},
		{"restore: download, extract, prepare", func() (int64, error) {
			dir := filepath.Join(s.TempDir(), "restored")
			return m.Size, backup.PrepareRestore(ctx, st, m, dir, backup.Tool{})
		}},
	}
	for _, step := range steps {
		if err := timed(step.name, step.f); err != nil {
			return err
		}
	}
	by := map[string]result{}
	for _, r := range results {
		by[r.name] = r
	}
	tool, full, store := by[steps[0].name], by[steps[1].name], by[steps[2].name]
	down, restore := by[steps[3].name], by[steps[4].name]
	fmt.Printf("\nbackup of %.1f MB: %.1f MB/s; tool alone %.1f MB/s, store alone %.1f MB/s: the backup runs at %.2f of the slower floor\n",
		float64(full.bytes)/1e6, full.mbps(), tool.mbps(), store.mbps(), full.mbps()/min(tool.mbps(), store.mbps()))
	fmt.Printf("restore of %.1f MB: %.1f MB/s; download alone %.1f MB/s: the restore runs at %.2f of the download\n",
		float64(restore.bytes)/1e6, restore.mbps(), down.mbps(), restore.mbps()/down.mbps())
	return nil
}

// load fills app.rows with about mb megabytes of random 1 KiB values, doubling the table.
func load(s *localservers.Session, m *localservers.MariaDB, mb int) error {
	db := m.DB(s)
	for _, q := range []string{
		"CREATE DATABASE app",
		"CREATE TABLE app.rows (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARBINARY(1024)) ENGINE=InnoDB",
		"INSERT INTO app.rows (v) VALUES (RANDOM_BYTES(1024))",
	} {
		if _, err := db.Exec(q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	for rows := 1; rows < mb*1024; rows *= 2 {
		if _, err := db.Exec("INSERT INTO app.rows (v) SELECT RANDOM_BYTES(1024) FROM app.rows"); err != nil {
			return err
		}
	}
	return nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
