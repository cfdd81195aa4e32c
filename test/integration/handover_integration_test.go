package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers"
)

// replicaRecorder watches one Deployment and records every spec.replicas value the API server
// stored, so that a value that existed for a moment only (a dip to 1) is seen.
type replicaRecorder struct {
	mu   sync.Mutex
	seen []int32
}

func recordReplicas(t *testing.T, ns, name string) *replicaRecorder {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := cs.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	rec := &replicaRecorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if d, ok := ev.Object.(*appsv1.Deployment); ok {
				rec.mu.Lock()
				if r := ptr.Deref(d.Spec.Replicas, -1); len(rec.seen) == 0 || rec.seen[len(rec.seen)-1] != r {
					rec.seen = append(rec.seen, r)
				}
				rec.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); w.Stop(); <-done })
	return rec
}

func (r *replicaRecorder) values() []int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// ownsReplicas reports whether manager (with op, or any operation when "") owns spec.replicas.
func ownsReplicas(d *appsv1.Deployment, manager string, op metav1.ManagedFieldsOperationType) bool {
	for _, e := range d.ManagedFields {
		if e.Manager == manager && (op == "" || e.Operation == op) && e.FieldsV1 != nil &&
			strings.Contains(string(e.FieldsV1.GetRawBytes()), `"f:replicas":{}`) {
			return true
		}
	}
	return false
}

// Turning autoscaling on hands spec.replicas to the autoscaler, and turning it off hands it back,
// without the Deployment ever falling to the API server's default of one replica.
func TestTurningAutoscalingOnAndOffNeverDropsReplicas(t *testing.T) {
	ctx := context.Background()
	sp := loadSample(t, newNamespace(t))
	sp.Spec.Apps.Feed.Replicas = ptr.To[int32](3)
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	ns, name := sp.Namespace, sp.ComponentName(scalestackv1alpha1.ComponentFeed)
	eventually(t, "feed at 3 replicas", replicasAre(t, ns, name, 3))
	rec := recordReplicas(t, ns, name)

	// On: Prometheus is unreachable, so the autoscaler holds whatever it is handed.
	updateSP(t, sp, func(cur *scalestackv1alpha1.SocialPlatform) {
		cur.Spec.SLO.Autoscaling.Enabled = true
		cur.Spec.SLO.Autoscaling.PrometheusURL = "http://127.0.0.1:1"
	})
	eventually(t, "replicas owned by the autoscaler only", func() error {
		d, err := get(t, &appsv1.Deployment{}, ns, name)
		if err != nil {
			return err
		}
		if ownsReplicas(d, controllers.FieldManager, "") || !ownsReplicas(d, controllers.AutoscalerFieldManager, "") {
			return fmt.Errorf("managedFields %+v", d.ManagedFields)
		}
		return nil
	})
	consistently(t, "replicas kept at 3 once the autoscaler owns them", 2*time.Second, replicasAre(t, ns, name, 3))

	// The autoscaler scales up (as reconcileAutoscaling does, through the scale subresource).
	d, _ := get(t, &appsv1.Deployment{}, ns, name)
	scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 5}}
	if err := k8s.SubResource("scale").Update(ctx, d, client.WithSubResourceBody(scale), client.FieldOwner(controllers.AutoscalerFieldManager)); err != nil {
		t.Fatal(err)
	}

	// Off: the manifest's replicas (3) rule again, and the autoscaler's claim is gone.
	updateSP(t, sp, func(cur *scalestackv1alpha1.SocialPlatform) { cur.Spec.SLO.Autoscaling.Enabled = false })
	eventually(t, "replicas back with the reconciler, the autoscaler's applied claim released", func() error {
		d, err := get(t, &appsv1.Deployment{}, ns, name)
		if err != nil {
			return err
		}
		if r := ptr.Deref(d.Spec.Replicas, 0); r != 3 {
			return fmt.Errorf("replicas %d", r)
		}
		if !ownsReplicas(d, controllers.FieldManager, metav1.ManagedFieldsOperationApply) ||
			ownsReplicas(d, controllers.AutoscalerFieldManager, metav1.ManagedFieldsOperationApply) {
			return fmt.Errorf("managedFields %+v", d.ManagedFields)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // let the watch deliver the last events
	got := rec.values()
	for _, r := range got {
		if r != 3 && r != 5 {
			t.Fatalf("spec.replicas went through %v: only 3 (the manifest) and 5 (the autoscaler) may appear", got)
		}
	}
	t.Logf("spec.replicas as stored, in order: %v", got)
}
