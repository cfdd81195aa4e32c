//go:build realnode

// Package realnode runs the whole provisioned stack in real containers: the local control plane
// with a real node (hack/local-node.sh: containerd, runc, CNI bridge, kubelet, kube-proxy, CoreDNS,
// local-path-provisioner), every image built here (hack/build-images.sh), the operator as its own
// ServiceAccount with exactly config/rbac, and a SocialPlatform whose MariaDB shards, Redis, kfake
// (the Kafka stand-in, as a pod) and five services really run. Needs root.
package realnode

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-sql-driver/mysql"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pkg/agentapi"
	"github.com/scalestack/scalestack/pkg/backup"
	stack "github.com/scalestack/scalestack/pkg/platform"
	"github.com/scalestack/scalestack/pkg/shard"
)

var (
	k8s                 client.Client
	repo, workDir       string
	kubectl, kubeconfig string
	// stopHostOperator stops the operator run as a host process (once; the installed-operator
	// test stops it to hand over to the operator in a pod).
	stopHostOperator func()
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) (code int) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "the real-node e2e needs root (kubelet, containerd, network namespaces, iptables)")
		return 1
	}
	var err error
	if repo, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		panic(err)
	}
	if workDir, err = os.MkdirTemp("", "scalestack-realnode-"); err != nil {
		panic(err)
	}
	defer func() {
		if code != 0 {
			fmt.Fprintf(os.Stderr, "real-node e2e failed; logs are kept in %s\n", workDir)
			return
		}
		_ = os.RemoveAll(workDir)
	}()
	clusterDir := filepath.Join(workDir, "cluster")
	cluster := testutil.LocalCluster(repo, clusterDir, "real")
	kubeconfig, err = cluster("up")
	defer func() {
		// Everything the node made must be gone afterwards: containers, namespaces, chains, mounts.
		if _, err := cluster("down"); err != nil {
			fmt.Fprintln(os.Stderr, "cluster down:", err)
			code = 1
		}
		if left := leftovers(clusterDir); left != "" {
			fmt.Fprintln(os.Stderr, "the real node left behind:", left)
			code = 1
		}
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the local control plane with a real node:", err)
		return 1
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctrllog.SetLogger(logr.Discard())
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(scalestackv1alpha1.AddToScheme(scheme))
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubectl = filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	if out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side", "-f", filepath.Join(repo, "config", "crd", "bases"), "-f", filepath.Join(repo, "hack", "crds")).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "installing CRDs: %v\n%s", err, out)
		return 1
	}
	if out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "wait", "--for", "condition=established", "--timeout=60s", "crd/socialplatforms.scalestack.dev").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "waiting for CRDs: %v\n%s", err, out)
		return 1
	}
	manager := filepath.Join(workDir, "manager")
	build := exec.Command("go", "build", "-o", manager, ".")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the operator: %v\n%s", err, out)
		return 1
	}
	opKubeconfig, err := testutil.ServiceAccountKubeconfig(kubectl, kubeconfig, repo, workDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "operator credentials:", err)
		return 1
	}
	logFile, err := os.Create(filepath.Join(workDir, "operator.log"))
	if err != nil {
		panic(err)
	}
	op := exec.Command(manager, "--kubeconfig", opKubeconfig, "--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0",
		"--log-format=json", "--leader-elect=false")
	op.Stdout, op.Stderr = logFile, logFile
	if err := op.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting the operator:", err)
		return 1
	}
	var stopOnce sync.Once
	stopHostOperator = func() { stopOnce.Do(func() { _ = op.Process.Signal(os.Interrupt); _ = op.Wait() }) }
	defer stopHostOperator()
	if code = m.Run(); code != 0 {
		keepPodLogs(filepath.Join(workDir, "pods"))
	}
	return code
}

// keepPodLogs saves every container's log of every pod (the current and the previous instance)
// before the node is torn down, for a failure's post-mortem.
func keepPodLogs(dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	pods := &corev1.PodList{}
	if err := k8s.List(context.Background(), pods); err != nil {
		return
	}
	for _, p := range pods.Items {
		for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			for _, previous := range []bool{false, true} {
				args := []string{"--kubeconfig", kubeconfig, "logs", "-n", p.Namespace, p.Name, "-c", c.Name, "--timestamps"}
				suffix := ""
				if previous {
					args, suffix = append(args, "--previous"), ".previous"
				}
				out, err := exec.Command(kubectl, args...).CombinedOutput()
				if err != nil && previous {
					continue
				}
				_ = os.WriteFile(filepath.Join(dir, p.Namespace+"_"+p.Name+"_"+c.Name+suffix+".log"), out, 0o644)
			}
		}
	}
}

// leftovers names what the node left on the machine after down: its directory, its bridge,
// network namespaces, mounts under the cluster directory, KUBE-/CNI- chains.
func leftovers(clusterDir string) string {
	var left []string
	if _, err := os.Stat(filepath.Join(clusterDir, "node")); err == nil {
		left = append(left, "the node directory")
	}
	if _, err := os.Stat("/sys/class/net/scalestack0"); err == nil {
		left = append(left, "the bridge scalestack0")
	}
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil && bytes.Contains(mounts, []byte(clusterDir)) {
		left = append(left, "mounts under "+clusterDir)
	}
	for _, ipt := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, _ := exec.Command(ipt, "-w", "-t", table, "-S").Output()
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, "-N KUBE-") || strings.HasPrefix(l, "-N CNI-") {
					left = append(left, ipt+" "+table+": "+l)
				}
			}
		}
	}
	return strings.Join(left, "; ")
}

// serviceAccountKubeconfig installs config/rbac and returns a kubeconfig of the
// scalestack-operator ServiceAccount.
func poll(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	testutil.Poll(t, what, timeout, time.Second, cond)
}

func kubectlOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// localSample is config/local-sample (kfake in a pod, Debian-built MariaDB and Redis, one replica
// per service) rendered by kustomize into namespace ns.
func applyLocalSample(t *testing.T, ns string) {
	t.Helper()
	rendered := kubectlOut(t, "kustomize", filepath.Join(repo, "config", "local-sample"))
	cmd := exec.Command(kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side", "-n", ns, "-f", "-")
	cmd.Stdin = strings.NewReader(rendered)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("applying the local sample: %v\n%s", err, out)
	}
}

func platform(t *testing.T, ns string) *scalestackv1alpha1.SocialPlatform {
	t.Helper()
	sp := &scalestackv1alpha1.SocialPlatform{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "demo"}, sp); err != nil {
		t.Fatal(err)
	}
	return sp
}

func condition(sp *scalestackv1alpha1.SocialPlatform, typ string) *metav1.Condition {
	return meta.FindStatusCondition(sp.Status.Conditions, typ)
}

func waitReady(t *testing.T, ns string, timeout time.Duration) {
	t.Helper()
	poll(t, "SocialPlatform Ready on the real node", timeout, func() error {
		sp := platform(t, ns)
		c := condition(sp, scalestackv1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue || sp.Status.ObservedGeneration != sp.Generation {
			return fmt.Errorf("Ready is %+v", c)
		}
		return nil
	})
}

// podIP returns the IP of a running pod.
func podIP(t *testing.T, ns, name string) string {
	t.Helper()
	p := &corev1.Pod{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
		t.Fatal(err)
	}
	if p.Status.PodIP == "" {
		t.Fatalf("pod %s has no IP", name)
	}
	return p.Status.PodIP
}

// appDB connects to a shard pod as the apps' account (root is only for 127.0.0.1 in the pod).
func appDB(t *testing.T, ns, pod, password string) *sql.DB {
	t.Helper()
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.Timeout = "app", password, "tcp", podIP(t, ns, pod)+":3306", 5*time.Second
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

type api struct {
	t     *testing.T
	base  string
	token string
}

func (a *api) do(method, path string, in, out any) int {
	a.t.Helper()
	code, err := a.try(method, path, in, out)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	return code
}

// try is do for requests that may fail while the stack recovers: a transport error is returned.
func (a *api) try(method, path string, in, out any) (int, error) {
	a.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, body)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	res, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = res.Body.Close() }()
	raw, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return res.StatusCode, fmt.Errorf("decoding %q: %w", raw, err)
		}
	}
	if res.StatusCode >= 300 {
		a.t.Logf("%s %s: %d %s", method, path, res.StatusCode, raw)
	}
	return res.StatusCode, nil
}

// servicesRouted waits until every app Service routes to a ready pod. Ready means the pods are
// ready; kube-proxy programs their Services' endpoints a moment later (a Service without
// endpoints yet REJECTs: "connection refused"). Checked from the host, through the same iptables
// rules pods use.
func servicesRouted(t *testing.T, ns string, sp *scalestackv1alpha1.SocialPlatform) {
	t.Helper()
	// A new connection each try: one kept alive from before kube-proxy programmed the Service
	// would never be routed again.
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	for _, c := range scalestackv1alpha1.AppComponents {
		name := sp.ComponentName(c)
		start, last := time.Now(), error(nil)
		for time.Since(start) < time.Minute {
			if last = serviceAnswers(hc, ns, name); last == nil {
				break
			}
			time.Sleep(time.Second)
		}
		if last != nil {
			t.Logf("Service %s not routed after 1m0s: %v", name, last)
			logRouting(t, ns, name)
			t.FailNow()
		}
		t.Logf("Service %s routed by kube-proxy after %s", name, time.Since(start).Round(time.Second))
	}
}

func serviceAnswers(hc *http.Client, ns, name string) error {
	s := &corev1.Service{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		return err
	}
	resp, err := hc.Get(fmt.Sprintf("http://%s:%d/readyz", s.Spec.ClusterIP, s.Spec.Ports[0].Port))
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s:%d/readyz: %d %q", s.Spec.ClusterIP, s.Spec.Ports[0].Port, resp.StatusCode, body)
	}
	return nil
}

// logRouting shows what routes a Service: its EndpointSlices, the pods with their addresses, and
// kube-proxy's nat rules for it.
func logRouting(t *testing.T, ns, name string) {
	t.Helper()
	eps := &discoveryv1.EndpointSliceList{}
	if err := k8s.List(context.Background(), eps, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: name}); err != nil {
		t.Logf("EndpointSlices: %v", err)
	}
	for _, es := range eps.Items {
		for _, e := range es.Endpoints {
			t.Logf("EndpointSlice %s: %v ready=%v serving=%v pod=%v", es.Name, e.Addresses,
				ptr.Deref(e.Conditions.Ready, false), ptr.Deref(e.Conditions.Serving, false), e.TargetRef)
		}
	}
	pods := &corev1.PodList{}
	if err := k8s.List(context.Background(), pods, client.InNamespace(ns)); err == nil {
		for _, p := range pods.Items {
			t.Logf("pod %s %s ip=%s", p.Name, p.Status.Phase, p.Status.PodIP)
		}
	}
	out, _ := exec.Command("iptables-save", "-t", "nat").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, ns+"/"+name) {
			t.Log(line)
		}
	}
}

// backsUpToTheStore checks the local sample's backups (spec.database.backup to SeaweedFS in a pod,
// config/local-sample/objectstore.yaml, which the host reaches through its fixed ClusterIP): every
// shard's first full backup was taken on a replica and is in the bucket, every shard's primary
// archives its binary logs, BackupReady says so; then an on-demand backup (the annotation) of
// every shard completes.
func backsUpToTheStore(t *testing.T, ns string, author *api) {
	ctx := context.Background()
	if _, err := author.try("POST", "/api/posts", map[string]string{"body": "archived"}, nil); err != nil {
		t.Fatal(err)
	}
	poll(t, "BackupReady: every shard has a full backup and its primary archives", 5*time.Minute, func() error {
		c := condition(platform(t, ns), scalestackv1alpha1.ConditionBackupReady)
		if c == nil || c.Reason != scalestackv1alpha1.ReasonBackedUp {
			return fmt.Errorf("BackupReady is %+v", c)
		}
		return nil
	})
	sp := platform(t, ns)
	store, err := backup.Open(backup.StoreConfig{Endpoint: "10.100.0.93:8333", Insecure: true, Bucket: "backups", Prefix: ns + "/" + sp.Name,
		AccessKey: "local", SecretKey: "local-store-accepts-any-key"})
	if err != nil {
		t.Fatal(err)
	}
	firsts := map[int]string{}
	for i, sh := range sp.Status.Shards {
		// The first full backup is taken as soon as the shard is ready: on a replica if one is
		// ready by then, else on the primary (a new shard's replicas may still be starting).
		full := sh.Backup.LastFull
		if full == nil {
			t.Errorf("shard %d reports no full backup", i)
			continue
		}
		firsts[i] = full.ID
		bases, err := store.Bases(ctx, i)
		if err != nil || len(bases) == 0 || bases[len(bases)-1].ID != full.ID {
			t.Errorf("shard %d: the store holds %+v (%v), the status names %s", i, bases, err, full.ID)
			continue
		}
		logBackup(t, "first", i, bases[len(bases)-1])
	}
	mc, err := minio.New("10.100.0.93:8333", &minio.Options{Creds: credentials.NewStaticV4("local", "local-store-accepts-any-key", ""), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(sp.Status.Shards) {
		prefix := fmt.Sprintf("%s/%s/shard-%d/binlog/", ns, sp.Name, i)
		n, size := 0, int64(0)
		for obj := range mc.ListObjects(ctx, "backups", minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if obj.Err != nil {
				t.Fatal(obj.Err)
			}
			n, size = n+1, size+obj.Size
		}
		if n == 0 {
			t.Errorf("no binary log of shard %d in the store under %s", i, prefix)
		}
		t.Logf("real pods: shard %d has %d binary logs (%d bytes) in the store", i, n, size)
	}

	// On demand, once every shard's replicas replicate again (the switchover back just before may
	// still be rebuilding or reconnecting one; a backup asked for meanwhile rightly runs on the
	// primary).
	poll(t, "every shard's primary and replicas ready before the on-demand backup", 5*time.Minute, func() error {
		for i, sh := range platform(t, ns).Status.Shards {
			if !sh.PrimaryReady || sh.ReadyReplicas < sh.Replicas {
				return fmt.Errorf("shard %d: primary ready %v, %d/%d replicas ready", i, sh.PrimaryReady, sh.ReadyReplicas, sh.Replicas)
			}
		}
		return nil
	})
	sp = platform(t, ns)
	asked := time.Now().UTC().Truncate(time.Second)
	patch := client.MergeFrom(sp.DeepCopy())
	metav1.SetMetaDataAnnotation(&sp.ObjectMeta, scalestackv1alpha1.AnnotationBackupRequested, asked.Format(time.RFC3339))
	if err := k8s.Patch(ctx, sp, patch); err != nil {
		t.Fatal(err)
	}
	poll(t, "an on-demand full backup of every shard", 5*time.Minute, func() error {
		cur := platform(t, ns)
		for i, sh := range cur.Status.Shards {
			if sh.Backup == nil || sh.Backup.LastFull == nil || sh.Backup.LastFull.ID <= firsts[i] || sh.Backup.LastFull.ID < backup.BaseID(asked) {
				return fmt.Errorf("shard %d: %+v", i, sh.Backup)
			}
		}
		return nil
	})
	// Every replica is ready now: the backups ran on them, not on the primaries.
	for i, sh := range platform(t, ns).Status.Shards {
		if src := sh.Backup.LastFull.Source; src == sh.Primary {
			t.Errorf("shard %d's on-demand backup ran on its primary %s although its replica was ready", i, src)
		}
	}
	t.Logf("real pods: an on-demand backup of every shard completed %v after the annotation", time.Since(asked).Round(time.Second))
	for i := range len(sp.Status.Shards) {
		if bases, err := store.Bases(ctx, i); err == nil && len(bases) > 0 {
			logBackup(t, "on demand", i, bases[len(bases)-1])
		}
	}
}

func logBackup(t *testing.T, what string, shard int, b backup.Manifest) {
	t.Helper()
	secs := b.FinishedAt.Sub(b.StartedAt).Seconds()
	t.Logf("real pods: shard %d's %s full backup on %s: %d bytes in %.1f s (%.1f MB/s, upload included), GTID %s",
		shard, what, b.Source, b.Size, secs, float64(b.Size)/1e6/max(secs, 0.001), b.GTID)
}

// agentStatus asks a database pod's agent for its report (GET /v1/status).
func agentStatus(t *testing.T, ns string, sp *scalestackv1alpha1.SocialPlatform, pod string) (agentapi.Status, error) {
	t.Helper()
	secret := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: sp.DatabaseSecretName()}, secret); err != nil {
		return agentapi.Status{}, err
	}
	c := agentapi.Client{HTTP: &http.Client{Timeout: 3 * time.Second}, Token: agentapi.Token(string(secret.Data["replication-password"]))}
	p := &corev1.Pod{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: pod}, p); err != nil {
		return agentapi.Status{}, err
	}
	if p.Status.PodIP == "" {
		return agentapi.Status{}, fmt.Errorf("%s has no IP", pod)
	}
	return c.Status(context.Background(), fmt.Sprintf("http://%s:%d", p.Status.PodIP, stack.AgentPort))
}

// logAgents logs what the agents of the named pods report, for a failure's post-mortem.
func logAgents(t *testing.T, ns string, sp *scalestackv1alpha1.SocialPlatform, pods ...string) {
	t.Helper()
	for _, name := range pods {
		st, err := agentStatus(t, ns, sp, name)
		out, _ := json.Marshal(st)
		t.Logf("agent of %s: %s %v", name, out, err)
	}
}

// agentsReady returns an error unless the agents of the named pods all report themselves ready.
func agentsReady(t *testing.T, ns string, sp *scalestackv1alpha1.SocialPlatform, pods ...string) error {
	t.Helper()
	for _, name := range pods {
		st, err := agentStatus(t, ns, sp, name)
		if err != nil {
			return fmt.Errorf("agent of %s: %w", name, err)
		}
		if !st.Ready {
			return fmt.Errorf("agent of %s: %s not ready: %s", name, st.Role, st.Reason)
		}
	}
	return nil
}

// hasEventFor reports whether the namespace has an event of reason about the named object.
func hasEventFor(t *testing.T, ns, reason, name string) bool {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := k8s.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		t.Logf("listing events: %v", err)
		return false
	}
	for _, e := range list.Items {
		if e.Reason == reason && (e.Regarding.Name == name || strings.Contains(e.Note, name)) {
			return true
		}
	}
	return false
}

// serverPID finds a pod's process named comm on this machine (the real node is the host): the
// one whose cgroup path names the pod's UID. Only the project's own pod is ever matched.
func serverPID(t *testing.T, ns, pod, comm string) int {
	t.Helper()
	p := &corev1.Pod{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: pod}, p); err != nil {
		t.Fatal(err)
	}
	uid := string(p.UID)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		name, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(name)) != comm {
			continue
		}
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if strings.Contains(string(cg), uid) || strings.Contains(string(cg), strings.ReplaceAll(uid, "-", "_")) {
			return pid
		}
	}
	t.Fatalf("no %s process of pod %s (uid %s) on this machine", comm, pod, uid)
	return 0
}

// failOverAndBack freezes the primary of shard s (SIGSTOP to its server: the pod stays, its agent
// answers, the server does not), waits for the operator to promote the replica, writes through the
// gateway, resumes the old primary and sees it rejoin as a replica, then asks for a switchover back
// on the new primary's pod.
func failOverAndBack(t *testing.T, ns string, sp *scalestackv1alpha1.SocialPlatform, s int32, author *api, appPW string, before []int64) {
	ctx := context.Background()
	// The primary of record now: the deleted primary pod of the step before may already have been
	// failed over (its pod took longer than failover.after to be ready again).
	sh := platform(t, ns).Status.Shards[s]
	frozen, promoted, epoch := sh.Primary, sp.ShardReplicasName(s)+"-0", sh.Epoch
	if frozen == promoted {
		promoted = sp.ShardDefaultPrimaryPod(s)
	}
	t.Logf("shard %d: primary of record %s at epoch %d", s, frozen, epoch)
	// The freeze is of a primary whose replicas replicate from it (a replica still reconnecting to a
	// just restarted primary lacks what it commits meanwhile, and a failover then would rightly be
	// refused or lose them).
	// The pods' readiness lags their agents' verdicts by up to two probe periods, so the agents
	// are asked too.
	poll(t, "shard's replicas replicating before the freeze", 3*time.Minute, func() error {
		if sh := platform(t, ns).Status.Shards[s]; sh.ReadyReplicas < sh.Replicas || !sh.PrimaryReady {
			return fmt.Errorf("shard %d: primary ready %v, %d/%d replicas ready", s, sh.PrimaryReady, sh.ReadyReplicas, sh.Replicas)
		}
		return agentsReady(t, ns, sp, frozen, promoted)
	})
	// A steady write load through the gateway from before the freeze until writes succeed again:
	// every post it was told was created must be on the new primary.
	load := startPostLoad(author)
	defer load.stop()
	time.Sleep(2 * time.Second)
	logAgents(t, ns, sp, frozen, promoted)
	pid := serverPID(t, ns, frozen, "mariadbd")
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	frozeAt := time.Now()
	primaryIs := func(pod string, epoch int64) func() error {
		return func() error {
			cur := platform(t, ns)
			if int(s) >= len(cur.Status.Shards) {
				return fmt.Errorf("no status for shard %d", s)
			}
			if sh := cur.Status.Shards[s]; sh.Primary != pod || sh.Epoch != epoch {
				return fmt.Errorf("shard %d: primary %s epoch %d", s, sh.Primary, sh.Epoch)
			}
			return nil
		}
	}
	poll(t, "the operator promotes "+promoted, 3*time.Minute, primaryIs(promoted, epoch+1))
	t.Logf("real pods: %s promoted %v after %s froze (failover.after 10s)", promoted, time.Since(frozeAt).Round(100*time.Millisecond), frozen)

	var after struct {
		ID string `json:"id"`
	}
	poll(t, "a post on the failed-over shard", 2*time.Minute, func() error {
		code, err := author.try("POST", "/api/posts", map[string]string{"body": "after the failover"}, &after)
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("post: %d %w", code, err)
		}
		return nil
	})
	t.Logf("real pods: writes to the shard succeed again %v after the freeze", time.Since(frozeAt).Round(100*time.Millisecond))
	var afterID int64
	if _, err := fmt.Sscan(after.ID, &afterID); err != nil {
		t.Fatal(err)
	}
	acked, failed := load.stop()
	t.Logf("real pods: %d posts acknowledged under the load (%d failed while the shard had no primary)", len(acked), failed)
	newDB := appDB(t, ns, promoted, appPW)
	missing := 0
	for _, id := range append(append(before, afterID), acked...) {
		var body string
		if err := newDB.QueryRowContext(ctx, "SELECT body FROM social.posts WHERE id = ?", id).Scan(&body); err != nil {
			t.Errorf("acknowledged post %d on the new primary: %v", id, err)
			missing++
		}
	}
	if missing > 0 {
		logAgents(t, ns, sp, frozen, promoted)
		keepPodLogs(filepath.Join(workDir, "pods-at-failover"))
	}

	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	// It rejoins as it is, or, when it had commits of its own that no replica received before the
	// freeze (its binary log ran ahead of the others'), the operator has it rebuilt from a copy of
	// the new primary: its pod is recreated, so it is looked up afresh on every try.
	thawed := time.Now()
	poll(t, "the old primary rejoins as a replica", 4*time.Minute, func() error {
		p := &corev1.Pod{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: frozen}, p); err != nil || p.Status.PodIP == "" {
			return fmt.Errorf("pod %s: ip %q %w", frozen, p.Status.PodIP, err)
		}
		c := mysql.NewConfig()
		c.User, c.Passwd, c.Net, c.Addr, c.Timeout = "app", appPW, "tcp", p.Status.PodIP+":3306", 5*time.Second
		oldDB, err := sql.Open("mysql", c.FormatDSN())
		if err != nil {
			return err
		}
		defer func() { _ = oldDB.Close() }()
		var body string
		if err := oldDB.QueryRowContext(ctx, "SELECT body FROM social.posts WHERE id = ?", afterID).Scan(&body); err != nil {
			return fmt.Errorf("the post written after the failover: %w", err)
		}
		var ro int
		if err := oldDB.QueryRowContext(ctx, "SELECT @@read_only").Scan(&ro); err != nil || ro != 1 {
			return fmt.Errorf("read_only %d %w", ro, err)
		}
		return nil
	})
	how := "as it was"
	if hasEventFor(t, ns, scalestackv1alpha1.EventReplicaRebuilding, frozen) {
		how = "after a rebuild from a copy of the new primary (it had diverged)"
	}
	t.Logf("real pods: the old primary rejoined %s, %v after the thaw", how, time.Since(thawed).Round(100*time.Millisecond))
	waitReady(t, ns, 5*time.Minute)

	kubectlOut(t, "annotate", "pod", "-n", ns, promoted, scalestackv1alpha1.AnnotationSwitchover+"="+frozen)
	switchAt := time.Now()
	poll(t, "the switchover back to "+frozen, 2*time.Minute, primaryIs(frozen, epoch+2))
	t.Logf("real pods: switchover back recorded %v after the request", time.Since(switchAt).Round(100*time.Millisecond))
	poll(t, "a post after the switchover", 2*time.Minute, func() error {
		code, err := author.try("POST", "/api/posts", map[string]string{"body": "after the switchover"}, &after)
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("post: %d %w", code, err)
		}
		return nil
	})
	waitReady(t, ns, 5*time.Minute)
}

// postLoad posts through the gateway every 50 ms until stopped, and keeps the IDs of the posts
// the API acknowledged (201).
type postLoad struct {
	done  chan struct{}
	wg    sync.WaitGroup
	acked []int64
	fails int
}

func startPostLoad(author *api) *postLoad {
	l := &postLoad{done: make(chan struct{})}
	hc := &http.Client{Timeout: 5 * time.Second}
	l.wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-l.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			b, _ := json.Marshal(map[string]string{"body": fmt.Sprintf("under load %d", i)})
			req, _ := http.NewRequest("POST", author.base+"/api/posts", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+author.token)
			res, err := hc.Do(req)
			if err != nil {
				l.fails++
				continue
			}
			var out struct {
				ID string `json:"id"`
			}
			raw, _ := io.ReadAll(res.Body)
			_ = res.Body.Close()
			var id int64
			if res.StatusCode != http.StatusCreated || json.Unmarshal(raw, &out) != nil {
				l.fails++
				continue
			}
			if _, err := fmt.Sscan(out.ID, &id); err == nil {
				l.acked = append(l.acked, id)
			}
		}
	})
	return l
}

// stop ends the load and returns what was acknowledged and how many requests failed.
func (l *postLoad) stop() ([]int64, int) {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	l.wg.Wait()
	return l.acked, l.fails
}

type tokenResponse struct {
	ID    string `json:"id"`
	Token string `json:"token"`
}

type feed struct {
	Posts []struct {
		ID string `json:"id"`
	} `json:"posts"`
}

func signup(t *testing.T, base, handle string) (*api, string) {
	t.Helper()
	anon := &api{t: t, base: base}
	var tr tokenResponse
	body := map[string]string{"handle": handle, "email": handle + "@example.com", "password": "correct horse battery", "display_name": handle}
	// Ready means every pod is ready; kube-proxy programs a new endpoint into the ClusterIP rules
	// a moment later, so right after Ready the gateway can still find the user service's
	// ClusterIP refusing connections (503, nothing reached the user service): try again briefly.
	poll(t, "signup "+handle, 30*time.Second, func() error {
		if code := anon.do("POST", "/api/signup", body, &tr); code != http.StatusCreated {
			if code == http.StatusServiceUnavailable {
				return fmt.Errorf("signup %s: %d", handle, code)
			}
			t.Fatalf("signup %s: %d", handle, code)
		}
		return nil
	})
	return &api{t: t, base: base, token: tr.Token}, tr.ID
}

func TestStackRunsInRealPods(t *testing.T) {
	ctx := context.Background()
	const ns = "scalestack-demo"
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}}}); err != nil {
		t.Fatal(err)
	}
	applyLocalSample(t, ns)
	waitReady(t, ns, 12*time.Minute)

	sp := platform(t, ns)
	// Every pod of the namespace runs for real on the real node, all containers ready, under
	// Pod Security "restricted" (the namespace enforces it: a pod that broke it would not exist).
	pods := &corev1.PodList{}
	if err := k8s.List(ctx, pods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded {
			continue // the archiver's jobs
		}
		running++
		ready := p.Status.Phase == corev1.PodRunning
		for _, cs := range p.Status.ContainerStatuses {
			ready = ready && cs.Ready && cs.State.Running != nil
		}
		restarts := int32(0)
		for _, cs := range p.Status.ContainerStatuses {
			restarts += cs.RestartCount
		}
		if restarts > 0 {
			t.Logf("pod %s restarted %d times on its way to Ready", p.Name, restarts)
		}
		if !ready || p.Spec.NodeName != "scalestack-node-0" {
			t.Errorf("pod %s: phase %s node %s, containers %+v", p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.ContainerStatuses)
		}
	}
	// 5 services, 2 shards x (primary + replica), Redis, kfake, the SMTP sink, the object store.
	if running != 13 {
		t.Errorf("%d pods running, want 13", running)
	}

	servicesRouted(t, ns, sp)

	// The gateway, from the host, through its Service's ClusterIP (kube-proxy's iptables rules).
	svc := &corev1.Service{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: sp.ComponentName(scalestackv1alpha1.ComponentGateway)}, svc); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port)
	alice, aliceID := signup(t, base, "alice")
	bob, bobID := signup(t, base, "bob")
	if code := (&api{t: t, base: base}).do("POST", "/api/login", map[string]string{"handle": "alice", "password": "correct horse battery"}, &tokenResponse{}); code != http.StatusOK {
		t.Fatalf("login: %d", code)
	}
	if code := bob.do("PUT", "/api/users/"+aliceID+"/follow", nil, nil); code >= 300 {
		t.Fatalf("follow: %d", code)
	}
	var post struct {
		ID string `json:"id"`
	}
	if code := alice.do("POST", "/api/posts", map[string]string{"body": "hello from a real pod"}, &post); code != http.StatusCreated {
		t.Fatalf("post: %d", code)
	}
	poll(t, "alice's post in bob's feed (fan-out through Kafka by the worker pod)", 2*time.Minute, func() error {
		var f feed
		if code := bob.do("GET", "/api/feed", nil, &f); code != http.StatusOK {
			return fmt.Errorf("feed: %d", code)
		}
		for _, p := range f.Posts {
			if p.ID == post.ID {
				return nil
			}
		}
		return fmt.Errorf("feed has %d posts, not %s", len(f.Posts), post.ID)
	})

	// The post is on the primary of the shard its ID names, and replicated to that shard's replica.
	secret := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: sp.DatabaseSecretName()}, secret); err != nil {
		t.Fatal(err)
	}
	appPW := string(secret.Data["app-password"])
	var id int64
	if _, err := fmt.Sscan(post.ID, &id); err != nil {
		t.Fatal(err)
	}
	physical := int32(shard.ID(id).Logical() / shard.BlockSize)
	for _, pod := range []string{sp.ShardPrimaryName(physical) + "-0", sp.ShardReplicasName(physical) + "-0"} {
		db := appDB(t, ns, pod, appPW)
		poll(t, "the post on "+pod, time.Minute, func() error {
			var body string
			return db.QueryRowContext(ctx, "SELECT body FROM social.posts WHERE id = ?", id).Scan(&body)
		})
	}
	other := appDB(t, ns, sp.ShardPrimaryName(1-physical)+"-0", appPW)
	var n int
	if err := other.QueryRowContext(ctx, "SELECT COUNT(*) FROM social.posts WHERE id = ?", id).Scan(&n); err != nil || n != 0 {
		t.Errorf("the post is also on the other shard: %d, %v", n, err)
	}
	var readOnly int
	if err := appDB(t, ns, sp.ShardReplicasName(physical)+"-0", appPW).QueryRowContext(ctx, "SELECT @@read_only").Scan(&readOnly); err != nil || readOnly != 1 {
		t.Errorf("the replica is not read-only: %d, %v", readOnly, err)
	}

	// Cold start through Kafka: the worker pod wrote suggestions for the new users.
	poll(t, "suggestions for bob (worker pod, through Kafka)", 2*time.Minute, func() error {
		shardOf := func(s string) int32 { v, _ := shard.ParseID(s); return int32(v.Logical() / shard.BlockSize) }
		db := appDB(t, ns, sp.ShardPrimaryName(shardOf(bobID))+"-0", appPW)
		var c int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM social.suggestions WHERE user_id = ?", bobID).Scan(&c); err != nil {
			return err
		}
		if c == 0 {
			return fmt.Errorf("no suggestions yet")
		}
		return nil
	})

	// bob's welcome e-mail, sent by the worker pod from the Kafka event, reached the SMTP sink pod.
	poll(t, "bob's welcome e-mail at the SMTP sink", 2*time.Minute, func() error {
		out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "logs", "-n", ns, "deploy/mail").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, `"bob@example.com"`) && strings.Contains(strings.ToLower(l), "welcome") {
				return nil
			}
		}
		return fmt.Errorf("no welcome e-mail to bob in %q", out)
	})

	// The cache pod serves with maxmemory from the manifest, and repeated reads hit it.
	redisPod := sp.CacheName() + "-0"
	maxmem := strings.TrimSpace(kubectlOut(t, "exec", "-n", ns, redisPod, "-c", "redis", "--", "redis-cli", "config", "get", "maxmemory"))
	want := resource.MustParse("256Mi")
	if !strings.HasSuffix(maxmem, fmt.Sprint(want.Value())) {
		t.Errorf("redis maxmemory: %q, want %d", maxmem, want.Value())
	}
	// Nothing gets in without the generated password (the container's redis-cli has it in
	// REDISCLI_AUTH; without it, Redis answers NOAUTH), while the apps above got their answers.
	noauth, _ := exec.Command(kubectl, "--kubeconfig", kubeconfig, "exec", "-n", ns, redisPod, "-c", "redis", "--",
		"env", "-u", "REDISCLI_AUTH", "redis-cli", "get", "anything").CombinedOutput()
	if !strings.Contains(string(noauth), "NOAUTH") {
		t.Errorf("redis without the password answered %q, want NOAUTH", noauth)
	}
	hits := func() int {
		out := kubectlOut(t, "exec", "-n", ns, redisPod, "-c", "redis", "--", "redis-cli", "info", "stats")
		for _, l := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "keyspace_hits:"); ok {
				var h int
				_, _ = fmt.Sscan(v, &h)
				return h
			}
		}
		t.Fatalf("no keyspace_hits in %q", out)
		return 0
	}
	before := hits()
	for range 5 {
		bob.do("GET", "/api/users/"+aliceID, nil, nil)
		bob.do("GET", "/api/posts/"+post.ID, nil, nil)
	}
	if after := hits(); after <= before {
		t.Errorf("cache hits did not rise: %d then %d", before, after)
	}

	// A primary pod deleted: Degraded names the shard, the pod comes back on its claim with its data.
	primary := sp.ShardPrimaryName(physical) + "-0"
	if err := k8s.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: primary}}); err != nil {
		t.Fatal(err)
	}
	poll(t, "Degraded naming the shard", 2*time.Minute, func() error {
		c := condition(platform(t, ns), scalestackv1alpha1.ConditionDegraded)
		if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, sp.ShardPrimaryName(physical)) {
			return fmt.Errorf("Degraded is %+v", c)
		}
		return nil
	})
	waitReady(t, ns, 5*time.Minute)
	db := appDB(t, ns, primary, appPW)
	var body string
	if err := db.QueryRowContext(ctx, "SELECT body FROM social.posts WHERE id = ?", id).Scan(&body); err != nil || body != "hello from a real pod" {
		t.Fatalf("the post after the primary came back: %q, %v", body, err)
	}
	var f feed
	if code := bob.do("GET", "/api/feed", nil, &f); code != http.StatusOK || len(f.Posts) == 0 {
		t.Errorf("bob's feed after the primary came back: %d, %d posts", code, len(f.Posts))
	}

	// Failover and switchover in real pods, on the shard of alice's post.
	failOverAndBack(t, ns, sp, physical, alice, appPW, []int64{id})

	// Backups: full backups on replicas and archived binary logs in a real object store.
	backsUpToTheStore(t, ns, alice)
	replayed, after, target := postsAroundAPointInTime(t, ns, physical, alice)
	sp = platform(t, ns)

	// Deleted with Retain: claims and Secret stay; the platform created again finds its data.
	if err := k8s.Delete(ctx, sp); err != nil {
		t.Fatal(err)
	}
	poll(t, "SocialPlatform gone", 3*time.Minute, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(sp), &scalestackv1alpha1.SocialPlatform{}); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
	// Restored from the deleted platform's backups into another namespace, to a point in time.
	restoresIntoANewPlatform(t, sp, target, []string{post.ID, replayed}, after, "alice")
	pvcs := &corev1.PersistentVolumeClaimList{}
	if err := k8s.List(ctx, pvcs, client.InNamespace(ns)); err != nil || len(pvcs.Items) != 4 {
		t.Fatalf("claims after a Retain delete: %d, %v", len(pvcs.Items), err)
	}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: sp.DatabaseSecretName()}, &corev1.Secret{}); err != nil {
		t.Fatalf("the Secret after a Retain delete: %v", err)
	}
	applyLocalSample(t, ns)
	waitReady(t, ns, 8*time.Minute)
	// The app Services were deleted with the platform: new ones, routed a moment after Ready.
	servicesRouted(t, ns, sp)
	// The gateway Service was deleted with the platform: a new one, with a new ClusterIP.
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: sp.ComponentName(scalestackv1alpha1.ComponentGateway)}, svc); err != nil {
		t.Fatal(err)
	}
	base = fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port)
	again := &api{t: t, base: base}
	var got struct {
		Body string `json:"body"`
	}
	if code := again.do("GET", "/api/posts/"+post.ID, nil, &got); code != http.StatusOK || got.Body != "hello from a real pod" {
		t.Fatalf("the post after the platform was created again: %d %q", code, got.Body)
	}
	if code := (&api{t: t, base: base}).do("POST", "/api/login", map[string]string{"handle": "bob", "password": "correct horse battery"}, &tokenResponse{}); code != http.StatusOK {
		t.Fatalf("bob's login after the platform was created again: %d", code)
	}

	// Day-2 changes under load: a third shard, then the database pods' template rolled out.
	carol, _ := signup(t, base, "carol")
	growsUnderLoad(t, ns, carol)
	rollsTheDatabaseUnderLoad(t, ns, carol, appPW)
	growsTheStorage(t, ns, carol)

	t.Run("installedOperatorBringsTheMinimalSampleToReady", installedOperatorBringsTheMinimalSampleToReady)
}

// postsAroundAPointInTime writes, on the author's shard, a post after the newest full backup
// (restored by replaying the archive) and, a whole second after the returned point in time,
// another one (never restored to that point), and waits until both are archived: the primary
// closes a binary log with transactions within archiveInterval (30 s here) plus one pass, so an
// archiving pass that ends past that bound has uploaded them.
func postsAroundAPointInTime(t *testing.T, ns string, shardOf int32, author *api) (replayed, after string, target time.Time) {
	t.Helper()
	var p struct {
		ID string `json:"id"`
	}
	// A shard's primary may be briefly unavailable (503): an agent fences a primary whose server
	// stalled for failover.after until the operator confirms it, seconds later.
	post := func(body string) {
		t.Helper()
		poll(t, "a post ("+body+")", 2*time.Minute, func() error {
			code, err := author.try("POST", "/api/posts", map[string]string{"body": body}, &p)
			switch {
			case err == nil && code == http.StatusCreated:
				return nil
			case err == nil && code != http.StatusServiceUnavailable:
				t.Fatalf("post: %d", code)
			}
			return fmt.Errorf("post: %d %w", code, err)
		})
	}
	post("replayed from the archive")
	replayed = p.ID
	// Binary log timestamps have a resolution of one second: a whole second on each side.
	time.Sleep(1100 * time.Millisecond)
	target = time.Now().UTC().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(target.Add(1100 * time.Millisecond)))
	post("after the point in time")
	after, written := p.ID, time.Now()
	bound := written.Add(30*time.Second + 15*time.Second)
	poll(t, "an archiving pass of shard "+fmt.Sprint(shardOf)+" after the posts' binary log was closed", 3*time.Minute, func() error {
		sh := platform(t, ns).Status.Shards[shardOf]
		if sh.Backup == nil || sh.Backup.LastArchived == nil || sh.Backup.LastArchived.Time.Before(bound) {
			return fmt.Errorf("shard %d last archived %+v, want after %s", shardOf, sh.Backup, bound.Format(time.RFC3339))
		}
		return nil
	})
	return replayed, after, target
}

// restoresIntoANewPlatform creates, in another namespace, a platform restored (spec.database.restore)
// from the backups of src, which was deleted, to target: Restoring reports every shard restored,
// the platform becomes Ready, the rows before target are there (the full backup's and the
// replayed archive's), none after; a restored user logs in, and a new signup gets an ID after
// every restored one. Then it is deleted with its data.
func restoresIntoANewPlatform(t *testing.T, src *scalestackv1alpha1.SocialPlatform, target time.Time, kept []string, gone, login string) {
	ctx := context.Background()
	const ns = "scalestack-restored"
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}}}); err != nil {
		t.Fatal(err)
	}
	creds := src.Spec.Database.Backup.ObjectStore.Credentials
	keys := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: src.Namespace, Name: creds.SecretName}, keys); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: creds.SecretName}, Data: keys.Data}); err != nil {
		t.Fatal(err)
	}
	sp := &scalestackv1alpha1.SocialPlatform{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: src.Name}, Spec: *src.Spec.DeepCopy()}
	source := src.Spec.Database.Backup.ObjectStore
	// The source's store as pods of this namespace reach it; the prefix the source wrote to.
	source.Endpoint = "http://objectstore." + src.Namespace + ".svc:8333"
	source.Prefix = src.Namespace + "/" + src.Name
	at := metav1.NewTime(target)
	sp.Spec.Database.Restore = &scalestackv1alpha1.RestoreSpec{Source: source, PointInTime: &at}
	sp.Spec.Database.Backup = nil
	sp.Spec.Database.DeletionPolicy = scalestackv1alpha1.DeletionPolicyDelete
	sp.Spec.Apps.Email.SMTPAddress = "mail." + src.Namespace + ":2525"
	sp.Spec.CDN.OriginHost = "static.restored.example.com"
	created := time.Now()
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	// Until every shard is restored, DatabaseReady (and so Ready) says how far the restore is.
	poll(t, "the restored platform Ready", 8*time.Minute, func() error {
		cur := platform(t, ns)
		if c := condition(cur, scalestackv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || cur.Status.ObservedGeneration != cur.Generation {
			return fmt.Errorf("Ready is %+v; Restoring is %+v", c, condition(cur, scalestackv1alpha1.ConditionRestoring))
		}
		return nil
	})
	restored := platform(t, ns)
	c := condition(restored, scalestackv1alpha1.ConditionRestoring)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != scalestackv1alpha1.ReasonRestored || !strings.Contains(c.Message, "2/2 shards restored") {
		t.Fatalf("Restoring once Ready: %+v", c)
	}
	t.Logf("real pods: restored into a new platform, Ready %v after it was created: %s", time.Since(created).Round(time.Second), c.Message)

	svc := &corev1.Service{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: restored.ComponentName(scalestackv1alpha1.ComponentGateway)}, svc); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port)
	anon := &api{t: t, base: base}
	for _, id := range kept {
		var got struct {
			Body string `json:"body"`
		}
		poll(t, "post "+id+" in the restored platform", 30*time.Second, func() error {
			code, err := anon.try("GET", "/api/posts/"+id, nil, &got)
			if err != nil {
				return fmt.Errorf("GET /api/posts/%s: %w", id, err)
			}
			if code != http.StatusOK {
				return fmt.Errorf("GET /api/posts/%s: %d", id, code)
			}
			return nil
		})
	}
	if code, err := anon.try("GET", "/api/posts/"+gone, nil, nil); err != nil || code != http.StatusNotFound {
		t.Errorf("the post written after the point in time, in the restored platform: %d, %v; want 404", code, err)
	}
	if code := anon.do("POST", "/api/login", map[string]string{"handle": login, "password": "correct horse battery"}, &tokenResponse{}); code != http.StatusOK {
		t.Errorf("a restored user's login: %d", code)
	}
	_, carol := signup(t, base, "carol")
	newest := int64(0)
	for _, id := range append(kept, gone) {
		v, err := shard.ParseID(id)
		if err != nil {
			t.Fatal(err)
		}
		newest = max(newest, int64(v))
	}
	if v, err := shard.ParseID(carol); err != nil || int64(v) <= newest {
		t.Errorf("a new signup's ID %s (%v) is not after every restored one (%d)", carol, err, newest)
	}

	if err := k8s.Delete(ctx, restored); err != nil {
		t.Fatal(err)
	}
	poll(t, "the restored platform gone with its claims", 3*time.Minute, func() error {
		pvcs := &corev1.PersistentVolumeClaimList{}
		if err := k8s.List(ctx, pvcs, client.InNamespace(ns)); err != nil {
			return err
		}
		switch err := k8s.Get(ctx, client.ObjectKeyFromObject(restored), &scalestackv1alpha1.SocialPlatform{}); {
		case err == nil:
			return errors.New("the platform is still there")
		case !apierrors.IsNotFound(err):
			return err
		case len(pvcs.Items) > 0:
			return fmt.Errorf("%d claims left", len(pvcs.Items))
		}
		return nil
	})
}
