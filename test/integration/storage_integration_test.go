package integration

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

// storageClass makes a cluster-wide StorageClass for one test, removed after it.
func storageClass(t *testing.T, name string, expandable bool) {
	t.Helper()
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "example.com/test",
		AllowVolumeExpansion: ptr.To(expandable)}
	if err := k8s.Create(context.Background(), sc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), sc) })
}

// boundClaim plays the StatefulSet controller and the provisioner: the data claim of a shard
// StatefulSet's pod, bound at size.
func boundClaim(t *testing.T, sp *scalestackv1alpha1.SocialPlatform, sts string, class, size string) *corev1.PersistentVolumeClaim {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: sp.Namespace, Name: "data-" + sts + "-0", Labels: sp.Labels("database")},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(class),
			VolumeName:       "pv-" + sp.Namespace + "-" + sts,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		},
	}
	if err := k8s.Create(context.Background(), pvc); err != nil {
		t.Fatal(err)
	}
	pvc.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, AccessModes: pvc.Spec.AccessModes,
		Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}}
	if err := k8s.Status().Update(context.Background(), pvc); err != nil {
		t.Fatal(err)
	}
	return pvc
}

// platformOnClass creates a one-shard sample platform whose 1Gi claims use a new StorageClass
// (expandable or not), and returns it with the class and its primary StatefulSet once created.
func platformOnClass(t *testing.T, prefix string, expandable bool) (*scalestackv1alpha1.SocialPlatform, string, *appsv1.StatefulSet) {
	t.Helper()
	ns := newNamespace(t)
	class := prefix + "-" + ns
	storageClass(t, class, expandable)
	sp := loadSample(t, ns)
	sp.Spec.Database.Shards = 1
	sp.Spec.Database.Storage = scalestackv1alpha1.StorageSpec{Size: ptr.To(resource.MustParse("1Gi")), StorageClassName: ptr.To(class)}
	if err := k8s.Create(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	var sts *appsv1.StatefulSet
	eventually(t, "the primary StatefulSet", func() (err error) {
		sts, err = get(t, &appsv1.StatefulSet{}, ns, sp.ShardPrimaryName(0))
		return err
	})
	return sp, class, sts
}

func claimTemplateSize(sts *appsv1.StatefulSet) string {
	q := sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]
	return q.String()
}

// Growing spec.database.storage.size on an expandable StorageClass grows every data claim, then
// replaces each shard StatefulSet with its pods orphaned (the garbage collector's part is played
// here) so that the new one carries the larger template; the pass never fails on the immutable
// template, and the claims' resize is reported until their capacity follows.
func TestStorageGrowsClaimsAndReplacesTheStatefulSet(t *testing.T) {
	sp, class, before := platformOnClass(t, "expandable", true)
	ns, primary := sp.Namespace, sp.ShardPrimaryName(0)
	pvc := boundClaim(t, sp, primary, class, "1Gi")
	other := boundClaim(t, sp, sp.ShardReplicasName(0), class, "1Gi")

	updateSP(t, sp, func(sp *scalestackv1alpha1.SocialPlatform) {
		sp.Spec.Database.Storage.Size = ptr.To(resource.MustParse("2Gi"))
	})
	for _, name := range []string{pvc.Name, other.Name} {
		eventually(t, "claim "+name+" asks for 2Gi", func() error {
			got, err := get(t, &corev1.PersistentVolumeClaim{}, ns, name)
			if err != nil {
				return err
			}
			if q := got.Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "2Gi" {
				return fmt.Errorf("asks for %s", q.String())
			}
			return nil
		})
	}
	// Deleted with its pods orphaned: envtest has no garbage collector, so the orphan finalizer is
	// lifted here, as kube-controller-manager does once it has released the pods.
	eventually(t, "the old StatefulSet deleted with orphan propagation", func() error {
		got, err := get(t, &appsv1.StatefulSet{}, ns, primary)
		if apierrors.IsNotFound(err) || (err == nil && got.UID != before.UID) {
			return nil
		}
		if err != nil {
			return err
		}
		if got.DeletionTimestamp == nil {
			return fmt.Errorf("not deleted; template %s", claimTemplateSize(got))
		}
		if !containsString(got.Finalizers, metav1.FinalizerOrphanDependents) {
			return fmt.Errorf("deleted without orphaning its pods: finalizers %v", got.Finalizers)
		}
		got.Finalizers = nil
		return k8s.Update(context.Background(), got)
	})
	for _, name := range []string{primary, sp.ShardReplicasName(0)} {
		eventually(t, "StatefulSet "+name+" created again with the 2Gi template", func() error {
			got, err := get(t, &appsv1.StatefulSet{}, ns, name)
			if err != nil {
				return err
			}
			if got.DeletionTimestamp != nil {
				got.Finalizers = nil
				return k8s.Update(context.Background(), got)
			}
			if claimTemplateSize(got) != "2Gi" {
				return fmt.Errorf("template %s", claimTemplateSize(got))
			}
			return nil
		})
	}
	eventually(t, "a StorageResizing event", hasEvent(t, ns, scalestackv1alpha1.EventStorageResizing, primary))
	if err := hasEvent(t, ns, scalestackv1alpha1.EventReconcileFailed, "")(); err == nil {
		t.Errorf("a pass failed while the storage grew: %s", eventNotes(t, ns))
	}
}

// On a StorageClass that cannot expand, a larger size changes nothing: the claims and the
// template keep their size, every pass still applies (no error on the immutable template), and a
// Warning says why.
func TestStorageResizeUnsupportedChangesNothing(t *testing.T) {
	sp, class, before := platformOnClass(t, "fixed", false)
	ns, primary := sp.Namespace, sp.ShardPrimaryName(0)
	pvc := boundClaim(t, sp, primary, class, "1Gi")
	updateSP(t, sp, func(sp *scalestackv1alpha1.SocialPlatform) {
		sp.Spec.Database.Storage.Size = ptr.To(resource.MustParse("2Gi"))
		sp.Spec.Database.ReplicasPerShard = ptr.To[int32](2) // a change that must still apply
	})
	eventually(t, "a StorageResizeUnsupported warning", func() error {
		if err := hasEvent(t, ns, scalestackv1alpha1.EventStorageResizeUnsupported, "allowVolumeExpansion")(); err != nil {
			return fmt.Errorf("%w: %s", err, eventNotes(t, ns))
		}
		return nil
	})
	eventually(t, "the replicas scaled to 2 despite the size", func() error {
		r, err := get(t, &appsv1.StatefulSet{}, ns, sp.ShardReplicasName(0))
		if err != nil {
			return err
		}
		if n := ptr.Deref(r.Spec.Replicas, 0); n != 2 || claimTemplateSize(r) != "1Gi" {
			return fmt.Errorf("%d replicas, template %s", n, claimTemplateSize(r))
		}
		return nil
	})
	got, err := get(t, &appsv1.StatefulSet{}, ns, primary)
	if err != nil {
		t.Fatal(err)
	}
	if got.UID != before.UID || got.DeletionTimestamp != nil || claimTemplateSize(got) != "1Gi" {
		t.Errorf("StatefulSet replaced or changed: uid %s -> %s, template %s", before.UID, got.UID, claimTemplateSize(got))
	}
	claim, err := get(t, &corev1.PersistentVolumeClaim{}, ns, pvc.Name)
	if err != nil {
		t.Fatal(err)
	}
	if q := claim.Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "1Gi" {
		t.Errorf("claim asks for %s on a class that cannot expand", q.String())
	}
	if err := hasEvent(t, ns, scalestackv1alpha1.EventReconcileFailed, "")(); err == nil {
		t.Errorf("a pass failed: %s", eventNotes(t, ns))
	}
}

// A platform created again over retained claims after a failover resumes with the primary of
// record its claims name (the promoted replica), not the primary StatefulSet's pod, which may
// lack what the promoted one took.
func TestRecreatedPlatformKeepsThePrimaryOfRecord(t *testing.T) {
	ns := newNamespace(t)
	sp := loadSample(t, ns)
	sp.Spec.Database.Shards = 1
	// Retained from the platform before: the replica was promoted at epoch 3.
	promoted := sp.ShardReplicasName(0) + "-0"
	for _, pod := range []string{sp.ShardDefaultPrimaryPod(0), promoted} {
		labels := sp.Labels("database")
		labels[scalestackv1alpha1.LabelShard] = "0"
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "data-" + pod, Labels: labels},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}}},
		}
		if pod == promoted {
			pvc.Annotations = map[string]string{scalestackv1alpha1.AnnotationPrimaryEpoch: "3"}
		}
		if err := k8s.Create(context.Background(), pvc); err != nil {
			t.Fatal(err)
		}
	}
	if err := k8s.Create(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the shard map names the promoted replica at epoch 3", func() error {
		m, err := shardMapOf(t, sp)
		if err != nil {
			return err
		}
		if p := m.Shards[0]; p.PrimaryPod != promoted || p.Epoch != 3 {
			return fmt.Errorf("shard 0 %+v", p)
		}
		return nil
	})
	eventually(t, "the -primary Service selects it", func() error {
		svc, err := get(t, &corev1.Service{}, ns, sp.ShardPrimaryName(0))
		if err != nil {
			return err
		}
		if got := svc.Spec.Selector["statefulset.kubernetes.io/pod-name"]; got != promoted {
			return fmt.Errorf("selects %q", got)
		}
		return nil
	})
}
