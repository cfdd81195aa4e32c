package controllers

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/pkg/agentapi"
)

func bootstrapPod(st corev1.ContainerStatus) *corev1.Pod {
	st.Name = bootstrapContainer
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "demo-shard-0-primary-0"},
		Status: corev1.PodStatus{InitContainerStatuses: []corev1.ContainerStatus{{Name: "install-agent"}, st}}}
}

func TestObserveRestore(t *testing.T) {
	started := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	report := agentapi.RestoreReportPrefix + `{"source":"b/p","backup":"20261203T060000Z","backupGtid":"0-1-10","binlogs":3,"gtid":"0-1-42","finishedAt":"2026-12-03T07:01:00Z","seconds":12.5}`
	failed := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: "restoring shard 0 from b/p: it has no complete full backup"}}
	cases := []struct {
		name  string
		pod   *corev1.Pod
		want  restoreState
		check func(*testing.T, restoreObservation)
	}{
		{"no pod", nil, restorePending, func(t *testing.T, o restoreObservation) {
			if !strings.Contains(o.waiting, "does not exist") {
				t.Errorf("waiting %q", o.waiting)
			}
		}},
		{"not started", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}, restorePending, nil},
		{"pulling", bootstrapPod(corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}}), restorePending,
			func(t *testing.T, o restoreObservation) {
				if !strings.Contains(o.waiting, "PodInitializing") {
					t.Errorf("waiting %q", o.waiting)
				}
			}},
		{"running", bootstrapPod(corev1.ContainerStatus{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(started)}}}), restoreRunning,
			func(t *testing.T, o restoreObservation) {
				if !o.since.Equal(started) || o.attempts != 1 || o.lastError != "" {
					t.Errorf("%+v", o)
				}
			}},
		{"running again after a failure", bootstrapPod(corev1.ContainerStatus{RestartCount: 2, LastTerminationState: failed,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(started)}}}), restoreRunning,
			func(t *testing.T, o restoreObservation) {
				if o.attempts != 3 || !strings.Contains(o.lastError, "no complete full backup") {
					t.Errorf("%+v", o)
				}
			}},
		{"waiting to be retried", bootstrapPod(corev1.ContainerStatus{RestartCount: 2, LastTerminationState: failed,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}), restoreFailed,
			func(t *testing.T, o restoreObservation) {
				if o.attempts != 2 || !strings.Contains(o.lastError, "no complete full backup") {
					t.Errorf("%+v", o)
				}
			}},
		{"just failed, no message", bootstrapPod(corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}), restoreFailed,
			func(t *testing.T, o restoreObservation) {
				if o.lastError != "exit code 137 (OOMKilled)" {
					t.Errorf("%+v", o)
				}
			}},
		{"done", bootstrapPod(corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Message: report}}}), restoreDone,
			func(t *testing.T, o restoreObservation) {
				if o.record == nil || o.record.Backup != "20261203T060000Z" || o.record.Binlogs != 3 || o.record.GTID != "0-1-42" {
					t.Errorf("record %+v", o.record)
				}
			}},
		{"done, nothing reported", bootstrapPod(corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Message: "some log line"}}}), restoreDone,
			func(t *testing.T, o restoreObservation) {
				if o.record != nil {
					t.Errorf("a log line taken for a record: %+v", o.record)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := observeRestore(0, tc.pod)
			if o.state != tc.want {
				t.Fatalf("state %d, want %d (%+v)", o.state, tc.want, o)
			}
			if tc.check != nil {
				tc.check(t, o)
			}
		})
	}
}

func TestRestoreCondition(t *testing.T) {
	started := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	done := restoreObservation{shard: 0, state: restoreDone, record: &agentapi.RestoreRecord{Backup: "B0", Binlogs: 3, GTID: "0-1-42", Seconds: 12}}
	empty := restoreObservation{shard: 1, state: restoreDone, record: &agentapi.RestoreRecord{Empty: true}}
	running := restoreObservation{shard: 1, state: restoreRunning, since: started, attempts: 1}
	failed := restoreObservation{shard: 1, state: restoreFailed, attempts: 2, lastError: "it has no complete full backup"}
	pending := restoreObservation{shard: 1, waiting: "its pod does not exist yet"}
	restored := &metav1.Condition{Type: scalestackv1alpha1.ConditionRestoring, Status: metav1.ConditionFalse, Reason: scalestackv1alpha1.ReasonRestored, Message: "2/2 shards restored; before"}
	cases := []struct {
		name       string
		obs        []restoreObservation
		previous   *metav1.Condition
		wantStatus metav1.ConditionStatus
		wantReason string
		wantIn     []string
	}{
		{"every shard restored", []restoreObservation{done, empty}, nil, metav1.ConditionFalse, scalestackv1alpha1.ReasonRestored,
			[]string{"2/2 shards restored", "shard 0 restored from B0 + 3 binary logs to GTID 0-1-42 in 12 s", "shard 1 started empty"}},
		{"one running", []restoreObservation{done, running}, nil, metav1.ConditionTrue, scalestackv1alpha1.ReasonRestoreInProgress,
			[]string{"1/2 shards restored", "shard 1 restoring since 2026-12-03T07:00:00Z"}},
		{"one waits for its pod", []restoreObservation{done, pending}, nil, metav1.ConditionTrue, scalestackv1alpha1.ReasonRestoreInProgress,
			[]string{"shard 1 waits: its pod does not exist yet"}},
		{"one failed", []restoreObservation{done, failed}, nil, metav1.ConditionTrue, scalestackv1alpha1.ReasonRestoreFailed,
			[]string{"shard 1 failed (attempt 2, retried): it has no complete full backup"}},
		{"a retry running says why the last one failed", []restoreObservation{{shard: 0, state: restoreRunning, since: started, attempts: 3, lastError: "timeout"}}, nil,
			metav1.ConditionTrue, scalestackv1alpha1.ReasonRestoreInProgress, []string{"attempt 3; the last failed: timeout"}},
		{"restored stays restored", []restoreObservation{done, pending}, restored, metav1.ConditionFalse, scalestackv1alpha1.ReasonRestored, []string{"before"}},
		{"a previous progress is not kept", []restoreObservation{done, done}, &metav1.Condition{Reason: scalestackv1alpha1.ReasonRestoreInProgress, Message: "old"},
			metav1.ConditionFalse, scalestackv1alpha1.ReasonRestored, []string{"2/2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := restoreCondition(tc.obs, tc.previous)
			if c.Type != scalestackv1alpha1.ConditionRestoring || c.Status != tc.wantStatus || c.Reason != tc.wantReason {
				t.Fatalf("got %s %s/%s %q", c.Type, c.Status, c.Reason, c.Message)
			}
			for _, w := range tc.wantIn {
				if !strings.Contains(c.Message, w) {
					t.Errorf("message %q lacks %q", c.Message, w)
				}
			}
		})
	}

	db := metav1.Condition{Type: scalestackv1alpha1.ConditionDatabaseReady, Status: metav1.ConditionTrue, Reason: scalestackv1alpha1.ReasonAvailable}
	if got := whileRestoring(db, restoreCondition([]restoreObservation{running}, nil)); got.Status != metav1.ConditionFalse ||
		got.Reason != scalestackv1alpha1.ReasonRestoreInProgress || got.Type != scalestackv1alpha1.ConditionDatabaseReady {
		t.Errorf("DatabaseReady while restoring: %+v", got)
	}
	if got := whileRestoring(db, restoreCondition([]restoreObservation{done}, nil)); got != db {
		t.Errorf("DatabaseReady once restored: %+v", got)
	}
}
