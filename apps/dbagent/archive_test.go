package dbagent

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pkg/backup"
)

// keyFiles writes an access key as the mounted credentials Secret holds it.
func keyFiles(t *testing.T, id, secret string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	idFile, secretFile := filepath.Join(dir, "accessKeyId"), filepath.Join(dir, "secretAccessKey")
	for f, v := range map[string]string{idFile: id, secretFile: secret} {
		if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return idFile, secretFile
}

// The primary's agent archives every closed binary log to a real S3-compatible store and purges a
// file from the server only once it is there; wrong credentials and a missing bucket are reported
// with their reason, and archiving resumes when the key is fixed. Replicas never archive.
func TestThePrimaryArchivesItsBinaryLogs(t *testing.T) {
	ctx := context.Background()
	s3 := localservers.StartS3(t)
	store, err := backup.Open(backup.StoreConfig{Endpoint: s3.Endpoint, Bucket: "backups", Prefix: "shop/demo", Insecure: true,
		AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	shard, c := testShard(t)
	p, r0 := shard["s-primary-0"], shard["s-replicas-0"]
	idFile, secretFile := keyFiles(t, s3.AccessKey, "not the secret")
	cfg := &ArchiveConfig{Store: backup.StoreConfig{Endpoint: s3.Endpoint, Bucket: "backups", Prefix: "shop/demo", Insecure: true},
		AccessKeyFile: idFile, SecretKeyFile: secretFile, Interval: time.Second}
	for _, m := range []*member{p, r0} {
		m.agent.cfg.Archive = cfg
	}
	reason := func(m *member) string {
		m.agent.archiveOnce(ctx)
		st, err := c.Status(ctx, m.url)
		if err != nil {
			t.Fatal(err)
		}
		if st.Archive == nil {
			return "none"
		}
		return st.Archive.Reason
	}
	if got := reason(p); got != backup.ReasonCredentialsRejected {
		t.Fatalf("wrong secret: reason %q", got)
	}
	if err := os.WriteFile(secretFile, []byte(s3.SecretKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := reason(p); got != backup.ReasonBucketMissing {
		t.Fatalf("no bucket: reason %q", got)
	}
	if err := store.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	if got := reason(r0); got != "none" {
		t.Fatalf("a replica reports archiving: %q", got)
	}

	// Writes, rotations, and every closed file in the store with the server keeping only two.
	root := p.server.DB(t)
	for i := range 6 {
		if err := write(appDB(t, p), i*10, i*10+10); err != nil {
			t.Fatal(err)
		}
		if _, err := root.Exec("FLUSH BINARY LOGS"); err != nil {
			t.Fatal(err)
		}
	}
	if got := reason(p); got != "" {
		t.Fatalf("archiving failed: %q", got)
	}
	mc, err := minio.New(s3.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s3.AccessKey, s3.SecretKey, ""), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	var archived []string
	for obj := range mc.ListObjects(ctx, "backups", minio.ListObjectsOptions{Prefix: "shop/demo/shard-1/binlog/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		archived = append(archived, filepath.Base(obj.Key))
	}
	onServer, err := binaryLogs(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("archived %v; the server keeps %v", archived, onServer)
	if len(archived) < 6 {
		t.Fatalf("only %d files archived: %v", len(archived), archived)
	}
	// Two closed files and the one being written stay; every purged one is archived.
	if len(onServer) != 3 {
		t.Fatalf("the server keeps %v", onServer)
	}
	have := map[string]bool{}
	for _, a := range archived {
		have[a] = true
	}
	for n := 1; fmt.Sprintf("test-bin.%06d", n) < onServer[0]; n++ {
		if f := fmt.Sprintf("test-bin.%06d", n); !have[f] {
			t.Fatalf("%s was purged from the server but is not archived", f)
		}
	}
	st, err := c.Status(ctx, p.url)
	if err != nil || st.Archive == nil || st.Archive.LastSuccess == nil || st.Archive.LastFile == "" {
		t.Fatalf("status %+v %v", st.Archive, err)
	}

	// The file being written is closed once it has held transactions for the interval.
	if err := write(appDB(t, p), 100, 101); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the current file rotated and archived", 30*time.Second, func() error {
		before := st.Archive.LastFile
		p.agent.archiveOnce(ctx)
		now, err := c.Status(ctx, p.url)
		if err != nil {
			return err
		}
		if now.Archive.LastFile == before {
			return fmt.Errorf("still %s", before)
		}
		return nil
	})
}

// binaryLogs names the server's binary logs, oldest first (SHOW BINARY LOGS).
func binaryLogs(db *sql.DB) ([]string, error) {
	rows, err := db.Query("SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var name string
		dest := []any{&name}
		for len(dest) < len(cols) {
			dest = append(dest, new(any))
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	return names, rows.Err()
}
