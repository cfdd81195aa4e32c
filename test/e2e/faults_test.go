//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

func readyPlatform(t *testing.T, sp *scalestackv1alpha1.SocialPlatform, timeout time.Duration) {
	t.Helper()
	poll(t, sp.Namespace+"/"+sp.Name+" Ready", timeout, func() error {
		cur := &scalestackv1alpha1.SocialPlatform{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(sp), cur); err != nil {
			return err
		}
		c := meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue || cur.Status.ObservedGeneration != cur.Generation {
			return fmt.Errorf("Ready is %+v", c)
		}
		return nil
	})
}

// workloadState is what a restart must not change: each workload's generation and its pods.
func workloadState(t *testing.T, ns string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	deps := &appsv1.DeploymentList{}
	sts := &appsv1.StatefulSetList{}
	pods := &corev1.PodList{}
	for _, l := range []client.ObjectList{deps, sts, pods} {
		if err := k8s.List(ctx, l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range deps.Items {
		out["Deployment/"+d.Name] = fmt.Sprint(d.Generation)
	}
	for _, s := range sts.Items {
		out["StatefulSet/"+s.Name] = fmt.Sprint(s.Generation)
	}
	for _, p := range pods.Items {
		out["Pod/"+p.Name] = string(p.UID)
	}
	return out
}

// ownedChildren checks that every object of ours in ns has exactly one controller owner, the
// platform, and returns how many there are per kind.
func ownedChildren(t *testing.T, sp *scalestackv1alpha1.SocialPlatform, uid types.UID) map[string]int {
	t.Helper()
	ctx := context.Background()
	counts := map[string]int{}
	lists := map[string]client.ObjectList{
		"Deployment": &appsv1.DeploymentList{}, "StatefulSet": &appsv1.StatefulSetList{}, "Service": &corev1.ServiceList{},
		"ConfigMap": &corev1.ConfigMapList{}, "Secret": &corev1.SecretList{}, "ServiceAccount": &corev1.ServiceAccountList{},
	}
	for kind, l := range lists {
		if err := k8s.List(ctx, l, client.InNamespace(sp.Namespace), client.MatchingLabels{scalestackv1alpha1.LabelInstance: sp.Name}); err != nil {
			t.Fatal(err)
		}
		items, err := meta.ExtractList(l)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			o := it.(client.Object)
			var owners []metav1.OwnerReference
			for _, ref := range o.GetOwnerReferences() {
				if ref.Controller != nil && *ref.Controller {
					owners = append(owners, ref)
				}
			}
			if kind == "Secret" && sp.Spec.Database.DeletionPolicy == scalestackv1alpha1.DeletionPolicyRetain {
				// Under Retain the credentials outlive the platform: no owner, by design.
				if len(owners) != 0 {
					t.Errorf("Secret/%s has an owner under Retain: %+v", o.GetName(), owners)
				}
				counts[kind]++
				continue
			}
			if len(owners) != 1 || owners[0].UID != uid {
				t.Errorf("%s/%s: controller owners %+v, want the platform %s", kind, o.GetName(), owners, uid)
			}
			counts[kind]++
		}
	}
	return counts
}

// TestOperatorKilledAtRandomPoints kills the operator with SIGKILL at random moments, 50 times,
// while it creates one platform and keeps another, then 15 times while it tears the first down.
// After each storm a last operator must converge: no duplicate or orphaned children, the converged
// platform untouched (a restarted operator with the same rendered output restarts nothing: same
// workload generations, same pods), the deleted platform's data kept under Retain.
func TestOperatorKilledAtRandomPoints(t *testing.T) {
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills := 50
	if v := os.Getenv("E2E_KILLS"); v != "" {
		_, _ = fmt.Sscan(v, &kills)
	}

	// A converged platform, under the normal operator.
	steady := sample(t)
	steady.Namespace, steady.Spec.Database.Shards = restrictedNamespace(t), 1
	if err := k8s.Create(ctx, steady); err != nil {
		t.Fatal(err)
	}
	readyPlatform(t, steady, 3*time.Minute)
	before := workloadState(t, steady.Namespace)

	// From here only operators without leader election run, one at a time, killed at random;
	// the normal, leader-elected operator comes back for the tests that follow, whatever happens.
	stopOperators()
	t.Cleanup(func() {
		stopOperators()
		var err error
		if leader, err = startOperator("operator-after-faults"); err != nil {
			t.Errorf("restarting the operator: %v", err)
		}
	})
	fresh := sample(t)
	fresh.Namespace, fresh.Spec.Database.Shards = restrictedNamespace(t), 2
	if err := k8s.Create(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	storm := func(name string, n int) {
		for i := range n {
			op, err := startOperatorWith(fmt.Sprintf("%s-%02d", name, i), false)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(100+rnd.IntN(1400)) * time.Millisecond)
			_ = op.Process.Kill()
			_ = op.Wait()
		}
	}
	storm("killed", kills)
	last, err := startOperatorWith("after-kills", false)
	if err != nil {
		t.Fatal(err)
	}
	readyPlatform(t, fresh, 3*time.Minute)
	readyPlatform(t, steady, time.Minute)

	cur := &scalestackv1alpha1.SocialPlatform{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(fresh), cur); err != nil {
		t.Fatal(err)
	}
	counts := ownedChildren(t, fresh, cur.UID)
	// 5 app Deployments (+ Redis as a Deployment or StatefulSet), 2 StatefulSets per shard.
	if counts["Deployment"] < 5 || counts["StatefulSet"] < 4 || counts["Secret"] != 1 {
		t.Errorf("children after the kills: %v", counts)
	}
	time.Sleep(5 * time.Second) // a full resync's worth of reconciles by the last operator
	if after := workloadState(t, steady.Namespace); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("restarting the operator %d times changed the converged platform's workloads:\nbefore %v\nafter  %v", kills, before, after)
	}

	// Teardown under the same storm: Retain keeps the claims and the credentials.
	poll(t, "the fresh platform's claims bound", 2*time.Minute, func() error {
		pvcs := &corev1.PersistentVolumeClaimList{}
		if err := k8s.List(ctx, pvcs, client.InNamespace(fresh.Namespace)); err != nil {
			return err
		}
		if len(pvcs.Items) != 4 {
			return fmt.Errorf("%d claims", len(pvcs.Items))
		}
		return nil
	})
	_ = last.Process.Kill()
	_ = last.Wait()
	if err := k8s.Delete(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	storm("teardown", 15)
	if _, err := startOperatorWith("after-teardown", false); err != nil {
		t.Fatal(err)
	}
	poll(t, "the platform gone", 3*time.Minute, func() error {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(fresh), &scalestackv1alpha1.SocialPlatform{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (%w)", err)
		}
		return nil
	})
	pvcs := &corev1.PersistentVolumeClaimList{}
	if err := k8s.List(ctx, pvcs, client.InNamespace(fresh.Namespace)); err != nil {
		t.Fatal(err)
	}
	if len(pvcs.Items) != 4 {
		t.Errorf("%d volume claims after a Retain teardown under faults, want all 4", len(pvcs.Items))
	}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: fresh.Namespace, Name: fresh.DatabaseSecretName()}, &corev1.Secret{}); err != nil {
		t.Errorf("the credentials Secret after a Retain teardown: %v", err)
	}
}

// TestAPIServerRestartIsSurvived stops the API server for a few seconds under a converged
// platform: the operator keeps running, and a spec change made once the API server is back is
// reconciled.
func TestAPIServerRestartIsSurvived(t *testing.T) {
	ctx := context.Background()
	sp := sample(t)
	sp.Namespace, sp.Spec.Database.Shards = restrictedNamespace(t), 1
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	readyPlatform(t, sp, 3*time.Minute)
	t.Setenv("APISERVER_DOWN_SECONDS", "1")
	if out, err := cluster("restart-apiserver"); err != nil {
		t.Fatalf("restarting the API server: %v %s", err, out)
	}
	time.Sleep(2 * time.Second)
	if exited(leader) {
		_ = leader.Wait()
		// A leader that could not renew its lease in time steps down by exiting, by design;
		// in a cluster its Deployment restarts it. Do what the kubelet would.
		t.Logf("the operator stepped down while the API server was away (%v); starting it again", leader.ProcessState)
		var err error
		if leader, err = startOperator("operator-after-apiserver-restart"); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "the API server answering the test's client again", time.Minute, func() error {
		return k8s.Get(ctx, client.ObjectKeyFromObject(sp), &scalestackv1alpha1.SocialPlatform{})
	})
	cur := &scalestackv1alpha1.SocialPlatform{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(sp), cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.Apps.User.Replicas = ptrTo(int32(3))
	if err := k8s.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	poll(t, "the change reconciled after the restart", 2*time.Minute, func() error {
		d := &appsv1.Deployment{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: sp.Namespace, Name: sp.ComponentName(scalestackv1alpha1.ComponentUser)}, d); err != nil {
			return err
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
			return fmt.Errorf("user replicas %v", d.Spec.Replicas)
		}
		return nil
	})
	readyPlatform(t, sp, 2*time.Minute)
}

func ptrTo[T any](v T) *T { return &v }

// exited reports whether a started process has ended (it is gone or a zombie not yet waited for).
func exited(cmd *exec.Cmd) bool {
	if cmd.ProcessState != nil {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}
