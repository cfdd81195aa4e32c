package controllers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/autoscale"
	"github.com/scalestack/scalestack/controllers/render"
)

// AutoscalerFieldManager writes the app Deployments' replicas through the scale subresource. The
// reconciler leaves replicas out of what it applies while autoscaling is on, so neither fights the
// other, nor Argo CD.
const AutoscalerFieldManager = "scalestack-autoscaler"

// saturationAlerts map the saturation alerts that mean "a shared dependency is the bottleneck" to
// the dependency's name in a decision's message.
var saturationAlerts = map[string]string{
	"ScalestackDatabaseConnectionsHigh": "database (connections)",
	"ScalestackReplicationLagHigh":      "database (replication lag)",
	"ScalestackRedisMemoryHigh":         "cache (memory)",
	"ScalestackRedisEvicting":           "cache (evictions)",
}

// promClients keeps one Prometheus API client per URL.
type promClients struct {
	mu      sync.Mutex
	clients map[string]promv1.API
}

func (p *promClients) get(url string) (promv1.API, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[url]; ok {
		return c, nil
	}
	c, err := promapi.NewClient(promapi.Config{Address: url})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", url, err)
	}
	if p.clients == nil {
		p.clients = map[string]promv1.API{}
	}
	p.clients[url] = promv1.NewAPI(c)
	return p.clients[url], nil
}

// sloObservation is what SLOHealthy is computed from.
type sloObservation struct {
	enabled    bool
	metricsErr error
	fast, slow []string
	bottleneck string
}

// reconcileAutoscaling reads each HTTP service's burn rates from Prometheus, decides with
// autoscale.Decide, writes replicas through the scale subresource, and records the decision in
// status, an Event and a metric.
func (r *SocialPlatformReconciler) reconcileAutoscaling(ctx context.Context, s *scope) error {
	sp := s.sp
	a := sp.Spec.SLO.Autoscaling
	s.slo = sloObservation{enabled: a.Enabled}
	if !a.Enabled {
		sp.Status.SLO = scalestackv1alpha1.SLOStatus{}
		return nil
	}
	interval := 30 * time.Second
	if a.Interval != nil && a.Interval.Duration > 0 {
		interval = a.Interval.Duration
	}
	s.requeueAfter(interval)
	availBudget, latBudget, _, windowHours := render.SLOObjectives(sp)
	api, err := r.prom.get(a.PrometheusURL)
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var bottleneck string
	if err == nil {
		bottleneck, err = queryBottleneck(qctx, api, sp.Namespace)
	}
	s.slo.metricsErr, s.slo.bottleneck = err, bottleneck

	previous := map[string]scalestackv1alpha1.ServiceSLOStatus{}
	for _, st := range s.original.Status.SLO.Services {
		previous[st.Name] = st
	}
	var statuses []scalestackv1alpha1.ServiceSLOStatus
	now := time.Now()
	for _, c := range render.AppComponentsWithSLO {
		svc := sp.ComponentName(c)
		spec := sp.Spec.Apps.Service(c)
		dep := &appsv1.Deployment{}
		found, err := r.getOptional(ctx, sp.Namespace, svc, dep)
		if err != nil {
			return err
		}
		if !found || dep.Spec.Replicas == nil {
			continue
		}
		prev := previous[string(c)]
		in := autoscale.Input{
			Now: now, Current: *dep.Spec.Replicas,
			Min: render.MinReplicas(spec), Max: render.MaxReplicas(spec), Step: ptrOr(a.Step, 1),
			MetricsError: s.slo.metricsErr, Bottleneck: bottleneck,
			ScaleUpCooldown: durationOr(a.ScaleUpCooldown, time.Minute), Stabilization: durationOr(a.ScaleDownStabilization, 10*time.Minute),
			FastFactors: autoscale.DefaultFastFactors(windowHours),
		}
		if prev.LastScaleUpTime != nil {
			in.LastScaleUp = prev.LastScaleUpTime.Time
		}
		if prev.LastBurnTime != nil {
			in.LastBurn = prev.LastBurnTime.Time
		}
		if in.MetricsError == nil {
			in.Burn, in.MetricsError = queryBurns(qctx, api, sp.Namespace, svc, availBudget, latBudget)
		}
		d := autoscale.Decide(in)

		st := scalestackv1alpha1.ServiceSLOStatus{Name: string(c), LastDecision: prev.LastDecision,
			LastScaleUpTime: prev.LastScaleUpTime, LastBurnTime: prev.LastBurnTime, ErrorBudgetRemaining: prev.ErrorBudgetRemaining}
		if len(in.Burn) > 0 {
			st.BurnRates = map[string]string{}
			for w, b := range in.Burn {
				st.BurnRates[w] = strconv.FormatFloat(b, 'f', 1, 64)
			}
		}
		if d.Burning {
			st.LastBurnTime = &metav1.Time{Time: now}
			if d.Reason == autoscale.ReasonFastBurn || d.Reason == autoscale.ReasonCoolingDown || d.Reason == autoscale.ReasonAtMaxReplicas || d.Reason == autoscale.ReasonBottleneck {
				s.slo.fast = append(s.slo.fast, string(c))
			} else {
				s.slo.slow = append(s.slo.slow, string(c))
			}
		}
		if d.To != d.From {
			scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: d.To}}
			if err := r.Client.SubResource("scale").Update(ctx, dep, client.WithSubResourceBody(scale), client.FieldOwner(AutoscalerFieldManager)); err != nil {
				return fmt.Errorf("scaling %s to %d: %w", svc, d.To, err)
			}
			if d.Action == autoscale.ScaleUp {
				st.LastScaleUpTime = &metav1.Time{Time: now}
			}
			s.note(fmt.Sprintf("Deployment/%s replicas %d -> %d", svc, d.From, d.To))
		}
		// The decision is recorded when it changes; a steady hold writes nothing.
		if changedDecision(prev.LastDecision, d) {
			st.LastDecision = &scalestackv1alpha1.ScalingDecision{Time: metav1.Time{Time: now}, Action: string(d.Action),
				From: d.From, To: d.To, Reason: d.Reason, Message: truncate(d.Message, 1024)}
			eventType := corev1.EventTypeNormal
			if d.Reason == autoscale.ReasonBottleneck || d.Reason == autoscale.ReasonMetricsUnavailable {
				eventType = corev1.EventTypeWarning
			}
			r.Recorder.Eventf(sp, nil, eventType, d.Reason, string(d.Action), "%s: %s", svc, truncate(d.Message, 900))
		}
		autoscalerDecisions.WithLabelValues(sp.Namespace, sp.Name, string(c), string(d.Action), d.Reason).Inc()
		statuses = append(statuses, st)
	}
	sp.Status.SLO.Services = statuses
	return nil
}

func changedDecision(prev *scalestackv1alpha1.ScalingDecision, d autoscale.Decision) bool {
	return prev == nil || prev.Action != string(d.Action) || prev.Reason != d.Reason || prev.To != d.To || d.To != d.From
}

// queryBurns returns the burn rate per window: the larger of the availability and latency burns.
func queryBurns(ctx context.Context, api promv1.API, ns, svc string, availBudget, latBudget float64) (autoscale.Burn, error) {
	burn := autoscale.Burn{}
	for _, q := range []struct {
		record string
		budget float64
	}{{"scalestack:sli_errors:ratio_rate", availBudget}, {"scalestack:sli_slow:ratio_rate", latBudget}} {
		if q.budget <= 0 {
			continue
		}
		for _, w := range render.SLIWindows {
			v, _, _, err := api.Query(ctx, fmt.Sprintf(`max(%s%s{namespace=%q,service=%q})`, q.record, w, ns, svc), time.Now())
			if err != nil {
				return nil, fmt.Errorf("querying Prometheus: %w", err)
			}
			vec, ok := v.(model.Vector)
			if !ok || len(vec) == 0 {
				continue
			}
			b := float64(vec[0].Value) / q.budget
			if b != b { // NaN: no requests in the window
				b = 0
			}
			if cur, ok := burn[w]; !ok || b > cur {
				burn[w] = b
			}
		}
	}
	if len(burn) == 0 {
		return nil, fmt.Errorf("no SLI series for %s in Prometheus", svc)
	}
	return burn, nil
}

// queryBottleneck names a saturated shared dependency, from the saturation alerts firing.
func queryBottleneck(ctx context.Context, api promv1.API, ns string) (string, error) {
	names := make([]string, 0, len(saturationAlerts))
	for n := range saturationAlerts {
		names = append(names, n)
	}
	v, _, _, err := api.Query(ctx, fmt.Sprintf(`ALERTS{alertstate="firing",namespace=%q,alertname=~%q}`, ns, strings.Join(names, "|")), time.Now())
	if err != nil {
		return "", fmt.Errorf("querying Prometheus: %w", err)
	}
	vec, _ := v.(model.Vector)
	var deps []string
	for _, smp := range vec {
		if d := saturationAlerts[string(smp.Metric["alertname"])]; d != "" {
			deps = append(deps, d)
		}
	}
	return strings.Join(deps, ", "), nil
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil || d.Duration <= 0 {
		return def
	}
	return d.Duration
}
