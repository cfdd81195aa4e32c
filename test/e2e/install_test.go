//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// make release's dist/install.yaml is what a platform team applies without a Go toolchain: it
// must apply cleanly with server-side apply (twice: a re-apply writes nothing), pin both images
// by digest, and give an operator Deployment that becomes Available (on the kwok node: the pods
// are simulated, so this proves the objects, not the process; the real-pods tier runs the image).
func TestReleaseManifestAppliesCleanly(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(repo, "hack", "release.sh"))
	cmd.Env = append(os.Environ(), "RELEASE_OUT="+out)
	path, err := cmd.Output()
	if err != nil {
		t.Fatalf("hack/release.sh: %v", err)
	}
	manifest := strings.TrimSpace(string(path))
	raw, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s+image: ghcr\.io/scalestack/operator@sha256:[0-9a-f]{64}$`).Match(raw) ||
		!regexp.MustCompile(`--apps-image=ghcr\.io/scalestack/apps:[^@\s]+@sha256:[0-9a-f]{64}`).Match(raw) {
		t.Fatalf("install.yaml does not pin the operator and apps images by digest")
	}
	for _, kind := range []string{"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ServiceAccount", "Deployment", "Service"} {
		if !strings.Contains(string(raw), "\nkind: "+kind+"\n") {
			t.Errorf("install.yaml has no %s", kind)
		}
	}

	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	apply := func() {
		t.Helper()
		out, err := exec.Command(kubectl, "--kubeconfig", adminKubeconfig, "apply", "--server-side", "-f", manifest).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl apply --server-side -f install.yaml: %v\n%s", err, out)
		}
	}
	version := func(kind, name string) string {
		t.Helper()
		out, err := exec.Command(kubectl, "--kubeconfig", adminKubeconfig, "get", kind, name, "-o", "jsonpath={.metadata.resourceVersion}").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl get %s %s: %v\n%s", kind, name, err, out)
		}
		return string(out)
	}
	apply()
	before := version("clusterrole", "scalestack-manager")
	apply()
	if after := version("clusterrole", "scalestack-manager"); after != before {
		t.Errorf("a second apply of the same install.yaml wrote the ClusterRole again (resourceVersion %s -> %s)", before, after)
	}
	poll(t, "the installed operator Deployment Available", 2*time.Minute, func() error {
		out, err := exec.Command(kubectl, "--kubeconfig", adminKubeconfig, "wait", "-n", "scalestack-system", "--for=condition=Available",
			"--timeout=5s", "deployment/scalestack-operator").CombinedOutput()
		if err != nil {
			return &waitError{string(out)}
		}
		return nil
	})
	// The installed Deployment is left to the throwaway cluster: deleting install.yaml would delete
	// the CRD, and with it every other test's platforms.
}

type waitError struct{ out string }

func (e *waitError) Error() string { return strings.TrimSpace(e.out) }
