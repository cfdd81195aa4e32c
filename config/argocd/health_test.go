package argocd

import (
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

const dir = "resource_customizations/scalestack.dev/SocialPlatform"

type healthTests struct {
	Tests []struct {
		HealthStatus struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"healthStatus"`
		InputPath string `json:"inputPath"`
	} `json:"tests"`
}

func TestHealth(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tests healthTests
	if err := yaml.UnmarshalStrict(raw, &tests); err != nil {
		t.Fatal(err)
	}
	if len(tests.Tests) < 7 {
		t.Fatalf("%d cases; every status of the contract needs one", len(tests.Tests))
	}
	seen := map[string]bool{}
	for _, tc := range tests.Tests {
		t.Run(tc.InputPath, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join(dir, tc.InputPath))
			if err != nil {
				t.Fatal(err)
			}
			obj := map[string]any{}
			if err := yaml.Unmarshal(in, &obj); err != nil {
				t.Fatal(err)
			}
			status, message, err := Health(obj)
			if err != nil {
				t.Fatal(err)
			}
			seen[status] = true
			if status != tc.HealthStatus.Status || message != tc.HealthStatus.Message {
				t.Errorf("got %s %q, want %s %q", status, message, tc.HealthStatus.Status, tc.HealthStatus.Message)
			}
		})
	}
	for _, s := range []string{"Healthy", "Progressing", "Degraded", "Suspended"} {
		if !seen[s] {
			t.Errorf("no fixture yields %s", s)
		}
	}
}
