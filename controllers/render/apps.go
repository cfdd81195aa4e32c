package render

import (
	"cmp"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/pkg/platform"
)

// AppsConfig is the configuration every app service reads from its environment: where the
// other services, the cache, Kafka and the shard map are, and how to trace. Its content hash
// rolls the app pods when it changes.
func AppsConfig(sp *scalestackv1alpha1.SocialPlatform) *corev1ac.ConfigMapApplyConfiguration {
	svc := func(c scalestackv1alpha1.Component) string {
		return fmt.Sprintf("http://%s:%d", sp.ComponentName(c), ServicePort)
	}
	data := map[string]string{
		platform.EnvPlatform:         sp.Name,
		platform.EnvHTTPAddr:         fmt.Sprintf(":%d", HTTPPort),
		platform.EnvUserURL:          svc(scalestackv1alpha1.ComponentUser),
		platform.EnvPostURL:          svc(scalestackv1alpha1.ComponentPost),
		platform.EnvFeedURL:          svc(scalestackv1alpha1.ComponentFeed),
		platform.EnvRedisAddr:        fmt.Sprintf("%s:%d", sp.CacheName(), RedisPort),
		platform.EnvCacheTTL:         CacheTTL(sp).String(),
		platform.EnvKafkaBrokers:     KafkaBootstrap(sp),
		platform.EnvKafkaTopicPrefix: TopicPrefix(sp),
		platform.EnvShardMapFile:     ShardMapMountPath + "/" + ShardMapKey,
		platform.EnvDBEngine:         string(Engine(sp)),
		platform.EnvLogFormat:        "json",
		platform.EnvDBUser:           platform.DBUser,
		platform.EnvDBPoolSize:       fmt.Sprint(Sizing(sp).PoolPerPod),
		platform.EnvAssetMaxAge:      AssetMaxAge(sp).String(),
	}
	if TrustForwarded(sp) {
		data[platform.EnvTrustForwarded] = "true"
	}
	rl := sp.Spec.Apps.RateLimit
	for env, v := range map[string]*int32{platform.EnvRateLimit: rl.RequestsPerSecond, platform.EnvRateBurst: rl.Burst,
		platform.EnvAuthRateLimit: rl.AuthRequestsPerSecond, platform.EnvAuthRateBurst: rl.AuthBurst} {
		if v != nil {
			data[env] = fmt.Sprint(*v)
		}
	}
	if sp.Spec.Ingress.Host != "" && sp.Spec.Ingress.TLSSecretName != "" {
		data[platform.EnvSecureCookies] = "true"
	}
	if e := sp.Spec.Apps.Email; e != nil {
		data[platform.EnvSMTPAddr] = e.SMTPAddress
		data[platform.EnvSMTPFrom] = cmp.Or(e.From, scalestackv1alpha1.DefaultEmailFrom)
	}
	if t := sp.Spec.Observability.Tracing; t.Endpoint != "" {
		data[platform.EnvTraceEndpoint] = t.Endpoint
		data[platform.EnvTraceSampler] = "parentbased_traceidratio"
		ratio := t.SamplingRatio
		if ratio == "" {
			ratio = "0.1"
		}
		data[platform.EnvTraceRatio] = ratio
	} else {
		data[platform.EnvTraceDisabled] = "true"
	}
	return corev1ac.ConfigMap(sp.AppsConfigName(), sp.Namespace).
		WithLabels(sp.Labels("apps")).
		WithOwnerReferences(OwnerReference(sp)).
		WithData(data)
}

// KafkaBootstrap is the bootstrap address the apps connect to.
func KafkaBootstrap(sp *scalestackv1alpha1.SocialPlatform) string {
	if sp.Spec.Kafka.Mode == scalestackv1alpha1.KafkaModeExternal {
		s := ""
		for i, b := range sp.Spec.Kafka.BootstrapServers {
			if i > 0 {
				s += ","
			}
			s += b
		}
		return s
	}
	// Strimzi names the plain listener's bootstrap Service <cluster>-kafka-bootstrap.
	return fmt.Sprintf("%s-kafka-bootstrap:9092", sp.KafkaName())
}

// Engine is the database engine with the default applied.
func Engine(sp *scalestackv1alpha1.SocialPlatform) scalestackv1alpha1.DatabaseEngine {
	return cmp.Or(sp.Spec.Database.Engine, scalestackv1alpha1.DefaultEngine)
}

// AppServiceAccount is the identity of one app service's pods. The apps never call the
// Kubernetes API, so no token is mounted.
func AppServiceAccount(sp *scalestackv1alpha1.SocialPlatform, c scalestackv1alpha1.Component) *corev1ac.ServiceAccountApplyConfiguration {
	return corev1ac.ServiceAccount(sp.ComponentName(c), sp.Namespace).
		WithLabels(sp.Labels(string(c))).
		WithOwnerReferences(OwnerReference(sp)).
		WithAutomountServiceAccountToken(false)
}

// AppService exposes one app service inside the cluster on port 80.
func AppService(sp *scalestackv1alpha1.SocialPlatform, c scalestackv1alpha1.Component) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(sp.ComponentName(c), sp.Namespace).
		WithLabels(sp.Labels(string(c))).
		WithOwnerReferences(OwnerReference(sp)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(sp.SelectorLabels(string(c))).
			WithPorts(corev1ac.ServicePort().
				WithName("http").
				WithProtocol(corev1.ProtocolTCP).
				WithPort(ServicePort).
				WithTargetPort(intstr.FromString("http"))))
}

// AppPodDisruptionBudget keeps all but one pod of a service up through voluntary disruptions
// (node drains), and lets unhealthy pods be evicted so a drain never blocks on a broken pod.
func AppPodDisruptionBudget(sp *scalestackv1alpha1.SocialPlatform, c scalestackv1alpha1.Component) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	return policyv1ac.PodDisruptionBudget(sp.ComponentName(c), sp.Namespace).
		WithLabels(sp.Labels(string(c))).
		WithOwnerReferences(OwnerReference(sp)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithMaxUnavailable(intstr.FromInt32(1)).
			WithUnhealthyPodEvictionPolicy(policyv1.AlwaysAllow).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(sp.SelectorLabels(string(c)))))
}

// AppInputs are the facts AppDeployment needs besides the platform.
type AppInputs struct {
	// DefaultImage is the operator's apps image, used when spec.apps.image is empty.
	DefaultImage string
	// ConfigHash is the hash of the apps ConfigMap: a new hash rolls the pods.
	ConfigHash string
}

// AppDeployment runs one app service. When autoscaling is on, replicas are left out so that the
// autoscaler owns them.
func AppDeployment(sp *scalestackv1alpha1.SocialPlatform, c scalestackv1alpha1.Component, in AppInputs) *appsv1ac.DeploymentApplyConfiguration {
	spec := sp.Spec.Apps.Service(c)
	selector := sp.SelectorLabels(string(c))
	pullPolicy := cmp.Or(sp.Spec.Apps.ImagePullPolicy, scalestackv1alpha1.DefaultImagePullPolicy)

	container := corev1ac.Container().
		WithName(string(c)).
		WithImage(cmp.Or(sp.Spec.Apps.Image, in.DefaultImage)).
		WithImagePullPolicy(pullPolicy).
		WithCommand(platform.Binary(string(c))).
		WithPorts(corev1ac.ContainerPort().WithName("http").WithContainerPort(HTTPPort).WithProtocol(corev1.ProtocolTCP)).
		WithEnvFrom(corev1ac.EnvFromSource().WithConfigMapRef(corev1ac.ConfigMapEnvSource().WithName(sp.AppsConfigName()))).
		WithEnv(
			corev1ac.EnvVar().WithName("POD_NAME").WithValueFrom(corev1ac.EnvVarSource().WithFieldRef(corev1ac.ObjectFieldSelector().WithAPIVersion("v1").WithFieldPath("metadata.name"))),
			corev1ac.EnvVar().WithName("POD_NAMESPACE").WithValueFrom(corev1ac.EnvVarSource().WithFieldRef(corev1ac.ObjectFieldSelector().WithAPIVersion("v1").WithFieldPath("metadata.namespace"))),
			corev1ac.EnvVar().WithName(platform.EnvDBPassword).WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
				corev1ac.SecretKeySelector().WithName(sp.DatabaseSecretName()).WithKey(SecretKeyApp))),
			corev1ac.EnvVar().WithName(platform.EnvTokenKey).WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
				corev1ac.SecretKeySelector().WithName(sp.DatabaseSecretName()).WithKey(SecretKeyToken))),
			corev1ac.EnvVar().WithName(platform.EnvRedisPassword).WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
				corev1ac.SecretKeySelector().WithName(sp.DatabaseSecretName()).WithKey(SecretKeyCache))),
			// The Go runtime collects harder as it nears the container's memory limit instead of
			// being OOM-killed.
			corev1ac.EnvVar().WithName("GOMEMLIMIT").WithValueFrom(corev1ac.EnvVarSource().WithResourceFieldRef(
				corev1ac.ResourceFieldSelector().WithResource("limits.memory").WithDivisor(resourceOne))),
		).
		WithResources(resources(AppResources(spec))).
		WithStartupProbe(httpProbe("/healthz", 2, 30)).
		WithLivenessProbe(httpProbe("/healthz", 10, 3)).
		WithReadinessProbe(httpProbe("/readyz", 5, 2)).
		WithVolumeMounts(
			corev1ac.VolumeMount().WithName("shard-map").WithMountPath(ShardMapMountPath).WithReadOnly(true),
			corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"),
		).
		WithSecurityContext(restrictedContainerSecurityContext())

	pod := corev1ac.PodSpec().
		WithServiceAccountName(sp.ComponentName(c)).
		WithAutomountServiceAccountToken(false).
		WithEnableServiceLinks(false).
		WithTerminationGracePeriodSeconds(30).
		WithSecurityContext(restrictedPodSecurityContext()).
		WithContainers(container).
		WithVolumes(
			// The shard map is optional for the pod to start: the apps wait for it in /readyz.
			corev1ac.Volume().WithName("shard-map").WithConfigMap(corev1ac.ConfigMapVolumeSource().
				WithName(sp.ShardMapName()).WithOptional(true)),
			corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(resourceTmp)),
		).
		WithTopologySpreadConstraints(
			spread("topology.kubernetes.io/zone", selector),
			spread("kubernetes.io/hostname", selector),
		)

	d := appsv1ac.Deployment(sp.ComponentName(c), sp.Namespace).
		WithLabels(sp.Labels(string(c))).
		WithOwnerReferences(OwnerReference(sp)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selector)).
			WithRevisionHistoryLimit(5).
			WithStrategy(appsv1ac.DeploymentStrategy().
				WithType(appsv1.RollingUpdateDeploymentStrategyType).
				// Surge instead of taking pods down: capacity never dips during a rollout.
				WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
					WithMaxSurge(intstr.FromString("25%")).
					WithMaxUnavailable(intstr.FromInt32(0)))).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(sp.Labels(string(c))).
				WithAnnotations(map[string]string{scalestackv1alpha1.AnnotationConfigHash: in.ConfigHash}).
				WithSpec(pod)))
	if !AutoscalingEnabled(sp) {
		d.Spec.WithReplicas(Replicas(spec))
	}
	return d
}

func httpProbe(path string, period, failures int32) *corev1ac.ProbeApplyConfiguration {
	return corev1ac.Probe().
		WithHTTPGet(corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromString("http"))).
		WithPeriodSeconds(period).
		WithTimeoutSeconds(2).
		WithFailureThreshold(failures)
}

func spread(key string, selector map[string]string) *corev1ac.TopologySpreadConstraintApplyConfiguration {
	return corev1ac.TopologySpreadConstraint().
		WithMaxSkew(1).
		WithTopologyKey(key).
		// ScheduleAnyway: spreading is a preference; a single-zone cluster must still run the pods.
		WithWhenUnsatisfiable(corev1.ScheduleAnyway).
		WithLabelSelector(metav1ac.LabelSelector().WithMatchLabels(selector)).
		WithMatchLabelKeys(appsv1.DefaultDeploymentUniqueLabelKey)
}
