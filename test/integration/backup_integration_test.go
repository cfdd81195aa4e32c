package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/apps/dbagent"
	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/pkg/backup"
)

// BackupReady reports what the shards' agents found backing up to a real S3-compatible store: the
// cause when the key is wrong or the bucket missing; once they upload, the first full backup is
// taken on the replica at once, and BackedUp reports it with each shard's last archived file and
// full backup in status; the annotation asks for another, and retention keeps one. The rest of the
// platform is unaffected.
func TestBackupReadyNamesTheCause(t *testing.T) {
	ctx := context.Background()
	s3 := localservers.StartS3(t)
	sp := loadSample(t, newNamespace(t))
	sp.Spec.Database.Shards = 1
	sp.Spec.Database.ReplicasPerShard = ptr.To[int32](1)
	sp.Spec.Database.Backup = &scalestackv1alpha1.BackupSpec{
		ObjectStore: scalestackv1alpha1.ObjectStoreSpec{Endpoint: "http://" + s3.Endpoint, Bucket: "backups",
			Credentials: scalestackv1alpha1.ObjectStoreCredentials{SecretName: "s3-credentials"}},
		ArchiveInterval: &metav1.Duration{Duration: 10 * time.Second},
		Retention:       scalestackv1alpha1.BackupRetention{Count: ptr.To[int32](1)},
	}
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	// The kubelet's part: the credentials Secret mounted as files in the agent's container.
	keys := t.TempDir()
	writeKey := func(id, secret string) {
		for name, v := range map[string]string{"accessKeyId": id, "secretAccessKey": secret} {
			if err := os.WriteFile(filepath.Join(keys, name), []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeKey(s3.AccessKey, "wrong")
	rs := startRealShard(t, sp, func(pod string, cfg *dbagent.Config) {
		cfg.Archive = &dbagent.ArchiveConfig{
			Store:         backup.StoreConfig{Endpoint: s3.Endpoint, Insecure: true, Bucket: "backups", Prefix: sp.Namespace + "/" + sp.Name},
			AccessKeyFile: filepath.Join(keys, "accessKeyId"), SecretKeyFile: filepath.Join(keys, "secretAccessKey"),
			Interval: 4 * time.Second}
	})
	backupReady := func(reason string) func() error {
		return func() error {
			cur, err := get(t, &scalestackv1alpha1.SocialPlatform{}, rs.ns, sp.Name)
			if err != nil {
				return err
			}
			c := meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionBackupReady)
			if c == nil || c.Reason != reason {
				return fmt.Errorf("BackupReady %+v", c)
			}
			if ready := meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionReady); ready != nil && strings.Contains(ready.Message, "Backup") {
				return fmt.Errorf("Ready depends on the backups: %s", ready.Message)
			}
			return nil
		}
	}
	eventually(t, "BackupReady says the key is rejected", backupReady(scalestackv1alpha1.ReasonCredentialsRejected))
	writeKey(s3.AccessKey, s3.SecretKey)
	eventually(t, "BackupReady says the bucket is missing", backupReady(scalestackv1alpha1.ReasonBucketMissing))
	store, err := backup.Open(backup.StoreConfig{Endpoint: s3.Endpoint, Insecure: true, Bucket: "backups", Prefix: sp.Namespace + "/" + sp.Name, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.app(rs.primaryName).Exec("INSERT INTO social.posts VALUES (1, 'archived')"); err != nil {
		t.Fatal(err)
	}
	var first *scalestackv1alpha1.FullBackupStatus
	eventually(t, "BackupReady BackedUp, with the shard's last archived file and its first full backup, taken on the replica", func() error {
		if err := backupReady(scalestackv1alpha1.ReasonBackedUp)(); err != nil {
			return err
		}
		cur, _ := get(t, &scalestackv1alpha1.SocialPlatform{}, rs.ns, sp.Name)
		b := cur.Status.Shards[0].Backup
		if b == nil || b.LastArchived == nil || b.LastArchivedFile == "" || b.LastFull == nil || b.NextScheduled == nil {
			return fmt.Errorf("shard status %+v", cur.Status.Shards[0])
		}
		if b.LastFull.Source != rs.replicaName || b.LastFull.SizeBytes == 0 || b.LastFull.GTID == "" {
			return fmt.Errorf("full backup %+v, want one taken on %s", b.LastFull, rs.replicaName)
		}
		first = b.LastFull
		return nil
	})
	if bases, err := store.Bases(ctx, 0); err != nil || len(bases) != 1 || bases[0].ID != first.ID {
		t.Fatalf("the store holds %+v (%v), want the one backup %s", bases, err, first.ID)
	}
	eventually(t, "the BackupStarted event", hasEvent(t, rs.ns, scalestackv1alpha1.EventBackupStarted, "first full backup"))
	eventually(t, "the BackupCompleted event", hasEvent(t, rs.ns, scalestackv1alpha1.EventBackupCompleted, first.ID))

	// On demand: a backup newer than the request, and retention count 1 keeps only it.
	if _, err := rs.app(rs.primaryName).Exec("INSERT INTO social.posts VALUES (2, 'in the second backup')"); err != nil {
		t.Fatal(err)
	}
	cur, err := get(t, &scalestackv1alpha1.SocialPlatform{}, rs.ns, sp.Name)
	if err != nil {
		t.Fatal(err)
	}
	requested := time.Now().UTC().Truncate(time.Second).Add(time.Second)
	metav1.SetMetaDataAnnotation(&cur.ObjectMeta, scalestackv1alpha1.AnnotationBackupRequested, requested.Format(time.RFC3339))
	if err := k8s.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a full backup started after the request", func() error {
		cur, _ := get(t, &scalestackv1alpha1.SocialPlatform{}, rs.ns, sp.Name)
		b := cur.Status.Shards[0].Backup
		if b == nil || b.LastFull == nil || b.LastFull.ID <= first.ID || b.LastFull.ID < backup.BaseID(requested) {
			return fmt.Errorf("last full backup %+v", b)
		}
		bases, err := store.Bases(ctx, 0)
		if err != nil || len(bases) != 1 || bases[0].ID != b.LastFull.ID {
			return fmt.Errorf("the store holds %+v (%w), want only %s", bases, err, b.LastFull.ID)
		}
		return nil
	})
	// The pods were never touched for it.
	p := &corev1.Pod{}
	if p, err = get(t, p, rs.ns, rs.primaryName); err != nil || !p.DeletionTimestamp.IsZero() {
		t.Fatalf("the primary's pod: %v", err)
	}
}
