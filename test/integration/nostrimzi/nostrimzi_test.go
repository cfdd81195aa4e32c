// Package nostrimzi runs the operator on a control plane without Strimzi: Kafka is reported as not
// installed while everything else converges, and a Strimzi installed later is picked up.
package nostrimzi

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/test/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		code = 1
	}
	os.Exit(code)
}

func poll(t *testing.T, what string, cond func() error) {
	t.Helper()
	testutil.Eventually(t, what, 30*time.Second, cond)
}

func TestMissingStrimziDegradesOnlyKafka(t *testing.T) {
	ctx := context.Background()
	k8s := env.Client
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "samples", "scalestack_v1alpha1_socialplatform.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sp := &scalestackv1alpha1.SocialPlatform{}
	if err := yaml.UnmarshalStrict(raw, sp); err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "nostrimzi-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	sp.Namespace = ns.Name
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}

	poll(t, "KafkaReady=False StrimziNotInstalled", func() error {
		cur := &scalestackv1alpha1.SocialPlatform{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(sp), cur); err != nil {
			return err
		}
		c := meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionKafkaReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != scalestackv1alpha1.ReasonStrimziNotInstalled {
			return fmt.Errorf("KafkaReady %+v", c)
		}
		if cur.Status.ObservedGeneration != cur.Generation {
			return fmt.Errorf("the pass did not complete: observedGeneration %d", cur.Status.ObservedGeneration)
		}
		if m := meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionMonitoringReady); m == nil || m.Reason != scalestackv1alpha1.ReasonPrometheusOperatorNotInstalled {
			return fmt.Errorf("MonitoringReady %+v", m)
		}
		if d := meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionDegraded); d == nil || d.Status != metav1.ConditionFalse {
			return fmt.Errorf("a missing Strimzi degraded the platform: %+v", d)
		}
		return nil
	})
	// Everything else converged.
	for _, c := range scalestackv1alpha1.AppComponents {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: sp.ComponentName(c)}, &appsv1.Deployment{}); err != nil {
			t.Errorf("Deployment %s: %v", c, err)
		}
	}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: sp.ShardPrimaryName(1)}, &appsv1.StatefulSet{}); err != nil {
		t.Errorf("shard 1: %v", err)
	}

	// Strimzi installed later is found on the next pass (here woken by an annotation).
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(testenv.RepoRoot(), "hack", "crds")}, ErrorIfPathMissing: true,
	}); err != nil {
		t.Fatal(err)
	}
	poll(t, "Kafka created after Strimzi appeared", func() error {
		cur := &scalestackv1alpha1.SocialPlatform{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(sp), cur); err != nil {
			return err
		}
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		cur.Annotations["test.scalestack.dev/poke"] = time.Now().String()
		_ = k8s.Update(ctx, cur)
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(schema.GroupVersionKind{Group: "kafka.strimzi.io", Version: "v1", Kind: "Kafka"})
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: sp.KafkaName()}, u)
	})
}
