package render

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

// OwnerReference makes the platform the controlling owner of a child, so that deleting the
// platform garbage-collects it and a change to the child wakes the platform's reconcile.
func OwnerReference(sp *scalestackv1alpha1.SocialPlatform) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(scalestackv1alpha1.GroupVersion.String()).
		WithKind("SocialPlatform").
		WithName(sp.Name).
		WithUID(sp.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

// HashData hashes a string map independently of iteration order.
func HashData(data map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(data)) {
		// Encoding each pair keeps "ab"+"c" and "a"+"bc" apart.
		b, _ := json.Marshal([2]string{k, data[k]})
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// restrictedPodSecurityContext meets Pod Security "restricted" for the pod.
func restrictedPodSecurityContext() *corev1ac.PodSecurityContextApplyConfiguration {
	return corev1ac.PodSecurityContext().
		WithRunAsNonRoot(true).
		WithRunAsUser(65532).
		WithRunAsGroup(65532).
		WithFSGroup(65532).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
}

// restrictedContainerSecurityContext meets Pod Security "restricted" for one container.
func restrictedContainerSecurityContext() *corev1ac.SecurityContextApplyConfiguration {
	return corev1ac.SecurityContext().
		WithAllowPrivilegeEscalation(false).
		WithReadOnlyRootFilesystem(true).
		WithRunAsNonRoot(true).
		WithPrivileged(false).
		WithCapabilities(corev1ac.Capabilities().WithDrop("ALL"))
}

// resources converts typed requirements into their apply configuration.
func resources(r corev1.ResourceRequirements) *corev1ac.ResourceRequirementsApplyConfiguration {
	ac := corev1ac.ResourceRequirements()
	if len(r.Requests) > 0 {
		ac.WithRequests(r.Requests.DeepCopy())
	}
	if len(r.Limits) > 0 {
		ac.WithLimits(r.Limits.DeepCopy())
	}
	return ac
}
