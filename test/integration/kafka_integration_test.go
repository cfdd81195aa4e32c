package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

func strimziList(t *testing.T, ns, kind string) []unstructured.Unstructured {
	t.Helper()
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(schema.GroupVersionKind{Group: "kafka.strimzi.io", Version: "v1", Kind: kind + "List"})
	if err := k8s.List(context.Background(), l, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func TestKafkaThroughStrimzi(t *testing.T) {
	sp := createSample(t)
	ns := sp.Namespace
	notReady := waitForCondition(t, sp, scalestackv1alpha1.ConditionKafkaReady, metav1.ConditionFalse)
	if c := meta.FindStatusCondition(notReady.Status.Conditions, scalestackv1alpha1.ConditionKafkaReady); c.Reason != scalestackv1alpha1.ReasonClusterNotReady {
		t.Errorf("KafkaReady reason %q before Strimzi reconciled, want ClusterNotReady", c.Reason)
	}

	kafkas := strimziList(t, ns, "Kafka")
	pools := strimziList(t, ns, "KafkaNodePool")
	topics := strimziList(t, ns, "KafkaTopic")
	if len(kafkas) != 1 || len(pools) != 1 {
		t.Fatalf("%d Kafkas and %d node pools", len(kafkas), len(pools))
	}
	if r, _, _ := unstructured.NestedInt64(pools[0].Object, "spec", "replicas"); r != 3 {
		t.Errorf("node pool replicas %d", r)
	}
	if pools[0].GetLabels()["strimzi.io/cluster"] != sp.KafkaName() {
		t.Errorf("node pool not tied to the cluster: %v", pools[0].GetLabels())
	}
	byTopic := map[string]unstructured.Unstructured{}
	for _, kt := range topics {
		name, _, _ := unstructured.NestedString(kt.Object, "spec", "topicName")
		byTopic[name] = kt
		if ref := metav1.GetControllerOf(&kt); ref == nil || ref.Name != sp.Name {
			t.Errorf("KafkaTopic %s not owned by the platform", kt.GetName())
		}
	}
	// Every topic carries the platform's default prefix, "<namespace>.<name>.".
	prefix := ns + "." + sp.Name + "."
	for _, want := range []string{"user-created", "user-created.dlq", "post-created", "post-created.dlq", "follow-created", "follow-created.dlq"} {
		if _, ok := byTopic[prefix+want]; !ok {
			t.Errorf("topic %s missing (have %d topics)", prefix+want, len(byTopic))
		}
	}
	if p, _, _ := unstructured.NestedInt64(byTopic[prefix+"post-created"].Object, "spec", "partitions"); p != 12 {
		t.Errorf("post-created partitions %d, want the manifest's 12", p)
	}
	if r, _, _ := unstructured.NestedString(byTopic[prefix+"post-created"].Object, "spec", "config", "retention.ms"); r != "604800000" {
		t.Errorf("post-created retention.ms %q", r)
	}

	markDeploymentsAvailable(t, sp)
	ready := waitForCondition(t, sp, scalestackv1alpha1.ConditionReady, metav1.ConditionTrue)
	if !meta.IsStatusConditionTrue(ready.Status.Conditions, scalestackv1alpha1.ConditionKafkaReady) || len(ready.Status.Kafka.Topics) != 6 ||
		ready.Status.Kafka.BootstrapServers != "demo-kafka-kafka-bootstrap."+ns+".svc:9092" {
		t.Errorf("kafka status %+v", ready.Status.Kafka)
	}

	// A topic's partitions grow with the manifest.
	updateSP(t, sp, func(cur *scalestackv1alpha1.SocialPlatform) { cur.Spec.Kafka.Topics[0].Partitions = 24 })
	eventually(t, "partitions grown", func() error {
		for _, kt := range strimziList(t, ns, "KafkaTopic") {
			if n, _, _ := unstructured.NestedString(kt.Object, "spec", "topicName"); n == prefix+"post-created" {
				if p, _, _ := unstructured.NestedInt64(kt.Object, "spec", "partitions"); p != 24 {
					return fmt.Errorf("partitions %d", p)
				}
				return nil
			}
		}
		return fmt.Errorf("post-created missing")
	})
}

func TestKafkaExternalTopicsThroughAdminAPI(t *testing.T) {
	sp := loadSample(t, newNamespace(t))
	sp.Spec.Kafka = scalestackv1alpha1.KafkaSpec{
		Mode:             scalestackv1alpha1.KafkaModeExternal,
		BootstrapServers: kafkaSeeds,
		Topics:           []scalestackv1alpha1.TopicSpec{{Name: "likes-" + sp.Namespace, Partitions: 4}},
	}
	if err := k8s.Create(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	got := waitForCondition(t, sp, scalestackv1alpha1.ConditionKafkaReady, metav1.ConditionTrue)
	if len(got.Status.Kafka.Topics) != 8 {
		t.Errorf("%d topics in status, want 8 (3 required + 1 declared, each with a DLQ twin)", len(got.Status.Kafka.Topics))
	}
	if n := len(strimziList(t, sp.Namespace, "KafkaTopic")); n != 0 {
		t.Errorf("External mode created %d KafkaTopics", n)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaSeeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := sp.Namespace + "." + sp.Name + "."
	details, err := kadm.NewClient(cl).ListTopics(ctx, prefix+"likes-"+sp.Namespace, prefix+"likes-"+sp.Namespace+".dlq", prefix+"user-created")
	if err != nil {
		t.Fatal(err)
	}
	if d := details[prefix+"likes-"+sp.Namespace]; d.Err != nil || len(d.Partitions) != 4 {
		t.Errorf("declared topic in Kafka: %d partitions, %v", len(d.Partitions), d.Err)
	}
	if d := details[prefix+"likes-"+sp.Namespace+".dlq"]; d.Err != nil {
		t.Errorf("DLQ twin missing in Kafka: %v", d.Err)
	}
}

// Two platforms on one External Kafka never share a topic: each gets its own prefix (its
// namespace and name by default, or the manifest's), and a legacy platform, whose apps
// configuration predates prefixes, keeps its unprefixed topics.
func TestPlatformsSharingAKafkaHaveDisjointTopics(t *testing.T) {
	ctx := context.Background()
	external := func(sp *scalestackv1alpha1.SocialPlatform) {
		sp.Spec.Kafka = scalestackv1alpha1.KafkaSpec{Mode: scalestackv1alpha1.KafkaModeExternal, BootstrapServers: kafkaSeeds}
	}
	a := loadSample(t, newNamespace(t))
	external(a)
	b := loadSample(t, newNamespace(t))
	external(b)
	b.Spec.Kafka.TopicPrefix = ptr.To("team-b.")
	for _, sp := range []*scalestackv1alpha1.SocialPlatform{a, b} {
		if err := k8s.Create(ctx, sp); err != nil {
			t.Fatal(err)
		}
	}
	names := func(sp *scalestackv1alpha1.SocialPlatform) map[string]bool {
		got := waitForCondition(t, sp, scalestackv1alpha1.ConditionKafkaReady, metav1.ConditionTrue)
		out := map[string]bool{}
		for _, tp := range got.Status.Kafka.Topics {
			out[tp.Name] = true
		}
		return out
	}
	ta, tb := names(a), names(b)
	if !ta[a.Namespace+".demo.user-created"] || !tb["team-b.user-created.dlq"] || len(ta) != 6 || len(tb) != 6 {
		t.Errorf("topics: %v and %v", ta, tb)
	}
	for n := range ta {
		if tb[n] {
			t.Errorf("both platforms use %s", n)
		}
	}
	// The apps read the prefix from their configuration.
	cm := &corev1.ConfigMap{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.AppsConfigName()}, cm); err != nil {
		t.Fatal(err)
	}
	if got := cm.Data["SCALESTACK_KAFKA_TOPIC_PREFIX"]; got != "team-b." {
		t.Errorf("apps configuration prefix %q", got)
	}

	// A platform from before prefixes: its apps configuration has no prefix key. It keeps "".
	legacy := loadSample(t, newNamespace(t))
	external(legacy)
	old := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: legacy.AppsConfigName(), Namespace: legacy.Namespace,
		Labels: legacy.Labels("apps")}, Data: map[string]string{"SCALESTACK_PLATFORM": legacy.Name}}
	if err := k8s.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	if tl := names(legacy); !tl["user-created"] || !tl["post-created.dlq"] {
		t.Errorf("a legacy platform's topics: %v", tl)
	}
	eventually(t, "the legacy platform's apps configured with an empty prefix", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(old), cm); err != nil {
			return err
		}
		if v, ok := cm.Data["SCALESTACK_KAFKA_TOPIC_PREFIX"]; !ok || v != "" {
			return fmt.Errorf("prefix %q (present %v)", v, ok)
		}
		return nil
	})

	// The prefix is fixed at creation.
	cur, err := get(t, &scalestackv1alpha1.SocialPlatform{}, b.Namespace, b.Name)
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Kafka.TopicPrefix = ptr.To("team-c.")
	if err := k8s.Update(ctx, cur); err == nil || !strings.Contains(err.Error(), "kafka.topicPrefix can be set only when the platform is created") {
		t.Errorf("changing topicPrefix: %v", err)
	}
}
