// Package scripts tests the project's own scripts where their behaviour protects a user: make run
// (hack/run.sh) must never touch a cluster the user did not name.
package scripts

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/scalestack/scalestack/test/testenv"
)

// fakeCluster is an API server that answers /readyz and records every request it gets.
type fakeCluster struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newFakeCluster(t *testing.T) *fakeCluster {
	f := &fakeCluster{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		if r.URL.Path == "/readyz" {
			_, _ = w.Write([]byte("ok"))
			return
		}
		http.Error(w, "not here", http.StatusNotFound)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeCluster) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

// kubeconfig writes a kubeconfig whose only context, "elsewhere", points at url.
func kubeconfig(t *testing.T, path, url string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := `apiVersion: v1
kind: Config
clusters: [{name: elsewhere, cluster: {server: "` + url + `"}}]
users: [{name: someone, user: {token: not-a-real-token}}]
contexts: [{name: elsewhere, context: {cluster: elsewhere, user: someone}}]
current-context: elsewhere
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// run runs hack/run.sh in plan mode (RUN_PLAN=1: it says which cluster it would use and what it
// would install, then stops) with HOME and the given extra environment.
func run(t *testing.T, home string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "hack", "run.sh"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "RUN_PLAN=1", "GOTOOLCHAIN=" + os.Getenv("GOTOOLCHAIN")}
	// The Kubernetes binaries' cache lives under the real HOME: <cache>/k8s/<versions>/bin.
	cache := os.Getenv("SCALESTACK_CACHE")
	if cache == "" {
		cache = filepath.Dir(filepath.Dir(filepath.Dir(os.Getenv("KUBEBUILDER_ASSETS"))))
	}
	cmd.Env = append(cmd.Env, "SCALESTACK_CACHE="+cache)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestMakeRunIgnoresAConfiguredClusterUnlessNamed(t *testing.T) {
	if _, err := os.Stat(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")); err != nil {
		t.Skip("needs the Kubernetes binaries (KUBEBUILDER_ASSETS, as make test sets it)")
	}
	cluster := newFakeCluster(t)
	home := t.TempDir()
	kubeconfig(t, filepath.Join(home, ".kube", "config"), cluster.URL)
	other := filepath.Join(t.TempDir(), "other-kubeconfig")
	kubeconfig(t, other, cluster.URL)

	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"~/.kube/config", nil},
		{"$KUBECONFIG", []string{"KUBECONFIG=" + other}},
	} {
		t.Run("a configured "+tc.name+" is not used", func(t *testing.T) {
			out, err := run(t, home, tc.env...)
			if err != nil {
				t.Fatalf("run.sh: %v\n%s", err, out)
			}
			if !strings.Contains(out, "Not using") || !strings.Contains(out, "Plan: start the local control plane") {
				t.Errorf("the plan does not say it uses the local control plane:\n%s", out)
			}
			if got := cluster.requests(); len(got) > 0 {
				t.Errorf("the configured cluster got requests: %v", got)
			}
		})
	}

	t.Run("RUN_CONTEXT opts in, names the cluster and installs no stub CRDs", func(t *testing.T) {
		out, err := run(t, home, "RUN_CONTEXT=elsewhere")
		if err != nil {
			t.Fatalf("run.sh: %v\n%s", err, out)
		}
		if !strings.Contains(out, "Using context elsewhere") || !strings.Contains(out, cluster.URL) || !strings.Contains(out, "no stub CRDs") {
			t.Errorf("the plan does not name the context, its server and what it installs:\n%s", out)
		}
		for _, r := range cluster.requests() {
			if r != "GET /readyz" {
				t.Errorf("planning made a request other than the readiness probe: %s", r)
			}
		}
	})

	t.Run("an unknown RUN_CONTEXT is an error naming it", func(t *testing.T) {
		out, err := run(t, home, "RUN_CONTEXT=nope")
		if err == nil || !strings.Contains(out, "RUN_CONTEXT=nope: no such context") {
			t.Errorf("run.sh with an unknown context: %v\n%s", err, out)
		}
	})
}
