// Package autoscale decides, for one app service, whether to scale on SLO error-budget burn. It
// is a pure function of what was observed: no client, no clock, no Prometheus; the autoscaler
// controller gathers the inputs and applies the decision.
package autoscale

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Action is what the autoscaler does.
type Action string

// The actions, as they appear in status.slo.services[].lastDecision.action.
const (
	ScaleUp   Action = "ScaleUp"
	ScaleDown Action = "ScaleDown"
	Hold      Action = "Hold"
)

// Reasons, CamelCase, as they appear in status and Events.
const (
	ReasonFastBurn           = "FastBurn"
	ReasonNoBurn             = "NoBurn"
	ReasonWithinBudget       = "WithinBudget"
	ReasonSlowBurn           = "SlowBurn"
	ReasonStabilizing        = "Stabilizing"
	ReasonCoolingDown        = "CoolingDown"
	ReasonAtMaxReplicas      = "AtMaxReplicas"
	ReasonAtMinReplicas      = "AtMinReplicas"
	ReasonBelowMin           = "BelowMinReplicas"
	ReasonAboveMax           = "AboveMaxReplicas"
	ReasonMetricsUnavailable = "MetricsUnavailable"
	ReasonBottleneck         = "BottleneckDetected"
)

// Burn is the burn rate (the error ratio divided by the error budget) of one service per window:
// 1 spends the budget exactly over the SLO window; 14.4 spends 2% of a 30-day budget in an hour.
// A window missing from the map has no data.
type Burn map[string]float64

// Input is everything one decision depends on.
type Input struct {
	Now                     time.Time
	Current, Min, Max, Step int32
	Burn                    Burn
	// MetricsError is set when Prometheus could not be asked or returned nothing for the service.
	MetricsError error
	// Bottleneck names a saturated shared dependency (e.g. "database primary of shard 1",
	// "cache") when the burn comes from it rather than from the service.
	Bottleneck string
	// LastScaleUp is when this service was last scaled up; LastBurn is when it last burned budget
	// (any window above 1). Zero: never.
	LastScaleUp, LastBurn          time.Time
	ScaleUpCooldown, Stabilization time.Duration
	// FastFactors are the page thresholds for the long windows (1h and 6h) and their short
	// companions (5m and 30m): 14.4 and 6 for a 30-day window.
	FastFactors map[string]float64
}

// Decision is the outcome, with the replica count to write.
type Decision struct {
	Action  Action
	From    int32
	To      int32
	Reason  string
	Message string
	// Burning says the service burned budget in this observation; the caller records LastBurn.
	Burning bool
}

// DefaultFastFactors are the SRE workbook's page factors for a 30-day window.
func DefaultFastFactors(windowHours float64) map[string]float64 {
	f1 := 0.02 * windowHours / 1
	f6 := 0.05 * windowHours / 6
	return map[string]float64{"1h": f1, "5m": f1, "6h": f6, "30m": f6}
}

// pairs are the (long, short) window pairs whose both burns above the factor make a fast burn.
var pairs = [][2]string{{"1h", "5m"}, {"6h", "30m"}}

// currentWindow is the window whose burn says whether the service burns budget now.
const currentWindow = "5m"

// Decide returns what to do with one service.
func Decide(in Input) Decision {
	d := Decision{Action: Hold, From: in.Current, To: in.Current}
	step := max(in.Step, 1)

	// Bounds first: the manifest's min and max are never violated, whatever the metrics say.
	switch {
	case in.Current < in.Min:
		d.Action, d.To, d.Reason = ScaleUp, in.Min, ReasonBelowMin
		d.Message = fmt.Sprintf("%d replicas is under minReplicas %d", in.Current, in.Min)
		return d
	case in.Current > in.Max:
		d.Action, d.To, d.Reason = ScaleDown, in.Max, ReasonAboveMax
		d.Message = fmt.Sprintf("%d replicas is over maxReplicas %d", in.Current, in.Max)
		return d
	}

	if in.MetricsError != nil {
		d.Reason = ReasonMetricsUnavailable
		d.Message = "Holding at " + strconv.Itoa(int(in.Current)) + " replicas: no burn rates (" + in.MetricsError.Error() + ")"
		return d
	}

	fast, fastDesc := false, ""
	for _, p := range pairs {
		long, lok := in.Burn[p[0]]
		short, sok := in.Burn[p[1]]
		limit := in.FastFactors[p[0]]
		if lok && sok && limit > 0 && long > limit && short > in.FastFactors[p[1]] {
			fast = true
			fastDesc = fmt.Sprintf("burn %s over %s and %s over %s, above %s", num(long), p[0], num(short), p[1], num(limit))
			break
		}
	}
	// Burning now is the shortest window's burn: the long windows remember an incident for
	// hours after it ended (they confirm a page, they do not say it is still on). Without the
	// short window, any window above 1 counts.
	if b, ok := in.Burn[currentWindow]; ok {
		d.Burning = b > 1
	} else {
		for _, b := range in.Burn {
			if b > 1 {
				d.Burning = true
			}
		}
	}

	if fast {
		switch {
		case in.Bottleneck != "":
			d.Reason = ReasonBottleneck
			d.Message = fmt.Sprintf("Not scaling: %s, but the %s is saturated; more replicas would only move the queue", fastDesc, in.Bottleneck)
		case in.Current >= in.Max:
			d.Reason = ReasonAtMaxReplicas
			d.Message = fmt.Sprintf("Fast burn (%s) at maxReplicas %d", fastDesc, in.Max)
		case !in.LastScaleUp.IsZero() && in.Now.Sub(in.LastScaleUp) < in.ScaleUpCooldown:
			d.Reason = ReasonCoolingDown
			d.Message = fmt.Sprintf("Fast burn (%s); the last scale-up was %s ago, cooldown %s", fastDesc,
				in.Now.Sub(in.LastScaleUp).Round(time.Second), in.ScaleUpCooldown)
		default:
			// At once and by a lot: double, at least one step, bounded by maxReplicas.
			to := min(in.Max, max(in.Current*2, in.Current+step))
			d.Action, d.To, d.Reason = ScaleUp, to, ReasonFastBurn
			d.Message = fmt.Sprintf("Fast burn (%s): %d -> %d replicas", fastDesc, in.Current, to)
		}
		return d
	}

	if d.Burning {
		d.Reason = ReasonSlowBurn
		d.Message = "Burning budget, but not fast enough to page: holding (a ticket alert covers it)"
		return d
	}
	since := in.Now.Sub(in.LastBurn)
	switch {
	case in.Current <= in.Min:
		d.Reason = ReasonAtMinReplicas
		d.Message = fmt.Sprintf("Within budget at minReplicas %d", in.Min)
	case !in.LastBurn.IsZero() && since < in.Stabilization:
		d.Reason = ReasonStabilizing
		d.Message = fmt.Sprintf("No burn for %s; scaling down after %s", since.Round(time.Second), in.Stabilization)
	default:
		to := max(in.Min, in.Current-step)
		d.Action, d.To, d.Reason = ScaleDown, to, ReasonNoBurn
		d.Message = fmt.Sprintf("No budget burned for at least %s: %d -> %d replicas", in.Stabilization, in.Current, to)
	}
	return d
}

func num(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'f', 1, 64)
}
