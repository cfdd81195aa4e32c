package render

import (
	"encoding/json"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/pkg/shard"
)

// A tier is everything one phase of the reconcile converges, as this package decides it: the
// controllers apply what they are given, in the order given, and own no inventory of their own.

// Object is one child as the operator applies it: a typed apply configuration of a built-in kind
// (k8s.io/client-go/applyconfigurations), or an *unstructured.Unstructured for the kinds the
// operator has no Go client types for (Strimzi's, prometheus-operator's).
type Object = any

// Absent is a child the spec no longer asks for (an empty object of its kind, with its name and
// namespace set): the controllers delete it when the platform controls it, and leave it otherwise.
type Absent interface {
	metav1.Object
	runtime.Object
}

// Tier is a phase's children in apply order.
type Tier struct {
	// Steps are applied one after the other; the objects of one step do not depend on each other
	// and may be applied concurrently.
	Steps [][]Object
	// Absent are deleted after the steps are applied.
	Absent []Absent
}

// Objects lists every object of the tier, in order.
func (t Tier) Objects() []Object {
	var out []Object
	for _, s := range t.Steps {
		out = append(out, s...)
	}
	return out
}

// SecretsTier is the database credentials Secret, with the passwords of the live Secret (never
// regenerated) completed by the caller's freshly generated ones.
func SecretsTier(sp *scalestackv1alpha1.SocialPlatform, passwords map[string][]byte) Tier {
	return Tier{Steps: [][]Object{{DatabaseSecret(sp, passwords)}}}
}

// NetworkTier is the NetworkPolicies: deny all ingress to the platform's pods, then the paths the
// stack uses.
func NetworkTier(sp *scalestackv1alpha1.SocialPlatform) Tier {
	var step []Object
	for _, np := range NetworkPolicies(sp) {
		step = append(step, np)
	}
	return Tier{Steps: [][]Object{step}}
}

// DataInputs are the facts the data tier needs besides the platform.
type DataInputs struct {
	// AgentImage runs the replication agent (the apps image).
	AgentImage string
	// ShardMap is the published shard map as observed (nil when missing or unreadable): its
	// version is bumped only when the content changes.
	ShardMap *shard.Map
	// Primaries are the shards' primaries decided in this pass (failover, switchover); the others
	// keep the primary the observed map records.
	Primaries map[int32]Primary
	// Serving holds the shards whose primary of record is ready; a shard that has never taken
	// new users starts to once it is in here.
	Serving map[int32]bool
	// ClaimSizes are the claim template sizes of StatefulSets whose claims cannot grow, by name.
	ClaimSizes map[string]resource.Quantity
	// KeepReplicas holds, by replicas StatefulSet, a floor above replicasPerShard: it still holds
	// the shard's primary of record, which a scale-down would delete.
	KeepReplicas map[string]int32
	// Replacing names the StatefulSets being replaced for larger claims: left out of this pass,
	// created again once they are gone.
	Replacing map[string]bool
}

// placeNewUsers sets each shard's weight: a shard takes new users once its primary has been ready
// (and from then on, whatever happens to it), so a shard being added takes none before its server
// runs and the apps, which migrate a shard before they place users on it, can migrate it. A new
// platform's shards all take users at once: there is nothing to protect, and a map must place
// users somewhere.
func placeNewUsers(desired, observed *shard.Map, serving map[int32]bool) {
	took := map[int]bool{}
	if observed != nil {
		for _, p := range observed.Shards {
			took[p.Index] = p.Weight > 0
		}
	}
	anyTakes := false
	for i := range desired.Shards {
		if !took[desired.Shards[i].Index] && !serving[int32(desired.Shards[i].Index)] {
			desired.Shards[i].Weight = 0
		}
		anyTakes = anyTakes || desired.Shards[i].Weight > 0
	}
	if !anyTakes {
		for i := range desired.Shards {
			desired.Shards[i].Weight = 1
		}
	}
}

// Primary is a shard's primary of record: the pod, and the epoch that counts its moves.
type Primary struct {
	Pod   string
	Epoch int64
}

// PrimaryOf is shard i's primary of record: decided in this pass (decided), else recorded in the
// observed shard map, else the primary StatefulSet's pod at epoch 0.
func PrimaryOf(sp *scalestackv1alpha1.SocialPlatform, i int32, observed *shard.Map, decided map[int32]Primary) Primary {
	if p, ok := decided[i]; ok {
		return p
	}
	if observed != nil {
		for _, p := range observed.Shards {
			if p.Index == int(i) && p.PrimaryPod != "" {
				return Primary{Pod: p.PrimaryPod, Epoch: p.Epoch}
			}
		}
	}
	return Primary{Pod: sp.ShardDefaultPrimaryPod(i)}
}

// DataTier is the shards: the server config and the shard map, then per physical shard a headless
// Service, the -primary and -replicas Services and the two StatefulSets (which carry the config's
// hash, so a config change rolls them). Shards only grow, and a new shard starts with an empty
// block of logical shards, so growing moves no data.
func DataTier(sp *scalestackv1alpha1.SocialPlatform, in DataInputs) (Tier, error) {
	if RestoreIntoBackup(sp) {
		// Nothing is written: the restored platform's archive would overwrite the source's.
		return Tier{}, fmt.Errorf("spec.database.restore.source is %s/%s, where spec.database.backup writes: give backup.objectStore another prefix",
			sp.Spec.Database.Restore.Source.Bucket, RestorePrefix(sp))
	}
	cfg := DatabaseConfig(sp)
	desired, err := ShardMap(sp)
	if err != nil {
		return Tier{}, err
	}
	primaries := make([]Primary, Shards(sp))
	for i := range primaries {
		primaries[i] = PrimaryOf(sp, int32(i), in.ShardMap, in.Primaries)
		if primaries[i].Epoch > 0 {
			// Recorded once it moved: a platform that never failed over keeps the map it had.
			desired.Shards[i].PrimaryPod, desired.Shards[i].Epoch = primaries[i].Pod, primaries[i].Epoch
		}
	}
	placeNewUsers(desired, in.ShardMap, in.Serving)
	raw, err := json.MarshalIndent(shard.Reconcile(in.ShardMap, desired), "", "  ")
	if err != nil {
		return Tier{}, fmt.Errorf("encoding shard map: %w", err)
	}
	var shards []Object
	for i := range Shards(sp) {
		shards = append(shards,
			ShardHeadlessService(sp, i),
			ShardService(sp, i, "primary", primaries[i].Pod),
			ShardService(sp, i, "replica", ""),
		)
		for _, role := range []string{"primary", "replica"} {
			name := sp.ShardPrimaryName(i)
			if role == "replica" {
				name = sp.ShardReplicasName(i)
			}
			if in.Replacing[name] {
				continue
			}
			shardInputs := ShardInputs{AgentImage: in.AgentImage, ConfigHash: HashData(cfg.Data)}
			if q, ok := in.ClaimSizes[name]; ok {
				shardInputs.ClaimSize = &q
			}
			if n, ok := in.KeepReplicas[name]; ok && role == "replica" {
				shardInputs.MinReplicas = n
			}
			shards = append(shards, ShardStatefulSet(sp, i, role, shardInputs))
		}
	}
	return Tier{Steps: [][]Object{{cfg, ShardMapConfigMap(sp, string(raw))}, shards}}, nil
}

// CacheTier is Redis: redis.conf (its hash rolls the pod), the Service, the StatefulSet.
func CacheTier(sp *scalestackv1alpha1.SocialPlatform) Tier {
	cfg := CacheConfig(sp)
	return Tier{Steps: [][]Object{{cfg, CacheService(sp), CacheStatefulSet(sp, HashData(cfg.Data))}}}
}

// KafkaTier is the event log through Strimzi, at the served API version: the cluster and its node
// pool, then the topics. An External cluster's topics are made through Kafka's admin API instead
// (Topics), so its tier is empty.
func KafkaTier(sp *scalestackv1alpha1.SocialPlatform, strimziVersion string) Tier {
	if sp.Spec.Kafka.Mode == scalestackv1alpha1.KafkaModeExternal || strimziVersion == "" {
		return Tier{}
	}
	objs := StrimziObjects(sp, strimziVersion)
	cluster, topics := []Object{}, []Object{}
	for _, u := range objs {
		if u.GetKind() == "KafkaTopic" {
			topics = append(topics, u)
		} else {
			cluster = append(cluster, u)
		}
	}
	return Tier{Steps: [][]Object{cluster, topics}}
}

// AppsTier is the app services: the shared config, then per service its ServiceAccount, Service
// and PodDisruptionBudget, then the Deployments (once their ServiceAccounts exist). The
// Deployments carry the config's hash, so a config change rolls them and nothing else does.
func AppsTier(sp *scalestackv1alpha1.SocialPlatform, defaultImage string) Tier {
	cfg := AppsConfig(sp)
	in := AppInputs{DefaultImage: defaultImage, ConfigHash: HashData(cfg.Data)}
	var identities, deployments []Object
	for _, c := range scalestackv1alpha1.AppComponents {
		identities = append(identities, AppServiceAccount(sp, c), AppService(sp, c), AppPodDisruptionBudget(sp, c))
		deployments = append(deployments, AppDeployment(sp, c, in))
	}
	return Tier{Steps: [][]Object{{cfg}, identities, deployments}}
}

// MonitoringTier is the Grafana dashboard ConfigMap (for Grafana's sidecar: it needs no
// prometheus-operator), and, when the cluster serves prometheus-operator's kinds, the
// PrometheusRule (SLO recording rules, burn-rate and saturation alerts) and the ServiceMonitors.
func MonitoringTier(sp *scalestackv1alpha1.SocialPlatform, prometheusOperator bool) (Tier, error) {
	var t Tier
	if DashboardsEnabled(sp) {
		dash, err := Dashboard(sp)
		if err != nil {
			return Tier{}, err
		}
		t.Steps = append(t.Steps, []Object{DashboardConfigMap(sp, dash)})
	} else {
		t.Absent = append(t.Absent, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: DashboardName(sp), Namespace: sp.Namespace}})
	}
	if !prometheusOperator {
		return t, nil
	}
	typed := []runtime.Object{PrometheusRule(sp)}
	for _, sm := range ServiceMonitors(sp) {
		typed = append(typed, sm)
	}
	var step []Object
	for _, o := range typed {
		u, err := ToUnstructured(o)
		if err != nil {
			return Tier{}, err
		}
		step = append(step, u)
	}
	t.Steps = append(t.Steps, step)
	return t, nil
}

// ArchiveTier is the archiver CronJob, or its absence when spec.database.archive is not declared.
func ArchiveTier(sp *scalestackv1alpha1.SocialPlatform, defaultImage string) Tier {
	if cj := ArchiverCronJob(sp, AppInputs{DefaultImage: defaultImage}); cj != nil {
		return Tier{Steps: [][]Object{{cj}}}
	}
	return Tier{Absent: []Absent{&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: sp.ArchiverName(), Namespace: sp.Namespace}}}}
}

// EdgeTier is the CDN origin Ingress, or its absence when spec.cdn.originHost is empty.
func EdgeTier(sp *scalestackv1alpha1.SocialPlatform) Tier {
	var t Tier
	var step []Object
	for _, e := range []struct {
		name string
		ing  *networkingv1ac.IngressApplyConfiguration
	}{{sp.CDNOriginName(), CDNOriginIngress(sp)}, {sp.SiteIngressName(), SiteIngress(sp)}} {
		if e.ing != nil {
			step = append(step, e.ing)
			continue
		}
		t.Absent = append(t.Absent, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: e.name, Namespace: sp.Namespace}})
	}
	if len(step) > 0 {
		t.Steps = [][]Object{step}
	}
	return t
}

// ToUnstructured converts a typed object and drops what the conversion adds but nobody sets (a
// null creationTimestamp, an empty status), which a no-op check would see as a difference.
func ToUnstructured(o runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, fmt.Errorf("converting %T: %w", o, err)
	}
	delete(m, "status")
	return &unstructured.Unstructured{Object: prune(m).(map[string]any)}, nil
}

func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			p := prune(val)
			if p == nil {
				delete(x, k)
				continue
			}
			if mm, ok := p.(map[string]any); ok && len(mm) == 0 {
				delete(x, k)
				continue
			}
			x[k] = p
		}
		return x
	case []any:
		for i := range x {
			x[i] = prune(x[i])
		}
		return x
	default:
		return v
	}
}

// AcceptedSpecKey is the key of the accepted spec's ConfigMap that holds the spec, as JSON.
const AcceptedSpecKey = "spec.json"

// AcceptedSpecConfigMap records sp's spec as the last one whose children the API server accepted.
// The spec holds no secret (passwords live in Secrets), so a ConfigMap is the right home.
func AcceptedSpecConfigMap(sp *scalestackv1alpha1.SocialPlatform) (*corev1ac.ConfigMapApplyConfiguration, error) {
	raw, err := json.Marshal(sp.Spec)
	if err != nil {
		return nil, fmt.Errorf("encoding the accepted spec: %w", err)
	}
	return corev1ac.ConfigMap(sp.AcceptedSpecName(), sp.Namespace).
		WithLabels(sp.Labels("accepted-spec")).
		WithOwnerReferences(OwnerReference(sp)).
		WithData(map[string]string{AcceptedSpecKey: string(raw), "generation": fmt.Sprint(sp.Generation)}), nil
}
