package v1alpha1

// Condition types of a SocialPlatform. docs/conditions.md explains each with its reasons.
const (
	// ConditionReady is the summary: True when every component is ready and the last reconcile
	// acted on the current generation.
	ConditionReady = "Ready"
	// ConditionProgressing is True while children are being created, rolled or scaled.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when something that was working is not: a component failed, a
	// reconcile failed, or a required child is missing and cannot be made.
	ConditionDegraded = "Degraded"
	// ConditionReconciling is True while the operator works towards the current spec: children
	// being created or rolled, components not ready yet, a failed pass being retried, teardown.
	// With Stalled it gives kstatus (kubectl wait, Flux, cli-utils) the platform's state.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the operator cannot converge the platform until a person
	// changes something: the API server refuses a child (invalid, forbidden, over quota), the
	// spec asks for what the cluster cannot do, or a failure outlasted the progress deadline.
	ConditionStalled = "Stalled"

	// ConditionAppsReady is True when every app Deployment is Available with all replicas updated.
	ConditionAppsReady = "AppsReady"
	// ConditionDatabaseReady is True when every shard's primary accepts writes and its replicas
	// replicate with lag under the bound.
	ConditionDatabaseReady = "DatabaseReady"
	// ConditionCacheReady is True when Redis is up with the configured size.
	ConditionCacheReady = "CacheReady"
	// ConditionKafkaReady is True when the Kafka cluster and every topic are ready.
	ConditionKafkaReady = "KafkaReady"
	// ConditionMonitoringReady is True when the rules, scrape configs and dashboards exist.
	ConditionMonitoringReady = "MonitoringReady"
	// ConditionCDNReady is True when the CDN origin Ingress for spec.cdn.originHost is applied.
	// It is reported beside Ready, not in it, and only when an origin host is declared.
	ConditionCDNReady = "CDNReady"
	// ConditionSLOHealthy is True when no service burns error budget faster than allowed and the
	// autoscaler can read its metrics.
	ConditionSLOHealthy = "SLOHealthy"
	// ConditionBackupReady is True when every shard has a complete full backup in the object store
	// and its primary archives its binary logs there (spec.database.backup): every shard can be
	// restored. Reported beside Ready, not in it.
	ConditionBackupReady = "BackupReady"
	// ConditionRestoring is set only on a platform created with spec.database.restore: True while
	// a shard is being restored from the source's backups (with each shard's progress), False
	// (Restored) once every shard was. Until then DatabaseReady, and so Ready, is False.
	ConditionRestoring = "Restoring"
)

// Condition reasons. CamelCase words; docs/conditions.md lists where each appears.
const (
	// ReasonReconciled: the children match the spec and report ready.
	ReasonReconciled = "Reconciled"
	// ReasonAvailable: every workload of the component is available.
	ReasonAvailable = "Available"
	// ReasonCreating: children are being created for the first time.
	ReasonCreating = "Creating"
	// ReasonRollingOut: a workload runs fewer up-to-date ready replicas than asked for.
	ReasonRollingOut = "RollingOut"
	// ReasonUnavailable: a workload that was created has no ready replica.
	ReasonUnavailable = "Unavailable"
	// ReasonComponentsNotReady: Ready is False because the named components are not ready.
	ReasonComponentsNotReady = "ComponentsNotReady"
	// ReasonReconcileFailed: the last reconcile returned an error; the message has it.
	ReasonReconcileFailed = "ReconcileFailed"
	// ReasonApplyFailed: the phase that converges the component failed on this pass (the message
	// names the phase and the API server's answer); later phases still ran.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonPaused: spec.paused is true; the operator changes nothing.
	ReasonPaused = "Paused"
	// ReasonDeleting: the platform is being torn down.
	ReasonDeleting = "Deleting"
	// ReasonAsExpected: the negative polarity condition (Degraded) is False.
	ReasonAsExpected = "AsExpected"
	// ReasonStable: Progressing is False; nothing is changing.
	ReasonStable = "Stable"
	// ReasonChildRejected: the API server refused a child the operator applied (invalid,
	// forbidden by RBAC or an admission policy, over a ResourceQuota): retrying the same spec
	// cannot help. The message has the API server's answer.
	ReasonChildRejected = "ChildRejected"
	// ReasonInvalidSpec: the preflight's server-side dry-run of the children of a new spec was
	// refused, so nothing of that spec was written. The message names the SocialPlatform field
	// the refused child field comes from, and has the API server's answer.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonProgressDeadlineExceeded: a failure (or a Deployment's rollout) made no progress for
	// longer than its deadline.
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	// ReasonStrimziNotInstalled: spec.kafka.mode is Strimzi but the cluster does not serve
	// kafka.strimzi.io.
	ReasonStrimziNotInstalled = "StrimziNotInstalled"
	// ReasonPrometheusOperatorNotInstalled: the cluster does not serve monitoring.coreos.com.
	ReasonPrometheusOperatorNotInstalled = "PrometheusOperatorNotInstalled"
	// ReasonKafkaUnreachable: the External cluster's admin API did not answer.
	ReasonKafkaUnreachable = "KafkaUnreachable"
	// ReasonClusterNotReady: Strimzi reports the Kafka cluster not ready.
	ReasonClusterNotReady = "ClusterNotReady"
	// ReasonTopicsNotReady: a topic does not exist with its declared settings.
	ReasonTopicsNotReady = "TopicsNotReady"
	// ReasonNotImplemented: the component is declared but this operator version does not
	// provision it yet.
	ReasonNotImplemented = "NotImplemented"
	// ReasonFailoverRefused: a shard's primary is gone and no replica may be promoted (none
	// answers, all lag beyond failover.maxLag, or failover is off); the message says which.
	ReasonFailoverRefused = "FailoverRefused"
	// ReasonFailingOver: a shard's primary moved in this pass and the new one is not ready yet.
	ReasonFailingOver = "FailingOver"
	// ReasonConnectionBudgetExceeded: the database tier is ready, but the app pods at their
	// maxReplicas would open more connections than a shard server's max_connections allows; the
	// message says which limit binds.
	ReasonConnectionBudgetExceeded = "ConnectionBudgetExceeded"
	// ReasonStorageResizing: the shards' claims are growing to spec.database.storage.size (or a
	// StatefulSet is being replaced with the larger claim template); the tier keeps serving.
	ReasonStorageResizing = "StorageResizing"
	// ReasonStorageResizeUnsupported: spec.database.storage.size is larger than the claims, and
	// their StorageClass cannot expand volumes; the tier keeps running at its size.
	ReasonStorageResizeUnsupported = "StorageResizeUnsupported"
	// ReasonBackedUp: every shard has a complete full backup and its primary archived its
	// closed binary logs recently: every shard can be restored.
	ReasonBackedUp = "BackedUp"
	// ReasonFullBackupPending: a shard has no complete full backup yet (its first one is running
	// or waits for a ready pod); its binary logs alone cannot restore it.
	ReasonFullBackupPending = "FullBackupPending"
	// ReasonArchivingPending: a shard's primary has not completed an archiving pass yet (backup
	// just turned on, or a new primary), or cannot be asked (its pod is not ready).
	ReasonArchivingPending = "ArchivingPending"
	// ReasonArchivingStalled: a shard's primary last archived longer ago than three intervals.
	ReasonArchivingStalled = "ArchivingStalled"
	// The object store's failures, as the agents classify them (package backup):
	// ReasonObjectStoreUnreachable, ReasonCredentialsRejected (wrong key, or a missing Secret or
	// key), ReasonBucketMissing, ReasonBackupFailed (anything else).
	ReasonObjectStoreUnreachable = "ObjectStoreUnreachable"
	ReasonCredentialsRejected    = "CredentialsRejected"
	ReasonBucketMissing          = "BucketMissing"
	ReasonBackupFailed           = "BackupFailed"
	// ReasonRestoreInProgress: a shard's first primary is restoring (or waits to); the message
	// has every shard's progress.
	ReasonRestoreInProgress = "RestoreInProgress"
	// ReasonRestoreFailed: a shard's restore failed and is being retried; the message has the
	// shard and the error (also in kubectl logs POD -c bootstrap).
	ReasonRestoreFailed = "RestoreFailed"
	// ReasonRestored: every shard was restored; the message says from which backup, to which
	// GTID position.
	ReasonRestored = "Restored"
)

// Event reasons, verb-style. docs/events.md lists them.
const (
	EventCreated          = "Created"
	EventUpdated          = "Updated"
	EventDeleted          = "Deleted"
	EventReconcileFailed  = "ReconcileFailed"
	EventBecameReady      = "BecameReady"
	EventBecameNotReady   = "BecameNotReady"
	EventPaused           = "Paused"
	EventTearingDown      = "TearingDown"
	EventTeardownComplete = "TeardownComplete"
	// EventShardFailover: a replica was promoted because the primary was unavailable.
	EventShardFailover = "ShardFailover"
	// EventShardSwitchover: the primary was handed over on request (annotation on its pod).
	EventShardSwitchover = "ShardSwitchover"
	// EventFailoverRefused and EventSwitchoverFailed: a move of a primary that did not happen.
	EventFailoverRefused  = "FailoverRefused"
	EventSwitchoverFailed = "SwitchoverFailed"
	// EventDatabasePodUpdated: a database pod was restarted to run its StatefulSet's new pod
	// template (the operator's rollout: replicas first, the primary after a switchover).
	EventDatabasePodUpdated = "DatabasePodUpdated"
	// EventReplicaRebuilding: a replica diverged from its primary and is rebuilt from a copy of it.
	EventReplicaRebuilding = "ReplicaRebuilding"
	// EventBackupStarted: the operator asked a shard's pod for a full backup (first, scheduled,
	// or requested with the annotation).
	EventBackupStarted = "BackupStarted"
	// EventBackupCompleted: a shard's newest complete full backup is newer than the status said.
	EventBackupCompleted = "BackupCompleted"
	// EventRestoreCompleted: every shard of a platform created with spec.database.restore was
	// restored (Restoring turned False); EventRestoreFailed (Warning): a shard's restore attempt
	// failed and is retried.
	EventRestoreCompleted = "RestoreCompleted"
	EventRestoreFailed    = "RestoreFailed"
	// EventBackupRequestInvalid: the scalestack.dev/backup-requested annotation is not an RFC 3339
	// time; no backup is taken for it.
	EventBackupRequestInvalid = "BackupRequestInvalid"
	// EventStorageResizing: a shard StatefulSet's claims were grown and the StatefulSet is
	// replaced (its pods keep running); EventStorageResizeUnsupported: they cannot grow.
	EventStorageResizing          = "StorageResizing"
	EventStorageResizeUnsupported = "StorageResizeUnsupported"
)
