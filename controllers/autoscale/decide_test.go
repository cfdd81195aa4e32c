package autoscale

import (
	"errors"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	base := Input{
		Now: now, Current: 4, Min: 2, Max: 10, Step: 1,
		ScaleUpCooldown: time.Minute, Stabilization: 10 * time.Minute,
		FastFactors: DefaultFastFactors(720),
		LastBurn:    now.Add(-time.Hour),
	}
	fast := Burn{"5m": 20, "30m": 15, "1h": 16, "2h": 10, "6h": 5, "1d": 2, "3d": 1.2}
	calm := Burn{"5m": 0.2, "30m": 0.1, "1h": 0.1, "2h": 0.1, "6h": 0.1, "1d": 0.1, "3d": 0.1}
	slow := Burn{"5m": 2, "30m": 2, "1h": 2, "2h": 2, "6h": 2, "1d": 2, "3d": 2}
	sixHour := Burn{"5m": 3, "30m": 7, "1h": 5, "2h": 6, "6h": 8, "1d": 2, "3d": 1}
	blip := Burn{"5m": 30, "30m": 3, "1h": 2, "2h": 1, "6h": 1, "1d": 1, "3d": 1}
	over := Burn{"5m": 0, "30m": 3, "1h": 8, "2h": 5, "6h": 2, "1d": 1.5, "3d": 1.1}

	cases := []struct {
		name    string
		mutate  func(*Input)
		action  Action
		to      int32
		reason  string
		burning bool
	}{
		{"fast burn on 1h and 5m doubles", func(in *Input) { in.Burn = fast }, ScaleUp, 8, ReasonFastBurn, true},
		{"fast burn on 6h and 30m doubles", func(in *Input) { in.Burn = sixHour }, ScaleUp, 8, ReasonFastBurn, true},
		{"doubling is capped at max", func(in *Input) { in.Burn, in.Current = fast, 7 }, ScaleUp, 10, ReasonFastBurn, true},
		{"at max it holds", func(in *Input) { in.Burn, in.Current = fast, 10 }, Hold, 10, ReasonAtMaxReplicas, true},
		{"a short blip alone does not scale", func(in *Input) { in.Burn = blip }, Hold, 4, ReasonSlowBurn, true},
		{"a slow burn holds", func(in *Input) { in.Burn = slow }, Hold, 4, ReasonSlowBurn, true},
		{"cooldown after a scale-up", func(in *Input) { in.Burn, in.LastScaleUp = fast, now.Add(-30*time.Second) }, Hold, 4, ReasonCoolingDown, true},
		{"cooldown over", func(in *Input) { in.Burn, in.LastScaleUp = fast, now.Add(-2*time.Minute) }, ScaleUp, 8, ReasonFastBurn, true},
		{"a saturated dependency blocks scaling", func(in *Input) { in.Burn, in.Bottleneck = fast, "database primary of shard 1" }, Hold, 4, ReasonBottleneck, true},
		{"no burn for the stabilization window: one step down", func(in *Input) { in.Burn = calm }, ScaleDown, 3, ReasonNoBurn, false},
		{"the step is configurable", func(in *Input) { in.Burn, in.Step = calm, 3 }, ScaleDown, 2, ReasonNoBurn, false},
		{"never under min", func(in *Input) { in.Burn, in.Step, in.Current = calm, 5, 3 }, ScaleDown, 2, ReasonNoBurn, false},
		{"at min it holds", func(in *Input) { in.Burn, in.Current = calm, 2 }, Hold, 2, ReasonAtMinReplicas, false},
		{"an incident that ended: long windows still high, 5m calm: not burning", func(in *Input) { in.Burn = over }, ScaleDown, 3, ReasonNoBurn, false},
		{"calm but burned recently: stabilizing", func(in *Input) { in.Burn, in.LastBurn = calm, now.Add(-3*time.Minute) }, Hold, 4, ReasonStabilizing, false},
		{"never burned: scale down", func(in *Input) { in.Burn, in.LastBurn = calm, time.Time{} }, ScaleDown, 3, ReasonNoBurn, false},
		{"Prometheus unreachable holds", func(in *Input) { in.Burn, in.MetricsError = nil, errors.New("connection refused") }, Hold, 4, ReasonMetricsUnavailable, false},
		{"missing windows are not a fast burn", func(in *Input) { in.Burn = Burn{"1h": 50} }, Hold, 4, ReasonSlowBurn, true},
		{"under min is corrected first", func(in *Input) { in.Burn, in.Current = calm, 1 }, ScaleUp, 2, ReasonBelowMin, false},
		{"over max is corrected first", func(in *Input) { in.Burn, in.Current = fast, 12 }, ScaleDown, 10, ReasonAboveMax, false},
		{"bounds hold without metrics", func(in *Input) { in.MetricsError, in.Current = errors.New("x"), 0 }, ScaleUp, 2, ReasonBelowMin, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := base
			tc.mutate(&in)
			d := Decide(in)
			if d.Action != tc.action || d.To != tc.to || d.Reason != tc.reason || d.Burning != tc.burning {
				t.Errorf("got %s %d->%d %s burning=%v, want %s to %d %s burning=%v (%s)",
					d.Action, d.From, d.To, d.Reason, d.Burning, tc.action, tc.to, tc.reason, tc.burning, d.Message)
			}
			if d.Message == "" {
				t.Error("no message")
			}
			if d.To < in.Min && in.Min <= in.Max || d.To > in.Max {
				t.Errorf("decision %d outside [%d, %d]", d.To, in.Min, in.Max)
			}
		})
	}
}

func TestDefaultFastFactors(t *testing.T) {
	f := DefaultFastFactors(720)
	if f["1h"] != 14.4 || f["6h"] != 6 || f["5m"] != 14.4 || f["30m"] != 6 {
		t.Errorf("30-day factors %v", f)
	}
}
