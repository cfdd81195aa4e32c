package render

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/scalestack/scalestack/internal/testutil"
)

func rulesFile(t *testing.T) []byte {
	t.Helper()
	out, err := yaml.Marshal(map[string]any{"groups": SLORuleGroups(sample(t))})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRulesGolden(t *testing.T) {
	golden(t, "rules.golden.yaml", rulesFile(t))
}

func TestBurnFactorsFor30Days(t *testing.T) {
	groups := SLORuleGroups(sample(t))
	want := map[string]string{"1h": "0.0144", "6h": "0.006", "1d": "0.003", "3d": "0.001"}
	found := 0
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Alert == "ScalestackErrorBudgetBurn" && r.Labels["slo"] == "availability" && r.Labels["service"] == "demo-gateway" {
				if !strings.Contains(r.Expr, "> "+want[r.Labels["long_window"]]+"\n") {
					t.Errorf("%s window: %s", r.Labels["long_window"], r.Expr)
				}
				found++
			}
		}
	}
	if found != 4 {
		t.Errorf("%d availability burn alerts for the gateway, want 4", found)
	}
}

func TestRulesPassPromtool(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, rulesFile(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(testutil.Promtool(t), "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	// The unit tests of testdata/rules_test.yaml run against the golden file.
	if out, err := exec.Command(testutil.Promtool(t), "test", "rules", filepath.Join("testdata", "rules_test.yaml")).CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// Every alert has a runbook section in docs/runbooks.md, and its runbook_url points at it.
func TestEveryAlertHasARunbook(t *testing.T) {
	headings := testutil.RunbookSections(t, filepath.Join("..", "..", "docs", "runbooks.md"))
	groups := SLORuleGroups(sample(t))
	for _, name := range AlertNames(groups) {
		if !headings[strings.ToLower(name)] {
			t.Errorf("docs/runbooks.md has no section for %s", name)
		}
	}
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if want := RunbookBase + "#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
				t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
			}
		}
	}
}
