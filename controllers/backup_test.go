package controllers

import (
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/pkg/agentapi"
)

var backupNow = time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)

func backupBase(id string, finishedAgo time.Duration) *agentapi.Base {
	fin := backupNow.Add(-finishedAgo)
	return &agentapi.Base{ID: id, StartedAt: fin.Add(-time.Minute), FinishedAt: fin, Size: 1 << 20, Source: "r-0"}
}

func TestBackupCondition(t *testing.T) {
	now := backupNow
	at := func(ago time.Duration) *time.Time { t := now.Add(-ago); return &t }
	ok := func(shard int32, ago time.Duration) shardArchive {
		return shardArchive{shard: shard, pod: "p", listed: true, newest: backupBase("20261202T030000.000Z", time.Hour),
			report: &agentapi.ArchiveStatus{LastSuccess: at(ago), LastFile: "shard-bin.000007"}}
	}
	without := func(a shardArchive, change func(*shardArchive)) shardArchive { change(&a); return a }
	cases := []struct {
		name   string
		shards []shardArchive
		status metav1.ConditionStatus
		reason string
		msg    string
	}{
		{"every shard backed up and archived", []shardArchive{ok(0, 10*time.Second), ok(1, time.Minute)}, metav1.ConditionTrue, scalestackv1alpha1.ReasonBackedUp, "5m0s"},
		{"a failure names the cause and the shard", []shardArchive{ok(0, time.Second), {shard: 1, pod: "q", report: &agentapi.ArchiveStatus{
			LastSuccess: at(time.Hour), Reason: scalestackv1alpha1.ReasonCredentialsRejected, Error: "object store bucket lookup: CredentialsRejected: The access key ID you provided does not exist"}}},
			metav1.ConditionFalse, scalestackv1alpha1.ReasonCredentialsRejected, "shard 1 (q)"},
		{"a stall", []shardArchive{ok(0, 17*time.Minute)}, metav1.ConditionFalse, scalestackv1alpha1.ReasonArchivingStalled, "more than three archive intervals"},
		{"not stalled within three intervals and a minute", []shardArchive{ok(0, 15*time.Minute)}, metav1.ConditionTrue, scalestackv1alpha1.ReasonBackedUp, ""},
		{"a primary not ready", []shardArchive{ok(0, 0), {shard: 1, why: "its primary p-1 is not ready"}}, metav1.ConditionUnknown, scalestackv1alpha1.ReasonArchivingPending, "p-1 is not ready"},
		{"no pass yet", []shardArchive{{shard: 0, report: &agentapi.ArchiveStatus{}}}, metav1.ConditionUnknown, scalestackv1alpha1.ReasonArchivingPending, "no archiving pass"},
		{"a failure outranks a pending shard", []shardArchive{{shard: 0, why: "x"}, {shard: 1, report: &agentapi.ArchiveStatus{Reason: scalestackv1alpha1.ReasonBucketMissing, Error: "bucket \"b\" does not exist"}}},
			metav1.ConditionFalse, scalestackv1alpha1.ReasonBucketMissing, "does not exist"},
		{"the first full backup running", []shardArchive{ok(0, 0), without(ok(1, 0), func(a *shardArchive) {
			a.newest, a.running, a.runningOn = nil, &agentapi.BackupRun{ID: "x", StartedAt: now.Add(-time.Minute)}, "r-1"
		})}, metav1.ConditionUnknown, scalestackv1alpha1.ReasonFullBackupPending, "shard 1: its first full backup runs on r-1"},
		{"the first full backup waits for a pod", []shardArchive{without(ok(0, 0), func(a *shardArchive) { a.newest, a.waitingFor = nil, "no ready replica" })},
			metav1.ConditionUnknown, scalestackv1alpha1.ReasonFullBackupPending, "waits: no ready replica"},
		{"a failed full backup names the pod, the cause and the newest backup", []shardArchive{ok(0, 0), without(ok(1, 0), func(a *shardArchive) {
			a.failed, a.failedOn = &agentapi.BackupFailure{At: now, Reason: scalestackv1alpha1.ReasonBackupFailed, Error: "mariadb-backup: exit status 1"}, "r-1"
		})}, metav1.ConditionFalse, scalestackv1alpha1.ReasonBackupFailed, "shard 1: the full backup on r-1 failed at 2026-12-02T04:00:00Z: mariadb-backup: exit status 1; its newest complete full backup is 20261202T030000.000Z"},
		{"a failed full backup keeps the store's reason", []shardArchive{without(ok(0, 0), func(a *shardArchive) {
			a.failed = &agentapi.BackupFailure{At: now, Reason: scalestackv1alpha1.ReasonObjectStoreUnreachable, Error: "dial tcp: refused"}
		})}, metav1.ConditionFalse, scalestackv1alpha1.ReasonObjectStoreUnreachable, "dial tcp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := backupCondition(backupObservation{enabled: true, interval: 5 * time.Minute, shards: tc.shards}, now)
			if c.Type != scalestackv1alpha1.ConditionBackupReady || c.Status != tc.status || c.Reason != tc.reason || !strings.Contains(c.Message, tc.msg) {
				t.Fatalf("got %s %s %q", c.Status, c.Reason, c.Message)
			}
		})
	}
	if c := backupCondition(backupObservation{enabled: true, scheduleErr: errString("spec.database.backup.schedule \"61 * * * *\": bad")}, now); c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "61 * * * *") {
		t.Errorf("a schedule cron refuses: %s %q", c.Status, c.Message)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestFullBackupDue(t *testing.T) {
	daily, err := cron.ParseStandard("CRON_TZ=UTC 0 3 * * *")
	if err != nil {
		t.Fatal(err)
	}
	now := backupNow // 04:00
	req := func(ago time.Duration) *time.Time { t := now.Add(-ago); return &t }
	// Today's scheduled backup started at 03:00:30 and finished a minute later: the next is due
	// at 03:00 tomorrow. Yesterday's makes today's 03:00 due.
	started := func(t time.Time) *agentapi.Base {
		return &agentapi.Base{ID: t.Format("20060102T150405.000Z"), StartedAt: t, FinishedAt: t.Add(time.Minute)}
	}
	today := started(time.Date(2026, 12, 2, 3, 0, 30, 0, time.UTC))
	yesterday := started(time.Date(2026, 12, 1, 3, 0, 30, 0, time.UTC))
	cases := []struct {
		name      string
		a         shardArchive
		requested *time.Time
		due       bool
		why       string
		next      time.Time
	}{
		{"the first backup at once", shardArchive{listed: true}, nil, true, "first", now},
		{"not before the primary has listed the store", shardArchive{}, nil, false, "", time.Time{}},
		{"not due before the schedule", shardArchive{listed: true, newest: today}, nil, false, "scheduled", time.Date(2026, 12, 3, 3, 0, 0, 0, time.UTC)},
		{"due once the schedule's time passed", shardArchive{listed: true, newest: yesterday}, nil, true, "scheduled", time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)},
		{"requested after the newest started", shardArchive{listed: true, newest: today}, req(time.Minute), true, "requested", time.Date(2026, 12, 3, 3, 0, 0, 0, time.UTC)},
		{"a request the newest already satisfies", shardArchive{listed: true, newest: today}, req(2 * time.Hour), false, "scheduled", time.Date(2026, 12, 3, 3, 0, 0, 0, time.UTC)},
		{"a request in the future waits for its time", shardArchive{listed: true, newest: today}, req(-time.Hour), false, "scheduled", time.Date(2026, 12, 3, 3, 0, 0, 0, time.UTC)},
		{"never while one runs", shardArchive{listed: true, newest: yesterday, running: &agentapi.BackupRun{ID: "x"}}, req(time.Minute), false, "", time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)},
		{"a failure waits before the next attempt", shardArchive{listed: true, failed: &agentapi.BackupFailure{At: now.Add(-time.Minute)}}, nil, false, "", now},
		{"and tries again after it", shardArchive{listed: true, failed: &agentapi.BackupFailure{At: now.Add(-retryFailedBackupAfter)}}, nil, true, "first", now},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			due, why, next := fullBackupDue(tc.a, daily, tc.requested, now)
			if due != tc.due || (due && why != tc.why) || !next.Equal(tc.next) {
				t.Fatalf("due %v why %q next %v; want %v %q %v", due, why, next, tc.due, tc.why, tc.next)
			}
		})
	}
}

func TestBackupSource(t *testing.T) {
	pod := func(name string, ready bool) *corev1.Pod {
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
	}
	lag := func(s float64) *float64 { return &s }
	on := &agentapi.BackupStatus{}
	replica := func(ready bool, l float64) agentapi.Status {
		return agentapi.Status{Role: agentapi.RoleReplica, Ready: ready, LagSeconds: lag(l), Backup: on}
	}
	primary := agentapi.Status{Role: agentapi.RolePrimary, Ready: true, Backup: on}
	cases := []struct {
		name    string
		pods    map[string]*corev1.Pod
		reports map[string]agentapi.Status
		want    string
	}{
		{"the replica with the least lag", map[string]*corev1.Pod{"p": pod("p", true), "r-0": pod("r-0", true), "r-1": pod("r-1", true)},
			map[string]agentapi.Status{"p": primary, "r-0": replica(true, 3), "r-1": replica(true, 0.5)}, "r-1"},
		{"never a replica that is not ready", map[string]*corev1.Pod{"p": pod("p", true), "r-0": pod("r-0", false), "r-1": pod("r-1", true)},
			map[string]agentapi.Status{"p": primary, "r-0": replica(true, 0), "r-1": replica(false, 0)}, "p"},
		{"the primary when no replica can", map[string]*corev1.Pod{"p": pod("p", true)}, map[string]agentapi.Status{"p": primary}, "p"},
		{"nothing when the primary is not ready either", map[string]*corev1.Pod{"p": pod("p", false)}, map[string]agentapi.Status{"p": primary}, ""},
		{"nothing from an agent with backup off", map[string]*corev1.Pod{"p": pod("p", true)}, map[string]agentapi.Status{"p": {Role: agentapi.RolePrimary, Ready: true}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, why := backupSource(tc.pods, tc.reports, "p")
			if got != tc.want || (got == "" && why == "") {
				t.Fatalf("got %q (%q), want %q", got, why, tc.want)
			}
		})
	}
}

// The newest backup is the newest any agent knows (a replica's completion before the primary
// lists it); a failure counts only when newer than it; a restarted primary has not listed.
func TestObserveShardBackups(t *testing.T) {
	ready := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{
		Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "agent", ContainerID: "containerd://x", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}}
	listed := backupNow
	older, newer := backupBase("20261201T030000.000Z", 25*time.Hour), backupBase("20261202T030000.000Z", time.Hour)
	reports := map[string]agentapi.Status{
		"p":   {Pod: "p", Role: agentapi.RolePrimary, Archive: &agentapi.ArchiveStatus{}, Backup: &agentapi.BackupStatus{Newest: older, ListedAt: &listed}},
		"r-0": {Pod: "r-0", Role: agentapi.RoleReplica, Backup: &agentapi.BackupStatus{Completed: newer}},
		"r-1": {Pod: "r-1", Role: agentapi.RoleReplica, Backup: &agentapi.BackupStatus{Failed: &agentapi.BackupFailure{At: backupNow.Add(-2 * time.Hour)}}},
	}
	a := observeShardBackups(0, "p", map[string]*corev1.Pod{"p": ready}, reports)
	if !a.listed || a.newest != newer || a.failed != nil || a.report == nil {
		t.Fatalf("observed %+v", a)
	}
	reports["r-1"].Backup.Failed.At = backupNow
	if a := observeShardBackups(0, "p", map[string]*corev1.Pod{"p": ready}, reports); a.failed == nil || a.failedOn != "r-1" {
		t.Fatalf("a failure after the newest backup: %+v", a)
	}
	reports["p"].Backup.ListedAt = nil
	if a := observeShardBackups(0, "p", map[string]*corev1.Pod{"p": ready}, reports); a.listed {
		t.Fatal("a primary that has not listed the store counts as listed")
	}
}
