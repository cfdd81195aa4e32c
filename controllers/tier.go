package controllers

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scalestack/scalestack/controllers/render"
)

// applyConcurrency bounds the applies one reconcile sends at once.
const applyConcurrency = 5

// applied is what applying one object of a tier did; live is the object as read before the
// apply, for unstructured kinds only, and nil when the apply wrote it (its status is then stale).
type applied struct {
	obj    render.Object
	result applyResult
	live   *unstructured.Unstructured
}

// applyTier converges a tier: its steps in order, the objects of a step concurrently, then the
// deletion of what it lists as absent. It returns what each object's apply did, in the tier's order.
func (r *SocialPlatformReconciler) applyTier(ctx context.Context, s *scope, t render.Tier) ([]applied, error) {
	var out []applied
	for _, step := range t.Steps {
		results := make([]applied, len(step))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(applyConcurrency)
		for i, obj := range step {
			g.Go(func() error {
				a, err := r.applyObject(gctx, s, obj, applyWrite)
				results[i] = a
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		out = append(out, results...)
	}
	for _, obj := range t.Absent {
		if err := r.deleteOwned(ctx, s, obj); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// applyObject applies one object of a tier with the no-op check of its kind, or dry-runs it.
func (r *SocialPlatformReconciler) applyObject(ctx context.Context, s *scope, obj render.Object, mode applyMode) (applied, error) {
	a := applied{obj: obj}
	var err error
	switch o := obj.(type) {
	case *corev1ac.ConfigMapApplyConfiguration:
		a.result, err = applyRecord(ctx, r.Client, s, "ConfigMap", o, &corev1.ConfigMap{}, corev1ac.ExtractConfigMap, mode)
	case *corev1ac.SecretApplyConfiguration:
		a.result, err = applyRecord(ctx, r.Client, s, "Secret", o, &corev1.Secret{}, corev1ac.ExtractSecret, mode)
	case *corev1ac.ServiceApplyConfiguration:
		a.result, err = applyRecord(ctx, r.Client, s, "Service", o, &corev1.Service{}, corev1ac.ExtractService, mode)
	case *corev1ac.ServiceAccountApplyConfiguration:
		a.result, err = applyRecord(ctx, r.Client, s, "ServiceAccount", o, &corev1.ServiceAccount{}, corev1ac.ExtractServiceAccount, mode)
	case *policyv1ac.PodDisruptionBudgetApplyConfiguration:
		a.result, err = applyRecord(ctx, r.Client, s, "PodDisruptionBudget", o, &policyv1.PodDisruptionBudget{}, policyv1ac.ExtractPodDisruptionBudget, mode)
	case *appsv1ac.DeploymentApplyConfiguration:
		a.result, err = applyRecord(ctx, r.Client, s, "Deployment", o, &appsv1.Deployment{}, appsv1ac.ExtractDeployment, mode)
	case *appsv1ac.StatefulSetApplyConfiguration:
		a.result, err = applyRecord(ctx, r.Client, s, "StatefulSet", o, &appsv1.StatefulSet{}, appsv1ac.ExtractStatefulSet, mode)
	case *networkingv1ac.NetworkPolicyApplyConfiguration:
		a.result, err = applyRecord(ctx, r.Client, s, "NetworkPolicy", o, &networkingv1.NetworkPolicy{}, networkingv1ac.ExtractNetworkPolicy, mode)
	case *networkingv1ac.IngressApplyConfiguration:
		a.result, err = applyRecord(ctx, r.Client, s, "Ingress", o, &networkingv1.Ingress{}, networkingv1ac.ExtractIngress, mode)
	case *batchv1ac.CronJobApplyConfiguration:
		a.result, err = applyRecord(ctx, r.Client, s, "CronJob", o, &batchv1.CronJob{}, batchv1ac.ExtractCronJob, mode)
	case *unstructured.Unstructured:
		a.live, a.result, err = r.applyUnstructured(ctx, s, o, mode)
	default:
		err = fmt.Errorf("render produced a %T, which the operator has no apply path for", obj)
	}
	return a, err
}

// applyRecord applies one child and records what changed.
func applyRecord[AC applyConfiguration, O client.Object](ctx context.Context, c client.Client, s *scope, kind string, desired AC, live O,
	extract func(O, string) (AC, error), mode applyMode,
) (applyResult, error) {
	res, err := apply(ctx, c, desired, live, extract, mode)
	if err != nil {
		return "", err
	}
	if mode != applyWrite {
		return res, nil
	}
	s.record(kind, deref(desired.GetName()), res)
	return res, nil
}

// deleteOwned deletes a child the spec no longer asks for, if the platform controls it.
func (r *SocialPlatformReconciler) deleteOwned(ctx context.Context, s *scope, absent render.Absent) error {
	obj, ok := absent.DeepCopyObject().(client.Object)
	if !ok {
		return fmt.Errorf("render listed a %T as absent, which is not an object", absent)
	}
	name := absent.GetName()
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.sp.Namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("getting %T %s: %w", obj, name, err)
	}
	if !metav1IsControlledBy(obj, s.sp) {
		return nil
	}
	if err := r.Client.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting %T %s: %w", obj, name, err)
	}
	s.note(fmt.Sprintf("%T/%s (deleted)", obj, name))
	return nil
}
