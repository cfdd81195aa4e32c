package render

import (
	"cmp"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/pkg/platform"
)

// StaticPath is where the gateway serves its content-hashed assets.
const StaticPath = "/static/"

// CDNOriginIngress routes the CDN's origin host to the gateway's static assets only: the origin
// serves nothing but immutable files. nil when spec.cdn.originHost is empty.
func CDNOriginIngress(sp *scalestackv1alpha1.SocialPlatform) *networkingv1ac.IngressApplyConfiguration {
	cdn := sp.Spec.CDN
	if cdn.OriginHost == "" {
		return nil
	}
	pathType := networkingv1.PathTypePrefix
	spec := networkingv1ac.IngressSpec().
		WithRules(networkingv1ac.IngressRule().
			WithHost(cdn.OriginHost).
			WithHTTP(networkingv1ac.HTTPIngressRuleValue().WithPaths(
				networkingv1ac.HTTPIngressPath().
					WithPath(StaticPath).
					WithPathType(pathType).
					WithBackend(networkingv1ac.IngressBackend().WithService(
						networkingv1ac.IngressServiceBackend().
							WithName(sp.ComponentName(scalestackv1alpha1.ComponentGateway)).
							WithPort(networkingv1ac.ServiceBackendPort().WithName("http")))))))
	if cdn.IngressClassName != nil {
		spec.WithIngressClassName(*cdn.IngressClassName)
	}
	if cdn.TLSSecretName != "" {
		spec.WithTLS(networkingv1ac.IngressTLS().WithHosts(cdn.OriginHost).WithSecretName(cdn.TLSSecretName))
	}
	return networkingv1ac.Ingress(sp.CDNOriginName(), sp.Namespace).
		WithLabels(sp.Labels("cdn")).
		WithOwnerReferences(OwnerReference(sp)).
		WithSpec(spec)
}

// SiteIngress publishes the gateway (pages and API, every path) on spec.ingress.host. nil when no
// host is declared.
func SiteIngress(sp *scalestackv1alpha1.SocialPlatform) *networkingv1ac.IngressApplyConfiguration {
	in := sp.Spec.Ingress
	if in.Host == "" {
		return nil
	}
	spec := networkingv1ac.IngressSpec().
		WithRules(networkingv1ac.IngressRule().
			WithHost(in.Host).
			WithHTTP(networkingv1ac.HTTPIngressRuleValue().WithPaths(
				networkingv1ac.HTTPIngressPath().
					WithPath("/").
					WithPathType(networkingv1.PathTypePrefix).
					WithBackend(networkingv1ac.IngressBackend().WithService(
						networkingv1ac.IngressServiceBackend().
							WithName(sp.ComponentName(scalestackv1alpha1.ComponentGateway)).
							WithPort(networkingv1ac.ServiceBackendPort().WithName("http")))))))
	if in.IngressClassName != nil {
		spec.WithIngressClassName(*in.IngressClassName)
	}
	if in.TLSSecretName != "" {
		spec.WithTLS(networkingv1ac.IngressTLS().WithHosts(in.Host).WithSecretName(in.TLSSecretName))
	}
	return networkingv1ac.Ingress(sp.SiteIngressName(), sp.Namespace).
		WithLabels(sp.Labels("gateway")).
		WithOwnerReferences(OwnerReference(sp)).
		WithSpec(spec)
}

// SiteURL is the site's public URL, for status; "" without spec.ingress.host.
func SiteURL(sp *scalestackv1alpha1.SocialPlatform) string {
	in := sp.Spec.Ingress
	if in.Host == "" {
		return ""
	}
	if in.TLSSecretName != "" {
		return "https://" + in.Host + "/"
	}
	return "http://" + in.Host + "/"
}

// TrustForwarded says whether the gateway keys rate limits on X-Forwarded-For: the manifest's
// choice, else true when the site is published through an Ingress.
func TrustForwarded(sp *scalestackv1alpha1.SocialPlatform) bool {
	if t := sp.Spec.Ingress.TrustForwarded; t != nil {
		return *t
	}
	return sp.Spec.Ingress.Host != ""
}

// CDNOriginURL is the URL the CDN pulls from, for status.
func CDNOriginURL(sp *scalestackv1alpha1.SocialPlatform) string {
	if sp.Spec.CDN.OriginHost == "" {
		return ""
	}
	scheme := "http"
	if sp.Spec.CDN.TLSSecretName != "" {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s%s", scheme, sp.Spec.CDN.OriginHost, StaticPath)
}

// AssetMaxAge is the Cache-Control max-age of content-hashed assets.
func AssetMaxAge(sp *scalestackv1alpha1.SocialPlatform) time.Duration {
	if a := sp.Spec.CDN.AssetMaxAge; a != nil && a.Duration > 0 {
		return a.Duration
	}
	return 365 * 24 * time.Hour
}

// ArchiverCronJob runs the archiver on spec.database.archive.schedule. nil when no archive is
// declared. One run at a time: the archiver is resumable, so a run that overlaps the next slot
// just lets it be skipped.
func ArchiverCronJob(sp *scalestackv1alpha1.SocialPlatform, in AppInputs) *batchv1ac.CronJobApplyConfiguration {
	a := sp.Spec.Database.Archive
	if a == nil {
		return nil
	}
	schedule := cmp.Or(a.Schedule, scalestackv1alpha1.DefaultArchiveSchedule)
	image := sp.Spec.Apps.Image
	if image == "" {
		image = in.DefaultImage
	}
	container := corev1ac.Container().
		WithName("archiver").
		WithImage(image).
		WithCommand(platform.Binary("archiver")).
		WithArgs("--older-than=" + a.OlderThan.Duration.String()).
		WithEnvFrom(corev1ac.EnvFromSource().WithConfigMapRef(corev1ac.ConfigMapEnvSource().WithName(sp.AppsConfigName()))).
		WithEnv(corev1ac.EnvVar().WithName(platform.EnvDBPassword).WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
			corev1ac.SecretKeySelector().WithName(sp.DatabaseSecretName()).WithKey(SecretKeyApp)))).
		WithVolumeMounts(corev1ac.VolumeMount().WithName("shard-map").WithMountPath(ShardMapMountPath).WithReadOnly(true)).
		WithResources(resources(AppResources(scalestackv1alpha1.ServiceSpec{}))).
		WithSecurityContext(restrictedContainerSecurityContext())
	return batchv1ac.CronJob(sp.ArchiverName(), sp.Namespace).
		WithLabels(sp.Labels("archiver")).
		WithOwnerReferences(OwnerReference(sp)).
		WithSpec(batchv1ac.CronJobSpec().
			WithSchedule(schedule).
			WithTimeZone("Etc/UTC").
			WithConcurrencyPolicy(batchv1.ForbidConcurrent).
			WithStartingDeadlineSeconds(3600).
			WithSuccessfulJobsHistoryLimit(3).
			WithFailedJobsHistoryLimit(3).
			WithJobTemplate(batchv1ac.JobTemplateSpec().
				WithLabels(sp.Labels("archiver")).
				WithSpec(batchv1ac.JobSpec().
					WithBackoffLimit(3).
					WithActiveDeadlineSeconds(6 * 3600).
					WithTemplate(corev1ac.PodTemplateSpec().
						WithLabels(sp.Labels("archiver")).
						WithSpec(corev1ac.PodSpec().
							WithRestartPolicy(corev1.RestartPolicyOnFailure).
							WithAutomountServiceAccountToken(false).
							WithEnableServiceLinks(false).
							WithSecurityContext(restrictedPodSecurityContext()).
							WithContainers(container).
							WithVolumes(corev1ac.Volume().WithName("shard-map").WithConfigMap(
								corev1ac.ConfigMapVolumeSource().WithName(sp.ShardMapName()))))))))
}
