package render

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

// GrafanaDashboardLabel is the label Grafana's dashboard sidecar (kube-prometheus-stack's default)
// loads ConfigMaps by.
const GrafanaDashboardLabel = "grafana_dashboard"

// DashboardsEnabled reports whether spec.observability.dashboards is on (the default).
func DashboardsEnabled(sp *scalestackv1alpha1.SocialPlatform) bool {
	return sp.Spec.Observability.Dashboards == nil || *sp.Spec.Observability.Dashboards
}

type panel struct {
	ID         int            `json:"id"`
	Title      string         `json:"title"`
	Type       string         `json:"type"`
	GridPos    map[string]int `json:"gridPos"`
	Datasource map[string]any `json:"datasource"`
	Targets    []target       `json:"targets"`
	FieldCfg   map[string]any `json:"fieldConfig,omitempty"`
}

type target struct {
	RefID        string `json:"refId"`
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat"`
}

// Dashboard renders the golden signals of one platform as Grafana dashboard JSON: latency
// percentiles, error rate and traffic per service, saturation, cache hit ratio, shard and
// replication health, Kafka lag and dead letters, and the age of the backups (spec.database.backup;
// the panel is empty without it).
func Dashboard(sp *scalestackv1alpha1.SocialPlatform) (string, error) {
	ns := sp.Namespace
	apps := fmt.Sprintf(`namespace=%q,service=~"%s-(gateway|user|post|feed)"`, ns, sp.Name)
	all := fmt.Sprintf(`namespace=%q,service=~"%s-.*"`, ns, sp.Name)
	db := fmt.Sprintf(`namespace=%q,service=~"%s-shard-[0-9]+-(primary|replicas)"`, ns, sp.Name)
	unit := func(u string) map[string]any { return map[string]any{"defaults": map[string]any{"unit": u}} }
	var panels []panel
	add := func(title, u string, targets ...target) {
		i := len(panels)
		panels = append(panels, panel{
			ID: i + 1, Title: title, Type: "timeseries",
			GridPos:    map[string]int{"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i / 2) * 8},
			Datasource: map[string]any{"type": "prometheus", "uid": "${datasource}"},
			Targets:    targets, FieldCfg: unit(u),
		})
	}
	q := func(ref, expr, legend string) target { return target{RefID: ref, Expr: expr, LegendFormat: legend} }
	for _, p := range []struct{ name, quantile string }{{"p50", "0.5"}, {"p95", "0.95"}, {"p99", "0.99"}} {
		add("Latency "+p.name+" by service", "s",
			q("A", fmt.Sprintf(`histogram_quantile(%s, sum by (service, le) (rate(%s_bucket{%s}[5m])))`, p.quantile, MetricDuration, apps), "{{service}}"))
	}
	add("Requests per second by service", "reqps",
		q("A", fmt.Sprintf(`sum by (service) (rate(%s{%s}[5m]))`, MetricRequests, apps), "{{service}}"))
	add("Error ratio (5xx) by service", "percentunit",
		q("A", `sum by (service) (scalestack:sli_errors:ratio_rate5m{namespace="`+ns+`"})`, "{{service}}"))
	add("Error budget burn (1h) by service", "none",
		q("A", `scalestack:sli_errors:ratio_rate1h{namespace="`+ns+`"} / 0.001`, "{{service}} availability"))
	add("CPU by service (saturation)", "percentunit",
		q("A", fmt.Sprintf(`sum by (service) (rate(process_cpu_seconds_total{%s}[5m]))`, all), "{{service}}"))
	add("Cache hit ratio", "percentunit",
		q("A", fmt.Sprintf(`sum(rate(scalestack_cache_hits_total{%s}[5m])) / (sum(rate(scalestack_cache_hits_total{%s}[5m])) + sum(rate(scalestack_cache_misses_total{%s}[5m])))`, apps, apps, apps), "hit ratio"))
	add("Database connections by shard pod", "percentunit",
		q("A", fmt.Sprintf(`max by (pod) (mysql_global_status_threads_connected{%s} / mysql_global_variables_max_connections{%s})`, db, db), "{{pod}}"))
	add("Replication lag by replica", "s",
		q("A", fmt.Sprintf(`max by (pod) (scalestack_replication_lag_seconds{%s})`, db), "{{pod}}"))
	add("Replicas ready in their role", "none",
		q("A", fmt.Sprintf(`sum by (shard, role) (scalestack_replication_healthy{%s})`, db), "shard {{shard}} {{role}}"))
	add("Kafka consumer lag and dead letters", "none",
		q("A", fmt.Sprintf(`max by (topic, group) (scalestack_kafka_consumer_lag{%s})`, all), "lag {{group}} {{topic}}"),
		q("B", fmt.Sprintf(`max by (topic) (scalestack_kafka_dlq_messages{%s})`, all), "DLQ {{topic}}"))
	add("Backup age by shard: newest full backup, last archived binary log", "s",
		q("A", fmt.Sprintf(`time() - max by (shard) (scalestack_backup_full_newest_timestamp_seconds{%s} > 0)`, db), "full backup, shard {{shard}}"),
		q("B", fmt.Sprintf(`time() - max by (shard) (scalestack_backup_binlog_archived_timestamp_seconds{%s} > 0)`, db), "archive, shard {{shard}}"))
	dash := map[string]any{
		"uid":           DashboardUID(ns, sp.Name),
		"title":         fmt.Sprintf("scalestack / %s / %s", ns, sp.Name),
		"tags":          []string{"scalestack"},
		"schemaVersion": 39,
		"time":          map[string]string{"from": "now-6h", "to": "now"},
		"refresh":       "30s",
		"templating": map[string]any{"list": []any{map[string]any{
			"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source",
		}}},
		"panels": panels,
	}
	raw, err := json.MarshalIndent(dash, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encoding dashboard: %w", err)
	}
	return string(raw), nil
}

// DashboardName names the dashboard ConfigMap.
func DashboardName(sp *scalestackv1alpha1.SocialPlatform) string { return sp.Name + "-dashboard" }

// DashboardConfigMap carries the dashboard for Grafana's sidecar.
func DashboardConfigMap(sp *scalestackv1alpha1.SocialPlatform, dashboardJSON string) *corev1ac.ConfigMapApplyConfiguration {
	labels := sp.Labels("monitoring")
	labels[GrafanaDashboardLabel] = "1"
	return corev1ac.ConfigMap(DashboardName(sp), sp.Namespace).
		WithLabels(labels).
		WithOwnerReferences(OwnerReference(sp)).
		WithData(map[string]string{sp.Name + ".json": dashboardJSON})
}

// DashboardUID names a platform's dashboard in Grafana, which allows 40 characters:
// scalestack-<namespace>-<name> when that fits, else scalestack- and a hash of both (a namespace
// may have 63 characters and a name 30).
func DashboardUID(namespace, name string) string {
	if uid := "scalestack-" + namespace + "-" + name; len(uid) <= 40 {
		return uid
	}
	sum := sha256.Sum256([]byte(namespace + "/" + name))
	return "scalestack-" + hex.EncodeToString(sum[:])[:29]
}
