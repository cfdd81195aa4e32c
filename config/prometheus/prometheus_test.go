// Package prometheus holds the operator's own monitoring (config/prometheus): the tests check the
// alerts and the dashboard's queries with promtool, as the platforms' rules are checked.
package prometheus

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/internal/testutil"
)

func groups(t *testing.T) []render.RuleGroup {
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
			Groups []render.RuleGroup `json:"groups"`
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

// writeRules writes groups as a Prometheus rule file in dir.
func writeRules(t *testing.T, dir, name string, gs []render.RuleGroup) string {
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
	if out, err := exec.Command(testutil.Promtool(t), "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	tests, err := os.ReadFile("rules_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(testutil.Promtool(t), "test", "rules", filepath.Join(dir, "rules_test.yaml")).CombinedOutput(); err != nil {
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
	headings := testutil.RunbookSections(t, filepath.Join("..", "..", "docs", "runbooks.md"))
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
	testutil.CheckGrafanaDashboard(t, raw)
}
