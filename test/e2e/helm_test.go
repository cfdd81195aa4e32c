//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// charts/scalestack installs on the local control plane, is upgraded once, and grants exactly the
// RBAC of config/rbac (generated from the code's markers). The operator's pods are kwok's
// simulated ones: this proves the chart's objects; test/realnode runs the chart's operator in a
// real pod and has it bring a platform to Ready.
func TestHelmChartInstallsAndUpgrades(t *testing.T) {
	out, err := exec.Command(filepath.Join(repo, "hack", "build-helm.sh")).Output()
	if err != nil {
		t.Fatalf("building helm: %v", err)
	}
	helmBin := strings.TrimSpace(string(out))
	chart := filepath.Join(repo, "charts", "scalestack")
	helm := func(args ...string) (string, error) {
		cmd := exec.Command(helmBin, append(args, "--kubeconfig", adminKubeconfig)...)
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
		b, err := cmd.CombinedOutput()
		return string(b), err
	}

	if out, err := helm("lint", "--strict", chart); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	// values.schema.json refuses what the templates could not render sensibly, naming the value.
	for _, bad := range [][]string{{"--set", "replicas=-1"}, {"--set", "logFormat=xml"}, {"--set", "image.digest=latest"}, {"--set", "nosuchvalue=1"}} {
		key := strings.SplitN(bad[1], "=", 2)[0]
		key = key[strings.LastIndex(key, ".")+1:]
		if out, err := helm(append([]string{"template", "x", chart}, bad...)...); err == nil || !strings.Contains(out, key) {
			t.Errorf("helm template %v: %v; want a schema error naming the value\n%s", bad, err, out)
		}
	}

	const release, ns = "chart-test", "scalestack-chart"
	if out, err := helm("install", release, chart, "-n", ns, "--create-namespace", "--set", "replicas=1",
		"--set", "monitoring.serviceMonitor.enabled=true", "--set", "monitoring.prometheusRule.enabled=true", "--set", "monitoring.dashboard.enabled=true",
		"--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = helm("uninstall", release, "-n", ns, "--wait") })

	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	get := func(args ...string) string {
		t.Helper()
		b, err := exec.Command(kubectl, append([]string{"--kubeconfig", adminKubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, b)
		}
		return string(b)
	}
	// The ClusterRole grants exactly config/rbac/role.yaml's rules.
	var live, want struct {
		Rules any `json:"rules"`
	}
	if err := yaml.Unmarshal([]byte(get("get", "clusterrole", release+"-manager", "-o", "yaml")), &live); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(repo, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(live.Rules, want.Rules) {
		t.Errorf("the chart's ClusterRole differs from config/rbac/role.yaml:\n%v\nwant\n%v", live.Rules, want.Rules)
	}
	if subj := get("get", "clusterrolebinding", release+"-manager", "-o", "jsonpath={.subjects[0].namespace}/{.subjects[0].name}"); subj != ns+"/scalestack-operator" {
		t.Errorf("the ClusterRoleBinding binds %s", subj)
	}
	for _, kind := range []string{"servicemonitor", "prometheusrule", "configmap"} {
		name := "scalestack-operator"
		if kind == "configmap" {
			name = "scalestack-operator-dashboard"
		}
		get("get", "-n", ns, kind, name)
	}

	if out, err := helm("upgrade", release, chart, "-n", ns, "--reuse-values", "--set", "replicas=2", "--set", "watchNamespaces={team-a,team-b}", "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
	poll(t, "the upgraded Deployment with 2 available replicas and the watched namespaces", time.Minute, func() error {
		got := get("get", "-n", ns, "deployment", "scalestack-operator", "-o", "jsonpath={.status.availableReplicas} {.spec.template.spec.containers[0].args}")
		if !strings.HasPrefix(got, "2 ") || !strings.Contains(got, "--watch-namespaces=team-a,team-b") {
			return &waitError{got}
		}
		return nil
	})
}
