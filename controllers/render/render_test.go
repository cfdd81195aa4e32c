package render

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/pkg/platform"
	"github.com/scalestack/scalestack/pkg/shard"
)

var update = flag.Bool("update", false, "rewrite the golden files (make update-golden)")

// sample is config/samples' platform, as the API server would store it.
func sample(t *testing.T) *scalestackv1alpha1.SocialPlatform {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "scalestack_v1alpha1_socialplatform.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sp := &scalestackv1alpha1.SocialPlatform{}
	if err := yaml.UnmarshalStrict(raw, sp); err != nil {
		t.Fatal(err)
	}
	sp.Namespace = "shop"
	sp.UID = types.UID("00000000-0000-0000-0000-000000000001")
	return sp
}

// golden compares got with testdata/<name>, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run make update-golden): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendered output; if the change is intended, run make update-golden and review the diff.\n--- got ---\n%s", path, got)
	}
}

func toYAML(t *testing.T, objs ...any) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes()
}

// tierYAML is a tier exactly as the controllers apply it: every object of every step in order,
// then what it deletes.
func tierYAML(t *testing.T, name string, tier Tier) []byte {
	t.Helper()
	var b bytes.Buffer
	for i, step := range tier.Steps {
		fmt.Fprintf(&b, "# %s tier, step %d of %d\n", name, i+1, len(tier.Steps))
		b.Write(toYAML(t, step...))
	}
	for _, a := range tier.Absent {
		fmt.Fprintf(&b, "# %s tier, absent (deleted when the platform controls it): %T %s/%s\n", name, a, a.GetNamespace(), a.GetName())
	}
	return b.Bytes()
}

func TestAppsGolden(t *testing.T) {
	golden(t, "apps.golden.yaml", tierYAML(t, "apps", AppsTier(sample(t), "unused")))
}

func TestDataTierGolden(t *testing.T) {
	sp := sample(t)
	data, err := DataTier(sp, DataInputs{AgentImage: "ghcr.io/scalestack/apps:v0.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	out := tierYAML(t, "secrets", SecretsTier(sp, map[string][]byte{SecretKeyRoot: []byte("r"), SecretKeyApp: []byte("a"),
		SecretKeyReplication: []byte("p"), SecretKeyExporter: []byte("e")}))
	out = append(out, tierYAML(t, "database", data)...)
	out = append(out, tierYAML(t, "cache", CacheTier(sp))...)
	out = append(out, tierYAML(t, "archive", ArchiveTier(sp, "unused"))...)
	out = append(out, tierYAML(t, "cdn", EdgeTier(sp))...)
	golden(t, "data.golden.yaml", out)
}

func TestKafkaStrimziGolden(t *testing.T) {
	sp := sample(t)
	sp.Spec.Kafka.Mode = scalestackv1alpha1.KafkaModeStrimzi
	out := tierYAML(t, "kafka (Strimzi v1)", KafkaTier(sp, "v1"))
	out = append(out, tierYAML(t, "kafka (Strimzi v1beta2)", KafkaTier(sp, "v1beta2"))...)
	golden(t, "kafka-strimzi.golden.yaml", out)
	if len(KafkaTier(sp, "").Steps) != 0 {
		t.Error("objects rendered for a cluster without Strimzi")
	}
	sp.Spec.Kafka.Mode = scalestackv1alpha1.KafkaModeExternal
	if len(KafkaTier(sp, "v1").Steps) != 0 {
		t.Error("Strimzi objects rendered for an External cluster")
	}
}

func TestMonitoringGolden(t *testing.T) {
	sp := sample(t)
	tier, err := MonitoringTier(sp, true)
	if err != nil {
		t.Fatal(err)
	}
	// The dashboard and the rules have goldens of their own (dashboard.golden.json,
	// rules.golden.yaml): pin the tier's inventory and the ServiceMonitors.
	var b bytes.Buffer
	for i, step := range tier.Steps {
		fmt.Fprintf(&b, "# monitoring tier, step %d of %d\n", i+1, len(tier.Steps))
		for _, o := range step {
			u, ok := o.(interface{ GetKind() string })
			if ok && u.GetKind() == "ServiceMonitor" {
				b.Write(toYAML(t, o))
				continue
			}
			switch o := o.(type) {
			case interface{ GetName() string }:
				fmt.Fprintf(&b, "# %T %s\n", o, o.GetName())
			case interface{ GetName() *string }:
				fmt.Fprintf(&b, "# %T %s\n", o, *o.GetName())
			}
		}
	}
	golden(t, "monitoring.golden.yaml", b.Bytes())

	without, err := MonitoringTier(sp, false)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(without.Objects()); n != 1 {
		t.Errorf("without prometheus-operator: %d objects, want the dashboard only", n)
	}
	sp.Spec.Observability.Dashboards = ptr.To(false)
	off, _ := MonitoringTier(sp, false)
	if len(off.Objects()) != 0 || len(off.Absent) != 1 || off.Absent[0].GetName() != DashboardName(sp) {
		t.Errorf("dashboards off: %+v", off)
	}
}

func TestKafkaTopicName(t *testing.T) {
	sp := sample(t)
	cases := []struct{ topic, want string }{
		{"user-created", sp.Name + "-user-created"},
		{"post-created.dlq", sp.Name + "-post-created-dlq-"},
		{"Orders_V2", sp.Name + "-orders-v2-"},
		{strings.Repeat("t", 249), sp.Name + "-" + strings.Repeat("t", 253-len(sp.Name)-1-7) + "-"},
	}
	seen := map[string]string{}
	for _, tc := range cases {
		got := KafkaTopicName(sp, tc.topic)
		if !strings.HasPrefix(got, tc.want) || (strings.HasSuffix(tc.want, "-") && len(got) != len(tc.want)+6) {
			t.Errorf("KafkaTopicName(%q) = %q, want %q plus a 6-character hash when the name was changed", tc.topic, got, tc.want)
		}
		if len(got) > 253 {
			t.Errorf("%q is longer than a Kubernetes name", got)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("%q and %q share the name %q", other, tc.topic, got)
		}
		seen[got] = tc.topic
	}
	// Two topics that map to the same DNS-safe name still get different object names.
	if a, b := KafkaTopicName(sp, "a.b"), KafkaTopicName(sp, "a_b"); a == b {
		t.Errorf("a.b and a_b collide as %q", a)
	}
}

func TestDeletionPolicyDecidesOwnership(t *testing.T) {
	sp := sample(t)
	if s := DatabaseSecret(sp, nil); len(s.OwnerReferences) != 0 {
		t.Errorf("Retain: the Secret has owner references %+v; deleting the platform would delete it", s.OwnerReferences)
	}
	if sts := ShardStatefulSet(sp, 0, "primary", ShardInputs{}); *sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted != "Retain" {
		t.Errorf("Retain: volume claims deleted with the StatefulSet")
	}
	sp.Spec.Database.DeletionPolicy = scalestackv1alpha1.DeletionPolicyDelete
	if s := DatabaseSecret(sp, nil); len(s.OwnerReferences) != 1 {
		t.Errorf("Delete: the Secret is not owned by the platform")
	}
	if sts := ShardStatefulSet(sp, 0, "replica", ShardInputs{}); *sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted != "Delete" ||
		*sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled != "Retain" {
		t.Errorf("Delete: retention policy %+v", sts.Spec.PersistentVolumeClaimRetentionPolicy)
	}
}

func TestCacheMemory(t *testing.T) {
	cases := []struct{ size, maxmemory, limit string }{
		{"256Mi", "268435456", "320Mi"},
		{"64Mi", "67108864", "96Mi"}, // at least 32Mi of overhead
		{"4Gi", "4294967296", "5Gi"},
	}
	for _, c := range cases {
		sp := sample(t)
		sp.Spec.Cache.Size = resource.MustParse(c.size)
		mm, limit := CacheMemory(sp)
		if fmt.Sprint(mm) != c.maxmemory || limit.String() != c.limit {
			t.Errorf("%s: maxmemory %d limit %s, want %s %s", c.size, mm, limit.String(), c.maxmemory, c.limit)
		}
		if !strings.Contains(CacheConfig(sp).Data["redis.conf"], "maxmemory "+c.maxmemory+"\n") {
			t.Errorf("%s: redis.conf lacks maxmemory %s", c.size, c.maxmemory)
		}
	}
}

// A shard being added takes no new users until its primary is ready; one that took users keeps
// taking them; a new platform's shards all take users at once.
func TestNewShardsTakeUsersOnceServing(t *testing.T) {
	sp := sample(t)
	sp.Spec.Database.Shards = 2
	weights := func(in DataInputs) []int {
		tier, err := DataTier(sp, in)
		if err != nil {
			t.Fatal(err)
		}
		m, err := shard.Parse([]byte(tier.Steps[0][1].(*corev1ac.ConfigMapApplyConfiguration).Data[ShardMapKey]))
		if err != nil {
			t.Fatal(err)
		}
		var w []int
		for _, p := range m.Shards {
			w = append(w, p.Weight)
		}
		return w
	}
	if got := weights(DataInputs{}); fmt.Sprint(got) != "[1 1]" {
		t.Errorf("a new platform: weights %v", got)
	}
	before, _ := ShardMap(sp)
	sp.Spec.Database.Shards = 3
	if got := weights(DataInputs{ShardMap: before}); fmt.Sprint(got) != "[1 1 0]" {
		t.Errorf("a shard being added: weights %v", got)
	}
	if got := weights(DataInputs{ShardMap: before, Serving: map[int32]bool{2: true}}); fmt.Sprint(got) != "[1 1 1]" {
		t.Errorf("the added shard serving: weights %v", got)
	}
}

func TestShardMapGrowsWithoutMoving(t *testing.T) {
	sp := sample(t)
	small, _ := ShardMap(sp)
	sp.Spec.Database.Shards = 4
	big, _ := ShardMap(sp)
	for i, p := range small.Shards {
		if fmt.Sprint(big.Shards[i].Ranges) != fmt.Sprint(p.Ranges) {
			t.Errorf("shard %d ranges moved: %v -> %v", i, p.Ranges, big.Shards[i].Ranges)
		}
	}
	if len(big.Shards) != 4 || big.Shards[3].Weight == 0 {
		t.Errorf("new shards do not take users: %+v", big.Shards)
	}
	sp.Spec.Database.ReplicasPerShard = ptr.To[int32](0)
	none, _ := ShardMap(sp)
	if none.Shards[0].Replicas != "" {
		t.Errorf("a shard without replicas routes reads to %q", none.Shards[0].Replicas)
	}
}

func TestNoCDNNoArchiveRenderNothing(t *testing.T) {
	sp := sample(t)
	sp.Spec.CDN = scalestackv1alpha1.CDNSpec{}
	sp.Spec.Database.Archive = nil
	if CDNOriginIngress(sp) != nil || ArchiverCronJob(sp, AppInputs{}) != nil || CDNOriginURL(sp) != "" {
		t.Error("objects rendered for absent sections")
	}
}

func TestAppDeploymentAutoscalingLeavesReplicasOut(t *testing.T) {
	sp := sample(t)
	if d := AppDeployment(sp, scalestackv1alpha1.ComponentFeed, AppInputs{}); d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Fatalf("autoscaling off: replicas %v, want 2", d.Spec.Replicas)
	}
	sp.Spec.SLO.Autoscaling.Enabled = true
	if d := AppDeployment(sp, scalestackv1alpha1.ComponentFeed, AppInputs{}); d.Spec.Replicas != nil {
		t.Errorf("autoscaling on: replicas %d applied; the autoscaler owns them", *d.Spec.Replicas)
	}
}

func TestAppDeploymentDefaultImage(t *testing.T) {
	sp := sample(t)
	sp.Spec.Apps.Image = ""
	d := AppDeployment(sp, scalestackv1alpha1.ComponentUser, AppInputs{DefaultImage: "registry.example/apps:v9"})
	if got := *d.Spec.Template.Spec.Containers[0].Image; got != "registry.example/apps:v9" {
		t.Errorf("image %q", got)
	}
}

func TestAppsConfigTracingOff(t *testing.T) {
	sp := sample(t)
	sp.Spec.Observability.Tracing.Endpoint = ""
	cfg := AppsConfig(sp)
	if cfg.Data["OTEL_SDK_DISABLED"] != "true" || cfg.Data["OTEL_EXPORTER_OTLP_ENDPOINT"] != "" {
		t.Errorf("tracing not off: %v", cfg.Data)
	}
}

func TestAppsConfigEmail(t *testing.T) {
	sp := sample(t)
	if d := AppsConfig(sp).Data; d["SCALESTACK_SMTP_ADDR"] != "" {
		t.Errorf("an SMTP relay without spec.apps.email: %v", d)
	}
	sp.Spec.Apps.Email = &scalestackv1alpha1.EmailSpec{SMTPAddress: "mail:2525"}
	d := AppsConfig(sp).Data
	if d["SCALESTACK_SMTP_ADDR"] != "mail:2525" || d["SCALESTACK_SMTP_FROM"] != "welcome@scalestack.local" {
		t.Errorf("email settings: %v", d)
	}
}

func TestAppsConfigRateLimit(t *testing.T) {
	sp := sample(t)
	d := AppsConfig(sp).Data
	for _, env := range []string{"SCALESTACK_RATE_LIMIT", "SCALESTACK_RATE_BURST", "SCALESTACK_AUTH_RATE_LIMIT", "SCALESTACK_AUTH_RATE_BURST"} {
		if v, ok := d[env]; ok {
			t.Errorf("%s=%q without spec.apps.rateLimit: the apps' defaults should hold", env, v)
		}
	}
	sp.Spec.Apps.RateLimit = scalestackv1alpha1.RateLimitSpec{RequestsPerSecond: ptr.To[int32](500), AuthBurst: ptr.To[int32](40)}
	d = AppsConfig(sp).Data
	if d["SCALESTACK_RATE_LIMIT"] != "500" || d["SCALESTACK_AUTH_RATE_BURST"] != "40" {
		t.Errorf("rate limits: %v", d)
	}
	if _, ok := d["SCALESTACK_RATE_BURST"]; ok {
		t.Errorf("an unset burst was rendered: %v", d)
	}
}

func TestConfigHash(t *testing.T) {
	sp := sample(t)
	a := HashData(AppsConfig(sp).Data)
	if b := HashData(AppsConfig(sp).Data); a != b {
		t.Fatalf("hash not stable: %s %s", a, b)
	}
	sp.Spec.Cache.DefaultTTL = &metav1.Duration{Duration: time.Hour}
	if b := HashData(AppsConfig(sp).Data); a == b {
		t.Errorf("hash unchanged after a config change")
	}
	if HashData(map[string]string{"ab": "c"}) == HashData(map[string]string{"a": "bc"}) {
		t.Errorf("hash ignores key/value boundaries")
	}
}

func TestReplicaDefaults(t *testing.T) {
	cases := []struct {
		spec          scalestackv1alpha1.ServiceSpec
		r, minR, maxR int32
	}{
		{scalestackv1alpha1.ServiceSpec{}, 2, 1, 10},
		{scalestackv1alpha1.ServiceSpec{MinReplicas: ptr.To[int32](3)}, 3, 3, 10},
		{scalestackv1alpha1.ServiceSpec{MaxReplicas: ptr.To[int32](1)}, 1, 1, 1},
		{scalestackv1alpha1.ServiceSpec{Replicas: ptr.To[int32](20)}, 20, 1, 20},
	}
	for _, tc := range cases {
		if r, lo, hi := Replicas(tc.spec), MinReplicas(tc.spec), MaxReplicas(tc.spec); r != tc.r || lo != tc.minR || hi != tc.maxR {
			t.Errorf("%+v: got %d/%d/%d, want %d/%d/%d", tc.spec, r, lo, hi, tc.r, tc.minR, tc.maxR)
		}
	}
}

func TestNetworkPoliciesGolden(t *testing.T) {
	sp := sample(t)
	var objs []any
	for _, np := range NetworkPolicies(sp) {
		objs = append(objs, np)
	}
	golden(t, "network.golden.yaml", toYAML(t, objs...))
}

// After a failover the -primary Service selects the new primary by pod name and the shard map
// records it; a platform that never failed over has a map without the record.
func TestPrimaryOfRecord(t *testing.T) {
	sp := sample(t)
	selector := func(tier Tier) map[string]string {
		for _, o := range tier.Steps[1] {
			if s, ok := o.(*corev1ac.ServiceApplyConfiguration); ok && *s.Name == sp.ShardPrimaryName(0) {
				return s.Spec.Selector
			}
		}
		t.Fatal("no -primary Service")
		return nil
	}
	shardMap := func(tier Tier) *shard.Map {
		cm := tier.Steps[0][1].(*corev1ac.ConfigMapApplyConfiguration)
		m, err := shard.Parse([]byte(cm.Data[ShardMapKey]))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	before, err := DataTier(sp, DataInputs{})
	if err != nil {
		t.Fatal(err)
	}
	if got := selector(before)[LabelPodName]; got != sp.ShardDefaultPrimaryPod(0) {
		t.Errorf("-primary selects %q", got)
	}
	m := shardMap(before)
	if m.Shards[0].PrimaryPod != "" || m.Shards[0].Epoch != 0 {
		t.Errorf("a map with no failover records %+v", m.Shards[0])
	}
	moved := Primary{Pod: sp.ShardReplicasName(0) + "-0", Epoch: 1}
	after, err := DataTier(sp, DataInputs{ShardMap: m, Primaries: map[int32]Primary{0: moved}})
	if err != nil {
		t.Fatal(err)
	}
	if got := selector(after)[LabelPodName]; got != moved.Pod {
		t.Errorf("-primary selects %q after the failover", got)
	}
	recorded := shardMap(after)
	if recorded.Shards[0].PrimaryPod != moved.Pod || recorded.Shards[0].Epoch != 1 || recorded.Version != m.Version+1 {
		t.Errorf("the map after the failover: %+v (version %d)", recorded.Shards[0], recorded.Version)
	}
	// The next pass, with nothing decided, keeps what the map records.
	if got := PrimaryOf(sp, 0, recorded, nil); got != moved {
		t.Errorf("primary of record from the map: %+v", got)
	}
}

func TestShardServersBootWithTheirIdentity(t *testing.T) {
	sp := sample(t)
	args := func(role string) []string {
		for _, c := range ShardStatefulSet(sp, 1, role, ShardInputs{}).Spec.Template.Spec.Containers {
			if *c.Name == "database" {
				return c.Args
			}
		}
		t.Fatalf("no database container in the %s StatefulSet", role)
		return nil
	}
	// The primary too starts read-only: its agent makes the primary of record writable, so a
	// demoted primary that restarts takes no write before its agent knows of the failover.
	if got := strings.Join(args("primary"), " "); !strings.Contains(got, "--server-id=101") || !strings.Contains(got, "--read-only=ON") {
		t.Errorf("primary starts with %q", got)
	}
	if got := strings.Join(args("replica"), " "); !strings.Contains(got, "--server-id=102") || !strings.Contains(got, "--read-only=ON") {
		t.Errorf("replicas start with %q: a replica must be read-only, with a server_id of its own, before the agent's first tick", got)
	}
}

// A restored platform's bootstrap reads the source store (prefix defaulting to this platform's
// namespace/name) and its credentials; a source that is where the backup writes renders nothing.
func TestRestoreReachesTheBootstrap(t *testing.T) {
	sp := sample(t)
	store := scalestackv1alpha1.ObjectStoreSpec{Endpoint: "http://store:8333", Bucket: "backups",
		Credentials: scalestackv1alpha1.ObjectStoreCredentials{SecretName: "old-s3"}}
	until := metav1.NewTime(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	sp.Spec.Database.Restore = &scalestackv1alpha1.RestoreSpec{Source: store, PointInTime: &until}
	tier, err := DataTier(sp, DataInputs{AgentImage: "apps"})
	if err != nil {
		t.Fatal(err)
	}
	out := string(tierYAML(t, "data", tier))
	for _, want := range []string{
		"name: " + platform.EnvRestorePrefix + "\n          value: " + sp.Namespace + "/" + sp.Name,
		"value: \"2026-12-02T10:00:00Z\"",
		"secretName: old-s3",
		"mountPath: " + RestoreCredentialsMountPath,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the data tier lacks %q", want)
		}
	}
	sp.Spec.Database.Backup = &scalestackv1alpha1.BackupSpec{ObjectStore: store}
	sp.Spec.Database.Backup.ObjectStore.Prefix = sp.Namespace + "/" + sp.Name + "/"
	if _, err := DataTier(sp, DataInputs{AgentImage: "apps"}); err == nil || !strings.Contains(err.Error(), "spec.database.restore.source") {
		t.Errorf("a restore from where the backup writes: %v", err)
	}
}

func TestSiteIngressPublishesTheGateway(t *testing.T) {
	sp := sample(t)
	if SiteIngress(sp) != nil || SiteURL(sp) != "" || TrustForwarded(sp) {
		t.Fatalf("no ingress.host, yet a site Ingress, URL or trusted forwarding")
	}
	if d := AppsConfig(sp).Data; d["SCALESTACK_TRUST_FORWARDED"] != "" || d["SCALESTACK_SECURE_COOKIES"] != "" {
		t.Errorf("apps config without an ingress: %v", d)
	}
	sp.Spec.Ingress = scalestackv1alpha1.IngressSpec{Host: "social.example.com", IngressClassName: ptr.To("nginx"), TLSSecretName: "social-tls"}
	ing := SiteIngress(sp)
	r := ing.Spec.Rules[0]
	if *ing.Name != "demo-site" || *r.Host != "social.example.com" || *r.HTTP.Paths[0].Path != "/" ||
		*r.HTTP.Paths[0].Backend.Service.Name != "demo-gateway" || *ing.Spec.IngressClassName != "nginx" || *ing.Spec.TLS[0].SecretName != "social-tls" {
		t.Errorf("site Ingress %+v", ing.Spec)
	}
	if SiteURL(sp) != "https://social.example.com/" {
		t.Errorf("site URL %q", SiteURL(sp))
	}
	if d := AppsConfig(sp).Data; d["SCALESTACK_TRUST_FORWARDED"] != "true" || d["SCALESTACK_SECURE_COOKIES"] != "true" {
		t.Errorf("behind a TLS ingress the gateway must trust X-Forwarded-For and set Secure cookies: %v", d)
	}
	sp.Spec.Ingress.TrustForwarded = ptr.To(false)
	if _, ok := AppsConfig(sp).Data["SCALESTACK_TRUST_FORWARDED"]; ok {
		t.Errorf("trustForwarded: false is not honoured")
	}
	tier := EdgeTier(sp)
	if n := len(tier.Objects()); n != 2 || len(tier.Absent) != 0 {
		t.Errorf("edge tier with an origin and a site: %d objects, %d absent", n, len(tier.Absent))
	}
	sp.Spec.Ingress = scalestackv1alpha1.IngressSpec{}
	if tier := EdgeTier(sp); len(tier.Absent) != 1 || tier.Absent[0].GetName() != "demo-site" {
		t.Errorf("a removed ingress.host must delete the site Ingress: %+v", tier.Absent)
	}
}

// failover.semiSyncTimeout reaches every shard pod's agent; unset, the default (1s).
func TestSemiSyncTimeoutReachesTheAgents(t *testing.T) {
	sp := sample(t)
	env := func(role string) string {
		for _, c := range ShardStatefulSet(sp, 0, role, ShardInputs{}).Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if *e.Name == platform.EnvAgentSemiSyncTimeout {
					return *e.Value
				}
			}
		}
		t.Fatalf("no %s in the %s StatefulSet", platform.EnvAgentSemiSyncTimeout, role)
		return ""
	}
	if got := env("primary"); got != "1s" {
		t.Errorf("default semi-sync timeout %q, want 1s", got)
	}
	sp.Spec.Database.Failover.SemiSyncTimeout = &metav1.Duration{Duration: 5 * time.Second}
	for _, role := range []string{"primary", "replica"} {
		if got := env(role); got != "5s" {
			t.Errorf("%s: semi-sync timeout %q, want 5s", role, got)
		}
	}
}
