package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/test/testenv"
)

// loadSample reads config/samples, the manifest README tells people to apply.
func loadSample(t *testing.T, ns string) *scalestackv1alpha1.SocialPlatform {
	t.Helper()
	return loadSampleFile(t, ns, "scalestack_v1alpha1_socialplatform.yaml")
}

// loadSampleFile reads one of config/samples into namespace ns.
func loadSampleFile(t *testing.T, ns, file string) *scalestackv1alpha1.SocialPlatform {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	sp := &scalestackv1alpha1.SocialPlatform{}
	if err := yaml.UnmarshalStrict(raw, sp); err != nil {
		t.Fatalf("config/samples/%s does not decode strictly: %v", file, err)
	}
	sp.Namespace = ns
	return sp
}

func createSample(t *testing.T) *scalestackv1alpha1.SocialPlatform {
	t.Helper()
	sp := loadSample(t, newNamespace(t))
	if err := k8s.Create(context.Background(), sp); err != nil {
		t.Fatalf("creating sample: %v", err)
	}
	return sp
}

func get[T client.Object](t *testing.T, obj T, ns, name string) (T, error) {
	t.Helper()
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj)
	return obj, err
}

// markDeploymentsAvailable plays the Deployment and StatefulSet controllers, which envtest does not
// run: every workload of the platform reports all replicas updated and ready.
func markDeploymentsAvailable(t *testing.T, sp *scalestackv1alpha1.SocialPlatform) {
	t.Helper()
	markStrimziReady(t, sp)
	names := []string{sp.CacheName()}
	for i := range sp.Spec.Database.Shards {
		names = append(names, sp.ShardPrimaryName(i), sp.ShardReplicasName(i))
	}
	for _, n := range names {
		eventually(t, "mark "+n+" ready", func() error {
			sts, err := get(t, &appsv1.StatefulSet{}, sp.Namespace, n)
			if err != nil {
				return err
			}
			r := ptr.Deref(sts.Spec.Replicas, 1)
			sts.Status = appsv1.StatefulSetStatus{ObservedGeneration: sts.Generation, Replicas: r, UpdatedReplicas: r, ReadyReplicas: r, AvailableReplicas: r, CurrentReplicas: r}
			return k8s.Status().Update(context.Background(), sts)
		})
	}
	for _, c := range scalestackv1alpha1.AppComponents {
		eventually(t, "mark "+string(c)+" available", func() error {
			d, err := get(t, &appsv1.Deployment{}, sp.Namespace, sp.ComponentName(c))
			if err != nil {
				return err
			}
			r := ptr.Deref(d.Spec.Replicas, 1)
			d.Status = appsv1.DeploymentStatus{
				ObservedGeneration: d.Generation, Replicas: r, UpdatedReplicas: r, ReadyReplicas: r, AvailableReplicas: r,
				Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"}},
			}
			return k8s.Status().Update(context.Background(), d)
		})
	}
}

func waitForCondition(t *testing.T, sp *scalestackv1alpha1.SocialPlatform, condType string, status metav1.ConditionStatus) *scalestackv1alpha1.SocialPlatform {
	t.Helper()
	var got *scalestackv1alpha1.SocialPlatform
	eventually(t, fmt.Sprintf("%s=%s", condType, status), func() error {
		cur, err := get(t, &scalestackv1alpha1.SocialPlatform{}, sp.Namespace, sp.Name)
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(cur.Status.Conditions, condType)
		if c == nil || c.Status != status || c.ObservedGeneration != cur.Generation {
			return fmt.Errorf("condition is %+v (generation %d)", c, cur.Generation)
		}
		got = cur
		return nil
	})
	return got
}

func TestSampleYieldsEveryChild(t *testing.T) {
	sp := createSample(t)
	ns := sp.Namespace
	live := waitForCondition(t, sp, scalestackv1alpha1.ConditionAppsReady, metav1.ConditionFalse)

	if !containsString(live.Finalizers, scalestackv1alpha1.Finalizer) {
		t.Errorf("finalizer missing: %v", live.Finalizers)
	}
	checkOwned := func(kind string, obj client.Object) {
		t.Helper()
		ref := metav1.GetControllerOf(obj)
		if ref == nil || ref.UID != live.UID || ref.Kind != "SocialPlatform" || !ptr.Deref(ref.BlockOwnerDeletion, false) {
			t.Errorf("%s %s: controller owner reference is %+v", kind, obj.GetName(), ref)
		}
		l := obj.GetLabels()
		if l[scalestackv1alpha1.LabelManagedBy] != scalestackv1alpha1.ManagedByValue || l[scalestackv1alpha1.LabelInstance] != sp.Name {
			t.Errorf("%s %s: labels %v", kind, obj.GetName(), l)
		}
		for k := range l {
			if k == "app.kubernetes.io/instance" && l[k] != sp.Name {
				t.Errorf("%s %s: instance label %q", kind, obj.GetName(), l[k])
			}
			if k == "argocd.argoproj.io/instance" {
				t.Errorf("%s %s carries Argo CD's tracking label", kind, obj.GetName())
			}
		}
	}

	var cm *corev1.ConfigMap
	eventually(t, "apps config", func() (err error) {
		cm, err = get(t, &corev1.ConfigMap{}, ns, sp.AppsConfigName())
		return err
	})
	checkOwned("ConfigMap", cm)
	if cm.Data["OTEL_EXPORTER_OTLP_ENDPOINT"] != "http://otel-collector.observability:4318" || cm.Data["OTEL_TRACES_SAMPLER_ARG"] != "0.1" {
		t.Errorf("tracing config not rendered: %v", cm.Data)
	}

	for _, c := range scalestackv1alpha1.AppComponents {
		name := sp.ComponentName(c)
		eventually(t, "children of "+name, func() error {
			for _, obj := range []client.Object{&corev1.ServiceAccount{}, &corev1.Service{}, &policyv1.PodDisruptionBudget{}, &appsv1.Deployment{}} {
				if _, err := get(t, obj, ns, name); err != nil {
					return err
				}
			}
			return nil
		})
		sa, _ := get(t, &corev1.ServiceAccount{}, ns, name)
		checkOwned("ServiceAccount", sa)
		if !ptr.Deref(sa.AutomountServiceAccountToken, true) == false {
			t.Errorf("ServiceAccount %s mounts a token", name)
		}
		svc, _ := get(t, &corev1.Service{}, ns, name)
		checkOwned("Service", svc)
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 || svc.Spec.Selector[scalestackv1alpha1.LabelComponent] != string(c) {
			t.Errorf("Service %s: %+v", name, svc.Spec)
		}
		pdb, _ := get(t, &policyv1.PodDisruptionBudget{}, ns, name)
		checkOwned("PodDisruptionBudget", pdb)
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
			t.Errorf("PodDisruptionBudget %s: %+v", name, pdb.Spec)
		}

		d, _ := get(t, &appsv1.Deployment{}, ns, name)
		checkOwned("Deployment", d)
		want := map[scalestackv1alpha1.Component]int32{"gateway": 2, "user": 2, "post": 2, "feed": 2, "worker": 1}[c]
		if got := ptr.Deref(d.Spec.Replicas, -1); got != want {
			t.Errorf("Deployment %s: replicas %d, want %d", name, got, want)
		}
		pod := d.Spec.Template.Spec
		if len(pod.Containers) != 1 {
			t.Fatalf("Deployment %s: %d containers", name, len(pod.Containers))
		}
		ctr := pod.Containers[0]
		if ctr.Image != "ghcr.io/scalestack/apps:v0.1.0" {
			t.Errorf("Deployment %s: image %q", name, ctr.Image)
		}
		if ctr.ReadinessProbe == nil || ctr.LivenessProbe == nil || ctr.StartupProbe == nil {
			t.Errorf("Deployment %s: probes missing", name)
		}
		sc := ctr.SecurityContext
		if sc == nil || !ptr.Deref(sc.RunAsNonRoot, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) ||
			sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
			pod.SecurityContext == nil || pod.SecurityContext.SeccompProfile == nil || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("Deployment %s: not Pod Security restricted: %+v %+v", name, sc, pod.SecurityContext)
		}
		if ptr.Deref(pod.AutomountServiceAccountToken, true) {
			t.Errorf("Deployment %s mounts a service account token", name)
		}
		if len(pod.TopologySpreadConstraints) != 2 {
			t.Errorf("Deployment %s: topology spread %+v", name, pod.TopologySpreadConstraints)
		}
		if d.Spec.Template.Annotations[scalestackv1alpha1.AnnotationConfigHash] == "" {
			t.Errorf("Deployment %s: no config hash annotation", name)
		}
		if c == scalestackv1alpha1.ComponentFeed && ctr.Resources.Requests.Cpu().String() != "200m" {
			t.Errorf("feed resources not from spec: %+v", ctr.Resources)
		}
	}

	// Every Deployment available: the platform becomes Ready, with per-service status.
	markDeploymentsAvailable(t, sp)
	ready := waitForCondition(t, sp, scalestackv1alpha1.ConditionReady, metav1.ConditionTrue)
	if ready.Status.ObservedGeneration != ready.Generation {
		t.Errorf("observedGeneration %d, generation %d", ready.Status.ObservedGeneration, ready.Generation)
	}
	if ready.Status.Summary.Apps != "5/5" || len(ready.Status.Services) != 5 {
		t.Errorf("status: summary %q services %+v", ready.Status.Summary.Apps, ready.Status.Services)
	}
	for _, typ := range []string{scalestackv1alpha1.ConditionProgressing, scalestackv1alpha1.ConditionDegraded} {
		if c := meta.FindStatusCondition(ready.Status.Conditions, typ); c == nil || c.Status != metav1.ConditionFalse {
			t.Errorf("%s: %+v", typ, c)
		}
	}
}

func TestSpecChangeUpdatesChildren(t *testing.T) {
	sp := createSample(t)
	ns := sp.Namespace
	waitForCondition(t, sp, scalestackv1alpha1.ConditionAppsReady, metav1.ConditionFalse)
	before, err := get(t, &appsv1.Deployment{}, ns, sp.ComponentName("user"))
	if err != nil {
		t.Fatal(err)
	}
	oldHash := before.Spec.Template.Annotations[scalestackv1alpha1.AnnotationConfigHash]

	updateSP(t, sp, func(cur *scalestackv1alpha1.SocialPlatform) {
		cur.Spec.Apps.Gateway.Replicas = ptr.To[int32](5)
		cur.Spec.Observability.Tracing.SamplingRatio = "0.5"
	})
	eventually(t, "gateway scaled to 5", replicasAre(t, ns, sp.ComponentName("gateway"), 5))
	eventually(t, "config change rolls every service", func() error {
		for _, c := range scalestackv1alpha1.AppComponents {
			d, err := get(t, &appsv1.Deployment{}, ns, sp.ComponentName(c))
			if err != nil {
				return err
			}
			if h := d.Spec.Template.Annotations[scalestackv1alpha1.AnnotationConfigHash]; h == oldHash {
				return fmt.Errorf("%s still has config hash %s", c, h)
			}
		}
		cm, err := get(t, &corev1.ConfigMap{}, ns, sp.AppsConfigName())
		if err != nil {
			return err
		}
		if cm.Data["OTEL_TRACES_SAMPLER_ARG"] != "0.5" {
			return fmt.Errorf("sampler arg %q", cm.Data["OTEL_TRACES_SAMPLER_ARG"])
		}
		return nil
	})
}

func TestDriftIsUndoneAndOthersFieldsKept(t *testing.T) {
	sp := createSample(t)
	ns := sp.Namespace
	ctx := context.Background()
	name := sp.ComponentName("post")
	eventually(t, "children exist", func() error {
		_, err := get(t, &appsv1.Deployment{}, ns, name)
		return err
	})

	// A deleted Service comes back.
	svc, _ := get(t, &corev1.Service{}, ns, name)
	if err := k8s.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted Service restored", func() error {
		got, err := get(t, &corev1.Service{}, ns, name)
		if err != nil {
			return err
		}
		if got.UID == svc.UID {
			return fmt.Errorf("still the old Service")
		}
		return nil
	})

	// An operator-owned field edited by someone else is taken back; their annotation stays.
	d, _ := get(t, &appsv1.Deployment{}, ns, name)
	d.Spec.Replicas = ptr.To[int32](7)
	d.Spec.Template.Spec.Containers[0].Image = "evil.example/image:latest"
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations["team.example.com/owner"] = "feeds"
	if err := k8s.Update(ctx, d, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "edited Deployment restored", func() error {
		got, err := get(t, &appsv1.Deployment{}, ns, name)
		if err != nil {
			return err
		}
		if r := ptr.Deref(got.Spec.Replicas, 0); r != 2 {
			return fmt.Errorf("replicas %d", r)
		}
		if img := got.Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/scalestack/apps:v0.1.0" {
			return fmt.Errorf("image %q", img)
		}
		if got.Annotations["team.example.com/owner"] != "feeds" {
			return fmt.Errorf("someone else's annotation was removed: %v", got.Annotations)
		}
		return nil
	})
}

func TestConvergedPlatformWritesNothing(t *testing.T) {
	sp := createSample(t)
	markDeploymentsAvailable(t, sp)
	waitForCondition(t, sp, scalestackv1alpha1.ConditionReady, metav1.ConditionTrue)
	// Let in-flight reconciles (from the status updates above) settle.
	mark := quiet(t, sp.Namespace)
	before := reconcileCount(t)
	// Wake the platform without changing its spec: an annotation change passes the predicate.
	for i := range 5 {
		updateSP(t, sp, func(cur *scalestackv1alpha1.SocialPlatform) {
			if cur.Annotations == nil {
				cur.Annotations = map[string]string{}
			}
			cur.Annotations["test.scalestack.dev/poke"] = fmt.Sprint(i)
		})
		time.Sleep(200 * time.Millisecond)
	}
	eventually(t, "reconciles ran", func() error {
		if n := reconcileCount(t) - before; n < 5 {
			return fmt.Errorf("%v reconciles", n)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	// Only this platform's namespace counts: the platforms earlier tests left behind keep
	// reconciling on their own schedules (autoscaler intervals, rechecks).
	if got := env.WritesIn(mark, sp.Namespace); len(got) != 0 {
		t.Errorf("a converged platform cost %d write requests over %v reconciles; want 0: %v", len(got), reconcileCount(t)-before, got)
	}
}

func TestPausedPlatformIsLeftAlone(t *testing.T) {
	sp := createSample(t)
	ns := sp.Namespace
	waitForCondition(t, sp, scalestackv1alpha1.ConditionAppsReady, metav1.ConditionFalse)
	updateSP(t, sp, func(cur *scalestackv1alpha1.SocialPlatform) {
		cur.Spec.Paused = true
		cur.Spec.Apps.User.Replicas = ptr.To[int32](4)
	})
	got := waitForCondition(t, sp, scalestackv1alpha1.ConditionReady, metav1.ConditionUnknown)
	if c := meta.FindStatusCondition(got.Status.Conditions, scalestackv1alpha1.ConditionReady); c.Reason != scalestackv1alpha1.ReasonPaused {
		t.Errorf("Ready reason %q", c.Reason)
	}
	consistently(t, "paused platform's Deployment untouched", 2*time.Second, replicasAre(t, ns, sp.ComponentName("user"), 2))
	updateSP(t, sp, func(cur *scalestackv1alpha1.SocialPlatform) { cur.Spec.Paused = false })
	eventually(t, "resumed platform applies the change", replicasAre(t, ns, sp.ComponentName("user"), 4))
}

func TestAutoscalerOwnsReplicas(t *testing.T) {
	sp := loadSample(t, newNamespace(t))
	sp.Spec.SLO.Autoscaling.Enabled = true
	sp.Spec.SLO.Autoscaling.PrometheusURL = "http://prometheus.monitoring:9090"
	if err := k8s.Create(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	ns := sp.Namespace
	name := sp.ComponentName("feed")
	// Created without replicas, then started by the autoscaler at the spec's value.
	eventually(t, "feed Deployment with replicas handed to the autoscaler", func() error {
		d, err := get(t, &appsv1.Deployment{}, ns, name)
		if err != nil {
			return err
		}
		if !ownsReplicas(d, "scalestack-autoscaler", "") || ptr.Deref(d.Spec.Replicas, 0) != 2 {
			return fmt.Errorf("replicas %v, managedFields %+v", d.Spec.Replicas, d.ManagedFields)
		}
		return nil
	})
	// The autoscaler writes replicas through the scale subresource under its own field manager.
	d, _ := get(t, &appsv1.Deployment{}, ns, name)
	scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 6}}
	if err := k8s.SubResource("scale").Update(context.Background(), d, client.WithSubResourceBody(scale), client.FieldOwner("scalestack-autoscaler")); err != nil {
		t.Fatal(err)
	}
	// Wake the reconciler with a spec change elsewhere.
	updateSP(t, sp, func(cur *scalestackv1alpha1.SocialPlatform) { cur.Spec.Apps.Post.Replicas = ptr.To[int32](3) })
	waitForCondition(t, sp, scalestackv1alpha1.ConditionAppsReady, metav1.ConditionFalse)
	consistently(t, "autoscaler's replicas kept", 2*time.Second, func() error {
		got, err := get(t, &appsv1.Deployment{}, ns, name)
		if err != nil {
			return err
		}
		if r := ptr.Deref(got.Spec.Replicas, 0); r != 6 {
			return fmt.Errorf("replicas reset to %d", r)
		}
		return nil
	})
}

func TestDeletionTearsDownAppsThenReleases(t *testing.T) {
	sp := createSample(t)
	ns := sp.Namespace
	waitForCondition(t, sp, scalestackv1alpha1.ConditionAppsReady, metav1.ConditionFalse)
	cur, _ := get(t, &scalestackv1alpha1.SocialPlatform{}, ns, sp.Name)
	if err := k8s.Delete(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	eventually(t, "platform gone", func() error {
		_, err := get(t, &scalestackv1alpha1.SocialPlatform{}, ns, sp.Name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %w", err)
	})
	for _, c := range scalestackv1alpha1.AppComponents {
		if _, err := get(t, &appsv1.Deployment{}, ns, sp.ComponentName(c)); !apierrors.IsNotFound(err) {
			t.Errorf("Deployment %s survived the teardown: %v", c, err)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// updateSP changes the live platform, retrying when the operator wrote it in between.
func updateSP(t *testing.T, sp *scalestackv1alpha1.SocialPlatform, mutate func(*scalestackv1alpha1.SocialPlatform)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := get(t, &scalestackv1alpha1.SocialPlatform{}, sp.Namespace, sp.Name)
		if err != nil {
			return err
		}
		mutate(cur)
		return k8s.Update(context.Background(), cur)
	})
	if err != nil {
		t.Fatalf("updating platform: %v", err)
	}
}

// markStrimziReady plays Strimzi: the platform's Kafka and topics report Ready.
func markStrimziReady(t *testing.T, sp *scalestackv1alpha1.SocialPlatform) {
	t.Helper()
	if sp.Spec.Kafka.Mode == scalestackv1alpha1.KafkaModeExternal {
		return
	}
	eventually(t, "mark Strimzi objects ready", func() error {
		for _, kind := range []string{"Kafka", "KafkaTopic"} {
			l := &unstructured.UnstructuredList{}
			l.SetGroupVersionKind(schema.GroupVersionKind{Group: "kafka.strimzi.io", Version: "v1", Kind: kind + "List"})
			if err := k8s.List(context.Background(), l, client.InNamespace(sp.Namespace)); err != nil {
				return err
			}
			if kind == "Kafka" && len(l.Items) == 0 {
				return fmt.Errorf("no Kafka yet")
			}
			// The operator applies the topics one by one: wait for all of them.
			if want := len(render.Topics(sp)); kind == "KafkaTopic" && len(l.Items) != want {
				return fmt.Errorf("%d of %d KafkaTopics", len(l.Items), want)
			}
			for i := range l.Items {
				u := &l.Items[i]
				status := map[string]any{"conditions": []any{map[string]any{"type": "Ready", "status": "True"}}}
				if kind == "Kafka" {
					status["listeners"] = []any{map[string]any{"name": "plain", "bootstrapServers": "demo-kafka-kafka-bootstrap." + sp.Namespace + ".svc:9092"}}
				}
				u.Object["status"] = status
				if err := k8s.Status().Update(context.Background(), u); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
