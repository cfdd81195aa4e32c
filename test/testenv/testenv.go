// Package testenv starts the operator's manager against a real kube-apiserver and etcd (envtest)
// for the integration suites, with a counting transport on the operator's client.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers"
)

// Logs holds everything the operator logged, at every level, for the secret scan.
var Logs = &syncBuffer{}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was logged so far.
func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// AppsImage is the default apps image of the test operator.
const AppsImage = "example.test/scalestack/apps:test"

// Env is a running envtest control plane with the operator's manager.
type Env struct {
	// Client is the tests' own client: direct, no cache.
	Client   client.Client
	Scheme   *k8sruntime.Scheme
	Config   *rest.Config
	writesMu sync.Mutex
	// writes holds "METHOD path" of every write request (anything but GET) the operator sent to
	// the API server, in order.
	writes []string

	// agents maps "namespace/pod" to the URL of an agent a test runs for that pod (envtest has
	// no kubelet, so database pods exist only as objects the tests make).
	agents sync.Map

	env    *envtest.Environment
	cancel context.CancelFunc
	done   chan error
}

// WriteMark is a point in the operator's writes, for WritesIn.
func (e *Env) WriteMark() int {
	e.writesMu.Lock()
	defer e.writesMu.Unlock()
	return len(e.writes)
}

// WritesIn lists the operator's write requests since mark to objects of namespace ns (events
// included): what one platform cost, whatever the platforms of earlier tests do meanwhile.
func (e *Env) WritesIn(mark int, ns string) []string {
	e.writesMu.Lock()
	defer e.writesMu.Unlock()
	var out []string
	for _, w := range e.writes[mark:] {
		if strings.Contains(w, "/namespaces/"+ns+"/") {
			out = append(out, w)
		}
	}
	return out
}

// SetAgent makes the operator reach the agent of pod namespace/name at url.
func (e *Env) SetAgent(namespace, name, url string) { e.agents.Store(namespace+"/"+name, url) }

// RepoRoot is the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Start starts envtest with our CRD plus extraCRDs (paths relative to the repository root) and
// runs the manager in the background.
func Start(extraCRDs ...string) (*Env, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: run the integration tests through `make test` (hack/test.sh builds the Kubernetes binaries and sets it)")
	}
	// Everything goes to Logs (for the secret scan); errors, or everything with TEST_VERBOSE, to
	// stderr too.
	console := io.Discard
	if os.Getenv("TEST_VERBOSE") != "" {
		console = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(io.MultiWriter(Logs, console)), zap.Level(zapcore.Level(-10))))

	e := &Env{Scheme: k8sruntime.NewScheme(), done: make(chan error, 1)}
	utilruntime.Must(clientgoscheme.AddToScheme(e.Scheme))
	utilruntime.Must(scalestackv1alpha1.AddToScheme(e.Scheme))
	paths := []string{filepath.Join(RepoRoot(), "config", "crd", "bases")}
	for _, p := range extraCRDs {
		paths = append(paths, filepath.Join(RepoRoot(), p))
	}
	e.env = &envtest.Environment{CRDDirectoryPaths: paths, ErrorIfCRDPathMissing: true}
	// envtest's default service range is a /24: about 15 platforms' worth of Services. The suite
	// creates more, and nothing frees their addresses (there is no namespace controller).
	e.env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16")
	cfg, err := e.env.Start()
	if err != nil {
		// A start that fails after the control plane came up (a CRD the API server refuses, say)
		// would leave etcd and kube-apiserver running.
		_ = e.env.Stop()
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	e.Config = cfg
	if e.Client, err = client.New(cfg, client.Options{Scheme: e.Scheme}); err != nil {
		return nil, err
	}

	opCfg := rest.CopyConfig(cfg)
	opCfg.QPS, opCfg.Burst = 200, 400
	opCfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method != http.MethodGet {
				e.writesMu.Lock()
				e.writes = append(e.writes, req.Method+" "+req.URL.Path)
				e.writesMu.Unlock()
			}
			return rt.RoundTrip(req)
		})
	}
	mgr, err := ctrl.NewManager(opCfg, ctrl.Options{
		Scheme:  e.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   controllers.CacheOptions(),
		Client:  client.Options{Cache: &client.CacheOptions{Unstructured: true}},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if err := (&controllers.SocialPlatformReconciler{
		Client:                  mgr.GetClient(),
		Recorder:                mgr.GetEventRecorder("scalestack-operator"),
		DefaultAppsImage:        AppsImage,
		MaxConcurrentReconciles: 4,
		AgentURL: func(pod *corev1.Pod) string {
			if u, ok := e.agents.Load(pod.Namespace + "/" + pod.Name); ok {
				return u.(string)
			}
			return controllers.PodIPAgentURL(pod)
		},
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up reconciler: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- mgr.Start(ctx) }()
	return e, nil
}

// Stop stops the manager and the control plane.
func (e *Env) Stop() error {
	e.cancel()
	err := <-e.done
	if serr := e.env.Stop(); err == nil {
		err = serr
	}
	return err
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
