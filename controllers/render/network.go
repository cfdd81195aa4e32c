package render

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

// ScrapeNamespaceLabel marks a namespace whose Prometheus may scrape the platform's metrics ports
// (besides a namespace named "monitoring").
const ScrapeNamespaceLabel = "scalestack.dev/scrape"

// OperatorNamespace is where config/manager installs the operator; OperatorNamespaceLabel marks
// another namespace it runs in. Both may reach the shard agents' port.
const (
	OperatorNamespace      = "scalestack-system"
	OperatorNamespaceLabel = "scalestack.dev/operator"
)

// NetworkPolicies deny all ingress to the platform's pods and allow only the paths the stack
// uses: the gateway from anywhere; the user, post and feed services from the apps; the databases
// from the apps, the archiver and each other (replication); the cache from the apps; metrics ports
// from monitoring namespaces; the shard agents' port from the operator's namespace. Egress is not restricted (the apps reach Kafka and the tracing
// collector wherever they are).
func NetworkPolicies(sp *scalestackv1alpha1.SocialPlatform) []*networkingv1ac.NetworkPolicyApplyConfiguration {
	tcp := corev1.ProtocolTCP
	port := func(p int32) *networkingv1ac.NetworkPolicyPortApplyConfiguration {
		return networkingv1ac.NetworkPolicyPort().WithProtocol(tcp).WithPort(intstr.FromInt32(p))
	}
	instance := map[string]string{scalestackv1alpha1.LabelInstance: sp.Name}
	components := func(cs ...string) *metav1ac.LabelSelectorApplyConfiguration {
		return metav1ac.LabelSelector().WithMatchLabels(instance).WithMatchExpressions(
			metav1ac.LabelSelectorRequirement().WithKey(scalestackv1alpha1.LabelComponent).WithOperator("In").WithValues(cs...))
	}
	fromPods := func(cs ...string) *networkingv1ac.NetworkPolicyPeerApplyConfiguration {
		return networkingv1ac.NetworkPolicyPeer().WithPodSelector(components(cs...))
	}
	monitoring := []*networkingv1ac.NetworkPolicyPeerApplyConfiguration{
		networkingv1ac.NetworkPolicyPeer().WithNamespaceSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"kubernetes.io/metadata.name": "monitoring"})),
		networkingv1ac.NetworkPolicyPeer().WithNamespaceSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{ScrapeNamespaceLabel: "true"})),
	}
	operator := []*networkingv1ac.NetworkPolicyPeerApplyConfiguration{
		networkingv1ac.NetworkPolicyPeer().WithNamespaceSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"kubernetes.io/metadata.name": OperatorNamespace})),
		networkingv1ac.NetworkPolicyPeer().WithNamespaceSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{OperatorNamespaceLabel: "true"})),
	}
	apps := []string{"gateway", "user", "post", "feed", "worker"}
	policy := func(name string, selector *metav1ac.LabelSelectorApplyConfiguration, rules ...*networkingv1ac.NetworkPolicyIngressRuleApplyConfiguration) *networkingv1ac.NetworkPolicyApplyConfiguration {
		spec := networkingv1ac.NetworkPolicySpec().WithPodSelector(selector).WithPolicyTypes(networkingv1.PolicyTypeIngress)
		if len(rules) > 0 {
			spec.WithIngress(rules...)
		}
		return networkingv1ac.NetworkPolicy(sp.Name+"-"+name, sp.Namespace).
			WithLabels(sp.Labels("network")).
			WithOwnerReferences(OwnerReference(sp)).
			WithSpec(spec)
	}
	rule := func(peers []*networkingv1ac.NetworkPolicyPeerApplyConfiguration, ports ...int32) *networkingv1ac.NetworkPolicyIngressRuleApplyConfiguration {
		r := networkingv1ac.NetworkPolicyIngressRule()
		for _, p := range ports {
			r.WithPorts(port(p))
		}
		if peers != nil {
			r.WithFrom(peers...)
		}
		return r
	}
	return []*networkingv1ac.NetworkPolicyApplyConfiguration{
		policy("default-deny", metav1ac.LabelSelector().WithMatchLabels(instance)),
		policy("gateway", components("gateway"), rule(nil, HTTPPort)),
		policy("services", components("user", "post", "feed"), rule([]*networkingv1ac.NetworkPolicyPeerApplyConfiguration{fromPods(apps...)}, HTTPPort)),
		policy("database", components("database"), rule([]*networkingv1ac.NetworkPolicyPeerApplyConfiguration{fromPods(append(apps, "archiver", "database")...)}, MySQLPort)),
		policy("cache", components("cache"), rule([]*networkingv1ac.NetworkPolicyPeerApplyConfiguration{fromPods(apps...)}, RedisPort)),
		policy("metrics", metav1ac.LabelSelector().WithMatchLabels(instance), rule(monitoring, HTTPPort, ExporterPort, RedisExporterPort, AgentPort)),
		// The operator calls the shard agents to move a primary (failover, switchover).
		policy("database-agent", components("database"), rule(operator, AgentPort)),
	}
}
