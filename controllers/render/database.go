package render

import (
	"fmt"
	"maps"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/utils/ptr"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/pkg/platform"
	"github.com/scalestack/scalestack/pkg/shard"
)

// Database images per engine. Overridden by spec.database.image.
const (
	MariaDBImage = "docker.io/library/mariadb:10.11"
	MySQLImage   = "docker.io/library/mysql:8.4"
	// MySQLExporterImage is built for the local node from its Go module at this version
	// (hack/versions.env MYSQLD_EXPORTER_VERSION).
	MySQLExporterImage = "quay.io/prometheus/mysqld-exporter:v0.16.0"
	// DatabaseUID runs the database containers. The data directory is made by the agent's
	// bootstrap under this uid (fsGroup owns the volume), so it need not exist in the image: the
	// official images' mysql user (999) and Debian's (100) both work.
	DatabaseUID int64 = 999
	// DataDir is the server's data directory: a subdirectory of the volume, since an ext4 volume
	// root holds lost+found, which MySQL refuses in a data directory.
	DataDir = "/var/lib/mysql/data"
	// agentBinDir is where the agent binary is copied for the database image's init container.
	agentBinDir = "/opt/scalestack/bin"
	// ExporterPort is where the mysqld exporter serves metrics.
	ExporterPort int32 = 9104
	// AgentPort is where the replication agent serves /healthz, /readyz, /metrics and the
	// operator's API.
	AgentPort = platform.AgentPort
	// LabelPodName is the label the StatefulSet controller puts on each of its pods.
	LabelPodName = "statefulset.kubernetes.io/pod-name"
)

// Keys of the database credentials Secret.
const (
	SecretKeyRoot        = "root-password"
	SecretKeyApp         = "app-password"
	SecretKeyReplication = "replication-password"
	SecretKeyExporter    = "exporter-password"
	// SecretKeyToken signs the apps' bearer tokens (the user service issues, the gateway verifies).
	SecretKeyToken = "token-key"
	// SecretKeyCache is the cache's password: the apps and the Redis exporter authenticate with it.
	SecretKeyCache = "cache-password"
	// SecretKeyCacheACL is Redis' ACL file, derived from SecretKeyCache (it holds the password's
	// SHA-256, never the password); Redis reads it from the Secret mounted into its pod.
	SecretKeyCacheACL = "cache-users.acl"
)

// SecretKeys lists the generated passwords.
var SecretKeys = []string{SecretKeyRoot, SecretKeyApp, SecretKeyReplication, SecretKeyExporter, SecretKeyToken, SecretKeyCache}

// Retained says whether data outlives the platform (deletionPolicy Retain, the default).
func Retained(sp *scalestackv1alpha1.SocialPlatform) bool {
	return sp.Spec.Database.DeletionPolicy != scalestackv1alpha1.DeletionPolicyDelete
}

// Shards is the number of physical shards with the default applied.
func Shards(sp *scalestackv1alpha1.SocialPlatform) int32 {
	if n := sp.Spec.Database.Shards; n > 0 {
		return n
	}
	return scalestackv1alpha1.DefaultShards
}

// ReplicasPerShard is the number of read replicas per shard with the default applied.
func ReplicasPerShard(sp *scalestackv1alpha1.SocialPlatform) int32 {
	return ptr.Deref(sp.Spec.Database.ReplicasPerShard, scalestackv1alpha1.DefaultReplicasPerShard)
}

// DatabaseSecret holds the generated database passwords. passwords comes from the live Secret
// when it exists (never regenerated) or from crypto/rand on first creation. Under Retain it has no
// owner reference, so deleting the platform never deletes it.
func DatabaseSecret(sp *scalestackv1alpha1.SocialPlatform, passwords map[string][]byte) *corev1ac.SecretApplyConfiguration {
	data := maps.Clone(passwords)
	if p := passwords[SecretKeyCache]; len(p) > 0 {
		data[SecretKeyCacheACL] = CacheACL(p)
	}
	s := corev1ac.Secret(sp.DatabaseSecretName(), sp.Namespace).
		WithLabels(sp.Labels("database")).
		WithType(corev1.SecretTypeOpaque).
		WithData(data)
	if Retained(sp) {
		s.WithAnnotations(RetainedAnnotations)
	} else {
		s.WithOwnerReferences(OwnerReference(sp))
	}
	return s
}

// RetainedAnnotations go on what outlives the platform under deletionPolicy Retain (the
// credentials Secret, the shards' claims), which carries no owner reference: Argo CD's label
// tracking keys on app.kubernetes.io/instance, so an Application named like the platform would
// otherwise take them for its own and prune them (docs/argocd.md).
var RetainedAnnotations = map[string]string{
	"argocd.argoproj.io/sync-options":    "Prune=false",
	"argocd.argoproj.io/compare-options": "IgnoreExtraneous",
}

// ShardMap renders the shard map for the current number of shards; the primary is reached through
// the -primary Service and reads through the -replicas Service (the primary when a shard has no
// replicas).
func ShardMap(sp *scalestackv1alpha1.SocialPlatform) (*shard.Map, error) {
	replicas := ReplicasPerShard(sp)
	return shard.Build(int(Shards(sp)), func(i int) (string, string) {
		p := fmt.Sprintf("%s.%s.svc:%d", sp.ShardPrimaryName(int32(i)), sp.Namespace, MySQLPort)
		r := ""
		if replicas > 0 {
			r = fmt.Sprintf("%s.%s.svc:%d", sp.ShardReplicasName(int32(i)), sp.Namespace, MySQLPort)
		}
		return p, r
	})
}

// ShardMapConfigMap publishes the shard map to the apps.
func ShardMapConfigMap(sp *scalestackv1alpha1.SocialPlatform, mapJSON string) *corev1ac.ConfigMapApplyConfiguration {
	return corev1ac.ConfigMap(sp.ShardMapName(), sp.Namespace).
		WithLabels(sp.Labels("shard-map")).
		WithOwnerReferences(OwnerReference(sp)).
		WithData(map[string]string{ShardMapKey: mapJSON})
}

// binlogExpiry: the server purges binary logs older than 7 days by itself, unless they are
// archived: then only the agent purges them, once archived (and 7 days old), so that a stalled
// upload never loses one.
func binlogExpiry(sp *scalestackv1alpha1.SocialPlatform) string {
	if BackupEnabled(sp) {
		return "# Purged by the agent once archived (spec.database.backup).\nbinlog_expire_logs_seconds = 0"
	}
	return "# Bounds the binary logs' disk.\nbinlog_expire_logs_seconds = 604800"
}

// BinlogRetention is how long binary logs stay on a server's disk.
const BinlogRetention = 7 * 24 * time.Hour

// DatabaseConfig is the server configuration of every shard pod: GTID replication, binary logs in
// row format, crash-safe replica state, and the engine's statements for both.
// The buffer pool and max_connections come from Sizing (the manifest's database memory).
func DatabaseConfig(sp *scalestackv1alpha1.SocialPlatform) *corev1ac.ConfigMapApplyConfiguration {
	z := Sizing(sp)
	// Read with --defaults-file: the image's own configuration is never read, so every image of
	// the engine behaves the same.
	common := `[mysqld]
datadir = ` + DataDir + `
socket = /run/mysqld/mysqld.sock
pid-file = /run/mysqld/mysqld.pid
tmpdir = /tmp
bind-address = 0.0.0.0
port = 3306
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
skip-name-resolve = ON
max_connections = ` + fmt.Sprint(z.MaxConnections) + `
innodb_buffer_pool_size = ` + fmt.Sprint(z.BufferPoolMiB) + `M
innodb_flush_log_at_trx_commit = 1
sync_binlog = 1
log_bin = binlog
` + binlogExpiry(sp) + `
binlog_format = ROW
relay_log = relay-bin
log_slave_updates = ON
# The primary sends a heartbeat every second (the agent's CHANGE MASTER sets it): a replica whose
# connection died silently (its primary's pod gone without a FIN) notices within 4 s and
# reconnects, instead of reporting itself current on a dead connection for a minute.
read_only = OFF
`
	var engineCnf string
	if Engine(sp) == scalestackv1alpha1.EngineMySQL {
		engineCnf = `gtid_mode = ON
enforce_gtid_consistency = ON
relay_log_recovery = ON
replica_net_timeout = 4
`
	} else {
		engineCnf = `gtid_strict_mode = ON
relay_log_recovery = ON
log_basename = shard
slave_net_timeout = 4
`
	}
	return corev1ac.ConfigMap(sp.DatabaseConfigName(), sp.Namespace).
		WithLabels(sp.Labels("database")).
		WithOwnerReferences(OwnerReference(sp)).
		WithData(map[string]string{"scalestack.cnf": common + engineCnf})
}

// ShardHeadlessService governs both StatefulSets of a shard, giving each pod a stable DNS name
// that the replicas replicate from.
func ShardHeadlessService(sp *scalestackv1alpha1.SocialPlatform, i int32) *corev1ac.ServiceApplyConfiguration {
	sel := shardSelector(sp, i, "")
	return corev1ac.Service(sp.ShardName(i), sp.Namespace).
		WithLabels(shardLabels(sp, i, "")).
		WithOwnerReferences(OwnerReference(sp)).
		WithSpec(corev1ac.ServiceSpec().
			WithClusterIP(corev1.ClusterIPNone).
			// Replicas must find a primary that is still starting.
			WithPublishNotReadyAddresses(true).
			WithSelector(sel).
			WithPorts(corev1ac.ServicePort().WithName("mysql").WithPort(MySQLPort).WithTargetPort(intstr.FromString("mysql"))))
}

// ShardService is the client Service of a shard's primary (role "primary") or replicas (role
// "replica"). Only ready pods receive traffic: a replica is ready when it replicates with lag
// under the bound.
//
// The primary's Service selects the primary of record by its pod name, so a failover or
// switchover moves it with one change and it never selects two pods. The replicas' Service
// selects the replica StatefulSet's pods: after a failover to one of them it also sends reads to
// the new primary (correct, only busier) until a switchover back.
func ShardService(sp *scalestackv1alpha1.SocialPlatform, i int32, role, primaryPod string) *corev1ac.ServiceApplyConfiguration {
	name := sp.ShardPrimaryName(i)
	sel := shardSelector(sp, i, "")
	sel[LabelPodName] = primaryPod
	if role == "replica" {
		name, sel = sp.ShardReplicasName(i), shardSelector(sp, i, role)
	}
	return corev1ac.Service(name, sp.Namespace).
		WithLabels(shardLabels(sp, i, role)).
		WithOwnerReferences(OwnerReference(sp)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(sel).
			WithPorts(
				corev1ac.ServicePort().WithName("mysql").WithPort(MySQLPort).WithTargetPort(intstr.FromString("mysql")),
				corev1ac.ServicePort().WithName("metrics").WithPort(ExporterPort).WithTargetPort(intstr.FromString("metrics")),
				// The agent's metrics (replication health and lag), for the database ServiceMonitor.
				corev1ac.ServicePort().WithName("agent").WithPort(AgentPort).WithTargetPort(intstr.FromString("agent")),
			))
}

// ShardInputs are the facts a shard StatefulSet needs besides the platform.
type ShardInputs struct {
	// AgentImage runs the replication agent (the apps image).
	AgentImage string
	// ConfigHash is the hash of the database ConfigMap; a change rolls the pods.
	ConfigHash string
	// ClaimSize, when set, is the data claim template's size instead of the desired one: the
	// claims cannot grow (the template is immutable and must stay as it is).
	ClaimSize *resource.Quantity
	// MinReplicas is a floor on the replicas StatefulSet's size (it holds the primary of record).
	MinReplicas int32
}

// SemiSyncTimeout is how long a primary's commit waits for a replica's acknowledgement before
// replication falls back to asynchronous (spec.database.failover.semiSyncTimeout;
// docs/data-tier.md, "Failure model").
func SemiSyncTimeout(sp *scalestackv1alpha1.SocialPlatform) time.Duration {
	if d := sp.Spec.Database.Failover.SemiSyncTimeout; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return scalestackv1alpha1.DefaultSemiSyncTimeout
}

// DataVolume is the name of a shard pod's data volume and of its StatefulSet's claim template
// (claims are named data-<statefulset>-<ordinal>).
const DataVolume = "data"

// serverConfigPath is where the database ConfigMap's scalestack.cnf is mounted.
const serverConfigPath = "/etc/mysql/scalestack/scalestack.cnf"

// serverArgs start a shard's database server with its own configuration file and, before the
// agent's first tick, the right identity: a distinct server_id, and read-only from its first
// moment.
func serverArgs(i int32, role string) []string {
	// Every server starts read-only, the primary too: the agent makes the primary of record
	// writable, so a demoted primary that restarts never takes a write before its agent knows.
	return []string{"--defaults-file=" + serverConfigPath,
		fmt.Sprintf("--server-id=%d", platform.ServerID(int(i), role == "primary", 0)), "--read-only=ON"}
}

// ShardStatefulSet runs a shard's primary (role "primary", one pod) or its read replicas (role
// "replica", replicasPerShard pods). Beside the database runs the replication agent (Go code in
// the apps image, tested against real MariaDB: it sets server_id, points replicas at the primary
// with GTID, watches lag and answers the pod's readiness) and the metrics exporter.
func ShardStatefulSet(sp *scalestackv1alpha1.SocialPlatform, i int32, role string, in ShardInputs) *appsv1ac.StatefulSetApplyConfiguration {
	name, replicas := sp.ShardPrimaryName(i), int32(1)
	if role == "replica" {
		name, replicas = sp.ShardReplicasName(i), max(ReplicasPerShard(sp), in.MinReplicas)
	}
	db := sp.Spec.Database
	image := db.Image
	if image == "" {
		image = MariaDBImage
		if Engine(sp) == scalestackv1alpha1.EngineMySQL {
			image = MySQLImage
		}
	}
	res := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
	}
	if db.Resources != nil {
		res = *db.Resources
	}
	secretEnv := func(env, key string) *corev1ac.EnvVarApplyConfiguration {
		return corev1ac.EnvVar().WithName(env).WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
			corev1ac.SecretKeySelector().WithName(sp.DatabaseSecretName()).WithKey(key)))
	}
	server := "mariadbd"
	if Engine(sp) == scalestackv1alpha1.EngineMySQL {
		server = "mysqld"
	}
	dataMounts := []*corev1ac.VolumeMountApplyConfiguration{
		corev1ac.VolumeMount().WithName(DataVolume).WithMountPath("/var/lib/mysql"),
		corev1ac.VolumeMount().WithName("run").WithMountPath("/run/mysqld"),
		corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"),
	}
	small := resources(corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("20m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
	})
	// The database pods never depend on an image's entrypoint script: the agent, copied out of the
	// apps image, bootstraps the data directory and root's password inside the database image.
	installAgent := corev1ac.Container().
		WithName("install-agent").
		WithImage(in.AgentImage).
		WithCommand(platform.Binary("dbagent"), "install", agentBinDir+"/dbagent").
		WithVolumeMounts(corev1ac.VolumeMount().WithName("agent-bin").WithMountPath(agentBinDir)).
		WithResources(small).
		WithSecurityContext(restrictedContainerSecurityContext())
	bootstrap := corev1ac.Container().
		WithName("bootstrap").
		WithImage(image).
		WithCommand(agentBinDir+"/dbagent", "init").
		// Its termination message is how the operator follows a restore and learns why a
		// bootstrap failed (the agent writes it; a crash leaves the log's tail).
		WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError).
		WithEnv(
			// The pod and its shard's primary of record: a new replica, and a rebuild of a diverged
			// one, copy the primary (through its agent).
			corev1ac.EnvVar().WithName(platform.EnvAgentPod).WithValueFrom(corev1ac.EnvVarSource().WithFieldRef(corev1ac.ObjectFieldSelector().WithAPIVersion("v1").WithFieldPath("metadata.name"))),
			corev1ac.EnvVar().WithName(platform.EnvAgentRole).WithValue(role),
			corev1ac.EnvVar().WithName(platform.EnvAgentEngine).WithValue(string(Engine(sp))),
			corev1ac.EnvVar().WithName(platform.EnvAgentShard).WithValue(fmt.Sprint(i)),
			corev1ac.EnvVar().WithName(platform.EnvAgentDataDir).WithValue(DataDir),
			corev1ac.EnvVar().WithName(platform.EnvAgentPrimaryPod).WithValue(sp.ShardDefaultPrimaryPod(i)),
			corev1ac.EnvVar().WithName(platform.EnvAgentPeerDomain).WithValue(fmt.Sprintf("%s.%s.svc", sp.ShardName(i), sp.Namespace)),
			corev1ac.EnvVar().WithName(platform.EnvAgentShardMap).WithValue(ShardMapMountPath+"/"+ShardMapKey),
			corev1ac.EnvVar().WithName(platform.EnvAgentAddr).WithValue(fmt.Sprintf(":%d", AgentPort)),
			corev1ac.EnvVar().WithName(platform.EnvAgentServerConfig).WithValue(serverConfigPath),
			secretEnv(platform.EnvAgentRootPassword, SecretKeyRoot),
			secretEnv(platform.EnvAgentReplicationPassword, SecretKeyReplication),
		).
		WithEnv(restoreEnv(sp)...).
		WithVolumeMounts(append(dataMounts,
			corev1ac.VolumeMount().WithName("agent-bin").WithMountPath(agentBinDir).WithReadOnly(true),
			corev1ac.VolumeMount().WithName("config").WithMountPath("/etc/mysql/scalestack").WithReadOnly(true),
			corev1ac.VolumeMount().WithName("shard-map").WithMountPath(ShardMapMountPath).WithReadOnly(true))...).
		WithVolumeMounts(restoreMounts(sp)...).
		WithResources(resources(res)).
		WithSecurityContext(restrictedContainerSecurityContext().WithRunAsUser(DatabaseUID).WithRunAsGroup(DatabaseUID))
	database := corev1ac.Container().
		WithName("database").
		WithImage(image).
		WithCommand(server).
		WithArgs(serverArgs(i, role)...).
		WithPorts(corev1ac.ContainerPort().WithName("mysql").WithContainerPort(MySQLPort).WithProtocol(corev1.ProtocolTCP)).
		WithResources(resources(res)).
		WithStartupProbe(corev1ac.Probe().WithTCPSocket(corev1ac.TCPSocketAction().WithPort(intstr.FromString("mysql"))).
			WithPeriodSeconds(5).WithFailureThreshold(60)).
		WithLivenessProbe(corev1ac.Probe().WithTCPSocket(corev1ac.TCPSocketAction().WithPort(intstr.FromString("mysql"))).
			WithPeriodSeconds(10).WithFailureThreshold(6)).
		WithVolumeMounts(append(dataMounts,
			corev1ac.VolumeMount().WithName("config").WithMountPath("/etc/mysql/scalestack").WithReadOnly(true))...).
		WithSecurityContext(restrictedContainerSecurityContext().WithRunAsUser(DatabaseUID).WithRunAsGroup(DatabaseUID))

	// The agent runs in the database image, beside the data directory, so that the engine's own
	// backup tool (mariadb-backup) can copy the server: the copy a diverged replica is rebuilt from.
	agent := corev1ac.Container().
		WithName("agent").
		WithImage(image).
		WithCommand(agentBinDir+"/dbagent").
		WithPorts(corev1ac.ContainerPort().WithName("agent").WithContainerPort(AgentPort).WithProtocol(corev1.ProtocolTCP)).
		WithEnv(
			corev1ac.EnvVar().WithName("POD_NAME").WithValueFrom(corev1ac.EnvVarSource().WithFieldRef(corev1ac.ObjectFieldSelector().WithAPIVersion("v1").WithFieldPath("metadata.name"))),
			corev1ac.EnvVar().WithName(platform.EnvAgentRole).WithValue(role),
			corev1ac.EnvVar().WithName(platform.EnvAgentEngine).WithValue(string(Engine(sp))),
			corev1ac.EnvVar().WithName(platform.EnvAgentShard).WithValue(fmt.Sprint(i)),
			// The primary until the shard map records another: the template never changes with a
			// failover, so a failover rolls no pod.
			corev1ac.EnvVar().WithName(platform.EnvAgentPrimaryPod).WithValue(sp.ShardDefaultPrimaryPod(i)),
			corev1ac.EnvVar().WithName(platform.EnvAgentPeerDomain).WithValue(fmt.Sprintf("%s.%s.svc", sp.ShardName(i), sp.Namespace)),
			corev1ac.EnvVar().WithName(platform.EnvAgentShardMap).WithValue(ShardMapMountPath+"/"+ShardMapKey),
			// A failover needs the pod unready for failover.after, and the pod turns unready at the
			// earliest about 10 s into a stall (a 5 s tick timeout, then two failed probes 5 s
			// apart): a primary back within failover.after cannot have been replaced.
			corev1ac.EnvVar().WithName(platform.EnvAgentFenceAfter).WithValue(FailoverAfter(sp).String()),
			corev1ac.EnvVar().WithName(platform.EnvAgentSemiSyncTimeout).WithValue(SemiSyncTimeout(sp).String()),
			corev1ac.EnvVar().WithName(platform.EnvAgentAddr).WithValue(fmt.Sprintf(":%d", AgentPort)),
			corev1ac.EnvVar().WithName(platform.EnvAgentDataDir).WithValue(DataDir),
			secretEnv(platform.EnvAgentRootPassword, SecretKeyRoot),
			secretEnv(platform.EnvAgentAppPassword, SecretKeyApp),
			secretEnv(platform.EnvAgentReplicationPassword, SecretKeyReplication),
			secretEnv(platform.EnvAgentExporterPassword, SecretKeyExporter),
		).
		WithEnv(backupEnv(sp)...).
		// mariadb-backup, when it copies the server, runs in the agent's container.
		WithResources(resources(corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("20m"), corev1.ResourceMemory: resource.MustParse("48Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
		})).
		WithVolumeMounts(append(dataMounts,
			corev1ac.VolumeMount().WithName("agent-bin").WithMountPath(agentBinDir).WithReadOnly(true),
			corev1ac.VolumeMount().WithName("shard-map").WithMountPath(ShardMapMountPath).WithReadOnly(true))...).
		WithVolumeMounts(backupMounts(sp)...).
		// Pod readiness is the agent's: a primary that accepts writes, a replica that replicates from
		// the right primary with lag under the bound. "Process up" is not ready.
		WithReadinessProbe(corev1ac.Probe().WithHTTPGet(corev1ac.HTTPGetAction().WithPath("/readyz").WithPort(intstr.FromString("agent"))).
			WithPeriodSeconds(5).WithFailureThreshold(2)).
		WithLivenessProbe(corev1ac.Probe().WithHTTPGet(corev1ac.HTTPGetAction().WithPath("/healthz").WithPort(intstr.FromString("agent"))).
			WithPeriodSeconds(10).WithFailureThreshold(3)).
		WithSecurityContext(restrictedContainerSecurityContext().WithRunAsUser(DatabaseUID).WithRunAsGroup(DatabaseUID))

	exporter := corev1ac.Container().
		WithName("exporter").
		WithImage(MySQLExporterImage).
		WithArgs("--mysqld.address=127.0.0.1:3306", "--mysqld.username=exporter").
		WithEnv(secretEnv("MYSQLD_EXPORTER_PASSWORD", SecretKeyExporter)).
		WithPorts(corev1ac.ContainerPort().WithName("metrics").WithContainerPort(ExporterPort).WithProtocol(corev1.ProtocolTCP)).
		WithResources(resources(corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		})).
		WithSecurityContext(restrictedContainerSecurityContext())

	sel := shardSelector(sp, i, role)
	pod := corev1ac.PodSpec().
		WithAutomountServiceAccountToken(false).
		WithEnableServiceLinks(false).
		WithTerminationGracePeriodSeconds(60).
		WithSecurityContext(restrictedPodSecurityContext().WithRunAsUser(DatabaseUID).WithRunAsGroup(DatabaseUID).WithFSGroup(DatabaseUID)).
		WithInitContainers(installAgent, bootstrap).
		WithContainers(database, agent, exporter).
		WithVolumes(
			corev1ac.Volume().WithName("agent-bin").WithEmptyDir(corev1ac.EmptyDirVolumeSource()),
			corev1ac.Volume().WithName("config").WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(sp.DatabaseConfigName())),
			corev1ac.Volume().WithName("run").WithEmptyDir(corev1ac.EmptyDirVolumeSource()),
			corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource()),
			// The shard map records the primary of record after a failover; optional, so a pod
			// never waits for it (the agent then follows its default primary).
			corev1ac.Volume().WithName("shard-map").WithConfigMap(corev1ac.ConfigMapVolumeSource().
				WithName(sp.ShardMapName()).WithOptional(true)),
		).
		WithVolumes(backupVolumes(sp)...).
		WithVolumes(restoreVolumes(sp)...).
		WithTopologySpreadConstraints(spread("kubernetes.io/hostname", shardSelector(sp, i, "")))

	// A bare configuration: a template carries neither namespace nor kind.
	size := StorageSize(db.Storage)
	if in.ClaimSize != nil {
		size = *in.ClaimSize
	}
	pvc := (&corev1ac.PersistentVolumeClaimApplyConfiguration{}).
		WithName(DataVolume).
		WithLabels(shardLabels(sp, i, role)).
		// volumeClaimTemplates is an atomic list: the operator owns the defaults the API server writes
		// into it, so they are stated here, or the no-op check would see a difference every pass.
		WithStatus(corev1ac.PersistentVolumeClaimStatus().WithPhase(corev1.ClaimPending)).
		WithSpec(corev1ac.PersistentVolumeClaimSpec().
			WithVolumeMode(corev1.PersistentVolumeFilesystem).
			WithAccessModes(corev1.ReadWriteOnce).
			WithResources(corev1ac.VolumeResourceRequirements().WithRequests(corev1.ResourceList{corev1.ResourceStorage: size})))
	if db.Storage.StorageClassName != nil {
		pvc.Spec.WithStorageClassName(*db.Storage.StorageClassName)
	}
	retention := appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	if !Retained(sp) {
		retention = appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	}

	return appsv1ac.StatefulSet(name, sp.Namespace).
		WithLabels(shardLabels(sp, i, role)).
		WithOwnerReferences(OwnerReference(sp)).
		WithSpec(appsv1ac.StatefulSetSpec().
			WithReplicas(replicas).
			WithServiceName(sp.ShardName(i)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(sel)).
			WithPodManagementPolicy(appsv1.ParallelPodManagement).
			WithRevisionHistoryLimit(5).
			// The operator rolls a shard's pods itself, replicas first and the primary after a
			// switchover (controllers/rollout.go).
			WithUpdateStrategy(appsv1ac.StatefulSetUpdateStrategy().WithType(appsv1.OnDeleteStatefulSetStrategyType)).
			WithPersistentVolumeClaimRetentionPolicy(appsv1ac.StatefulSetPersistentVolumeClaimRetentionPolicy().
				WithWhenDeleted(retention).
				// Scaling replicas down never drops a volume: scaling back up resumes from it.
				WithWhenScaled(appsv1.RetainPersistentVolumeClaimRetentionPolicyType)).
			WithVolumeClaimTemplates(pvc).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(shardLabels(sp, i, role)).
				WithAnnotations(map[string]string{scalestackv1alpha1.AnnotationConfigHash: in.ConfigHash}).
				WithSpec(pod)))
}

// StorageSize is a volume's size with the default (10Gi) applied.
func StorageSize(s scalestackv1alpha1.StorageSpec) resource.Quantity {
	if s.Size != nil {
		return *s.Size
	}
	return resource.MustParse("10Gi")
}

// DataClaimSize is the storage request of a database StatefulSet's data claim template.
func DataClaimSize(sts *appsv1.StatefulSet) (resource.Quantity, bool) {
	for _, t := range sts.Spec.VolumeClaimTemplates {
		if t.Name == DataVolume {
			q, ok := t.Spec.Resources.Requests[corev1.ResourceStorage]
			return q, ok
		}
	}
	return resource.Quantity{}, false
}

func shardSelector(sp *scalestackv1alpha1.SocialPlatform, i int32, role string) map[string]string {
	l := sp.SelectorLabels("database")
	l[scalestackv1alpha1.LabelShard] = fmt.Sprint(i)
	if role != "" {
		l[scalestackv1alpha1.LabelRole] = role
	}
	return l
}

// shardLabels are the selector labels plus the labels every child carries.
func shardLabels(sp *scalestackv1alpha1.SocialPlatform, i int32, role string) map[string]string {
	l := shardSelector(sp, i, role)
	maps.Copy(l, sp.Labels("database"))
	return l
}

// BackupCredentialsMountPath is where the agent reads the object store's access key: a Secret
// volume, so a rotated key reaches it without a restart.
const BackupCredentialsMountPath = "/etc/scalestack/backup-credentials"

// backupEnv tells the agent where to archive (nothing without spec.database.backup).
func backupEnv(sp *scalestackv1alpha1.SocialPlatform) []*corev1ac.EnvVarApplyConfiguration {
	b := sp.Spec.Database.Backup
	if b == nil {
		return nil
	}
	id, secret := BackupCredentialKeys(sp)
	return []*corev1ac.EnvVarApplyConfiguration{
		corev1ac.EnvVar().WithName(platform.EnvBackupEndpoint).WithValue(b.ObjectStore.Endpoint),
		corev1ac.EnvVar().WithName(platform.EnvBackupBucket).WithValue(b.ObjectStore.Bucket),
		corev1ac.EnvVar().WithName(platform.EnvBackupPrefix).WithValue(BackupPrefix(sp)),
		corev1ac.EnvVar().WithName(platform.EnvBackupRegion).WithValue(b.ObjectStore.Region),
		corev1ac.EnvVar().WithName(platform.EnvBackupAccessKeyFile).WithValue(BackupCredentialsMountPath + "/" + id),
		corev1ac.EnvVar().WithName(platform.EnvBackupSecretKeyFile).WithValue(BackupCredentialsMountPath + "/" + secret),
		corev1ac.EnvVar().WithName(platform.EnvBackupArchiveInterval).WithValue(ArchiveInterval(sp).String()),
		corev1ac.EnvVar().WithName(platform.EnvBackupBinlogRetention).WithValue(BinlogRetention.String()),
	}
}

func backupMounts(sp *scalestackv1alpha1.SocialPlatform) []*corev1ac.VolumeMountApplyConfiguration {
	if sp.Spec.Database.Backup == nil {
		return nil
	}
	return []*corev1ac.VolumeMountApplyConfiguration{
		corev1ac.VolumeMount().WithName("backup-credentials").WithMountPath(BackupCredentialsMountPath).WithReadOnly(true),
	}
}

// backupVolumes: the credentials Secret is optional, so a missing one never keeps the database
// from starting; the agent reports it (BackupReady names the cause).
func backupVolumes(sp *scalestackv1alpha1.SocialPlatform) []*corev1ac.VolumeApplyConfiguration {
	b := sp.Spec.Database.Backup
	if b == nil {
		return nil
	}
	return []*corev1ac.VolumeApplyConfiguration{
		corev1ac.Volume().WithName("backup-credentials").WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(b.ObjectStore.Credentials.SecretName).WithOptional(true)),
	}
}

// RestoreCredentialsMountPath is where the bootstrap reads the access key of the store a new
// platform is restored from.
const RestoreCredentialsMountPath = "/etc/scalestack/restore-credentials"

// restoreEnv tells the bootstrap where the shard's backups are (spec.database.restore). The pod
// template keeps it after the restore: the field is immutable, and a bootstrap with the marker
// present never reads it again.
func restoreEnv(sp *scalestackv1alpha1.SocialPlatform) []*corev1ac.EnvVarApplyConfiguration {
	r := sp.Spec.Database.Restore
	if r == nil {
		return nil
	}
	id, secret := credentialKeys(r.Source.Credentials)
	env := []*corev1ac.EnvVarApplyConfiguration{
		corev1ac.EnvVar().WithName(platform.EnvRestoreEndpoint).WithValue(r.Source.Endpoint),
		corev1ac.EnvVar().WithName(platform.EnvRestoreBucket).WithValue(r.Source.Bucket),
		corev1ac.EnvVar().WithName(platform.EnvRestorePrefix).WithValue(RestorePrefix(sp)),
		corev1ac.EnvVar().WithName(platform.EnvRestoreRegion).WithValue(r.Source.Region),
		corev1ac.EnvVar().WithName(platform.EnvRestoreAccessKeyFile).WithValue(RestoreCredentialsMountPath + "/" + id),
		corev1ac.EnvVar().WithName(platform.EnvRestoreSecretKeyFile).WithValue(RestoreCredentialsMountPath + "/" + secret),
	}
	if r.PointInTime != nil {
		env = append(env, corev1ac.EnvVar().WithName(platform.EnvRestorePointInTime).WithValue(r.PointInTime.UTC().Format(time.RFC3339)))
	}
	return env
}

func restoreMounts(sp *scalestackv1alpha1.SocialPlatform) []*corev1ac.VolumeMountApplyConfiguration {
	if sp.Spec.Database.Restore == nil {
		return nil
	}
	return []*corev1ac.VolumeMountApplyConfiguration{
		corev1ac.VolumeMount().WithName("restore-credentials").WithMountPath(RestoreCredentialsMountPath).WithReadOnly(true),
	}
}

// restoreVolumes: optional, like the backup's, so the bootstrap says what is missing.
func restoreVolumes(sp *scalestackv1alpha1.SocialPlatform) []*corev1ac.VolumeApplyConfiguration {
	r := sp.Spec.Database.Restore
	if r == nil {
		return nil
	}
	return []*corev1ac.VolumeApplyConfiguration{
		corev1ac.Volume().WithName("restore-credentials").WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(r.Source.Credentials.SecretName).WithOptional(true)),
	}
}
