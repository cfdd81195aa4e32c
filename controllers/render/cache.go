package render

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

const (
	// RedisImage is the cache image unless spec.cache.image overrides it.
	RedisImage = "docker.io/library/redis:7.2"
	// RedisExporterImage exports Redis metrics.
	RedisExporterImage = "quay.io/oliver006/redis_exporter:v1.74.0"
	// RedisExporterPort is where the Redis exporter serves metrics.
	RedisExporterPort int32 = 9121
	// RedisUID is the redis user of the official image.
	RedisUID int64 = 999
)

// CacheMemory derives the Redis numbers from spec.cache.size: maxmemory is the size itself, and
// the container's memory limit is above it by a quarter (at least 32Mi) for Redis' own overhead
// (buffers, fragmentation, the replication backlog), so the eviction policy, not the OOM killer,
// decides what goes.
func CacheMemory(sp *scalestackv1alpha1.SocialPlatform) (maxmemory int64, limit resource.Quantity) {
	maxmemory = sp.Spec.Cache.Size.Value()
	overhead := max(maxmemory/4, 32<<20)
	return maxmemory, *resource.NewQuantity(maxmemory+overhead, resource.BinarySI)
}

// CacheACLMountPath is where the cache pod mounts its ACL file (one key of the credentials Secret).
const CacheACLMountPath = "/etc/redis-users"

// CacheACL is Redis' ACL file: the default user needs the generated password (given as its
// SHA-256, so the file never holds the password itself). Nothing connects without it.
func CacheACL(password []byte) []byte {
	sum := sha256.Sum256(password)
	return []byte("user default on #" + hex.EncodeToString(sum[:]) + " ~* &* +@all\n")
}

// CacheConfig is redis.conf: memory bound and eviction policy from the manifest, no persistence
// (the cache is rebuilt from the database), the client-side-caching friendly defaults, and the
// users from the ACL file (the generated password).
func CacheConfig(sp *scalestackv1alpha1.SocialPlatform) *corev1ac.ConfigMapApplyConfiguration {
	maxmemory, _ := CacheMemory(sp)
	policy := CacheEvictionPolicy(sp)
	conf := fmt.Sprintf(`port %d
bind 0.0.0.0
protected-mode no
maxmemory %d
maxmemory-policy %s
maxmemory-samples 10
save ""
appendonly no
tcp-keepalive 60
timeout 0
lazyfree-lazy-eviction yes
lazyfree-lazy-expire yes
aclfile %s/users.acl
`, RedisPort, maxmemory, policy, CacheACLMountPath)
	return corev1ac.ConfigMap(sp.CacheConfigName(), sp.Namespace).
		WithLabels(sp.Labels("cache")).
		WithOwnerReferences(OwnerReference(sp)).
		WithData(map[string]string{"redis.conf": conf})
}

// CacheService exposes Redis and its exporter.
func CacheService(sp *scalestackv1alpha1.SocialPlatform) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(sp.CacheName(), sp.Namespace).
		WithLabels(sp.Labels("cache")).
		WithOwnerReferences(OwnerReference(sp)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(sp.SelectorLabels("cache")).
			WithPorts(
				corev1ac.ServicePort().WithName("redis").WithPort(RedisPort).WithTargetPort(intstr.FromString("redis")),
				corev1ac.ServicePort().WithName("metrics").WithPort(RedisExporterPort).WithTargetPort(intstr.FromString("metrics")),
			))
}

// CacheStatefulSet runs Redis with its exporter. configHash rolls it when redis.conf changes.
func CacheStatefulSet(sp *scalestackv1alpha1.SocialPlatform, configHash string) *appsv1ac.StatefulSetApplyConfiguration {
	_, limit := CacheMemory(sp)
	image := sp.Spec.Cache.Image
	if image == "" {
		image = RedisImage
	}
	password := func(name string) *corev1ac.EnvVarApplyConfiguration {
		return corev1ac.EnvVar().WithName(name).WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
			corev1ac.SecretKeySelector().WithName(sp.DatabaseSecretName()).WithKey(SecretKeyCache)))
	}
	redisProbe := func(period, failures int32) *corev1ac.ProbeApplyConfiguration {
		return corev1ac.Probe().WithExec(corev1ac.ExecAction().WithCommand("redis-cli", "ping")).
			WithPeriodSeconds(period).WithTimeoutSeconds(2).WithFailureThreshold(failures)
	}
	redis := corev1ac.Container().
		WithName("redis").
		WithImage(image).
		WithCommand("redis-server", "/etc/redis/redis.conf").
		// redis-cli (the probes) reads the password from REDISCLI_AUTH, never from its arguments.
		WithEnv(password("REDISCLI_AUTH")).
		WithPorts(corev1ac.ContainerPort().WithName("redis").WithContainerPort(RedisPort).WithProtocol(corev1.ProtocolTCP)).
		WithResources(resources(corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: limit},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: limit},
		})).
		WithReadinessProbe(redisProbe(5, 2)).
		WithLivenessProbe(redisProbe(10, 3)).
		WithVolumeMounts(
			corev1ac.VolumeMount().WithName("config").WithMountPath("/etc/redis").WithReadOnly(true),
			corev1ac.VolumeMount().WithName("users").WithMountPath(CacheACLMountPath).WithReadOnly(true),
			corev1ac.VolumeMount().WithName("data").WithMountPath("/data"),
		).
		WithSecurityContext(restrictedContainerSecurityContext().WithRunAsUser(RedisUID).WithRunAsGroup(RedisUID))
	exporter := corev1ac.Container().
		WithName("exporter").
		WithImage(RedisExporterImage).
		WithEnv(corev1ac.EnvVar().WithName("REDIS_ADDR").WithValue(fmt.Sprintf("redis://127.0.0.1:%d", RedisPort)), password("REDIS_PASSWORD")).
		WithPorts(corev1ac.ContainerPort().WithName("metrics").WithContainerPort(RedisExporterPort).WithProtocol(corev1.ProtocolTCP)).
		WithResources(resources(corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		})).
		WithSecurityContext(restrictedContainerSecurityContext())
	return appsv1ac.StatefulSet(sp.CacheName(), sp.Namespace).
		WithLabels(sp.Labels("cache")).
		WithOwnerReferences(OwnerReference(sp)).
		WithSpec(appsv1ac.StatefulSetSpec().
			WithReplicas(1).
			WithServiceName(sp.CacheName()).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(sp.SelectorLabels("cache"))).
			WithRevisionHistoryLimit(5).
			WithUpdateStrategy(appsv1ac.StatefulSetUpdateStrategy().WithType(appsv1.RollingUpdateStatefulSetStrategyType)).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(sp.Labels("cache")).
				WithAnnotations(map[string]string{scalestackv1alpha1.AnnotationConfigHash: configHash}).
				WithSpec(corev1ac.PodSpec().
					WithAutomountServiceAccountToken(false).
					WithEnableServiceLinks(false).
					WithSecurityContext(restrictedPodSecurityContext().WithRunAsUser(RedisUID).WithRunAsGroup(RedisUID).WithFSGroup(RedisUID)).
					WithContainers(redis, exporter).
					WithVolumes(
						corev1ac.Volume().WithName("config").WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(sp.CacheConfigName())),
						// Only the ACL file of the credentials Secret, readable by the redis group.
						corev1ac.Volume().WithName("users").WithSecret(corev1ac.SecretVolumeSource().
							WithSecretName(sp.DatabaseSecretName()).WithDefaultMode(0o440).
							WithItems(corev1ac.KeyToPath().WithKey(SecretKeyCacheACL).WithPath("users.acl"))),
						// No persistence: the working directory only holds what Redis writes on the way.
						corev1ac.Volume().WithName("data").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(resourceTmp)),
					))))
}
