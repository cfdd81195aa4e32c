package controllers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

func appComponents() []scalestackv1alpha1.Component { return scalestackv1alpha1.AppComponents }

// metav1IsControlledBy reports whether obj's controller owner reference is the platform. Objects
// with the same name that the operator does not own are never deleted.
func metav1IsControlledBy(obj metav1.Object, sp *scalestackv1alpha1.SocialPlatform) bool {
	ref := metav1.GetControllerOf(obj)
	return ref != nil && ref.UID == sp.UID
}
