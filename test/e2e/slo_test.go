//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/apps/localstack"
	"github.com/scalestack/scalestack/apps/service"
	"github.com/scalestack/scalestack/apps/user"
)

// TestAutoscalerFollowsRealAppErrors closes the SLO loop with nothing simulated: the real apps
// (every HTTP service, on real MariaDB, Redis and kfake) serve traffic; Debian's Prometheus,
// started here, scrapes the real gateway and evaluates the rules the operator generated (read back
// from its PrometheusRule); the operator on the local control plane reads the burn from that
// Prometheus and scales the gateway's Deployment.
func TestAutoscalerFollowsRealAppErrors(t *testing.T) {
	st := localstack.Start(t, localstack.Options{Services: []string{service.User, service.Post, service.Feed, service.Gateway},
		Configure: func(c *service.Config) { c.RateLimit, c.RateBurst = 1e6, 1e6 }})
	ns := restrictedNamespace(t)
	promAddr := freeAddr(t)
	sp := sample(t)
	sp.Namespace, sp.Name = ns, "slo"
	sp.Spec.Apps.Gateway = scalestackv1alpha1.ServiceSpec{MinReplicas: ptr.To[int32](1), MaxReplicas: ptr.To[int32](3)}
	sp.Spec.SLO.Autoscaling = scalestackv1alpha1.AutoscalingSpec{
		Enabled: true, PrometheusURL: "http://" + promAddr,
		Interval:               &metav1.Duration{Duration: 2 * time.Second},
		ScaleUpCooldown:        &metav1.Duration{Duration: 5 * time.Second},
		ScaleDownStabilization: &metav1.Duration{Duration: 10 * time.Second},
	}
	ctx := context.Background()
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), sp) })

	// The operator's own rules, as a Prometheus rule file evaluated every second.
	rule := &unstructured.Unstructured{}
	rule.SetAPIVersion("monitoring.coreos.com/v1")
	rule.SetKind("PrometheusRule")
	poll(t, "the PrometheusRule", 60*time.Second, func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: sp.Name + "-slo"}, rule)
	})
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	for _, g := range groups {
		g.(map[string]any)["interval"] = "1s"
	}
	rules, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	gateway := st.Gateway()[len("http://"):]
	stopProm := startPrometheus(t, promAddr, rules, fmt.Sprintf(`
  - job_name: gateway
    static_configs:
      - targets: [%q]
        labels: {namespace: %q, service: %q}
`, gateway, ns, sp.ComponentName(scalestackv1alpha1.ComponentGateway)))

	// Traffic in three phases. The generated alerts pair a long and a short window; within a
	// test shorter than 30 minutes every long window holds the whole history, so the phases are
	// sized for the errors to burn fast (a few hundred errors and nothing else), then to be
	// outweighed (hundreds of thousands of good requests) once the 5m window has let them go.
	const (
		warm = iota
		erroring
		recovering
	)
	anon, tokenOf := signupForE2E(t, st.Gateway())
	var phase atomic.Int32
	stopTraffic := make(chan struct{})
	var wg sync.WaitGroup
	hit := func(path string) {
		req, _ := http.NewRequest("GET", st.Gateway()+path, nil)
		req.Header.Set("Authorization", "Bearer "+tokenOf)
		if res, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
		}
	}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopTraffic:
					return
				default:
				}
				switch phase.Load() {
				case warm:
					if w == 0 {
						hit("/api/users/" + anon) // 20 a second
					}
					time.Sleep(50 * time.Millisecond)
				case erroring:
					if w == 0 {
						hit("/api/suggestions") // needs the stopped user service: 503, 10 a second
					}
					time.Sleep(100 * time.Millisecond)
				default:
					hit("/api/users/" + anon) // as fast as four clients go, with a breath
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	defer func() { close(stopTraffic); wg.Wait() }()

	replicas := func() int32 {
		d := &appsv1.Deployment{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: sp.ComponentName(scalestackv1alpha1.ComponentGateway)}, d); err != nil || d.Spec.Replicas == nil {
			return -1
		}
		return *d.Spec.Replicas
	}
	sloStatus := func() (*metav1.Condition, *scalestackv1alpha1.ServiceSLOStatus) {
		live := &scalestackv1alpha1.SocialPlatform{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(sp), live); err != nil {
			return nil, nil
		}
		c := meta.FindStatusCondition(live.Status.Conditions, scalestackv1alpha1.ConditionSLOHealthy)
		for i := range live.Status.SLO.Services {
			if live.Status.SLO.Services[i].Name == string(scalestackv1alpha1.ComponentGateway) {
				return c, &live.Status.SLO.Services[i]
			}
		}
		return c, nil
	}
	poll(t, "burn rates read from Prometheus, SLOHealthy=True, gateway at 1", 2*time.Minute, func() error {
		c, s := sloStatus()
		if c == nil || c.Status != metav1.ConditionTrue || s == nil || len(s.BurnRates) == 0 || replicas() != 1 {
			return fmt.Errorf("condition %v, service %+v, replicas %d", c, s, replicas())
		}
		return nil
	})

	// Errors: the user service goes away and every request the traffic makes fails.
	st.StopService(service.User)
	phase.Store(erroring)
	poll(t, "the gateway scaled up on the fast burn, within maxReplicas", 3*time.Minute, func() error {
		if r := replicas(); r < 2 || r > 3 {
			return fmt.Errorf("replicas %d", r)
		}
		return nil
	})
	// The status is written after the scale subresource: it may trail the Deployment briefly.
	poll(t, "the scale-up recorded as FastBurn with its burn rates", 30*time.Second, func() error {
		_, s := sloStatus()
		if s == nil || s.LastScaleUpTime == nil || s.BurnRates["5m"] == "0.0" {
			return fmt.Errorf("status %+v", s)
		}
		if d := s.LastDecision; d == nil || (d.Reason != "FastBurn" && d.Reason != "CoolingDown" && d.Reason != "AtMaxReplicas") {
			return fmt.Errorf("last decision %+v", d)
		}
		return nil
	})
	poll(t, "the gateway at maxReplicas and no further", 2*time.Minute, func() error {
		if r := replicas(); r != 3 {
			return fmt.Errorf("replicas %d", r)
		}
		return nil
	})

	// The errors stop. The 5m window forgets them after five minutes, by then the good requests
	// outweigh them on the long windows; after the stabilization window the gateway comes back
	// down one step at a time.
	phase.Store(recovering)
	st.RestartService(service.User)
	poll(t, "the gateway back at minReplicas after the burn ended", 9*time.Minute, func() error {
		if r := replicas(); r != 1 {
			_, s := sloStatus()
			return fmt.Errorf("replicas %d, %+v", r, s)
		}
		return nil
	})

	// Prometheus goes away: replicas hold, and the condition says why.
	stopProm()
	poll(t, "SLOHealthy=Unknown with Prometheus down", time.Minute, func() error {
		if c, _ := sloStatus(); c == nil || c.Status != metav1.ConditionUnknown || c.Reason != "MetricsUnavailable" {
			return fmt.Errorf("condition %+v", c)
		}
		return nil
	})
	for range 10 {
		if r := replicas(); r != 1 {
			t.Fatalf("replicas changed to %d without metrics", r)
		}
		time.Sleep(time.Second)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// signupForE2E creates a user through the gateway and returns its ID and token.
func signupForE2E(t *testing.T, gateway string) (string, string) {
	t.Helper()
	body := fmt.Sprintf(`{"handle":"slo_%d","email":"slo@example.com","password":"a long password","display_name":"SLO"}`, time.Now().UnixNano()%1_000_000)
	res, err := http.Post(gateway+"/api/signup", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	var tr user.TokenResponse
	if err := json.NewDecoder(res.Body).Decode(&tr); err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("signup: %d %v", res.StatusCode, err)
	}
	return tr.ID.String(), tr.Token
}

// startPrometheus runs Debian's prometheus on addr with the given rule file and scrape configs,
// scraping and evaluating every second; the returned function stops it.
func startPrometheus(t *testing.T, addr string, rules []byte, scrapeConfigs string) func() {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found: install Debian's prometheus package (hack/test-deps.sh does)")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := "global: {scrape_interval: 1s, evaluation_interval: 1s}\nrule_files: [rules.yml]\nscrape_configs:" + scrapeConfigs
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(filepath.Dir(bin), "promtool"), "check", "config", filepath.Join(dir, "prometheus.yml")).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	logFile, _ := os.Create(filepath.Join(workDir, "prometheus.log"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = logFile.Close() }) }
	t.Cleanup(stop)
	poll(t, "prometheus ready", time.Minute, func() error {
		res, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return err
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	})
	return stop
}
