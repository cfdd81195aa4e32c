package render

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/pkg/platform"
)

// Defaults for fields the manifest may leave out. They live here rather than in the CRD so that
// a better default in a later operator version applies to platforms that never set the field;
// docs/reconcile.md lists them.
const (
	DefaultReplicas    int32 = 2
	DefaultMinReplicas int32 = 1
	DefaultMaxReplicas int32 = 10
	DefaultCacheTTL          = 10 * time.Minute

	// HTTPPort is the port every app binary serves its API, /metrics, /healthz and /readyz on.
	HTTPPort = platform.HTTPPort
	// ServicePort is the port of every app Service.
	ServicePort int32 = 80
	// RedisPort is Redis' port.
	RedisPort int32 = 6379
	// MySQLPort is the shards' port.
	MySQLPort int32 = 3306

	// ShardMapMountPath is where the shard map ConfigMap is mounted in the app pods.
	ShardMapMountPath = "/etc/scalestack/shard-map"
	// ShardMapKey is the shard map's key in its ConfigMap.
	ShardMapKey = "shardmap.json"
)

// Replicas returns the service's replicas with the default applied.
func Replicas(s scalestackv1alpha1.ServiceSpec) int32 {
	if s.Replicas != nil {
		return *s.Replicas
	}
	r := DefaultReplicas
	if s.MinReplicas != nil && r < *s.MinReplicas {
		r = *s.MinReplicas
	}
	if s.MaxReplicas != nil && r > *s.MaxReplicas {
		r = *s.MaxReplicas
	}
	return r
}

// MinReplicas returns the autoscaler's floor with the default applied.
func MinReplicas(s scalestackv1alpha1.ServiceSpec) int32 {
	if s.MinReplicas != nil {
		return *s.MinReplicas
	}
	return min(DefaultMinReplicas, Replicas(s))
}

// MaxReplicas returns the autoscaler's ceiling with the default applied.
func MaxReplicas(s scalestackv1alpha1.ServiceSpec) int32 {
	if s.MaxReplicas != nil {
		return *s.MaxReplicas
	}
	return max(DefaultMaxReplicas, Replicas(s))
}

// AppResources returns the service's resources with the default applied.
func AppResources(s scalestackv1alpha1.ServiceSpec) corev1.ResourceRequirements {
	if s.Resources != nil {
		return *s.Resources
	}
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: resource.MustParse("128Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("512Mi"),
		},
	}
}

// CacheTTL returns the cache's default TTL with the default applied.
func CacheTTL(sp *scalestackv1alpha1.SocialPlatform) time.Duration {
	if t := sp.Spec.Cache.DefaultTTL; t != nil && t.Duration > 0 {
		return t.Duration
	}
	return DefaultCacheTTL
}

// CacheEvictionPolicy returns the cache's eviction policy with the default applied.
func CacheEvictionPolicy(sp *scalestackv1alpha1.SocialPlatform) string {
	if p := sp.Spec.Cache.EvictionPolicy; p != "" {
		return string(p)
	}
	return string(scalestackv1alpha1.DefaultEvictionPolicy)
}

// AutoscalingEnabled reports whether the autoscaler owns the app Deployments' replicas.
func AutoscalingEnabled(sp *scalestackv1alpha1.SocialPlatform) bool {
	return sp.Spec.SLO.Autoscaling.Enabled
}

var (
	resourceOne = resource.MustParse("1")
	resourceTmp = resource.MustParse("64Mi")
)

// FailoverEnabled reports whether the operator promotes a replica of a shard whose primary is gone.
func FailoverEnabled(sp *scalestackv1alpha1.SocialPlatform) bool {
	return ptr.Deref(sp.Spec.Database.Failover.Enabled, true)
}

// DefaultArchiveInterval bounds how long a committed transaction waits to be archived.
const DefaultArchiveInterval = 5 * time.Minute

// BackupEnabled reports whether the shards' binary logs are archived to an object store.
func BackupEnabled(sp *scalestackv1alpha1.SocialPlatform) bool { return sp.Spec.Database.Backup != nil }

// ArchiveInterval is backup.archiveInterval with the default applied.
func ArchiveInterval(sp *scalestackv1alpha1.SocialPlatform) time.Duration {
	if b := sp.Spec.Database.Backup; b != nil && b.ArchiveInterval != nil && b.ArchiveInterval.Duration > 0 {
		return b.ArchiveInterval.Duration
	}
	return DefaultArchiveInterval
}

// BackupPrefix is the path of the platform's backups in the bucket: objectStore.prefix, or
// "<namespace>/<name>".
func BackupPrefix(sp *scalestackv1alpha1.SocialPlatform) string {
	if b := sp.Spec.Database.Backup; b != nil && b.ObjectStore.Prefix != "" {
		return strings.Trim(b.ObjectStore.Prefix, "/")
	}
	return sp.Namespace + "/" + sp.Name
}

// BackupCredentialKeys are the keys of the access key ID and secret in the credentials Secret.
func BackupCredentialKeys(sp *scalestackv1alpha1.SocialPlatform) (id, secret string) {
	id, secret = "accessKeyId", "secretAccessKey"
	if b := sp.Spec.Database.Backup; b != nil {
		if k := b.ObjectStore.Credentials.AccessKeyIDKey; k != "" {
			id = k
		}
		if k := b.ObjectStore.Credentials.SecretAccessKeyKey; k != "" {
			secret = k
		}
	}
	return id, secret
}

// RebuildDiverged reports whether the operator rebuilds diverged replicas from their primary.
func RebuildDiverged(sp *scalestackv1alpha1.SocialPlatform) bool {
	return Engine(sp) == scalestackv1alpha1.EngineMariaDB && ptr.Deref(sp.Spec.Database.Failover.RebuildDiverged, true)
}

// FailoverAfter is how long a primary must be unavailable before a failover, with the default
// applied.
func FailoverAfter(sp *scalestackv1alpha1.SocialPlatform) time.Duration {
	if d := sp.Spec.Database.Failover.After; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return scalestackv1alpha1.DefaultFailoverAfter
}

// FailoverMaxLag bounds a promoted replica's last known lag, with the default applied.
func FailoverMaxLag(sp *scalestackv1alpha1.SocialPlatform) time.Duration {
	if d := sp.Spec.Database.Failover.MaxLag; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return scalestackv1alpha1.DefaultFailoverMaxLag
}
