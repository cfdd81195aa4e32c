package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/test/testenv"
)

// Argo CD applies the same manifest again and again with server-side apply under its own field
// manager. That must cause no churn: the spec keeps its generation, and the operator writes
// nothing.
func TestReapplyByAnotherFieldManagerCausesNoChurn(t *testing.T) {
	ns := newNamespace(t)
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "samples", "scalestack_v1alpha1_socialplatform.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(raw, &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetNamespace(ns)
	applyAsArgo := func() {
		t.Helper()
		if err := k8s.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u.DeepCopy()),
			client.FieldOwner("argocd-controller"), client.ForceOwnership); err != nil {
			t.Fatal(err)
		}
	}
	applyAsArgo()
	sp := loadSample(t, ns)
	markDeploymentsAvailable(t, sp)
	ready := waitForCondition(t, sp, scalestackv1alpha1.ConditionReady, metav1.ConditionTrue)
	mark := quiet(t, ns)
	for range 5 {
		applyAsArgo()
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	after, err := get(t, &scalestackv1alpha1.SocialPlatform{}, ns, sp.Name)
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != ready.Generation {
		t.Errorf("re-applying the same manifest moved the generation from %d to %d", ready.Generation, after.Generation)
	}
	if got := env.WritesIn(mark, ns); len(got) != 0 {
		t.Errorf("the operator wrote %d times while Argo CD re-applied an unchanged manifest: %v", len(got), got)
	}
	if after.ResourceVersion != ready.ResourceVersion {
		t.Errorf("the SocialPlatform changed (resourceVersion %s -> %s)", ready.ResourceVersion, after.ResourceVersion)
	}
}
