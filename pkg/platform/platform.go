// Package platform is the contract between the operator and the apps it deploys: the environment
// variables the apps read, the Kafka topics they produce and consume, their ports and where their
// binaries are in the apps image. The operator's render package and the apps both import it, and
// neither imports the other, so a name changed here changes on both sides at once.
package platform

// Environment of the app services (gateway, user, post, feed, worker, archiver). The operator
// puts every one of them in the apps ConfigMap or, for secrets, in a secretKeyRef.
const (
	EnvPlatform  = "SCALESTACK_PLATFORM"
	EnvHTTPAddr  = "SCALESTACK_HTTP_ADDR"
	EnvUserURL   = "SCALESTACK_USER_URL"
	EnvPostURL   = "SCALESTACK_POST_URL"
	EnvFeedURL   = "SCALESTACK_FEED_URL"
	EnvRedisAddr = "SCALESTACK_REDIS_ADDR"
	// EnvRedisPassword is the cache's password (the default user's, from the credentials Secret);
	// empty connects without AUTH.
	EnvRedisPassword = "SCALESTACK_REDIS_PASSWORD"
	EnvCacheTTL      = "SCALESTACK_CACHE_TTL"
	// EnvFeedPageTTL bounds how long the gateway keeps a user's first feed page (0 turns the page
	// cache off); pushes into the user's timeline drop it sooner.
	EnvFeedPageTTL  = "SCALESTACK_FEED_PAGE_TTL"
	EnvKafkaBrokers = "SCALESTACK_KAFKA_BROKERS"
	// EnvKafkaTopicPrefix goes before every topic and consumer group name (spec.kafka.topicPrefix).
	EnvKafkaTopicPrefix = "SCALESTACK_KAFKA_TOPIC_PREFIX"
	// The gateway's per-client limits (spec.apps.rateLimit); unset keeps the apps' defaults.
	EnvRateLimit     = "SCALESTACK_RATE_LIMIT"
	EnvRateBurst     = "SCALESTACK_RATE_BURST"
	EnvAuthRateLimit = "SCALESTACK_AUTH_RATE_LIMIT"
	EnvAuthRateBurst = "SCALESTACK_AUTH_RATE_BURST"
	// EnvTrustForwarded: the gateway keys rate limits on X-Forwarded-For (behind an ingress).
	EnvTrustForwarded = "SCALESTACK_TRUST_FORWARDED"
	// EnvSecureCookies: the gateway marks its session cookie Secure (served over TLS).
	EnvSecureCookies = "SCALESTACK_SECURE_COOKIES"
	EnvShardMapFile  = "SCALESTACK_SHARD_MAP_FILE"
	EnvDBEngine      = "SCALESTACK_DB_ENGINE"
	EnvDBUser        = "SCALESTACK_DB_USER"
	EnvDBPassword    = "SCALESTACK_DB_PASSWORD"
	// EnvDBPoolSize is how many connections a pod opens to each database server.
	EnvDBPoolSize    = "SCALESTACK_DB_POOL_SIZE"
	EnvTokenKey      = "SCALESTACK_TOKEN_KEY"
	EnvLogFormat     = "SCALESTACK_LOG_FORMAT"
	EnvAssetMaxAge   = "SCALESTACK_ASSET_MAX_AGE"
	EnvSMTPAddr      = "SCALESTACK_SMTP_ADDR"
	EnvSMTPFrom      = "SCALESTACK_SMTP_FROM"
	EnvTraceEndpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTraceSampler  = "OTEL_TRACES_SAMPLER"
	EnvTraceRatio    = "OTEL_TRACES_SAMPLER_ARG"
	EnvTraceDisabled = "OTEL_SDK_DISABLED"
)

// Environment of the shard agent (dbagent), beside each database server.
const (
	EnvAgentRole   = "DBAGENT_ROLE"
	EnvAgentEngine = "DBAGENT_ENGINE"
	EnvAgentShard  = "DBAGENT_SHARD"
	// EnvAgentPrimaryPod names the pod that is the shard's primary until the shard map names
	// another (after a failover or switchover).
	EnvAgentPrimaryPod = "DBAGENT_PRIMARY_POD"
	// EnvAgentPeerDomain is the DNS suffix of the shard's pods: <pod>.<domain> reaches a peer.
	EnvAgentPeerDomain = "DBAGENT_PEER_DOMAIN"
	// EnvAgentShardMap is the path of the mounted shard map, where the operator records each
	// shard's primary of record.
	EnvAgentShardMap = "DBAGENT_SHARD_MAP"
	// EnvAgentFenceAfter: a primary whose agent could not reach its server for this long refuses
	// writes until the operator confirms it is still the primary.
	EnvAgentFenceAfter = "DBAGENT_FENCE_AFTER"
	// EnvAgentSemiSyncTimeout is how long a primary's commit waits for a replica's
	// acknowledgement before replication falls back to asynchronous; 0 turns semi-sync off.
	EnvAgentSemiSyncTimeout = "DBAGENT_SEMISYNC_TIMEOUT"
	EnvAgentPod             = "POD_NAME"
	EnvAgentAddr            = "DBAGENT_ADDR"
	EnvAgentDataDir         = "DBAGENT_DATADIR"
	// The object store the agent archives binary logs to (spec.database.backup), the files of the
	// access key, and how often it archives.
	EnvBackupEndpoint        = "DBAGENT_BACKUP_ENDPOINT"
	EnvBackupBucket          = "DBAGENT_BACKUP_BUCKET"
	EnvBackupPrefix          = "DBAGENT_BACKUP_PREFIX"
	EnvBackupRegion          = "DBAGENT_BACKUP_REGION"
	EnvBackupAccessKeyFile   = "DBAGENT_BACKUP_ACCESS_KEY_FILE"
	EnvBackupSecretKeyFile   = "DBAGENT_BACKUP_SECRET_KEY_FILE"
	EnvBackupArchiveInterval = "DBAGENT_BACKUP_ARCHIVE_INTERVAL"
	EnvBackupBinlogRetention = "DBAGENT_BACKUP_BINLOG_RETENTION"
	// The store a new platform's shards are restored from (spec.database.restore), read by the
	// bootstrap init container.
	EnvRestoreEndpoint      = "DBAGENT_RESTORE_ENDPOINT"
	EnvRestoreBucket        = "DBAGENT_RESTORE_BUCKET"
	EnvRestorePrefix        = "DBAGENT_RESTORE_PREFIX"
	EnvRestoreRegion        = "DBAGENT_RESTORE_REGION"
	EnvRestoreAccessKeyFile = "DBAGENT_RESTORE_ACCESS_KEY_FILE"
	EnvRestoreSecretKeyFile = "DBAGENT_RESTORE_SECRET_KEY_FILE"
	EnvRestorePointInTime   = "DBAGENT_RESTORE_POINT_IN_TIME"
	// EnvAgentServerConfig is the path of the server's defaults file in the bootstrap container.
	EnvAgentServerConfig        = "DBAGENT_SERVER_CONFIG"
	EnvAgentRootPassword        = "DBAGENT_ROOT_PASSWORD"
	EnvAgentAppPassword         = "DBAGENT_APP_PASSWORD"
	EnvAgentReplicationPassword = "DBAGENT_REPLICATION_PASSWORD"
	EnvAgentExporterPassword    = "DBAGENT_EXPORTER_PASSWORD"
)

// ServerID is the server_id of a shard's database server: unique in the shard's replication
// topology (a replica ignores events that carry its own server_id). The primary is shard*100+1,
// replica ordinal n is shard*100+2+n. The operator starts each server with it (the replicas with
// ordinal 0's, since a StatefulSet's pods share their arguments) and the agent sets the exact
// value on its first tick.
func ServerID(shard int, primary bool, ordinal int) int {
	if primary {
		return shard*100 + 1
	}
	return shard*100 + 2 + ordinal
}

// The database account the app services use.
const DBUser = "app"

// Topics the apps produce and consume; the operator always creates them, each with a dead-letter
// twin named with DLQSuffix.
const (
	TopicUserCreated   = "user-created"
	TopicPostCreated   = "post-created"
	TopicFollowCreated = "follow-created"
	DLQSuffix          = ".dlq"
)

// RequiredTopics lists the topics above.
var RequiredTopics = []string{TopicUserCreated, TopicPostCreated, TopicFollowCreated}

// Ports.
const (
	// HTTPPort serves every app binary's API, /metrics, /healthz and /readyz.
	HTTPPort int32 = 8080
	// AgentPort serves the shard agent's /healthz, /readyz and /metrics.
	AgentPort int32 = 9080
)

// BinDir holds every binary of the apps image (one per apps/cmd directory).
const BinDir = "/usr/local/bin"

// Binary is the path of one of the apps image's binaries.
func Binary(name string) string { return BinDir + "/" + name }
