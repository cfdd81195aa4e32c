package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/scalestack/scalestack/internal/localservers"
)

func TestRetentionKeepsTheNewestAndWhatEitherLimitKeeps(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	bases := func(agesInDays ...int) []Manifest {
		var out []Manifest
		for _, d := range agesInDays {
			at := now.Add(-time.Duration(d) * 24 * time.Hour)
			out = append(out, Manifest{ID: BaseID(at), FinishedAt: at})
		}
		return out
	}
	ids := func(ms []Manifest) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	all := bases(9, 7, 5, 3, 1) // oldest first
	cases := []struct {
		name string
		r    Retention
		want []Manifest
	}{
		{"no limits keep everything", Retention{}, nil},
		{"count 2", Retention{Count: 2}, all[:3]},
		{"age 4d", Retention{MaxAge: 4 * 24 * time.Hour}, all[:3]},
		{"count 1 and age 6d: removed only when both say so", Retention{Count: 1, MaxAge: 6 * 24 * time.Hour}, all[:2]},
		{"age shorter than every backup still keeps the newest", Retention{MaxAge: time.Hour}, all[:4]},
		{"count 0 with age: count does not limit", Retention{MaxAge: 8 * 24 * time.Hour}, all[:1]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ids(tc.r.Expired(all, now))
			if want := ids(tc.want); !equal(got, want) {
				t.Errorf("Expired = %v, want %v", got, want)
			}
		})
	}
	if got := (Retention{Count: 1, MaxAge: time.Nanosecond}).Expired(bases(3), now); len(got) != 0 {
		t.Errorf("the only backup was expired: %v", ids(got))
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// failingAfter yields n random bytes, then fails: a backup tool killed mid-stream.
type failingAfter struct{ n int }

func (f *failingAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("mariadb-backup: killed")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	f.n -= len(p)
	_, _ = rand.Read(p)
	return len(p), nil
}

// TestAnInterruptedBackupIsNeverABackup runs against a real SeaweedFS: a stream that dies after
// 20 MiB (more than one part) and one whose context is cancelled leave no backup; the next one
// completes and reads back verified; Prune removes the abandoned uploads and never the only
// complete backup; a corrupted object fails verification.
func TestAnInterruptedBackupIsNeverABackup(t *testing.T) {
	t.Parallel()
	st, _ := testStore(t, "ns/demo")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now().Add(-time.Hour)

	if _, err := st.WriteBase(ctx, Manifest{ID: BaseID(t0), Shard: 1}, &failingAfter{n: 20 << 20}, nil); err == nil {
		t.Fatal("a stream that failed mid-way was stored as a backup")
	}
	cctx, ccancel := context.WithCancel(ctx)
	fillCalled := false
	_, err := st.WriteBase(cctx, Manifest{ID: BaseID(t0.Add(time.Minute)), Shard: 1}, bytes.NewReader(make([]byte, 1<<20)), func(*Manifest) error {
		fillCalled = true
		ccancel() // the agent is stopped after the data is uploaded, before the manifest
		return nil
	})
	if err == nil || !fillCalled {
		t.Fatalf("cancelled before the manifest: err = %v, fill called %v", err, fillCalled)
	}
	if bases, err := st.Bases(ctx, 1); err != nil || len(bases) != 0 {
		t.Fatalf("after two interrupted uploads: bases = %+v, err = %v", bases, err)
	}
	if n, err := st.Newest(ctx, 1, nil); err != nil || n != nil {
		t.Fatalf("after two interrupted uploads: newest = %+v, err = %v", n, err)
	}

	data := make([]byte, 3<<20+17)
	_, _ = rand.Read(data)
	m, err := st.WriteBase(ctx, Manifest{ID: BaseID(t0.Add(2 * time.Minute)), Shard: 1, StartedAt: t0, FinishedAt: t0}, bytes.NewReader(data), func(m *Manifest) error {
		m.GTID = "0-101-42"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	bases, err := st.Bases(ctx, 1)
	if err != nil || len(bases) != 1 || bases[0].GTID != "0-101-42" || bases[0].Size != int64(len(data)) {
		t.Fatalf("bases = %+v, err = %v", bases, err)
	}
	// A newer upload abandoned after its data (the tool failed at the end): no manifest, so
	// Newest passes over it.
	if _, err := st.WriteBase(ctx, Manifest{ID: BaseID(t0.Add(3 * time.Minute)), Shard: 1}, bytes.NewReader(make([]byte, 1<<10)), func(*Manifest) error {
		return errors.New("mariadb-backup exited 1")
	}); err == nil {
		t.Fatal("a backup whose tool failed was stored")
	}
	if n, err := st.Newest(ctx, 1, nil); err != nil || n == nil || n.ID != m.ID {
		t.Fatalf("newest = %+v, err = %v, want %s", n, err, m.ID)
	}
	if n, err := st.Newest(ctx, 1, &m); err != nil || n != &m {
		t.Fatalf("newest with the known manifest = %+v, err = %v", n, err)
	}
	if other, _ := st.Bases(ctx, 0); len(other) != 0 {
		t.Errorf("shard 0 lists shard 1's backup: %+v", other)
	}
	r, err := st.OpenBase(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	_ = r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, err %v", len(got), err)
	}

	removed, err := st.Prune(ctx, 1, Retention{Count: 1, MaxAge: time.Nanosecond}, 10*time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The failed stream's multipart upload was aborted by the client (nothing of it is listed);
	// the cancelled and the failed ones' data objects stayed without a manifest, and Prune removes them.
	if want := []string{BaseID(t0.Add(time.Minute)), BaseID(t0.Add(3 * time.Minute))}; !equal(removed, want) {
		t.Errorf("Prune removed %v, want the abandoned upload %v", removed, want)
	}
	if bases, _ := st.Bases(ctx, 1); len(bases) != 1 {
		t.Fatalf("Prune removed the only complete backup: %+v", bases)
	}
	if left := st.baseIDs(ctx, 1); len(left) != 1 {
		t.Errorf("after Prune the shard holds %d uploads, want 1", len(left))
	}

	// Replace the data behind the manifest: the restore's reader refuses it.
	if _, err := st.client.PutObject(ctx, "backups", st.baseKey(1, m.ID, dataObject), bytes.NewReader(data[1:]), int64(len(data)-1), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err = st.OpenBase(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); err == nil {
		t.Error("a corrupted backup read back without an error")
	}
	_ = r.Close()
}

// testStore starts a SeaweedFS for the test and opens its bucket "backups" under prefix, created.
func testStore(t *testing.T, prefix string) (*Store, StoreConfig) {
	t.Helper()
	s3 := localservers.StartS3(t)
	cfg := StoreConfig{Endpoint: s3.Endpoint, Bucket: "backups", Prefix: prefix, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, Insecure: true}
	st, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := st.CreateBucket(ctx); err != nil {
		t.Fatalf("creating the bucket: %v", err)
	}
	return st, cfg
}
