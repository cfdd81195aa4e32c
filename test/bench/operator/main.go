// Command operator benchmarks the operator on the local control plane (make bench-operator):
// convergence of 1, 50 and 200 SocialPlatforms from apply to every child created and to Ready,
// against a baseline measured in the same run (the same objects created by a plain client in one
// pass: the floor); write requests per steady-state reconcile; reconcile latency; operator memory
// at each size and after 10,000 unrelated ConfigMaps and Secrets. It prints a markdown report.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/internal/testutil"
)

var (
	sizes      = flag.String("sizes", "1,50,200", "numbers of platforms to converge, in order")
	unrelated  = flag.Int("unrelated", 10000, "unrelated ConfigMaps and Secrets created for the memory check")
	timeout    = flag.Duration("timeout", 10*time.Minute, "how long one size may take to converge")
	reportPath = flag.String("report", "", "also write the markdown report to this file")
	opEnv      = flag.String("operator-env", "", "extra environment of the operator process only, e.g. GOMEMLIMIT=48MiB")
	opArgs     = flag.String("operator-args", "", "extra flags of the operator, e.g. --child-event-delay=200ms")
	profileDir = flag.String("profile", "", "save the operator's heap profile into this directory when each size is Ready (heap-<n>.pb.gz)")
)

type bench struct {
	k8s client.Client
	// cache answers the polls from watches, so that waiting does not load the API server with
	// lists of thousands of objects.
	cache      crcache.Cache
	repo, work string
	kubeconfig string
	kafka      []string
	opPID      int
	metricsURL string
	pprofURL   string
	report     strings.Builder
	// breakdowns say, per size, which writes the convergence made.
	breakdowns []string
}

func main() {
	flag.Parse()
	ctrllog.SetLogger(logr.Discard())
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-operator:", err)
		os.Exit(1)
	}
}

func run() error {
	b := &bench{}
	var err error
	if b.repo, err = filepath.Abs("."); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(b.repo, "go.mod")); err != nil {
		return fmt.Errorf("run from the repository root (make bench-operator)")
	}
	if b.work, err = os.MkdirTemp("", "scalestack-bench-"); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "work dir (logs):", b.work)
	cluster := testutil.LocalCluster(b.repo, filepath.Join(b.work, "cluster"), "")
	if b.kubeconfig, err = cluster("up"); err != nil {
		return fmt.Errorf("local control plane: %w", err)
	}
	defer func() { _, _ = cluster("down") }()
	cfg, err := clientcmd.BuildConfigFromFlags("", b.kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 500, 1000
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(scalestackv1alpha1.AddToScheme(scheme))
	if b.k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	if b.cache, err = crcache.New(cfg, crcache.Options{Scheme: scheme, DefaultTransform: crcache.TransformStripManagedFields()}); err != nil {
		return err
	}
	cacheCtx, stopCache := context.WithCancel(context.Background())
	defer stopCache()
	go func() { _ = b.cache.Start(cacheCtx) }()
	kubectl := filepath.Join(os.Getenv("K8S_BIN"), "kubectl")
	if out, err := exec.Command(kubectl, "--kubeconfig", b.kubeconfig, "apply", "--server-side", "-f", filepath.Join(b.repo, "config", "crd", "bases")).CombinedOutput(); err != nil {
		return fmt.Errorf("installing CRDs: %w\n%s", err, out)
	}
	// Right after the apply the CRD may have no status yet, which kubectl wait reports as an
	// error: ask again.
	var out []byte
	for attempt := 0; attempt < 10; attempt++ {
		if out, err = exec.Command(kubectl, "--kubeconfig", b.kubeconfig, "wait", "--for", "condition=established", "crd/socialplatforms.scalestack.dev").CombinedOutput(); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		return fmt.Errorf("waiting for CRDs: %w\n%s", err, out)
	}
	kafka, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		return err
	}
	defer kafka.Close()
	b.kafka = kafka.ListenAddrs()

	// Start the bench's own informers before measuring, so that the first measurement does not
	// include their initial list.
	if _, err := b.allChildren(nil, 0); err != nil {
		return err
	}
	if _, err := b.workloadsReady(nil); err != nil {
		return err
	}
	if _, err := b.allReady(nil); err != nil {
		return err
	}

	stop, err := b.startOperator()
	if err != nil {
		return err
	}
	defer stop()

	fmt.Fprintf(&b.report, "| platforms | children (operator / baseline) | all created (operator) | all Ready (operator) | baseline created | baseline ready | Ready / baseline ready | operator writes per child | operator RSS | operator CPU per 1,000 children |\n")
	fmt.Fprintf(&b.report, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	total := 0
	var ns []string
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			return err
		}
		names, row, err := b.size(n, total)
		if err != nil {
			return err
		}
		total += n
		ns = append(ns, names...)
		b.report.WriteString(row)
	}
	b.report.WriteString("\n")
	for _, line := range b.breakdowns {
		b.report.WriteString(line)
	}
	b.report.WriteString("\n")
	if err := b.steadyState(ns); err != nil {
		return err
	}
	if err := b.unrelatedObjects(); err != nil {
		return err
	}
	fmt.Print(b.report.String())
	if *reportPath != "" {
		return os.WriteFile(*reportPath, []byte(b.report.String()), 0o644)
	}
	return nil
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func (b *bench) startOperator() (func(), error) {
	manager := filepath.Join(b.work, "manager")
	build := exec.Command("go", "build", "-o", manager, ".")
	build.Dir = b.repo
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the operator: %w\n%s", err, out)
	}
	port := freePort()
	b.metricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	logFile, err := os.Create(filepath.Join(b.work, "operator.log"))
	if err != nil {
		return nil, err
	}
	op := exec.Command(manager, "--kubeconfig", b.kubeconfig, "--metrics-secure=false",
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", port), "--health-probe-bind-address=127.0.0.1:0", "--log-format=json", "--zap-log-level=error")
	if *profileDir != "" {
		pprofPort := freePort()
		b.pprofURL = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof", pprofPort)
		op.Args = append(op.Args, fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", pprofPort))
	}
	op.Args = append(op.Args, strings.Fields(*opArgs)...)
	op.Stdout, op.Stderr = logFile, logFile
	if *opEnv != "" {
		op.Env = append(os.Environ(), strings.Fields(*opEnv)...)
	}
	if err := op.Start(); err != nil {
		return nil, err
	}
	b.opPID = op.Process.Pid
	if _, err := waitUntil(time.Minute, func() (bool, error) { _, err := b.metrics(); return err == nil, nil }); err != nil {
		return nil, fmt.Errorf("the operator's metrics endpoint: %w", err)
	}
	return func() { _ = op.Process.Signal(os.Interrupt); _ = op.Wait(); _ = logFile.Close() }, nil
}

// platform is the benchmark's SocialPlatform: the sample's shape with one shard and one replica,
// Kafka External against kfake.
func (b *bench) platform(ns string) *scalestackv1alpha1.SocialPlatform {
	sp := &scalestackv1alpha1.SocialPlatform{}
	sp.Name, sp.Namespace = "bench", ns
	sp.Spec.Apps.Image = "example.test/apps:bench"
	sp.Spec.Database.Shards = 1
	sp.Spec.Database.ReplicasPerShard = ptr.To[int32](1)
	sp.Spec.Cache.Size = resourceMustParse("64Mi")
	sp.Spec.Kafka.Mode = scalestackv1alpha1.KafkaModeExternal
	sp.Spec.Kafka.BootstrapServers = b.kafka
	sp.Spec.CDN.OriginHost = "static.bench.example.com"
	sp.Spec.Database.Archive = &scalestackv1alpha1.ArchiveSpec{OlderThan: metav1.Duration{Duration: 2160 * time.Hour}}
	return sp
}

func (b *bench) namespaces(prefix string, from, n int) ([]string, error) {
	ctx := context.Background()
	var names []string
	g := errgroup.Group{}
	g.SetLimit(16)
	var mu sync.Mutex
	for i := from; i < from+n; i++ {
		name := fmt.Sprintf("%s-%03d", prefix, i)
		names = append(names, name)
		g.Go(func() error {
			err := b.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
			mu.Lock()
			defer mu.Unlock()
			return err
		})
	}
	return names, g.Wait()
}

// size converges n platforms and the baseline of n, and returns the report row.
func (b *bench) size(n, offset int) ([]string, string, error) {
	ctx := context.Background()
	fmt.Fprintf(os.Stderr, "== %d platforms\n", n)
	names, err := b.namespaces("op", offset, n)
	if err != nil {
		return nil, "", err
	}
	before, err := b.metrics()
	if err != nil {
		return nil, "", err
	}
	cpuBefore := b.cpuSeconds()
	start := time.Now()
	for _, ns := range names {
		if err := b.k8s.Create(ctx, b.platform(ns)); err != nil {
			return nil, "", err
		}
	}
	children := childCount(b.platform("x"))
	created, err := waitUntil(*timeout, func() (bool, error) { return b.allChildren(names, children) })
	if err != nil {
		return nil, "", fmt.Errorf("children of %d platforms: %w", n, err)
	}
	createdAt := time.Since(start)
	if _, err := waitUntil(*timeout, func() (bool, error) { return b.allReady(names) }); err != nil {
		return nil, "", fmt.Errorf("%d platforms Ready: %w", n, err)
	}
	readyAt := time.Since(start)
	rss := b.rss()
	cpu := b.cpuSeconds() - cpuBefore
	if err := b.saveHeapProfile(fmt.Sprintf("heap-%d.pb.gz", n)); err != nil {
		return nil, "", err
	}
	after, err := b.metrics()
	if err != nil {
		return nil, "", err
	}
	// Per child means per child the operator made: its own count (the NetworkPolicies and the
	// rest the baseline leaves out included), which its metrics report.
	made := 0.0
	for k, v := range after {
		if strings.HasPrefix(k, "child:") && strings.HasSuffix(k, " Created") {
			made += v - before[k]
		}
	}
	if made == 0 {
		made = float64(n * children)
	}
	cpuPer1000 := cpu / made * 1000
	writesPerChild := (after["writes"] - before["writes"]) / made
	b.breakdowns = append(b.breakdowns, writeBreakdown(n, int(made), before, after), memoryBreakdown(n, rss, after))
	fmt.Fprintf(os.Stderr, "   operator: children %v, Ready %v, RSS %.1f MiB\n", createdAt.Round(10*time.Millisecond), readyAt.Round(10*time.Millisecond), rss)
	_ = created

	// Baseline: the same objects, rendered by the same functions, created by a plain client in one
	// pass (no owner, no operator), then the time until their workloads are ready.
	base, err := b.namespaces("base", offset, n)
	if err != nil {
		return nil, "", err
	}
	bstart := time.Now()
	if err := b.baseline(base); err != nil {
		return nil, "", err
	}
	bcreated := time.Since(bstart)
	if _, err := waitUntil(*timeout, func() (bool, error) { return b.workloadsReady(base) }); err != nil {
		return nil, "", fmt.Errorf("baseline ready: %w", err)
	}
	bready := time.Since(bstart)
	fmt.Fprintf(os.Stderr, "   baseline: created %v, ready %v\n", bcreated.Round(10*time.Millisecond), bready.Round(10*time.Millisecond))
	row := fmt.Sprintf("| %d | %.0f / %d | %.2f s | %.2f s | %.2f s | %.2f s | %.2f | %.2f | %.1f MiB | %.2f CPU-s |\n", n, made, n*children,
		createdAt.Seconds(), readyAt.Seconds(), bcreated.Seconds(), bready.Seconds(), readyAt.Seconds()/bready.Seconds(), writesPerChild, rss, cpuPer1000)
	return names, row, nil
}

// rendered returns every child of a platform as unstructured objects without owner references.
func rendered(sp *scalestackv1alpha1.SocialPlatform) []*unstructured.Unstructured {
	// The same tiers the operator applies (no NetworkPolicies or monitoring: the baseline
	// controller does not create them either).
	data, _ := render.DataTier(sp, render.DataInputs{AgentImage: sp.Spec.Apps.Image})
	var acs []any
	for _, tier := range []render.Tier{
		render.SecretsTier(sp, map[string][]byte{"root-password": []byte("x"), "app-password": []byte("x"), "replication-password": []byte("x"), "exporter-password": []byte("x")}),
		data, render.CacheTier(sp), render.AppsTier(sp, ""), render.ArchiveTier(sp, ""), render.EdgeTier(sp),
	} {
		acs = append(acs, tier.Objects()...)
	}
	var out []*unstructured.Unstructured
	for _, ac := range acs {
		raw, _ := json.Marshal(ac)
		u := &unstructured.Unstructured{}
		_ = json.Unmarshal(raw, &u.Object)
		unstructured.RemoveNestedField(u.Object, "metadata", "ownerReferences")
		out = append(out, u)
	}
	return out
}

// relabel replaces a label's value wherever it appears in the object (its own labels, its pod
// template's, its selectors').
func relabel(v any, key, from, to string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if k == key && e == from {
				v[k] = to
				continue
			}
			relabel(e, key, from, to)
		}
	case []any:
		for _, e := range v {
			relabel(e, key, from, to)
		}
	}
}

func childCount(sp *scalestackv1alpha1.SocialPlatform) int { return len(rendered(sp)) }

func (b *bench) baseline(namespaces []string) error {
	ctx := context.Background()
	for _, ns := range namespaces {
		for _, u := range rendered(b.platform(ns)) {
			// Not ours: the operator's cache takes in every object labelled managed-by it, and the
			// baseline's would double what it holds for the rest of the run.
			relabel(u.Object, scalestackv1alpha1.LabelManagedBy, scalestackv1alpha1.ManagedByValue, "bench-baseline")
			if err := b.k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("bench-baseline"), client.ForceOwnership); err != nil {
				return fmt.Errorf("baseline %s %s: %w", u.GetKind(), u.GetName(), err)
			}
		}
	}
	return nil
}

func (b *bench) allChildren(namespaces []string, want int) (bool, error) {
	ctx := context.Background()
	counts := map[string]int{}
	sel := client.MatchingLabels{scalestackv1alpha1.LabelManagedBy: scalestackv1alpha1.ManagedByValue}
	lists := []client.ObjectList{&appsv1.DeploymentList{}, &appsv1.StatefulSetList{}, &corev1.ServiceList{}, &corev1.ConfigMapList{},
		&corev1.SecretList{}, &corev1.ServiceAccountList{}}
	for _, l := range lists {
		if err := b.cache.List(ctx, l, sel); err != nil {
			return false, err
		}
		_ = meta.EachListItem(l, func(o runtime.Object) error {
			counts[o.(client.Object).GetNamespace()]++
			return nil
		})
	}
	// PDBs, the Ingress and the CronJob: 7 more per platform, counted by their namespace's total.
	extra := 5 + 1 + 1
	for _, ns := range namespaces {
		if counts[ns] < want-extra {
			return false, nil
		}
	}
	return true, nil
}

func (b *bench) allReady(namespaces []string) (bool, error) {
	var l scalestackv1alpha1.SocialPlatformList
	if err := b.cache.List(context.Background(), &l); err != nil {
		return false, err
	}
	ready := map[string]bool{}
	for _, sp := range l.Items {
		if meta.IsStatusConditionTrue(sp.Status.Conditions, scalestackv1alpha1.ConditionReady) {
			ready[sp.Namespace] = true
		}
	}
	for _, ns := range namespaces {
		if !ready[ns] {
			return false, nil
		}
	}
	return true, nil
}

func (b *bench) workloadsReady(namespaces []string) (bool, error) {
	ctx := context.Background()
	want := map[string]bool{}
	for _, ns := range namespaces {
		want[ns] = true
	}
	var deps appsv1.DeploymentList
	var sts appsv1.StatefulSetList
	if err := b.cache.List(ctx, &deps); err != nil {
		return false, err
	}
	if err := b.cache.List(ctx, &sts); err != nil {
		return false, err
	}
	count := map[string]int{}
	for _, d := range deps.Items {
		if want[d.Namespace] && d.Status.ObservedGeneration >= d.Generation && d.Status.ReadyReplicas == ptr.Deref(d.Spec.Replicas, 1) && d.Status.UpdatedReplicas == ptr.Deref(d.Spec.Replicas, 1) {
			count[d.Namespace]++
		}
	}
	for _, s := range sts.Items {
		if want[s.Namespace] && s.Status.ObservedGeneration >= s.Generation && s.Status.ReadyReplicas == ptr.Deref(s.Spec.Replicas, 1) {
			count[s.Namespace]++
		}
	}
	for ns := range want {
		if count[ns] < 5+3 {
			return false, nil
		}
	}
	return true, nil
}

// steadyState pokes every platform (an annotation wakes a reconcile without changing the spec)
// and reports the operator's write requests per reconcile and reconcile latency.
func (b *bench) steadyState(namespaces []string) error {
	ctx := context.Background()
	time.Sleep(3 * time.Second)
	before, err := b.metrics()
	if err != nil {
		return err
	}
	for i, ns := range namespaces {
		sp := &scalestackv1alpha1.SocialPlatform{}
		if err := b.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "bench"}, sp); err != nil {
			return err
		}
		patch := client.MergeFrom(sp.DeepCopy())
		if sp.Annotations == nil {
			sp.Annotations = map[string]string{}
		}
		sp.Annotations["bench.scalestack.dev/poke"] = strconv.Itoa(i)
		if err := b.k8s.Patch(ctx, sp, patch); err != nil {
			return err
		}
	}
	var after map[string]float64
	if _, err := waitUntil(2*time.Minute, func() (bool, error) {
		after, err = b.metrics()
		return err == nil && after["reconcile_total"]-before["reconcile_total"] >= float64(len(namespaces)), err
	}); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	after, _ = b.metrics()
	reconciles := after["reconcile_total"] - before["reconcile_total"]
	writes := after["writes"] - before["writes"]
	fmt.Fprintf(&b.report, "Steady state: %d platforms poked, %.0f reconciles, %.0f write requests: **%.2f writes per reconcile**.\n\n",
		len(namespaces), reconciles, writes, writes/math.Max(reconciles, 1))
	fmt.Fprintf(&b.report, "Reconcile latency over the whole run (controller-runtime histogram): p50 %.1f ms, p99 %.1f ms.\n\n",
		after["p50"]*1000, after["p99"]*1000)
	b.report.WriteString("After the steady-state round:\n" + memoryBreakdown(len(namespaces), b.rss(), after) + "\n")
	return b.saveHeapProfile("heap-steady.pb.gz")
}

// unrelatedObjects creates ConfigMaps and Secrets the operator does not own and reports its
// memory before and after.
func (b *bench) unrelatedObjects() error {
	ctx := context.Background()
	before := b.rss()
	if err := b.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "unrelated"}}); err != nil {
		return err
	}
	g := errgroup.Group{}
	g.SetLimit(32)
	payload := strings.Repeat("x", 1024)
	for i := range *unrelated {
		g.Go(func() error {
			meta := metav1.ObjectMeta{Namespace: "unrelated", Name: fmt.Sprintf("obj-%05d", i)}
			if i%2 == 0 {
				return b.k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{"data": payload}})
			}
			return b.k8s.Create(ctx, &corev1.Secret{ObjectMeta: meta, StringData: map[string]string{"data": payload}})
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	time.Sleep(10 * time.Second)
	after := b.rss()
	fmt.Fprintf(&b.report, "Memory with %d unrelated ConfigMaps and Secrets (1 KiB each): RSS %.1f MiB before, %.1f MiB after (%+.1f MiB).\n",
		*unrelated, before, after, after-before)
	return nil
}

// cpuSeconds is the CPU time (user and system) the operator process has used so far.
func (b *bench) cpuSeconds() float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", b.opPID))
	if err != nil {
		return -1
	}
	// The fields after the command (which may hold spaces) start after its closing parenthesis;
	// utime and stime are the 14th and 15th fields, in clock ticks (100 per second on Linux).
	rest := string(raw[strings.LastIndexByte(string(raw), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return -1
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

// memoryBreakdown says where the operator's resident memory is, from the Go runtime's own
// figures: the heap's live objects and garbage, the heap goal of the next collection, heap pages
// kept but free, stacks, and the rest (the binary's pages, the runtime's own structures).
func memoryBreakdown(n int, rss float64, m map[string]float64) string {
	mib := func(k string) float64 { return m["mem:"+k] / (1 << 20) }
	return fmt.Sprintf("- %d platforms, memory: RSS %.1f MiB; heap objects (live and not yet collected) %.1f MiB, next collection at %.1f MiB; heap spans in use %.1f MiB, free but kept %.1f MiB; stacks %.1f MiB; the rest of RSS (binary, runtime) %.1f MiB.\n",
		n, rss, mib("heap_alloc"), mib("next_gc"), mib("heap_inuse"), mib("heap_idle")-mib("heap_released"), mib("stack_inuse"),
		rss-mib("heap_inuse")-(mib("heap_idle")-mib("heap_released"))-mib("stack_inuse"))
}

// saveHeapProfile writes the operator's heap profile into -profile's directory, when it is set.
func (b *bench) saveHeapProfile(name string) error {
	if *profileDir == "" {
		return nil
	}
	if err := os.MkdirAll(*profileDir, 0o755); err != nil {
		return err
	}
	resp, err := http.Get(b.pprofURL + "/heap")
	if err != nil {
		return fmt.Errorf("the operator's heap profile: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the operator's heap profile: %s", resp.Status)
	}
	f, err := os.Create(filepath.Join(*profileDir, name))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// rss is the operator's resident memory in MiB.
func (b *bench) rss() float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", b.opPID))
	if err != nil {
		return -1
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(s.Text())[1], 64)
			return kb / 1024
		}
	}
	return -1
}

// metrics reads the operator's reconcile count, write requests and reconcile latency quantiles.
func (b *bench) metrics() (map[string]float64, error) {
	resp, err := http.Get(b.metricsURL)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, name := range []string{"heap_alloc", "next_gc", "heap_inuse", "heap_idle", "heap_released", "stack_inuse"} {
		for _, m := range families["go_memstats_"+name+"_bytes"].GetMetric() {
			out["mem:"+name] = m.GetGauge().GetValue()
		}
	}
	for _, m := range families["controller_runtime_reconcile_total"].GetMetric() {
		out["reconcile_total"] += m.GetCounter().GetValue()
	}
	for _, m := range families["rest_client_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "method" && l.GetValue() != "GET" {
				out["writes"] += m.GetCounter().GetValue()
				out["method:"+l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	for _, m := range families["scalestack_child_writes_total"].GetMetric() {
		var kind, result string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "kind":
				kind = l.GetValue()
			case "result":
				result = l.GetValue()
			}
		}
		out["child:"+kind+" "+result] += m.GetCounter().GetValue()
	}
	// The preflight's server-side dry-runs are PATCH requests that store nothing: counted apart.
	for _, m := range families["scalestack_preflight_dry_runs_total"].GetMetric() {
		out["writes"] -= m.GetCounter().GetValue()
		out["dry_runs"] += m.GetCounter().GetValue()
	}
	type bucket struct{ le, count float64 }
	var buckets []bucket
	var total float64
	for _, m := range families["controller_runtime_reconcile_time_seconds"].GetMetric() {
		h := m.GetHistogram()
		total += float64(h.GetSampleCount())
		for _, bk := range h.GetBucket() {
			buckets = append(buckets, bucket{bk.GetUpperBound(), float64(bk.GetCumulativeCount())})
		}
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].le < buckets[j].le })
	q := func(p float64) float64 {
		for _, bk := range buckets {
			if bk.count >= p*total {
				return bk.le
			}
		}
		return math.Inf(1)
	}
	out["p50"], out["p99"] = q(0.5), q(0.99)
	return out, nil
}

// writeBreakdown says what the write requests between two metric readings were: the children
// the reconciler created or changed, by kind, and the requests by HTTP method (the rest are the
// finalizer, status, events and deletions).
func writeBreakdown(platforms, children int, before, after map[string]float64) string {
	delta := func(k string) float64 { return after[k] - before[k] }
	var kinds, methods []string
	applied := 0.0
	for k := range after {
		d := delta(k)
		switch {
		case d == 0:
		case strings.HasPrefix(k, "child:"):
			kinds = append(kinds, fmt.Sprintf("%s %.0f", strings.TrimPrefix(k, "child:"), d))
			applied += d
		case strings.HasPrefix(k, "method:"):
			methods = append(methods, fmt.Sprintf("%s %.0f", strings.TrimPrefix(k, "method:"), d))
		}
	}
	sort.Strings(kinds)
	sort.Strings(methods)
	return fmt.Sprintf("- %d platforms (%d children): %.0f write requests; %.0f of them applies that created or changed a child (%s); by method (with %.0f preflight dry-runs): %s; other writes (finalizer, status, events, deletions): %.0f.\n",
		platforms, children, delta("writes"), applied, strings.Join(kinds, ", "), delta("dry_runs"), strings.Join(methods, ", "), delta("writes")-applied)
}

func waitUntil(d time.Duration, cond func() (bool, error)) (bool, error) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ok, err := cond()
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false, fmt.Errorf("not done within %v", d)
}
