package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
)

// teardown deletes a platform's children in order (apps, then topics, then Kafka, then data)
// and removes the finalizer when done. Each step waits for the previous one's objects to be gone,
// so the apps stop writing before the data they write to goes away. What is not deleted here is
// garbage-collected through owner references once the finalizer is removed.
func (r *SocialPlatformReconciler) teardown(ctx context.Context, s *scope) (ctrl.Result, error) {
	sp := s.sp
	if !controllerutil.ContainsFinalizer(sp, scalestackv1alpha1.Finalizer) {
		s.gone = true
		return ctrl.Result{}, nil
	}
	log := ctrl.LoggerFrom(ctx)

	remaining, err := r.deleteApps(ctx, sp)
	if err != nil {
		return ctrl.Result{}, err
	}
	if remaining > 0 {
		log.V(1).Info("Waiting for app Deployments to go", "remaining", remaining)
		return ctrl.Result{RequeueAfter: requeueTeardown}, nil
	}

	remaining, err = r.deleteKafka(ctx, sp)
	if err != nil {
		return ctrl.Result{}, err
	}
	if remaining > 0 {
		log.V(1).Info("Waiting for the Kafka topics and cluster to go", "remaining", remaining)
		return ctrl.Result{RequeueAfter: requeueTeardown}, nil
	}

	remaining, err = r.deleteData(ctx, sp)
	if err != nil {
		return ctrl.Result{}, err
	}
	if remaining > 0 {
		log.V(1).Info("Waiting for the data tier to go", "remaining", remaining)
		return ctrl.Result{RequeueAfter: requeueTeardown}, nil
	}

	patch := client.MergeFromWithOptions(sp.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(sp, scalestackv1alpha1.Finalizer)
	if err := r.Client.Patch(ctx, sp, patch); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("removing finalizer: %w", err)
	}
	s.gone = true
	r.forgetPreflight(sp.UID)
	r.Recorder.Eventf(sp, nil, corev1.EventTypeNormal, scalestackv1alpha1.EventTeardownComplete, "Delete", "Children deleted in order; the rest follows by garbage collection")
	log.Info("Teardown complete")
	return ctrl.Result{}, nil
}

// deleteApps deletes the app Deployments and returns how many still exist.
func (r *SocialPlatformReconciler) deleteApps(ctx context.Context, sp *scalestackv1alpha1.SocialPlatform) (int, error) {
	remaining := 0
	for _, c := range appComponents() {
		d := &appsv1.Deployment{}
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: sp.Namespace, Name: sp.ComponentName(c)}, d)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("getting deployment %s: %w", sp.ComponentName(c), err)
		}
		if !metav1IsControlledBy(d, sp) {
			continue
		}
		remaining++
		if d.DeletionTimestamp.IsZero() {
			if err := r.Client.Delete(ctx, d, client.PropagationPolicy("Background")); client.IgnoreNotFound(err) != nil {
				return 0, fmt.Errorf("deleting deployment %s: %w", d.Name, err)
			}
			if remaining == 1 {
				r.Recorder.Eventf(sp, nil, corev1.EventTypeNormal, scalestackv1alpha1.EventTearingDown, "Delete", "Deleting the app Deployments first")
			}
		}
	}
	return remaining, nil
}

// deleteData deletes the shard and cache StatefulSets once the apps are gone, and, only under
// deletionPolicy Delete, the shards' volume claims and the credentials Secret. Under Retain (the
// default) neither is touched: their StatefulSets' claims carry no owner and the Secret has no
// owner reference, so nothing deletes them. Returns how many StatefulSets still exist.
func (r *SocialPlatformReconciler) deleteData(ctx context.Context, sp *scalestackv1alpha1.SocialPlatform) (int, error) {
	var list appsv1.StatefulSetList
	if err := r.Client.List(ctx, &list, client.InNamespace(sp.Namespace), client.MatchingLabels{scalestackv1alpha1.LabelInstance: sp.Name}); err != nil {
		return 0, fmt.Errorf("listing statefulsets: %w", err)
	}
	remaining := 0
	for i := range list.Items {
		sts := &list.Items[i]
		if !metav1IsControlledBy(sts, sp) {
			continue
		}
		remaining++
		if sts.DeletionTimestamp.IsZero() {
			if err := r.Client.Delete(ctx, sts, client.PropagationPolicy("Background")); client.IgnoreNotFound(err) != nil {
				return 0, fmt.Errorf("deleting statefulset %s: %w", sts.Name, err)
			}
		}
	}
	if remaining > 0 || render.Retained(sp) {
		return remaining, nil
	}
	var pvcs corev1.PersistentVolumeClaimList
	if err := r.Client.List(ctx, &pvcs, client.InNamespace(sp.Namespace), client.MatchingLabels{
		scalestackv1alpha1.LabelInstance: sp.Name, scalestackv1alpha1.LabelComponent: "database",
	}); err != nil {
		return 0, fmt.Errorf("listing volume claims: %w", err)
	}
	for i := range pvcs.Items {
		if err := r.Client.Delete(ctx, &pvcs.Items[i]); client.IgnoreNotFound(err) != nil {
			return 0, fmt.Errorf("deleting volume claim %s: %w", pvcs.Items[i].Name, err)
		}
	}
	secret := &corev1.Secret{}
	secret.Namespace, secret.Name = sp.Namespace, sp.DatabaseSecretName()
	if err := r.Client.Delete(ctx, secret); client.IgnoreNotFound(err) != nil {
		return 0, fmt.Errorf("deleting database secret: %w", err)
	}
	return 0, nil
}

// deleteKafka deletes the platform's KafkaTopics, then (once they are gone) its Kafka cluster and
// node pool. Under deletionPolicy Retain each KafkaTopic is first marked strimzi.io/managed=false,
// so Strimzi lets go of the resource without deleting the topic and its messages; the brokers'
// volumes are kept by deleteClaim: false. Returns how many objects still exist.
func (r *SocialPlatformReconciler) deleteKafka(ctx context.Context, sp *scalestackv1alpha1.SocialPlatform) (int, error) {
	version, err := r.strimziVersion()
	if err != nil || version == "" {
		return 0, err
	}
	list := func(kind string) ([]unstructured.Unstructured, error) {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(schema.GroupVersionKind{Group: render.StrimziGroup, Version: version, Kind: kind + "List"})
		if err := r.Client.List(ctx, l, client.InNamespace(sp.Namespace), client.MatchingLabels{scalestackv1alpha1.LabelInstance: sp.Name}); err != nil {
			return nil, fmt.Errorf("listing %s: %w", kind, err)
		}
		var owned []unstructured.Unstructured
		for _, u := range l.Items {
			if metav1IsControlledBy(&u, sp) {
				owned = append(owned, u)
			}
		}
		return owned, nil
	}
	del := func(items []unstructured.Unstructured, unmanage bool) error {
		for i := range items {
			u := &items[i]
			if !u.GetDeletionTimestamp().IsZero() {
				continue
			}
			if unmanage && u.GetAnnotations()["strimzi.io/managed"] != "false" {
				patch := client.MergeFrom(u.DeepCopy())
				ann := u.GetAnnotations()
				if ann == nil {
					ann = map[string]string{}
				}
				ann["strimzi.io/managed"] = "false"
				u.SetAnnotations(ann)
				if err := r.Client.Patch(ctx, u, patch); err != nil {
					return fmt.Errorf("unmanaging %s %s: %w", u.GetKind(), u.GetName(), err)
				}
			}
			if err := r.Client.Delete(ctx, u); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("deleting %s %s: %w", u.GetKind(), u.GetName(), err)
			}
		}
		return nil
	}
	topics, err := list("KafkaTopic")
	if err != nil {
		return 0, err
	}
	if len(topics) > 0 {
		return len(topics), del(topics, render.Retained(sp))
	}
	var cluster []unstructured.Unstructured
	for _, kind := range []string{"Kafka", "KafkaNodePool"} {
		items, err := list(kind)
		if err != nil {
			return 0, err
		}
		cluster = append(cluster, items...)
	}
	return len(cluster), del(cluster, false)
}
