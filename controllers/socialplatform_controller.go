// Package controllers holds the SocialPlatform reconciler. Desired objects come from the pure
// functions of controllers/render; this package decides when to apply them, observes the result
// and reports it.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/promquery"
	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/pkg/platform"
)

// SocialPlatformReconciler converges a SocialPlatform's children and reports its status.
type SocialPlatformReconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder
	// DefaultAppsImage is the apps image of platforms that do not set spec.apps.image.
	DefaultAppsImage string
	// MaxConcurrentReconciles is how many platforms are reconciled at once.
	MaxConcurrentReconciles int
	// AgentURL reaches a database pod's agent (default: its pod IP on the agent port). The
	// operator calls the agents only to move a shard's primary.
	AgentURL AgentURLFunc

	admins adminClients
	prom   promquery.Clients
	// readySince remembers when each shard primary's pod became ready (failover.go).
	readySince sync.Map
	// preflighted remembers, by platform UID, the last generation whose children passed the
	// preflight's dry-run (preflight.go).
	preflighted sync.Map
}

// +kubebuilder:rbac:groups=scalestack.dev,resources=socialplatforms,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=scalestack.dev,resources=socialplatforms/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=scalestack.dev,resources=socialplatforms/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services;serviceaccounts;configmaps,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apps,resources=deployments/scale,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups=storage.k8s.io,resources=storageclasses,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses;networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=batch,resources=cronjobs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=kafka.strimzi.io,resources=kafkas;kafkanodepools;kafkatopics,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=prometheusrules;servicemonitors,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile converges one platform. A conflict (someone wrote the object since our cache saw it)
// is not an error worth a log line: the pass is retried with the newer object.
func (r *SocialPlatformReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcile(ctx, req)
	if apierrors.IsConflict(err) {
		ctrl.LoggerFrom(ctx).V(1).Info("Conflict; retrying with the newer object", "error", err.Error())
		return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	return res, err
}

// reconcile is the table of contents: fetch, teardown or finalizer, pause, phases, status.
func (r *SocialPlatformReconciler) reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	sp := &scalestackv1alpha1.SocialPlatform{}
	if err := r.Client.Get(ctx, req.NamespacedName, sp); err != nil {
		if apierrors.IsNotFound(err) {
			forgetConditions(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	s := newScope(sp)
	defer func() {
		if s.gone || s.stale {
			return
		}
		// Status comes from the world as observed on this pass, whether the phases succeeded,
		// failed half-way or were skipped (paused): never from empty observations.
		if sp.DeletionTimestamp.IsZero() {
			if err := r.observe(ctx, s); err != nil {
				retErr = errors.Join(retErr, err)
			}
		}
		if err := r.writeStatus(ctx, s, retErr); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()

	if !sp.DeletionTimestamp.IsZero() {
		return r.teardown(ctx, s)
	}
	if err := r.ensureFinalizer(ctx, sp); err != nil {
		// A conflict means the object changed since the cache saw it: the retry, with the newer
		// object, writes the status. Nothing failed.
		s.stale = apierrors.IsConflict(err)
		return ctrl.Result{}, err
	}
	if sp.Spec.Paused {
		s.paused = true
		return ctrl.Result{}, nil
	}
	if err := r.resolveTopicPrefix(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	// Nothing of a new spec is written before the API server accepted all of it (preflight.go).
	refused, stop := r.admitSpec(ctx, s)
	if stop {
		return ctrl.Result{}, refused
	}
	if err := r.runPhases(ctx, s); err != nil || refused != nil {
		return ctrl.Result{}, errors.Join(refused, err)
	}
	s.reconciled = true
	return s.result, nil
}

// runPhases runs the phases in order. A failing phase is reported on its own condition; only a
// blocking one stops the pass. The error joins every phase's failure.
func (r *SocialPlatformReconciler) runPhases(ctx context.Context, s *scope) error {
	log := ctrl.LoggerFrom(ctx)
	var errs []error
	for _, p := range r.phases() {
		start := time.Now()
		s.ran[p.name] = true
		if err := p.run(ctx, s); err != nil {
			err = fmt.Errorf("%s: %w", p.name, err)
			errs = append(errs, err)
			s.fail(p.condition, err)
			if p.blocking {
				break
			}
			continue
		}
		log.V(2).Info("Phase done", "phase", p.name, "duration", time.Since(start).String())
	}
	return errors.Join(errs...)
}

// ensureFinalizer adds the teardown finalizer, so deletion runs in order (apps first, data last).
func (r *SocialPlatformReconciler) ensureFinalizer(ctx context.Context, sp *scalestackv1alpha1.SocialPlatform) error {
	if controllerutil.ContainsFinalizer(sp, scalestackv1alpha1.Finalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(sp.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.AddFinalizer(sp, scalestackv1alpha1.Finalizer)
	if err := r.Client.Patch(ctx, sp, patch); err != nil {
		return fmt.Errorf("adding finalizer: %w", err)
	}
	return nil
}

// SetupWithManager registers the reconciler and its watches.
func (r *SocialPlatformReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr)
	// Strimzi's kinds are watched when Strimzi is installed at start; otherwise the kafka phase
	// looks for it again every minute.
	if version, err := r.strimziVersion(); err == nil && version != "" {
		for _, kind := range []string{"Kafka", "KafkaNodePool", "KafkaTopic"} {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(schema.GroupVersionKind{Group: render.StrimziGroup, Version: version, Kind: kind})
			b = b.Owns(u)
		}
	}
	if ok, err := r.monitoringInstalled(); err == nil && ok {
		for _, kind := range []string{"PrometheusRule", "ServiceMonitor"} {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(schema.GroupVersionKind{Group: render.MonitoringGroup, Version: "v1", Kind: kind})
			b = b.Owns(u)
		}
	}
	return b.
		For(&scalestackv1alpha1.SocialPlatform{}, builder.WithPredicates(specOrDeletionChanged())).
		// Children wake their platform through their controller owner reference; their status
		// changes (a pod becoming ready) are what status reports, so every change counts.
		Owns(&appsv1.Deployment{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Secret{}).
		Owns(&networkingv1.Ingress{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&batchv1.CronJob{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		// Database pods wake their platform when their readiness or a switchover request changes:
		// failover counts from the moment a primary's pod stops being ready.
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(databasePodPlatform), builder.WithPredicates(databasePodChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1)}).
		Named("socialplatform").
		Complete(r)
}

// databasePodPlatform maps a database pod to its platform (the instance label).
func databasePodPlatform(_ context.Context, o client.Object) []reconcile.Request {
	l := o.GetLabels()
	if l[scalestackv1alpha1.LabelComponent] != "database" || l[scalestackv1alpha1.LabelInstance] == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: l[scalestackv1alpha1.LabelInstance]}}}
}

// databasePodChanged passes a database pod's creation, deletion, and changes of its readiness or
// of the switchover request.
func databasePodChanged() predicate.Predicate {
	ready := func(o client.Object) bool {
		p, ok := o.(*corev1.Pod)
		if !ok {
			return false
		}
		r, _ := podReady(p)
		return r
	}
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			_, before := e.ObjectOld.GetAnnotations()[scalestackv1alpha1.AnnotationSwitchover]
			_, after := e.ObjectNew.GetAnnotations()[scalestackv1alpha1.AnnotationSwitchover]
			return ready(e.ObjectOld) != ready(e.ObjectNew) || before != after ||
				bootstrapState(e.ObjectOld) != bootstrapState(e.ObjectNew)
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// bootstrapState sums up a database pod's bootstrap init container, whose progress and end are a
// restore's (restore.go): its state, exit code and restarts.
func bootstrapState(o client.Object) string {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return ""
	}
	for _, st := range p.Status.InitContainerStatuses {
		if st.Name != bootstrapContainer {
			continue
		}
		switch {
		case st.State.Running != nil:
			return fmt.Sprintf("running %d", st.RestartCount)
		case st.State.Terminated != nil:
			return fmt.Sprintf("terminated %d %d", st.State.Terminated.ExitCode, st.RestartCount)
		case st.State.Waiting != nil:
			return fmt.Sprintf("waiting %s %d", st.State.Waiting.Reason, st.RestartCount)
		}
	}
	return ""
}

// specOrDeletionChanged ignores the platform's own status writes (they would wake a reconcile for
// nothing) but passes spec changes, deletion, and label or annotation changes.
func specOrDeletionChanged() predicate.Predicate {
	return predicate.Or(
		predicate.GenerationChangedPredicate{},
		predicate.LabelChangedPredicate{},
		predicate.AnnotationChangedPredicate{},
		predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero() ||
				len(e.ObjectOld.GetFinalizers()) != len(e.ObjectNew.GetFinalizers())
		}},
	)
}

// requeueTeardown is how soon a teardown that waits for children to go looks again, in case a
// delete event is missed.
const requeueTeardown = 2 * time.Second

var _ = klog.KObj

// resolveTopicPrefix settles the platform's topic prefix for this pass when the manifest leaves it
// out: a platform whose apps configuration exists without a prefix predates prefixes and keeps its
// unprefixed topics (moving them would abandon the events in flight); a configuration that has
// one keeps it; a new platform gets "<namespace>.<name>.". Only the pass's copy of the spec
// changes (render reads it); the operator never writes the spec.
func (r *SocialPlatformReconciler) resolveTopicPrefix(ctx context.Context, s *scope) error {
	if s.sp.Spec.Kafka.TopicPrefix != nil {
		return nil
	}
	cm := &corev1.ConfigMap{}
	found, err := r.getOptional(ctx, s.sp.Namespace, s.sp.AppsConfigName(), cm)
	if err != nil {
		return err
	}
	prefix := render.DefaultTopicPrefix(s.sp)
	if found {
		prefix = cm.Data[platform.EnvKafkaTopicPrefix] // absent: "" (a platform from before prefixes)
	}
	s.sp.Spec.Kafka.TopicPrefix = &prefix
	return nil
}
