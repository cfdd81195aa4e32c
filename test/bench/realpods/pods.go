package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/apps/store"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pkg/platform"
	"github.com/scalestack/scalestack/pkg/shard"
)

// benchPlatform is the platform measured: sized like the host-process stack (two shards, a
// replica, a 1 GiB cache, one instance of each service), from the images built here.
const benchPlatform = `apiVersion: scalestack.dev/v1alpha1
kind: SocialPlatform
metadata:
  name: bench
spec:
  apps:
    gateway: &app {replicas: 1, minReplicas: 1, maxReplicas: 1, resources: {requests: {cpu: 100m, memory: 256Mi}, limits: {memory: 2Gi}}}
    user: *app
    post: *app
    feed: *app
    worker: *app
    rateLimit: {requestsPerSecond: 1000000, burst: 1000000, authRequestsPerSecond: 1000000, authBurst: 1000000}
  database:
    shards: 2
    replicasPerShard: 1
    image: scalestack.local/mariadb:10.11
    storage: {size: 5Gi}
    deletionPolicy: Delete
    resources: {requests: {cpu: 100m, memory: 512Mi}, limits: {memory: 1Gi}}
  cache:
    size: 1Gi
    image: scalestack.local/redis:7.0
  kafka:
    mode: External
    bootstrapServers: ["10.100.0.92:9092"]
    topics:
      - {name: post-created, partitions: 12, replicationFactor: 3, retention: 168h}
`

const ns = "bench"

// realPods starts the local control plane with a real node (in a directory of its own, torn down
// afterwards), runs the operator as a host process with its own RBAC, applies benchPlatform and
// kfake, waits for Ready, and measures through the gateway Service's ClusterIP (kube-proxy's
// iptables rules, as a client in the cluster gets there).
func realPods(ctx context.Context, o options) (f figures, err error) {
	repo, err := os.Getwd()
	if err != nil {
		return f, err
	}
	if _, err := os.Stat(filepath.Join(repo, "go.mod")); err != nil {
		return f, errors.New("run from the repository's root (make bench-realpods)")
	}
	kbin := os.Getenv("K8S_BIN")
	if kbin == "" {
		return f, errors.New("K8S_BIN must name the Kubernetes binaries (make bench-realpods sets it)")
	}
	kubectl := filepath.Join(kbin, "kubectl")
	work, err := os.MkdirTemp("", "scalestack-bench-realpods-")
	if err != nil {
		return f, err
	}
	clusterDir := filepath.Join(work, "cluster")
	cluster := testutil.LocalCluster(repo, clusterDir, "real")
	say("starting the local control plane with a real node in %s", clusterDir)
	kubeconfig, err := cluster("up")
	defer func() {
		if _, derr := cluster("down"); derr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the local control plane: %w", derr))
		}
		if err == nil {
			_ = os.RemoveAll(work)
		} else {
			say("logs are kept in %s", work)
		}
	}()
	if err != nil {
		return f, fmt.Errorf("starting the local control plane with a real node: %w", err)
	}
	kc := func(stdin string, args ...string) error {
		cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := kc("", "apply", "--server-side", "-f", filepath.Join(repo, "config", "crd", "bases"), "-f", filepath.Join(repo, "hack", "crds")); err != nil {
		return f, err
	}
	if err := kc("", "wait", "--for", "condition=established", "--timeout=60s", "crd/socialplatforms.scalestack.dev"); err != nil {
		return f, err
	}

	say("building and starting the operator (its own ServiceAccount, config/rbac)")
	manager := filepath.Join(work, "manager")
	build := exec.CommandContext(ctx, "go", "build", "-o", manager, ".")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		return f, fmt.Errorf("building the operator: %w\n%s", err, out)
	}
	opKubeconfig, err := testutil.ServiceAccountKubeconfig(kubectl, kubeconfig, repo, work)
	if err != nil {
		return f, fmt.Errorf("the operator's credentials: %w", err)
	}
	logFile, err := os.Create(filepath.Join(work, "operator.log"))
	if err != nil {
		return f, err
	}
	defer func() { _ = logFile.Close() }()
	op := exec.Command(manager, "--kubeconfig", opKubeconfig, "--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0",
		"--log-format=json", "--leader-elect=false")
	op.Stdout, op.Stderr = logFile, logFile
	if err := op.Start(); err != nil {
		return f, fmt.Errorf("starting the operator: %w", err)
	}
	defer func() { _ = op.Process.Signal(os.Interrupt); _ = op.Wait() }()

	if err := kc("", "create", "namespace", ns); err != nil {
		return f, err
	}
	if err := kc("", "apply", "--server-side", "-n", ns, "-f", filepath.Join(repo, "config", "local-sample", "kfake.yaml")); err != nil {
		return f, err
	}
	if err := kc(benchPlatform, "apply", "--server-side", "-n", ns, "-f", "-"); err != nil {
		return f, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return f, err
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(scalestackv1alpha1.AddToScheme(scheme))
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return f, err
	}
	sp := &scalestackv1alpha1.SocialPlatform{}
	start := time.Now()
	if err := poll(ctx, 15*time.Minute, func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "bench"}, sp); err != nil {
			return err
		}
		c := meta.FindStatusCondition(sp.Status.Conditions, scalestackv1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue || sp.Status.ObservedGeneration != sp.Generation {
			return fmt.Errorf("the Ready condition is %+v", c)
		}
		return nil
	}); err != nil {
		return f, fmt.Errorf("the platform did not become Ready: %w", err)
	}
	say("the platform is Ready after %s", time.Since(start).Round(time.Second))

	t, err := podsTarget(ctx, k8s, sp)
	if err != nil {
		return f, err
	}
	defer t.rc.Close()
	// Ready pods are routed a moment later, once kube-proxy has programmed their Service: wait for
	// the gateway to answer through its ClusterIP on a new connection.
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	if err := poll(ctx, 2*time.Minute, func() error {
		res, err := hc.Get(t.gateway + "/readyz")
		if err != nil {
			return err
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("gateway /readyz: %d", res.StatusCode)
		}
		return nil
	}); err != nil {
		return f, fmt.Errorf("the gateway Service is not routed: %w", err)
	}
	say("driving the gateway Service at %s", t.gateway)
	return measure(ctx, t, o)
}

// podsTarget finds what measure needs in the provisioned platform: the gateway's ClusterIP, the
// service pods' metrics pages, the shard map (its Service names replaced by their ClusterIPs, since
// cluster names do not resolve on the host), the credentials.
func podsTarget(ctx context.Context, k8s client.Client, sp *scalestackv1alpha1.SocialPlatform) (target, error) {
	var t target
	svcAddr := func(name string, port int32) (string, error) {
		s := &corev1.Service{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
			return "", err
		}
		if port == 0 {
			port = s.Spec.Ports[0].Port
		}
		return net.JoinHostPort(s.Spec.ClusterIP, strconv.Itoa(int(port))), nil
	}
	gw, err := svcAddr(sp.ComponentName(scalestackv1alpha1.ComponentGateway), 0)
	if err != nil {
		return t, err
	}
	t.gateway = "http://" + gw
	t.metrics = map[string]string{}
	for _, c := range []scalestackv1alpha1.Component{scalestackv1alpha1.ComponentGateway, scalestackv1alpha1.ComponentUser,
		scalestackv1alpha1.ComponentPost, scalestackv1alpha1.ComponentFeed} {
		pods := &corev1.PodList{}
		if err := k8s.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels(sp.SelectorLabels(string(c)))); err != nil {
			return t, err
		}
		if len(pods.Items) != 1 || pods.Items[0].Status.PodIP == "" {
			return t, fmt.Errorf("%s: want one pod with an IP, have %d", c, len(pods.Items))
		}
		t.metrics[string(c)] = fmt.Sprintf("http://%s/metrics", net.JoinHostPort(pods.Items[0].Status.PodIP, strconv.Itoa(int(platform.HTTPPort))))
	}

	secret := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: sp.DatabaseSecretName()}, secret); err != nil {
		return t, err
	}
	appPW, cachePW := string(secret.Data["app-password"]), string(secret.Data["cache-password"])
	t.tokenKey = secret.Data["token-key"]
	if appPW == "" || cachePW == "" || len(t.tokenKey) == 0 {
		return t, fmt.Errorf("the Secret %s lacks app-password, cache-password or token-key", sp.DatabaseSecretName())
	}

	cm := &corev1.ConfigMap{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: sp.ShardMapName()}, cm); err != nil {
		return t, err
	}
	m, err := shard.Parse([]byte(cm.Data["shardmap.json"]))
	if err != nil {
		return t, fmt.Errorf("the shard map: %w", err)
	}
	resolve := func(addr string) (string, error) {
		if addr == "" {
			return "", nil
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return "", err
		}
		p, _ := strconv.Atoi(port)
		return svcAddr(strings.Split(host, ".")[0], int32(p))
	}
	for i := range m.Shards {
		if m.Shards[i].Primary, err = resolve(m.Shards[i].Primary); err != nil {
			return t, err
		}
		if m.Shards[i].Replicas, err = resolve(m.Shards[i].Replicas); err != nil {
			return t, err
		}
	}
	if t.shards, err = store.Open(store.Config{User: platform.DBUser, Password: appPW}, m, store.NewMetrics(prometheus.NewRegistry())); err != nil {
		return t, err
	}
	cache, err := svcAddr(sp.CacheName(), 0)
	if err != nil {
		return t, err
	}
	if t.rc, err = rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{cache}, Password: cachePW, DisableCache: true}); err != nil {
		return t, fmt.Errorf("the cache at %s: %w", cache, err)
	}

	// CPU by part: this process (loadgen), each pod (its processes' cgroup), and the control
	// plane, the node's agents and the operator together.
	pods := &corev1.PodList{}
	if err := k8s.List(ctx, pods, client.InNamespace(ns)); err != nil {
		return t, err
	}
	byUID := map[string]string{}
	for _, p := range pods.Items {
		name := strings.TrimPrefix(p.Name, sp.Name+"-")
		if c := p.Labels[scalestackv1alpha1.LabelComponent]; c != "" && p.Labels["statefulset.kubernetes.io/pod-name"] == "" {
			name = c
		} else if n := p.Labels["app.kubernetes.io/name"]; n == "kfake" {
			name = n
		}
		byUID[string(p.UID)] = "pod " + name
	}
	self := os.Getpid()
	agents := []string{"etcd", "kube-apiserver", "kube-controller", "kube-scheduler", "kubelet", "kube-proxy", "containerd", "containerd-shim", "coredns", "manager"}
	t.cpu = func() cpuUse {
		return readCPU(func(pid, _ int, comm string) string {
			if pid == self {
				return "bench process: loadgen"
			}
			if slices.Contains(agents, comm) {
				return "control plane, node agents, operator"
			}
			return podOf(pid, byUID)
		})
	}

	// The replicas have caught up when each has applied its primary's GTID position (MariaDB).
	type pair struct{ primary, replica *sql.DB }
	var pairs []pair
	podDB := func(pod string) (*sql.DB, error) {
		p := &corev1.Pod{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, p); err != nil {
			return nil, err
		}
		c := mysql.NewConfig()
		c.User, c.Passwd, c.Net, c.Addr, c.Timeout = platform.DBUser, appPW, "tcp", net.JoinHostPort(p.Status.PodIP, "3306"), 5*time.Second
		return sql.Open("mysql", c.FormatDSN())
	}
	for i, sh := range sp.Status.Shards {
		primary := sh.Primary
		if primary == "" {
			primary = sp.ShardPrimaryName(int32(i)) + "-0"
		}
		replicas := sp.ShardReplicasName(int32(i))
		for r := range int(sh.Replicas) {
			pdb, err := podDB(primary)
			if err != nil {
				return t, err
			}
			rdb, err := podDB(fmt.Sprintf("%s-%d", replicas, r))
			if err != nil {
				return t, err
			}
			pairs = append(pairs, pair{pdb, rdb})
		}
	}
	t.caughtUp = func(ctx context.Context) error {
		for _, p := range pairs {
			var want string
			if err := p.primary.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&want); err != nil {
				return err
			}
			var reached sql.NullInt64
			if err := p.replica.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 600)", want).Scan(&reached); err != nil {
				return err
			}
			if !reached.Valid || reached.Int64 != 0 {
				return fmt.Errorf("a replica did not reach %s", want)
			}
		}
		return nil
	}
	return t, nil
}

// poll calls cond every two seconds until it returns nil, the timeout passes (its last error is
// returned) or ctx ends.
func poll(ctx context.Context, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
