package controllers

import (
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

// CacheOptions limits the manager's cache to what the operator owns: SocialPlatforms, and
// children carrying the managed-by label. Unrelated ConfigMaps, Secrets and Deployments in the
// cluster never enter memory, so the operator's footprint stays flat however big the cluster is.
// Each cached object keeps only this operator's managedFields entry. StorageClasses are the
// cluster's own (few, read to know whether claims can grow). namespaces, when given, are the only
// ones the operator watches (and so reconciles platforms in); none means every namespace. Pods,
// which the operator only reads (status, labels, annotations, owners), are kept without their spec.
func CacheOptions(namespaces ...string) cache.Options {
	owned := labels.SelectorFromSet(labels.Set{scalestackv1alpha1.LabelManagedBy: scalestackv1alpha1.ManagedByValue})
	var watched map[string]cache.Config
	for _, ns := range namespaces {
		if watched == nil {
			watched = map[string]cache.Config{}
		}
		watched[ns] = cache.Config{}
	}
	return cache.Options{
		DefaultNamespaces:    watched,
		DefaultLabelSelector: owned,
		DefaultTransform:     keepOwnManagedFields,
		ByObject: map[client.Object]cache.ByObject{
			&scalestackv1alpha1.SocialPlatform{}: {Label: labels.Everything()},
			&storagev1.StorageClass{}:            {Label: labels.Everything()},
			&corev1.Pod{}:                        {Transform: podWithoutSpec},
		},
	}
}

// podWithoutSpec is the pods' cache transform: no managedFields entry of ours (the operator never
// applies pods) and no spec (the containers, volumes and probes the operator rendered itself and
// never reads back from a pod). A pod read from the cache must not be written back whole; the
// operator only deletes pods and merge-patches their annotations.
func podWithoutSpec(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	p.ManagedFields = nil
	p.Spec = corev1.PodSpec{NodeName: p.Spec.NodeName}
	return p, nil
}
