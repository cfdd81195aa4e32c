package controllers

// Status: what this pass observed, the conditions computed from it, and the one status write.
// The condition functions read no clock and no client, so each has a table test
// (status_test.go); the reconciler stamps observedGeneration and transition times when it sets
// them.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/autoscale"
	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/pkg/shard"
)

// monitoringObservation is what MonitoringReady is computed from.
type monitoringObservation struct {
	missing         bool
	rules, monitors int
}

// observe reads the workloads status reports on, from the cache (no API request).
func (r *SocialPlatformReconciler) observe(ctx context.Context, s *scope) error {
	sp := s.sp
	deployments := map[scalestackv1alpha1.Component]string{}
	for _, c := range scalestackv1alpha1.AppComponents {
		deployments[c] = sp.ComponentName(c)
	}
	statefulSets := map[string]string{sp.CacheName(): sp.CacheName()}
	for i := range render.Shards(sp) {
		statefulSets[sp.ShardPrimaryName(i)] = sp.ShardPrimaryName(i)
		statefulSets[sp.ShardReplicasName(i)] = sp.ShardReplicasName(i)
	}
	if len(s.primaries) < int(render.Shards(sp)) {
		// The database phase did not run (paused, or an earlier phase failed): the shard map says
		// who the primaries are.
		observed, err := r.observedShardMap(ctx, sp)
		if err != nil {
			return err
		}
		for i := range render.Shards(sp) {
			if _, ok := s.primaries[i]; !ok {
				s.primaries[i] = render.PrimaryOf(sp, i, observed, nil)
			}
		}
	}
	pods := map[string]string{}
	for _, n := range s.primaryPodNames() {
		pods[n] = n
	}
	restoring := map[string]string{}
	if sp.Spec.Database.Restore != nil {
		for i := range render.Shards(sp) {
			restoring[sp.ShardDefaultPrimaryPod(i)] = sp.ShardDefaultPrimaryPod(i)
		}
	}
	return errors.Join(
		observeNamed(ctx, r, sp.Namespace, deployments, s.deployments),
		observeNamed(ctx, r, sp.Namespace, statefulSets, s.statefulSets),
		observeNamed(ctx, r, sp.Namespace, pods, s.primaryPods),
		observeNamed(ctx, r, sp.Namespace, restoring, s.restorePods),
	)
}

// observeNamed reads the objects named in names (by key) from the platform's namespace into into;
// missing ones are left out.
func observeNamed[K comparable, T any, O interface {
	*T
	client.Object
}](ctx context.Context, r *SocialPlatformReconciler, namespace string, names map[K]string, into map[K]O) error {
	for k, name := range names {
		obj := O(new(T))
		if found, err := r.getOptional(ctx, namespace, name, obj); err != nil {
			return err
		} else if found {
			into[k] = obj
		}
	}
	return nil
}

// getOptional reads an object of the platform's namespace; a missing object is not an error.
func (r *SocialPlatformReconciler) getOptional(ctx context.Context, namespace, name string, obj client.Object) (bool, error) {
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("observing %T %s: %w", obj, name, err)
	}
	return true, nil
}

// writeStatus recomputes status from the observations of this pass and writes it when it
// changed. A converged platform writes nothing.
func (r *SocialPlatformReconciler) writeStatus(ctx context.Context, s *scope, reconcileErr error) error {
	sp := s.sp
	st := &sp.Status
	deleting := !sp.DeletionTimestamp.IsZero()
	// Children of a phase are applied concurrently: sort for stable messages.
	slices.Sort(s.changed)

	var components []metav1.Condition
	// Monitoring and the CDN origin are reported beside Ready, not in it: a platform without
	// alerting still serves its users, and a missing prometheus-operator must not make it look down.
	var reported []metav1.Condition
	if !deleting {
		database := s.databaseStatus()
		if c, ok := s.restoreStatus(); ok {
			// A restore is in Ready through DatabaseReady.
			reported = append(reported, c)
			database = whileRestoring(database, c)
			r.announceRestore(sp, meta.FindStatusCondition(st.Conditions, scalestackv1alpha1.ConditionRestoring), c)
		}
		components = append(components, database, s.cacheStatus(), s.appsStatus())
		if s.ran["kafka"] {
			components = append(components, s.kafkaStatus())
		} else if c := meta.FindStatusCondition(st.Conditions, scalestackv1alpha1.ConditionKafkaReady); c != nil {
			// A paused pass, or one stopped before the kafka phase, keeps the last Kafka status.
			components = append(components, *c)
		}
	}
	if !deleting {
		if s.ran["monitoring"] {
			reported = append(reported, monitoringCondition(s.monitoring))
		}
		if s.ran["backup"] {
			c, ok, completed := s.backupStatus(time.Now())
			if ok {
				reported = append(reported, c)
			}
			for _, a := range completed {
				n := a.newest
				r.Recorder.Eventf(sp, nil, corev1.EventTypeNormal, scalestackv1alpha1.EventBackupCompleted, "Backup",
					"shard %d: full backup %s completed on %s (%d bytes in %v)", a.shard, n.ID, n.Source, n.Size, n.FinishedAt.Sub(n.StartedAt).Round(time.Second))
			}
		}
		if s.ran["cdn"] {
			if sp.Spec.CDN.OriginHost != "" {
				reported = append(reported, cdnCondition(sp))
			} else {
				meta.RemoveStatusCondition(&st.Conditions, scalestackv1alpha1.ConditionCDNReady)
			}
		}
		if s.ran["autoscaling"] {
			if s.slo.enabled {
				reported = append(reported, sloCondition(s.slo))
			} else {
				meta.RemoveStatusCondition(&st.Conditions, scalestackv1alpha1.ConditionSLOHealthy)
			}
		}
	}
	components = withFailures(components, s.failures)
	reported = withFailures(reported, s.failures)
	wasReady := meta.IsStatusConditionTrue(st.Conditions, scalestackv1alpha1.ConditionReady)
	ready := readyCondition(components, reconcileErr, s.paused, deleting)
	progressing := progressingCondition(components, s.changed)
	degraded := degradedCondition(components, reconcileErr)
	stalled := stalledCondition(append(components, reported...), reconcileErr,
		failingSince(meta.FindStatusCondition(st.Conditions, scalestackv1alpha1.ConditionDegraded)), time.Now())
	for _, c := range append(append(components, reported...),
		ready, progressing, degraded, stalled,
		reconcilingCondition(ready, progressing, stalled, reconcileErr, s.paused, deleting),
	) {
		c.ObservedGeneration = sp.Generation
		meta.SetStatusCondition(&st.Conditions, c)
	}
	// observedGeneration says which spec this status describes: every pass that acted on the spec
	// stamps it, whether it converged (Ready), is on its way (Reconciling) or cannot (Stalled), so
	// kstatus and Argo CD read a permanent failure as one. A paused platform's spec is not acted on.
	if !s.paused {
		st.ObservedGeneration = sp.Generation
	}
	if !deleting {
		exportConditions(sp.Namespace, sp.Name, st.Conditions)
	}
	st.Endpoints.Gateway = sp.GatewayURL()
	st.Endpoints.CDNOrigin = render.CDNOriginURL(sp)
	st.Endpoints.Site = render.SiteURL(sp)

	if n := len(s.changed); n > 0 {
		reason := scalestackv1alpha1.EventUpdated
		if s.created == n {
			reason = scalestackv1alpha1.EventCreated
		}
		r.Recorder.Eventf(sp, nil, corev1.EventTypeNormal, reason, "Apply", "%s", truncate(fmt.Sprintf("%s %d objects: %s", reason, n, strings.Join(s.changed, ", ")), 1024))
	}
	if reconcileErr != nil {
		r.Recorder.Eventf(sp, nil, corev1.EventTypeWarning, scalestackv1alpha1.EventReconcileFailed, "Reconcile", "%s", truncate(reconcileErr.Error(), 1024))
	}
	if isReady := meta.IsStatusConditionTrue(st.Conditions, scalestackv1alpha1.ConditionReady); isReady != wasReady {
		reason, note := scalestackv1alpha1.EventBecameReady, "Every component is ready"
		if !isReady {
			reason, note = scalestackv1alpha1.EventBecameNotReady, meta.FindStatusCondition(st.Conditions, scalestackv1alpha1.ConditionReady).Message
		}
		r.Recorder.Eventf(sp, nil, corev1.EventTypeNormal, reason, "Reconcile", "%s", note)
	}

	if equality.Semantic.DeepEqual(s.original.Status, sp.Status) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, sp, client.MergeFrom(s.original)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("writing status: %w", err)
	}
	return nil
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
		if desired, ok := s.slo.desired[c]; ok {
			st.DesiredByAutoscaler = &desired
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
		rec := s.primaries[i]
		// After a failover the primary of record may be a pod of the replicas' StatefulSet: the
		// pods then are the old primary (now a replica) and the other replicas.
		primaryReady := p.Exists && p.Ready >= 1
		readyReplicas := r.Ready
		if rec.Pod != "" && rec.Pod != sp.ShardDefaultPrimaryPod(i) {
			primaryReady = false
			if pod := s.primaryPods[rec.Pod]; pod != nil {
				primaryReady, _ = podReady(pod)
			}
			readyReplicas = r.Ready + p.Ready
			if primaryReady {
				readyReplicas--
			}
		}
		sp.Status.Shards = append(sp.Status.Shards, scalestackv1alpha1.ShardStatus{
			Index:         i,
			LogicalShards: fmt.Sprintf("%d-%d", block.Start, block.End-1),
			PrimaryReady:  primaryReady,
			Replicas:      render.ReplicasPerShard(sp),
			ReadyReplicas: max(readyReplicas, 0),
			Primary:       rec.Pod,
			Epoch:         rec.Epoch,
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
		c.Message = databaseReadyMessage(len(sp.Status.Shards), string(render.Engine(sp)), readyReplicas,
			render.ReplicasPerShard(sp)*render.Shards(sp), unexecuted(s.primaryPodNames(), s.primaryPods, "agent"))
	}
	return failoverCondition(storageCondition(connectionBudget(c, render.Sizing(sp)), s.storage), sp.Status.Shards, s.failoverRefused)
}

// connectionBudget adds the connection budget to a Ready database tier: what each server allows
// and each app pod opens, or, when even the smallest pools of every app pod at its maxReplicas
// exceed max_connections, ConnectionBudgetExceeded with the limit that binds (the tier is still
// ready: scaling the apps up is what would fail).
func connectionBudget(c metav1.Condition, z render.DatabaseSizing) metav1.Condition {
	if c.Status != metav1.ConditionTrue {
		return c
	}
	if z.Binding != "" {
		c.Reason, c.Message = scalestackv1alpha1.ReasonConnectionBudgetExceeded, z.Binding
		return c
	}
	c.Message += fmt.Sprintf("; max_connections %d, %d per app pod for up to %d app pods", z.MaxConnections, z.PoolPerPod, z.Pods)
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

// primaryPodNames are the names of the shards' primaries of record.
func (s *scope) primaryPodNames() []string {
	names := make([]string, 0, render.Shards(s.sp))
	for i := range render.Shards(s.sp) {
		if p, ok := s.primaries[i]; ok {
			names = append(names, p.Pod)
		} else {
			names = append(names, s.sp.ShardDefaultPrimaryPod(i))
		}
	}
	return names
}

// failoverCondition overrides DatabaseReady when a shard's primary is not ready: FailoverRefused
// (with why) when the operator may not replace it, FailingOver when it was just moved and the new
// one is not ready yet. Otherwise the workloads' verdict stands.
func failoverCondition(c metav1.Condition, shards []scalestackv1alpha1.ShardStatus, refused []string) metav1.Condition {
	if len(refused) > 0 {
		return metav1.Condition{Type: c.Type, Status: metav1.ConditionFalse, Reason: scalestackv1alpha1.ReasonFailoverRefused,
			Message: truncate(strings.Join(refused, "; "), 1000)}
	}
	for _, sh := range shards {
		if !sh.PrimaryReady && sh.Epoch > 0 && c.Status != metav1.ConditionTrue {
			return metav1.Condition{Type: c.Type, Status: metav1.ConditionFalse, Reason: scalestackv1alpha1.ReasonFailingOver,
				Message: fmt.Sprintf("shard %d: the primary moved to %s (epoch %d), which is not ready yet", sh.Index, sh.Primary, sh.Epoch)}
		}
	}
	return c
}

// cacheStatus returns the CacheReady condition.
func (s *scope) cacheStatus() metav1.Condition {
	name := s.sp.CacheName()
	c := workloadsCondition(scalestackv1alpha1.ConditionCacheReady, []workloadObservation{observeStatefulSet(name, s.statefulSets[name])})
	if c.Status == metav1.ConditionTrue {
		policy := render.CacheEvictionPolicy(s.sp)
		c.Message = fmt.Sprintf("Redis is up holding %s (evicts %s, no persistence)", s.sp.Spec.Cache.Size.String(), policy)
	}
	return c
}

// The functions in this file compute conditions from observations. They read no clock and no
// client, so each has a table test; the reconciler stamps observedGeneration and transition
// times when it sets them.

// workloadObservation is what status needs to know about one Deployment or StatefulSet.
type workloadObservation struct {
	Name string
	// Exists is false when the workload has not been created (or was deleted).
	Exists bool
	// Current is true when the workload's controller has seen its latest spec.
	Current bool
	// Desired, Updated and Ready count replicas.
	Desired, Updated, Ready int32
	// Stalled is true when the workload's controller gave up progressing (deadline exceeded).
	Stalled bool
}

// observeDeployment turns a Deployment into a workloadObservation; nil means not found.
func observeDeployment(name string, d *appsv1.Deployment) workloadObservation {
	if d == nil {
		return workloadObservation{Name: name}
	}
	o := observed(name, d.Generation, d.Status.ObservedGeneration, d.Spec.Replicas, d.Status.UpdatedReplicas, d.Status.ReadyReplicas)
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			o.Stalled = true
		}
	}
	return o
}

// observeStatefulSet turns a StatefulSet into a workloadObservation; nil means not found.
func observeStatefulSet(name string, sts *appsv1.StatefulSet) workloadObservation {
	if sts == nil {
		return workloadObservation{Name: name}
	}
	return observed(name, sts.Generation, sts.Status.ObservedGeneration, sts.Spec.Replicas, sts.Status.UpdatedReplicas, sts.Status.ReadyReplicas)
}

// observed is a workload that exists; replicas nil means the API server's default of 1.
func observed(name string, generation, observedGeneration int64, replicas *int32, updated, ready int32) workloadObservation {
	return workloadObservation{
		Name: name, Exists: true, Current: observedGeneration >= generation,
		Desired: ptr.Deref(replicas, 1), Updated: updated, Ready: ready,
	}
}

// rolledOut says the workload runs its current spec with every replica updated and ready.
func (o workloadObservation) rolledOut() bool {
	return o.Exists && o.Current && o.Updated >= o.Desired && o.Ready >= o.Desired
}

// workloadsCondition computes a component's readiness condition (e.g. AppsReady) from its
// workloads. Missing workloads make it Creating, stalled or fully unavailable ones Unavailable,
// anything else short of rolled out RollingOut.
func workloadsCondition(condType string, ws []workloadObservation) metav1.Condition {
	var missing, stalled, down, rolling []string
	for _, w := range ws {
		switch {
		case !w.Exists:
			missing = append(missing, w.Name)
		case w.Stalled:
			stalled = append(stalled, w.Name)
		case w.Desired > 0 && w.Ready == 0 && w.Current && w.Updated >= w.Desired:
			down = append(down, w.Name)
		case !w.rolledOut():
			rolling = append(rolling, fmt.Sprintf("%s (%d/%d ready)", w.Name, w.Ready, w.Desired))
		}
	}
	c := metav1.Condition{Type: condType, Status: metav1.ConditionFalse}
	switch {
	case len(stalled) > 0:
		c.Reason = scalestackv1alpha1.ReasonProgressDeadlineExceeded
		c.Message = "Rollout stalled (progress deadline exceeded): " + strings.Join(stalled, ", ")
	case len(down) > 0:
		c.Reason = scalestackv1alpha1.ReasonUnavailable
		c.Message = "No ready replica: " + strings.Join(down, ", ")
	case len(missing) > 0:
		c.Reason = scalestackv1alpha1.ReasonCreating
		c.Message = "Not created yet: " + strings.Join(missing, ", ")
	case len(rolling) > 0:
		c.Reason = scalestackv1alpha1.ReasonRollingOut
		c.Message = "Rolling out: " + strings.Join(rolling, ", ")
	default:
		c.Status = metav1.ConditionTrue
		c.Reason = scalestackv1alpha1.ReasonAvailable
		c.Message = fmt.Sprintf("All %d workloads available", len(ws))
	}
	return c
}

// readyCondition summarises the component conditions. A failed reconcile, a pause or a
// deletion make the platform not Ready whatever its components say, because the operator is not
// keeping it converged.
func readyCondition(components []metav1.Condition, reconcileErr error, paused, deleting bool) metav1.Condition {
	c := metav1.Condition{Type: scalestackv1alpha1.ConditionReady, Status: metav1.ConditionFalse}
	var notReady []string
	for _, cc := range components {
		if cc.Status != metav1.ConditionTrue {
			notReady = append(notReady, fmt.Sprintf("%s (%s)", cc.Type, cc.Reason))
		}
	}
	switch {
	case deleting:
		c.Reason = scalestackv1alpha1.ReasonDeleting
		c.Message = "The platform is being torn down"
	case paused:
		c.Status = metav1.ConditionUnknown
		c.Reason = scalestackv1alpha1.ReasonPaused
		c.Message = "spec.paused is true: the operator changes nothing until it is false"
	case reconcileErr != nil:
		c.Reason = failureReason(reconcileErr)
		c.Message = truncate(reconcileErr.Error(), 1024)
	case len(notReady) > 0:
		c.Reason = scalestackv1alpha1.ReasonComponentsNotReady
		c.Message = "Not ready: " + strings.Join(notReady, ", ")
	default:
		c.Status = metav1.ConditionTrue
		c.Reason = scalestackv1alpha1.ReasonReconciled
		c.Message = "Every component is ready"
	}
	return c
}

// progressingCondition is True while the operator created or changed children in this pass, or
// a component is still creating or rolling out.
func progressingCondition(components []metav1.Condition, changed []string) metav1.Condition {
	c := metav1.Condition{Type: scalestackv1alpha1.ConditionProgressing, Status: metav1.ConditionFalse,
		Reason: scalestackv1alpha1.ReasonStable, Message: "No change in progress"}
	var moving []string
	for _, cc := range components {
		if cc.Reason == scalestackv1alpha1.ReasonCreating || cc.Reason == scalestackv1alpha1.ReasonRollingOut {
			moving = append(moving, cc.Type)
		}
	}
	switch {
	case len(changed) > 0:
		c.Status = metav1.ConditionTrue
		c.Reason = scalestackv1alpha1.ReasonRollingOut
		c.Message = truncate(fmt.Sprintf("Applied %d changed objects: %s", len(changed), strings.Join(changed, ", ")), 1024)
	case len(moving) > 0:
		c.Status = metav1.ConditionTrue
		c.Reason = scalestackv1alpha1.ReasonRollingOut
		c.Message = "Converging: " + strings.Join(moving, ", ")
	}
	return c
}

// degradedCondition is True when the reconcile failed or a component is Unavailable: something
// needs a person's attention, as opposed to merely being on its way.
func degradedCondition(components []metav1.Condition, reconcileErr error) metav1.Condition {
	c := metav1.Condition{Type: scalestackv1alpha1.ConditionDegraded, Status: metav1.ConditionFalse,
		Reason: scalestackv1alpha1.ReasonAsExpected, Message: "Nothing is degraded"}
	var bad []string
	for _, cc := range components {
		if cc.Status == metav1.ConditionFalse && (cc.Reason == scalestackv1alpha1.ReasonUnavailable || cc.Reason == scalestackv1alpha1.ReasonProgressDeadlineExceeded) {
			bad = append(bad, cc.Type+": "+cc.Message)
		}
	}
	switch {
	case reconcileErr != nil:
		c.Status = metav1.ConditionTrue
		c.Reason = failureReason(reconcileErr)
		c.Message = truncate(reconcileErr.Error(), 1024)
	case len(bad) > 0:
		c.Status = metav1.ConditionTrue
		c.Reason = scalestackv1alpha1.ReasonUnavailable
		c.Message = truncate(strings.Join(bad, "; "), 1024)
	}
	return c
}

// failureReason is the reason a failed pass gives Ready and Degraded: InvalidSpec when the
// preflight refused the spec (nothing of it was written), ReconcileFailed otherwise.
func failureReason(err error) string {
	if isInvalidSpec(err) {
		return scalestackv1alpha1.ReasonInvalidSpec
	}
	return scalestackv1alpha1.ReasonReconcileFailed
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// kafkaCondition computes KafkaReady.
func kafkaCondition(o kafkaObservation) metav1.Condition {
	c := metav1.Condition{Type: scalestackv1alpha1.ConditionKafkaReady, Status: metav1.ConditionFalse}
	notReady := 0
	for _, t := range o.topics {
		if !t.Ready {
			notReady++
		}
	}
	switch {
	case o.strimziMissing:
		c.Reason = scalestackv1alpha1.ReasonStrimziNotInstalled
		c.Message = "spec.kafka.mode is Strimzi but the cluster does not serve kafka.strimzi.io: install Strimzi, or use mode External"
	case o.unreachable != nil:
		c.Reason = scalestackv1alpha1.ReasonKafkaUnreachable
		c.Message = truncate("The Kafka admin API did not answer: "+o.unreachable.Error(), 1024)
	case o.mode != scalestackv1alpha1.KafkaModeExternal && !o.clusterReady:
		c.Reason = scalestackv1alpha1.ReasonClusterNotReady
		c.Message = truncate("Strimzi reports the Kafka cluster not ready: "+o.clusterMessage, 1024)
	case notReady > 0:
		c.Reason = scalestackv1alpha1.ReasonTopicsNotReady
		c.Message = truncate(fmt.Sprintf("%d of %d topics not ready: %s", notReady, len(o.topics), strings.Join(o.topicMessages, "; ")), 1024)
	default:
		c.Status = metav1.ConditionTrue
		c.Reason = scalestackv1alpha1.ReasonAvailable
		how := "Strimzi reports the cluster ready"
		if o.mode == scalestackv1alpha1.KafkaModeExternal {
			how = "the External cluster answers"
		}
		c.Message = fmt.Sprintf("%s; all %d topics exist with their declared partitions (bootstrap %s)", how, len(o.topics), o.bootstrap)
	}
	return c
}

// sloCondition computes SLOHealthy.
func sloCondition(o sloObservation) metav1.Condition {
	c := metav1.Condition{Type: scalestackv1alpha1.ConditionSLOHealthy, Status: metav1.ConditionTrue, Reason: "WithinBudget",
		Message: "No service burns its error budget faster than the window allows"}
	switch {
	case o.metricsErr != nil:
		c.Status, c.Reason = metav1.ConditionUnknown, autoscale.ReasonMetricsUnavailable
		c.Message = truncate("Holding replicas: "+o.metricsErr.Error(), 1024)
	case o.bottleneck != "" && len(o.fast) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, autoscale.ReasonBottleneck
		c.Message = fmt.Sprintf("Fast burn on %s, caused by a saturated %s: not scaling the services", strings.Join(o.fast, ", "), o.bottleneck)
	case len(o.fast) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, autoscale.ReasonFastBurn
		c.Message = "Fast error-budget burn on " + strings.Join(o.fast, ", ")
	case len(o.slow) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, autoscale.ReasonSlowBurn
		c.Message = "Slow error-budget burn on " + strings.Join(o.slow, ", ")
	}
	return c
}

// withFailures replaces the conditions of components whose phase failed on this pass: the
// component is not converged to the spec, whatever its workloads say, and the message says why.
func withFailures(conds []metav1.Condition, failures map[string]error) []metav1.Condition {
	out := make([]metav1.Condition, 0, len(conds))
	for _, c := range conds {
		if err := failures[c.Type]; err != nil {
			c = metav1.Condition{Type: c.Type, Status: metav1.ConditionFalse, Reason: scalestackv1alpha1.ReasonApplyFailed,
				Message: truncate(err.Error(), 1024)}
		}
		out = append(out, c)
	}
	return out
}

// cdnCondition computes CDNReady once the origin Ingress is applied.
func cdnCondition(sp *scalestackv1alpha1.SocialPlatform) metav1.Condition {
	return metav1.Condition{Type: scalestackv1alpha1.ConditionCDNReady, Status: metav1.ConditionTrue, Reason: scalestackv1alpha1.ReasonAvailable,
		Message: fmt.Sprintf("Ingress %s routes %s to the gateway's content-hashed assets", sp.CDNOriginName(), render.CDNOriginURL(sp))}
}

// monitoringCondition computes MonitoringReady.
func monitoringCondition(o monitoringObservation) metav1.Condition {
	c := metav1.Condition{Type: scalestackv1alpha1.ConditionMonitoringReady, Status: metav1.ConditionTrue, Reason: scalestackv1alpha1.ReasonAvailable,
		Message: fmt.Sprintf("PrometheusRule with %d rules and %d ServiceMonitors applied", o.rules, o.monitors)}
	if o.missing {
		c.Status = metav1.ConditionFalse
		c.Reason = scalestackv1alpha1.ReasonPrometheusOperatorNotInstalled
		c.Message = "The cluster does not serve monitoring.coreos.com (prometheus-operator): no rules, alerts or scrape configs; the platform itself is unaffected"
	}
	return c
}
