package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/pkg/agentapi"
)

// The database rollout. A shard's StatefulSets update their pods OnDelete: a new pod template
// (another image, a configuration change) is rolled out by the operator, one pod of a shard at a
// time and only while every other pod of the shard is ready, replicas first; the primary last,
// after a switchover hands its writes to an updated replica, so the shard's writes pause for the
// switchover (a fence and a catch-up) instead of the primary's whole restart. A shard without
// replicas, or whose agents do not run, restarts its primary in place: nothing can take over.

// databasePodUpdates counts database pods the operator deleted to run a newer template.
var databasePodUpdates = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "scalestack_database_pod_updates_total",
	Help: "Database pods the operator restarted to run their StatefulSet's newer pod template, by platform, shard and role (replica, or primary when it restarted in place).",
}, []string{"namespace", "platform", "shard", "role"})

func init() { metrics.Registry.MustRegister(databasePodUpdates) }

// rollPod is one pod of a shard as the rollout judges it.
type rollPod struct {
	name     string
	ready    bool // Ready and not terminating
	outdated bool // runs an older revision than its StatefulSet's update revision
	agent    bool // its agent container runs (it can take part in a switchover)
}

// rollStep is the next step of a shard's rollout.
type rollStep struct {
	// restart names the pod to delete: its StatefulSet recreates it from the new template.
	restart string
	// inPlace: the restart is of the primary, with no replica to hand it to.
	inPlace bool
	// switchover: hand the primary to an updated, ready replica first (to "any").
	switchover bool
	// wait says why nothing happens now, when something is left to roll.
	wait string
}

// planRoll decides the next step of a shard's rollout from its pods and its primary of record.
// Nothing moves while any pod of the shard is not ready or missing (want is how many it has): one
// restart at a time, and never while the shard is already short of a server. Replicas go first, in reverse name order (the
// StatefulSet's own order); the primary goes once every replica runs the new template, after a
// switchover when a ready replica with a running agent can take it, else in place.
func planRoll(pods []rollPod, primary string, want int) rollStep {
	pods = slices.Clone(pods)
	slices.SortFunc(pods, func(a, b rollPod) int { return strings.Compare(b.name, a.name) })
	var outdated []rollPod
	for _, p := range pods {
		if p.outdated {
			outdated = append(outdated, p)
		}
	}
	if len(outdated) == 0 {
		return rollStep{}
	}
	for _, p := range pods {
		if !p.ready {
			return rollStep{wait: p.name + " is not ready"}
		}
	}
	if len(pods) < want {
		// A pod just restarted is gone and its successor not created yet: the shard is short of
		// a server even though every pod that exists is ready.
		return rollStep{wait: fmt.Sprintf("%d of the shard's %d pods exist", len(pods), want)}
	}
	for _, p := range outdated {
		if p.name != primary {
			return rollStep{restart: p.name}
		}
	}
	for _, p := range pods {
		if p.name != primary && p.agent {
			return rollStep{switchover: true}
		}
	}
	return rollStep{restart: primary, inPlace: true}
}

// podOutdated reports whether a pod runs an older template than the StatefulSet that owns it
// asks for. A StatefulSet whose status does not yet describe its current spec (or that has no
// update revision, as without a StatefulSet controller) outdates nothing.
func podOutdated(p *corev1.Pod, sets map[string]*appsv1.StatefulSet) bool {
	ref := metav1.GetControllerOf(p)
	if ref == nil || ref.Kind != "StatefulSet" {
		return false
	}
	sts := sets[ref.Name]
	if sts == nil || sts.Status.UpdateRevision == "" || sts.Status.ObservedGeneration < sts.Generation {
		return false
	}
	rev, ok := p.Labels[appsv1.ControllerRevisionHashLabelKey]
	return ok && rev != sts.Status.UpdateRevision
}

// rollShard takes the next step of shard i's rollout. It returns a switchover move when the
// primary is handed over, to be recorded and announced like any other.
func (r *SocialPlatformReconciler) rollShard(ctx context.Context, s *scope, agents func() (agentapi.Client, error), i int32, rec render.Primary, pods map[string]*corev1.Pod) (*primaryMove, error) {
	sp := s.sp
	sets := map[string]*appsv1.StatefulSet{}
	for _, name := range []string{sp.ShardPrimaryName(i), sp.ShardReplicasName(i)} {
		sts := &appsv1.StatefulSet{}
		found, err := r.getOptional(ctx, sp.Namespace, name, sts)
		if err != nil {
			return nil, err
		}
		if !found {
			continue
		}
		if sts.Status.ObservedGeneration < sts.Generation {
			// Its controller has not seen its newest template yet: which pods are outdated is not
			// known, and judging the shard's other StatefulSet alone could switch the primary over
			// to a replica about to be restarted. Its status update wakes the platform again.
			log.FromContext(ctx).V(1).Info("The database rollout waits for a StatefulSet's status", "statefulSet", name)
			return nil, nil
		}
		sets[name] = sts
	}
	var in []rollPod
	for _, name := range slices.Sorted(maps.Keys(pods)) {
		p := pods[name]
		ready, _ := podReady(p)
		in = append(in, rollPod{name: name, ready: ready, outdated: podOutdated(p, sets), agent: agentRunning(p) && r.agentURL(p) != ""})
	}
	step := planRoll(in, rec.Pod, 1+int(render.ReplicasPerShard(sp)))
	switch {
	case step.wait != "":
		log.FromContext(ctx).V(1).Info("The database rollout waits", "shard", i, "reason", step.wait)
		return nil, nil
	case step.switchover:
		c, err := agents()
		if err != nil {
			return nil, err
		}
		m, err := r.switchover(ctx, c, i, rec, pods, "any")
		switch {
		case errors.Is(err, errNotYet):
			log.FromContext(ctx).Info("The database rollout waits for a switchover", "shard", i, "reason", err.Error())
			s.requeueAfter(5 * time.Second)
			return nil, nil
		case err != nil:
			r.Recorder.Eventf(sp, pods[rec.Pod], corev1.EventTypeWarning, scalestackv1alpha1.EventSwitchoverFailed, "Switchover", "shard %d: %s", i, truncate(err.Error(), 900))
			s.requeueAfter(30 * time.Second)
			return nil, nil
		}
		m.reason = fmt.Sprintf("%s runs an older pod template: its replicas were updated, it is restarted once it serves as a replica", rec.Pod)
		return &m, nil
	case step.restart != "":
		p := pods[step.restart]
		err := r.Client.Delete(ctx, p, client.Preconditions{UID: &p.UID})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("restarting %s to run its new pod template: %w", p.Name, err)
		}
		role, how := "replica", "a replica"
		if step.inPlace {
			role, how = "primary", "the primary, in place (no replica with a running agent can take it over): the shard's writes pause until it is ready"
		}
		databasePodUpdates.WithLabelValues(sp.Namespace, sp.Name, strconv.Itoa(int(i)), role).Inc()
		r.Recorder.Eventf(sp, p, corev1.EventTypeNormal, scalestackv1alpha1.EventDatabasePodUpdated, "Update",
			"shard %d: restarted %s, %s, to run its StatefulSet's new pod template", i, p.Name, how)
		s.note("Pod/" + p.Name + " (update)")
		s.requeueAfter(10 * time.Second)
	}
	return nil, nil
}
