package controllers

import (
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
)

// scope carries one reconcile pass: the platform, what the pass changed, and what it observed.
// Nothing in it survives the pass: status is recomputed from the world every time.
type scope struct {
	// mu guards changed and created: a phase may apply independent children concurrently.
	mu sync.Mutex

	sp       *scalestackv1alpha1.SocialPlatform
	original *scalestackv1alpha1.SocialPlatform

	// changed names the children created or updated in this pass, as "Kind/name"; created
	// counts the ones that did not exist.
	changed []string
	created int
	// deployments holds the app Deployments as observed (nil when missing).
	deployments map[scalestackv1alpha1.Component]*appsv1.Deployment
	// statefulSets holds the shard and cache StatefulSets as observed, by name.
	statefulSets map[string]*appsv1.StatefulSet
	// primaryPods holds each shard's primary pod as observed, by name.
	primaryPods map[string]*corev1.Pod
	// restorePods holds each shard's first primary pod, by name, when the platform is restored
	// (restore.go).
	restorePods map[string]*corev1.Pod
	// primaries are the shards' primaries of record, as the database phase found or moved them.
	primaries map[int32]render.Primary
	// serving holds the shards whose primary of record is ready.
	serving map[int32]bool
	// failoverRefused says, per shard, why a gone primary was not replaced.
	failoverRefused []string
	// keepReplicas holds, by replicas StatefulSet, the replicas kept above replicasPerShard
	// until the primary of record, one of its pods, is handed back (failover.go).
	keepReplicas map[string]int32
	// storage is what the database phase's storage step found (storage.go).
	storage storageObservation

	// kafka is the event log as observed by the kafka phase.
	kafka kafkaObservation
	// monitoring is what the monitoring phase applied.
	monitoring monitoringObservation
	// backup is what the backup phase heard from the shards' primaries.
	backup backupObservation
	// slo is what the autoscaling phase observed.
	slo sloObservation
	// ran names the phases that ran on this pass; failures holds their errors by the condition
	// they are reported on.
	ran      map[string]bool
	failures map[string]error
	// result is the pass's requeue, the soonest any phase asked for.
	result ctrl.Result

	paused     bool
	reconciled bool
	// gone is set when the teardown removed the finalizer: the object may no longer exist.
	gone bool
	// stale is set when the object changed under this pass (a conflict): the retry writes status.
	stale bool
}

func newScope(sp *scalestackv1alpha1.SocialPlatform) *scope {
	return &scope{
		sp:           sp,
		original:     sp.DeepCopy(),
		deployments:  map[scalestackv1alpha1.Component]*appsv1.Deployment{},
		statefulSets: map[string]*appsv1.StatefulSet{},
		primaryPods:  map[string]*corev1.Pod{},
		restorePods:  map[string]*corev1.Pod{},
		primaries:    map[int32]render.Primary{},
		serving:      map[int32]bool{},
		keepReplicas: map[string]int32{},
		ran:          map[string]bool{},
		failures:     map[string]error{},
	}
}

// fail records a phase's failure against the condition it is reported on.
func (s *scope) fail(condition string, err error) {
	if condition == "" {
		return
	}
	s.failures[condition] = errors.Join(s.failures[condition], err)
}

// requeueAfter asks for another pass after d, unless a sooner one is already asked for.
func (s *scope) requeueAfter(d time.Duration) {
	if s.result.RequeueAfter == 0 || d < s.result.RequeueAfter {
		s.result.RequeueAfter = d
	}
}

// record notes what an apply did to a child.
func (s *scope) record(kind, name string, r applyResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r != resultUnchanged {
		s.changed = append(s.changed, fmt.Sprintf("%s/%s", kind, name))
		childWrites.WithLabelValues(kind, string(r)).Inc()
	}
	if r == resultCreated {
		s.created++
	}
}

// note records a change that is not an apply (a deletion, a topic created through Kafka's API).
func (s *scope) note(change string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changed = append(s.changed, change)
}
