package controllers

import (
	"context"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
)

// Who owns an app Deployment's spec.replicas changes when autoscaling is turned on or off. With
// server-side apply, a field whose last owner stops applying it is removed, and a Deployment
// without replicas runs one pod: handing over naively drops every service to 1 replica until the
// autoscaler raises it again. So the new owner always takes the field, at its current value,
// before the old owner lets go:
//
//   - on: the autoscaler applies the live replicas under its own field manager, then the apps
//     tier (which leaves replicas out) drops the reconciler's claim. A Deployment created while
//     autoscaling is on gets the spec's replicas, within minReplicas..maxReplicas, from the
//     autoscaler right after it is created.
//   - off: the apps tier applies spec's replicas under the reconciler's manager, then the
//     autoscaler's applied claim is released (an apply of nothing under its manager).

// replicaHandover is what reconcileApps does around the tier's apply.
type replicaHandover struct {
	// takeOver lists Deployments the autoscaler must own before the tier applies, with the value.
	takeOver map[string]int32
	// release lists Deployments whose autoscaler claim is released after the tier applies.
	release []string
}

// planHandover decides the handover from the Deployments as observed (nil when missing).
func planHandover(sp *scalestackv1alpha1.SocialPlatform, live map[scalestackv1alpha1.Component]*appsv1.Deployment) replicaHandover {
	h := replicaHandover{takeOver: map[string]int32{}}
	on := render.AutoscalingEnabled(sp)
	for _, c := range scalestackv1alpha1.AppComponents {
		d := live[c]
		if d == nil {
			continue
		}
		switch {
		case on && !ownsReplicas(d, AutoscalerFieldManager, ""):
			if ownsReplicas(d, FieldManager, metav1.ManagedFieldsOperationApply) && d.Spec.Replicas != nil {
				h.takeOver[d.Name] = *d.Spec.Replicas
			} else {
				h.takeOver[d.Name] = initialReplicas(sp, c)
			}
		case !on && ownsReplicas(d, AutoscalerFieldManager, metav1.ManagedFieldsOperationApply):
			h.release = append(h.release, d.Name)
		}
	}
	return h
}

// initialReplicas is where the autoscaler starts a service that it has not scaled yet.
func initialReplicas(sp *scalestackv1alpha1.SocialPlatform, c scalestackv1alpha1.Component) int32 {
	spec := sp.Spec.Apps.Service(c)
	return min(max(render.Replicas(spec), render.MinReplicas(spec)), render.MaxReplicas(spec))
}

// ownsReplicas reports whether manager (with operation, or any when "") owns spec.replicas.
func ownsReplicas(d *appsv1.Deployment, manager string, operation metav1.ManagedFieldsOperationType) bool {
	for _, e := range d.ManagedFields {
		if e.Manager != manager || (operation != "" && e.Operation != operation) || e.FieldsV1 == nil {
			continue
		}
		var fields struct {
			Spec map[string]json.RawMessage `json:"f:spec"`
		}
		if json.Unmarshal(e.FieldsV1.GetRawBytes(), &fields) == nil {
			if _, ok := fields.Spec["f:replicas"]; ok {
				return true
			}
		}
	}
	return false
}

// reconcileApps converges the app tier, handing spec.replicas over between the reconciler and the
// autoscaler without a dip.
func (r *SocialPlatformReconciler) reconcileApps(ctx context.Context, s *scope) error {
	sp := s.sp
	names := map[scalestackv1alpha1.Component]string{}
	for _, c := range scalestackv1alpha1.AppComponents {
		names[c] = sp.ComponentName(c)
	}
	live := map[scalestackv1alpha1.Component]*appsv1.Deployment{}
	if err := observeNamed(ctx, r, sp.Namespace, names, live); err != nil {
		return err
	}
	h := planHandover(sp, live)
	for name, replicas := range h.takeOver {
		if err := r.applyAutoscalerReplicas(ctx, s, name, &replicas); err != nil {
			return err
		}
	}
	applied, err := r.applyTier(ctx, s, render.AppsTier(sp, r.DefaultAppsImage))
	if err != nil {
		return err
	}
	if render.AutoscalingEnabled(sp) {
		// Created on this pass, without replicas: the autoscaler starts them at the spec's value.
		for _, a := range applied {
			if d, ok := a.obj.(*appsv1ac.DeploymentApplyConfiguration); ok && a.result == resultCreated {
				replicas := initialReplicas(sp, scalestackv1alpha1.Component(d.Labels[scalestackv1alpha1.LabelComponent]))
				if err := r.applyAutoscalerReplicas(ctx, s, deref(d.Name), &replicas); err != nil {
					return err
				}
			}
		}
	}
	for _, name := range h.release {
		if err := r.applyAutoscalerReplicas(ctx, s, name, nil); err != nil {
			return err
		}
	}
	return nil
}

// applyAutoscalerReplicas applies a Deployment's replicas under the autoscaler's field manager;
// nil releases the autoscaler's applied claim.
func (r *SocialPlatformReconciler) applyAutoscalerReplicas(ctx context.Context, s *scope, name string, replicas *int32) error {
	ac := appsv1ac.Deployment(name, s.sp.Namespace)
	change := fmt.Sprintf("Deployment/%s replicas handed to the reconciler", name)
	if replicas != nil {
		ac.WithSpec(appsv1ac.DeploymentSpec().WithReplicas(*replicas))
		change = fmt.Sprintf("Deployment/%s replicas (%d) handed to the autoscaler", name, *replicas)
	}
	if err := r.Client.Apply(ctx, ac, client.FieldOwner(AutoscalerFieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("handing over the replicas of Deployment %s: %w", name, err)
	}
	s.note(change)
	return nil
}
