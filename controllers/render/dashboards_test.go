package render

import (
	"strings"
	"testing"

	"github.com/scalestack/scalestack/internal/testutil"
)

func TestDashboardUIDFitsGrafana(t *testing.T) {
	if got := DashboardUID("shop", "demo"); got != "scalestack-shop-demo" {
		t.Errorf("short names: %q", got)
	}
	long := strings.Repeat("n", 63)
	a, b := DashboardUID(long, strings.Repeat("a", 30)), DashboardUID(long, strings.Repeat("b", 30))
	if len(a) > 40 || len(b) > 40 || a == b || !strings.HasPrefix(a, "scalestack-") {
		t.Errorf("long names: %q and %q (Grafana allows 40 characters, and they must differ)", a, b)
	}
}

func TestDashboardIsValidGrafanaJSON(t *testing.T) {
	sp := sample(t)
	raw, err := Dashboard(sp)
	if err != nil {
		t.Fatal(err)
	}
	titles := strings.Join(testutil.CheckGrafanaDashboard(t, []byte(raw)), "\n")
	for _, w := range []string{"Latency p50", "Latency p95", "Latency p99", "Requests per second", "Error ratio", "Cache hit ratio", "Replication lag", "Kafka consumer lag", "Backup age"} {
		if !strings.Contains(titles, w) {
			t.Errorf("no panel for %q", w)
		}
	}
	golden(t, "dashboard.golden.json", []byte(raw+"\n"))
}
