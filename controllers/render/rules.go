package render

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

// The SLI metrics every app service exposes (the apps' contract with these rules):
//
//	scalestack_http_requests_total{code}                    counter, one per finished request
//	scalestack_http_request_duration_seconds_bucket{le}     histogram of request durations
//
// Prometheus adds namespace and service (the Kubernetes Service, e.g. demo-gateway) when it
// scrapes through the ServiceMonitor; the rules select on those two labels.
const (
	MetricRequests = "scalestack_http_requests_total"
	MetricDuration = "scalestack_http_request_duration_seconds"
	// RunbookBase is where every alert's runbook_url points.
	RunbookBase = "https://github.com/scalestack/scalestack/blob/main/docs/runbooks.md"
)

// SLIWindows are the windows the SLI ratios are recorded over.
var SLIWindows = []string{"5m", "30m", "1h", "2h", "6h", "1d", "3d"}

// RuleGroup and Rule are a Prometheus rule file's shape (and a PrometheusRule's spec.groups).
type RuleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []Rule `json:"rules"`
}

// Rule is a recording or alerting rule.
type Rule struct {
	Record      string            `json:"record,omitempty"`
	Alert       string            `json:"alert,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// burnAlert is one multi-window multi-burn-rate alert: budgetShare of the error budget consumed
// over long (checked again over short, so that the alert stops soon after the burn does).
type burnAlert struct {
	severity    string
	budgetShare float64
	long, short string
	longHours   float64
	forDuration string
}

// The SRE workbook's four alerts. For a 30-day window their factors are 14.4, 6, 3 and 1.
var burnAlerts = []burnAlert{
	{"page", 0.02, "1h", "5m", 1, "2m"},
	{"page", 0.05, "6h", "30m", 6, "15m"},
	{"ticket", 0.10, "1d", "2h", 24, "1h"},
	{"ticket", 0.10, "3d", "6h", 72, "3h"},
}

// SLOObjectives returns the availability and latency objectives as error budgets (fractions) and
// the latency threshold in seconds.
func SLOObjectives(sp *scalestackv1alpha1.SocialPlatform) (availabilityBudget, latencyBudget, thresholdSeconds float64, windowHours float64) {
	avail, _ := strconv.ParseFloat(scalestackv1alpha1.DefaultAvailability, 64)
	if v, err := strconv.ParseFloat(sp.Spec.SLO.Availability, 64); err == nil && v > 0 {
		avail = v
	}
	lat := 99.0
	if v, err := strconv.ParseFloat(sp.Spec.SLO.Latency.Percent, 64); err == nil && v > 0 {
		lat = v
	}
	threshold := 300 * time.Millisecond
	if t := sp.Spec.SLO.Latency.Threshold; t != nil && t.Duration > 0 {
		threshold = t.Duration
	}
	days, _ := strconv.Atoi(strings.TrimSuffix(scalestackv1alpha1.DefaultSLOWindow, "d"))
	if w := strings.TrimSuffix(sp.Spec.SLO.Window, "d"); w != "" {
		if d, err := strconv.Atoi(w); err == nil && d > 0 {
			days = d
		}
	}
	return round((100 - avail) / 100), round((100 - lat) / 100), threshold.Seconds(), float64(days * 24)
}

func round(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 10, 64), 64)
	return v
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// SLORuleGroups renders, per app service, the SLI recording rules over every window and the
// multi-window multi-burn-rate alerts for availability and latency, plus the saturation alerts.
func SLORuleGroups(sp *scalestackv1alpha1.SocialPlatform) []RuleGroup {
	availBudget, latBudget, threshold, windowHours := SLOObjectives(sp)
	ns := sp.Namespace
	var groups []RuleGroup
	for _, c := range AppComponentsWithSLO {
		svc := sp.ComponentName(c)
		sel := fmt.Sprintf(`namespace=%q,service=%q`, ns, svc)
		labels := map[string]string{"namespace": ns, "service": svc, "platform": sp.Name}
		rec := RuleGroup{Name: fmt.Sprintf("scalestack-%s-%s-sli", sp.Name, c)}
		for _, w := range SLIWindows {
			rec.Rules = append(rec.Rules,
				Rule{
					Record: "scalestack:sli_errors:ratio_rate" + w,
					Expr: fmt.Sprintf(`sum(rate(%s{%s,code=~"5.."}[%s])) / sum(rate(%s{%s}[%s]))`,
						MetricRequests, sel, w, MetricRequests, sel, w),
					Labels: labels,
				},
				Rule{
					Record: "scalestack:sli_slow:ratio_rate" + w,
					Expr: fmt.Sprintf(`1 - (sum(rate(%s_bucket{%s,le=%q}[%s])) / sum(rate(%s_count{%s}[%s])))`,
						MetricDuration, sel, num(threshold), w, MetricDuration, sel, w),
					Labels: labels,
				})
		}
		groups = append(groups, rec)

		alerts := RuleGroup{Name: fmt.Sprintf("scalestack-%s-%s-slo", sp.Name, c)}
		for _, slo := range []struct {
			name, record string
			budget       float64
			what         string
		}{
			{"availability", "scalestack:sli_errors:ratio_rate", availBudget, "errors"},
			{"latency", "scalestack:sli_slow:ratio_rate", latBudget, fmt.Sprintf("requests slower than %ss", num(threshold))},
		} {
			for _, a := range burnAlerts {
				factor := round(a.budgetShare * windowHours / a.longHours)
				limit := num(round(factor * slo.budget))
				sel := fmt.Sprintf(`{namespace=%q,service=%q}`, ns, svc)
				alerts.Rules = append(alerts.Rules, Rule{
					Alert: "ScalestackErrorBudgetBurn",
					Expr: fmt.Sprintf("%s%s%s > %s\nand\n%s%s%s > %s",
						slo.record, a.long, sel, limit, slo.record, a.short, sel, limit),
					For: a.forDuration,
					Labels: map[string]string{"severity": a.severity, "slo": slo.name, "namespace": ns, "service": svc,
						"platform": sp.Name, "long_window": a.long},
					Annotations: map[string]string{
						"summary": fmt.Sprintf("%s burns its %s error budget %sx too fast", svc, slo.name, num(factor)),
						"description": fmt.Sprintf("Over the last %s and %s, %s's share of %s is above %s (%sx the budget of a %.0f-day window): at this rate %.0f%% of the budget goes in %s.",
							a.long, a.short, svc, slo.what, limit, num(factor), windowHours/24, a.budgetShare*100, a.long),
						"runbook_url": RunbookBase + "#scalestackerrorbudgetburn",
					},
				})
			}
		}
		groups = append(groups, alerts)
	}
	groups = append(groups, budgetRules(sp, windowHours), saturationRules(sp))
	return groups
}

// Recorded error ratios over the whole SLO window, from which the error budget left is computed.
const (
	RecordErrorsWindow = "scalestack:sli_errors:ratio_rate_window"
	RecordSlowWindow   = "scalestack:sli_slow:ratio_rate_window"
)

// budgetRules record, per service, the error and slow ratios over the whole SLO window. A rate
// over 30 days is costly, so the group is evaluated every 5 minutes only: the budget left moves
// slowly by nature.
func budgetRules(sp *scalestackv1alpha1.SocialPlatform, windowHours float64) RuleGroup {
	_, _, threshold, _ := SLOObjectives(sp)
	w := fmt.Sprintf("%dh", int(windowHours))
	g := RuleGroup{Name: fmt.Sprintf("scalestack-%s-budget", sp.Name), Interval: "5m"}
	for _, c := range AppComponentsWithSLO {
		svc := sp.ComponentName(c)
		sel := fmt.Sprintf(`namespace=%q,service=%q`, sp.Namespace, svc)
		labels := map[string]string{"namespace": sp.Namespace, "service": svc, "platform": sp.Name}
		g.Rules = append(g.Rules,
			Rule{Record: RecordErrorsWindow, Labels: labels,
				Expr: fmt.Sprintf(`sum(rate(%s{%s,code=~"5.."}[%s])) / sum(rate(%s{%s}[%s]))`, MetricRequests, sel, w, MetricRequests, sel, w)},
			Rule{Record: RecordSlowWindow, Labels: labels,
				Expr: fmt.Sprintf(`1 - (sum(rate(%s_bucket{%s,le=%q}[%s])) / sum(rate(%s_count{%s}[%s])))`,
					MetricDuration, sel, num(threshold), w, MetricDuration, sel, w)})
	}
	return g
}

// AppComponentsWithSLO are the services that serve HTTP requests (the worker consumes Kafka; its
// health is consumer lag and the DLQ).
var AppComponentsWithSLO = []scalestackv1alpha1.Component{
	scalestackv1alpha1.ComponentGateway, scalestackv1alpha1.ComponentUser,
	scalestackv1alpha1.ComponentPost, scalestackv1alpha1.ComponentFeed,
}

func saturationRules(sp *scalestackv1alpha1.SocialPlatform) RuleGroup {
	ns := sp.Namespace
	labels := func(severity string) map[string]string {
		return map[string]string{"severity": severity, "namespace": ns, "platform": sp.Name}
	}
	alert := func(name, expr, forDur, severity, summary, description string) Rule {
		return Rule{Alert: name, Expr: expr, For: forDur, Labels: labels(severity), Annotations: map[string]string{
			"summary": summary, "description": description, "runbook_url": RunbookBase + "#" + strings.ToLower(name),
		}}
	}
	db := fmt.Sprintf(`namespace=%q,service=~"%s-shard-[0-9]+-(primary|replicas)"`, ns, sp.Name)
	cache := fmt.Sprintf(`namespace=%q,service=%q`, ns, sp.CacheName())
	apps := fmt.Sprintf(`namespace=%q,service=~"%s-(gateway|user|post|feed|worker)"`, ns, sp.Name)
	rules := []Rule{
		alert("ScalestackDatabaseConnectionsHigh",
			fmt.Sprintf(`max by (namespace, service, pod) (mysql_global_status_threads_connected{%s} / mysql_global_variables_max_connections{%s}) > 0.8`, db, db),
			"10m", "ticket", "A shard uses more than 80% of its connections", "{{ $labels.pod }} has {{ $value | humanizePercentage }} of max_connections in use."),
		alert("ScalestackReplicationLagHigh",
			fmt.Sprintf(`max by (namespace, pod) (scalestack_replication_lag_seconds{%s}) > 10`, db),
			"5m", "page", "A read replica is more than 10s behind its primary", "{{ $labels.pod }} is {{ $value }}s behind; reads from it are stale and it is out of its Service."),
		alert("ScalestackReplicaNotReplicating",
			fmt.Sprintf(`min by (namespace, pod) (scalestack_replication_healthy{%s,role="replica"}) == 0`, db),
			"5m", "page", "A read replica is not replicating", "{{ $labels.pod }} is not replicating from its primary (stopped thread, wrong primary or lag unknown)."),
		alert("ScalestackShardFailover",
			fmt.Sprintf(`max by (namespace, pod) (increase(scalestack_dbagent_promotions_total{%s}[15m])) > 0`, db),
			"", "page", "A shard's primary was replaced", "{{ $labels.pod }} was promoted to primary in the last 15 minutes: find out why the old primary failed, and check it rejoined as a replica."),
		alert("ScalestackShardDiverged",
			fmt.Sprintf(`max by (namespace, pod) (scalestack_dbagent_diverged{%s}) == 1`, db),
			"5m", "page", "A database server has transactions its primary lacks", "{{ $labels.pod }} refuses to replicate from the shard's primary: it has writes the primary never received (lost in a failover), and no automatic rebuild from the primary has replaced it."),
		alert("ScalestackPrimaryFenced",
			fmt.Sprintf(`max by (namespace, pod) (scalestack_dbagent_fenced{%s}) == 1`, db),
			"2m", "page", "A shard's primary refuses writes", "{{ $labels.pod }} is the primary of record but fenced itself (a stall) and the operator has not confirmed it: the shard takes no writes."),
		alert("ScalestackBinlogArchivingStalled",
			fmt.Sprintf(`(time() - max by (namespace, pod) (scalestack_backup_binlog_archived_timestamp_seconds{%s})) > %d and on (namespace, pod) max by (namespace, pod) (scalestack_replication_healthy{%s,role="primary"}) == 1`,
				db, int64((3*ArchiveInterval(sp)+time.Minute).Seconds()), db),
			"5m", "page", "A shard's binary logs are not being archived", fmt.Sprintf("{{ $labels.pod }} last archived its binary logs {{ $value | humanizeDuration }} ago, more than three archive intervals (%v): its recent transactions are not backed up, and its binary logs grow on its volume.", ArchiveInterval(sp))),
		alert("ScalestackBackupTooOld",
			fmt.Sprintf(`(time() - max by (namespace, shard) (scalestack_backup_full_newest_timestamp_seconds{%s})) > %d`, db, int64(BackupTooOld(sp).Seconds())),
			"1h", "ticket", "A shard's newest full backup is too old", fmt.Sprintf("Shard {{ $labels.shard }}'s newest complete full backup finished {{ $value | humanizeDuration }} ago, longer than the schedule allows (%v): a restore would replay that much binary log, or, without archiving, lose it.", BackupTooOld(sp))),
		alert("ScalestackRedisEvicting",
			fmt.Sprintf(`sum by (namespace) (rate(redis_evicted_keys_total{%s}[10m])) > 10`, cache),
			"30m", "ticket", "Redis evicts keys steadily", "{{ $value | humanize }} keys/s evicted: the cache is too small for the working set."),
		alert("ScalestackCacheHitRatioLow",
			fmt.Sprintf(`sum by (namespace) (rate(scalestack_cache_hits_total{%s}[15m])) / (sum by (namespace) (rate(scalestack_cache_hits_total{%s}[15m])) + sum by (namespace) (rate(scalestack_cache_misses_total{%s}[15m]))) < 0.9`, apps, apps, apps),
			"30m", "ticket", "The cache hit ratio is under 90%", "Only {{ $value | humanizePercentage }} of cache reads hit; the database carries the rest."),
		alert("ScalestackConsumerLagHigh",
			fmt.Sprintf(`max by (namespace, topic, group) (scalestack_kafka_consumer_lag{%s}) > 1000`, apps),
			"10m", "ticket", "A Kafka consumer group is falling behind", "{{ $labels.group }} is {{ $value }} messages behind on {{ $labels.topic }}."),
		alert("ScalestackDeadLetters",
			fmt.Sprintf(`max by (namespace, topic) (scalestack_kafka_dlq_messages{%s}) > 0`, apps),
			"5m", "ticket", "Messages wait in a dead-letter topic", "{{ $value }} messages in {{ $labels.topic }}: inspect them, fix the cause, then replay."),
		alert("ScalestackOutboxBacklog",
			fmt.Sprintf(`max by (namespace, service) (scalestack_outbox_pending{%s}) > 1000`, apps),
			"10m", "page", "Events are not leaving the outbox", "{{ $value }} events wait in {{ $labels.service }}'s outbox: Kafka is unreachable or the relay is stuck."),
	}
	// A cache that may not evict refuses writes at maxmemory; an evicting one (allkeys-lru, the
	// default) is always near it once warm, which is the cache doing its job, not a problem.
	if ReplicasPerShard(sp) > 0 {
		// Without replicas a primary has nobody to wait for: asynchronous is all there is.
		rules = append(rules, alert("ScalestackReplicationAsynchronous",
			fmt.Sprintf(`min by (namespace, pod) (scalestack_dbagent_semisync_waiting{%s}) == 0`, db),
			"10m", "ticket", "A shard's primary replicates asynchronously", "{{ $labels.pod }} commits without a replica's acknowledgement (no replica connected, or one timed out): a failover now could lose acknowledged writes."))
	}
	if CacheEvictionPolicy(sp) == "noeviction" {
		rules = append(rules, alert("ScalestackRedisMemoryHigh",
			fmt.Sprintf(`max by (namespace, pod) (redis_memory_used_bytes{%s} / redis_memory_max_bytes{%s}) > 0.95`, cache, cache),
			"15m", "ticket", "Redis, which may not evict, is at its maxmemory", "The cache holds {{ $value | humanizePercentage }} of spec.cache.size and refuses new keys at 100%."))
	}
	// Bottleneck signals: what a saturated shared dependency really shows, quickly enough (one
	// minute, the default scale-up cooldown) to stop the autoscaler before it adds replicas that
	// would only lengthen the dependency's queue. The label "bottleneck" names the dependency; the
	// autoscaler selects on it.
	bottleneck := func(name, dependency, expr, summary, description string) Rule {
		r := alert(name, expr, BottleneckFor, "ticket", summary, description)
		r.Labels[BottleneckLabel] = dependency
		return r
	}
	hitRatio5m := fmt.Sprintf(`(sum by (namespace) (rate(scalestack_cache_hits_total{%s}[5m])) / (sum by (namespace) (rate(scalestack_cache_hits_total{%s}[5m])) + sum by (namespace) (rate(scalestack_cache_misses_total{%s}[5m]))))`, apps, apps, apps)
	rules = append(rules,
		bottleneck("ScalestackDatabaseSaturated", "database",
			fmt.Sprintf(`max by (namespace, service) (mysql_global_status_threads_connected{%s} / mysql_global_variables_max_connections{%s}) > 0.9`, db, db),
			"A shard is out of connections", "{{ $labels.service }} has {{ $value | humanizePercentage }} of max_connections in use: more app replicas would only queue for it."),
		bottleneck("ScalestackCacheThrashing", "cache",
			fmt.Sprintf(`(sum by (namespace) (rate(redis_evicted_keys_total{%s}[5m])) > 1) and on (namespace) (%s < 0.8)`, cache, hitRatio5m),
			"The cache evicts what the workload rereads", "Redis evicts keys while under 80% of reads hit: the working set does not fit spec.cache.size, and the database carries the misses."),
	)
	return RuleGroup{Name: fmt.Sprintf("scalestack-%s-saturation", sp.Name), Rules: rules}
}

// BottleneckLabel on an alert names the saturated shared dependency it reports ("database" or
// "cache"); the autoscaler does not scale while such an alert fires.
const BottleneckLabel = "bottleneck"

// BottleneckFor is how long a bottleneck signal must hold before its alert fires.
const BottleneckFor = "1m"

// AlertNames lists every alert the rules can raise, for the runbook check.
func AlertNames(groups []RuleGroup) []string {
	seen := map[string]bool{}
	var out []string
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Alert != "" && !seen[r.Alert] {
				seen[r.Alert] = true
				out = append(out, r.Alert)
			}
		}
	}
	return out
}
