//go:build realnode

package realnode

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/internal/localservers"
)

// The operator as a platform team installs it: charts/scalestack with the operator image built
// here, in a real pod on the real node, with the chart's RBAC and nothing else, brings the
// minimal sample (config/samples/minimal.yaml: External Kafka, one shard, no Strimzi, no
// prometheus-operator) to Ready. It runs last, inside TestStackRunsInRealPods (it stops the
// host-process operator the rest uses, and takes the node's room from the demo platform).
//
// One concession to the local control plane: its API server listens on loopback only (it is never
// reachable from outside this machine), and pods cannot reach the host's loopback, so the operator
// pod runs in the host's network namespace, pointed at that address, with its metrics and probe
// listeners on loopback too. On a real cluster the chart's pod reaches the API server through the
// kubernetes Service, unpatched.
func installedOperatorBringsTheMinimalSampleToReady(t *testing.T) {
	ctx := context.Background()
	out, err := exec.Command(filepath.Join(repo, "hack", "build-helm.sh")).Output()
	if err != nil {
		t.Fatalf("building helm: %v", err)
	}
	helmBin := strings.TrimSpace(string(out))
	helm := func(args ...string) {
		t.Helper()
		cmd := exec.Command(helmBin, append(args, "--kubeconfig", kubeconfig)...)
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("helm %v: %v\n%s", args, err, b)
		}
	}
	const release, opNS, ns = "installed", "scalestack-installed", "scalestack-minimal"
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted"}}}); err != nil {
		t.Fatal(err)
	}
	// The other test's platform goes first (its data is retained), so the 2-core node has room;
	// its kfake stays, as this platform's External Kafka.
	if demo := (&scalestackv1alpha1.SocialPlatform{}); k8s.Get(ctx, client.ObjectKey{Namespace: "scalestack-demo", Name: "demo"}, demo) == nil {
		if err := k8s.Delete(ctx, demo); err != nil {
			t.Fatal(err)
		}
		poll(t, "the demo platform gone", 3*time.Minute, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(demo), &scalestackv1alpha1.SocialPlatform{}); err == nil {
				return fmt.Errorf("still there")
			}
			return nil
		})
	}
	stopHostOperator()
	helm("install", release, filepath.Join(repo, "charts", "scalestack"), "-n", opNS, "--create-namespace",
		"--set", "image.tag=v0.1.0", "--set", "image.pullPolicy=Never", "--set", "replicas=1", "--set", "watchNamespaces={"+ns+"}")

	// The loopback concession (see above), as one JSON patch of the chart's Deployment.
	host, port, err := apiServerAddress(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	const deploy = "scalestack-operator"
	patch, _ := json.Marshal([]map[string]any{
		{"op": "add", "path": "/spec/template/spec/hostNetwork", "value": true},
		{"op": "add", "path": "/spec/template/spec/dnsPolicy", "value": "ClusterFirstWithHostNet"},
		{"op": "replace", "path": "/spec/template/spec/containers/0/args/1", "value": fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", localservers.FreePort(t))},
		{"op": "replace", "path": "/spec/template/spec/containers/0/args/2", "value": fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", localservers.FreePort(t))},
		{"op": "remove", "path": "/spec/template/spec/containers/0/livenessProbe"},
		{"op": "remove", "path": "/spec/template/spec/containers/0/readinessProbe"},
		{"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": map[string]string{"name": "KUBERNETES_SERVICE_HOST", "value": host}},
		{"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": map[string]string{"name": "KUBERNETES_SERVICE_PORT", "value": port}},
	})
	kubectlOut(t, "patch", "deployment", deploy, "-n", opNS, "--type=json", "-p", string(patch))
	kubectlOut(t, "rollout", "status", "deployment", deploy, "-n", opNS, "--timeout=3m")

	// The minimal sample, with its External Kafka at the kfake of the other test's namespace.
	raw, err := os.ReadFile(filepath.Join(repo, "config", "samples", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sp := &scalestackv1alpha1.SocialPlatform{}
	if err := yaml.NewYAMLOrJSONDecoder(strings.NewReader(string(raw)), 4096).Decode(sp); err != nil {
		t.Fatal(err)
	}
	sp.Namespace = ns
	sp.Spec.Kafka.BootstrapServers = []string{kfakeAddress}
	// Only images built here exist on the node (the apps' default is one of them), and the node
	// has 2 cores: as config/local-sample does.
	sp.Spec.Database.Image = "scalestack.local/mariadb:10.11"
	sp.Spec.Cache.Image = "scalestack.local/redis:7.0"
	sp.Spec.Database.Resources = &corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("384Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
	}
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	poll(t, "the minimal sample Ready under the installed operator", 10*time.Minute, func() error {
		cur := &scalestackv1alpha1.SocialPlatform{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(sp), cur); err != nil {
			return err
		}
		if c := condition(cur, scalestackv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || cur.Status.ObservedGeneration != cur.Generation {
			return fmt.Errorf("Ready is %+v", c)
		}
		return nil
	})
	t.Logf("the minimal sample was Ready %v after it was created, under the operator installed by the chart", time.Since(start).Round(time.Second))

	// It was the pod that did it: the platform's children carry the chart's operator as their
	// field manager, and the operator pod runs the image built here on the real node.
	pods := &corev1.PodList{}
	if err := k8s.List(ctx, pods, client.InNamespace(opNS)); err != nil || len(pods.Items) != 1 {
		t.Fatalf("operator pods: %d, %v", len(pods.Items), err)
	}
	p := pods.Items[0]
	if p.Spec.NodeName != "scalestack-node-0" || p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].RestartCount > 0 {
		t.Errorf("operator pod %s: node %s phase %s, containers %+v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.ContainerStatuses)
	}
	logs := kubectlOut(t, "logs", "-n", opNS, p.Name)
	if !strings.Contains(logs, ns) {
		t.Errorf("the operator pod's log does not mention %s:\n%s", ns, logs[max(0, len(logs)-4000):])
	}
}

// kfakeAddress is the kfake broker of config/local-sample (its Service's fixed ClusterIP).
const kfakeAddress = "10.100.0.92:9092"

// apiServerAddress reads the API server's host and port from a kubeconfig.
func apiServerAddress(path string) (host, port string, err error) {
	out, err := exec.Command(kubectl, "--kubeconfig", path, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").Output()
	if err != nil {
		return "", "", err
	}
	server := strings.TrimPrefix(strings.TrimSpace(string(out)), "https://")
	host, port, ok := strings.Cut(server, ":")
	if !ok {
		return "", "", fmt.Errorf("API server %q has no port", server)
	}
	return host, port, nil
}
