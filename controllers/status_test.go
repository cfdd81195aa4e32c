package controllers

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
)

func TestWorkloadsCondition(t *testing.T) {
	ok := workloadObservation{Name: "a", Exists: true, Current: true, Desired: 2, Updated: 2, Ready: 2}
	cases := []struct {
		name       string
		ws         []workloadObservation
		wantStatus metav1.ConditionStatus
		wantReason string
	}{
		{"all rolled out", []workloadObservation{ok, ok}, metav1.ConditionTrue, scalestackv1alpha1.ReasonAvailable},
		{"one missing", []workloadObservation{ok, {Name: "b"}}, metav1.ConditionFalse, scalestackv1alpha1.ReasonCreating},
		{"one not yet observed by its controller", []workloadObservation{ok, {Name: "b", Exists: true, Desired: 2, Updated: 2, Ready: 2}}, metav1.ConditionFalse, scalestackv1alpha1.ReasonRollingOut},
		{"one half ready", []workloadObservation{ok, {Name: "b", Exists: true, Current: true, Desired: 2, Updated: 2, Ready: 1}}, metav1.ConditionFalse, scalestackv1alpha1.ReasonRollingOut},
		{"one rolling a new template", []workloadObservation{{Name: "b", Exists: true, Current: true, Desired: 2, Updated: 1, Ready: 2}}, metav1.ConditionFalse, scalestackv1alpha1.ReasonRollingOut},
		{"one with no ready replica", []workloadObservation{ok, {Name: "b", Exists: true, Current: true, Desired: 2, Updated: 2, Ready: 0}}, metav1.ConditionFalse, scalestackv1alpha1.ReasonUnavailable},
		{"stall beats missing", []workloadObservation{{Name: "a"}, {Name: "b", Exists: true, Stalled: true}}, metav1.ConditionFalse, scalestackv1alpha1.ReasonProgressDeadlineExceeded},
		{"scaled to zero is available", []workloadObservation{{Name: "a", Exists: true, Current: true}}, metav1.ConditionTrue, scalestackv1alpha1.ReasonAvailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := workloadsCondition(scalestackv1alpha1.ConditionAppsReady, tc.ws)
			if c.Status != tc.wantStatus || c.Reason != tc.wantReason || c.Message == "" {
				t.Errorf("got %s/%s %q, want %s/%s", c.Status, c.Reason, c.Message, tc.wantStatus, tc.wantReason)
			}
		})
	}
}

func TestObserveDeployment(t *testing.T) {
	if o := observeDeployment("x", nil); o.Exists {
		t.Errorf("nil Deployment observed as existing")
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Generation: 3},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](4)},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2, UpdatedReplicas: 4, ReadyReplicas: 4, Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded"}}},
	}
	o := observeDeployment("x", d)
	if o.Current || !o.Stalled || o.Desired != 4 || o.rolledOut() {
		t.Errorf("observation %+v", o)
	}
}

func TestReadyCondition(t *testing.T) {
	up := metav1.Condition{Type: "AppsReady", Status: metav1.ConditionTrue, Reason: "Available"}
	down := metav1.Condition{Type: "AppsReady", Status: metav1.ConditionFalse, Reason: "Creating"}
	cases := []struct {
		name             string
		comps            []metav1.Condition
		err              error
		paused, deleting bool
		wantStatus       metav1.ConditionStatus
		wantReason       string
	}{
		{"all ready", []metav1.Condition{up}, nil, false, false, metav1.ConditionTrue, scalestackv1alpha1.ReasonReconciled},
		{"a component not ready", []metav1.Condition{up, down}, nil, false, false, metav1.ConditionFalse, scalestackv1alpha1.ReasonComponentsNotReady},
		{"reconcile failed while components look fine", []metav1.Condition{up}, errors.New("boom"), false, false, metav1.ConditionFalse, scalestackv1alpha1.ReasonReconcileFailed},
		{"paused", []metav1.Condition{up}, nil, true, false, metav1.ConditionUnknown, scalestackv1alpha1.ReasonPaused},
		{"deleting beats paused", []metav1.Condition{up}, nil, true, true, metav1.ConditionFalse, scalestackv1alpha1.ReasonDeleting},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := readyCondition(tc.comps, tc.err, tc.paused, tc.deleting)
			if c.Status != tc.wantStatus || c.Reason != tc.wantReason {
				t.Errorf("got %s/%s, want %s/%s", c.Status, c.Reason, tc.wantStatus, tc.wantReason)
			}
		})
	}
}

func TestProgressingAndDegraded(t *testing.T) {
	rolling := metav1.Condition{Type: "AppsReady", Status: metav1.ConditionFalse, Reason: scalestackv1alpha1.ReasonRollingOut}
	unavailable := metav1.Condition{Type: "AppsReady", Status: metav1.ConditionFalse, Reason: scalestackv1alpha1.ReasonUnavailable, Message: "No ready replica: x"}
	up := metav1.Condition{Type: "AppsReady", Status: metav1.ConditionTrue, Reason: scalestackv1alpha1.ReasonAvailable}

	if c := progressingCondition([]metav1.Condition{up}, nil); c.Status != metav1.ConditionFalse {
		t.Errorf("stable platform progressing: %+v", c)
	}
	if c := progressingCondition([]metav1.Condition{up}, []string{"Deployment/x"}); c.Status != metav1.ConditionTrue {
		t.Errorf("changed children not progressing: %+v", c)
	}
	if c := progressingCondition([]metav1.Condition{rolling}, nil); c.Status != metav1.ConditionTrue {
		t.Errorf("rolling component not progressing: %+v", c)
	}
	if c := degradedCondition([]metav1.Condition{rolling}, nil); c.Status != metav1.ConditionFalse {
		t.Errorf("rolling out counted as degraded: %+v", c)
	}
	if c := degradedCondition([]metav1.Condition{unavailable}, nil); c.Status != metav1.ConditionTrue || c.Reason != scalestackv1alpha1.ReasonUnavailable {
		t.Errorf("unavailable component not degraded: %+v", c)
	}
	if c := degradedCondition([]metav1.Condition{up}, errors.New("apply failed")); c.Status != metav1.ConditionTrue || c.Reason != scalestackv1alpha1.ReasonReconcileFailed {
		t.Errorf("failed reconcile not degraded: %+v", c)
	}
}

func TestRejected(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	invalid := apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "demo-gateway", nil)
	quota := apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "demo-gateway", errors.New("exceeded quota: q"))
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"invalid child", fmt.Errorf("apps: applying Deployment demo-gateway: %w", invalid), true},
		{"over quota", fmt.Errorf("cache: %w", quota), true},
		{"bad request", apierrors.NewBadRequest("no"), true},
		{"a rejected branch of a join", errors.Join(errors.New("database: agent unreachable"), fmt.Errorf("apps: %w", invalid)), true},
		{"conflict", fmt.Errorf("apps: %w", apierrors.NewConflict(gr, "x", errors.New("changed"))), false},
		{"timeout", apierrors.NewTimeoutError("slow", 1), false},
		{"unavailable", apierrors.NewServiceUnavailable("down"), false},
		{"throttled", apierrors.NewTooManyRequests("slow down", 1), false},
		{"not an API error", errors.New("dial tcp: connection refused"), false},
	}
	for _, tc := range cases {
		if got := rejected(tc.err); got != tc.want {
			t.Errorf("%s: rejected = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStalledAndReconciling(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	up := metav1.Condition{Type: "AppsReady", Status: metav1.ConditionTrue, Reason: scalestackv1alpha1.ReasonAvailable}
	rolling := metav1.Condition{Type: "AppsReady", Status: metav1.ConditionFalse, Reason: scalestackv1alpha1.ReasonRollingOut, Message: "Rolling out: x"}
	deadline := metav1.Condition{Type: "AppsReady", Status: metav1.ConditionFalse, Reason: scalestackv1alpha1.ReasonProgressDeadlineExceeded, Message: "Rollout stalled"}
	noResize := metav1.Condition{Type: "DatabaseReady", Status: metav1.ConditionTrue, Reason: scalestackv1alpha1.ReasonStorageResizeUnsupported, Message: "cannot grow"}
	invalid := fmt.Errorf("apps: %w", apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "demo-gateway", nil))
	transient := errors.New("database: agent unreachable")
	refusedSpec := fmt.Errorf("preflight: %w", &invalidSpecError{field: "spec.apps.gateway.resources", child: "Deployment demo-gateway",
		err: apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "demo-gateway", nil)})
	cases := []struct {
		name             string
		comps            []metav1.Condition
		err              error
		failingSince     time.Time
		changed          []string
		paused, deleting bool
		wantStalled      string // reason when Stalled is True, "" when False
		wantReconciling  metav1.ConditionStatus
	}{
		{"converged", []metav1.Condition{up}, nil, time.Time{}, nil, false, false, "", metav1.ConditionFalse},
		{"children changed", []metav1.Condition{up}, nil, time.Time{}, []string{"Deployment/x"}, false, false, "", metav1.ConditionTrue},
		{"rolling out", []metav1.Condition{rolling}, nil, time.Time{}, nil, false, false, "", metav1.ConditionTrue},
		{"a child refused", []metav1.Condition{up}, invalid, now, nil, false, false, scalestackv1alpha1.ReasonChildRejected, metav1.ConditionFalse},
		{"a spec refused in the preflight", []metav1.Condition{up}, refusedSpec, now, nil, false, false, scalestackv1alpha1.ReasonInvalidSpec, metav1.ConditionFalse},
		{"a transient failure, just now", []metav1.Condition{up}, transient, now.Add(-time.Minute), nil, false, false, "", metav1.ConditionTrue},
		{"a transient failure past the deadline", []metav1.Condition{up}, transient, now.Add(-progressDeadline), nil, false, false, scalestackv1alpha1.ReasonProgressDeadlineExceeded, metav1.ConditionFalse},
		{"a failure whose start is unknown", []metav1.Condition{up}, transient, time.Time{}, nil, false, false, "", metav1.ConditionTrue},
		{"a rollout past its deadline", []metav1.Condition{deadline}, nil, time.Time{}, nil, false, false, scalestackv1alpha1.ReasonProgressDeadlineExceeded, metav1.ConditionFalse},
		{"storage that cannot grow", []metav1.Condition{noResize, up}, nil, time.Time{}, nil, false, false, scalestackv1alpha1.ReasonStorageResizeUnsupported, metav1.ConditionFalse},
		{"paused", []metav1.Condition{rolling}, nil, time.Time{}, nil, true, false, "", metav1.ConditionFalse},
		{"deleting", []metav1.Condition{up}, nil, time.Time{}, nil, false, true, "", metav1.ConditionTrue},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stalled := stalledCondition(tc.comps, tc.err, tc.failingSince, now)
			if got := map[bool]string{true: stalled.Reason}[stalled.Status == metav1.ConditionTrue]; got != tc.wantStalled {
				t.Errorf("Stalled %s/%s %q, want reason %q", stalled.Status, stalled.Reason, stalled.Message, tc.wantStalled)
			}
			ready := readyCondition(tc.comps, tc.err, tc.paused, tc.deleting)
			rec := reconcilingCondition(ready, progressingCondition(tc.comps, tc.changed), stalled, tc.err, tc.paused, tc.deleting)
			if rec.Status != tc.wantReconciling || rec.Reason == "" || rec.Message == "" {
				t.Errorf("Reconciling %s/%s %q, want %s", rec.Status, rec.Reason, rec.Message, tc.wantReconciling)
			}
			if rec.Status == metav1.ConditionTrue && stalled.Status == metav1.ConditionTrue {
				t.Errorf("Reconciling and Stalled both True")
			}
		})
	}
	degraded := &metav1.Condition{Type: scalestackv1alpha1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: scalestackv1alpha1.ReasonReconcileFailed,
		LastTransitionTime: metav1.NewTime(now)}
	if got := failingSince(degraded); !got.Equal(now) {
		t.Errorf("failingSince = %v", got)
	}
	degraded.Reason = scalestackv1alpha1.ReasonUnavailable
	if got := failingSince(degraded); !got.IsZero() {
		t.Errorf("failingSince of an unavailable component = %v, want zero", got)
	}
}

func TestKeepOwnManagedFields(t *testing.T) {
	obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{ManagedFields: []metav1.ManagedFieldsEntry{
		{Manager: "kubectl"}, {Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply}, {Manager: "argocd-controller"},
		{Manager: AutoscalerFieldManager, Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "scale"},
	}}}
	out, _ := keepOwnManagedFields(obj)
	got := out.(*corev1.ConfigMap).ManagedFields
	if len(got) != 2 || got[0].Manager != FieldManager || got[1].Manager != AutoscalerFieldManager {
		t.Errorf("managedFields after transform: %+v", got)
	}
}

func TestSameApplied(t *testing.T) {
	a := map[string]any{"x": map[string]any{}}
	b := map[string]any{"x": map[string]any{}}
	if same, err := sameApplied(a, b); err != nil || !same {
		t.Errorf("equal configurations differ: %v %v", same, err)
	}
	if same, _ := sameApplied(map[string]any{"x": 1}, map[string]any{"x": 2}); same {
		t.Errorf("different configurations equal")
	}
}

func TestSLOCondition(t *testing.T) {
	cases := []struct {
		name   string
		o      sloObservation
		status metav1.ConditionStatus
		reason string
	}{
		{"within budget", sloObservation{enabled: true}, metav1.ConditionTrue, "WithinBudget"},
		{"metrics unavailable", sloObservation{enabled: true, metricsErr: errors.New("refused"), fast: []string{"gateway"}}, metav1.ConditionUnknown, "MetricsUnavailable"},
		{"bottleneck", sloObservation{enabled: true, fast: []string{"gateway"}, bottleneck: "database (connections)"}, metav1.ConditionFalse, "BottleneckDetected"},
		{"fast burn", sloObservation{enabled: true, fast: []string{"feed"}}, metav1.ConditionFalse, "FastBurn"},
		{"slow burn", sloObservation{enabled: true, slow: []string{"post"}}, metav1.ConditionFalse, "SlowBurn"},
		{"a bottleneck without burn is not the SLO's business", sloObservation{enabled: true, bottleneck: "cache (memory)"}, metav1.ConditionTrue, "WithinBudget"},
	}
	for _, tc := range cases {
		c := sloCondition(tc.o)
		if c.Status != tc.status || c.Reason != tc.reason || c.Message == "" {
			t.Errorf("%s: got %s/%s %q", tc.name, c.Status, c.Reason, c.Message)
		}
	}
}

func TestMonitoringCondition(t *testing.T) {
	if c := monitoringCondition(monitoringObservation{missing: true}); c.Status != metav1.ConditionFalse || c.Reason != scalestackv1alpha1.ReasonPrometheusOperatorNotInstalled {
		t.Errorf("missing: %+v", c)
	}
	if c := monitoringCondition(monitoringObservation{rules: 97, monitors: 7}); c.Status != metav1.ConditionTrue {
		t.Errorf("applied: %+v", c)
	}
}

func TestKafkaCondition(t *testing.T) {
	cases := []struct {
		o      kafkaObservation
		reason string
	}{
		{kafkaObservation{strimziMissing: true}, scalestackv1alpha1.ReasonStrimziNotInstalled},
		{kafkaObservation{mode: scalestackv1alpha1.KafkaModeExternal, unreachable: errors.New("dial")}, scalestackv1alpha1.ReasonKafkaUnreachable},
		{kafkaObservation{mode: scalestackv1alpha1.KafkaModeStrimzi, clusterMessage: "pods pending"}, scalestackv1alpha1.ReasonClusterNotReady},
		{kafkaObservation{mode: scalestackv1alpha1.KafkaModeExternal, topics: []scalestackv1alpha1.TopicStatus{{Name: "a", Ready: false}}, topicMessages: []string{"a: shrink"}}, scalestackv1alpha1.ReasonTopicsNotReady},
		{kafkaObservation{mode: scalestackv1alpha1.KafkaModeExternal, topics: []scalestackv1alpha1.TopicStatus{{Name: "a", Ready: true}}}, scalestackv1alpha1.ReasonAvailable},
	}
	for _, tc := range cases {
		if c := kafkaCondition(tc.o); c.Reason != tc.reason {
			t.Errorf("%+v: reason %s, want %s", tc.o, c.Reason, tc.reason)
		}
	}
}

func TestSubset(t *testing.T) {
	want := map[string]any{"spec": map[string]any{"partitions": int64(6), "config": map[string]any{"a": "b"}}}
	have := map[string]any{"spec": map[string]any{"partitions": float64(6), "config": map[string]any{"a": "b", "x": "y"}, "extra": true}}
	if !subset(want, have) {
		t.Error("a live object with extra fields and float numbers is not a superset")
	}
	have["spec"].(map[string]any)["partitions"] = float64(12)
	if subset(want, have) {
		t.Error("a changed value passed")
	}
}

func TestDatabaseReadyMessageOnlyClaimsWritesThatWereChecked(t *testing.T) {
	pod := func(name, containerID string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{
			ContainerStatuses: []corev1.ContainerStatus{{Name: "database", ContainerID: "containerd://db"}, {Name: "agent", ContainerID: containerID, Ready: true}}}}
	}
	names := []string{"demo-shard-0-primary-0", "demo-shard-1-primary-0"}
	real := map[string]*corev1.Pod{names[0]: pod(names[0], "containerd://abc"), names[1]: pod(names[1], "containerd://def")}
	if got := unexecuted(names, real, "agent"); len(got) != 0 {
		t.Fatalf("real pods counted as unexecuted: %v", got)
	}
	msg := databaseReadyMessage(2, "MariaDB", 2, 2, unexecuted(names, real, "agent"))
	if !strings.Contains(msg, "every primary accepts writes") {
		t.Errorf("real primaries: %q", msg)
	}
	// kwok marks pods Ready with container statuses that no runtime wrote: no container IDs.
	simulated := map[string]*corev1.Pod{names[0]: pod(names[0], ""), names[1]: pod(names[1], "containerd://def")}
	got := unexecuted(names, simulated, "agent")
	if len(got) != 1 || got[0] != "demo-shard-0-primary-0" {
		t.Fatalf("unexecuted: %v", got)
	}
	// A primary pod never observed was not checked either.
	if got := unexecuted(names, map[string]*corev1.Pod{names[0]: real[names[0]]}, "agent"); len(got) != 1 || got[0] != names[1] {
		t.Fatalf("unobserved pod: %v", got)
	}
	msg = databaseReadyMessage(2, "MariaDB", 2, 2, got)
	if strings.Contains(msg, "accepts writes (") || !strings.Contains(msg, "demo-shard-0-primary-0") || !strings.Contains(msg, "simulated") {
		t.Errorf("simulated primaries: %q", msg)
	}
}

func TestWithFailuresReportsAFailedPhaseOnItsCondition(t *testing.T) {
	up := []metav1.Condition{
		{Type: scalestackv1alpha1.ConditionAppsReady, Status: metav1.ConditionTrue, Reason: scalestackv1alpha1.ReasonAvailable},
		{Type: scalestackv1alpha1.ConditionDatabaseReady, Status: metav1.ConditionTrue, Reason: scalestackv1alpha1.ReasonAvailable},
	}
	got := withFailures(up, map[string]error{scalestackv1alpha1.ConditionDatabaseReady: errors.New("database: applying StatefulSet demo-shard-0-primary: Forbidden")})
	if got[0] != up[0] {
		t.Errorf("AppsReady changed by another phase's failure: %+v", got[0])
	}
	if got[1].Status != metav1.ConditionFalse || got[1].Reason != scalestackv1alpha1.ReasonApplyFailed || !strings.Contains(got[1].Message, "demo-shard-0-primary") {
		t.Errorf("DatabaseReady after its phase failed: %+v", got[1])
	}
}

// managedReplicas is a managedFields entry owning spec.replicas.
func managedReplicas(manager string, op metav1.ManagedFieldsOperationType) metav1.ManagedFieldsEntry {
	return metav1.ManagedFieldsEntry{Manager: manager, Operation: op, FieldsV1: metav1.NewFieldsV1(`{"f:spec":{"f:replicas":{},"f:template":{}}}`)}
}

func TestPlanHandoverNeverLeavesReplicasWithoutAnOwner(t *testing.T) {
	sp := &scalestackv1alpha1.SocialPlatform{ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "ns"}}
	sp.Spec.Apps.Feed.Replicas = ptr.To[int32](3)
	sp.Spec.Apps.Feed.MinReplicas = ptr.To[int32](4)
	deployment := func(replicas int32, entries ...metav1.ManagedFieldsEntry) map[scalestackv1alpha1.Component]*appsv1.Deployment {
		return map[scalestackv1alpha1.Component]*appsv1.Deployment{scalestackv1alpha1.ComponentFeed: {
			ObjectMeta: metav1.ObjectMeta{Name: "demo-feed", ManagedFields: entries},
			Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(replicas)},
		}}
	}
	noFields := metav1.ManagedFieldsEntry{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, FieldsV1: metav1.NewFieldsV1(`{"f:spec":{"f:template":{}}}`)}
	cases := []struct {
		name        string
		autoscaling bool
		live        map[scalestackv1alpha1.Component]*appsv1.Deployment
		takeOver    map[string]int32
		release     []string
	}{
		{"turned on: the autoscaler takes the live value first", true, deployment(7, managedReplicas(FieldManager, metav1.ManagedFieldsOperationApply)), map[string]int32{"demo-feed": 7}, nil},
		{"on, created without replicas: the spec's value within min..max", true, deployment(1, noFields), map[string]int32{"demo-feed": 4}, nil},
		{"on, already the autoscaler's (scale subresource)", true, deployment(5, noFields, managedReplicas(AutoscalerFieldManager, metav1.ManagedFieldsOperationUpdate)), map[string]int32{}, nil},
		{"turned off: the autoscaler's applied claim is released", false, deployment(5, managedReplicas(AutoscalerFieldManager, metav1.ManagedFieldsOperationApply)), map[string]int32{}, []string{"demo-feed"}},
		{"off, nothing of the autoscaler's", false, deployment(3, managedReplicas(FieldManager, metav1.ManagedFieldsOperationApply)), map[string]int32{}, nil},
		{"not created yet", true, nil, map[string]int32{}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sp.Spec.SLO.Autoscaling.Enabled = tc.autoscaling
			h := planHandover(sp, tc.live)
			if !maps.Equal(h.takeOver, tc.takeOver) || !slices.Equal(h.release, tc.release) {
				t.Errorf("plan %+v, want takeOver %v release %v", h, tc.takeOver, tc.release)
			}
		})
	}
}

func TestConnectionBudgetSaysWhichLimitBinds(t *testing.T) {
	ready := metav1.Condition{Type: scalestackv1alpha1.ConditionDatabaseReady, Status: metav1.ConditionTrue,
		Reason: scalestackv1alpha1.ReasonAvailable, Message: "2 shards"}
	sp := &scalestackv1alpha1.SocialPlatform{}
	got := connectionBudget(ready, render.Sizing(sp))
	if got.Reason != scalestackv1alpha1.ReasonAvailable || !strings.Contains(got.Message, "max_connections 500, 16 per app pod for up to 30 app pods") {
		t.Errorf("default sizing: %+v", got)
	}
	// 128Mi of database memory allows 100 connections: 3 x 50 pods cannot have 2 each.
	fifty := ptr.To[int32](50)
	sp.Spec.Apps.User.MaxReplicas, sp.Spec.Apps.Post.MaxReplicas, sp.Spec.Apps.Worker.MaxReplicas = fifty, fifty, fifty
	sp.Spec.Database.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")}}
	got = connectionBudget(ready, render.Sizing(sp))
	if got.Status != metav1.ConditionTrue || got.Reason != scalestackv1alpha1.ReasonConnectionBudgetExceeded ||
		!strings.Contains(got.Message, "max_connections is 100") || !strings.Contains(got.Message, "150 app pods") ||
		!strings.Contains(got.Message, "spec.database.resources memory") {
		t.Errorf("binding budget: %+v", got)
	}
	// A tier that is not ready keeps its own verdict.
	down := metav1.Condition{Type: ready.Type, Status: metav1.ConditionFalse, Reason: scalestackv1alpha1.ReasonUnavailable}
	if got := connectionBudget(down, render.Sizing(sp)); got != down {
		t.Errorf("not ready: %+v", got)
	}
}

func TestExportConditions(t *testing.T) {
	conds := []metav1.Condition{
		{Type: scalestackv1alpha1.ConditionReady, Status: metav1.ConditionFalse},
		{Type: scalestackv1alpha1.ConditionStalled, Status: metav1.ConditionTrue},
	}
	exportConditions("shop", "demo", conds)
	defer forgetConditions("shop", "demo")
	for _, tc := range []struct {
		cond, status string
		want         float64
	}{
		{"Ready", "False", 1}, {"Ready", "True", 0}, {"Stalled", "True", 1}, {"Degraded", "Unknown", 1}, {"Degraded", "True", 0},
	} {
		if got := testutil.ToFloat64(platformConditions.WithLabelValues("shop", "demo", tc.cond, tc.status)); got != tc.want {
			t.Errorf("%s=%s: %v, want %v", tc.cond, tc.status, got, tc.want)
		}
	}
	forgetConditions("shop", "demo")
	if n := testutil.CollectAndCount(platformConditions); n != 0 {
		t.Errorf("%d series left after the platform is gone", n)
	}
}

func TestRecordCountsChildWritesByKind(t *testing.T) {
	created := testutil.ToFloat64(childWrites.WithLabelValues("Deployment", string(resultCreated)))
	updated := testutil.ToFloat64(childWrites.WithLabelValues("Deployment", string(resultUpdated)))
	unchanged := testutil.ToFloat64(childWrites.WithLabelValues("Deployment", string(resultUnchanged)))
	s := &scope{}
	s.record("Deployment", "demo-gateway", resultCreated)
	s.record("Deployment", "demo-user", resultUpdated)
	s.record("Deployment", "demo-post", resultUnchanged)
	if d := testutil.ToFloat64(childWrites.WithLabelValues("Deployment", string(resultCreated))) - created; d != 1 {
		t.Errorf("created counted %v times, want 1", d)
	}
	if d := testutil.ToFloat64(childWrites.WithLabelValues("Deployment", string(resultUpdated))) - updated; d != 1 {
		t.Errorf("updated counted %v times, want 1", d)
	}
	if d := testutil.ToFloat64(childWrites.WithLabelValues("Deployment", string(resultUnchanged))) - unchanged; d != 0 {
		t.Errorf("an unchanged child counted as a write %v times", d)
	}
	if s.created != 1 || len(s.changed) != 2 {
		t.Errorf("scope recorded created=%d changed=%v, want 1 and two changes", s.created, s.changed)
	}
}
