package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/pkg/agentapi"
	"github.com/scalestack/scalestack/pkg/replication"
	"github.com/scalestack/scalestack/pkg/shard"
)

// Failover and switchover. The operator decides who a shard's primary is; the shard's agents do
// the database work (promotion with the relay log applied, fencing, re-pointing, refusing a
// primary that lacks their transactions; apps/dbagent). A decision is recorded in the shard map
// (the primary of record and an epoch that only grows) and the -primary Service before any agent
// is told, so a pass that dies half-way leaves a decision the agents still find in their mounted
// map. The operator talks to the agents only to move a primary; detection reads pod readiness
// from the API.

// shardFailovers counts primaries moved, by kind (failover, switchover).
var shardFailovers = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "scalestack_shard_failovers_total",
	Help: "Shard primaries moved by the operator, by platform, shard and kind (failover: the primary was unavailable; switchover: asked for).",
}, []string{"namespace", "platform", "shard", "kind"})

func init() { metrics.Registry.MustRegister(shardFailovers) }

// AgentURLFunc returns the base URL of a database pod's agent API.
type AgentURLFunc func(pod *corev1.Pod) string

// PodIPAgentURL reaches an agent at its pod's IP, on the agent port.
func PodIPAgentURL(pod *corev1.Pod) string {
	if pod.Status.PodIP == "" {
		return ""
	}
	return "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(render.AgentPort)))
}

// candidate is one replica as its agent reported it.
type candidate struct {
	pod    string
	ready  bool // the pod's Ready condition
	status *agentapi.Status
	err    error // the agent did not answer
}

// failoverInput is what planFailover decides from.
type failoverInput struct {
	now time.Time
	// primaryGone is when the primary of record stopped being available (its pod not ready or
	// terminating); zero while it is available.
	primaryGone time.Time
	after       time.Duration
	enabled     bool
	maxLag      time.Duration
	allowLossy  bool
	epoch       int64
	candidates  []candidate
	// primaryReadySince is when the current incarnation of the primary's pod became ready
	// (writable), when the operator saw it; zero when unknown. A replica whose lag was last
	// measured before that never replicated from it: it lacks what it committed since.
	primaryReadySince time.Time
}

// failoverDecision is what to do with a shard.
type failoverDecision struct {
	// wait > 0: look again then (the primary is unavailable, not yet for long enough).
	wait time.Duration
	// promote names the replica to promote; refused says why none is.
	promote string
	refused string
}

// planFailover chooses, once the primary has been unavailable for `after`, the most advanced
// replica: among those whose agent answers, that follow the current epoch and have not diverged,
// the one whose received transactions include every other's. It refuses when none answers, when
// the most advanced lagged beyond maxLag when last known (unless lossy failover is allowed), and
// when no replica includes the others' transactions (promoting any would drop another's).
func planFailover(in failoverInput) failoverDecision {
	if in.primaryGone.IsZero() {
		return failoverDecision{}
	}
	if gone := in.now.Sub(in.primaryGone); gone < in.after {
		return failoverDecision{wait: in.after - gone}
	}
	if !in.enabled {
		return failoverDecision{refused: "automatic failover is off (spec.database.failover.enabled: false)"}
	}
	var ok []candidate
	var why []string
	for _, c := range in.candidates {
		switch {
		case c.err != nil:
			why = append(why, fmt.Sprintf("%s: agent did not answer (%v)", c.pod, c.err))
		case c.status.Diverged != "":
			why = append(why, fmt.Sprintf("%s: diverged (%s)", c.pod, c.status.Diverged))
		case c.status.Topology.Epoch != in.epoch:
			why = append(why, fmt.Sprintf("%s: follows epoch %d, not %d", c.pod, c.status.Topology.Epoch, in.epoch))
		case c.status.Role != agentapi.RoleReplica:
			why = append(why, fmt.Sprintf("%s: is not a replica (%s)", c.pod, c.status.Role))
		default:
			ok = append(ok, c)
		}
	}
	if len(ok) == 0 {
		if len(why) == 0 {
			why = append(why, "the shard has no replica")
		}
		return failoverDecision{refused: "no replica can be promoted: " + strings.Join(why, "; ")}
	}
	// The most advanced: received everything any other received. Ties go to a ready pod, then
	// to the lowest name, so the choice is stable.
	slices.SortFunc(ok, func(a, b candidate) int {
		if a.ready != b.ready {
			if a.ready {
				return -1
			}
			return 1
		}
		return strings.Compare(a.pod, b.pod)
	})
	var best *candidate
	for i := range ok {
		all := true
		for j := range ok {
			if !ok[i].status.Position.Received.Contains(ok[j].status.Position.Received) {
				all = false
				break
			}
		}
		if all {
			best = &ok[i]
			break
		}
	}
	if best == nil {
		return failoverDecision{refused: "no replica has received every transaction the others have: promoting any would lose another's (replicas diverged; see their agents' status)"}
	}
	lag := best.status.LagSeconds
	if at := best.status.LagObservedAt; at != nil && !in.primaryReadySince.IsZero() && at.Before(in.primaryReadySince) && !in.allowLossy {
		return failoverDecision{refused: fmt.Sprintf("%s is the most advanced replica, but it has not replicated from the primary since the primary became ready at %s (its lag was last known at %s): it lacks what the primary committed since (set failover.allowLossy to promote it anyway)",
			best.pod, in.primaryReadySince.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))}
	}
	switch {
	case lag == nil && !in.allowLossy:
		return failoverDecision{refused: fmt.Sprintf("%s is the most advanced replica, but its lag was never known: it may lack transactions (set failover.allowLossy to promote it anyway)", best.pod)}
	case lag != nil && effectiveLag(*best.status, in.primaryGone) > in.maxLag && !in.allowLossy:
		return failoverDecision{refused: fmt.Sprintf("%s is the most advanced replica, but it was %.0fs behind when last known (and lost its primary %v before it was seen unavailable), beyond failover.maxLag %v: promoting it would lose transactions (set failover.allowLossy to accept that)",
			best.pod, *lag, lagAge(*best.status, in.primaryGone).Round(time.Second), in.maxLag)}
	}
	return failoverDecision{promote: best.pod}
}

// primaryReadySince remembers, per primary pod, when its current incarnation (pod UID) became
// ready, and returns it (zero when the operator never saw this incarnation ready: it may have
// restarted while the operator was down).
func (r *SocialPlatformReconciler) primaryReadySince(p *corev1.Pod, ready bool) time.Time {
	key := p.Namespace + "/" + p.Name
	if ready {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				r.readySince.Store(key, readyMark{uid: p.UID, at: c.LastTransitionTime.Time})
				return c.LastTransitionTime.Time
			}
		}
	}
	if v, ok := r.readySince.Load(key); ok && v.(readyMark).uid == p.UID {
		return v.(readyMark).at
	}
	return time.Time{}
}

// readyMark is when a pod (by UID) was seen to become ready.
type readyMark struct {
	uid types.UID
	at  time.Time
}

// lagGrace is how long before the primary is seen unavailable a replica may have last measured
// its lag without that counting: the replica notices a silent primary within seconds (4 s
// heartbeat timeout, a 5 s agent tick), the pod turns unready up to about 20 s after.
const lagGrace = 30 * time.Second

// effectiveLag bounds what a replica may lack: its lag when last known, plus how much longer than
// lagGrace before the primary became unavailable that was (the agent knows the lag only while
// connected; a replica that lost its primary well before may lack everything committed since).
func effectiveLag(st agentapi.Status, primaryGone time.Time) time.Duration {
	if st.LagSeconds == nil {
		return 0
	}
	return time.Duration(*st.LagSeconds*float64(time.Second)) + lagAge(st, primaryGone)
}

func lagAge(st agentapi.Status, primaryGone time.Time) time.Duration {
	if st.LagObservedAt == nil || primaryGone.IsZero() {
		return 0
	}
	return max(primaryGone.Sub(*st.LagObservedAt)-lagGrace, 0)
}

// primaryMove is a change of a shard's primary decided in this pass, announced to the agents
// after the shard map and the Services record it.
type primaryMove struct {
	shard    int32
	from, to string
	epoch    int64
	kind     string // failover or switchover
	reason   string
	pods     []*corev1.Pod
}

// shardPods lists a shard's database pods from the cache, by name.
func (r *SocialPlatformReconciler) shardPods(ctx context.Context, sp *scalestackv1alpha1.SocialPlatform, i int32) (map[string]*corev1.Pod, error) {
	list := &corev1.PodList{}
	sel := sp.SelectorLabels("database")
	sel[scalestackv1alpha1.LabelShard] = strconv.Itoa(int(i))
	if err := r.Client.List(ctx, list, client.InNamespace(sp.Namespace), client.MatchingLabels(sel)); err != nil {
		return nil, fmt.Errorf("listing the pods of shard %d: %w", i, err)
	}
	pods := map[string]*corev1.Pod{}
	for k := range list.Items {
		pods[list.Items[k].Name] = &list.Items[k]
	}
	return pods, nil
}

// podReady reports whether a pod is ready, and since when it is not. A pod being deleted is
// unavailable from when its deletion was asked for: the API server sets its deletionTimestamp to
// that moment plus the grace period, a time in the future while the pod shuts down.
func podReady(p *corev1.Pod) (bool, time.Time) {
	deleting := time.Time{}
	if p.DeletionTimestamp != nil {
		deleting = p.DeletionTimestamp.Time
		if g := p.DeletionGracePeriodSeconds; g != nil {
			deleting = deleting.Add(-time.Duration(*g) * time.Second)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type != corev1.PodReady {
			continue
		}
		switch {
		case c.Status == corev1.ConditionTrue && deleting.IsZero():
			return true, time.Time{}
		case c.Status == corev1.ConditionTrue:
			return false, deleting
		case !deleting.IsZero() && deleting.Before(c.LastTransitionTime.Time):
			// It turned unready while shutting down: unavailable since the deletion.
			return false, deleting
		}
		return false, c.LastTransitionTime.Time
	}
	return false, p.CreationTimestamp.Time
}

// agents returns the client of a platform's agents, with the token from the credentials Secret.
func (r *SocialPlatformReconciler) agents(ctx context.Context, sp *scalestackv1alpha1.SocialPlatform) (agentapi.Client, error) {
	secret := &corev1.Secret{}
	if found, err := r.getOptional(ctx, sp.Namespace, sp.DatabaseSecretName(), secret); err != nil {
		return agentapi.Client{}, err
	} else if !found {
		return agentapi.Client{}, errors.New("the database credentials Secret is missing")
	}
	return agentapi.Client{HTTP: r.agentHTTP(), Token: agentapi.Token(string(secret.Data[render.SecretKeyReplication]))}, nil
}

func (r *SocialPlatformReconciler) agentHTTP() *http.Client {
	return &http.Client{Timeout: 45 * time.Second}
}

func (r *SocialPlatformReconciler) agentURL(p *corev1.Pod) string {
	if r.AgentURL != nil {
		return r.AgentURL(p)
	}
	return PodIPAgentURL(p)
}

// errNoIP: a pod without an IP has no agent to ask.
var errNoIP = errors.New("the pod has no IP")

// agentStatus asks a pod's agent for its report, giving it 5 s.
func (r *SocialPlatformReconciler) agentStatus(ctx context.Context, c agentapi.Client, p *corev1.Pod) (agentapi.Status, error) {
	url := r.agentURL(p)
	if url == "" {
		return agentapi.Status{}, errNoIP
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.Status(ctx, url)
}

// statuses asks the agents of pods (all but skip) for their reports.
func (r *SocialPlatformReconciler) statuses(ctx context.Context, c agentapi.Client, pods map[string]*corev1.Pod, skip string) []candidate {
	var out []candidate
	for name, p := range pods {
		if name == skip {
			continue
		}
		ready, _ := podReady(p)
		cd := candidate{pod: name, ready: ready}
		if st, err := r.agentStatus(ctx, c, p); err != nil {
			cd.err = err
		} else {
			cd.status = &st
		}
		out = append(out, cd)
	}
	return out
}

// decidePrimaries looks at every shard's primary of record and decides the moves of this pass:
// a failover when it has been unavailable for failover.after, a switchover when its pod asks for
// one, a confirmation when its agent fenced it after a stall. Refusals are recorded in the scope
// for DatabaseReady.
// recovered holds the primaries of record read from retained claims when there is no shard map.
func (r *SocialPlatformReconciler) decidePrimaries(ctx context.Context, s *scope, observed *shard.Map, recovered map[int32]render.Primary) ([]primaryMove, error) {
	sp := s.sp
	var moves []primaryMove
	var agents *agentapi.Client
	client := func() (agentapi.Client, error) {
		if agents != nil {
			return *agents, nil
		}
		c, err := r.agents(ctx, sp)
		if err != nil {
			return agentapi.Client{}, err
		}
		agents = &c
		return c, nil
	}
	for i := range render.Shards(sp) {
		rec := render.PrimaryOf(sp, i, observed, recovered)
		s.primaries[i] = rec
		pods, err := r.shardPods(ctx, sp, i)
		if err != nil {
			return nil, err
		}
		primary := pods[rec.Pod]
		if primary == nil {
			// Not created yet, or being recreated by its StatefulSet: nothing to judge.
			continue
		}
		ready, since := podReady(primary)
		// A shard takes new users once its primary and every replica asked for are ready (a new
		// shard enters placement only then; render.placeNewUsers).
		readyReplicas := int32(0)
		for name, p := range pods {
			if r, _ := podReady(p); r && name != rec.Pod {
				readyReplicas++
			}
		}
		s.serving[i] = ready && readyReplicas >= render.ReplicasPerShard(sp)
		readySince := r.primaryReadySince(primary, ready)
		doomed := false
		if ord, ok := replicaOrdinal(sp, i, rec.Pod); ok && ord >= render.ReplicasPerShard(sp) {
			// replicasPerShard shrank below the primary of record (a replica promoted earlier): the
			// StatefulSet keeps it until the primary is handed back to the shard's first pod.
			s.keepReplicas[sp.ShardReplicasName(i)] = ord + 1
			doomed = true
		}
		if target, ok := primary.Annotations[scalestackv1alpha1.AnnotationSwitchover]; ok {
			c, err := client()
			if err != nil {
				return nil, err
			}
			m, err := r.switchover(ctx, c, i, rec, pods, target)
			switch {
			case errors.Is(err, errNotYet):
				log.FromContext(ctx).Info("Switchover waits", "shard", i, "reason", err.Error())
				s.requeueAfter(5 * time.Second)
				continue
			case err != nil:
				r.Recorder.Eventf(sp, primary, corev1.EventTypeWarning, scalestackv1alpha1.EventSwitchoverFailed, "Switchover", "shard %d: %s", i, truncate(err.Error(), 900))
			default:
				moves = append(moves, m)
			}
			if err := r.clearSwitchover(ctx, primary); err != nil {
				return nil, err
			}
			continue
		}
		if err := r.tendReplicas(ctx, s, client, rec, ready, pods); err != nil {
			return nil, err
		}
		if ready {
			if doomed {
				c, err := client()
				if err != nil {
					return nil, err
				}
				m, err := r.switchover(ctx, c, i, rec, pods, sp.ShardDefaultPrimaryPod(i))
				switch {
				case errors.Is(err, errNotYet):
					log.FromContext(ctx).Info("Scale-down waits for a switchover", "shard", i, "reason", err.Error())
					s.requeueAfter(5 * time.Second)
				case err != nil:
					r.Recorder.Eventf(sp, primary, corev1.EventTypeWarning, scalestackv1alpha1.EventSwitchoverFailed, "Switchover", "shard %d: %s", i, truncate(err.Error(), 900))
					s.requeueAfter(30 * time.Second)
				default:
					m.reason = fmt.Sprintf("replicasPerShard %d leaves no room for %s", render.ReplicasPerShard(sp), rec.Pod)
					moves = append(moves, m)
				}
				continue
			}
			m, err := r.rollShard(ctx, s, client, i, rec, pods)
			if err != nil {
				return nil, err
			}
			if m != nil {
				moves = append(moves, *m)
			}
			continue
		}
		c, err := client()
		if err != nil {
			return nil, err
		}
		// A primary whose agent fenced it after a stall, and that is still the primary of record:
		// confirm it at once rather than fail over.
		pst, perr := r.agentStatus(ctx, c, primary)
		if st := pst; perr == nil && st.Fenced != "" && st.Topology.Primary == rec.Pod && st.Topology.Epoch == rec.Epoch {
			if _, err := c.SetTopology(ctx, r.agentURL(primary), agentapi.Topology{Primary: rec.Pod, Epoch: rec.Epoch, Confirm: true}); err != nil {
				log.FromContext(ctx).Info("Could not confirm a fenced primary", "shard", i, "error", err.Error())
			}
			s.requeueAfter(5 * time.Second)
			continue
		}
		d := planFailover(failoverInput{now: time.Now(), primaryGone: since, after: render.FailoverAfter(sp),
			enabled: render.FailoverEnabled(sp), maxLag: render.FailoverMaxLag(sp), allowLossy: sp.Spec.Database.Failover.AllowLossy,
			epoch: rec.Epoch, candidates: r.statuses(ctx, c, pods, rec.Pod), primaryReadySince: readySince})
		switch {
		case d.wait > 0:
			s.requeueAfter(d.wait + time.Second)
		case d.refused != "":
			msg := fmt.Sprintf("shard %d: primary %s unavailable since %s; failover refused: %s", i, rec.Pod, since.UTC().Format(time.RFC3339), d.refused)
			s.failoverRefused = append(s.failoverRefused, msg)
			r.Recorder.Eventf(sp, primary, corev1.EventTypeWarning, scalestackv1alpha1.EventFailoverRefused, "Failover", "%s", truncate(msg, 1000))
			s.requeueAfter(10 * time.Second)
		case d.promote != "":
			reason := fmt.Sprintf("primary %s unavailable for %v", rec.Pod, time.Since(since).Round(time.Second))
			if perr == nil {
				// Its agent answers, so its server may still take writes (a pod shutting down, a
				// readiness failing while it serves): fenced first, nothing commits there unseen.
				reason += r.fenceForFailover(ctx, c, rec, primary, pods[d.promote])
			}
			moves = append(moves, primaryMove{shard: i, from: rec.Pod, to: d.promote, epoch: rec.Epoch + 1, kind: "failover",
				reason: reason, pods: podList(pods)})
		}
	}
	return moves, nil
}

// What the operator does for a shard's unready replica, from its agent's report.
const (
	// actionRemind: its agent follows an older topology (it was unreachable when the move was
	// announced, and its mounted shard map is not refreshed yet): tell it.
	actionRemind = "remind"
	// actionRebuild: it diverged from the primary: schedule a rebuild, then restart the pod.
	actionRebuild = "rebuild"
	// actionRestart: a rebuild is scheduled but the pod has not restarted yet.
	actionRestart = "restart"
)

// replicaAction decides for one unready replica. A rebuild copies the primary of record, so it
// waits for that primary to be ready and for the agent to follow it.
func replicaAction(st agentapi.Status, rec render.Primary, primaryReady, rebuild bool) string {
	switch {
	case st.Topology.Epoch < rec.Epoch:
		return actionRemind
	case !rebuild || !primaryReady || st.Topology.Primary != rec.Pod || st.Role != agentapi.RoleReplica:
		return ""
	case st.Rebuild != nil:
		return actionRestart
	case st.Diverged != "" || st.Stranded != "":
		return actionRebuild
	}
	return ""
}

// shardRebuilds counts diverged replicas the operator had rebuilt from their primary.
var shardRebuilds = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "scalestack_shard_replica_rebuilds_total",
	Help: "Diverged replicas the operator had rebuilt from a copy of their primary, by platform and shard.",
}, []string{"namespace", "platform", "shard"})

func init() { metrics.Registry.MustRegister(shardRebuilds) }

// tendReplicas asks the agents of a shard's unready pods (never the ready ones: a converged shard
// costs no request) what they need: the current topology, or a rebuild from the primary.
func (r *SocialPlatformReconciler) tendReplicas(ctx context.Context, s *scope, client func() (agentapi.Client, error), rec render.Primary, primaryReady bool, pods map[string]*corev1.Pod) error {
	sp := s.sp
	for _, name := range slices.Sorted(maps.Keys(pods)) {
		p := pods[name]
		if ready, _ := podReady(p); ready || name == rec.Pod || !agentRunning(p) || r.agentURL(p) == "" || !p.DeletionTimestamp.IsZero() {
			continue
		}
		c, err := client()
		if err != nil {
			return err
		}
		st, err := r.agentStatus(ctx, c, p)
		if err != nil {
			continue
		}
		switch replicaAction(st, rec, primaryReady, render.RebuildDiverged(sp)) {
		case actionRemind:
			callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err = c.SetTopology(callCtx, r.agentURL(p), agentapi.Topology{Primary: rec.Pod, Epoch: rec.Epoch})
			cancel()
			log.FromContext(ctx).Info("Told a stale agent of the shard's primary", "pod", name, "epoch", rec.Epoch, "error", err)
			s.requeueAfter(10 * time.Second)
		case actionRebuild:
			callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err = c.Rebuild(callCtx, r.agentURL(p))
			cancel()
			if err != nil {
				log.FromContext(ctx).Info("Could not schedule the rebuild of a diverged replica", "pod", name, "error", err.Error())
				s.requeueAfter(10 * time.Second)
				continue
			}
			if err := r.restartForRebuild(ctx, p); err != nil {
				return err
			}
			shardRebuilds.WithLabelValues(sp.Namespace, sp.Name, p.Labels[scalestackv1alpha1.LabelShard]).Inc()
			why := fmt.Sprintf("%s diverged from the primary %s (transactions only it has: %s): rebuilding it from a copy of the primary; its binary logs, which hold those transactions, are kept on its volume in diverged-<time>/",
				name, rec.Pod, st.Diverged)
			if st.Diverged == "" {
				why = fmt.Sprintf("%s cannot replicate from the primary %s, which no longer has what it needs (%s): rebuilding it from a copy of the primary",
					name, rec.Pod, st.Stranded)
			}
			r.Recorder.Eventf(sp, p, corev1.EventTypeWarning, scalestackv1alpha1.EventReplicaRebuilding, "Rebuild", "%s", truncate(why, 1000))
			s.note("Pod/" + name + " (rebuild)")
			s.requeueAfter(10 * time.Second)
		case actionRestart:
			if err := r.restartForRebuild(ctx, p); err != nil {
				return err
			}
			s.requeueAfter(10 * time.Second)
		}
	}
	return nil
}

// agentRunning reports whether a pod's agent container runs: a pod still in its init containers
// (a rebuild copying the primary) has no agent to ask, nor has a simulated (kwok) pod, whose
// containers never execute (no container ID), so the operator never waits on an address no one
// answers.
func agentRunning(p *corev1.Pod) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == "agent" {
			return cs.ContainerID != "" && cs.State.Running != nil
		}
	}
	return false
}

// restartForRebuild deletes a pod whose rebuild is scheduled: its StatefulSet recreates it, and
// the new pod's bootstrap rebuilds the server before it starts. The UID precondition never deletes
// the pod that replaced it.
func (r *SocialPlatformReconciler) restartForRebuild(ctx context.Context, p *corev1.Pod) error {
	err := r.Client.Delete(ctx, p, client.Preconditions{UID: &p.UID})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restarting %s for its rebuild: %w", p.Name, err)
	}
	log.FromContext(ctx).Info("Restarted a diverged replica to rebuild it from the primary", "pod", p.Name)
	return nil
}

func podList(pods map[string]*corev1.Pod) []*corev1.Pod {
	out := make([]*corev1.Pod, 0, len(pods))
	for _, p := range pods {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// switchoverCatchUp bounds how long a switchover waits for the new primary to apply what the
// fenced one has; writes are refused meanwhile.
const switchoverCatchUp = 30 * time.Second

// switchover hands shard i's primary to target ("any": the most advanced ready replica) without
// losing a write: the primary is fenced (read-only, the apps' connections closed), the target
// applies everything the fenced primary has, and only then the topology moves. If the target
// does not catch up in time, the fence is lifted and nothing moves.
func (r *SocialPlatformReconciler) switchover(ctx context.Context, c agentapi.Client, i int32, rec render.Primary, pods map[string]*corev1.Pod, target string) (primaryMove, error) {
	cands := r.statuses(ctx, c, pods, rec.Pod)
	var chosen *candidate
	var why []string
	for k := range cands {
		cd := &cands[k]
		if target != "any" && cd.pod != target {
			continue
		}
		switch {
		case cd.err != nil:
			why = append(why, fmt.Sprintf("%s: agent did not answer (%v)", cd.pod, cd.err))
			continue
		case !cd.ready || !cd.status.Ready:
			why = append(why, fmt.Sprintf("%s: not ready (%s)", cd.pod, cd.status.Reason))
			continue
		case cd.status.Diverged != "" || cd.status.Role != agentapi.RoleReplica:
			why = append(why, fmt.Sprintf("%s: not a replicating replica (%s %s)", cd.pod, cd.status.Role, cd.status.Diverged))
			continue
		}
		if chosen == nil || cd.status.Position.Received.Contains(chosen.status.Position.Received) && !chosen.status.Position.Received.Contains(cd.status.Position.Received) {
			chosen = cd
		}
	}
	if chosen == nil {
		if len(why) == 0 {
			why = append(why, "no such pod in the shard")
		}
		return primaryMove{}, fmt.Errorf("%w: no ready, replicating replica matches %q: %s", errNotYet, target, strings.Join(why, "; "))
	}
	primary := pods[rec.Pod]
	url := r.agentURL(primary)
	fenced, err := c.Fence(ctx, url, rec.Epoch)
	if err != nil {
		return primaryMove{}, fmt.Errorf("fencing %s: %w", rec.Pod, err)
	}
	deadline := time.Now().Add(switchoverCatchUp)
	for {
		st, err := c.Status(ctx, r.agentURL(pods[chosen.pod]))
		if err == nil && st.Position.Executed.Contains(fenced.Position.Executed) {
			break
		}
		if time.Now().After(deadline) {
			if _, uerr := c.SetTopology(ctx, url, agentapi.Topology{Primary: rec.Pod, Epoch: rec.Epoch, Confirm: true}); uerr != nil {
				return primaryMove{}, fmt.Errorf("%s did not apply the fenced primary's transactions within %v, and lifting the fence failed: %w", chosen.pod, switchoverCatchUp, uerr)
			}
			return primaryMove{}, fmt.Errorf("%s did not apply the fenced primary's transactions within %v; the primary stays %s", chosen.pod, switchoverCatchUp, rec.Pod)
		}
		select {
		case <-ctx.Done():
			return primaryMove{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return primaryMove{shard: i, from: rec.Pod, to: chosen.pod, epoch: rec.Epoch + 1, kind: "switchover",
		reason: "asked for on " + rec.Pod, pods: podList(pods)}, nil
}

// failoverCatchUp bounds how long a failover waits, once the unavailable primary is fenced, for the
// replica it promotes to apply what that primary has.
const failoverCatchUp = 10 * time.Second

// fenceForFailover fences an unavailable primary whose agent still answers, before a replica is
// promoted in its place: without it, the apps' pooled connections could go on committing there
// (asynchronously, no replica acknowledging) until the agent hears of the failover, and those
// commits would be lost. It then waits up to failoverCatchUp for the replica to apply everything
// the fenced primary has, and says for the event how that went.
func (r *SocialPlatformReconciler) fenceForFailover(ctx context.Context, c agentapi.Client, rec render.Primary, primary, to *corev1.Pod) string {
	callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	fenced, err := c.Fence(callCtx, r.agentURL(primary), rec.Epoch)
	cancel()
	if err != nil {
		return fmt.Sprintf("; fencing it first failed (%v)", err)
	}
	deadline := time.Now().Add(failoverCatchUp)
	var lack replication.GTIDSet
	for {
		st, err := r.agentStatus(ctx, c, to)
		if err == nil {
			if lack = st.Position.Executed.Missing(fenced.Position.Executed); len(lack) == 0 {
				return fmt.Sprintf("; it was fenced first and %s applied everything it had", to.Name)
			}
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Sprintf("; it was fenced first (%v)", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	if lack == nil {
		return fmt.Sprintf("; it was fenced first, and %s's agent did not answer for %v", to.Name, failoverCatchUp)
	}
	return fmt.Sprintf("; it was fenced first, but %s still lacked its transactions %s after %v: they stay in the old primary's binary logs (kept when it is rebuilt)",
		to.Name, lack, failoverCatchUp)
}

// replicaOrdinal is the ordinal of pod in shard i's replicas StatefulSet, if it is one of its pods.
func replicaOrdinal(sp *scalestackv1alpha1.SocialPlatform, i int32, pod string) (int32, bool) {
	rest, ok := strings.CutPrefix(pod, sp.ShardReplicasName(i)+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 32)
	if err != nil || n < 0 {
		return 0, false
	}
	return int32(n), true
}

// errNotYet marks a switchover that cannot start now but may later (the target is not ready):
// the request stays on the pod and the operator looks again.
var errNotYet = errors.New("not yet")

// clearSwitchover removes the request from the pod, done or refused.
func (r *SocialPlatformReconciler) clearSwitchover(ctx context.Context, pod *corev1.Pod) error {
	patch := client.MergeFrom(pod.DeepCopy())
	p := pod.DeepCopy()
	delete(p.Annotations, scalestackv1alpha1.AnnotationSwitchover)
	if err := r.Client.Patch(ctx, p, patch); err != nil {
		return fmt.Errorf("removing the switchover request from %s: %w", pod.Name, err)
	}
	return nil
}

// announce tells the shard's agents of moves recorded in the shard map: the new primary first
// (it promotes itself, after applying its relay log), then the others (they re-point, the old
// primary fences itself). An agent that does not answer finds the decision in its mounted map.
func (r *SocialPlatformReconciler) announce(ctx context.Context, s *scope, moves []primaryMove) {
	if len(moves) == 0 {
		return
	}
	sp := s.sp
	c, err := r.agents(ctx, sp)
	if err != nil {
		log.FromContext(ctx).Info("Could not tell the agents of a primary move; they will read the shard map", "error", err.Error())
		return
	}
	for _, m := range moves {
		topo := agentapi.Topology{Primary: m.to, Epoch: m.epoch}
		slices.SortStableFunc(m.pods, func(a, b *corev1.Pod) int {
			return boolRank(a.Name != m.to) - boolRank(b.Name != m.to)
		})
		var missed []string
		for _, p := range m.pods {
			url := r.agentURL(p)
			if url == "" {
				missed = append(missed, p.Name)
				continue
			}
			// The new primary may take PromoteWait to apply its relay log; the others answer after a
			// tick, or not at all when their server is gone.
			timeout := 10 * time.Second
			if p.Name == m.to {
				timeout = 45 * time.Second
			}
			callCtx, cancel := context.WithTimeout(ctx, timeout)
			_, err := c.SetTopology(callCtx, url, topo)
			cancel()
			if err != nil {
				missed = append(missed, p.Name)
			}
		}
		shardFailovers.WithLabelValues(sp.Namespace, sp.Name, strconv.Itoa(int(m.shard)), m.kind).Inc()
		reason, eventType := scalestackv1alpha1.EventShardFailover, corev1.EventTypeWarning
		if m.kind == "switchover" {
			reason, eventType = scalestackv1alpha1.EventShardSwitchover, corev1.EventTypeNormal
		}
		msg := fmt.Sprintf("shard %d: %s promoted in place of %s (epoch %d): %s", m.shard, m.to, m.from, m.epoch, m.reason)
		if len(missed) > 0 {
			msg += fmt.Sprintf("; not reached yet (they follow the shard map): %s", strings.Join(missed, ", "))
		}
		r.Recorder.Eventf(sp, nil, eventType, reason, "Failover", "%s", truncate(msg, 1000))
		log.FromContext(ctx).Info("Moved a shard's primary", "shard", m.shard, "from", m.from, "to", m.to, "epoch", m.epoch, "kind", m.kind)
		s.requeueAfter(5 * time.Second)
	}
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}
