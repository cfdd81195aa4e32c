package integration

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scalestack/scalestack/controllers"
	"github.com/scalestack/scalestack/controllers/render"
)

// A shard StatefulSet applied by an earlier release (RollingUpdate) is turned to OnDelete by the
// next pass: the operator rolls the shard's pods itself from then on (controllers/rollout.go).
func TestShardStatefulSetsOfAnEarlierReleaseTurnOnDelete(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	sp := loadSample(t, ns)
	sp.Spec.Database.Shards = 1
	sp.Spec.Paused = true
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	// What the earlier release applied: today's StatefulSet with its update strategy.
	tier, err := render.DataTier(sp, render.DataInputs{AgentImage: "scalestack.local/apps:old"})
	if err != nil {
		t.Fatal(err)
	}
	var old *appsv1ac.StatefulSetApplyConfiguration
	for _, o := range tier.Objects() {
		if sts, ok := o.(*appsv1ac.StatefulSetApplyConfiguration); ok && *sts.Name == sp.ShardPrimaryName(0) {
			old = sts
		}
	}
	if old == nil {
		t.Fatal("the data tier renders no primary StatefulSet")
	}
	old.Spec.WithUpdateStrategy(appsv1ac.StatefulSetUpdateStrategy().WithType(appsv1.RollingUpdateStatefulSetStrategyType))
	if err := k8s.Apply(ctx, old, client.FieldOwner(controllers.FieldManager), client.ForceOwnership); err != nil {
		t.Fatal(err)
	}
	live, err := get(t, &appsv1.StatefulSet{}, ns, sp.ShardPrimaryName(0))
	if err != nil || live.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		t.Fatalf("the earlier release's StatefulSet: %+v, %v", live.Spec.UpdateStrategy, err)
	}

	patch := client.MergeFrom(sp.DeepCopy())
	sp.Spec.Paused = false
	if err := k8s.Patch(ctx, sp, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the primary StatefulSet updates OnDelete", func() error {
		sts, err := get(t, &appsv1.StatefulSet{}, ns, sp.ShardPrimaryName(0))
		if err != nil {
			return err
		}
		if s := sts.Spec.UpdateStrategy; s.Type != appsv1.OnDeleteStatefulSetStrategyType || s.RollingUpdate != nil {
			return fmt.Errorf("update strategy %s %+v", s.Type, s.RollingUpdate)
		}
		return nil
	})
}
