package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
)

// monitoringObservation is what MonitoringReady is computed from.
type monitoringObservation struct {
	missing         bool
	rules, monitors int
}

// monitoringInstalled reports whether the cluster serves prometheus-operator's PrometheusRule and
// ServiceMonitor. The REST mapper re-discovers on a miss, so an operator installed later is found.
func (r *SocialPlatformReconciler) monitoringInstalled() (bool, error) {
	for _, kind := range []string{"PrometheusRule", "ServiceMonitor"} {
		_, err := r.Client.RESTMapper().RESTMapping(schema.GroupKind{Group: render.MonitoringGroup, Kind: kind}, "v1")
		if meta.IsNoMatchError(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("discovering prometheus-operator: %w", err)
		}
	}
	return true, nil
}

// reconcileMonitoring applies the PrometheusRule (SLO recording rules, burn-rate and saturation
// alerts) and the ServiceMonitors. Without prometheus-operator it says so in MonitoringReady and
// the rest of the platform is unaffected.
func (r *SocialPlatformReconciler) reconcileMonitoring(ctx context.Context, s *scope) error {
	sp := s.sp
	s.monitoring = monitoringObservation{}
	// Dashboards are ConfigMaps for Grafana's sidecar: they need no prometheus-operator.
	if render.DashboardsEnabled(sp) {
		dash, err := render.Dashboard(sp)
		if err != nil {
			return err
		}
		if err := applyRecord(ctx, r.Client, s, "ConfigMap", render.DashboardConfigMap(sp, dash), &corev1.ConfigMap{}, corev1ac.ExtractConfigMap); err != nil {
			return err
		}
	} else if err := r.deleteOwned(ctx, s, &corev1.ConfigMap{}, sp.Name+"-dashboard"); err != nil {
		return err
	}
	installed, err := r.monitoringInstalled()
	if err != nil {
		return err
	}
	if !installed {
		s.monitoring.missing = true
		s.requeueAfter(requeueMissingKinds)
		return nil
	}
	rule := render.PrometheusRule(sp)
	objs := []runtime.Object{rule}
	for _, sm := range render.ServiceMonitors(sp) {
		objs = append(objs, sm)
	}
	for _, o := range objs {
		u, err := toUnstructured(o)
		if err != nil {
			return err
		}
		if _, err := r.applyUnstructured(ctx, s, u); err != nil {
			return err
		}
	}
	s.monitoring.monitors = len(objs) - 1
	for _, g := range rule.Spec.Groups {
		s.monitoring.rules += len(g.Rules)
	}
	return nil
}

// toUnstructured converts a typed object and drops what the conversion adds but nobody sets (null
// creationTimestamp, empty status), which the no-op check would otherwise see as a difference.
func toUnstructured(o runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, fmt.Errorf("converting %T: %w", o, err)
	}
	delete(m, "status")
	return &unstructured.Unstructured{Object: prune(m).(map[string]any)}, nil
}

func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			p := prune(val)
			if p == nil {
				delete(x, k)
				continue
			}
			if mm, ok := p.(map[string]any); ok && len(mm) == 0 {
				delete(x, k)
				continue
			}
			x[k] = p
		}
		return x
	case []any:
		for i := range x {
			x[i] = prune(x[i])
		}
		return x
	default:
		return v
	}
}

// monitoringCondition computes MonitoringReady.
func monitoringCondition(o monitoringObservation) metav1.Condition {
	c := metav1.Condition{Type: scalestackv1alpha1.ConditionMonitoringReady, Status: metav1.ConditionTrue, Reason: scalestackv1alpha1.ReasonAvailable,
		Message: fmt.Sprintf("PrometheusRule with %d rules and %d ServiceMonitors applied", o.rules, o.monitors)}
	if o.missing {
		c.Status = metav1.ConditionFalse
		c.Reason = scalestackv1alpha1.ReasonPrometheusOperatorNotInstalled
		c.Message = "The cluster does not serve monitoring.coreos.com (prometheus-operator): no rules, alerts or scrape configs; the platform itself is unaffected"
	}
	return c
}
