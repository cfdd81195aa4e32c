package v1alpha1

import "fmt"

// Component is one of the app services the platform runs.
type Component string

// The app services, in the order they are reconciled and reported.
const (
	ComponentGateway Component = "gateway"
	ComponentUser    Component = "user"
	ComponentPost    Component = "post"
	ComponentFeed    Component = "feed"
	ComponentWorker  Component = "worker"
)

// AppComponents lists the app services in a stable order.
var AppComponents = []Component{ComponentGateway, ComponentUser, ComponentPost, ComponentFeed, ComponentWorker}

// Label keys and values on every child. Never Argo CD's tracking labels: Argo CD owns those.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelManagedBy = "app.kubernetes.io/managed-by"

	// ManagedByValue marks objects this operator owns; the manager's cache selects on it.
	ManagedByValue = "scalestack-operator"
	// PartOfValue is the app.kubernetes.io/part-of value of every child.
	PartOfValue = "scalestack"

	// AnnotationConfigHash on a pod template is the hash of the configuration it runs with;
	// a configuration change rolls the pods through it.
	AnnotationConfigHash = "scalestack.dev/config-hash"

	// AnnotationSwitchover on a shard's primary pod asks for a planned switchover: the value is
	// the pod to promote, or "any" for the most advanced ready replica. The operator removes it
	// when the switchover is done or refused (an Event says which).
	AnnotationSwitchover = "scalestack.dev/switchover"
	// AnnotationBackupRequested on a platform asks for a full backup of every shard: the value is
	// an RFC 3339 time, and every shard whose newest full backup started before it takes one. The
	// annotation stays; a later time asks again.
	AnnotationBackupRequested = "scalestack.dev/backup-requested"
	// AnnotationPrimaryEpoch on a shard pod's data claim is the epoch at which that pod became the
	// shard's primary of record. Claims outlive a platform deleted with deletionPolicy Retain, so a
	// platform created again over them resumes with that primary.
	AnnotationPrimaryEpoch = "scalestack.dev/primary-epoch"

	// LabelShard on a database pod is its physical shard index.
	LabelShard = "scalestack.dev/shard"
	// LabelRole on a database pod is primary or replica.
	LabelRole = "scalestack.dev/role"

	// Finalizer orders the teardown of a platform's children.
	Finalizer = "scalestack.dev/teardown"
)

// Service returns the spec of one app service.
func (a *AppsSpec) Service(c Component) ServiceSpec {
	switch c {
	case ComponentGateway:
		return a.Gateway
	case ComponentUser:
		return a.User
	case ComponentPost:
		return a.Post
	case ComponentFeed:
		return a.Feed
	case ComponentWorker:
		return a.Worker
	}
	return ServiceSpec{}
}

// ComponentName is the name of an app service's Deployment, Service, ServiceAccount and
// PodDisruptionBudget, e.g. "demo-gateway".
func (sp *SocialPlatform) ComponentName(c Component) string {
	return fmt.Sprintf("%s-%s", sp.Name, c)
}

// AppsConfigName is the ConfigMap holding the apps' shared configuration.
func (sp *SocialPlatform) AppsConfigName() string { return sp.Name + "-apps-config" }

// AcceptedSpecName is the ConfigMap holding the last spec whose children the API server accepted
// (the preflight's dry-run): what the operator keeps converging while a newer spec is refused.
func (sp *SocialPlatform) AcceptedSpecName() string { return sp.Name + "-accepted-spec" }

// ShardMapName is the ConfigMap holding the shard map.
func (sp *SocialPlatform) ShardMapName() string { return sp.Name + "-shard-map" }

// DatabaseSecretName is the Secret holding the database passwords.
func (sp *SocialPlatform) DatabaseSecretName() string { return sp.Name + "-db-credentials" }

// ShardPrimaryName is the primary StatefulSet and Service of physical shard i.
func (sp *SocialPlatform) ShardPrimaryName(i int32) string {
	return fmt.Sprintf("%s-shard-%d-primary", sp.Name, i)
}

// ShardReplicasName is the replica StatefulSet and Service of physical shard i.
func (sp *SocialPlatform) ShardReplicasName(i int32) string {
	return fmt.Sprintf("%s-shard-%d-replicas", sp.Name, i)
}

// ShardDefaultPrimaryPod is the pod that is a shard's primary until a failover or switchover
// moves it: the primary StatefulSet's only pod.
func (sp *SocialPlatform) ShardDefaultPrimaryPod(i int32) string {
	return sp.ShardPrimaryName(i) + "-0"
}

// ShardName is the headless Service that governs physical shard i's StatefulSets (pod DNS).
func (sp *SocialPlatform) ShardName(i int32) string { return fmt.Sprintf("%s-shard-%d", sp.Name, i) }

// DatabaseConfigName is the ConfigMap holding the shards' server configuration.
func (sp *SocialPlatform) DatabaseConfigName() string { return sp.Name + "-db-config" }

// CacheConfigName is the ConfigMap holding redis.conf.
func (sp *SocialPlatform) CacheConfigName() string { return sp.Name + "-cache-config" }

// CDNOriginName is the Ingress that serves the gateway's static assets to the CDN.
func (sp *SocialPlatform) CDNOriginName() string { return sp.Name + "-cdn-origin" }

// SiteIngressName is the Ingress that publishes the gateway on spec.ingress.host.
func (sp *SocialPlatform) SiteIngressName() string { return sp.Name + "-site" }

// ArchiverName is the archiver CronJob.
func (sp *SocialPlatform) ArchiverName() string { return sp.Name + "-archiver" }

// CacheName is the Redis StatefulSet and Service.
func (sp *SocialPlatform) CacheName() string { return sp.Name + "-cache" }

// KafkaName is the Strimzi Kafka cluster.
func (sp *SocialPlatform) KafkaName() string { return sp.Name + "-kafka" }

// GatewayURL is the in-cluster URL of the gateway.
func (sp *SocialPlatform) GatewayURL() string {
	return fmt.Sprintf("http://%s.%s.svc:%d", sp.ComponentName(ComponentGateway), sp.Namespace, 80)
}

// SelectorLabels are the labels that select one component's pods. They never change after
// creation (Deployment selectors are immutable).
func (sp *SocialPlatform) SelectorLabels(component string) map[string]string {
	return map[string]string{
		LabelName:      "scalestack",
		LabelInstance:  sp.Name,
		LabelComponent: component,
	}
}

// Labels are the labels of every child of one component.
func (sp *SocialPlatform) Labels(component string) map[string]string {
	l := sp.SelectorLabels(component)
	l[LabelPartOf] = PartOfValue
	l[LabelManagedBy] = ManagedByValue
	return l
}
