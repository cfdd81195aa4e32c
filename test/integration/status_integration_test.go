package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
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

// A pass that fails in a late phase (the CDN Ingress refused by an admission policy) still
// reports the components the earlier phases made as they are: the shards and the cache exist, so
// their conditions never say "Not created yet", and Degraded names the failing phase.
func TestStatusAfterAFailedPassIsObserved(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
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
	for _, o := range []client.Object{policy, binding} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), o) })
	}
	// The policy takes effect once the API server has loaded it: probe with an Ingress of our own.
	eventually(t, "the policy refusing Ingresses", func() error {
		probe := ingressProbe(ns)
		if err := k8s.Create(ctx, probe); err == nil {
			_ = k8s.Delete(ctx, probe)
			return fmt.Errorf("an Ingress was still admitted")
		}
		return nil
	})

	sp := loadSample(t, ns)
	if err := k8s.Create(ctx, sp); err != nil {
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
	stalledNow := func(what string) {
		t.Helper()
		eventually(t, what, func() error {
			cur := &scalestackv1alpha1.SocialPlatform{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(sp), cur); err != nil {
				return err
			}
			return readsFailed(cur)
		})
	}
	stalledNow("Stalled, observed at the current generation, read as Failed and Degraded")

	// A refused Ingress does not keep the apps from being updated: the phases after a failing
	// non-blocking one still run, and the new generation is reported as stalled too.
	updateSP(t, sp, func(cur *scalestackv1alpha1.SocialPlatform) { cur.Spec.Apps.Post.Replicas = ptr.To[int32](4) })
	eventually(t, "the post Deployment updated while the Ingress is still refused", replicasAre(t, ns, sp.ComponentName(scalestackv1alpha1.ComponentPost), 4))
	stalledNow("the new generation reported stalled")
}

const fixtureHeader = "# The status of a real platform whose CDN Ingress an admission policy refused\n" +
	"# (go test ./test/integration -run TestStatusAfterAFailedPassIsObserved with SCALESTACK_ARGOCD_FIXTURE).\n"

// readsFailed checks that a platform whose child is refused says so to every GitOps reader:
// observedGeneration is current, Stalled is True (ChildRejected) and Reconciling False, kstatus
// (kubectl wait, Flux, cli-utils) computes Failed and Argo CD's health check Degraded.
func readsFailed(sp *scalestackv1alpha1.SocialPlatform) error {
	if sp.Status.ObservedGeneration != sp.Generation {
		return fmt.Errorf("observedGeneration %d, generation %d", sp.Status.ObservedGeneration, sp.Generation)
	}
	st := meta.FindStatusCondition(sp.Status.Conditions, scalestackv1alpha1.ConditionStalled)
	if st == nil || st.Status != metav1.ConditionTrue || st.Reason != scalestackv1alpha1.ReasonChildRejected || st.ObservedGeneration != sp.Generation {
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
	if path := os.Getenv("SCALESTACK_ARGOCD_FIXTURE"); path != "" {
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
	health, message, err := argocd.Health(obj)
	if err != nil {
		return err
	}
	if health != "Degraded" || !strings.Contains(message, "refused a child") {
		return fmt.Errorf("Argo CD health %s %q", health, message)
	}
	return nil
}

func ingressProbe(ns string) *networkingv1.Ingress {
	return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns},
		Spec: networkingv1.IngressSpec{DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
			Name: "probe", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}
}
