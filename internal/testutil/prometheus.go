package testutil

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// Promtool is Debian's promtool, installed by hack/test-deps.sh.
func Promtool(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (hack/test-deps.sh does)")
	}
	return p
}

// RunbookSections lists the lower-cased "## Name" headings of a runbook file: the anchors alerts'
// runbook_url point at.
func RunbookSections(t testing.TB, path string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (\w+)$`).FindAllStringSubmatch(string(raw), -1) {
		headings[strings.ToLower(m[1])] = true
	}
	return headings
}

// CheckGrafanaDashboard checks a dashboard's JSON as Grafana would take it (a uid of at most 40
// characters, a title, panels with unique ids, a size and at least one query each) and every
// query's PromQL with promtool. It returns the panels' titles.
func CheckGrafanaDashboard(t testing.TB, raw []byte) []string {
	t.Helper()
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
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	if d.UID == "" || len(d.UID) > 40 || d.Title == "" {
		t.Errorf("uid %q (Grafana allows 40 characters), title %q", d.UID, d.Title)
	}
	var titles []string
	var rules []map[string]string
	ids := map[int]bool{}
	for _, p := range d.Panels {
		titles = append(titles, p.Title)
		if ids[p.ID] {
			t.Errorf("panel id %d repeated", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos["w"] == 0 || p.GridPos["h"] == 0 || len(p.Targets) == 0 {
			t.Errorf("panel %q has no size or no query", p.Title)
		}
		for i, tg := range p.Targets {
			rules = append(rules, map[string]string{"record": fmt.Sprintf("dashboard:panel%d_%d", p.ID, i), "expr": tg.Expr})
		}
	}
	// Every query is valid PromQL: promtool parses them as recording rules.
	file, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(Promtool(t), "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("dashboard queries: %v\n%s", err, out)
	}
	return titles
}
