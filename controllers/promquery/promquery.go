// Package promquery reads what the SLO autoscaler decides from, over Prometheus' HTTP API: the
// burn rates of the SLI recording rules, the error budget left over the SLO window, and the
// bottleneck alerts that name a saturated shared dependency. The series and alerts it reads are
// the ones controllers/render generates, so their names come from there.
package promquery

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/scalestack/scalestack/controllers/autoscale"
	"github.com/scalestack/scalestack/controllers/render"
)

// Clients keeps one Prometheus API client per URL.
type Clients struct {
	mu      sync.Mutex
	clients map[string]promv1.API
}

// Get returns the client of the Prometheus at url.
func (p *Clients) Get(url string) (promv1.API, error) {
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

// Budgets are a service's error budgets as fractions of requests (0.001 for 99.9%); a zero budget
// is not queried.
type Budgets struct {
	Availability, Latency float64
}

// scalar runs an instant query and returns its first sample; ok is false when there is none or it
// is NaN (no requests in the window).
func scalar(ctx context.Context, api promv1.API, q string) (v float64, ok bool, err error) {
	res, _, _, err := api.Query(ctx, q, time.Now())
	if err != nil {
		return 0, false, fmt.Errorf("querying Prometheus: %w", err)
	}
	vec, _ := res.(model.Vector)
	if len(vec) == 0 || math.IsNaN(float64(vec[0].Value)) {
		return 0, false, nil
	}
	return float64(vec[0].Value), true, nil
}

// Burns returns the burn rate per SLI window: the larger of the availability and latency burns.
// A window without requests burns nothing.
func Burns(ctx context.Context, api promv1.API, ns, svc string, b Budgets) (autoscale.Burn, error) {
	burn := autoscale.Burn{}
	seen := false
	for _, q := range []struct {
		record string
		budget float64
	}{{"scalestack:sli_errors:ratio_rate", b.Availability}, {"scalestack:sli_slow:ratio_rate", b.Latency}} {
		if q.budget <= 0 {
			continue
		}
		for _, w := range render.SLIWindows {
			res, _, _, err := api.Query(ctx, fmt.Sprintf(`max(%s%s{namespace=%q,service=%q})`, q.record, w, ns, svc), time.Now())
			if err != nil {
				return nil, fmt.Errorf("querying Prometheus: %w", err)
			}
			vec, _ := res.(model.Vector)
			if len(vec) == 0 {
				continue
			}
			seen = true
			v := float64(vec[0].Value) / q.budget
			if math.IsNaN(v) {
				v = 0
			}
			if cur, ok := burn[w]; !ok || v > cur {
				burn[w] = v
			}
		}
	}
	if !seen {
		return nil, fmt.Errorf("no SLI series for %s in Prometheus", svc)
	}
	return burn, nil
}

// BudgetRemaining returns the share of the error budget left over the SLO window, in percent
// (negative once the budget is spent): the smaller of the availability and latency budgets left.
// ok is false while Prometheus has no requests of the service in the window.
func BudgetRemaining(ctx context.Context, api promv1.API, ns, svc string, b Budgets) (percent float64, ok bool, err error) {
	percent = math.Inf(1)
	for _, q := range []struct {
		record string
		budget float64
	}{{render.RecordErrorsWindow, b.Availability}, {render.RecordSlowWindow, b.Latency}} {
		if q.budget <= 0 {
			continue
		}
		ratio, found, err := scalar(ctx, api, fmt.Sprintf(`max(%s{namespace=%q,service=%q})`, q.record, ns, svc))
		if err != nil {
			return 0, false, err
		}
		if found {
			ok = true
			percent = min(percent, 100*(1-ratio/q.budget))
		}
	}
	if !ok {
		return 0, false, nil
	}
	return percent, true, nil
}

// Bottleneck names the saturated shared dependencies, from the bottleneck alerts firing in the
// namespace (render's alerts labelled render.BottleneckLabel), e.g. "database
// (ScalestackDatabaseSaturated)"; "" when none fires.
func Bottleneck(ctx context.Context, api promv1.API, ns string) (string, error) {
	res, _, _, err := api.Query(ctx, fmt.Sprintf(`ALERTS{alertstate="firing",namespace=%q,%s!=""}`, ns, render.BottleneckLabel), time.Now())
	if err != nil {
		return "", fmt.Errorf("querying Prometheus: %w", err)
	}
	vec, _ := res.(model.Vector)
	seen := map[string]bool{}
	var deps []string
	for _, s := range vec {
		d := fmt.Sprintf("%s (%s)", s.Metric[model.LabelName(render.BottleneckLabel)], s.Metric[model.AlertNameLabel])
		if !seen[d] {
			seen[d] = true
			deps = append(deps, d)
		}
	}
	sort.Strings(deps)
	return strings.Join(deps, ", "), nil
}
