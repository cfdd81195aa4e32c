package controllers

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

// The functions in this file compute conditions from observations. They read no clock and no
// client, so each has a table test; the reconciler stamps observedGeneration and transition
// times when it sets them.

// workloadObservation is what status needs to know about one Deployment or StatefulSet.
type workloadObservation struct {
	Name string
	// Exists is false when the workload has not been created (or was deleted).
	Exists bool
	// Current is true when the workload's controller has seen its latest spec.
	Current bool
	// Desired, Updated and Ready count replicas.
	Desired, Updated, Ready int32
	// Stalled is true when the workload's controller gave up progressing (deadline exceeded).
	Stalled bool
}

// observeDeployment turns a Deployment into a workloadObservation; nil means not found.
func observeDeployment(name string, d *appsv1.Deployment) workloadObservation {
	if d == nil {
		return workloadObservation{Name: name}
	}
	o := workloadObservation{
		Name:    name,
		Exists:  true,
		Current: d.Status.ObservedGeneration >= d.Generation,
		Desired: 1,
		Updated: d.Status.UpdatedReplicas,
		Ready:   d.Status.ReadyReplicas,
	}
	if d.Spec.Replicas != nil {
		o.Desired = *d.Spec.Replicas
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			o.Stalled = true
		}
	}
	return o
}

// observeStatefulSet turns a StatefulSet into a workloadObservation; nil means not found.
func observeStatefulSet(name string, sts *appsv1.StatefulSet) workloadObservation {
	if sts == nil {
		return workloadObservation{Name: name}
	}
	o := workloadObservation{
		Name:    name,
		Exists:  true,
		Current: sts.Status.ObservedGeneration >= sts.Generation,
		Desired: 1,
		Updated: sts.Status.UpdatedReplicas,
		Ready:   sts.Status.ReadyReplicas,
	}
	if sts.Spec.Replicas != nil {
		o.Desired = *sts.Spec.Replicas
	}
	return o
}

// rolledOut says the workload runs its current spec with every replica updated and ready.
func (o workloadObservation) rolledOut() bool {
	return o.Exists && o.Current && o.Updated >= o.Desired && o.Ready >= o.Desired
}

// workloadsCondition computes a component's readiness condition (e.g. AppsReady) from its
// workloads. Missing workloads make it Creating, stalled or fully unavailable ones Unavailable,
// anything else short of rolled out RollingOut.
func workloadsCondition(condType string, ws []workloadObservation) metav1.Condition {
	var missing, stalled, down, rolling []string
	for _, w := range ws {
		switch {
		case !w.Exists:
			missing = append(missing, w.Name)
		case w.Stalled:
			stalled = append(stalled, w.Name)
		case w.Desired > 0 && w.Ready == 0 && w.Current && w.Updated >= w.Desired:
			down = append(down, w.Name)
		case !w.rolledOut():
			rolling = append(rolling, fmt.Sprintf("%s (%d/%d ready)", w.Name, w.Ready, w.Desired))
		}
	}
	c := metav1.Condition{Type: condType, Status: metav1.ConditionFalse}
	switch {
	case len(stalled) > 0:
		c.Reason = scalestackv1alpha1.ReasonUnavailable
		c.Message = "Rollout stalled (progress deadline exceeded): " + strings.Join(stalled, ", ")
	case len(down) > 0:
		c.Reason = scalestackv1alpha1.ReasonUnavailable
		c.Message = "No ready replica: " + strings.Join(down, ", ")
	case len(missing) > 0:
		c.Reason = scalestackv1alpha1.ReasonCreating
		c.Message = "Not created yet: " + strings.Join(missing, ", ")
	case len(rolling) > 0:
		c.Reason = scalestackv1alpha1.ReasonRollingOut
		c.Message = "Rolling out: " + strings.Join(rolling, ", ")
	default:
		c.Status = metav1.ConditionTrue
		c.Reason = scalestackv1alpha1.ReasonAvailable
		c.Message = fmt.Sprintf("All %d workloads available", len(ws))
	}
	return c
}

// readyCondition summarises the component conditions. A failed reconcile, a pause or a
// deletion make the platform not Ready whatever its components say, because the operator is not
// keeping it converged.
func readyCondition(components []metav1.Condition, reconcileErr error, paused, deleting bool) metav1.Condition {
	c := metav1.Condition{Type: scalestackv1alpha1.ConditionReady, Status: metav1.ConditionFalse}
	var notReady []string
	for _, cc := range components {
		if cc.Status != metav1.ConditionTrue {
			notReady = append(notReady, fmt.Sprintf("%s (%s)", cc.Type, cc.Reason))
		}
	}
	switch {
	case deleting:
		c.Reason = scalestackv1alpha1.ReasonDeleting
		c.Message = "The platform is being torn down"
	case paused:
		c.Status = metav1.ConditionUnknown
		c.Reason = scalestackv1alpha1.ReasonPaused
		c.Message = "spec.paused is true: the operator changes nothing until it is false"
	case reconcileErr != nil:
		c.Reason = scalestackv1alpha1.ReasonReconcileFailed
		c.Message = truncate(reconcileErr.Error(), 1024)
	case len(notReady) > 0:
		c.Reason = scalestackv1alpha1.ReasonComponentsNotReady
		c.Message = "Not ready: " + strings.Join(notReady, ", ")
	default:
		c.Status = metav1.ConditionTrue
		c.Reason = scalestackv1alpha1.ReasonReconciled
		c.Message = "Every component is ready"
	}
	return c
}

// progressingCondition is True while the operator created or changed children in this pass, or
// a component is still creating or rolling out.
func progressingCondition(components []metav1.Condition, changed []string) metav1.Condition {
	c := metav1.Condition{Type: scalestackv1alpha1.ConditionProgressing, Status: metav1.ConditionFalse,
		Reason: scalestackv1alpha1.ReasonStable, Message: "No change in progress"}
	var moving []string
	for _, cc := range components {
		if cc.Reason == scalestackv1alpha1.ReasonCreating || cc.Reason == scalestackv1alpha1.ReasonRollingOut {
			moving = append(moving, cc.Type)
		}
	}
	switch {
	case len(changed) > 0:
		c.Status = metav1.ConditionTrue
		c.Reason = scalestackv1alpha1.ReasonRollingOut
		c.Message = truncate(fmt.Sprintf("Applied %d changed objects: %s", len(changed), strings.Join(changed, ", ")), 1024)
	case len(moving) > 0:
		c.Status = metav1.ConditionTrue
		c.Reason = scalestackv1alpha1.ReasonRollingOut
		c.Message = "Converging: " + strings.Join(moving, ", ")
	}
	return c
}

// degradedCondition is True when the reconcile failed or a component is Unavailable: something
// needs a person's attention, as opposed to merely being on its way.
func degradedCondition(components []metav1.Condition, reconcileErr error) metav1.Condition {
	c := metav1.Condition{Type: scalestackv1alpha1.ConditionDegraded, Status: metav1.ConditionFalse,
		Reason: scalestackv1alpha1.ReasonAsExpected, Message: "Nothing is degraded"}
	var bad []string
	for _, cc := range components {
		if cc.Status == metav1.ConditionFalse && cc.Reason == scalestackv1alpha1.ReasonUnavailable {
			bad = append(bad, cc.Type+": "+cc.Message)
		}
	}
	switch {
	case reconcileErr != nil:
		c.Status = metav1.ConditionTrue
		c.Reason = scalestackv1alpha1.ReasonReconcileFailed
		c.Message = truncate(reconcileErr.Error(), 1024)
	case len(bad) > 0:
		c.Status = metav1.ConditionTrue
		c.Reason = scalestackv1alpha1.ReasonUnavailable
		c.Message = truncate(strings.Join(bad, "; "), 1024)
	}
	return c
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
