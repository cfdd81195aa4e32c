package controllers

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/pkg/agentapi"
	"github.com/scalestack/scalestack/pkg/replication"
)

func replicaAt(t *testing.T, pod, received string, lag *float64) candidate {
	t.Helper()
	pos, err := replication.ParseMariaDBPosition(received)
	if err != nil {
		t.Fatal(err)
	}
	return candidate{pod: pod, ready: true, status: &agentapi.Status{Pod: pod, Role: agentapi.RoleReplica, Topology: agentapi.Topology{Primary: "p-0", Epoch: 3},
		Position: replication.Position{Received: pos}, LagSeconds: lag}}
}

func TestPlanFailover(t *testing.T) {
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	zero, five, sixty := 0.0, 5.0, 60.0
	base := failoverInput{now: now, primaryGone: now.Add(-time.Minute), after: 30 * time.Second, enabled: true, maxLag: 10 * time.Second, epoch: 3}
	cases := []struct {
		name    string
		mutate  func(*failoverInput)
		promote string
		refused string // substring
		wait    time.Duration
	}{
		{"primary available", func(in *failoverInput) { in.primaryGone = time.Time{} }, "", "", 0},
		{"not gone long enough", func(in *failoverInput) { in.primaryGone = now.Add(-10 * time.Second) }, "", "", 20 * time.Second},
		{"the most advanced replica", func(in *failoverInput) {
			in.candidates = []candidate{replicaAt(t, "r-0", "0-1-90", &zero), replicaAt(t, "r-1", "0-1-100", &five)}
		}, "r-1", "", 0},
		{"a tie goes to the ready pod, then the lowest name", func(in *failoverInput) {
			a, b, c := replicaAt(t, "r-2", "0-1-100", &zero), replicaAt(t, "r-1", "0-1-100", &zero), replicaAt(t, "r-0", "0-1-100", &zero)
			c.ready = false
			in.candidates = []candidate{a, b, c}
		}, "r-1", "", 0},
		{"the most advanced lagged beyond the bound", func(in *failoverInput) {
			in.candidates = []candidate{replicaAt(t, "r-0", "0-1-100", &sixty), replicaAt(t, "r-1", "0-1-90", &zero)}
		}, "", "beyond failover.maxLag", 0},
		{"a lag measured just before the primary went is current", func(in *failoverInput) {
			c := replicaAt(t, "r-0", "0-1-100", &zero)
			at := in.primaryGone.Add(-20 * time.Second)
			c.status.LagObservedAt = &at
			in.candidates = []candidate{c}
		}, "r-0", "", 0},
		{"a lag measured long before the primary went is not", func(in *failoverInput) {
			c := replicaAt(t, "r-0", "0-1-100", &zero)
			at := in.primaryGone.Add(-2 * time.Minute)
			c.status.LagObservedAt = &at
			in.candidates = []candidate{c}
		}, "", "lost its primary 1m30s before", 0},
		{"a replica that never replicated from the primary's current incarnation", func(in *failoverInput) {
			c := replicaAt(t, "r-0", "0-1-100", &zero)
			at := in.primaryGone.Add(-10 * time.Second)
			c.status.LagObservedAt = &at
			in.primaryReadySince = in.primaryGone.Add(-5 * time.Second)
			in.candidates = []candidate{c}
		}, "", "has not replicated from the primary since", 0},
		{"a replica that replicated after the primary became ready", func(in *failoverInput) {
			c := replicaAt(t, "r-0", "0-1-100", &zero)
			at := in.primaryGone.Add(-2 * time.Second)
			c.status.LagObservedAt = &at
			in.primaryReadySince = in.primaryGone.Add(-time.Hour)
			in.candidates = []candidate{c}
		}, "r-0", "", 0},
		{"lossy failover allowed", func(in *failoverInput) {
			in.allowLossy = true
			in.candidates = []candidate{replicaAt(t, "r-0", "0-1-100", &sixty)}
		}, "r-0", "", 0},
		{"lag never known", func(in *failoverInput) { in.candidates = []candidate{replicaAt(t, "r-0", "0-1-100", nil)} }, "", "never known", 0},
		{"no replica answers", func(in *failoverInput) {
			in.candidates = []candidate{{pod: "r-0", err: errors.New("connection refused")}}
		}, "", "r-0: agent did not answer", 0},
		{"no replica at all", func(*failoverInput) {}, "", "the shard has no replica", 0},
		{"a diverged replica is not a candidate", func(in *failoverInput) {
			d := replicaAt(t, "r-0", "0-1-120", &zero)
			d.status.Diverged = "0-7:1-3"
			in.candidates = []candidate{d, replicaAt(t, "r-1", "0-1-100", &zero)}
		}, "r-1", "", 0},
		{"a replica of another epoch is not a candidate", func(in *failoverInput) {
			o := replicaAt(t, "r-0", "0-1-120", &zero)
			o.status.Topology.Epoch = 2
			in.candidates = []candidate{o}
		}, "", "follows epoch 2", 0},
		{"replicas of different domains include none of each other", func(in *failoverInput) {
			in.candidates = []candidate{replicaAt(t, "r-0", "0-1-100,1-1-5", &zero), replicaAt(t, "r-1", "0-1-100,2-1-5", &zero)}
		}, "", "promoting any would lose another's", 0},
		{"failover off", func(in *failoverInput) {
			in.enabled = false
			in.candidates = []candidate{replicaAt(t, "r-0", "0-1-100", &zero)}
		}, "", "failover is off", 0},
	}
	for _, tc := range cases {
		in := base
		tc.mutate(&in)
		d := planFailover(in)
		if d.promote != tc.promote || d.wait != tc.wait || (tc.refused == "") != (d.refused == "") || !strings.Contains(d.refused, tc.refused) {
			t.Errorf("%s: %+v, want promote %q wait %v refused ~%q", tc.name, d, tc.promote, tc.wait, tc.refused)
		}
	}
}

func TestFailoverCondition(t *testing.T) {
	ready := metav1.Condition{Type: scalestackv1alpha1.ConditionDatabaseReady, Status: metav1.ConditionTrue, Reason: scalestackv1alpha1.ReasonAvailable}
	notReady := metav1.Condition{Type: scalestackv1alpha1.ConditionDatabaseReady, Status: metav1.ConditionFalse, Reason: scalestackv1alpha1.ReasonUnavailable}
	moved := []scalestackv1alpha1.ShardStatus{{Index: 0, Primary: "p-0", Epoch: 1, PrimaryReady: false}}
	if c := failoverCondition(ready, nil, []string{"shard 0: refused"}); c.Reason != scalestackv1alpha1.ReasonFailoverRefused || c.Status != metav1.ConditionFalse {
		t.Errorf("refused: %+v", c)
	}
	if c := failoverCondition(notReady, moved, nil); c.Reason != scalestackv1alpha1.ReasonFailingOver || !strings.Contains(c.Message, "p-0") {
		t.Errorf("moving: %+v", c)
	}
	if c := failoverCondition(ready, []scalestackv1alpha1.ShardStatus{{Epoch: 1, PrimaryReady: true}}, nil); c != ready {
		t.Errorf("moved and ready: %+v", c)
	}
	if c := failoverCondition(notReady, []scalestackv1alpha1.ShardStatus{{Epoch: 0}}, nil); c != notReady {
		t.Errorf("never moved: %+v", c)
	}
}

func TestReplicaAction(t *testing.T) {
	rec := render.Primary{Pod: "p-0", Epoch: 2}
	at := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	base := agentapi.Status{Pod: "r-0", Role: agentapi.RoleReplica, Topology: agentapi.Topology{Primary: "p-0", Epoch: 2}}
	cases := []struct {
		name                  string
		mutate                func(*agentapi.Status)
		primaryReady, rebuild bool
		want                  string
	}{
		{"lagging or starting: nothing to do", func(*agentapi.Status) {}, true, true, ""},
		{"stale topology", func(st *agentapi.Status) { st.Topology.Epoch = 1; st.Topology.Primary = "r-0" }, true, true, actionRemind},
		{"stale even while the primary is down", func(st *agentapi.Status) { st.Topology.Epoch = 1 }, false, false, actionRemind},
		{"diverged", func(st *agentapi.Status) { st.Diverged = "0-7:1-3" }, true, true, actionRebuild},
		{"stranded (its primary purged what it needs)", func(st *agentapi.Status) {
			st.Stranded = "Got fatal error 1236 from master when reading data from binary log"
		}, true, true, actionRebuild},
		{"diverged, rebuilds off", func(st *agentapi.Status) { st.Diverged = "0-7:1-3" }, true, false, ""},
		{"diverged, the primary to copy is not ready", func(st *agentapi.Status) { st.Diverged = "0-7:1-3" }, false, true, ""},
		{"diverged from a primary that is no longer the one of record", func(st *agentapi.Status) {
			st.Diverged = "0-7:1-3"
			st.Topology.Primary = "r-1"
		}, true, true, ""},
		{"scheduled, the pod not restarted yet", func(st *agentapi.Status) { st.Diverged = "0-7:1-3"; st.Rebuild = &at }, true, true, actionRestart},
		{"a fenced primary-to-be is never rebuilt", func(st *agentapi.Status) { st.Diverged = "0-7:1-3"; st.Role = agentapi.RolePrimary }, true, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := base
			tc.mutate(&st)
			if got := replicaAction(st, rec, tc.primaryReady, tc.rebuild); got != tc.want {
				t.Fatalf("replicaAction = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPodReady(t *testing.T) {
	created := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	readyAt := created.Add(time.Minute)
	asked := created.Add(time.Hour)
	grace := int64(60)
	pod := func(status corev1.ConditionStatus, transition time.Time, deleted bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(created)}}
		if !transition.IsZero() {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.NewTime(transition)}}
		}
		if deleted {
			// What the API server records for a graceful deletion: the request time plus the grace.
			at := metav1.NewTime(asked.Add(time.Duration(grace) * time.Second))
			p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &at, &grace
		}
		return p
	}
	cases := []struct {
		name  string
		pod   *corev1.Pod
		ready bool
		since time.Time
	}{
		{"ready", pod(corev1.ConditionTrue, readyAt, false), true, time.Time{}},
		{"no condition yet", pod("", time.Time{}, false), false, created},
		{"unready", pod(corev1.ConditionFalse, readyAt, false), false, readyAt},
		{"ready, deletion asked: gone since the request, not since it became ready", pod(corev1.ConditionTrue, readyAt, true), false, asked},
		{"turned unready while shutting down", pod(corev1.ConditionFalse, asked.Add(5*time.Second), true), false, asked},
		{"unready before its deletion", pod(corev1.ConditionFalse, readyAt, true), false, readyAt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ready, since := podReady(c.pod)
			if ready != c.ready || !since.Equal(c.since) {
				t.Errorf("podReady: %v since %v, want %v since %v", ready, since, c.ready, c.since)
			}
		})
	}
}
