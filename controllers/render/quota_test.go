package render

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

// namespaceQuotas is the ResourceQuota docs/install.md ("Sizing a namespace") gives for each
// sample whose every pod the operator renders (production's Kafka brokers are Strimzi's).
var namespaceQuotas = map[string]corev1.ResourceList{
	"minimal": {"requests.cpu": resource.MustParse("1500m"), "requests.memory": resource.MustParse("2560Mi"),
		"limits.memory": resource.MustParse("7Gi"), "persistentvolumeclaims": resource.MustParse("2"), "requests.storage": resource.MustParse("3Gi")},
	"dev": {"requests.cpu": resource.MustParse("2"), "requests.memory": resource.MustParse("3Gi"),
		"limits.memory": resource.MustParse("10Gi"), "persistentvolumeclaims": resource.MustParse("5"), "requests.storage": resource.MustParse("25Gi")},
}

// podUsage is what a pod counts against a quota: the larger of its containers' sum and its
// largest init container, per resource.
func podUsage(spec corev1.PodSpec) corev1.ResourceList {
	sum := corev1.ResourceList{}
	add := func(into corev1.ResourceList, key corev1.ResourceName, q resource.Quantity) {
		cur := into[key]
		cur.Add(q)
		into[key] = cur
	}
	for _, c := range spec.Containers {
		for k, q := range c.Resources.Requests {
			add(sum, "requests."+k, q)
		}
		for k, q := range c.Resources.Limits {
			add(sum, "limits."+k, q)
		}
	}
	for _, c := range spec.InitContainers {
		for k, q := range c.Resources.Requests {
			if cur := sum["requests."+k]; q.Cmp(cur) > 0 {
				sum["requests."+k] = q
			}
		}
		for k, q := range c.Resources.Limits {
			if cur := sum["limits."+k]; q.Cmp(cur) > 0 {
				sum["limits."+k] = q
			}
		}
	}
	return sum
}

func convert(t *testing.T, in, out any) {
	t.Helper()
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
}

// usage sums what a platform's pods and claims count against a ResourceQuota, every workload at
// its largest size (maxReplicas when autoscaling, plus a rollout's surge; the archiver's one Job).
func usage(t *testing.T, sp *scalestackv1alpha1.SocialPlatform) corev1.ResourceList {
	t.Helper()
	total := corev1.ResourceList{}
	count := func(spec corev1.PodSpec, n int32) {
		for k, q := range podUsage(spec) {
			q.Mul(int64(n))
			cur := total[k]
			cur.Add(q)
			total[k] = cur
		}
	}
	for _, c := range scalestackv1alpha1.AppComponents {
		d := &appsv1.Deployment{}
		convert(t, AppDeployment(sp, c, AppInputs{DefaultImage: "apps"}), d)
		n := ptr.Deref(d.Spec.Replicas, 1)
		if AutoscalingEnabled(sp) {
			n = MaxReplicas(sp.Spec.Apps.Service(c))
		}
		// A rollout adds surge pods (the default maxSurge, 25% rounded up) beside the old ones.
		count(d.Spec.Template.Spec, n+(n+3)/4)
	}
	cache := &appsv1.StatefulSet{}
	convert(t, CacheStatefulSet(sp, "h"), cache)
	count(cache.Spec.Template.Spec, ptr.Deref(cache.Spec.Replicas, 1))
	claims := int64(0)
	storage := resource.Quantity{}
	for i := range Shards(sp) {
		for _, role := range []string{"primary", "replica"} {
			sts := &appsv1.StatefulSet{}
			convert(t, ShardStatefulSet(sp, i, role, ShardInputs{AgentImage: "apps"}), sts)
			n := ptr.Deref(sts.Spec.Replicas, 1)
			count(sts.Spec.Template.Spec, n)
			for _, c := range sts.Spec.VolumeClaimTemplates {
				claims += int64(n)
				q := c.Spec.Resources.Requests[corev1.ResourceStorage]
				q.Mul(int64(n))
				storage.Add(q)
			}
		}
	}
	if a := ArchiverCronJob(sp, AppInputs{DefaultImage: "apps"}); a != nil {
		cj := &batchv1.CronJob{}
		convert(t, a, cj)
		count(cj.Spec.JobTemplate.Spec.Template.Spec, 1)
	}
	total["persistentvolumeclaims"] = *resource.NewQuantity(claims, resource.DecimalSI)
	total["requests.storage"] = storage
	return total
}

// Each sample fits the quota docs/install.md gives for it, with no more than half of it to spare
// (so the figure stays a sizing, not a guess).
func TestSamplesFitTheirDocumentedQuota(t *testing.T) {
	for name, quota := range namespaceQuotas {
		raw, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		sp := &scalestackv1alpha1.SocialPlatform{}
		if err := yaml.UnmarshalStrict(raw, sp); err != nil {
			t.Fatal(err)
		}
		sp.Namespace = "team"
		got := usage(t, sp)
		for k, limit := range quota {
			used := got[k]
			spare := limit.DeepCopy()
			spare.Sub(used)
			if used.Cmp(limit) > 0 || spare.AsApproximateFloat64() > limit.AsApproximateFloat64()/2 {
				t.Errorf("%s: %s uses %s of a documented %s", name, k, used.String(), limit.String())
			}
			t.Logf("%s: %s %s of %s", name, k, used.String(), limit.String())
		}
	}
}
