package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
)

// sliExporter serves the SLI recording rules' series for one service, as a Prometheus that
// evaluated the generated rules would hold them (the rules themselves are proven by promtool's
// unit tests in controllers/render). A real Prometheus scrapes it; the autoscaler queries that
// Prometheus over its HTTP API.
type sliExporter struct {
	mu    sync.Mutex
	ratio float64
	ns    string
	svc   string
}

func (e *sliExporter) set(r float64) { e.mu.Lock(); e.ratio = r; e.mu.Unlock() }

func (e *sliExporter) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for _, win := range render.SLIWindows {
		fmt.Fprintf(&b, "scalestack:sli_errors:ratio_rate%s{namespace=%q,service=%q} %g\n", win, e.ns, e.svc, e.ratio)
		fmt.Fprintf(&b, "scalestack:sli_slow:ratio_rate%s{namespace=%q,service=%q} 0\n", win, e.ns, e.svc)
	}
	_, _ = w.Write([]byte(b.String()))
}

// startPrometheus runs Debian's prometheus scraping target every second, evaluating the rule
// files given (every second too); stop ends it.
func startPrometheus(t *testing.T, target string, ruleFiles ...string) (url string, stop func()) {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found: install Debian's prometheus package (hack/test-deps.sh does)")
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%s]
scrape_configs:
  - job_name: sli
    honor_labels: true
    static_configs: [{targets: [%q]}]
`, quoteAll(ruleFiles), target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	logFile, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = logFile.Close() }) }
	t.Cleanup(stop)
	eventually(t, "prometheus ready", func() error {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	return "http://" + addr, stop
}

func TestAutoscalerScalesOnBurnWithARealPrometheus(t *testing.T) {
	ns := newNamespace(t)
	sp := loadSample(t, ns)
	exp := &sliExporter{ns: ns, svc: sp.ComponentName(scalestackv1alpha1.ComponentGateway)}
	srv := httptest.NewServer(exp)
	defer srv.Close()
	promURL, stopProm := startPrometheus(t, strings.TrimPrefix(srv.URL, "http://"))

	sp.Spec.Apps.Gateway = scalestackv1alpha1.ServiceSpec{Replicas: ptr.To[int32](2), MinReplicas: ptr.To[int32](2), MaxReplicas: ptr.To[int32](6)}
	sp.Spec.SLO.Autoscaling = scalestackv1alpha1.AutoscalingSpec{
		Enabled: true, PrometheusURL: promURL,
		Interval:               &metav1.Duration{Duration: time.Second},
		ScaleUpCooldown:        &metav1.Duration{Duration: time.Second},
		ScaleDownStabilization: &metav1.Duration{Duration: 3 * time.Second},
	}
	if err := k8s.Create(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	// The Deployment is created without replicas (the autoscaler owns them): the API server's
	// default of 1 is under minReplicas, and the autoscaler raises it to 2.
	eventually(t, "gateway at minReplicas", replicasAre(t, sp.Namespace, sp.ComponentName(scalestackv1alpha1.ComponentGateway), 2))

	// 5% errors on every window: a burn of 50 against a 0.1% budget. Scale up at once, then again
	// after the cooldown, up to maxReplicas and no further.
	exp.set(0.05)
	eventually(t, "gateway at maxReplicas", replicasAre(t, sp.Namespace, sp.ComponentName(scalestackv1alpha1.ComponentGateway), 6))
	cur := waitForCondition(t, sp, scalestackv1alpha1.ConditionSLOHealthy, metav1.ConditionFalse)
	if c := meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionSLOHealthy); c.Reason != "FastBurn" {
		t.Errorf("SLOHealthy reason %q", c.Reason)
	}
	var gw *scalestackv1alpha1.ServiceSLOStatus
	for i := range cur.Status.SLO.Services {
		if cur.Status.SLO.Services[i].Name == "gateway" {
			gw = &cur.Status.SLO.Services[i]
		}
	}
	if gw == nil || gw.BurnRates["1h"] != "50.0" || gw.LastDecision == nil {
		t.Fatalf("gateway SLO status %+v", gw)
	}
	eventually(t, "the autoscaler's decision in the service's status", func() error {
		cur := &scalestackv1alpha1.SocialPlatform{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(sp), cur); err != nil {
			return err
		}
		for _, st := range cur.Status.Services {
			if st.Name == "gateway" && ptr.Deref(st.DesiredByAutoscaler, 0) == 6 {
				return nil
			}
		}
		return fmt.Errorf("services %+v", cur.Status.Services)
	})

	// The burn stops: after the stabilization window, one step down per interval, to minReplicas.
	exp.set(0)
	eventually(t, "gateway back at minReplicas", replicasAre(t, sp.Namespace, sp.ComponentName(scalestackv1alpha1.ComponentGateway), 2))
	waitForCondition(t, sp, scalestackv1alpha1.ConditionSLOHealthy, metav1.ConditionTrue)

	// Prometheus goes away: hold, and say so.
	exp.set(0.05)
	stopProm()
	unknown := waitForCondition(t, sp, scalestackv1alpha1.ConditionSLOHealthy, metav1.ConditionUnknown)
	if c := meta.FindStatusCondition(unknown.Status.Conditions, scalestackv1alpha1.ConditionSLOHealthy); c.Reason != "MetricsUnavailable" {
		t.Errorf("SLOHealthy reason %q", c.Reason)
	}
	consistently(t, "replicas held without metrics", 2*time.Second, replicasAre(t, sp.Namespace, sp.ComponentName(scalestackv1alpha1.ComponentGateway), 2))
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
