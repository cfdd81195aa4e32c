package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

// Every invalid manifest is rejected at admission by the real API server, with a message that
// names the field and says what is allowed, and leaves nothing behind.

func TestInvalidManifestsAreRejectedOnCreate(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name   string
		mutate func(*scalestackv1alpha1.SocialPlatform)
		want   []string // substrings of the error: the field path and the rule
	}{
		{"name too long", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Name = strings.Repeat("a", 31) },
			[]string{"metadata.name must be at most 30 characters"}},
		{"no shards", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Database.Shards = -1 },
			[]string{"spec.database.shards", "greater than or equal to 1"}},
		{"too many shards", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Database.Shards = 65 },
			[]string{"spec.database.shards", "less than or equal to 64"}},
		{"too many replicas per shard", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Database.ReplicasPerShard = ptr.To[int32](6) },
			[]string{"spec.database.replicasPerShard", "less than or equal to 5"}},
		{"smtp relay without a port", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Apps.Email = &scalestackv1alpha1.EmailSpec{SMTPAddress: "smtp.mail.svc"}
		},
			[]string{"spec.apps.email.smtpAddress", "should match"}},
		{"sender without a domain", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Apps.Email = &scalestackv1alpha1.EmailSpec{SMTPAddress: "smtp.mail.svc:25", From: "welcome"}
		},
			[]string{"spec.apps.email.from", "should match"}},
		{"no requests allowed", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Apps.RateLimit.RequestsPerSecond = ptr.To[int32](0)
		},
			[]string{"spec.apps.rateLimit.requestsPerSecond", "greater than or equal to 1"}},
		{"unknown engine", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Database.Engine = "Postgres" },
			[]string{"spec.database.engine", `supported values: "MariaDB", "MySQL"`}},
		{"unknown deletion policy", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Database.DeletionPolicy = "Orphan" },
			[]string{"spec.database.deletionPolicy", `supported values: "Retain", "Delete"`}},
		{"zero storage", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Database.Storage.Size = ptr.To(resource.MustParse("0"))
		},
			[]string{"spec.database.storage.size", "storage size must be greater than zero"}},
		{"tiny cache", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Cache.Size = resource.MustParse("1Mi") },
			[]string{"spec.cache.size", "cache size must be at least 16Mi"}},
		{"unknown eviction policy", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Cache.EvictionPolicy = "lru" },
			[]string{"spec.cache.evictionPolicy", "supported values"}},
		{"min above max", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Apps.Gateway = scalestackv1alpha1.ServiceSpec{MinReplicas: ptr.To[int32](5), MaxReplicas: ptr.To[int32](3)}
		}, []string{"spec.apps.gateway", "minReplicas must be less than or equal to maxReplicas"}},
		{"replicas above max", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Apps.User = scalestackv1alpha1.ServiceSpec{Replicas: ptr.To[int32](12), MaxReplicas: ptr.To[int32](10)}
		}, []string{"spec.apps.user", "replicas must be less than or equal to maxReplicas"}},
		{"replicas below min", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Apps.Post = scalestackv1alpha1.ServiceSpec{Replicas: ptr.To[int32](1), MinReplicas: ptr.To[int32](2)}
		}, []string{"spec.apps.post", "replicas must be greater than or equal to minReplicas"}},
		{"negative replicas", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Apps.Feed.Replicas = ptr.To[int32](-1) },
			[]string{"spec.apps.feed.replicas", "greater than or equal to 0"}},
		{"unknown pull policy", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Apps.ImagePullPolicy = "Sometimes" },
			[]string{"spec.apps.imagePullPolicy", "supported values"}},
		{"duplicate topics", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Kafka.Topics = []scalestackv1alpha1.TopicSpec{{Name: "likes"}, {Name: "likes"}}
		}, []string{"spec.kafka.topics[1]", "Duplicate value"}},
		{"topic name with a space", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Kafka.Topics = []scalestackv1alpha1.TopicSpec{{Name: "bad topic"}}
		}, []string{"spec.kafka.topics[0].name", "should match"}},
		{"topic named like a dead-letter twin", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Kafka.Topics = []scalestackv1alpha1.TopicSpec{{Name: "likes.dlq"}}
		}, []string{"spec.kafka.topics[0].name", "reserved for dead-letter twins"}},
		{"zero partitions", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Kafka.Topics = []scalestackv1alpha1.TopicSpec{{Name: "likes", Partitions: -3}}
		}, []string{"spec.kafka.topics[0].partitions", "greater than or equal to 1"}},
		{"replication factor above brokers", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Kafka.Brokers = 1
			sp.Spec.Kafka.Topics = []scalestackv1alpha1.TopicSpec{{Name: "likes", ReplicationFactor: ptr.To[int32](3)}}
		}, []string{"spec.kafka", "replicationFactor must not exceed brokers"}},
		{"external without bootstrap servers", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Kafka.Mode = scalestackv1alpha1.KafkaModeExternal
		}, []string{"spec.kafka", "bootstrapServers is required when mode is External"}},
		{"bootstrap server without port", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Kafka.Mode = scalestackv1alpha1.KafkaModeExternal
			sp.Spec.Kafka.BootstrapServers = []string{"kafka.example.com"}
		}, []string{"spec.kafka.bootstrapServers[0]", "should match"}},
		{"availability above 100", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.SLO.Availability = "101" },
			[]string{"spec.slo.availability", "should match"}},
		{"window in hours", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.SLO.Window = "720h" },
			[]string{"spec.slo.window", "should match"}},
		{"autoscaling without Prometheus", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.SLO.Autoscaling.Enabled = true },
			[]string{"spec.slo.autoscaling", "prometheusURL is required when autoscaling is enabled"}},
		{"Prometheus URL not http", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.SLO.Autoscaling.PrometheusURL = "ftp://prometheus:9090"
		}, []string{"spec.slo.autoscaling.prometheusURL", "must be an http or https URL"}},
		{"TLS without origin host", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.CDN = scalestackv1alpha1.CDNSpec{TLSSecretName: "origin-tls"}
		}, []string{"spec.cdn", "tlsSecretName requires originHost"}},
		{"origin host with scheme", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.CDN.OriginHost = "https://static.example.com" },
			[]string{"spec.cdn.originHost", "should match"}},
		{"sampling ratio above 1", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Observability.Tracing.SamplingRatio = "2" },
			[]string{"spec.observability.tracing.samplingRatio", "should match"}},
		{"oversized image", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Apps.Image = strings.Repeat("x", 600) },
			[]string{"spec.apps.image", "may not be more than 512"}},
		{"semi-sync timeout under 100ms", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Database.Failover.SemiSyncTimeout = &metav1.Duration{Duration: 10 * time.Millisecond}
		}, []string{"spec.database.failover.semiSyncTimeout", "between 100ms and 1h"}},
		{"backup schedule with seconds", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Database.Backup = validBackup()
			sp.Spec.Database.Backup.Schedule = "0 0 3 * * *"
		}, []string{"spec.database.backup.schedule", "five fields"}},
		{"backup retention of none", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Database.Backup = validBackup()
			sp.Spec.Database.Backup.Retention.Count = ptr.To[int32](0)
		}, []string{"spec.database.backup.retention.count", "greater than or equal to 1"}},
		{"backup retention under an hour", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Database.Backup = validBackup()
			sp.Spec.Database.Backup.Retention.MaxAge = &metav1.Duration{Duration: 30 * time.Minute}
		}, []string{"spec.database.backup.retention.maxAge", "at least 1h"}},
		{"restore from where the backup writes", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Database.Backup = validBackup()
			sp.Spec.Database.Restore = &scalestackv1alpha1.RestoreSpec{Source: validBackup().ObjectStore}
		}, []string{"spec.database", "database.restore.source must not be where database.backup writes"}},
		// Values whose child the API server would refuse (the platform would be half-applied):
		// rejected here instead, naming the SocialPlatform's own field.
		{"rule label key with a space", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Observability.RuleLabels = map[string]scalestackv1alpha1.LabelValue{"release name": "kube-prometheus-stack"}
		}, []string{"spec.observability.ruleLabels", "ruleLabels keys must be label keys"}},
		{"rule label key with two slashes", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Observability.RuleLabels = map[string]scalestackv1alpha1.LabelValue{"example.com/a/b": "x"}
		}, []string{"spec.observability.ruleLabels", "ruleLabels keys must be label keys"}},
		{"rule label value too long", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Observability.RuleLabels = map[string]scalestackv1alpha1.LabelValue{"release": scalestackv1alpha1.LabelValue(strings.Repeat("a", 64))}
		}, []string{"spec.observability.ruleLabels.release", "may not be more than 63"}},
		{"rule label value with a space", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Observability.RuleLabels = map[string]scalestackv1alpha1.LabelValue{"release": "kube prometheus"}
		}, []string{"spec.observability.ruleLabels.release", "should match"}},
		{"app memory request above its limit", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Apps.Gateway.Resources = &corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")}}
		}, []string{"spec.apps.gateway.resources", "every request (cpu, memory, ephemeral-storage) must be less than or equal to its limit"}},
		{"database cpu request above its limit", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Database.Resources = &corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}}
		}, []string{"spec.database.resources", "must be less than or equal to its limit"}},
		{"archive schedule of four fields", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Database.Archive = &scalestackv1alpha1.ArchiveSpec{OlderThan: metav1.Duration{Duration: 90 * 24 * time.Hour}, Schedule: "30 3 * *"}
		},
			[]string{"spec.database.archive.schedule", "five fields"}},
		{"ingress class with capitals", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.CDN.IngressClassName = ptr.To("Nginx_Public") },
			[]string{"spec.cdn.ingressClassName", "lowercase DNS subdomain"}},
		{"TLS secret with a slash", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.CDN = scalestackv1alpha1.CDNSpec{OriginHost: "static.example.com", TLSSecretName: "certs/origin"}
		}, []string{"spec.cdn.tlsSecretName", "lowercase DNS subdomain"}},
		{"storage class with a space", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Database.Storage.StorageClassName = ptr.To("fast ssd")
		}, []string{"spec.database.storage.storageClassName", "lowercase DNS subdomain"}},
		{"image with a space", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Apps.Image = "ghcr.io/scalestack/apps: v1" },
			[]string{"spec.apps.image", "image must be an image reference"}},
		{"database image with a space", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Database.Image = "mariadb 10.11" },
			[]string{"spec.database.image", "image must be an image reference"}},
		{"cache image with a tab", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Cache.Image = "redis\t7" },
			[]string{"spec.cache.image", "image must be an image reference"}},
		{"bootstrap port above 65535", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Kafka.Mode = scalestackv1alpha1.KafkaModeExternal
			sp.Spec.Kafka.BootstrapServers = []string{"kafka.example.com:99999"}
		}, []string{"spec.kafka.bootstrapServers[0]", "should match"}},
		{"smtp port zero", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Apps.Email = &scalestackv1alpha1.EmailSpec{SMTPAddress: "smtp.mail.svc:0"}
		}, []string{"spec.apps.email.smtpAddress", "should match"}},
		{"zero cache TTL", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Cache.DefaultTTL = &metav1.Duration{} },
			[]string{"spec.cache.defaultTTL", "at least 1s"}},
		{"zero archive age", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Database.Archive = &scalestackv1alpha1.ArchiveSpec{OlderThan: metav1.Duration{}}
		},
			[]string{"spec.database.archive.olderThan", "at least 1h"}},
		{"zero autoscaling interval", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.SLO.Autoscaling.Interval = &metav1.Duration{}
		}, []string{"spec.slo.autoscaling.interval", "at least 1s"}},
		{"zero latency threshold", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.SLO.Latency.Threshold = &metav1.Duration{}
		}, []string{"spec.slo.latency.threshold", "at least 1ms"}},
		{"zero topic retention", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Kafka.Topics = []scalestackv1alpha1.TopicSpec{{Name: "likes", Retention: &metav1.Duration{}}}
		}, []string{"spec.kafka.topics[0].retention", "at least 1m"}},
		{"zero asset max-age", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.CDN.AssetMaxAge = &metav1.Duration{} },
			[]string{"spec.cdn.assetMaxAge", "at least 1s"}},
		{"site host with a scheme", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Ingress = scalestackv1alpha1.IngressSpec{Host: "https://social.example.com"}
		}, []string{"spec.ingress.host", "ingress.host must be a lowercase DNS name"}},
		{"site TLS without a host", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Ingress = scalestackv1alpha1.IngressSpec{TLSSecretName: "social-tls"}
		}, []string{"spec.ingress", "ingress.tlsSecretName requires ingress.host"}},
		{"site ingress class with capitals", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Ingress = scalestackv1alpha1.IngressSpec{Host: "social.example.com", IngressClassName: ptr.To("Public")}
		}, []string{"spec.ingress.ingressClassName", "lowercase DNS subdomain"}},
		{"topic prefix with a slash", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Kafka.TopicPrefix = ptr.To("team/a.") },
			[]string{"spec.kafka.topicPrefix", "should match"}},
		{"topic prefix and name beyond Kafka's limit", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Kafka.TopicPrefix = ptr.To(strings.Repeat("p", 100))
			sp.Spec.Kafka.Topics = []scalestackv1alpha1.TopicSpec{{Name: strings.Repeat("t", 150)}}
		}, []string{"spec.kafka", "must fit Kafka's 249 characters"}},
		{"object store port above 65535", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Database.Backup = validBackup()
			sp.Spec.Database.Backup.ObjectStore.Endpoint = "http://store.example.com:70000"
		}, []string{"spec.database.backup.objectStore.endpoint", "objectStore.endpoint must be"}},
	}
	// Values the Go types cannot hold, set on the unstructured form.
	rawCases := []struct {
		name  string
		path  []string
		value any
		want  []string
	}{
		{"archive age in days", []string{"spec", "database", "archive", "olderThan"}, "90d", []string{"spec.database.archive.olderThan", "should match"}},
		{"TTL in words", []string{"spec", "cache", "defaultTTL"}, "ten minutes", []string{"spec.cache.defaultTTL", "should match"}},
		{"shards as a string", []string{"spec", "database", "shards"}, "two", []string{"spec.database.shards", "must be of type integer"}},
		{"cache size not a quantity", []string{"spec", "cache", "size"}, "lots", []string{"spec.cache.size", "quantities must match the regular expression"}},
	}
	if n := len(cases) + len(rawCases) + 1; n < 30 {
		t.Fatalf("the catalog holds %d invalid manifests; keep at least 30", n)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sp := loadSample(t, ns)
			sp.Name = "bad"
			tc.mutate(sp)
			err := k8s.Create(context.Background(), sp)
			if err == nil {
				_ = k8s.Delete(context.Background(), sp)
				t.Fatalf("accepted; want a rejection naming %v", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}

	for _, tc := range rawCases {
		t.Run(tc.name, func(t *testing.T) {
			sp := loadSample(t, ns)
			sp.Name = "bad"
			obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(sp)
			if err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{Object: obj}
			u.SetAPIVersion(scalestackv1alpha1.GroupVersion.String())
			u.SetKind("SocialPlatform")
			if err := unstructured.SetNestedField(u.Object, tc.value, tc.path...); err != nil {
				t.Fatal(err)
			}
			err = k8s.Create(context.Background(), u)
			if err == nil {
				_ = k8s.Delete(context.Background(), u)
				t.Fatalf("accepted; want a rejection naming %v", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}

	t.Run("unknown field with strict validation", func(t *testing.T) {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(scalestackv1alpha1.GroupVersion.String())
		u.SetKind("SocialPlatform")
		u.SetNamespace(ns)
		u.SetName("bad")
		_ = unstructured.SetNestedField(u.Object, "256Mi", "spec", "cache", "size")
		_ = unstructured.SetNestedField(u.Object, int64(3), "spec", "database", "shardz")
		err := k8s.Create(context.Background(), u, client.FieldValidation("Strict"))
		if err == nil || !strings.Contains(err.Error(), `unknown field "spec.database.shardz"`) {
			t.Errorf("error %v; want unknown field spec.database.shardz", err)
		}
	})

	// Nothing from any rejected manifest exists.
	assertNoChildren(t, ns)
}

func TestForbiddenTransitionsAreRejectedOnUpdate(t *testing.T) {
	sp := loadSample(t, newNamespace(t))
	sp.Spec.Database.Storage.StorageClassName = ptr.To("fast")
	if err := k8s.Create(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(*scalestackv1alpha1.SocialPlatform)
		want   []string
	}{
		{"shards shrink", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Database.Shards = 1 },
			[]string{"spec.database.shards", "shards may grow but never shrink"}},
		{"engine changes", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Database.Engine = scalestackv1alpha1.EngineMySQL },
			[]string{"spec.database.engine", "engine is immutable"}},
		{"storage shrinks", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Database.Storage.Size = ptr.To(resource.MustParse("5Gi"))
		},
			[]string{"spec.database.storage.size", "storage size may grow but never shrink"}},
		{"storage class changes", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Database.Storage.StorageClassName = ptr.To("slow")
		},
			[]string{"spec.database.storage.storageClassName", "storageClassName is immutable"}},
		{"partitions shrink", func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Kafka.Topics[0].Partitions = 6 },
			[]string{"spec.kafka.topics[0].partitions", "partitions may grow but never shrink"}},
		{"replication factor changes", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Kafka.Topics[0].ReplicationFactor = ptr.To[int32](2)
		},
			[]string{"spec.kafka.topics[0].replicationFactor", "replicationFactor is immutable"}},
		{"restore added to a running platform", func(sp *scalestackv1alpha1.SocialPlatform) {
			sp.Spec.Database.Restore = &scalestackv1alpha1.RestoreSpec{Source: validBackup().ObjectStore}
		},
			[]string{"spec.database", "database.restore can be set only when the platform is created"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cur, err := get(t, &scalestackv1alpha1.SocialPlatform{}, sp.Namespace, sp.Name)
				if err != nil {
					return err
				}
				tc.mutate(cur)
				return k8s.Update(context.Background(), cur)
			})
			if err == nil {
				t.Fatalf("accepted; want a rejection naming %v", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
	// Growing is allowed.
	updateSP(t, sp, func(cur *scalestackv1alpha1.SocialPlatform) {
		cur.Spec.Database.Shards = 3
		cur.Spec.Database.Storage.Size = ptr.To(resource.MustParse("20Gi"))
		cur.Spec.Kafka.Topics[0].Partitions = 24
	})
}

func assertNoChildren(t *testing.T, ns string) {
	t.Helper()
	if n, kinds := childrenIn(t, ns); n > 0 {
		t.Errorf("rejected manifests left %d children behind: %s", n, kinds)
	}
}

// childrenIn counts the objects the operator manages in ns, of every kind it writes, and names them.
func childrenIn(t *testing.T, ns string) (int, string) {
	t.Helper()
	sel := client.MatchingLabels{scalestackv1alpha1.LabelManagedBy: scalestackv1alpha1.ManagedByValue}
	var names []string
	for _, list := range []client.ObjectList{&appsv1.DeploymentList{}, &appsv1.StatefulSetList{}, &corev1.ConfigMapList{},
		&corev1.SecretList{}, &corev1.ServiceList{}, &corev1.ServiceAccountList{}, &networkingv1.NetworkPolicyList{},
		&networkingv1.IngressList{}, &batchv1.CronJobList{}, &policyv1.PodDisruptionBudgetList{}} {
		if err := k8s.List(context.Background(), list, client.InNamespace(ns), sel); err != nil {
			t.Fatal(err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			o := it.(client.Object)
			names = append(names, fmt.Sprintf("%T/%s", list, o.GetName()))
		}
	}
	return len(names), strings.Join(names, ", ")
}

// validBackup is a backup section the API server accepts.
func validBackup() *scalestackv1alpha1.BackupSpec {
	return &scalestackv1alpha1.BackupSpec{ObjectStore: scalestackv1alpha1.ObjectStoreSpec{Endpoint: "https://s3.example.com", Bucket: "backups",
		Credentials: scalestackv1alpha1.ObjectStoreCredentials{SecretName: "s3"}}}
}
