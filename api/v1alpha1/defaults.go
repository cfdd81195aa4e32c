package v1alpha1

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Defaults of the fields a manifest may leave out: the one place each is written. The CRD's
// `+kubebuilder:default` markers carry the same values, so that the API server stores them and
// the transition rules (engine immutable, shards never shrink, partitions never shrink) see a
// value on every object; TestCRDDefaultsMatchTheGoDefaults fails when a marker and its constant
// differ. controllers/render applies the same constants to objects that were never defaulted by
// an API server (tests, objects stored before a field existed). docs/reconcile.md lists them, with
// the defaults that are render's alone (replicas, resources, TTLs).
const (
	// DefaultFailoverAfter and DefaultFailoverMaxLag are spec.database.failover's, which has no
	// CRD defaults (an unset duration reads as the default, so old objects need no migration).
	DefaultFailoverAfter  = 30 * time.Second
	DefaultFailoverMaxLag = 10 * time.Second
	// DefaultSemiSyncTimeout is spec.database.failover.semiSyncTimeout's.
	DefaultSemiSyncTimeout = time.Second

	DefaultImagePullPolicy  = corev1.PullIfNotPresent
	DefaultEmailFrom        = "welcome@scalestack.local"
	DefaultEngine           = EngineMariaDB
	DefaultShards           = int32(1)
	DefaultReplicasPerShard = int32(1)
	DefaultDeletionPolicy   = DeletionPolicyRetain
	DefaultArchiveSchedule  = "30 3 * * *"
	DefaultBackupSchedule   = "0 3 * * *"
	DefaultEvictionPolicy   = EvictionPolicy("allkeys-lru")
	DefaultKafkaMode        = KafkaModeStrimzi
	DefaultKafkaBrokers     = int32(3)
	DefaultTopicPartitions  = int32(6)
	DefaultDeadLetter       = true
	DefaultAvailability     = "99.9"
	DefaultSLOWindow        = "30d"
)

// CRDDefaults maps each defaulted field, by its path in the CRD's schema, to its default.
var CRDDefaults = map[string]any{
	"spec.apps.imagePullPolicy":      string(DefaultImagePullPolicy),
	"spec.apps.email.from":           DefaultEmailFrom,
	"spec.database.engine":           string(DefaultEngine),
	"spec.database.shards":           DefaultShards,
	"spec.database.replicasPerShard": DefaultReplicasPerShard,
	"spec.database.deletionPolicy":   string(DefaultDeletionPolicy),
	"spec.database.archive.schedule": DefaultArchiveSchedule,
	"spec.database.backup.schedule":  DefaultBackupSchedule,
	"spec.cache.evictionPolicy":      string(DefaultEvictionPolicy),
	"spec.kafka.mode":                string(DefaultKafkaMode),
	"spec.kafka.brokers":             DefaultKafkaBrokers,
	"spec.kafka.topics[].partitions": DefaultTopicPartitions,
	"spec.kafka.topics[].deadLetter": DefaultDeadLetter,
	"spec.slo.availability":          DefaultAvailability,
	"spec.slo.window":                DefaultSLOWindow,
}
