package controllers

import (
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
// ones the operator watches (and so reconciles platforms in); none means every namespace.
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
		},
	}
}
