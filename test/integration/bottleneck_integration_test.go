package integration

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"sigs.k8s.io/yaml"

	"github.com/scalestack/scalestack/controllers/promquery"
	"github.com/scalestack/scalestack/controllers/render"
)

// dependencyExporter serves what a platform's exporters and apps would: a shard's connections,
// the cache's memory, evictions and hit counters, and the gateway's request counters (growing by
// 2000 requests, 1 of them an error, per scrape).
type dependencyExporter struct {
	mu                 sync.Mutex
	ns, platform       string
	connected          int
	requests, failures int
}

func (e *dependencyExporter) setConnected(n int) { e.mu.Lock(); e.connected = n; e.mu.Unlock() }

func (e *dependencyExporter) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests += 1999
	e.failures++
	shard := fmt.Sprintf(`namespace=%q,service="%s-shard-0-primary",pod="%s-shard-0-primary-0"`, e.ns, e.platform, e.platform)
	cache := fmt.Sprintf(`namespace=%q,service="%s-cache",pod="%s-cache-0"`, e.ns, e.platform, e.platform)
	gw := fmt.Sprintf(`namespace=%q,service="%s-gateway"`, e.ns, e.platform)
	var b strings.Builder
	fmt.Fprintf(&b, "mysql_global_status_threads_connected{%s} %d\n", shard, e.connected)
	fmt.Fprintf(&b, "mysql_global_variables_max_connections{%s} 500\n", shard)
	// A warm allkeys-lru cache: full, evicting a little, and still hitting 95% of reads.
	fmt.Fprintf(&b, "redis_memory_used_bytes{%s} 268435456\nredis_memory_max_bytes{%s} 268435456\n", cache, cache)
	fmt.Fprintf(&b, "redis_evicted_keys_total{%s} %d\n", cache, e.requests/100)
	fmt.Fprintf(&b, "scalestack_cache_hits_total{namespace=%q,service=\"%s-user\",cache=\"profiles\"} %d\n", e.ns, e.platform, e.requests*95/100)
	fmt.Fprintf(&b, "scalestack_cache_misses_total{namespace=%q,service=\"%s-user\",cache=\"profiles\"} %d\n", e.ns, e.platform, e.requests*5/100)
	fmt.Fprintf(&b, "scalestack_http_requests_total{%s,code=\"200\"} %d\n", gw, e.requests)
	fmt.Fprintf(&b, "scalestack_http_requests_total{%s,code=\"500\"} %d\n", gw, e.failures)
	fmt.Fprintf(&b, "scalestack_http_request_duration_seconds_bucket{%s,le=\"0.3\"} %d\n", gw, e.requests+e.failures)
	fmt.Fprintf(&b, "scalestack_http_request_duration_seconds_count{%s} %d\n", gw, e.requests+e.failures)
	_, _ = w.Write([]byte(b.String()))
}

// The autoscaler's inputs read from a real Prometheus evaluating the generated rules: a shard out
// of connections is named as the bottleneck through a real ALERTS series, a full LRU cache that
// still hits is not, and the error budget left over the SLO window comes from the window rules.
// (The rules' timing, "for" durations included, is proven by promtool's unit tests; here the
// groups are evaluated every second and the bottleneck alerts hold for 2s, so that the test
// takes seconds.)
func TestBottleneckAndBudgetFromARealPrometheus(t *testing.T) {
	ctx := context.Background()
	sp := loadSample(t, "bottleneck-test")
	exp := &dependencyExporter{ns: sp.Namespace, platform: sp.Name, connected: 475}
	srv := httptest.NewServer(exp)
	defer srv.Close()

	groups := render.SLORuleGroups(sp)
	for i := range groups {
		groups[i].Interval = ""
		for j := range groups[i].Rules {
			if groups[i].Rules[j].Labels[render.BottleneckLabel] != "" {
				groups[i].Rules[j].For = "2s"
			}
		}
	}
	raw, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	url, _ := startPrometheus(t, strings.TrimPrefix(srv.URL, "http://"), rules)
	client, err := promapi.NewClient(promapi.Config{Address: url})
	if err != nil {
		t.Fatal(err)
	}
	api := promv1.NewAPI(client)

	eventually(t, "the shard named as the bottleneck, and not the full cache", func() error {
		got, err := promquery.Bottleneck(ctx, api, sp.Namespace)
		if err != nil {
			return err
		}
		if got != "database (ScalestackDatabaseSaturated)" {
			return fmt.Errorf("bottleneck %q", got)
		}
		return nil
	})
	// 1 error in 2000 requests against a 0.1% budget: half of the budget is left.
	budgets := promquery.Budgets{Availability: 0.001, Latency: 0.01}
	eventually(t, "half of the error budget left", func() error {
		left, ok, err := promquery.BudgetRemaining(ctx, api, sp.Namespace, sp.Name+"-gateway", budgets)
		if err != nil {
			return err
		}
		if !ok || math.Abs(left-50) > 1 {
			return fmt.Errorf("budget left %.2f%% (ok %v)", left, ok)
		}
		return nil
	})
	if _, ok, err := promquery.BudgetRemaining(ctx, api, sp.Namespace, sp.Name+"-feed", budgets); err != nil || ok {
		t.Errorf("a service without requests has a budget figure (ok %v, err %v)", ok, err)
	}

	exp.setConnected(250)
	eventually(t, "no bottleneck once the shard has connections to spare", func() error {
		got, err := promquery.Bottleneck(ctx, api, sp.Namespace)
		if err != nil {
			return err
		}
		if got != "" {
			return fmt.Errorf("bottleneck %q", got)
		}
		return nil
	})
}
