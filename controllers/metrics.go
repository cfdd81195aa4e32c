package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// autoscalerDecisions counts every autoscaler decision, exported on the operator's metrics
// endpoint.
var autoscalerDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "scalestack_autoscaler_decisions_total",
	Help: "SLO-burn autoscaler decisions by platform, service, action and reason.",
}, []string{"namespace", "platform", "service", "action", "reason"})

func init() {
	metrics.Registry.MustRegister(autoscalerDecisions)
}
