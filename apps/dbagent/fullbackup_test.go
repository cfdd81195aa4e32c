package dbagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pkg/agentapi"
	"github.com/scalestack/scalestack/pkg/backup"
)

// A replica's agent takes a full backup into a real S3-compatible store when asked: in the
// background, one at a time, consistent with the primary's GTID position, and the primary's agent
// then reports it as the shard's newest. A second backup with retention count 1 removes the first;
// a backup with a rejected key fails with that reason and leaves the complete one alone.
func TestAReplicaTakesAFullBackup(t *testing.T) {
	ctx := context.Background()
	s3 := localservers.StartS3(t)
	sc := backup.StoreConfig{Endpoint: s3.Endpoint, Bucket: "backups", Prefix: "shop/demo", Insecure: true}
	open := sc
	open.AccessKey, open.SecretKey = s3.AccessKey, s3.SecretKey
	store, err := backup.Open(open)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	shard, c := testShard(t)
	p, r0 := shard["s-primary-0"], shard["s-replicas-0"]
	idFile, secretFile := keyFiles(t, s3.AccessKey, s3.SecretKey)
	cfg := &ArchiveConfig{Store: sc, AccessKeyFile: idFile, SecretKeyFile: secretFile, Interval: time.Minute}
	for _, m := range shard {
		m.agent.cfg.Archive = cfg
	}
	if err := write(appDB(t, p), 0, 50); err != nil {
		t.Fatal(err)
	}
	hasRows(t, r0, 50)
	var primaryPos string
	if err := p.server.DB(t).QueryRow("SELECT @@GLOBAL.gtid_binlog_pos").Scan(&primaryPos); err != nil {
		t.Fatal(err)
	}

	keep1 := agentapi.BackupRequest{Retention: agentapi.Retention{Count: 1}, Why: "test"}
	first := takeBackup(t, c, r0, keep1)
	if first.Source != r0.pod || first.Size == 0 {
		t.Fatalf("backup %+v", first)
	}
	if first.GTID != primaryPos {
		t.Fatalf("the replica's backup is consistent at %q, the primary (no writes since) is at %q", first.GTID, primaryPos)
	}
	bases, err := store.Bases(ctx, 1)
	if err != nil || len(bases) != 1 || bases[0].ID != first.ID {
		t.Fatalf("bases %+v, err %v", bases, err)
	}
	p.agent.archiveOnce(ctx)
	if st, err := c.Status(ctx, p.url); err != nil || st.Backup == nil || st.Backup.Newest == nil || st.Backup.Newest.ID != first.ID {
		t.Fatalf("the primary reports %+v (err %v), want the newest %s", st.Backup, err, first.ID)
	}
	if st, _ := c.Status(ctx, r0.url); st.Backup.Newest != nil {
		t.Errorf("a replica reports the store's newest backup: %+v", st.Backup.Newest)
	}

	if err := write(appDB(t, p), 50, 60); err != nil {
		t.Fatal(err)
	}
	second := takeBackup(t, c, r0, keep1)
	if bases, err := store.Bases(ctx, 1); err != nil || len(bases) != 1 || bases[0].ID != second.ID {
		t.Fatalf("after a second backup with retention 1: bases %+v, err %v", bases, err)
	}

	// A rejected key: the attempt fails with its reason; the complete backup stays.
	if err := os.WriteFile(secretFile, []byte("not the secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	r1 := shard["s-replicas-1"]
	if _, err := c.Backup(ctx, r1.url, keep1); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the failure reported", time.Minute, func() error {
		st, err := c.Status(ctx, r1.url)
		if err != nil {
			return err
		}
		if b := st.Backup; b.Running != nil || b.Failed == nil {
			return fmt.Errorf("backup %+v", b)
		}
		if st.Backup.Failed.Reason != backup.ReasonCredentialsRejected {
			return fmt.Errorf("failed with %+v", st.Backup.Failed)
		}
		return nil
	})
	if bases, err := store.Bases(ctx, 1); err != nil || len(bases) != 1 || bases[0].ID != second.ID {
		t.Fatalf("after a failed backup: bases %+v, err %v", bases, err)
	}
}

// takeBackup asks m's agent for a full backup, checks a second request is refused while it runs,
// and waits for it.
func takeBackup(t *testing.T, c agentapi.Client, m *member, req agentapi.BackupRequest) agentapi.Base {
	t.Helper()
	ctx := context.Background()
	st, err := c.Backup(ctx, m.url, req)
	if err != nil {
		t.Fatal(err)
	}
	if st.Backup == nil || st.Backup.Running == nil {
		t.Fatalf("the agent reports no backup running: %+v", st.Backup)
	}
	id := st.Backup.Running.ID
	if _, err := c.Backup(ctx, m.url, req); err == nil || !strings.Contains(err.Error(), "409") {
		// The backup may have finished already on a small shard; then the second starts.
		if err == nil {
			t.Logf("a second request was accepted (the first finished already)")
		} else {
			t.Fatalf("a second request: %v", err)
		}
	}
	var done agentapi.Base
	testutil.Eventually(t, "the backup of "+m.pod+" completed", 2*time.Minute, func() error {
		st, err := c.Status(ctx, m.url)
		if err != nil {
			return err
		}
		b := st.Backup
		switch {
		case b.Failed != nil:
			t.Fatalf("the backup failed: %+v", b.Failed)
		case b.Running != nil || b.Completed == nil || b.Completed.ID < id:
			return errors.New("running")
		}
		done = *b.Completed
		return nil
	})
	return done
}
