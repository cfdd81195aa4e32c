package render

import (
	"fmt"
	"maps"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

// MonitoringGroup is the API group of prometheus-operator's kinds.
const MonitoringGroup = "monitoring.coreos.com"

// monitoringMeta is the metadata of a monitoring object: our labels plus spec.observability.ruleLabels,
// so that a Prometheus' ruleSelector and serviceMonitorSelector (e.g. release: kube-prometheus-stack)
// pick it up.
func monitoringMeta(sp *scalestackv1alpha1.SocialPlatform, name, component string) metav1.ObjectMeta {
	labels := map[string]string{}
	for k, v := range sp.Spec.Observability.RuleLabels {
		labels[k] = string(v)
	}
	maps.Copy(labels, sp.Labels(component))
	ref := OwnerReference(sp)
	return metav1.ObjectMeta{
		Name: name, Namespace: sp.Namespace, Labels: labels,
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: *ref.APIVersion, Kind: *ref.Kind, Name: *ref.Name, UID: *ref.UID,
			Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
		}},
	}
}

// PrometheusRule carries the SLO and saturation rules of SLORuleGroups.
func PrometheusRule(sp *scalestackv1alpha1.SocialPlatform) *monitoringv1.PrometheusRule {
	pr := &monitoringv1.PrometheusRule{
		TypeMeta:   metav1.TypeMeta{APIVersion: MonitoringGroup + "/v1", Kind: "PrometheusRule"},
		ObjectMeta: monitoringMeta(sp, sp.Name+"-slo", "monitoring"),
	}
	for _, g := range SLORuleGroups(sp) {
		rg := monitoringv1.RuleGroup{Name: g.Name}
		if g.Interval != "" {
			rg.Interval = ptr.To(monitoringv1.Duration(g.Interval))
		}
		for _, r := range g.Rules {
			rule := monitoringv1.Rule{Record: r.Record, Alert: r.Alert, Expr: intstr.FromString(r.Expr), Labels: r.Labels, Annotations: r.Annotations}
			if r.For != "" {
				rule.For = ptr.To(monitoringv1.Duration(r.For))
			}
			rg.Rules = append(rg.Rules, rule)
		}
		pr.Spec.Groups = append(pr.Spec.Groups, rg)
	}
	return pr
}

// ServiceMonitors scrape every app service (port http, /metrics), the shards' exporters and the
// cache's exporter (port metrics). Prometheus adds the namespace and service labels the rules
// select on.
func ServiceMonitors(sp *scalestackv1alpha1.SocialPlatform) []*monitoringv1.ServiceMonitor {
	sm := func(name, component string, selector map[string]string, ports ...string) *monitoringv1.ServiceMonitor {
		m := &monitoringv1.ServiceMonitor{
			TypeMeta:   metav1.TypeMeta{APIVersion: MonitoringGroup + "/v1", Kind: "ServiceMonitor"},
			ObjectMeta: monitoringMeta(sp, name, component),
			Spec:       monitoringv1.ServiceMonitorSpec{Selector: metav1.LabelSelector{MatchLabels: selector}},
		}
		for _, port := range ports {
			m.Spec.Endpoints = append(m.Spec.Endpoints, monitoringv1.Endpoint{Port: port, Path: "/metrics", Interval: "15s"})
		}
		return m
	}
	var out []*monitoringv1.ServiceMonitor
	for _, c := range scalestackv1alpha1.AppComponents {
		out = append(out, sm(sp.ComponentName(c), string(c), sp.SelectorLabels(string(c)), "http"))
	}
	db := sp.SelectorLabels("database")
	out = append(out,
		// The exporter's server metrics and the agent's replication health and lag.
		sm(fmt.Sprintf("%s-database", sp.Name), "database", db, "metrics", "agent"),
		sm(sp.CacheName(), "cache", sp.SelectorLabels("cache"), "metrics"))
	return out
}
