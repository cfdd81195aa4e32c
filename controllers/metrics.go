package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// autoscalerDecisions counts every autoscaler decision, exported on the operator's metrics
// endpoint.
var autoscalerDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "scalestack_autoscaler_decisions_total",
	Help: "SLO-burn autoscaler decisions by platform, service, action and reason.",
}, []string{"namespace", "platform", "service", "action", "reason"})

// platformConditions exports each platform's summary conditions the way kube-state-metrics
// exports a Pod's: one series per status, 1 for the current one. The operator's own alerts
// (config/prometheus) read it: a platform Stalled or not Ready for long.
var platformConditions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "scalestack_platform_condition",
	Help: "A SocialPlatform's Ready, Degraded, Reconciling and Stalled conditions: 1 for the condition's current status.",
}, []string{"namespace", "platform", "condition", "status"})

// preflightDryRuns counts the preflight's server-side dry-run requests (preflight.go). They are
// not writes (nothing is stored); the operator benchmark subtracts them from the client's
// non-GET requests to count writes.
var preflightDryRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "scalestack_preflight_dry_runs_total",
	Help: "Server-side dry-run requests the preflight sent, by whether the API server accepted the child.",
}, []string{"result"})

// childWrites counts the children the reconciler created or changed, by kind: which kind keeps
// being rewritten is the first question when writes per child rise (docs/benchmarks.md).
var childWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "scalestack_child_writes_total",
	Help: "Server-side applies that created or changed a child, by the child's kind and whether it was created or updated.",
}, []string{"kind", "result"})

// exportedConditions are the conditions platformConditions carries.
var exportedConditions = []string{"Ready", "Degraded", "Reconciling", "Stalled"}

// exportConditions sets platformConditions from a platform's conditions.
func exportConditions(namespace, name string, conds []metav1.Condition) {
	for _, typ := range exportedConditions {
		cur := metav1.ConditionUnknown
		if c := meta.FindStatusCondition(conds, typ); c != nil {
			cur = c.Status
		}
		for _, st := range []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown} {
			v := 0.0
			if st == cur {
				v = 1
			}
			platformConditions.WithLabelValues(namespace, name, typ, string(st)).Set(v)
		}
	}
}

// forgetConditions drops a platform's series once it is gone.
func forgetConditions(namespace, name string) {
	platformConditions.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "platform": name})
}

func init() {
	metrics.Registry.MustRegister(autoscalerDecisions, platformConditions, preflightDryRuns, childWrites)
}
