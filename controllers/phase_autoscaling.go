package controllers

import (
	"context"
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/autoscale"
	"github.com/scalestack/scalestack/controllers/promquery"
	"github.com/scalestack/scalestack/controllers/render"
)

// AutoscalerFieldManager writes the app Deployments' replicas through the scale subresource. The
// reconciler leaves replicas out of what it applies while autoscaling is on, so neither fights the
// other, nor Argo CD.
const AutoscalerFieldManager = "scalestack-autoscaler"

// sloObservation is what SLOHealthy is computed from.
type sloObservation struct {
	enabled    bool
	metricsErr error
	fast, slow []string
	bottleneck string
	// desired is each scaled service's replicas as the autoscaler last decided them.
	desired map[scalestackv1alpha1.Component]int32
}

// reconcileAutoscaling reads each HTTP service's burn rates from Prometheus, decides with
// autoscale.Decide, writes replicas through the scale subresource, and records the decision in
// status, an Event and a metric.
func (r *SocialPlatformReconciler) reconcileAutoscaling(ctx context.Context, s *scope) error {
	sp := s.sp
	a := sp.Spec.SLO.Autoscaling
	s.slo = sloObservation{enabled: a.Enabled, desired: map[scalestackv1alpha1.Component]int32{}}
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
	budgets := promquery.Budgets{Availability: availBudget, Latency: latBudget}
	api, err := r.prom.Get(a.PrometheusURL)
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var bottleneck string
	if err == nil {
		bottleneck, err = promquery.Bottleneck(qctx, api, sp.Namespace)
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
			in.Burn, in.MetricsError = promquery.Burns(qctx, api, sp.Namespace, svc, budgets)
		}
		d := autoscale.Decide(in)
		s.slo.desired[c] = d.To

		st := scalestackv1alpha1.ServiceSLOStatus{Name: string(c), LastDecision: prev.LastDecision,
			LastScaleUpTime: prev.LastScaleUpTime, LastBurnTime: prev.LastBurnTime, ErrorBudgetRemaining: prev.ErrorBudgetRemaining}
		if in.MetricsError == nil {
			if left, ok, err := promquery.BudgetRemaining(qctx, api, sp.Namespace, svc, budgets); err == nil && ok {
				st.ErrorBudgetRemaining = strconv.FormatFloat(left, 'f', 1, 64)
			}
		}
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
