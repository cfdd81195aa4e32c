package render

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/pkg/platform"
)

// RequiredTopics are the topics the apps produce and consume; they always exist.
var RequiredTopics = platform.RequiredTopics

const (
	// DLQSuffix names a topic's dead-letter twin.
	DLQSuffix = platform.DLQSuffix
	// StrimziGroup is the API group of Strimzi's custom resources.
	StrimziGroup = "kafka.strimzi.io"
	// StrimziClusterLabel ties node pools and topics to their Kafka cluster.
	StrimziClusterLabel = "strimzi.io/cluster"
)

// Topic is a topic with every default applied.
type Topic struct {
	// Name is the topic's name on the Kafka cluster: the platform's prefix and Logical.
	Name string
	// Logical is the name the apps and the manifest use (user-created, post-created.dlq, ...).
	Logical    string
	Partitions int32
	// ReplicationFactor is -1 for the broker's default (External mode without a value).
	ReplicationFactor int32
	// RetentionMs is 0 for the broker's default.
	RetentionMs int64
	// DeadLetterOf names the topic this one is the DLQ of, or "".
	DeadLetterOf string
}

// KafkaBrokers is the number of Strimzi brokers with the default applied.
func KafkaBrokers(sp *scalestackv1alpha1.SocialPlatform) int32 {
	if b := sp.Spec.Kafka.Brokers; b > 0 {
		return b
	}
	return scalestackv1alpha1.DefaultKafkaBrokers
}

// Topics resolves the platform's topics: the required ones, the manifest's, and the dead-letter
// twins, sorted by name.
func Topics(sp *scalestackv1alpha1.SocialPlatform) []Topic {
	k := sp.Spec.Kafka
	prefix := TopicPrefix(sp)
	specs := map[string]scalestackv1alpha1.TopicSpec{}
	for _, n := range RequiredTopics {
		specs[n] = scalestackv1alpha1.TopicSpec{Name: n}
	}
	for _, t := range k.Topics {
		specs[t.Name] = t
	}
	defaultRF := int32(-1)
	if k.Mode != scalestackv1alpha1.KafkaModeExternal {
		defaultRF = min(3, KafkaBrokers(sp))
	}
	var out []Topic
	for name, s := range specs {
		t := Topic{Name: prefix + name, Logical: name, Partitions: scalestackv1alpha1.DefaultTopicPartitions, ReplicationFactor: defaultRF}
		if s.Partitions > 0 {
			t.Partitions = s.Partitions
		}
		if s.ReplicationFactor != nil {
			t.ReplicationFactor = *s.ReplicationFactor
		}
		if s.Retention != nil {
			t.RetentionMs = s.Retention.Milliseconds()
		}
		out = append(out, t)
		if ptr.Deref(s.DeadLetter, scalestackv1alpha1.DefaultDeadLetter) {
			dlq := t
			dlq.Name, dlq.Logical, dlq.DeadLetterOf = prefix+name+DLQSuffix, name+DLQSuffix, prefix+name
			// Dead letters wait for a person: keep them a week at least.
			dlq.RetentionMs = max(t.RetentionMs, (7 * 24 * time.Hour).Milliseconds())
			out = append(out, dlq)
		}
	}
	slices.SortFunc(out, func(a, b Topic) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// TopicPrefix goes before every topic and consumer group name on the Kafka cluster:
// spec.kafka.topicPrefix, else "<namespace>.<name>." (the operator resolves it for platforms that
// predate prefixes to "" before rendering: it keeps their topics).
func TopicPrefix(sp *scalestackv1alpha1.SocialPlatform) string {
	if p := sp.Spec.Kafka.TopicPrefix; p != nil {
		return *p
	}
	return DefaultTopicPrefix(sp)
}

// DefaultTopicPrefix is a new platform's topic prefix: its namespace and name, so that two
// platforms never share a topic on one cluster.
func DefaultTopicPrefix(sp *scalestackv1alpha1.SocialPlatform) string {
	return sp.Namespace + "." + sp.Name + "."
}

// KafkaTopicName is the Kubernetes name of a topic's KafkaTopic: the platform's name and the topic
// name made DNS-safe, with a short hash when that changed or shortened it so that two topics never
// collide.
func KafkaTopicName(sp *scalestackv1alpha1.SocialPlatform, topic string) string {
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		default:
			return '-'
		}
	}, topic)
	name := sp.Name + "-" + safe
	// A Kubernetes name is at most 253 characters; a Kafka topic name may be 249 on its own.
	const maxName, hashLen = 253, 6
	if safe != topic || len(name) > maxName {
		sum := sha256.Sum256([]byte(topic))
		name = strings.TrimRight(name[:min(len(name), maxName-hashLen-1)], "-") + "-" + hex.EncodeToString(sum[:])[:hashLen]
	}
	return strings.Trim(name, "-")
}

// StrimziObjects renders the Kafka cluster (KRaft, one dual-role node pool) and one KafkaTopic per
// topic for Strimzi, at the served API version (v1, or v1beta2 on older Strimzi).
func StrimziObjects(sp *scalestackv1alpha1.SocialPlatform, version string) []*unstructured.Unstructured {
	k := sp.Spec.Kafka
	brokers := KafkaBrokers(sp)
	apiVersion := StrimziGroup + "/" + version
	cluster := sp.KafkaName()
	newObj := func(kind, name string, component string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{}}
		u.SetAPIVersion(apiVersion)
		u.SetKind(kind)
		u.SetNamespace(sp.Namespace)
		u.SetName(name)
		labels := sp.Labels(component)
		if kind != "Kafka" {
			labels[StrimziClusterLabel] = cluster
		}
		u.SetLabels(labels)
		ref := OwnerReference(sp)
		u.SetOwnerReferences(nil)
		_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{
			"apiVersion": *ref.APIVersion, "kind": *ref.Kind, "name": *ref.Name, "uid": string(*ref.UID),
			"controller": true, "blockOwnerDeletion": true,
		}}, "metadata", "ownerReferences")
		return u
	}

	minISR := min(2, brokers)
	rf := min(3, brokers)
	kafka := newObj("Kafka", cluster, "kafka")
	if version == "v1beta2" {
		kafka.SetAnnotations(map[string]string{"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"})
	}
	kafka.Object["spec"] = map[string]any{
		"kafka": map[string]any{
			"listeners": []any{map[string]any{"name": "plain", "port": int64(9092), "type": "internal", "tls": false}},
			"config": map[string]any{
				"offsets.topic.replication.factor":         int64(rf),
				"transaction.state.log.replication.factor": int64(rf),
				"transaction.state.log.min.isr":            int64(minISR),
				"default.replication.factor":               int64(rf),
				"min.insync.replicas":                      int64(minISR),
				// Topics are declared, never created by a client's typo.
				"auto.create.topics.enable": false,
			},
		},
		"entityOperator": map[string]any{"topicOperator": map[string]any{}},
	}

	size := "10Gi"
	if k.Storage.Size != nil {
		size = k.Storage.Size.String()
	}
	volume := map[string]any{"id": int64(0), "type": "persistent-claim", "size": size, "kraftMetadata": "shared",
		"deleteClaim": !Retained(sp)}
	if k.Storage.StorageClassName != nil {
		volume["class"] = *k.Storage.StorageClassName
	}
	pool := newObj("KafkaNodePool", cluster+"-pool", "kafka")
	pool.Object["spec"] = map[string]any{
		"replicas": int64(brokers),
		"roles":    []any{"controller", "broker"},
		"storage":  map[string]any{"type": "jbod", "volumes": []any{volume}},
	}

	objs := []*unstructured.Unstructured{kafka, pool}
	for _, t := range Topics(sp) {
		kt := newObj("KafkaTopic", KafkaTopicName(sp, t.Logical), "kafka")
		spec := map[string]any{"topicName": t.Name, "partitions": int64(t.Partitions), "replicas": int64(t.ReplicationFactor)}
		if t.RetentionMs > 0 {
			spec["config"] = map[string]any{"retention.ms": strconv.FormatInt(t.RetentionMs, 10)}
		}
		kt.Object["spec"] = spec
		objs = append(objs, kt)
	}
	return objs
}

// StrimziBootstrap is the bootstrap address of the plain listener Strimzi creates.
func StrimziBootstrap(sp *scalestackv1alpha1.SocialPlatform) string {
	return fmt.Sprintf("%s-kafka-bootstrap.%s.svc:9092", sp.KafkaName(), sp.Namespace)
}
