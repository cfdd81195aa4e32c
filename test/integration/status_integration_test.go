package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/config/argocd"
)

// denyIngresses installs a ValidatingAdmissionPolicy refusing every Ingress in ns (a namespace
// policy the operator cannot know of) and waits until the API server enforces it. The returned
// function lifts it.
func denyIngresses(t *testing.T, ns string) (lift func()) {
	t.Helper()
	ctx := context.Background()
	name := "deny-ingress-" + ns
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"networking.k8s.io"}, APIVersions: []string{"v1"}, Resources: []string{"ingresses"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{Expression: "false", Message: "ingresses are not allowed here"}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}},
		},
	}
	lift = func() {
		for _, o := range []client.Object{binding, policy} {
			_ = client.IgnoreNotFound(k8s.Delete(context.Background(), o))
		}
		eventually(t, "the policy lifted", func() error {
			probe := ingressProbe(ns)
			if err := k8s.Create(ctx, probe, client.DryRunAll); err != nil {
				return err
			}
			return nil
		})
	}
	for _, o := range []client.Object{policy, binding} {
		o.SetResourceVersion("")
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, o := range []client.Object{binding, policy} {
			_ = k8s.Delete(context.Background(), o)
		}
	})
	// The policy takes effect once the API server has loaded it: probe with an Ingress of our own.
	eventually(t, "the policy refusing Ingresses", func() error {
		if err := k8s.Create(ctx, ingressProbe(ns), client.DryRunAll); err == nil {
			return fmt.Errorf("an Ingress was still admitted")
		}
		return nil
	})
	return lift
}

// A spec whose children the cluster refuses (here the CDN Ingress, by a namespace policy) is not
// half-applied: the preflight's dry-run stops the pass before its first write, and the platform
// reads InvalidSpec naming the field, Stalled, Failed for kstatus and Degraded for Argo CD. Once
// the policy is lifted, the same spec converges.
func TestARefusedSpecWritesNothing(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	lift := denyIngresses(t, ns)
	sp := loadSample(t, ns)
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	eventually(t, "InvalidSpec naming spec.cdn, read as Failed and Degraded", func() error {
		cur := &scalestackv1alpha1.SocialPlatform{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(sp), cur); err != nil {
			return err
		}
		r := meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionReady)
		if r == nil || r.Reason != scalestackv1alpha1.ReasonInvalidSpec || !strings.Contains(r.Message, "spec.cdn:") ||
			!strings.Contains(r.Message, "ingresses are not allowed here") {
			return fmt.Errorf("Ready is %+v", r)
		}
		return readsFailed(cur, scalestackv1alpha1.ReasonInvalidSpec, "Nothing of this spec was applied")
	})
	if n, kinds := childrenIn(t, ns); n > 0 {
		t.Fatalf("a refused spec left %d children: %s", n, kinds)
	}
	lift()
	eventually(t, "the same spec converging once the policy is lifted", func() error {
		if _, err := get(t, &networkingv1.Ingress{}, ns, sp.CDNOriginName()); err != nil {
			return err
		}
		cur := &scalestackv1alpha1.SocialPlatform{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(sp), cur); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionFalse {
			return fmt.Errorf("Stalled is %+v", c)
		}
		return nil
	})
}

// A child refused after its spec was accepted (the policy arrived later, the Ingress was deleted)
// fails only its own phase: the other components are observed as they are and Degraded names the
// phase. A new spec is then refused as a whole (the preflight sees the Ingress it cannot create):
// nothing of it is written, and the platform keeps being converged to the last accepted spec.
func TestStatusAfterAFailedPassIsObserved(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	sp := loadSample(t, ns)
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the CDN Ingress created", func() error {
		_, err := get(t, &networkingv1.Ingress{}, ns, sp.CDNOriginName())
		return err
	})
	denyIngresses(t, ns)
	if err := k8s.Delete(ctx, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sp.CDNOriginName()}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Degraded naming the cdn phase, with the data tier observed", func() error {
		cur := &scalestackv1alpha1.SocialPlatform{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(sp), cur); err != nil {
			return err
		}
		d := meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionDegraded)
		if d == nil || d.Reason != scalestackv1alpha1.ReasonReconcileFailed || !strings.Contains(d.Message, "cdn") {
			return fmt.Errorf("Degraded is %+v", d)
		}
		for _, typ := range []string{scalestackv1alpha1.ConditionDatabaseReady, scalestackv1alpha1.ConditionCacheReady, scalestackv1alpha1.ConditionAppsReady} {
			c := meta.FindStatusCondition(cur.Status.Conditions, typ)
			if c == nil || strings.Contains(c.Message, "Not created yet") {
				return fmt.Errorf("%s after a failed pass: %+v", typ, c)
			}
		}
		if len(cur.Status.Shards) != 2 {
			return fmt.Errorf("%d shards in status", len(cur.Status.Shards))
		}
		// The failure is reported on the CDN's own condition, not on the components that converged.
		if c := meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionCDNReady); c == nil ||
			c.Status != metav1.ConditionFalse || c.Reason != scalestackv1alpha1.ReasonApplyFailed || !strings.Contains(c.Message, "ingresses are not allowed here") {
			return fmt.Errorf("CDNReady is %+v", c)
		}
		if c := meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionAppsReady); c == nil || c.Reason == scalestackv1alpha1.ReasonApplyFailed {
			return fmt.Errorf("AppsReady is %+v", c)
		}
		return nil
	})

	// A refused child is permanent: Stalled (ChildRejected), not Reconciling, and the status is
	// stamped with the generation it describes, so kstatus reads Failed and Argo CD Degraded.
	stalledNow := func(what, reason, message string) {
		t.Helper()
		eventually(t, what, func() error {
			cur := &scalestackv1alpha1.SocialPlatform{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(sp), cur); err != nil {
				return err
			}
			return readsFailed(cur, reason, message)
		})
	}
	stalledNow("Stalled, observed at the current generation, read as Failed and Degraded", scalestackv1alpha1.ReasonChildRejected, "refused a child")

	// A new spec is refused before anything of it is written: the post Deployment keeps its
	// replicas, and the platform is still converged to the accepted spec (a deleted Deployment
	// comes back as it was).
	post := sp.ComponentName(scalestackv1alpha1.ComponentPost)
	before, err := get(t, &appsv1.Deployment{}, ns, post)
	if err != nil {
		t.Fatal(err)
	}
	updateSP(t, sp, func(cur *scalestackv1alpha1.SocialPlatform) { cur.Spec.Apps.Post.Replicas = ptr.To[int32](4) })
	stalledNow("the new generation refused as InvalidSpec", scalestackv1alpha1.ReasonInvalidSpec, "spec.cdn:")
	consistently(t, "the post Deployment untouched by the refused spec", 2*time.Second, replicasAre(t, ns, post, *before.Spec.Replicas))
	user := sp.ComponentName(scalestackv1alpha1.ComponentUser)
	if err := k8s.Delete(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the user Deployment restored from the accepted spec", func() error {
		_, err := get(t, &appsv1.Deployment{}, ns, user)
		return err
	})
	if err := replicasAre(t, ns, post, *before.Spec.Replicas)(); err != nil {
		t.Error(err)
	}
}

const fixtureHeader = "# The status of a real platform whose CDN Ingress an admission policy refused\n" +
	"# (go test ./test/integration -run TestStatusAfterAFailedPassIsObserved with SCALESTACK_ARGOCD_FIXTURE).\n"

// readsFailed checks that a platform whose child is refused says so to every GitOps reader:
// observedGeneration is current, Stalled is True (for reason) and Reconciling False, kstatus
// (kubectl wait, Flux, cli-utils) computes Failed and Argo CD's health check Degraded with a
// message holding message.
func readsFailed(sp *scalestackv1alpha1.SocialPlatform, reason, message string) error {
	if sp.Status.ObservedGeneration != sp.Generation {
		return fmt.Errorf("observedGeneration %d, generation %d", sp.Status.ObservedGeneration, sp.Generation)
	}
	st := meta.FindStatusCondition(sp.Status.Conditions, scalestackv1alpha1.ConditionStalled)
	if st == nil || st.Status != metav1.ConditionTrue || st.Reason != reason || st.ObservedGeneration != sp.Generation {
		return fmt.Errorf("Stalled is %+v", st)
	}
	if rc := meta.FindStatusCondition(sp.Status.Conditions, scalestackv1alpha1.ConditionReconciling); rc == nil || rc.Status != metav1.ConditionFalse {
		return fmt.Errorf("Reconciling is %+v", rc)
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(sp)
	if err != nil {
		return err
	}
	res, err := kstatus.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		return err
	}
	if res.Status != kstatus.FailedStatus {
		return fmt.Errorf("kstatus computes %s (%s)", res.Status, res.Message)
	}
	if path := os.Getenv("SCALESTACK_ARGOCD_FIXTURE"); path != "" && reason == scalestackv1alpha1.ReasonChildRejected {
		// Refreshes config/argocd's fixture from this live platform (its status, as the operator wrote it).
		fixture := map[string]any{"apiVersion": scalestackv1alpha1.GroupVersion.String(), "kind": "SocialPlatform",
			"metadata": map[string]any{"name": sp.Name, "namespace": sp.Namespace, "generation": sp.Generation}, "status": obj["status"]}
		raw, err := yaml.Marshal(fixture)
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, append([]byte(fixtureHeader), raw...), 0o644); err != nil {
			return err
		}
	}
	health, said, err := argocd.Health(obj)
	if err != nil {
		return err
	}
	if health != "Degraded" || !strings.Contains(said, message) {
		return fmt.Errorf("Argo CD health %s %q", health, said)
	}
	return nil
}

func ingressProbe(ns string) *networkingv1.Ingress {
	return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns},
		Spec: networkingv1.IngressSpec{DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
			Name: "probe", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}
}
