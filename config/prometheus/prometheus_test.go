// Package prometheus holds the operator's own monitoring (config/prometheus): the tests check the
// alerts and the dashboard's queries with promtool, as the platforms' rules are checked.
package prometheus

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

type rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type group struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

func groups(t *testing.T) []group {
	t.Helper()
	raw, err := os.ReadFile("rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		APIVersion string         `json:"apiVersion"`
		Kind       string         `json:"kind"`
		Metadata   map[string]any `json:"metadata"`
		Spec       struct {
			Groups []group `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(raw, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Kind != "PrometheusRule" || len(pr.Spec.Groups) == 0 {
		t.Fatalf("rules.yaml is a %s with %d groups", pr.Kind, len(pr.Spec.Groups))
	}
	return pr.Spec.Groups
}

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (hack/test-deps.sh does)")
	}
	return p
}

// writeRules writes groups as a Prometheus rule file in dir.
func writeRules(t *testing.T, dir, name string, gs []group) string {
	t.Helper()
	out, err := yaml.Marshal(map[string]any{"groups": gs})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOperatorAlertsPassPromtool(t *testing.T) {
	dir := t.TempDir()
	path := writeRules(t, dir, "operator-rules.yaml", groups(t))
	if out, err := exec.Command(promtool(t), "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	tests, err := os.ReadFile("rules_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool(t), "test", "rules", filepath.Join(dir, "rules_test.yaml")).CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	// Every alert is exercised by a unit test.
	for _, g := range groups(t) {
		for _, r := range g.Rules {
			if r.Alert != "" && !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
				t.Errorf("rules_test.yaml does not test %s", r.Alert)
			}
		}
	}
}

func TestEveryOperatorAlertHasARunbook(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (\w+)$`).FindAllStringSubmatch(string(raw), -1) {
		headings[strings.ToLower(m[1])] = true
	}
	for _, g := range groups(t) {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if !headings[strings.ToLower(r.Alert)] {
				t.Errorf("docs/runbooks.md has no section for %s", r.Alert)
			}
			want := "https://github.com/scalestack/scalestack/blob/main/docs/runbooks.md#" + strings.ToLower(r.Alert)
			if r.Annotations["runbook_url"] != want || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: runbook_url %q (want %q), severity %q, summary %q", r.Alert, r.Annotations["runbook_url"], want, r.Labels["severity"], r.Annotations["summary"])
			}
		}
	}
}

func TestOperatorDashboard(t *testing.T) {
	raw, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard.json is not JSON: %v", err)
	}
	if d.UID == "" || len(d.UID) > 40 || d.Title == "" {
		t.Errorf("uid %q (Grafana allows 40 characters), title %q", d.UID, d.Title)
	}
	// Every panel's queries parse: promtool checks them as recording rules.
	var rules []rule
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] || len(p.Targets) == 0 {
			t.Errorf("panel %q: id %d repeated, or no query", p.Title, p.ID)
		}
		ids[p.ID] = true
		for _, q := range p.Targets {
			rules = append(rules, rule{Record: "dashboard:query", Expr: q.Expr})
		}
	}
	path := writeRules(t, t.TempDir(), "dashboard-queries.yaml", []group{{Name: "dashboard", Rules: rules}})
	if out, err := exec.Command(promtool(t), "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules over the dashboard's queries: %v\n%s", err, out)
	}
}
