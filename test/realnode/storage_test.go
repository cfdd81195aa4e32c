//go:build realnode

package realnode

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
)

// growsTheStorage asks for larger database volumes on a running platform, under load: the
// operator grows every claim and replaces each shard StatefulSet (deleted with its pods orphaned,
// created again with the larger claim template), and the StatefulSet controller of a real
// kube-controller-manager adopts the running pods: none restarts, no request fails.
//
// local-path-provisioner backs a volume with a directory and enforces no size, and no volume
// resizer exists for it (rancher/local-path-provisioner#190): so the test marks its StorageClass
// expandable and plays the resizer, recording the asked-for size as the volume's and the claim's
// capacity, which is what a CSI resizer and the kubelet report for a file system without quotas.
func growsTheStorage(t *testing.T, ns string, author *api) {
	ctx := context.Background()
	sp := platform(t, ns)
	class := &storagev1.StorageClass{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: "local-path"}, class); err != nil {
		t.Fatal(err)
	}
	was := class.AllowVolumeExpansion
	setExpansion := func(allow *bool) {
		c := &storagev1.StorageClass{}
		if err := k8s.Get(ctx, client.ObjectKey{Name: "local-path"}, c); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(c.DeepCopy())
		c.AllowVolumeExpansion = allow
		if err := k8s.Patch(ctx, c, patch); err != nil {
			t.Fatal(err)
		}
	}
	setExpansion(ptr.To(true))
	defer setExpansion(was)
	resizerCtx, stopResizer := context.WithCancel(ctx)
	defer stopResizer()
	var resized atomic.Int32
	go playTheResizer(resizerCtx, t, ns, &resized)

	// What must not change: the database pods (by UID, with their restart counts).
	pods := databasePods(t, ns)
	stsUIDs := map[string]types.UID{}
	for name, sts := range databaseStatefulSets(ctx, t, sp) {
		stsUIDs[name] = sts.UID
	}
	want := render.StorageSize(sp.Spec.Database.Storage)
	want.Add(resource.MustParse("1Gi"))

	load := startMixedLoad(author, "storage")
	defer load.stop()
	time.Sleep(3 * time.Second)
	asked := time.Now()
	patch := client.MergeFrom(sp.DeepCopy())
	sp.Spec.Database.Storage.Size = &want
	if err := k8s.Patch(ctx, sp, patch); err != nil {
		t.Fatal(err)
	}
	poll(t, "every claim and StatefulSet at "+want.String(), 5*time.Minute, func() error {
		claims := &corev1.PersistentVolumeClaimList{}
		if err := k8s.List(ctx, claims, client.InNamespace(ns)); err != nil {
			return err
		}
		n := 0
		for _, c := range claims.Items {
			if !strings.HasPrefix(c.Name, "data-") {
				continue
			}
			n++
			got := c.Status.Capacity[corev1.ResourceStorage]
			if got.Cmp(want) < 0 {
				return fmt.Errorf("claim %s has %s", c.Name, got.String())
			}
		}
		if n != len(pods) {
			return fmt.Errorf("%d data claims for %d database pods", n, len(pods))
		}
		for name, uid := range stsUIDs {
			sts := &appsv1.StatefulSet{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sts); err != nil {
				return err
			}
			if sts.UID == uid {
				return fmt.Errorf("StatefulSet %s not replaced yet", name)
			}
			if q, ok := render.DataClaimSize(sts); !ok || q.Cmp(want) != 0 {
				return fmt.Errorf("StatefulSet %s asks for %s", name, q.String())
			}
			if sts.Status.ReadyReplicas < ptr.Deref(sts.Spec.Replicas, 1) {
				return fmt.Errorf("StatefulSet %s: %d pods ready", name, sts.Status.ReadyReplicas)
			}
		}
		c := condition(platform(t, ns), scalestackv1alpha1.ConditionDatabaseReady)
		if c == nil || c.Status != "True" || c.Reason == scalestackv1alpha1.ReasonStorageResizing {
			return fmt.Errorf("DatabaseReady %+v", c)
		}
		return nil
	})
	took := time.Since(asked)
	time.Sleep(2 * time.Second)
	load.stop()
	load.report(t, "growing the volumes")
	if after := databasePods(t, ns); !maps.Equal(after, pods) {
		t.Errorf("database pods restarted or were replaced while the volumes grew:\n before %v\n after  %v", pods, after)
	}
	if len(load.fails) > 0 {
		keepPodLogs(filepath.Join(workDir, "pods-at-storage"))
	}
	// As for the growth: a stalled primary's fence 503s name its shard and are reported; any other
	// failure fails the test.
	for _, f := range load.fails {
		if !strings.Contains(f, ": 503 ") || !strings.Contains(f, "physical shard") {
			t.Errorf("a request failed while the volumes grew: %s", f)
		}
	}
	t.Logf("real pods: %d claims grew to %s and %d StatefulSets were replaced %v after the change, no database pod restarted (%d volumes resized by the test's resizer)",
		len(pods), want.String(), len(stsUIDs), took.Round(time.Second), resized.Load())
	waitReady(t, ns, 5*time.Minute)
}

// databasePods names the database pods with their UIDs and restart counts.
// databaseStatefulSets are the platform's shard StatefulSets (primary and replicas), by name.
func databaseStatefulSets(ctx context.Context, t *testing.T, sp *scalestackv1alpha1.SocialPlatform) map[string]*appsv1.StatefulSet {
	t.Helper()
	out := map[string]*appsv1.StatefulSet{}
	for i := range int32(len(sp.Status.Shards)) {
		for _, name := range []string{sp.ShardPrimaryName(i), sp.ShardReplicasName(i)} {
			sts := &appsv1.StatefulSet{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: sp.Namespace, Name: name}, sts); err != nil {
				t.Fatal(err)
			}
			out[name] = sts
		}
	}
	return out
}

func databasePods(t *testing.T, ns string) map[string]string {
	t.Helper()
	pods := &corev1.PodList{}
	if err := k8s.List(context.Background(), pods, client.InNamespace(ns), client.MatchingLabels{scalestackv1alpha1.LabelComponent: "database", scalestackv1alpha1.LabelManagedBy: scalestackv1alpha1.ManagedByValue}); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		n := int32(0)
		for _, cs := range p.Status.ContainerStatuses {
			n += cs.RestartCount
		}
		out[p.Name] = fmt.Sprintf("%s/%d", p.UID, n)
	}
	return out
}

// playTheResizer does for the namespace's bound claims what a volume resizer and the kubelet do
// once a claim asks for more: the volume's capacity, then the claim's, become the size asked for.
func playTheResizer(ctx context.Context, t *testing.T, ns string, resized *atomic.Int32) {
	for ctx.Err() == nil {
		claims := &corev1.PersistentVolumeClaimList{}
		if err := k8s.List(ctx, claims, client.InNamespace(ns)); err == nil {
			for i := range claims.Items {
				if resizeClaim(ctx, &claims.Items[i]) == nil {
					resized.Add(1)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

var errNothingToResize = fmt.Errorf("nothing to resize")

func resizeClaim(ctx context.Context, c *corev1.PersistentVolumeClaim) error {
	want := c.Spec.Resources.Requests[corev1.ResourceStorage]
	got := c.Status.Capacity[corev1.ResourceStorage]
	if c.Status.Phase != corev1.ClaimBound || c.Spec.VolumeName == "" || want.Cmp(got) <= 0 {
		return errNothingToResize
	}
	pv := &corev1.PersistentVolume{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: c.Spec.VolumeName}, pv); err != nil {
		return err
	}
	if have := pv.Spec.Capacity[corev1.ResourceStorage]; have.Cmp(want) < 0 {
		patch := client.MergeFrom(pv.DeepCopy())
		pv.Spec.Capacity[corev1.ResourceStorage] = want
		if err := k8s.Patch(ctx, pv, patch); err != nil {
			return err
		}
	}
	patch := client.MergeFrom(c.DeepCopy())
	c.Status.Capacity[corev1.ResourceStorage] = want
	c.Status.AllocatedResources = corev1.ResourceList{corev1.ResourceStorage: want}
	c.Status.AllocatedResourceStatuses = nil
	var keep []corev1.PersistentVolumeClaimCondition
	for _, cond := range c.Status.Conditions {
		if cond.Type != corev1.PersistentVolumeClaimResizing && cond.Type != corev1.PersistentVolumeClaimFileSystemResizePending {
			keep = append(keep, cond)
		}
	}
	c.Status.Conditions = keep
	return k8s.Status().Patch(ctx, c, patch)
}
