package render

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
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
	var d struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			ID      int            `json:"id"`
			Title   string         `json:"title"`
			GridPos map[string]int `json:"gridPos"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if d.UID == "" || len(d.UID) > 40 || d.Title == "" {
		t.Errorf("uid %q (Grafana allows 40 characters), title %q", d.UID, d.Title)
	}
	var exprs []Rule
	want := []string{"Latency p50", "Latency p95", "Latency p99", "Requests per second", "Error ratio", "Cache hit ratio", "Replication lag", "Kafka consumer lag", "Backup age"}
	titles := ""
	ids := map[int]bool{}
	for _, p := range d.Panels {
		titles += p.Title + "\n"
		if ids[p.ID] {
			t.Errorf("panel id %d repeated", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos["w"] == 0 || p.GridPos["h"] == 0 {
			t.Errorf("panel %q has no size", p.Title)
		}
		for i, tg := range p.Targets {
			exprs = append(exprs, Rule{Record: fmt.Sprintf("dashboard:panel%d_%d", p.ID, i), Expr: tg.Expr})
		}
	}
	for _, w := range want {
		if !strings.Contains(titles, w) {
			t.Errorf("no panel for %q", w)
		}
	}
	// Every panel query is valid PromQL: promtool parses them as recording rules.
	file, err := yaml.Marshal(map[string]any{"groups": []RuleGroup{{Name: "dashboard", Rules: exprs}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool(t), "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("dashboard queries: %v\n%s", err, out)
	}
	golden(t, "dashboard.golden.json", []byte(raw+"\n"))
}
