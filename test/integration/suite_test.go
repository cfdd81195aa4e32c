package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/utils/ptr"

	"github.com/twmb/franz-go/pkg/kfake"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/test/testenv"
)

// The integration tests run the real manager against a real kube-apiserver and etcd (envtest)
// and assert through a separate, uncached client.

var (
	k8s client.Client // the tests' own client: direct, no cache
	env *testenv.Env
	// kafkaSeeds are the brokers of an in-process Kafka (kfake) for External mode.
	kafkaSeeds []string
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	var err error
	env, err = testenv.Start(filepath.Join("hack", "crds"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	k8s = env.Client
	// Kafka for External mode: kfake speaks the real protocol; no broker can be installed here.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting kfake:", err)
		return 1
	}
	defer cluster.Close()
	kafkaSeeds = cluster.ListenAddrs()
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping:", err)
		return 1
	}
	return code
}

// reconcileCount reads controller-runtime's reconcile counter for the SocialPlatform controller.
func reconcileCount(t *testing.T) float64 {
	t.Helper()
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "socialplatform" {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// newNamespace creates a namespace for one test and deletes it at the end.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "sp-test-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), ns) })
	return ns.Name
}

// eventually polls cond until it returns nil or the timeout passes, then fails with its last error.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	testutil.Eventually(t, what, 30*time.Second, cond)
}

// consistently checks that cond stays nil for the whole duration.
func consistently(t *testing.T, what string, d time.Duration, cond func() error) {
	t.Helper()
	testutil.Consistently(t, what, d, cond)
}

// replicasAre checks a Deployment's spec.replicas, for eventually and consistently.
func replicasAre(t *testing.T, ns, name string, want int32) func() error {
	t.Helper()
	return func() error {
		d, err := get(t, &appsv1.Deployment{}, ns, name)
		if err != nil {
			return err
		}
		if r := ptr.Deref(d.Spec.Replicas, 0); r != want {
			return fmt.Errorf("%s has %d replicas, want %d", name, r, want)
		}
		return nil
	}
}

// quiet waits until the operator has written nothing to namespace ns for a second (the reconciles
// a test's own updates caused are over) and returns the mark to count later writes from.
func quiet(t *testing.T, ns string) int {
	t.Helper()
	var mark int
	eventually(t, "the operator quiet in "+ns, func() error {
		mark = env.WriteMark()
		time.Sleep(time.Second)
		if w := env.WritesIn(mark, ns); len(w) > 0 {
			return fmt.Errorf("still writing: %v", w)
		}
		return nil
	})
	return mark
}
