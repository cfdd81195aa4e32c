package render

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
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

// BackupSchedule parses backup.schedule (default scalestackv1alpha1.DefaultBackupSchedule), in
// UTC. The CRD's pattern admits only five-field expressions and descriptors; this is where the
// values of the fields are checked.
func BackupSchedule(sp *scalestackv1alpha1.SocialPlatform) (cron.Schedule, error) {
	spec := scalestackv1alpha1.DefaultBackupSchedule
	if b := sp.Spec.Database.Backup; b != nil && b.Schedule != "" {
		spec = b.Schedule
	}
	s, err := cron.ParseStandard("CRON_TZ=UTC " + spec)
	if err != nil {
		return nil, fmt.Errorf("spec.database.backup.schedule %q: %w", spec, err)
	}
	return s, nil
}

// DefaultBackupRetentionCount is how many full backups a shard keeps when retention.count is
// unset.
const DefaultBackupRetentionCount = 7

// BackupRetention is backup.retention with the default applied: count, and maxAge (0: none).
func BackupRetention(sp *scalestackv1alpha1.SocialPlatform) (count int, maxAge time.Duration) {
	count = DefaultBackupRetentionCount
	if b := sp.Spec.Database.Backup; b != nil {
		if b.Retention.Count != nil {
			count = int(*b.Retention.Count)
		}
		if b.Retention.MaxAge != nil {
			maxAge = b.Retention.MaxAge.Duration
		}
	}
	return count, maxAge
}

// LongestScheduleGap is the longest time between two consecutive runs of the schedule over the
// five weeks after from (a month's irregular gaps included).
func LongestScheduleGap(s cron.Schedule, from time.Time) time.Duration {
	var longest time.Duration
	prev := s.Next(from)
	for end := from.Add(35 * 24 * time.Hour); !prev.IsZero() && prev.Before(end); {
		next := s.Next(prev)
		if next.IsZero() {
			break
		}
		longest = max(longest, next.Sub(prev))
		prev = next
	}
	return longest
}

// BackupTooOld is the age of a shard's newest full backup beyond which ScalestackBackupTooOld
// fires: one and a half of the schedule's longest gap (one run missed), and at least two hours.
func BackupTooOld(sp *scalestackv1alpha1.SocialPlatform) time.Duration {
	s, err := BackupSchedule(sp)
	if err != nil {
		return 36 * time.Hour
	}
	// A fixed origin, so the rendered rule does not change from one pass to the next.
	gap := LongestScheduleGap(s, time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC))
	return max(gap*3/2, 2*time.Hour).Round(time.Minute)
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
	if b := sp.Spec.Database.Backup; b != nil {
		return credentialKeys(b.ObjectStore.Credentials)
	}
	return credentialKeys(scalestackv1alpha1.ObjectStoreCredentials{})
}

func credentialKeys(c scalestackv1alpha1.ObjectStoreCredentials) (id, secret string) {
	return cmp.Or(c.AccessKeyIDKey, "accessKeyId"), cmp.Or(c.SecretAccessKeyKey, "secretAccessKey")
}

// RestorePrefix is restore.source.prefix with the default applied: "<namespace>/<name>" of this
// platform (a deleted platform of the same name).
func RestorePrefix(sp *scalestackv1alpha1.SocialPlatform) string {
	if r := sp.Spec.Database.Restore; r != nil && r.Source.Prefix != "" {
		return strings.Trim(r.Source.Prefix, "/")
	}
	return sp.Namespace + "/" + sp.Name
}

// RestoreIntoBackup reports whether restore.source is the place backup writes to (the CRD
// catches the plain cases; this one also an explicit prefix equal to the default).
func RestoreIntoBackup(sp *scalestackv1alpha1.SocialPlatform) bool {
	r, b := sp.Spec.Database.Restore, sp.Spec.Database.Backup
	return r != nil && b != nil && strings.TrimRight(r.Source.Endpoint, "/") == strings.TrimRight(b.ObjectStore.Endpoint, "/") &&
		r.Source.Bucket == b.ObjectStore.Bucket && RestorePrefix(sp) == BackupPrefix(sp)
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
