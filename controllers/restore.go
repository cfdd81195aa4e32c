package controllers

// Restore: how far a platform created with spec.database.restore is. Each shard's first primary
// restores in its bootstrap init container; its termination message is the record of the restore
// (agentapi.RestoreReportPrefix and JSON) or the error that stopped it, and the container's state
// says whether it runs, waits or failed. observeRestore and restoreCondition are pure and
// table-tested (restore_test.go).

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/pkg/agentapi"
)

// bootstrapContainer is the database pods' init container that fills the data directory.
const bootstrapContainer = "bootstrap"

type restoreState int

const (
	restorePending restoreState = iota
	restoreRunning
	restoreFailed
	restoreDone
)

// restoreObservation is one shard's restore as its first primary pod shows it.
type restoreObservation struct {
	shard int32
	state restoreState
	// since is when the running attempt started; attempts counts the attempts so far.
	since    time.Time
	attempts int32
	// waiting says what a pending restore waits for; lastError is the last failed attempt's.
	waiting, lastError string
	// record is what a done restore reported (nil for an older agent, or a simulated node).
	record *agentapi.RestoreRecord
}

// observeRestore reads shard's restore from its first primary pod (nil: not there yet).
func observeRestore(shard int32, p *corev1.Pod) restoreObservation {
	o := restoreObservation{shard: shard, waiting: "its pod does not exist yet"}
	if p == nil {
		return o
	}
	var st *corev1.ContainerStatus
	for i := range p.Status.InitContainerStatuses {
		if p.Status.InitContainerStatuses[i].Name == bootstrapContainer {
			st = &p.Status.InitContainerStatuses[i]
		}
	}
	if st == nil {
		o.waiting = "its pod " + p.Name + " has not started"
		return o
	}
	if t := st.LastTerminationState.Terminated; t != nil && t.ExitCode != 0 {
		o.lastError = terminationMessage(t)
	}
	switch {
	case st.State.Terminated != nil && st.State.Terminated.ExitCode == 0:
		o.state, o.record = restoreDone, agentapi.ParseRestoreReport(st.State.Terminated.Message)
	case st.State.Terminated != nil:
		o.state, o.attempts, o.lastError = restoreFailed, st.RestartCount+1, terminationMessage(st.State.Terminated)
	case st.State.Running != nil:
		o.state, o.since, o.attempts = restoreRunning, st.State.Running.StartedAt.Time, st.RestartCount+1
	case o.lastError != "":
		// Waiting to be retried (CrashLoopBackOff) after a failed attempt.
		o.state, o.attempts = restoreFailed, st.RestartCount
	default:
		o.waiting = "its pod " + p.Name + " is starting"
		if w := st.State.Waiting; w != nil && w.Reason != "" {
			o.waiting += " (" + w.Reason + ")"
		}
	}
	return o
}

// terminationMessage is what an attempt left: the bootstrap's own message, else its exit.
func terminationMessage(t *corev1.ContainerStateTerminated) string {
	if m := strings.TrimSpace(t.Message); m != "" {
		return m
	}
	return fmt.Sprintf("exit code %d (%s)", t.ExitCode, t.Reason)
}

// restoreCondition is the Restoring condition from every shard's observation. A platform once
// Restored stays so (previous): the restore happens once, at creation, and a later failover or
// rebuild of the shard's pods must not look like a restore starting over.
func restoreCondition(obs []restoreObservation, previous *metav1.Condition) metav1.Condition {
	c := metav1.Condition{Type: scalestackv1alpha1.ConditionRestoring}
	if previous != nil && previous.Reason == scalestackv1alpha1.ReasonRestored {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, previous.Reason, previous.Message
		return c
	}
	done, failed := 0, false
	parts := make([]string, 0, len(obs))
	for _, o := range obs {
		switch o.state {
		case restoreDone:
			done++
			parts = append(parts, fmt.Sprintf("shard %d %s", o.shard, restoredSummary(o.record)))
		case restoreRunning:
			p := fmt.Sprintf("shard %d restoring since %s", o.shard, o.since.UTC().Format(time.RFC3339))
			if o.attempts > 1 {
				p += fmt.Sprintf(" (attempt %d; the last failed: %s)", o.attempts, o.lastError)
			}
			parts = append(parts, p)
		case restoreFailed:
			failed = true
			parts = append(parts, fmt.Sprintf("shard %d failed (attempt %d, retried): %s", o.shard, o.attempts, o.lastError))
		default:
			parts = append(parts, fmt.Sprintf("shard %d waits: %s", o.shard, o.waiting))
		}
	}
	c.Message = truncate(fmt.Sprintf("%d/%d shards restored; %s", done, len(obs), strings.Join(parts, "; ")), 1024)
	switch {
	case done == len(obs):
		c.Status, c.Reason = metav1.ConditionFalse, scalestackv1alpha1.ReasonRestored
	case failed:
		c.Status, c.Reason = metav1.ConditionTrue, scalestackv1alpha1.ReasonRestoreFailed
	default:
		c.Status, c.Reason = metav1.ConditionTrue, scalestackv1alpha1.ReasonRestoreInProgress
	}
	return c
}

// restoredSummary says what a shard was restored to.
func restoredSummary(r *agentapi.RestoreRecord) string {
	switch {
	case r == nil:
		return "restored"
	case r.Empty:
		return "started empty (the source has no such shard)"
	}
	return fmt.Sprintf("restored from %s + %d binary logs to GTID %s in %.0f s", r.Backup, r.Binlogs, r.GTID, r.Seconds)
}

// restoreStatus is the Restoring condition of a platform created with spec.database.restore
// (ok false otherwise), from the shards' first primary pods as observe read them.
func (s *scope) restoreStatus() (metav1.Condition, bool) {
	sp := s.sp
	if sp.Spec.Database.Restore == nil {
		return metav1.Condition{}, false
	}
	obs := make([]restoreObservation, 0, render.Shards(sp))
	for i := range render.Shards(sp) {
		obs = append(obs, observeRestore(i, s.restorePods[sp.ShardDefaultPrimaryPod(i)]))
	}
	return restoreCondition(obs, meta.FindStatusCondition(sp.Status.Conditions, scalestackv1alpha1.ConditionRestoring)), true
}

// whileRestoring is DatabaseReady until the restore is done: False, with the restore's reason
// and progress, so that Ready waits for every shard.
func whileRestoring(c, restoring metav1.Condition) metav1.Condition {
	if restoring.Status != metav1.ConditionTrue {
		return c
	}
	return metav1.Condition{Type: c.Type, Status: metav1.ConditionFalse, Reason: restoring.Reason, Message: restoring.Message}
}

// announceRestore records the restore's end, and each new failure, as Events.
func (r *SocialPlatformReconciler) announceRestore(sp *scalestackv1alpha1.SocialPlatform, previous *metav1.Condition, c metav1.Condition) {
	was := ""
	if previous != nil {
		was = previous.Reason + previous.Message
	}
	switch {
	case c.Reason == scalestackv1alpha1.ReasonRestored && (previous == nil || previous.Reason != c.Reason):
		r.Recorder.Eventf(sp, nil, corev1.EventTypeNormal, scalestackv1alpha1.EventRestoreCompleted, "Restore", "%s", c.Message)
	case c.Reason == scalestackv1alpha1.ReasonRestoreFailed && was != c.Reason+c.Message:
		r.Recorder.Eventf(sp, nil, corev1.EventTypeWarning, scalestackv1alpha1.EventRestoreFailed, "Restore", "%s", c.Message)
	}
}
