// Command manager runs the scalestack operator.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers"
	"github.com/scalestack/scalestack/internal/metricsauth"
)

// DefaultAppsImage is the apps image of platforms that do not name one.
const DefaultAppsImage = "ghcr.io/scalestack/apps:v0.1.0"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// defaultGCPercent is the collector's target when GOGC is not set: the heap may grow by half its
// live size between collections instead of Go's default of all of it. The operator's live heap is
// mostly its informers' objects, so this is most of its memory beyond the binary; measured at 50
// platforms it costs no CPU that shows (docs/benchmarks.md). GOMEMLIMIT, from the container's
// memory limit, still bounds it from above.
const defaultGCPercent = 50

func run() error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	var (
		metricsAddr, probeAddr, pprofAddr, appsImage, logFormat, leaderNamespace, watchNamespaces string
		leaderElect, secureMetrics                                                                bool
		concurrency, qps, burst                                                                   int
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "Address of the metrics endpoint; \"0\" turns it off.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS, for callers the API server authenticates and authorizes.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Address of Go's /debug/pprof endpoints, for profiling; empty (the default) turns them off. Bind it to localhost: it is not authenticated.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader, so that only one of several replicas reconciles.")
	flag.StringVar(&leaderNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease (default: the pod's namespace).")
	flag.StringVar(&appsImage, "apps-image", DefaultAppsImage, "Apps image of platforms that do not set spec.apps.image.")
	flag.IntVar(&concurrency, "max-concurrent-reconciles", 4, "How many SocialPlatforms are reconciled at once.")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces whose SocialPlatforms this operator reconciles (default: every namespace).")
	flag.IntVar(&qps, "kube-api-qps", 200, "Queries per second to the API server (client-side limit).")
	flag.IntVar(&burst, "kube-api-burst", 400, "Burst of queries to the API server.")
	flag.StringVar(&logFormat, "log-format", "json", "Log format: json or text.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	switch logFormat {
	case "json":
		zapOpts.Development = false
	case "text":
		zapOpts.Development = true
		zapOpts.TimeEncoder = zapcore.RFC3339TimeEncoder
	default:
		return fmt.Errorf("--log-format must be json or text, not %q", logFormat)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(scalestackv1alpha1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(qps), burst

	metricsOpts := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: secureMetrics,
		// HTTP/2 stays off: it has been the vector of several denial-of-service CVEs (Rapid Reset).
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
	if secureMetrics {
		metricsOpts.FilterProvider = metricsauth.Provider
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        probeAddr,
		PprofBindAddress:              pprofAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              "scalestack-operator.scalestack.dev",
		LeaderElectionNamespace:       leaderNamespace,
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controllers.CacheOptions(namespaceList(watchNamespaces)...),
		// Strimzi's kinds are read as unstructured objects; they are cached like the typed ones.
		Client: client.Options{Cache: &client.CacheOptions{Unstructured: true}},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}

	if err := (&controllers.SocialPlatformReconciler{
		Client:                  mgr.GetClient(),
		Recorder:                mgr.GetEventRecorder("scalestack-operator"),
		DefaultAppsImage:        appsImage,
		MaxConcurrentReconciles: concurrency,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the SocialPlatform controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}

	log.Info("Starting manager", "appsImage", appsImage, "maxConcurrentReconciles", concurrency, "watchNamespaces", watchNamespaces)
	return mgr.Start(ctrl.SetupSignalHandler())
}

// namespaceList splits --watch-namespaces; empty means every namespace.
func namespaceList(s string) []string {
	var out []string
	for _, ns := range strings.Split(s, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			out = append(out, ns)
		}
	}
	return out
}
