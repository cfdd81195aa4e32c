package integration

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/pkg/shard"
)

func TestDataTierChildrenAndStatus(t *testing.T) {
	sp := createSample(t)
	ns := sp.Namespace
	waitForCondition(t, sp, scalestackv1alpha1.ConditionDatabaseReady, metav1.ConditionFalse)

	secret, err := get(t, &corev1.Secret{}, ns, sp.DatabaseSecretName())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"root-password", "app-password", "replication-password", "exporter-password"} {
		if len(secret.Data[k]) < 20 {
			t.Errorf("password %s missing or short (%d bytes)", k, len(secret.Data[k]))
		}
	}
	if len(secret.OwnerReferences) != 0 {
		t.Errorf("Retain: Secret has owner references %v", secret.OwnerReferences)
	}

	cm, err := get(t, &corev1.ConfigMap{}, ns, sp.ShardMapName())
	if err != nil {
		t.Fatal(err)
	}
	m, err := shard.Parse([]byte(cm.Data["shardmap.json"]))
	if err != nil {
		t.Fatalf("rendered shard map invalid: %v", err)
	}
	if len(m.Shards) != 2 || m.Version != 1 || !strings.HasPrefix(m.Shards[1].Primary, "demo-shard-1-primary."+ns+".svc:3306") {
		t.Errorf("shard map %+v", m)
	}

	for i := range int32(2) {
		for _, name := range []string{sp.ShardName(i), sp.ShardPrimaryName(i), sp.ShardReplicasName(i)} {
			if _, err := get(t, &corev1.Service{}, ns, name); err != nil {
				t.Errorf("Service %s: %v", name, err)
			}
		}
		p, err := get(t, &appsv1.StatefulSet{}, ns, sp.ShardPrimaryName(i))
		if err != nil {
			t.Fatal(err)
		}
		r, err := get(t, &appsv1.StatefulSet{}, ns, sp.ShardReplicasName(i))
		if err != nil {
			t.Fatal(err)
		}
		if *p.Spec.Replicas != 1 || *r.Spec.Replicas != 1 || p.Spec.ServiceName != sp.ShardName(i) {
			t.Errorf("shard %d: primary %d replicas %d service %s", i, *p.Spec.Replicas, *r.Spec.Replicas, p.Spec.ServiceName)
		}
		if q := p.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "10Gi" {
			t.Errorf("shard %d volume %s", i, q.String())
		}
		for _, c := range p.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if bytes.Contains([]byte(e.Value), secret.Data["root-password"]) {
					t.Errorf("container %s carries a password in plain env %s", c.Name, e.Name)
				}
			}
		}
	}
	cache, err := get(t, &appsv1.StatefulSet{}, ns, sp.CacheName())
	if err != nil {
		t.Fatal(err)
	}
	if lim := cache.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]; lim.String() != "320Mi" {
		t.Errorf("cache memory limit %s, want 320Mi (256Mi + a quarter)", lim.String())
	}
	if _, err := get(t, &networkingv1.Ingress{}, ns, sp.CDNOriginName()); err != nil {
		t.Errorf("CDN origin Ingress: %v", err)
	}
	if _, err := get(t, &batchv1.CronJob{}, ns, sp.ArchiverName()); err != nil {
		t.Errorf("archiver CronJob: %v", err)
	}
	// Monitoring: the rules carry the manifest's ruleLabels so kube-prometheus-stack selects them.
	pr := &unstructured.Unstructured{}
	pr.SetGroupVersionKind(schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PrometheusRule"})
	eventually(t, "PrometheusRule", func() error {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: sp.Name + "-slo"}, pr)
	})
	if pr.GetLabels()["release"] != "kube-prometheus-stack" {
		t.Errorf("PrometheusRule labels %v lack the manifest's ruleLabels", pr.GetLabels())
	}
	if groups, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups"); len(groups) != 10 {
		t.Errorf("%d rule groups, want 10 (SLI and SLO per HTTP service, the error budget over the window, and saturation)", len(groups))
	}
	var nps networkingv1.NetworkPolicyList
	if err := k8s.List(context.Background(), &nps, client.InNamespace(ns)); err != nil || len(nps.Items) != 7 {
		t.Errorf("%d NetworkPolicies (%v), want 7", len(nps.Items), err)
	}
	for _, np := range nps.Items {
		if np.Name == sp.Name+"-default-deny" && (len(np.Spec.Ingress) != 0 || np.Spec.PodSelector.MatchLabels[scalestackv1alpha1.LabelInstance] != sp.Name) {
			t.Errorf("default deny policy %+v", np.Spec)
		}
	}
	dash, err := get(t, &corev1.ConfigMap{}, ns, sp.Name+"-dashboard")
	if err != nil || dash.Labels["grafana_dashboard"] != "1" || !strings.Contains(dash.Data[sp.Name+".json"], "Latency p99") {
		t.Errorf("Grafana dashboard ConfigMap: %v %v", err, dash.Labels)
	}
	sms := &unstructured.UnstructuredList{}
	sms.SetGroupVersionKind(schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitorList"})
	if err := k8s.List(context.Background(), sms, client.InNamespace(ns)); err != nil || len(sms.Items) != 7 {
		t.Errorf("%d ServiceMonitors (%v), want 7", len(sms.Items), err)
	}

	markDeploymentsAvailable(t, sp)
	ready := waitForCondition(t, sp, scalestackv1alpha1.ConditionReady, metav1.ConditionTrue)
	if len(ready.Status.Shards) != 2 || !ready.Status.Shards[1].PrimaryReady || ready.Status.Shards[1].LogicalShards != "128-255" {
		t.Errorf("shard status %+v", ready.Status.Shards)
	}
	if ready.Status.Endpoints.CDNOrigin != "http://static.demo.example.com/static/" {
		t.Errorf("CDN origin %q", ready.Status.Endpoints.CDNOrigin)
	}
	for _, typ := range []string{scalestackv1alpha1.ConditionDatabaseReady, scalestackv1alpha1.ConditionCacheReady, scalestackv1alpha1.ConditionAppsReady, scalestackv1alpha1.ConditionMonitoringReady} {
		if !meta.IsStatusConditionTrue(ready.Status.Conditions, typ) {
			t.Errorf("%s not True", typ)
		}
	}

	// A shard's primary losing its pod degrades the platform, naming the shard.
	p, _ := get(t, &appsv1.StatefulSet{}, ns, sp.ShardPrimaryName(1))
	p.Status.ReadyReplicas, p.Status.AvailableReplicas = 0, 0
	if err := k8s.Status().Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	degraded := waitForCondition(t, sp, scalestackv1alpha1.ConditionDegraded, metav1.ConditionTrue)
	if c := meta.FindStatusCondition(degraded.Status.Conditions, scalestackv1alpha1.ConditionDegraded); !strings.Contains(c.Message, "demo-shard-1-primary") {
		t.Errorf("Degraded does not name the shard: %q", c.Message)
	}

	// Growing the shards adds shard 2 and moves no logical shard; the map version goes up.
	updateSP(t, sp, func(cur *scalestackv1alpha1.SocialPlatform) { cur.Spec.Database.Shards = 3 })
	eventually(t, "third shard", func() error {
		if _, err := get(t, &appsv1.StatefulSet{}, ns, sp.ShardPrimaryName(2)); err != nil {
			return err
		}
		grown, err := shardMapOf(t, sp)
		if err != nil {
			return err
		}
		if grown.Version != 2 || len(grown.Shards) != 3 {
			return fmt.Errorf("map version %d with %d shards", grown.Version, len(grown.Shards))
		}
		for i := range m.Shards {
			if fmt.Sprint(grown.Shards[i].Ranges) != fmt.Sprint(m.Shards[i].Ranges) {
				return fmt.Errorf("shard %d moved", i)
			}
		}
		// No new user lands on shard 2 before its primary runs (and the apps migrate it).
		if grown.Shards[2].Weight != 0 || grown.Shards[0].Weight == 0 {
			return fmt.Errorf("weights while shard 2 starts: %+v", grown.Shards)
		}
		return nil
	})
	// Its primary's pod ready (the test plays the kubelet): shard 2 still waits for its replicas.
	createDBPod(t, sp, 2, "primary", sp.ShardDefaultPrimaryPod(2))
	setPodReady(t, ns, sp.ShardDefaultPrimaryPod(2), true)
	replicas := render.ReplicasPerShard(sp)
	if replicas == 0 {
		t.Fatal("the sample has no replicas per shard")
	}
	consistently(t, "shard 2 takes no user while its replicas start", 3*time.Second, func() error {
		grown, err := shardMapOf(t, sp)
		if err != nil {
			return err
		}
		if grown.Shards[2].Weight != 0 {
			return fmt.Errorf("weights %+v", grown.Shards)
		}
		return nil
	})
	for r := range replicas {
		pod := fmt.Sprintf("%s-%d", sp.ShardReplicasName(2), r)
		createDBPod(t, sp, 2, "replica", pod)
		setPodReady(t, ns, pod, true)
	}
	eventually(t, "shard 2 takes new users once its primary and replicas are ready", func() error {
		grown, err := shardMapOf(t, sp)
		if err != nil {
			return err
		}
		if grown.Version != 3 || grown.Shards[2].Weight != 1 {
			return fmt.Errorf("map version %d, weights %+v", grown.Version, grown.Shards)
		}
		return nil
	})

	// The passwords are never regenerated.
	again, _ := get(t, &corev1.Secret{}, ns, sp.DatabaseSecretName())
	if !bytes.Equal(again.Data["root-password"], secret.Data["root-password"]) {
		t.Error("root password changed")
	}
}

// teardownWith deletes a platform with the given deletionPolicy after giving it a volume claim as
// the StatefulSet controller would, and returns what is left.
func teardownWith(t *testing.T, policy scalestackv1alpha1.DeletionPolicy) (secretErr, pvcErr error) {
	t.Helper()
	sp := loadSample(t, newNamespace(t))
	sp.Spec.Database.DeletionPolicy = policy
	if err := k8s.Create(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	ns := sp.Namespace
	waitForCondition(t, sp, scalestackv1alpha1.ConditionDatabaseReady, metav1.ConditionFalse)
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "data-" + sp.ShardPrimaryName(0) + "-0", Labels: map[string]string{
			scalestackv1alpha1.LabelInstance: sp.Name, scalestackv1alpha1.LabelComponent: "database", scalestackv1alpha1.LabelManagedBy: scalestackv1alpha1.ManagedByValue,
		}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}},
		},
	}
	if err := k8s.Create(context.Background(), pvc); err != nil {
		t.Fatal(err)
	}
	cur, _ := get(t, &scalestackv1alpha1.SocialPlatform{}, ns, sp.Name)
	if err := k8s.Delete(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	eventually(t, "platform gone", func() error {
		if _, err := get(t, &scalestackv1alpha1.SocialPlatform{}, ns, sp.Name); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %w", err)
		}
		return nil
	})
	var stsList appsv1.StatefulSetList
	if err := k8s.List(context.Background(), &stsList, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(stsList.Items) != 0 {
		t.Errorf("%d StatefulSets survived the teardown", len(stsList.Items))
	}
	_, secretErr = get(t, &corev1.Secret{}, ns, sp.DatabaseSecretName())
	got, pvcErr := get(t, &corev1.PersistentVolumeClaim{}, ns, pvc.Name)
	if pvcErr == nil && !got.DeletionTimestamp.IsZero() {
		pvcErr = apierrors.NewNotFound(corev1.Resource("persistentvolumeclaims"), pvc.Name) // deleting (pvc-protection finalizer)
	}
	return secretErr, pvcErr
}

func TestTeardownRetainKeepsVolumesAndSecrets(t *testing.T) {
	secretErr, pvcErr := teardownWith(t, scalestackv1alpha1.DeletionPolicyRetain)
	if secretErr != nil {
		t.Errorf("Retain: the Secret is gone: %v", secretErr)
	}
	if pvcErr != nil {
		t.Errorf("Retain: the volume claim is gone: %v", pvcErr)
	}
}

func TestTeardownDeleteRemovesVolumesAndSecrets(t *testing.T) {
	secretErr, pvcErr := teardownWith(t, scalestackv1alpha1.DeletionPolicyDelete)
	if !apierrors.IsNotFound(secretErr) {
		t.Errorf("Delete: the Secret survived: %v", secretErr)
	}
	if !apierrors.IsNotFound(pvcErr) {
		t.Errorf("Delete: the volume claim survived: %v", pvcErr)
	}
}
