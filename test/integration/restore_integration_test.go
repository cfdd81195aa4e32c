package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/pkg/agentapi"
)

// TestRestoringFollowsEachShardsBootstrap: a platform created with spec.database.restore reports
// Restoring from its shards' first primary pods (the test plays the kubelet: the bootstrap init
// container running, failed, done with its record as termination message). DatabaseReady, and so
// Ready, carry the restore's progress until every shard is restored; a failure is a Warning
// event, the end a RestoreCompleted event, and Restored stays once reached.
func TestRestoringFollowsEachShardsBootstrap(t *testing.T) {
	ctx := context.Background()
	sp := loadSample(t, newNamespace(t))
	sp.Spec.Database.Shards = 2
	sp.Spec.Database.ReplicasPerShard = ptr.To[int32](0)
	sp.Spec.Database.Restore = &scalestackv1alpha1.RestoreSpec{Source: scalestackv1alpha1.ObjectStoreSpec{
		Endpoint: "http://objectstore.example:8333", Bucket: "backups", Prefix: "shop/old",
		Credentials: scalestackv1alpha1.ObjectStoreCredentials{SecretName: "s3-credentials"}}}
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	conditions := func() (restoring, database, ready *metav1.Condition, err error) {
		cur, err := get(t, &scalestackv1alpha1.SocialPlatform{}, sp.Namespace, sp.Name)
		if err != nil {
			return nil, nil, nil, err
		}
		return meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionRestoring),
			meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionDatabaseReady),
			meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionReady), nil
	}
	expect := func(what, reason string, in ...string) {
		t.Helper()
		eventually(t, what, func() error {
			restoring, database, ready, err := conditions()
			if err != nil {
				return err
			}
			if restoring == nil || restoring.Reason != reason {
				return fmt.Errorf("Restoring %+v, want %s", restoring, reason)
			}
			for _, s := range in {
				if !strings.Contains(restoring.Message, s) {
					return fmt.Errorf("Restoring says %q, not %q", restoring.Message, s)
				}
			}
			if reason != scalestackv1alpha1.ReasonRestored {
				if restoring.Status != metav1.ConditionTrue || database == nil || database.Reason != reason || database.Message != restoring.Message ||
					ready == nil || ready.Status != metav1.ConditionFalse {
					return fmt.Errorf("while restoring: DatabaseReady %+v, Ready %+v", database, ready)
				}
			} else if restoring.Status != metav1.ConditionFalse || (database != nil && strings.HasPrefix(database.Reason, "Restor")) {
				return fmt.Errorf("restored: Restoring %+v, DatabaseReady %+v", restoring, database)
			}
			return nil
		})
	}
	expect("Restoring waits for the shards' pods", scalestackv1alpha1.ReasonRestoreInProgress, "0/2 shards restored", "shard 0 waits: its pod does not exist yet")

	pod0, pod1 := sp.ShardDefaultPrimaryPod(0), sp.ShardDefaultPrimaryPod(1)
	createDBPod(t, sp, 0, "primary", pod0)
	createDBPod(t, sp, 1, "primary", pod1)
	bootstrap := func(name string, st corev1.ContainerStatus) {
		t.Helper()
		st.Name = "bootstrap"
		eventually(t, "pod "+name+"'s bootstrap status", func() error {
			p, err := get(t, &corev1.Pod{}, sp.Namespace, name)
			if err != nil {
				return err
			}
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{st}
			return k8s.Status().Update(ctx, p)
		})
	}
	started := metav1.Now()
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}
	bootstrap(pod0, corev1.ContainerStatus{State: running})
	// Failed once, waiting to be retried (the API server refuses a terminated container turning
	// running again in one status, as a kubelet never reports it).
	bootstrap(pod1, corev1.ContainerStatus{RestartCount: 1, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1,
			Message: "restoring shard 1 from backups/shop/old: it has no complete full backup"}}})
	expect("Restoring names the failed shard and its error", scalestackv1alpha1.ReasonRestoreFailed,
		"shard 0 restoring since", "shard 1 failed (attempt 1, retried): restoring shard 1 from backups/shop/old: it has no complete full backup")
	eventually(t, "the RestoreFailed event", hasEvent(t, sp.Namespace, scalestackv1alpha1.EventRestoreFailed, "it has no complete full backup"))

	report := func(rec agentapi.RestoreRecord) string {
		data := fmt.Sprintf(`{"source":%q,"backup":%q,"backupGtid":"0-1-10","binlogs":%d,"gtid":%q,"empty":%v,"finishedAt":"2026-12-03T07:00:00Z","seconds":%g}`,
			rec.Source, rec.Backup, rec.Binlogs, rec.GTID, rec.Empty, rec.Seconds)
		return agentapi.RestoreReportPrefix + data
	}
	done := func(rec agentapi.RestoreRecord, restarts int32) corev1.ContainerStatus {
		return corev1.ContainerStatus{RestartCount: restarts, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Message: report(rec)}}}
	}
	bootstrap(pod0, done(agentapi.RestoreRecord{Source: "backups/shop/old", Backup: "20261203T060000.000Z", Binlogs: 4, GTID: "0-1-99", Seconds: 21}, 0))
	bootstrap(pod1, corev1.ContainerStatus{RestartCount: 1, State: running,
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: "timeout"}}})
	expect("Restoring shows the retry and the shard done", scalestackv1alpha1.ReasonRestoreInProgress,
		"1/2 shards restored", "shard 0 restored from 20261203T060000.000Z + 4 binary logs to GTID 0-1-99 in 21 s", "(attempt 2; the last failed: timeout)")

	bootstrap(pod1, done(agentapi.RestoreRecord{Source: "backups/shop/old", Empty: true}, 1))
	expect("Restored once every shard is", scalestackv1alpha1.ReasonRestored, "2/2 shards restored", "shard 1 started empty")
	eventually(t, "the RestoreCompleted event", hasEvent(t, sp.Namespace, scalestackv1alpha1.EventRestoreCompleted, "2/2 shards restored"))

	// A pod of a restored shard made again later (a failover, a rebuild) is no restore starting over.
	if err := k8s.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: sp.Namespace, Name: pod0}}); err != nil {
		t.Fatal(err)
	}
	createDBPod(t, sp, 0, "primary", pod0)
	bootstrap(pod0, corev1.ContainerStatus{State: running})
	expect("Restored stays", scalestackv1alpha1.ReasonRestored, "2/2 shards restored")
}
