//go:build e2e

// Package e2e runs the operator as a process against the full local control plane: etcd,
// kube-apiserver with PodSecurity admission, kube-controller-manager, kube-scheduler and kwok.
// Unlike envtest, Deployments really roll out (ReplicaSets, scheduled pods that kwok makes Ready)
// and deleted owners really garbage-collect their children.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/internal/testutil"
)

var (
	// cluster runs a verb of hack/local-cluster.sh on the test's control plane.
	cluster func(verb string) (string, error)
	k8s     client.Client
	repo    string
	workDir string
	// kafkaSeeds are the brokers of an in-process Kafka (kfake, the real protocol): no Strimzi
	// operator or Kafka broker can run on the local control plane, so platforms use External mode.
	kafkaSeeds []string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) (code int) {
	var err error
	repo, err = filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	workDir, err = os.MkdirTemp("", "scalestack-e2e-")
	if err != nil {
		panic(err)
	}
	defer func() {
		if code != 0 {
			fmt.Fprintf(os.Stderr, "e2e failed; control plane and operator logs are kept in %s\n", workDir)
			return
		}
		_ = os.RemoveAll(workDir)
	}()
	clusterDir := filepath.Join(workDir, "cluster")
	cluster = testutil.LocalCluster(repo, clusterDir, "")
	kubeconfig, err := cluster("up")
	adminKubeconfig = kubeconfig
	defer func() { _, _ = cluster("down") }()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the local control plane:", err)
		return 1
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(scalestackv1alpha1.AddToScheme(scheme))
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	if out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side", "-f", filepath.Join(repo, "config", "crd", "bases"), "-f", filepath.Join(repo, "hack", "crds")).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "installing CRDs: %v\n%s", err, out)
		return 1
	}
	if out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "wait", "--for", "condition=established", "--timeout=60s", "crd/socialplatforms.scalestack.dev").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "waiting for CRDs: %v\n%s", err, out)
		return 1
	}

	kafka, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting kfake:", err)
		return 1
	}
	defer kafka.Close()
	kafkaSeeds = kafka.ListenAddrs()

	manager := filepath.Join(workDir, "manager")
	build := exec.Command("go", "build", "-o", manager, ".")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the operator: %v\n%s", err, out)
		return 1
	}
	// The operator runs with exactly its shipped RBAC (config/rbac), as its own ServiceAccount,
	// not as admin: a permission the markers forgot fails the e2e.
	if opKubeconfig, err = testutil.ServiceAccountKubeconfig(kubectl, kubeconfig, repo, workDir); err != nil {
		fmt.Fprintln(os.Stderr, "operator credentials:", err)
		return 1
	}
	managerBin = manager
	first, err := startOperator("operator-1")
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the operator:", err)
		return 1
	}
	leader = first
	defer stopOperators()
	return m.Run()
}

var (
	managerBin, opKubeconfig string
	// adminKubeconfig is the control plane's admin credentials.
	adminKubeconfig string
	// leader is the operator process started first; operators lists every one started.
	leader    *exec.Cmd
	operators []*exec.Cmd
)

// startOperator starts one operator process with leader election on; its log is <name>.log.
func startOperator(name string) (*exec.Cmd, error) { return startOperatorWith(name, true) }

// startOperatorWith starts an operator process, with or without leader election.
func startOperatorWith(name string, leaderElect bool) (*exec.Cmd, error) {
	logFile, err := os.Create(filepath.Join(workDir, name+".log"))
	if err != nil {
		return nil, err
	}
	op := exec.Command(managerBin, "--kubeconfig", opKubeconfig, "--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0",
		"--log-format=json", fmt.Sprintf("--leader-elect=%t", leaderElect), "--leader-election-namespace=scalestack-system")
	op.Stdout, op.Stderr = logFile, logFile
	if err := op.Start(); err != nil {
		return nil, err
	}
	operators = append(operators, op)
	return op, nil
}

func stopOperators() {
	for _, op := range operators {
		if op.ProcessState == nil {
			_ = op.Process.Signal(os.Interrupt)
			_ = op.Wait()
		}
	}
}

// serviceAccountKubeconfig installs config/rbac (the generated ClusterRole and its bindings) and
// returns a kubeconfig that authenticates as the scalestack-operator ServiceAccount.
func sample(t *testing.T) *scalestackv1alpha1.SocialPlatform {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repo, "config", "samples", "scalestack_v1alpha1_socialplatform.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sp := &scalestackv1alpha1.SocialPlatform{}
	if err := yaml.UnmarshalStrict(raw, sp); err != nil {
		t.Fatal(err)
	}
	sp.Spec.Kafka.Mode = scalestackv1alpha1.KafkaModeExternal
	sp.Spec.Kafka.BootstrapServers = kafkaSeeds
	return sp
}

// restrictedNamespace creates a namespace where Pod Security "restricted" is enforced by the real
// admission plugin: a pod of ours that broke the profile would be rejected and never run.
func restrictedNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-", Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	}}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func poll(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	testutil.Poll(t, what, timeout, 250*time.Millisecond, cond)
}

func TestSampleBecomesReadyThenDeletionCollectsEverything(t *testing.T) {
	ctx := context.Background()
	ns := restrictedNamespace(t)
	sp := sample(t)
	sp.Namespace = ns
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}

	poll(t, "SocialPlatform Ready", 3*time.Minute, func() error {
		cur := &scalestackv1alpha1.SocialPlatform{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(sp), cur); err != nil {
			return err
		}
		c := meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue || cur.Status.ObservedGeneration != cur.Generation {
			return fmt.Errorf("Ready is %+v", c)
		}
		return nil
	})

	// The monitoring objects exist (prometheus-operator's kinds are installed from hack/crds).
	cur := &scalestackv1alpha1.SocialPlatform{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(sp), cur); err != nil {
		t.Fatal(err)
	}
	if !meta.IsStatusConditionTrue(cur.Status.Conditions, scalestackv1alpha1.ConditionMonitoringReady) {
		t.Errorf("MonitoringReady: %+v", meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionMonitoringReady))
	}

	// Ready means the Deployments really are Available, with pods running on the kwok node that
	// passed Pod Security admission.
	for _, c := range scalestackv1alpha1.AppComponents {
		d := &appsv1.Deployment{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: sp.ComponentName(c)}, d); err != nil {
			t.Fatal(err)
		}
		available := false
		for _, dc := range d.Status.Conditions {
			if dc.Type == appsv1.DeploymentAvailable && dc.Status == corev1.ConditionTrue {
				available = true
			}
		}
		if !available || d.Status.ReadyReplicas != *d.Spec.Replicas {
			t.Errorf("Deployment %s: available=%v ready=%d/%d", d.Name, available, d.Status.ReadyReplicas, *d.Spec.Replicas)
		}
	}
	pods := &corev1.PodList{}
	if err := k8s.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{scalestackv1alpha1.LabelInstance: sp.Name}); err != nil {
		t.Fatal(err)
	}
	// 9 app pods (2 gateway, 2 user, 2 post, 2 feed, 1 worker), 2 shards x (1 primary + 1 replica),
	// 1 Redis.
	if len(pods.Items) != 14 {
		t.Errorf("%d pods, want 14", len(pods.Items))
	}
	// The shards' volume claims were made by the StatefulSet controller and bound.
	pvcs := &corev1.PersistentVolumeClaimList{}
	if err := k8s.List(ctx, pvcs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(pvcs.Items) != 4 {
		t.Errorf("%d volume claims, want 4", len(pvcs.Items))
	}
	for _, p := range pvcs.Items {
		if p.Status.Phase != corev1.ClaimBound {
			t.Errorf("claim %s is %s", p.Name, p.Status.Phase)
		}
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName == "" {
			t.Errorf("pod %s: phase %s node %q", p.Name, p.Status.Phase, p.Spec.NodeName)
		}
	}

	// Deleting the platform runs the ordered teardown, then garbage collection removes the rest.
	if err := k8s.Delete(ctx, sp); err != nil {
		t.Fatal(err)
	}
	poll(t, "SocialPlatform gone", 2*time.Minute, func() error {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(sp), &scalestackv1alpha1.SocialPlatform{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%w)", err)
	})
	sel := []client.ListOption{client.InNamespace(ns), client.MatchingLabels{scalestackv1alpha1.LabelInstance: sp.Name}}
	poll(t, "children garbage-collected", 2*time.Minute, func() error {
		lists := map[string]client.ObjectList{
			"Deployments": &appsv1.DeploymentList{}, "ReplicaSets": &appsv1.ReplicaSetList{}, "Pods": &corev1.PodList{},
			"Services": &corev1.ServiceList{}, "ServiceAccounts": &corev1.ServiceAccountList{},
			"ConfigMaps": &corev1.ConfigMapList{}, "PodDisruptionBudgets": &policyv1.PodDisruptionBudgetList{},
		}
		lists["StatefulSets"] = &appsv1.StatefulSetList{}
		for kind, l := range lists {
			if err := k8s.List(ctx, l, sel...); err != nil {
				return err
			}
			n := meta.LenList(l)
			if kind == "ConfigMaps" {
				n = 0
				for _, cm := range l.(*corev1.ConfigMapList).Items {
					if cm.Name != "kube-root-ca.crt" {
						n++
					}
				}
			}
			if n > 0 {
				return fmt.Errorf("%d %s left", n, kind)
			}
		}
		return nil
	})

	// deletionPolicy Retain (the sample's): the data outlives the platform.
	pvcs = &corev1.PersistentVolumeClaimList{}
	if err := k8s.List(ctx, pvcs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(pvcs.Items) != 4 {
		t.Errorf("Retain: %d volume claims left, want 4", len(pvcs.Items))
	}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: sp.DatabaseSecretName()}, &corev1.Secret{}); err != nil {
		t.Errorf("Retain: the credentials Secret is gone: %v", err)
	}
}

func TestDeletionPolicyDeleteRemovesData(t *testing.T) {
	ctx := context.Background()
	ns := restrictedNamespace(t)
	sp := sample(t)
	sp.Namespace = ns
	sp.Spec.Database.Shards = 1
	sp.Spec.Database.DeletionPolicy = scalestackv1alpha1.DeletionPolicyDelete
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	poll(t, "volume claims bound", 3*time.Minute, func() error {
		pvcs := &corev1.PersistentVolumeClaimList{}
		if err := k8s.List(ctx, pvcs, client.InNamespace(ns)); err != nil {
			return err
		}
		bound := 0
		for _, p := range pvcs.Items {
			if p.Status.Phase == corev1.ClaimBound {
				bound++
			}
		}
		if bound != 2 {
			return fmt.Errorf("%d of %d claims bound", bound, len(pvcs.Items))
		}
		return nil
	})
	if err := k8s.Delete(ctx, sp); err != nil {
		t.Fatal(err)
	}
	poll(t, "data deleted", 3*time.Minute, func() error {
		pvcs := &corev1.PersistentVolumeClaimList{}
		if err := k8s.List(ctx, pvcs, client.InNamespace(ns)); err != nil {
			return err
		}
		if len(pvcs.Items) > 0 {
			return fmt.Errorf("%d volume claims left", len(pvcs.Items))
		}
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: sp.DatabaseSecretName()}, &corev1.Secret{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("Secret still there (%w)", err)
		}
		return nil
	})
}

// Two operator processes: the second waits as a standby; when the leader stops (releasing its
// lease), the standby takes over and reconciles a platform created after the hand-over.
func TestLeaderElectionHandsOver(t *testing.T) {
	ctx := context.Background()
	standby, err := startOperator("operator-2")
	if err != nil {
		t.Fatal(err)
	}
	_ = standby
	time.Sleep(3 * time.Second) // the standby is up and waiting for the lease
	if leader.ProcessState == nil {
		_ = leader.Process.Signal(os.Interrupt)
		_ = leader.Wait()
	}
	ns := restrictedNamespace(t)
	sp := sample(t)
	sp.Namespace = ns
	sp.Spec.Database.Shards = 1
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	poll(t, "Ready under the new leader", 3*time.Minute, func() error {
		cur := &scalestackv1alpha1.SocialPlatform{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(sp), cur); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready is %+v", c)
		}
		return nil
	})
}
