package controllers

import (
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/pkg/shard"
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

	// kafka is the event log as observed by the kafka phase.
	kafka kafkaObservation
	// monitoring is what the monitoring phase applied.
	monitoring monitoringObservation
	// slo is what the autoscaling phase observed.
	slo sloObservation
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
	}
}

// requeueAfter asks for another pass after d, unless a sooner one is already asked for.
func (s *scope) requeueAfter(d time.Duration) {
	if s.result.RequeueAfter == 0 || d < s.result.RequeueAfter {
		s.result.RequeueAfter = d
	}
}

// kafkaStatus fills the Kafka status and returns the KafkaReady condition.
func (s *scope) kafkaStatus() metav1.Condition {
	s.sp.Status.Kafka = scalestackv1alpha1.KafkaStatus{BootstrapServers: s.kafka.bootstrap, Topics: s.kafka.topics}
	ready := 0
	for _, t := range s.kafka.topics {
		if t.Ready {
			ready++
		}
	}
	s.sp.Status.Summary.Topics = fmt.Sprintf("%d/%d", ready, len(s.kafka.topics))
	return kafkaCondition(s.kafka)
}

// record notes what an apply did to a child.
func (s *scope) record(kind, name string, r applyResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r != resultUnchanged {
		s.changed = append(s.changed, fmt.Sprintf("%s/%s", kind, name))
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

// appsStatus fills the per-service status and returns the AppsReady condition.
func (s *scope) appsStatus() metav1.Condition {
	var ws []workloadObservation
	s.sp.Status.Services = s.sp.Status.Services[:0]
	ready := 0
	for _, c := range scalestackv1alpha1.AppComponents {
		d := s.deployments[c]
		w := observeDeployment(s.sp.ComponentName(c), d)
		ws = append(ws, w)
		if w.rolledOut() {
			ready++
		}
		st := scalestackv1alpha1.ServiceStatus{Name: string(c)}
		if d != nil {
			st.Replicas = w.Desired
			st.ReadyReplicas = d.Status.ReadyReplicas
			st.UpdatedReplicas = d.Status.UpdatedReplicas
		}
		s.sp.Status.Services = append(s.sp.Status.Services, st)
	}
	s.sp.Status.Summary.Apps = fmt.Sprintf("%d/%d", ready, len(scalestackv1alpha1.AppComponents))
	return workloadsCondition(scalestackv1alpha1.ConditionAppsReady, ws)
}

// databaseStatus fills the per-shard status and returns the DatabaseReady condition.
func (s *scope) databaseStatus() metav1.Condition {
	sp := s.sp
	var ws []workloadObservation
	sp.Status.Shards = sp.Status.Shards[:0]
	for i := range render.Shards(sp) {
		p := observeStatefulSet(sp.ShardPrimaryName(i), s.statefulSets[sp.ShardPrimaryName(i)])
		r := observeStatefulSet(sp.ShardReplicasName(i), s.statefulSets[sp.ShardReplicasName(i)])
		ws = append(ws, p, r)
		block := shard.Block(int(i))
		sp.Status.Shards = append(sp.Status.Shards, scalestackv1alpha1.ShardStatus{
			Index:         i,
			LogicalShards: fmt.Sprintf("%d-%d", block.Start, block.End-1),
			PrimaryReady:  p.Exists && p.Ready >= 1,
			Replicas:      render.ReplicasPerShard(sp),
			ReadyReplicas: r.Ready,
		})
	}
	readyPrimaries, readyReplicas := 0, int32(0)
	for _, sh := range sp.Status.Shards {
		if sh.PrimaryReady {
			readyPrimaries++
		}
		readyReplicas += sh.ReadyReplicas
	}
	sp.Status.Summary.Shards = fmt.Sprintf("%d/%d", readyPrimaries, len(sp.Status.Shards))
	c := workloadsCondition(scalestackv1alpha1.ConditionDatabaseReady, ws)
	if c.Status == metav1.ConditionTrue {
		c.Message = databaseReadyMessage(len(sp.Status.Shards), engineName(sp), readyReplicas,
			render.ReplicasPerShard(sp)*render.Shards(sp), unexecuted(primaryPodNames(sp), s.primaryPods, "agent"))
	}
	return c
}

// databaseReadyMessage says what a Ready database tier was checked for. A primary pod is Ready
// when its agent answers that the server accepts writes, but only if a container runtime really
// ran the agent: a simulated node (kwok) marks pods Ready with nothing running, and then the
// message says so instead of claiming writes.
func databaseReadyMessage(shards int, engine string, readyReplicas, replicas int32, unexecuted []string) string {
	if len(unexecuted) > 0 {
		return fmt.Sprintf("%d shards (%s): every primary pod reports Ready, but no container ran in %s (a simulated node): "+
			"nothing checked that the primaries accept writes", shards, engine, strings.Join(unexecuted, ", "))
	}
	return fmt.Sprintf("%d shards (%s): every primary accepts writes (its agent's check); %d/%d read replicas replicate within the lag bound",
		shards, engine, readyReplicas, replicas)
}

// unexecuted lists the pods among names whose container named container has no container ID (no
// runtime started it, whatever the pod's status says), or that were not observed at all.
func unexecuted(names []string, pods map[string]*corev1.Pod, container string) []string {
	var out []string
	for _, n := range names {
		ran := false
		if p := pods[n]; p != nil {
			for _, cs := range p.Status.ContainerStatuses {
				if cs.Name == container && cs.ContainerID != "" {
					ran = true
				}
			}
		}
		if !ran {
			out = append(out, n)
		}
	}
	return out
}

// primaryPodNames are the names of the shards' primary pods (ordinal 0 of each primary StatefulSet).
func primaryPodNames(sp *scalestackv1alpha1.SocialPlatform) []string {
	names := make([]string, 0, render.Shards(sp))
	for i := range render.Shards(sp) {
		names = append(names, sp.ShardPrimaryName(i)+"-0")
	}
	return names
}

func engineName(sp *scalestackv1alpha1.SocialPlatform) string {
	if sp.Spec.Database.Engine == "" {
		return string(scalestackv1alpha1.EngineMariaDB)
	}
	return string(sp.Spec.Database.Engine)
}

// cacheStatus returns the CacheReady condition.
func (s *scope) cacheStatus() metav1.Condition {
	name := s.sp.CacheName()
	c := workloadsCondition(scalestackv1alpha1.ConditionCacheReady, []workloadObservation{observeStatefulSet(name, s.statefulSets[name])})
	if c.Status == metav1.ConditionTrue {
		policy := s.sp.Spec.Cache.EvictionPolicy
		if policy == "" {
			policy = "allkeys-lru"
		}
		c.Message = fmt.Sprintf("Redis is up holding %s (evicts %s, no persistence)", s.sp.Spec.Cache.Size.String(), policy)
	}
	return c
}
