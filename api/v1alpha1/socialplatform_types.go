package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SocialPlatform is one whole social-network stack: the apps (gateway, user, post, feed, worker),
// MySQL-compatible shards with read replicas, a Redis cache, Kafka topics, monitoring and a CDN
// origin, provisioned and kept healthy by the scalestack operator.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sp,categories=scalestack
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Shards",type=string,JSONPath=`.status.summary.shards`
// +kubebuilder:printcolumn:name="Apps",type=string,JSONPath=`.status.summary.apps`
// +kubebuilder:printcolumn:name="Topics",type=string,JSONPath=`.status.summary.topics`,priority=1
// +kubebuilder:printcolumn:name="Gateway",type=string,JSONPath=`.status.endpoints.gateway`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 30",message="metadata.name must be at most 30 characters: it prefixes the names of the platform's StatefulSets and Services"
type SocialPlatform struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired platform.
	// +required
	Spec SocialPlatformSpec `json:"spec"`

	// status is the platform as the operator last observed it.
	// +optional
	Status SocialPlatformStatus `json:"status,omitzero"`
}

// SocialPlatformList is a list of SocialPlatforms.
//
// +kubebuilder:object:root=true
type SocialPlatformList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SocialPlatform `json:"items"`
}

// SocialPlatformSpec declares the whole stack.
type SocialPlatformSpec struct {
	// paused stops the operator from changing any child of this platform. Status is still
	// reported. Use it for maintenance by hand; set it back to false to resume.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// apps configures the social network's own services.
	// +optional
	Apps AppsSpec `json:"apps,omitzero"`

	// database configures the MySQL-compatible shards.
	// +optional
	Database DatabaseSpec `json:"database,omitzero"`

	// cache configures the Redis cache.
	// +required
	Cache CacheSpec `json:"cache"`

	// kafka configures the event log.
	// +optional
	Kafka KafkaSpec `json:"kafka,omitzero"`

	// cdn configures the origin the CDN pulls static assets from.
	// +optional
	CDN CDNSpec `json:"cdn,omitzero"`

	// ingress publishes the site itself (the gateway: its pages and API) on a host name.
	// +optional
	Ingress IngressSpec `json:"ingress,omitzero"`

	// slo declares the service level objectives and the autoscaler that defends them.
	// +optional
	SLO SLOSpec `json:"slo,omitzero"`

	// observability configures tracing, alert rules and dashboards.
	// +optional
	Observability ObservabilitySpec `json:"observability,omitzero"`
}

// AppsSpec configures the gateway, user, post, feed and worker services. They ship as one image
// holding several binaries.
type AppsSpec struct {
	// image is the apps image, e.g. ghcr.io/scalestack/apps:v0.1.0. Empty uses the operator's
	// default (its --apps-image flag), which moves with operator upgrades.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9][A-Za-z0-9._/:@-]*$')",message="image must be an image reference such as ghcr.io/scalestack/apps:v0.1.0 or one with @sha256:...: letters, digits and . _ / : @ -, no spaces"
	Image string `json:"image,omitempty"`

	// imagePullPolicy is the pull policy of the apps containers.
	// +optional
	// +kubebuilder:default=IfNotPresent
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// gateway is the public HTTP API and CDN origin.
	// +optional
	Gateway ServiceSpec `json:"gateway,omitzero"`
	// user serves signup, profiles and follows.
	// +optional
	User ServiceSpec `json:"user,omitzero"`
	// post serves posts.
	// +optional
	Post ServiceSpec `json:"post,omitzero"`
	// feed serves ranked timelines.
	// +optional
	Feed ServiceSpec `json:"feed,omitzero"`
	// worker runs the Kafka consumers (recommendations, welcome email, timeline fan-out).
	// +optional
	Worker ServiceSpec `json:"worker,omitzero"`

	// email is where the worker sends the welcome e-mail of every new user. Unset: no e-mail is
	// sent (sign-up works the same).
	// +optional
	Email *EmailSpec `json:"email,omitempty"`

	// rateLimit sets the gateway's per-client limits. Unset fields keep the apps' defaults.
	// +optional
	RateLimit RateLimitSpec `json:"rateLimit,omitzero"`
}

// RateLimitSpec sizes the gateway's per-client token buckets, which every gateway replica shares
// through the cache. A client is the signed-in user, or for public endpoints (profiles, sign-up,
// sign-in) the caller's address: behind an ingress, the last address in X-Forwarded-For
// (ingress.trustForwarded). A client over its limit gets 429 with Retry-After.
type RateLimitSpec struct {
	// requestsPerSecond is the rate each client may sustain. Defaults to 50.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	RequestsPerSecond *int32 `json:"requestsPerSecond,omitempty"`

	// burst is how many requests a client may make at once before the rate applies. Defaults to 100.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	Burst *int32 `json:"burst,omitempty"`

	// authRequestsPerSecond is the rate of sign-ups and sign-ins each address may sustain, on top
	// of requestsPerSecond: every attempt costs a password hash. Defaults to 2.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	AuthRequestsPerSecond *int32 `json:"authRequestsPerSecond,omitempty"`

	// authBurst is how many sign-ups and sign-ins an address may make at once. Defaults to 20.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	AuthBurst *int32 `json:"authBurst,omitempty"`
}

// EmailSpec is the SMTP relay of the apps' outgoing e-mail.
type EmailSpec struct {
	// smtpAddress is the relay as host:port, e.g. smtp.mail.svc:25 (plain SMTP without
	// authentication: a relay inside the cluster's network).
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=261
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$`
	SMTPAddress string `json:"smtpAddress"`

	// from is the sender's address.
	// +optional
	// +kubebuilder:default="welcome@scalestack.local"
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+$`
	From string `json:"from,omitempty"`
}

// ServiceSpec sizes one service.
//
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",message="minReplicas must be less than or equal to maxReplicas"
// +kubebuilder:validation:XValidation:rule="!has(self.replicas) || !has(self.minReplicas) || self.replicas >= self.minReplicas",message="replicas must be greater than or equal to minReplicas"
// +kubebuilder:validation:XValidation:rule="!has(self.replicas) || !has(self.maxReplicas) || self.replicas <= self.maxReplicas",message="replicas must be less than or equal to maxReplicas"
type ServiceSpec struct {
	// replicas is the number of pods when autoscaling is off, and the starting point when it is
	// on. Defaults to 2.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=500
	Replicas *int32 `json:"replicas,omitempty"`

	// minReplicas is the floor the autoscaler never scales below. Defaults to 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=500
	MinReplicas *int32 `json:"minReplicas,omitempty"`

	// maxReplicas is the ceiling the autoscaler never scales above. Defaults to 10.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=500
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`

	// resources are the container's requests and limits. Defaults to a request of 100m CPU and
	// 128Mi memory and a 512Mi memory limit.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.requests) || !has(self.limits) || ['cpu', 'memory', 'ephemeral-storage'].all(r, !(r in self.requests) || !(r in self.limits) || quantity(string(self.requests[r])).compareTo(quantity(string(self.limits[r]))) <= 0)",message="resources: every request (cpu, memory, ephemeral-storage) must be less than or equal to its limit"
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
}

// DatabaseEngine is the MySQL-compatible server the shards run.
// +kubebuilder:validation:Enum=MariaDB;MySQL
type DatabaseEngine string

const (
	// EngineMariaDB runs MariaDB (the default: its replication code is tested against real servers).
	EngineMariaDB DatabaseEngine = "MariaDB"
	// EngineMySQL runs MySQL 8.4.
	EngineMySQL DatabaseEngine = "MySQL"
)

// DeletionPolicy says what happens to data when the SocialPlatform is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type DeletionPolicy string

const (
	// DeletionPolicyRetain keeps PersistentVolumeClaims and Secrets after the platform is deleted.
	DeletionPolicyRetain DeletionPolicy = "Retain"
	// DeletionPolicyDelete deletes PersistentVolumeClaims and Secrets with the platform.
	DeletionPolicyDelete DeletionPolicy = "Delete"
)

// DatabaseSpec configures the shards.
// +kubebuilder:validation:XValidation:rule="!has(self.backup) || !has(self.engine) || self.engine == 'MariaDB'",message="database.backup needs engine MariaDB: the MySQL image ships no physical backup tool (docs/data-tier.md)"
// +kubebuilder:validation:XValidation:rule="!has(self.restore) || !has(self.engine) || self.engine == 'MariaDB'",message="database.restore needs engine MariaDB (docs/backup.md)"
// +kubebuilder:validation:XValidation:rule="has(self.restore) == has(oldSelf.restore)",message="database.restore can be set only when the platform is created"
// +kubebuilder:validation:XValidation:rule="!has(self.restore) || !has(self.backup) || self.restore.source.endpoint != self.backup.objectStore.endpoint || self.restore.source.bucket != self.backup.objectStore.bucket || has(self.restore.source.prefix) != has(self.backup.objectStore.prefix) || (has(self.restore.source.prefix) && self.restore.source.prefix != self.backup.objectStore.prefix)",message="database.restore.source must not be where database.backup writes: the restored platform's backups would mix with the source's; give backup.objectStore another prefix"
type DatabaseSpec struct {
	// engine is the database server. Immutable.
	// +optional
	// +kubebuilder:default=MariaDB
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="engine is immutable: migrate to a new SocialPlatform to change it"
	Engine DatabaseEngine `json:"engine,omitempty"`

	// shards is the number of physical shards. It may grow (new shards take new users at once
	// and no data moves) but never shrink.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +kubebuilder:validation:XValidation:rule="self >= oldSelf",message="shards may grow but never shrink: removing a shard would drop its data"
	Shards int32 `json:"shards,omitempty"`

	// replicasPerShard is the number of read replicas of each shard's primary.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=5
	ReplicasPerShard *int32 `json:"replicasPerShard,omitempty"`

	// image overrides the database image chosen for the engine.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9][A-Za-z0-9._/:@-]*$')",message="image must be an image reference such as ghcr.io/scalestack/apps:v0.1.0 or one with @sha256:...: letters, digits and . _ / : @ -, no spaces"
	Image string `json:"image,omitempty"`

	// storage is the volume of each database pod.
	// +optional
	Storage StorageSpec `json:"storage,omitzero"`

	// resources are the database container's requests and limits.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.requests) || !has(self.limits) || ['cpu', 'memory', 'ephemeral-storage'].all(r, !(r in self.requests) || !(r in self.limits) || quantity(string(self.requests[r])).compareTo(quantity(string(self.limits[r]))) <= 0)",message="resources: every request (cpu, memory, ephemeral-storage) must be less than or equal to its limit"
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// deletionPolicy says what happens to the shards' volumes and Secrets when the SocialPlatform
	// is deleted: Retain (the default) keeps them, Delete removes them.
	// +optional
	// +kubebuilder:default=Retain
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// archive moves cold posts out of the hot tables on a schedule.
	// +optional
	Archive *ArchiveSpec `json:"archive,omitempty"`

	// failover says when the operator promotes a replica of a shard whose primary is gone. A
	// planned switchover is asked for on the primary's pod: the annotation
	// scalestack.dev/switchover (value: the pod to promote, or "any").
	// +optional
	Failover FailoverSpec `json:"failover,omitzero"`

	// backup backs every shard up to S3-compatible object storage: full physical backups on a
	// schedule (mariadb-backup, taken on a healthy replica when there is one) and continuous
	// archiving of the binary logs (the primary's agent uploads each closed file with its SHA-256,
	// and purges a file from the server only once it is archived). MariaDB only. docs/backup.md.
	// +optional
	Backup *BackupSpec `json:"backup,omitempty"`

	// restore fills the shards of a new platform from another platform's backups (one that runs,
	// or one that was deleted): each shard's primary starts from the newest full backup finished
	// at or before pointInTime and replays the archived binary logs up to it (or to the end of the
	// archive); its replicas are copied from it. Set only when the platform is created; immutable.
	// The Restoring condition reports the progress. docs/backup.md.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="database.restore is immutable"
	Restore *RestoreSpec `json:"restore,omitempty"`
}

// RestoreSpec names the backups a new platform starts from.
type RestoreSpec struct {
	// source is the object store and the prefix the source platform's backup wrote to (its
	// spec.database.backup.objectStore; the prefix defaults to "<namespace>/<name>" of this
	// platform, which restores a deleted platform of the same name). Only read.
	Source ObjectStoreSpec `json:"source"`

	// pointInTime restores every shard to how it was just before this time (RFC 3339, one-second
	// resolution). Unset restores everything archived.
	// +optional
	PointInTime *metav1.Time `json:"pointInTime,omitempty"`
}

// BackupSpec configures where and how often a platform's shards are backed up.
type BackupSpec struct {
	// objectStore is where the backups go.
	ObjectStore ObjectStoreSpec `json:"objectStore"`

	// archiveInterval bounds how long a committed transaction waits to be archived (the recovery
	// point objective): the primary starts a new binary log at least this often when the current
	// one has transactions, and uploads the closed one. Default 5m; 10s to 24h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('24h')",message="backup.archiveInterval must be between 10s and 24h"
	ArchiveInterval *metav1.Duration `json:"archiveInterval,omitempty"`

	// schedule is when every shard takes a full backup: a cron expression in UTC (five fields,
	// or one of @hourly, @daily, @weekly, @monthly). A shard with no complete full backup takes
	// one as soon as it is ready, whatever the schedule. An on-demand backup is asked for with
	// the annotation scalestack.dev/backup-requested on the platform, its value an RFC 3339 time
	// (kubectl annotate sp NAME scalestack.dev/backup-requested=$(date -u +%FT%TZ) --overwrite):
	// every shard whose newest backup started before that time takes one.
	// +optional
	// +kubebuilder:default="0 3 * * *"
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^(@(hourly|daily|midnight|weekly|monthly|yearly|annually)|[0-9*/,?A-Za-z-]+( +[0-9*/,?A-Za-z-]+){4})$')",message="backup.schedule must be a cron expression of five fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly, @monthly"
	Schedule string `json:"schedule,omitempty"`

	// retention says which full backups the store keeps; the newest complete one is never
	// removed. The agent that completes a backup applies it.
	// +optional
	Retention BackupRetention `json:"retention,omitzero"`
}

// BackupRetention keeps the newest count full backups, and any younger than maxAge: a backup is
// removed once neither keeps it.
type BackupRetention struct {
	// count of full backups kept per shard. Default 7.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Count *int32 `json:"count,omitempty"`
	// maxAge keeps, beyond count, every backup younger than this (e.g. 720h). Unset keeps only count.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h')",message="backup.retention.maxAge must be at least 1h"
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`
}

// ObjectStoreSpec is an S3-compatible bucket and the credentials to write to it.
type ObjectStoreSpec struct {
	// endpoint is the URL of the S3 API: scheme and host, with an optional port
	// (https://s3.eu-west-1.amazonaws.com, http://minio.storage.svc:9000). Requests use
	// path-style addressing.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[A-Za-z0-9.-]+(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?/?$')",message="objectStore.endpoint must be http:// or https:// followed by a host and an optional port, with no path"
	Endpoint string `json:"endpoint"`

	// bucket is the bucket's name; it must exist.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`
	Bucket string `json:"bucket"`

	// prefix is the path in the bucket under which this platform's backups live. Default
	// "<namespace>/<name>", so platforms can share a bucket.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.contains('//') && !self.contains('..')",message="objectStore.prefix must not start with /, nor contain // or .."
	Prefix string `json:"prefix,omitempty"`

	// region of the bucket, when the store needs one (AWS). Optional.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Region string `json:"region,omitempty"`

	// credentials name the Secret, in the platform's namespace, with the access key.
	Credentials ObjectStoreCredentials `json:"credentials"`
}

// ObjectStoreCredentials reference an access key in a Secret.
type ObjectStoreCredentials struct {
	// secretName is the Secret's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`

	// accessKeyIDKey is the key of the access key ID in the Secret. Default "accessKeyId".
	// +optional
	// +kubebuilder:validation:MaxLength=253
	AccessKeyIDKey string `json:"accessKeyIDKey,omitempty"`

	// secretAccessKeyKey is the key of the secret access key in the Secret. Default
	// "secretAccessKey".
	// +optional
	// +kubebuilder:validation:MaxLength=253
	SecretAccessKeyKey string `json:"secretAccessKeyKey,omitempty"`
}

// FailoverSpec configures automatic failover of shard primaries.
type FailoverSpec struct {
	// enabled turns automatic failover on (the default) or off. Switchovers work either way.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// after is how long a primary must be unavailable (its pod not ready, or gone) before a
	// replica is promoted. Default 30s; at least 10s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="failover.after must be at least 10s: shorter outages are restarts, not failures"
	After *metav1.Duration `json:"after,omitempty"`

	// maxLag bounds the replication lag a replica may have had, when last known, to be promoted:
	// transactions it had not received are lost. Default 10s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="failover.maxLag must not be negative"
	MaxLag *metav1.Duration `json:"maxLag,omitempty"`

	// semiSyncTimeout is how long a primary's commit waits for a replica to acknowledge it before
	// the primary falls back to asynchronous replication (and keeps taking writes without one; a
	// failover may then lose what no replica received). Longer trades write availability, while
	// every replica is slow or gone, for fewer lossy windows. Default 1s; between 100ms and 1h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('100ms') && duration(self) <= duration('1h')",message="failover.semiSyncTimeout must be between 100ms and 1h"
	SemiSyncTimeout *metav1.Duration `json:"semiSyncTimeout,omitempty"`

	// allowLossy promotes the most advanced replica even when it lagged beyond maxLag (accepting
	// the loss of what it had not received) instead of refusing the failover.
	// +optional
	AllowLossy bool `json:"allowLossy,omitempty"`

	// rebuildDiverged rebuilds a replica that diverged from its primary (it has transactions the
	// primary lacks, typically an old primary whose last commits no replica had received) from a
	// copy of the primary, on (the default) or off. The server's binary logs, which hold those
	// transactions, are kept on its volume (diverged-<time>/); nothing else of it is replaced but
	// the copy of the data the primary has. Off, the replica stays read-only and not ready until it
	// is rebuilt by hand. MariaDB only (mariadb-backup); MySQL is always rebuilt by hand.
	// +optional
	RebuildDiverged *bool `json:"rebuildDiverged,omitempty"`
}

// StorageSpec is a persistent volume request.
type StorageSpec struct {
	// size of each volume. It may grow but never shrink. Defaults to 10Gi.
	// +optional
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="storage size must be greater than zero"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity(string(oldSelf))) >= 0",message="storage size may grow but never shrink"
	Size *resource.Quantity `json:"size,omitempty"`

	// storageClassName is the StorageClass of the volumes; empty uses the cluster default.
	// Immutable.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="storageClassName must be a lowercase DNS subdomain name (RFC 1123): letters, digits, - and ., starting and ending with a letter or digit"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storageClassName is immutable"
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// ArchiveSpec configures the archiver.
type ArchiveSpec struct {
	// olderThan is the age after which posts leave the hot tables, e.g. 2160h (90 days).
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h')",message="archive.olderThan must be at least 1h"
	OlderThan metav1.Duration `json:"olderThan"`

	// schedule is a cron expression, e.g. "30 3 * * *".
	// +optional
	// +kubebuilder:default="30 3 * * *"
	// +kubebuilder:validation:MinLength=9
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^(@(hourly|daily|midnight|weekly|monthly|yearly|annually)|[0-9*/,?A-Za-z-]+( +[0-9*/,?A-Za-z-]+){4})$')",message="archive.schedule must be a cron expression of five fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly, @monthly"
	Schedule string `json:"schedule,omitempty"`
}

// EvictionPolicy is Redis' maxmemory-policy.
// +kubebuilder:validation:Enum=allkeys-lru;allkeys-lfu;allkeys-random;volatile-lru;volatile-lfu;volatile-random;volatile-ttl;noeviction
type EvictionPolicy string

// CacheSpec configures Redis.
type CacheSpec struct {
	// size is the memory the cache holds: Redis maxmemory is derived from it, and the container's
	// memory limit is set above it for Redis' own overhead. E.g. 1Gi.
	// +required
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('16Mi')) || quantity(string(self)) == quantity('16Mi')",message="cache size must be at least 16Mi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isLessThan(quantity('512Gi'))",message="cache size must be less than 512Gi"
	Size resource.Quantity `json:"size"`

	// evictionPolicy is what Redis evicts when full.
	// +optional
	// +kubebuilder:default=allkeys-lru
	EvictionPolicy EvictionPolicy `json:"evictionPolicy,omitempty"`

	// defaultTTL is the time-to-live of cached entries (jittered by the apps). Defaults to 10m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="cache.defaultTTL must be at least 1s"
	DefaultTTL *metav1.Duration `json:"defaultTTL,omitempty"`

	// image overrides the Redis image.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9][A-Za-z0-9._/:@-]*$')",message="image must be an image reference such as ghcr.io/scalestack/apps:v0.1.0 or one with @sha256:...: letters, digits and . _ / : @ -, no spaces"
	Image string `json:"image,omitempty"`
}

// KafkaMode says who runs the Kafka cluster.
// +kubebuilder:validation:Enum=Strimzi;External
type KafkaMode string

const (
	// KafkaModeStrimzi creates a Kafka cluster and its topics through Strimzi's custom resources.
	KafkaModeStrimzi KafkaMode = "Strimzi"
	// KafkaModeExternal uses an existing cluster; the operator manages the topics through the
	// Kafka admin API.
	KafkaModeExternal KafkaMode = "External"
)

// KafkaSpec configures the event log.
//
// +kubebuilder:validation:XValidation:rule="self.mode != 'External' || (has(self.bootstrapServers) && size(self.bootstrapServers) > 0)",message="bootstrapServers is required when mode is External"
// +kubebuilder:validation:XValidation:rule="self.mode != 'Strimzi' || !has(self.topics) || self.topics.all(t, !has(t.replicationFactor) || t.replicationFactor <= self.brokers)",message="a topic's replicationFactor must not exceed brokers"
// +kubebuilder:validation:XValidation:rule="!has(self.topicPrefix) || !has(self.topics) || self.topics.all(t, size(self.topicPrefix) + size(t.name) <= 245)",message="kafka.topicPrefix and a topic's name (with .dlq) must fit Kafka's 249 characters"
// +kubebuilder:validation:XValidation:rule="has(self.topicPrefix) == has(oldSelf.topicPrefix) && (!has(self.topicPrefix) || self.topicPrefix == oldSelf.topicPrefix)",message="kafka.topicPrefix can be set only when the platform is created: changing it would abandon the events in the old topics"
type KafkaSpec struct {
	// mode is Strimzi (the operator creates the cluster through Strimzi) or External.
	// +optional
	// +kubebuilder:default=Strimzi
	Mode KafkaMode `json:"mode,omitempty"`

	// bootstrapServers of an External cluster, as host:port.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=260
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9.-]+:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$`
	// +listType=atomic
	BootstrapServers []string `json:"bootstrapServers,omitempty"`

	// brokers is the number of Kafka brokers in Strimzi mode.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=15
	Brokers int32 `json:"brokers,omitempty"`

	// storage is each broker's volume in Strimzi mode.
	// +optional
	Storage StorageSpec `json:"storage,omitzero"`

	// topicPrefix is put before every topic's name (and consumer group's) on the Kafka cluster, so
	// that platforms sharing one cluster never share a topic. Default: "<namespace>.<name>.".
	// Platforms created before topic prefixes existed keep their unprefixed topics. Set only at
	// creation; "" means no prefix.
	// +optional
	// +kubebuilder:validation:MaxLength=100
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]*$`
	TopicPrefix *string `json:"topicPrefix,omitempty"`

	// topics tunes or adds topics. The topics the apps need (user-created, post-created,
	// follow-created) always exist; list them here to change their settings.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Topics []TopicSpec `json:"topics,omitempty"`
}

// TopicSpec is one Kafka topic.
type TopicSpec struct {
	// name of the topic: letters, digits, '.', '_' and '-'.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=200
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]+$`
	// +kubebuilder:validation:XValidation:rule="!self.endsWith('.dlq')",message="topic names ending in .dlq are reserved for dead-letter twins: set deadLetter instead"
	Name string `json:"name"`

	// partitions of the topic. May grow, never shrink (Kafka cannot remove partitions).
	// +optional
	// +kubebuilder:default=6
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:validation:XValidation:rule="self >= oldSelf",message="partitions may grow but never shrink"
	Partitions int32 `json:"partitions,omitempty"`

	// replicationFactor of the topic. Immutable.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=5
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="replicationFactor is immutable"
	ReplicationFactor *int32 `json:"replicationFactor,omitempty"`

	// retention is how long messages are kept, e.g. 168h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="a topic's retention must be at least 1m"
	Retention *metav1.Duration `json:"retention,omitempty"`

	// deadLetter creates a "<name>.dlq" twin that receives messages the consumers gave up on.
	// +optional
	// +kubebuilder:default=true
	DeadLetter *bool `json:"deadLetter,omitempty"`
}

// IngressSpec publishes the gateway through an Ingress.
//
// +kubebuilder:validation:XValidation:rule="!has(self.tlsSecretName) || has(self.host)",message="ingress.tlsSecretName requires ingress.host"
// +kubebuilder:validation:XValidation:rule="!has(self.ingressClassName) || has(self.host)",message="ingress.ingressClassName requires ingress.host"
type IngressSpec struct {
	// host is the site's DNS name; an Ingress routes it to the gateway. Empty: no Ingress.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="ingress.host must be a lowercase DNS name, without a scheme or a path"
	Host string `json:"host,omitempty"`

	// ingressClassName of the site's Ingress.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="ingressClassName must be a lowercase DNS subdomain name (RFC 1123): letters, digits, - and ., starting and ending with a letter or digit"
	IngressClassName *string `json:"ingressClassName,omitempty"`

	// tlsSecretName is a Secret holding the site's certificate. With it the session cookie is
	// marked Secure.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="tlsSecretName must be a lowercase DNS subdomain name (RFC 1123): letters, digits, - and ., starting and ending with a letter or digit"
	TLSSecretName string `json:"tlsSecretName,omitempty"`

	// trustForwarded makes the gateway key its per-client rate limits on the last address in
	// X-Forwarded-For (the one the ingress controller or CDN appended) instead of the
	// connection's peer, which behind a proxy is the proxy. Default: true when host is set.
	// Leave it false when clients reach the gateway directly: they could forge the header.
	// +optional
	TrustForwarded *bool `json:"trustForwarded,omitempty"`
}

// CDNSpec configures the origin a CDN pulls static assets from.
//
// +kubebuilder:validation:XValidation:rule="!has(self.tlsSecretName) || has(self.originHost)",message="tlsSecretName requires originHost"
type CDNSpec struct {
	// originHost is the DNS name the CDN pulls from; an Ingress routes it to the gateway's static
	// assets. Empty: no origin Ingress.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	OriginHost string `json:"originHost,omitempty"`

	// ingressClassName of the origin Ingress.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="ingressClassName must be a lowercase DNS subdomain name (RFC 1123): letters, digits, - and ., starting and ending with a letter or digit"
	IngressClassName *string `json:"ingressClassName,omitempty"`

	// tlsSecretName is a Secret holding the origin's certificate.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="tlsSecretName must be a lowercase DNS subdomain name (RFC 1123): letters, digits, - and ., starting and ending with a letter or digit"
	TLSSecretName string `json:"tlsSecretName,omitempty"`

	// assetMaxAge is the Cache-Control max-age of content-hashed assets. Defaults to 8760h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="cdn.assetMaxAge must be at least 1s"
	AssetMaxAge *metav1.Duration `json:"assetMaxAge,omitempty"`
}

// SLOSpec declares the objectives per service and the autoscaler.
type SLOSpec struct {
	// availability is the objective for the share of requests that succeed, in percent, e.g.
	// "99.9".
	// +optional
	// +kubebuilder:default="99.9"
	// +kubebuilder:validation:Pattern=`^(9[0-9](\.[0-9]{1,3})?)$`
	Availability string `json:"availability,omitempty"`

	// latency is the objective for the share of requests faster than a threshold.
	// +optional
	Latency LatencyObjective `json:"latency,omitzero"`

	// window is the period over which the error budget is computed, in days, e.g. 30d.
	// +optional
	// +kubebuilder:default="30d"
	// +kubebuilder:validation:Pattern=`^([1-9]|[1-8][0-9]|90)d$`
	Window string `json:"window,omitempty"`

	// autoscaling scales the app Deployments on error-budget burn.
	// +optional
	Autoscaling AutoscalingSpec `json:"autoscaling,omitzero"`
}

// LatencyObjective is "percent of requests faster than threshold".
type LatencyObjective struct {
	// threshold, e.g. 300ms.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms')",message="latency.threshold must be at least 1ms"
	Threshold *metav1.Duration `json:"threshold,omitempty"`

	// percent of requests that must be faster than threshold, e.g. "99".
	// +optional
	// +kubebuilder:validation:Pattern=`^(([5-9][0-9])(\.[0-9]{1,3})?)$`
	Percent string `json:"percent,omitempty"`
}

// AutoscalingSpec configures the SLO-burn autoscaler.
//
// +kubebuilder:validation:XValidation:rule="!self.enabled || has(self.prometheusURL)",message="prometheusURL is required when autoscaling is enabled"
type AutoscalingSpec struct {
	// enabled turns the autoscaler on. While on, the operator leaves the app Deployments'
	// replicas to the autoscaler.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// prometheusURL is where the autoscaler reads burn rates, e.g. http://prometheus.monitoring:9090.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'http' || url(self).getScheme() == 'https')",message="prometheusURL must be an http or https URL"
	PrometheusURL string `json:"prometheusURL,omitempty"`

	// interval between decisions. Defaults to 30s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="autoscaling.interval must be at least 1s"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// step is how many replicas one scale-down removes. Defaults to 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Step *int32 `json:"step,omitempty"`

	// scaleUpCooldown is the least time between two scale-ups of a service. Defaults to 1m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="autoscaling.scaleUpCooldown must not be negative"
	ScaleUpCooldown *metav1.Duration `json:"scaleUpCooldown,omitempty"`

	// scaleDownStabilization is how long a service must burn no budget before it scales down.
	// Defaults to 10m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="autoscaling.scaleDownStabilization must not be negative"
	ScaleDownStabilization *metav1.Duration `json:"scaleDownStabilization,omitempty"`
}

// LabelValue is a Kubernetes label value: at most 63 letters, digits, -, _ and ., starting and
// ending with a letter or digit, or empty.
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:Pattern=`^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$`
type LabelValue string

// ObservabilitySpec configures tracing, rules and dashboards.
type ObservabilitySpec struct {
	// tracing exports OpenTelemetry traces from every workload.
	// +optional
	Tracing TracingSpec `json:"tracing,omitzero"`

	// ruleLabels are added to the generated PrometheusRule and ServiceMonitors so that a
	// Prometheus' ruleSelector and serviceMonitorSelector (e.g. release: kube-prometheus-stack)
	// pick them up.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$') && (!k.contains('/') || k.indexOf('/') <= 253))",message="ruleLabels keys must be label keys: an optional DNS subdomain prefix and /, then a name of at most 63 letters, digits, -, _ and ., starting and ending with a letter or digit"
	RuleLabels map[string]LabelValue `json:"ruleLabels,omitempty"`

	// dashboards creates Grafana dashboard ConfigMaps. Defaults to true.
	// +optional
	Dashboards *bool `json:"dashboards,omitempty"`
}

// TracingSpec configures OpenTelemetry export.
type TracingSpec struct {
	// endpoint of an OTLP/HTTP collector, e.g. http://otel-collector.observability:4318. Empty
	// turns tracing off.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self)",message="endpoint must be a URL"
	Endpoint string `json:"endpoint,omitempty"`

	// samplingRatio is the share of traces kept, from "0" to "1", e.g. "0.1".
	// +optional
	// +kubebuilder:validation:Pattern=`^(0(\.[0-9]{1,4})?|1(\.0{1,4})?)$`
	SamplingRatio string `json:"samplingRatio,omitempty"`
}

// SocialPlatformStatus is what the operator observed.
type SocialPlatformStatus struct {
	// observedGeneration is the generation the last successful reconcile acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Progressing, Degraded and one per component. See docs/conditions.md.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// summary holds short counts for printer columns.
	// +optional
	Summary StatusSummary `json:"summary,omitzero"`

	// services is the observed state of each app service.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Services []ServiceStatus `json:"services,omitempty"`

	// shards is the observed state of each physical shard.
	// +optional
	// +listType=map
	// +listMapKey=index
	// +kubebuilder:validation:MaxItems=64
	Shards []ShardStatus `json:"shards,omitempty"`

	// kafka is the observed state of the event log.
	// +optional
	Kafka KafkaStatus `json:"kafka,omitzero"`

	// slo is the observed error-budget burn and the autoscaler's decisions.
	// +optional
	SLO SLOStatus `json:"slo,omitzero"`

	// endpoints are the addresses the platform serves.
	// +optional
	Endpoints Endpoints `json:"endpoints,omitzero"`
}

// StatusSummary holds short counts for printer columns.
type StatusSummary struct {
	// apps is "<ready services>/<services>", e.g. "5/5".
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Apps string `json:"apps,omitempty"`
	// shards is "<shards with a ready primary>/<shards>", e.g. "2/2".
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Shards string `json:"shards,omitempty"`
	// topics is "<ready topics>/<topics>", e.g. "6/6".
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Topics string `json:"topics,omitempty"`
}

// ServiceStatus is one app service as observed.
type ServiceStatus struct {
	// name of the service: gateway, user, post, feed or worker.
	// +required
	// +kubebuilder:validation:MaxLength=32
	Name string `json:"name"`
	// replicas the Deployment asks for.
	// +optional
	Replicas int32 `json:"replicas"`
	// readyReplicas that pass their readiness probe.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`
	// updatedReplicas that run the current pod template.
	// +optional
	UpdatedReplicas int32 `json:"updatedReplicas"`
	// desiredByAutoscaler is the autoscaler's last decision, when autoscaling is on.
	// +optional
	DesiredByAutoscaler *int32 `json:"desiredByAutoscaler,omitempty"`
}

// ShardStatus is one physical shard as observed.
type ShardStatus struct {
	// index of the physical shard.
	// +required
	Index int32 `json:"index"`
	// logicalShards is the block of logical shards it owns, e.g. "0-127".
	// +optional
	// +kubebuilder:validation:MaxLength=32
	LogicalShards string `json:"logicalShards,omitempty"`
	// primaryReady says the primary accepts writes.
	// +optional
	PrimaryReady bool `json:"primaryReady"`
	// replicas is the number of read replicas asked for.
	// +optional
	Replicas int32 `json:"replicas"`
	// readyReplicas replicate with lag under the bound.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`
	// primary is the pod that is the shard's primary of record.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Primary string `json:"primary,omitempty"`
	// epoch counts the failovers and switchovers of the shard.
	// +optional
	Epoch int64 `json:"epoch,omitempty"`
	// backup is the shard's archiving as its primary reports it (spec.database.backup).
	// +optional
	Backup *ShardBackupStatus `json:"backup,omitempty"`
}

// ShardBackupStatus is where a shard's backups stand.
type ShardBackupStatus struct {
	// lastArchived is when the primary last had every closed binary log in the object store.
	// +optional
	LastArchived *metav1.Time `json:"lastArchived,omitempty"`
	// lastArchivedFile is the newest binary log it uploaded.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	LastArchivedFile string `json:"lastArchivedFile,omitempty"`
	// lastFull is the shard's newest complete full backup in the object store.
	// +optional
	LastFull *FullBackupStatus `json:"lastFull,omitempty"`
	// running is the full backup being taken now.
	// +optional
	Running *BackupRunStatus `json:"running,omitempty"`
	// nextScheduled is when the shard's next full backup is due by the schedule.
	// +optional
	NextScheduled *metav1.Time `json:"nextScheduled,omitempty"`
}

// FullBackupStatus is one complete full backup of a shard.
type FullBackupStatus struct {
	// id names the backup in the store (its start time).
	// +kubebuilder:validation:MaxLength=64
	ID string `json:"id"`
	// finishedAt is when its manifest was written: the backup is consistent with the shard at
	// about that time (precisely, at gtid).
	FinishedAt metav1.Time `json:"finishedAt"`
	// sizeBytes of the backup stream.
	SizeBytes int64 `json:"sizeBytes"`
	// gtid is the position the backup is consistent with.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	GTID string `json:"gtid,omitempty"`
	// source is the pod it was taken on.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Source string `json:"source,omitempty"`
}

// BackupRunStatus is a full backup in progress.
type BackupRunStatus struct {
	// source is the pod taking it.
	// +kubebuilder:validation:MaxLength=253
	Source string `json:"source"`
	// startedAt is when it started.
	StartedAt metav1.Time `json:"startedAt"`
}

// KafkaStatus is the event log as observed.
type KafkaStatus struct {
	// bootstrapServers the apps connect to.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	BootstrapServers string `json:"bootstrapServers,omitempty"`
	// topics and whether each is ready.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=160
	Topics []TopicStatus `json:"topics,omitempty"`
}

// TopicStatus is one topic as observed.
type TopicStatus struct {
	// name of the topic.
	// +required
	// +kubebuilder:validation:MaxLength=249
	Name string `json:"name"`
	// ready says the topic exists with its declared settings.
	// +optional
	Ready bool `json:"ready"`
}

// SLOStatus is the error-budget burn per service and the autoscaler's decisions.
type SLOStatus struct {
	// services holds one entry per app service.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Services []ServiceSLOStatus `json:"services,omitempty"`
}

// ServiceSLOStatus is one service's burn and last scaling decision.
type ServiceSLOStatus struct {
	// name of the service.
	// +required
	// +kubebuilder:validation:MaxLength=32
	Name string `json:"name"`
	// burnRates by window (5m, 30m, 1h, 2h, 6h, 1d, 3d), formatted, e.g. {"1h": "14.2"}.
	// +optional
	// +kubebuilder:validation:MaxProperties=8
	BurnRates map[string]string `json:"burnRates,omitempty"`
	// errorBudgetRemaining over the SLO window, in percent, e.g. "87.5".
	// +optional
	// +kubebuilder:validation:MaxLength=16
	ErrorBudgetRemaining string `json:"errorBudgetRemaining,omitempty"`
	// lastDecision is the autoscaler's last decision for this service.
	// +optional
	LastDecision *ScalingDecision `json:"lastDecision,omitempty"`
	// lastScaleUpTime is when the autoscaler last added replicas (for the cooldown).
	// +optional
	LastScaleUpTime *metav1.Time `json:"lastScaleUpTime,omitempty"`
	// lastBurnTime is when the service last burned error budget (for the stabilization window).
	// +optional
	LastBurnTime *metav1.Time `json:"lastBurnTime,omitempty"`
}

// ScalingDecision is one autoscaler decision.
type ScalingDecision struct {
	// time of the decision.
	// +required
	Time metav1.Time `json:"time"`
	// action: ScaleUp, ScaleDown or Hold.
	// +required
	// +kubebuilder:validation:Enum=ScaleUp;ScaleDown;Hold
	Action string `json:"action"`
	// from is the replica count before.
	// +optional
	From int32 `json:"from"`
	// to is the replica count after.
	// +optional
	To int32 `json:"to"`
	// reason is a CamelCase word, e.g. FastBurn, NoBurn, BottleneckDetected.
	// +required
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason"`
	// message says why in words.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// Endpoints are the addresses the platform serves.
type Endpoints struct {
	// site is the public URL of the site, when spec.ingress.host is set.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Site string `json:"site,omitempty"`
	// gateway is the in-cluster URL of the public API.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Gateway string `json:"gateway,omitempty"`
	// cdnOrigin is the URL the CDN pulls static assets from.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	CDNOrigin string `json:"cdnOrigin,omitempty"`
}
