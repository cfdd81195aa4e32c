package controllers

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
)

// Storage growth, the way CloudNativePG and MOCO do it: a StatefulSet's volumeClaimTemplates are
// immutable, so a larger spec.database.storage.size is applied to the claims themselves (when
// their StorageClass allows expansion), then the StatefulSet is deleted with its pods orphaned
// and created again with the new template, which adopts the running pods: nothing restarts.

// claimAction is what a shard StatefulSet's volumes need in this pass.
type claimAction int

const (
	// claimsAsDesired: the template and every claim ask for the desired size (or more).
	claimsAsDesired claimAction = iota
	// claimsGrow: claims are to grow; the template already asks for the desired size.
	claimsGrow
	// claimsGrowAndReplace: the claims grow, then the StatefulSet is replaced for its template.
	claimsGrowAndReplace
	// claimsUnsupported: the StorageClass cannot expand; the template keeps its size.
	claimsUnsupported
	// claimsReplacing: the StatefulSet is being deleted (its pods orphaned) to take the new
	// template; it is created again once it is gone.
	claimsReplacing
)

// planClaims decides a StatefulSet's claim action. sts is as observed (nil: it does not exist yet
// and is created with the desired size); smaller counts its claims that ask for less than want.
func planClaims(sts *appsv1.StatefulSet, want resource.Quantity, smaller int, expandable bool) claimAction {
	if sts == nil {
		return claimsAsDesired
	}
	if sts.DeletionTimestamp != nil {
		return claimsReplacing
	}
	cur, ok := render.DataClaimSize(sts)
	templateSmaller := ok && want.Cmp(cur) > 0
	switch {
	case !templateSmaller && smaller == 0:
		return claimsAsDesired
	case !expandable:
		return claimsUnsupported
	case templateSmaller:
		return claimsGrowAndReplace
	}
	return claimsGrow
}

// storageObservation is what the storage step found, for DatabaseReady.
type storageObservation struct {
	// resizing names the claims that are not yet at the desired size, and the StatefulSets being
	// replaced.
	resizing []string
	// unsupported says why claims cannot grow.
	unsupported []string
	// replacing is set while a StatefulSet is deleted and created again: for those seconds its
	// pods' readiness is not observed through it.
	replacing bool
}

// requeueStorage is how soon a pass looks again while claims grow or a StatefulSet is replaced.
const requeueStorage = 5 * time.Second

// growStorage runs the storage step of the database phase for every shard StatefulSet and returns
// the claim sizes to render (only where they must stay below the desired size) and the
// StatefulSets to leave out of this pass (being replaced).
func (r *SocialPlatformReconciler) growStorage(ctx context.Context, s *scope) (map[string]resource.Quantity, map[string]bool, error) {
	sp := s.sp
	want := render.StorageSize(sp.Spec.Database.Storage)
	sizes, skip := map[string]resource.Quantity{}, map[string]bool{}
	s.storage = storageObservation{}
	for i := range render.Shards(sp) {
		for _, name := range []string{sp.ShardPrimaryName(i), sp.ShardReplicasName(i)} {
			sts := &appsv1.StatefulSet{}
			found, err := r.getOptional(ctx, sp.Namespace, name, sts)
			if err != nil || !found {
				if err != nil {
					return nil, nil, err
				}
				continue
			}
			claims, err := r.shardClaims(ctx, sp, name)
			if err != nil {
				return nil, nil, err
			}
			if render.Retained(sp) {
				if err := r.protectClaims(ctx, claims); err != nil {
					return nil, nil, err
				}
			}
			claimsPending(s, claims, want)
			var smaller []*corev1.PersistentVolumeClaim
			for j := range claims {
				if q := claims[j].Spec.Resources.Requests[corev1.ResourceStorage]; q.Cmp(want) < 0 {
					smaller = append(smaller, &claims[j])
				}
			}
			expandable, why := true, ""
			if planClaims(sts, want, len(smaller), true) != claimsAsDesired && sts.DeletionTimestamp == nil {
				if expandable, why, err = r.expandable(ctx, sts); err != nil {
					return nil, nil, err
				}
			}
			switch planClaims(sts, want, len(smaller), expandable) {
			case claimsReplacing:
				skip[name] = true
				s.storage.replacing = true
				s.storage.resizing = append(s.storage.resizing, "StatefulSet "+name+" is being replaced with the larger claim template")
				s.requeueAfter(requeueStorage)
			case claimsUnsupported:
				if cur, ok := render.DataClaimSize(sts); ok && cur.Cmp(want) < 0 {
					sizes[name] = cur
				}
				s.storage.unsupported = append(s.storage.unsupported, fmt.Sprintf("%s: %s", name, why))
			case claimsGrow:
				if err := r.growClaims(ctx, s, smaller, want); err != nil {
					return nil, nil, err
				}
			case claimsGrowAndReplace:
				if err := r.growClaims(ctx, s, smaller, want); err != nil {
					return nil, nil, err
				}
				if err := r.replaceForClaims(ctx, s, sts, want); err != nil {
					return nil, nil, err
				}
				skip[name] = true
			case claimsAsDesired:
			}
		}
	}
	if len(s.storage.unsupported) > 0 && previousReason(s, scalestackv1alpha1.ConditionDatabaseReady) != scalestackv1alpha1.ReasonStorageResizeUnsupported {
		r.Recorder.Eventf(sp, nil, corev1.EventTypeWarning, scalestackv1alpha1.EventStorageResizeUnsupported, "Resize", "%s",
			truncate(strings.Join(s.storage.unsupported, "; "), 1000))
	}
	return sizes, skip, nil
}

// replaceForClaims deletes a shard StatefulSet with its pods orphaned, so that the next pass
// creates it with the larger claim template and it adopts the running pods (nothing restarts).
// The UID precondition never deletes a StatefulSet this pass did not see.
func (r *SocialPlatformReconciler) replaceForClaims(ctx context.Context, s *scope, sts *appsv1.StatefulSet, want resource.Quantity) error {
	err := r.Client.Delete(ctx, sts, client.PropagationPolicy(metav1.DeletePropagationOrphan), client.Preconditions{UID: ptr.To(sts.UID)})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("replacing StatefulSet %s for its larger claims: %w", sts.Name, err)
	}
	s.note("StatefulSet/" + sts.Name + " (replaced for storage " + want.String() + ")")
	r.Recorder.Eventf(s.sp, sts, corev1.EventTypeNormal, scalestackv1alpha1.EventStorageResizing, "Resize",
		"StatefulSet %s: claims grow to %s; the StatefulSet is replaced, its pods keep running", sts.Name, want.String())
	s.storage.resizing = append(s.storage.resizing, "StatefulSet "+sts.Name+" is being replaced with the larger claim template")
	s.storage.replacing = true
	s.requeueAfter(requeueStorage)
	return nil
}

// protectClaims puts render.RetainedAnnotations on retained claims that lack them. The claims
// come from the StatefulSet's volumeClaimTemplates, which cannot change, so they are annotated
// here, once each; an annotation someone else set under the same key is left as it is.
func (r *SocialPlatformReconciler) protectClaims(ctx context.Context, claims []corev1.PersistentVolumeClaim) error {
	for i := range claims {
		c := &claims[i]
		add := map[string]string{}
		for k, v := range render.RetainedAnnotations {
			if _, ok := c.Annotations[k]; !ok {
				add[k] = v
			}
		}
		if len(add) == 0 {
			continue
		}
		patch := client.MergeFrom(c.DeepCopy())
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		maps.Copy(c.Annotations, add)
		if err := r.Client.Patch(ctx, c, patch); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("annotating retained claim %s: %w", c.Name, err)
		}
	}
	return nil
}

// previousReason is the reason a condition had when the pass began.
func previousReason(s *scope, condType string) string {
	if c := meta.FindStatusCondition(s.original.Status.Conditions, condType); c != nil {
		return c.Reason
	}
	return ""
}

// expandable reports whether the StorageClass of a StatefulSet's claims allows expansion, and if
// not, why.
func (r *SocialPlatformReconciler) expandable(ctx context.Context, sts *appsv1.StatefulSet) (bool, string, error) {
	var class *string
	for _, t := range sts.Spec.VolumeClaimTemplates {
		if t.Name == render.DataVolume {
			class = t.Spec.StorageClassName
		}
	}
	sc := &storagev1.StorageClass{}
	if class == nil || *class == "" {
		// The claims took the cluster's default class.
		list := &storagev1.StorageClassList{}
		if err := r.Client.List(ctx, list); err != nil {
			return false, "", err
		}
		found := false
		for i := range list.Items {
			if list.Items[i].Annotations["storageclass.kubernetes.io/is-default-class"] == "true" {
				sc, found = &list.Items[i], true
			}
		}
		if !found {
			return false, "the claims have no StorageClass and the cluster has no default one", nil
		}
	} else if err := r.Client.Get(ctx, client.ObjectKey{Name: *class}, sc); apierrors.IsNotFound(err) {
		return false, fmt.Sprintf("StorageClass %s does not exist", *class), nil
	} else if err != nil {
		return false, "", err
	}
	if !ptr.Deref(sc.AllowVolumeExpansion, false) {
		return false, fmt.Sprintf("StorageClass %s does not allow volume expansion (allowVolumeExpansion)", sc.Name), nil
	}
	return true, "", nil
}

// shardClaims lists the data claims of a shard StatefulSet, scaled-down ordinals included (they
// come back when it scales up).
func (r *SocialPlatformReconciler) shardClaims(ctx context.Context, sp *scalestackv1alpha1.SocialPlatform, stsName string) ([]corev1.PersistentVolumeClaim, error) {
	list := &corev1.PersistentVolumeClaimList{}
	if err := r.Client.List(ctx, list, client.InNamespace(sp.Namespace), client.MatchingLabels(sp.SelectorLabels("database"))); err != nil {
		return nil, err
	}
	prefix := render.DataVolume + "-" + stsName + "-"
	var out []corev1.PersistentVolumeClaim
	for _, c := range list.Items {
		if strings.HasPrefix(c.Name, prefix) {
			out = append(out, c)
		}
	}
	return out, nil
}

// growClaims asks each of claims for want. A claim not bound yet cannot change (its volume does
// not exist): it is noted and grown on a later pass, once bound. A claim asked to grow is noted
// until its capacity reaches want (the driver and the kubelet resize the volume).
func (r *SocialPlatformReconciler) growClaims(ctx context.Context, s *scope, claims []*corev1.PersistentVolumeClaim, want resource.Quantity) error {
	for _, c := range claims {
		if c.Status.Phase != corev1.ClaimBound {
			s.storage.resizing = append(s.storage.resizing, "PersistentVolumeClaim "+c.Name+" is not bound yet")
			s.requeueAfter(requeueStorage)
			continue
		}
		patch := client.MergeFrom(c.DeepCopy())
		c.Spec.Resources.Requests[corev1.ResourceStorage] = want
		if err := r.Client.Patch(ctx, c, patch); err != nil {
			return fmt.Errorf("growing PersistentVolumeClaim %s to %s: %w", c.Name, want.String(), err)
		}
		s.note("PersistentVolumeClaim/" + c.Name + " (" + want.String() + ")")
	}
	return nil
}

// claimsPending notes the claims whose capacity is below the desired size although they ask for
// it: the volume's driver and the kubelet are still resizing.
func claimsPending(s *scope, claims []corev1.PersistentVolumeClaim, want resource.Quantity) {
	for _, c := range claims {
		req := c.Spec.Resources.Requests[corev1.ResourceStorage]
		got, known := c.Status.Capacity[corev1.ResourceStorage]
		if req.Cmp(want) >= 0 && known && got.Cmp(want) < 0 {
			s.storage.resizing = append(s.storage.resizing, fmt.Sprintf("PersistentVolumeClaim %s is %s of %s", c.Name, got.String(), want.String()))
			s.requeueAfter(requeueStorage)
		}
	}
}

// storageCondition reports the storage step on a DatabaseReady condition: StorageResizeUnsupported
// when claims cannot grow (the tier keeps running at its size), StorageResizing while they grow.
// A tier that is not ready keeps its own verdict, except while a StatefulSet is replaced: then
// its pods are not observed (they keep running) and the reason says why.
func storageCondition(c metav1.Condition, o storageObservation) metav1.Condition {
	switch {
	case c.Status != metav1.ConditionTrue && !o.replacing:
	case len(o.unsupported) > 0 && c.Status == metav1.ConditionTrue:
		c.Reason = scalestackv1alpha1.ReasonStorageResizeUnsupported
		c.Message = truncate("spec.database.storage.size cannot be applied: "+strings.Join(o.unsupported, "; "), 1000)
	case len(o.resizing) > 0:
		c.Reason = scalestackv1alpha1.ReasonStorageResizing
		c.Message = truncate(strings.Join(o.resizing, "; "), 1000)
	}
	return c
}
