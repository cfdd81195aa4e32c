package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/pkg/agentapi"
)

// Backups. The shards' agents do the work where the data is (apps/dbagent): the primary archives
// its binary logs and lists the shard's newest full backup in the store; a pod asked for a full
// backup streams it there. The operator asks every pod's agent of each shard for its report once a
// pass while backup is on, decides from those reports whether a shard's full backup is due (first,
// scheduled, or asked for with the scalestack.dev/backup-requested annotation; only once the
// primary has listed the store, so a restarted agent never looks like "no backup"), asks the best pod
// for it (a ready replica, else the primary), and reports it all in BackupReady and
// status.shards[].backup. It never reaches the object store itself: it may run where the store is
// not reachable from.

// retryFailedBackupAfter spaces the attempts of a full backup that failed.
const retryFailedBackupAfter = 5 * time.Minute

// podBackup is one pod's full backups as its agent reported them.
type podBackup struct {
	pod    string
	report *agentapi.BackupStatus
}

// shardArchive is one shard's backups as its pods' agents reported them.
type shardArchive struct {
	shard  int32
	pod    string
	report *agentapi.ArchiveStatus
	// why is set when there is no archiving report: the primary is not ready, or its agent did
	// not answer.
	why string

	// newest is the shard's newest complete full backup any agent reported; running the one
	// being taken and where; failed the newest failed attempt since newest, and where.
	newest     *agentapi.Base
	running    *agentapi.BackupRun
	runningOn  string
	failed     *agentapi.BackupFailure
	failedOn   string
	next       time.Time
	waitingFor string
	// listed: the primary's agent has listed the store, so no newest backup means none.
	listed bool
}

// backupObservation is what the backup phase found.
type backupObservation struct {
	enabled  bool
	interval time.Duration
	// scheduleErr is a schedule the CRD's pattern admitted and cron refuses.
	scheduleErr error
	shards      []shardArchive
}

// reconcileBackup asks every shard's agents for their reports and starts the full backups due.
func (r *SocialPlatformReconciler) reconcileBackup(ctx context.Context, s *scope) error {
	sp := s.sp
	s.backup = backupObservation{enabled: render.BackupEnabled(sp), interval: render.ArchiveInterval(sp)}
	if !s.backup.enabled {
		return nil
	}
	sched, err := render.BackupSchedule(sp)
	if err != nil {
		s.backup.scheduleErr = err
	}
	requested, reqErr := backupRequestedAt(sp)
	if reqErr != nil {
		r.Recorder.Eventf(sp, nil, corev1.EventTypeWarning, scalestackv1alpha1.EventBackupRequestInvalid, "Backup", "%s", truncate(reqErr.Error(), 1000))
	}
	c, err := r.agents(ctx, sp)
	if err != nil {
		return err
	}
	count, maxAge := render.BackupRetention(sp)
	keep := agentapi.Retention{Count: count, MaxAgeSeconds: int64(maxAge.Seconds())}
	now := time.Now()
	for i := range render.Shards(sp) {
		rec := s.primaries[i]
		pods, err := r.shardPods(ctx, sp, i)
		if err != nil {
			return err
		}
		reports := map[string]agentapi.Status{}
		for name, p := range pods {
			if !agentRunning(p) {
				continue
			}
			if st, err := r.agentStatus(ctx, c, p); err == nil {
				reports[name] = st
			} else if name == rec.Pod {
				reports[name] = agentapi.Status{Reason: "did not answer: " + err.Error()}
			}
		}
		a := observeShardBackups(i, rec.Pod, pods, reports)
		if sched == nil {
			s.backup.shards = append(s.backup.shards, a)
			continue
		}
		due, why, next := fullBackupDue(a, sched, requested, now)
		a.next = next
		if !a.listed {
			a.waitingFor = "the primary's agent has not listed the object store yet"
		}
		source, waiting := backupSource(pods, reports, rec.Pod)
		if due && source == "" {
			a.waitingFor = waiting
		}
		if due && source != "" {
			st, err := c.Backup(ctx, r.agentURL(pods[source]), agentapi.BackupRequest{Retention: keep, Why: why})
			if err != nil {
				a.waitingFor = fmt.Sprintf("asking %s for a backup failed: %v", source, err)
			} else if st.Backup != nil && st.Backup.Running != nil {
				a.running, a.runningOn = st.Backup.Running, source
				r.Recorder.Eventf(sp, pods[source], corev1.EventTypeNormal, scalestackv1alpha1.EventBackupStarted, "Backup",
					"shard %d: %s full backup %s started on %s", i, why, st.Backup.Running.ID, source)
			}
		}
		s.backup.shards = append(s.backup.shards, a)
	}
	// Look again within an interval, so a stall shows within about three and a due backup starts
	// within a minute.
	s.requeueAfter(min(s.backup.interval, time.Minute))
	return nil
}

// backupRequestedAt reads the scalestack.dev/backup-requested annotation: nil when absent.
func backupRequestedAt(sp *scalestackv1alpha1.SocialPlatform) (*time.Time, error) {
	v, ok := sp.Annotations[scalestackv1alpha1.AnnotationBackupRequested]
	if !ok || v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, fmt.Errorf("annotation %s=%q is not an RFC 3339 time (e.g. 2026-12-02T17:00:00Z): no backup was taken for it", scalestackv1alpha1.AnnotationBackupRequested, v)
	}
	return &t, nil
}

// observeShardBackups gathers a shard's backups from its agents' reports: the archiving of the
// primary of record, the newest complete full backup any of them knows (the primary's listing of
// the store, or a pod's own completion not listed yet), the one running, and the newest failure
// since the newest backup.
func observeShardBackups(shard int32, primary string, pods map[string]*corev1.Pod, reports map[string]agentapi.Status) shardArchive {
	a := shardArchive{shard: shard, pod: primary}
	p := pods[primary]
	ready := false
	if p != nil {
		ready, _ = podReady(p)
	}
	st, asked := reports[primary]
	switch {
	case p == nil:
		a.why = "its primary " + primary + " does not exist yet"
	case !ready:
		a.why = "its primary " + primary + " is not ready"
	case !agentRunning(p):
		a.why = "the agent of " + primary + " is not running"
	case !asked || st.Pod == "":
		a.why = fmt.Sprintf("the agent of %s %s", primary, cmp.Or(st.Reason, "did not answer"))
	case st.Archive == nil:
		a.why = primary + " reports no archiving yet"
	default:
		a.report = st.Archive
	}
	a.listed = asked && st.Role == agentapi.RolePrimary && st.Backup != nil && st.Backup.ListedAt != nil
	var all []podBackup
	for name, st := range reports {
		if st.Backup != nil {
			all = append(all, podBackup{pod: name, report: st.Backup})
		}
	}
	slices.SortFunc(all, func(x, y podBackup) int { return strings.Compare(x.pod, y.pod) })
	for _, pb := range all {
		for _, b := range []*agentapi.Base{pb.report.Newest, pb.report.Completed} {
			if b != nil && (a.newest == nil || b.ID > a.newest.ID) {
				a.newest = b
			}
		}
		if run := pb.report.Running; run != nil && a.running == nil {
			a.running, a.runningOn = run, pb.pod
		}
	}
	for _, pb := range all {
		f := pb.report.Failed
		if f == nil || (a.newest != nil && !f.At.After(a.newest.FinishedAt)) {
			continue
		}
		if a.failed == nil || f.At.After(a.failed.At) {
			a.failed, a.failedOn = f, pb.pod
		}
	}
	return a
}

// fullBackupDue decides whether a shard's full backup is due at now, why, and when the next
// scheduled one is: the first as soon as possible, then at the schedule's first time after the
// newest backup started, or when the annotation asks for one newer than the newest. Never while
// one runs, and a failed attempt waits retryFailedBackupAfter before the next.
func fullBackupDue(a shardArchive, sched cron.Schedule, requested *time.Time, now time.Time) (due bool, why string, next time.Time) {
	if !a.listed {
		// Until the primary has looked, "no backup" may only mean "not listed yet" (an agent
		// just restarted): deciding now would take a needless backup.
		if a.newest != nil {
			next = sched.Next(a.newest.StartedAt)
		}
		return false, "", next
	}
	if a.newest == nil {
		due, why, next = true, "first", now
	} else {
		next = sched.Next(a.newest.StartedAt)
		due, why = !now.Before(next), "scheduled"
	}
	if requested != nil && !requested.After(now) && (a.newest == nil || a.newest.StartedAt.Before(*requested)) {
		due, why = true, "requested"
	}
	if a.running != nil {
		return false, "", next
	}
	if a.failed != nil && now.Sub(a.failed.At) < retryFailedBackupAfter {
		return false, "", next
	}
	return due, why, next
}

// backupSource picks the pod a full backup is taken on: the ready replica whose agent reports the
// least lag (the primary carries no extra load), else the primary of record when it is ready and
// serves as primary. It says what it waits for when there is none.
func backupSource(pods map[string]*corev1.Pod, reports map[string]agentapi.Status, primary string) (string, string) {
	best, bestLag := "", 0.0
	names := make([]string, 0, len(reports))
	for name := range reports {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		st := reports[name]
		p := pods[name]
		if p == nil || st.Role != agentapi.RoleReplica || !st.Ready || st.Backup == nil {
			continue
		}
		if ok, _ := podReady(p); !ok {
			continue
		}
		lag := 0.0
		if st.LagSeconds != nil {
			lag = *st.LagSeconds
		}
		if best == "" || lag < bestLag {
			best, bestLag = name, lag
		}
	}
	if best != "" {
		return best, ""
	}
	st, ok := reports[primary]
	if p := pods[primary]; ok && p != nil && st.Role == agentapi.RolePrimary && st.Ready && st.Backup != nil {
		if ready, _ := podReady(p); ready {
			return primary, ""
		}
	}
	return "", "no ready replica nor a ready primary to take it on"
}

// backupCondition judges the shards' backups at now. Archiving first: the first shard whose last
// pass failed names the cause, and a pass older than three intervals (plus a minute for the
// agent's own pace) is a stall. Then the full backups: a failed attempt since the newest backup is
// BackupFailed, a shard without any complete backup keeps the condition Unknown, and so does a
// shard with no archiving report yet.
func backupCondition(obs backupObservation, now time.Time) metav1.Condition {
	c := metav1.Condition{Type: scalestackv1alpha1.ConditionBackupReady}
	if obs.scheduleErr != nil {
		c.Status, c.Reason = metav1.ConditionFalse, scalestackv1alpha1.ReasonBackupFailed
		c.Message = truncate(obs.scheduleErr.Error()+": no full backup is scheduled", 1024)
		return c
	}
	stallAfter := 3*obs.interval + time.Minute
	var pending, firsts []string
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
	for _, a := range obs.shards {
		if f := a.failed; f != nil {
			c.Status, c.Reason = metav1.ConditionFalse, scalestackv1alpha1.ReasonBackupFailed
			if f.Reason != "" && f.Reason != scalestackv1alpha1.ReasonBackupFailed {
				c.Reason = f.Reason
			}
			newest := "it has no complete full backup"
			if a.newest != nil {
				newest = "its newest complete full backup is " + a.newest.ID
			}
			c.Message = truncate(fmt.Sprintf("shard %d: the full backup on %s failed at %s: %s; %s", a.shard, a.failedOn, f.At.UTC().Format(time.RFC3339), f.Error, newest), 1024)
			return c
		}
		if a.newest == nil {
			switch {
			case a.running != nil:
				firsts = append(firsts, fmt.Sprintf("shard %d: its first full backup runs on %s since %s", a.shard, a.runningOn, a.running.StartedAt.UTC().Format(time.RFC3339)))
			case a.waitingFor != "":
				firsts = append(firsts, fmt.Sprintf("shard %d: its first full backup waits: %s", a.shard, a.waitingFor))
			default:
				firsts = append(firsts, fmt.Sprintf("shard %d: no full backup yet", a.shard))
			}
		}
	}
	if len(pending) > 0 {
		c.Status, c.Reason = metav1.ConditionUnknown, scalestackv1alpha1.ReasonArchivingPending
		c.Message = truncate(strings.Join(pending, "; "), 1024)
		return c
	}
	if len(firsts) > 0 {
		c.Status, c.Reason = metav1.ConditionUnknown, scalestackv1alpha1.ReasonFullBackupPending
		c.Message = truncate(strings.Join(firsts, "; ")+": until it completes, the shard cannot be restored", 1024)
		return c
	}
	oldest := obs.shards[0]
	for _, a := range obs.shards[1:] {
		if a.newest.FinishedAt.Before(oldest.newest.FinishedAt) {
			oldest = a
		}
	}
	c.Status, c.Reason = metav1.ConditionTrue, scalestackv1alpha1.ReasonBackedUp
	c.Message = fmt.Sprintf("every shard has a full backup (the oldest of the newest: shard %d's, finished %s) and its primary archives its binary logs (archiveInterval %v bounds the recovery point)",
		oldest.shard, oldest.newest.FinishedAt.UTC().Format(time.RFC3339), obs.interval)
	return c
}

// backupStatus writes status.shards[].backup and returns BackupReady, or removes it when backup is
// off. It returns the shards whose newest full backup is newer than the status said (for the
// BackupCompleted event).
func (s *scope) backupStatus(now time.Time) (metav1.Condition, bool, []shardArchive) {
	if !s.backup.enabled {
		meta.RemoveStatusCondition(&s.sp.Status.Conditions, scalestackv1alpha1.ConditionBackupReady)
		return metav1.Condition{}, false, nil
	}
	var completed []shardArchive
	for _, a := range s.backup.shards {
		if int(a.shard) >= len(s.sp.Status.Shards) {
			continue
		}
		var prev *scalestackv1alpha1.ShardBackupStatus
		if int(a.shard) < len(s.original.Status.Shards) {
			prev = s.original.Status.Shards[a.shard].Backup
		}
		b := &scalestackv1alpha1.ShardBackupStatus{}
		if prev != nil {
			// A pass that could not ask the agents keeps what the last one saw.
			*b = *prev.DeepCopy()
			b.Running = nil
		}
		if a.report != nil {
			b.LastArchivedFile = a.report.LastFile
			b.LastArchived = nil
			if a.report.LastSuccess != nil {
				t := metav1.NewTime(a.report.LastSuccess.Truncate(time.Second))
				b.LastArchived = &t
			}
		}
		if n := a.newest; n != nil {
			if prev == nil || prev.LastFull == nil || prev.LastFull.ID < n.ID {
				completed = append(completed, a)
			}
			b.LastFull = &scalestackv1alpha1.FullBackupStatus{ID: n.ID, FinishedAt: metav1.NewTime(n.FinishedAt.Truncate(time.Second)),
				SizeBytes: n.Size, GTID: n.GTID, Source: n.Source}
		}
		if a.running != nil {
			b.Running = &scalestackv1alpha1.BackupRunStatus{Source: a.runningOn, StartedAt: metav1.NewTime(a.running.StartedAt.Truncate(time.Second))}
		}
		b.NextScheduled = nil
		if !a.next.IsZero() {
			t := metav1.NewTime(a.next.Truncate(time.Second))
			b.NextScheduled = &t
		}
		s.sp.Status.Shards[a.shard].Backup = b
	}
	return backupCondition(s.backup, now), true, completed
}
