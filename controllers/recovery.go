package controllers

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
)

// The primary of record lives in the shard map, which goes with its platform. Its data claim
// keeps it too (AnnotationPrimaryEpoch): when a platform is deleted with deletionPolicy Retain
// after a failover and created again, the promoted pod's claim says it is the primary, and the
// primary StatefulSet's pod, which may lack what the promoted one took, rejoins as its replica.

// recoveredPrimaries reads the primaries of record from the claims, for a platform whose shard
// map is gone (observed nil): per shard, the claim with the highest epoch. Shards with none keep
// the primary StatefulSet's pod at epoch 0.
func (r *SocialPlatformReconciler) recoveredPrimaries(ctx context.Context, sp *scalestackv1alpha1.SocialPlatform) (map[int32]render.Primary, error) {
	list := &corev1.PersistentVolumeClaimList{}
	if err := r.Client.List(ctx, list, client.InNamespace(sp.Namespace), client.MatchingLabels(sp.SelectorLabels("database"))); err != nil {
		return nil, fmt.Errorf("listing the shards' claims: %w", err)
	}
	return primariesFromClaims(sp, list.Items), nil
}

// primariesFromClaims picks, per shard, the claim annotated with the highest epoch.
func primariesFromClaims(sp *scalestackv1alpha1.SocialPlatform, claims []corev1.PersistentVolumeClaim) map[int32]render.Primary {
	out := map[int32]render.Primary{}
	for _, c := range claims {
		epoch, err := strconv.ParseInt(c.Annotations[scalestackv1alpha1.AnnotationPrimaryEpoch], 10, 64)
		if err != nil || epoch <= 0 {
			continue
		}
		shardIndex, err := strconv.ParseInt(c.Labels[scalestackv1alpha1.LabelShard], 10, 32)
		if err != nil || shardIndex < 0 || int32(shardIndex) >= render.Shards(sp) {
			continue
		}
		pod, ok := strings.CutPrefix(c.Name, render.DataVolume+"-")
		if !ok || !strings.HasPrefix(pod, sp.ShardName(int32(shardIndex))+"-") {
			continue
		}
		if cur, seen := out[int32(shardIndex)]; !seen || epoch > cur.Epoch {
			out[int32(shardIndex)] = render.Primary{Pod: pod, Epoch: epoch}
		}
	}
	return out
}

// recordPrimaryClaims writes each moved primary of record's epoch on its data claim, once the
// shard map holds it. A claim not created yet is annotated on a later pass.
func (r *SocialPlatformReconciler) recordPrimaryClaims(ctx context.Context, s *scope) error {
	for i, p := range s.primaries {
		if p.Epoch == 0 || i >= render.Shards(s.sp) {
			continue
		}
		c := &corev1.PersistentVolumeClaim{}
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.sp.Namespace, Name: render.DataVolume + "-" + p.Pod}, c)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		want := strconv.FormatInt(p.Epoch, 10)
		if c.Annotations[scalestackv1alpha1.AnnotationPrimaryEpoch] == want {
			continue
		}
		patch := client.MergeFrom(c.DeepCopy())
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[scalestackv1alpha1.AnnotationPrimaryEpoch] = want
		if err := r.Client.Patch(ctx, c, patch); err != nil {
			return fmt.Errorf("recording the primary of record on PersistentVolumeClaim %s: %w", c.Name, err)
		}
		s.note("PersistentVolumeClaim/" + c.Name + " (primary at epoch " + want + ")")
	}
	return nil
}
