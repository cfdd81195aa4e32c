package controllers

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

// The kstatus conditions (Reconciling, Stalled): what kubectl wait, Flux and cli-utils read, and
// what makes Argo CD's health check say Degraded for a platform that cannot converge. Like the
// rest of status, pure functions of this pass's observations, each table-tested (status_test.go).

// progressDeadline is how long a reconcile may keep failing (Degraded) before the platform is
// Stalled, as a Deployment's progressDeadlineSeconds: a failure that outlasts it needs a person.
const progressDeadline = 10 * time.Minute

// failingSince is when the platform last turned Degraded because a reconcile failed; zero when
// it is not failing.
func failingSince(degraded *metav1.Condition) time.Time {
	if degraded == nil || degraded.Status != metav1.ConditionTrue || degraded.Reason != scalestackv1alpha1.ReasonReconcileFailed {
		return time.Time{}
	}
	return degraded.LastTransitionTime.Time
}

// stalledCondition is True when the operator cannot converge the platform on its own: the API
// server refused a child (retrying the same spec gets the same answer), the spec asks for what
// the cluster cannot do (storage that cannot grow), a Deployment's rollout exceeded its deadline,
// or a reconcile has kept failing since before the progress deadline.
func stalledCondition(conds []metav1.Condition, reconcileErr error, failingSince, now time.Time) metav1.Condition {
	c := metav1.Condition{Type: scalestackv1alpha1.ConditionStalled, Status: metav1.ConditionFalse,
		Reason: scalestackv1alpha1.ReasonAsExpected, Message: "Nothing prevents the operator from converging the platform"}
	var stuck []string
	stuckReason := ""
	for _, cc := range conds {
		if cc.Reason == scalestackv1alpha1.ReasonStorageResizeUnsupported || cc.Reason == scalestackv1alpha1.ReasonProgressDeadlineExceeded {
			stuck = append(stuck, cc.Type+": "+cc.Message)
			stuckReason = cmp.Or(stuckReason, cc.Reason)
		}
	}
	switch {
	case reconcileErr != nil && isInvalidSpec(reconcileErr):
		c.Status, c.Reason = metav1.ConditionTrue, scalestackv1alpha1.ReasonInvalidSpec
		c.Message = truncate("Nothing of this spec was applied; change it (or the namespace's policy): "+reconcileErr.Error(), 1024)
	case reconcileErr != nil && rejected(reconcileErr):
		c.Status, c.Reason = metav1.ConditionTrue, scalestackv1alpha1.ReasonChildRejected
		c.Message = truncate("The API server refused a child; change the spec (or the namespace's policy): "+reconcileErr.Error(), 1024)
	case reconcileErr != nil && !failingSince.IsZero() && now.Sub(failingSince) >= progressDeadline:
		c.Status, c.Reason = metav1.ConditionTrue, scalestackv1alpha1.ReasonProgressDeadlineExceeded
		c.Message = truncate(fmt.Sprintf("Reconciling has failed for %v: %s", now.Sub(failingSince).Round(time.Second), reconcileErr.Error()), 1024)
	case len(stuck) > 0:
		c.Status, c.Reason = metav1.ConditionTrue, stuckReason
		c.Message = truncate(strings.Join(stuck, "; "), 1024)
	}
	return c
}

// rejected says whether err holds an API server answer that retrying the same request cannot
// change: invalid, bad request, forbidden (RBAC, admission policies, ResourceQuota), too large.
// Conflicts, timeouts, throttling and unavailability are transient.
func rejected(err error) bool {
	if st, ok := err.(apierrors.APIStatus); ok {
		switch st.Status().Reason {
		case metav1.StatusReasonInvalid, metav1.StatusReasonBadRequest, metav1.StatusReasonForbidden,
			metav1.StatusReasonRequestEntityTooLarge, metav1.StatusReasonMethodNotAllowed,
			metav1.StatusReasonNotAcceptable, metav1.StatusReasonUnsupportedMediaType:
			return true
		}
	}
	switch u := err.(type) { //nolint:errorlint // walking the tree by hand, to see every branch of a join
	case interface{ Unwrap() []error }:
		return slices.ContainsFunc(u.Unwrap(), rejected)
	case interface{ Unwrap() error }:
		if inner := u.Unwrap(); inner != nil {
			return rejected(inner)
		}
	}
	return false
}

// reconcilingCondition is True while the operator works towards the current spec: anything but
// a platform that is Ready with nothing changing, paused, or Stalled (kstatus reads Reconciling
// before Stalled, so the two are never True together).
func reconcilingCondition(ready, progressing, stalled metav1.Condition, reconcileErr error, paused, deleting bool) metav1.Condition {
	c := metav1.Condition{Type: scalestackv1alpha1.ConditionReconciling, Status: metav1.ConditionTrue}
	switch {
	case deleting:
		c.Reason, c.Message = scalestackv1alpha1.ReasonDeleting, "The platform is being torn down"
	case paused:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, scalestackv1alpha1.ReasonPaused, "spec.paused is true: the operator changes nothing"
	case stalled.Status == metav1.ConditionTrue:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, stalled.Reason, "Stalled: the operator cannot converge the platform without a change"
	case reconcileErr != nil:
		c.Reason, c.Message = scalestackv1alpha1.ReasonReconcileFailed, truncate("Retrying after: "+reconcileErr.Error(), 1024)
	case progressing.Status == metav1.ConditionTrue:
		c.Reason, c.Message = progressing.Reason, progressing.Message
	case ready.Status != metav1.ConditionTrue:
		c.Reason, c.Message = ready.Reason, ready.Message
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, scalestackv1alpha1.ReasonReconciled, "The platform matches its spec"
	}
	return c
}
