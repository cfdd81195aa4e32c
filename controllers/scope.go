package controllers

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

// scope carries one reconcile pass: the platform, what the pass changed, and what it observed.
// Nothing in it survives the pass: status is recomputed from the world every time.
type scope struct {
	sp       *scalestackv1alpha1.SocialPlatform
	original *scalestackv1alpha1.SocialPlatform

	// changed names the children created or updated in this pass, as "Kind/name"; created
	// counts the ones that did not exist.
	changed []string
	created int
	// deployments holds the app Deployments as observed (nil when missing).
	deployments map[scalestackv1alpha1.Component]*appsv1.Deployment

	paused     bool
	reconciled bool
	// gone is set when the teardown removed the finalizer: the object may no longer exist.
	gone bool
}

func newScope(sp *scalestackv1alpha1.SocialPlatform) *scope {
	return &scope{
		sp:          sp,
		original:    sp.DeepCopy(),
		deployments: map[scalestackv1alpha1.Component]*appsv1.Deployment{},
	}
}

// record notes what an apply did to a child.
func (s *scope) record(kind, name string, r applyResult) {
	if r != resultUnchanged {
		s.changed = append(s.changed, fmt.Sprintf("%s/%s", kind, name))
	}
	if r == resultCreated {
		s.created++
	}
}

// appsStatus fills the per-service status and returns the AppsReady condition.
func (s *scope) appsStatus() metav1.Condition {
	var ws []workloadObservation
	s.sp.Status.Services = s.sp.Status.Services[:0]
	ready := 0
	for _, c := range scalestackv1alpha1.AppComponents {
		d := s.deployments[c]
		w := observeDeployment(s.sp.ComponentName(c), d)
		ws = append(ws, w)
		if w.rolledOut() {
			ready++
		}
		st := scalestackv1alpha1.ServiceStatus{Name: string(c)}
		if d != nil {
			st.Replicas = w.Desired
			st.ReadyReplicas = d.Status.ReadyReplicas
			st.UpdatedReplicas = d.Status.UpdatedReplicas
		}
		s.sp.Status.Services = append(s.sp.Status.Services, st)
	}
	s.sp.Status.Summary.Apps = fmt.Sprintf("%d/%d", ready, len(scalestackv1alpha1.AppComponents))
	return workloadsCondition(scalestackv1alpha1.ConditionAppsReady, ws)
}
