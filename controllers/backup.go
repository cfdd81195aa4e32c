package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/pkg/agentapi"
)

// Backups. The shards' agents do the work where the data is (apps/dbagent: the primary archives
// its binary logs); the operator only asks each shard's primary how it went, once a pass while
// backup is on (one request per shard), and reports it in BackupReady and status.shards[].backup.
// It never reaches the object store itself: it may run where the store is not reachable from.

// shardArchive is one shard's archiving as its primary's agent reported it.
type shardArchive struct {
	shard  int32
	pod    string
	report *agentapi.ArchiveStatus
	// why is set when there is no report: the primary is not ready, or its agent did not answer.
	why string
}

// backupObservation is what the backup phase found.
type backupObservation struct {
	enabled  bool
	interval time.Duration
	shards   []shardArchive
}

// reconcileBackup asks every shard's primary of record for its archiving report.
func (r *SocialPlatformReconciler) reconcileBackup(ctx context.Context, s *scope) error {
	sp := s.sp
	s.backup = backupObservation{enabled: render.BackupEnabled(sp), interval: render.ArchiveInterval(sp)}
	if !s.backup.enabled {
		return nil
	}
	c, err := r.agents(ctx, sp)
	if err != nil {
		return err
	}
	for i := range render.Shards(sp) {
		rec := s.primaries[i]
		a := shardArchive{shard: i, pod: rec.Pod}
		pods, err := r.shardPods(ctx, sp, i)
		if err != nil {
			return err
		}
		p := pods[rec.Pod]
		ready := false
		if p != nil {
			ready, _ = podReady(p)
		}
		switch {
		case p == nil:
			a.why = "its primary " + rec.Pod + " does not exist yet"
		case !ready:
			a.why = "its primary " + rec.Pod + " is not ready"
		case !agentRunning(p):
			a.why = "the agent of " + rec.Pod + " is not running"
		default:
			st, err := r.agentStatus(ctx, c, p)
			switch {
			case err != nil:
				a.why = fmt.Sprintf("the agent of %s did not answer: %v", rec.Pod, err)
			case st.Archive == nil:
				a.why = rec.Pod + " reports no archiving yet"
			default:
				a.report = st.Archive
			}
		}
		s.backup.shards = append(s.backup.shards, a)
	}
	// Look again within an interval, so a stall shows within about three.
	s.requeueAfter(min(s.backup.interval, time.Minute))
	return nil
}

// backupCondition judges the shards' archiving at now: the first shard whose last pass failed
// names the cause; a pass older than three intervals (plus a minute for the agent's own pace) is
// a stall; a shard with no report yet keeps the condition Unknown.
func backupCondition(obs backupObservation, now time.Time) metav1.Condition {
	c := metav1.Condition{Type: scalestackv1alpha1.ConditionBackupReady}
	stallAfter := 3*obs.interval + time.Minute
	var pending []string
	for _, a := range obs.shards {
		switch {
		case a.report == nil:
			pending = append(pending, fmt.Sprintf("shard %d: %s", a.shard, a.why))
		case a.report.Reason != "":
			c.Status, c.Reason = metav1.ConditionFalse, a.report.Reason
			c.Message = truncate(fmt.Sprintf("shard %d (%s): %s", a.shard, a.pod, a.report.Error), 1024)
			if a.report.LastSuccess != nil {
				c.Message = truncate(fmt.Sprintf("%s; last archived %s", c.Message, a.report.LastSuccess.UTC().Format(time.RFC3339)), 1024)
			}
			return c
		case a.report.LastSuccess == nil:
			pending = append(pending, fmt.Sprintf("shard %d: no archiving pass completed yet", a.shard))
		default:
			age := now.Sub(*a.report.LastSuccess)
			if age > stallAfter {
				c.Status, c.Reason = metav1.ConditionFalse, scalestackv1alpha1.ReasonArchivingStalled
				c.Message = fmt.Sprintf("shard %d (%s) last archived its binary logs %v ago, more than three archive intervals (%v): transactions since then are not backed up",
					a.shard, a.pod, age.Round(time.Second), obs.interval)
				return c
			}
		}
	}
	if len(pending) > 0 {
		c.Status, c.Reason = metav1.ConditionUnknown, scalestackv1alpha1.ReasonArchivingPending
		c.Message = truncate(strings.Join(pending, "; "), 1024)
		return c
	}
	c.Status, c.Reason = metav1.ConditionTrue, scalestackv1alpha1.ReasonArchiving
	c.Message = fmt.Sprintf("every shard's primary archives its binary logs (archiveInterval %v bounds the recovery point)", obs.interval)
	return c
}

// backupStatus writes status.shards[].backup and returns BackupReady, or removes it when backup is
// off.
func (s *scope) backupStatus(now time.Time) (metav1.Condition, bool) {
	if !s.backup.enabled {
		meta.RemoveStatusCondition(&s.sp.Status.Conditions, scalestackv1alpha1.ConditionBackupReady)
		return metav1.Condition{}, false
	}
	for _, a := range s.backup.shards {
		if int(a.shard) >= len(s.sp.Status.Shards) || a.report == nil {
			continue
		}
		b := &scalestackv1alpha1.ShardBackupStatus{LastArchivedFile: a.report.LastFile}
		if a.report.LastSuccess != nil {
			t := metav1.NewTime(a.report.LastSuccess.Truncate(time.Second))
			b.LastArchived = &t
		}
		s.sp.Status.Shards[a.shard].Backup = b
	}
	return backupCondition(s.backup, now), true
}
