package controllers

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/pkg/shard"
)

// phase is one ordered step of a reconcile. A phase returns an error only for what a retry may
// fix; what is merely not ready yet is recorded in the scope and reported by status.
type phase struct {
	name string
	// condition is where a failure of the phase is reported ("" for Ready and Degraded only).
	condition string
	// blocking phases stop the pass when they fail: what comes after depends on them. A failure
	// of any other phase is reported on its condition and the later phases still run.
	blocking bool
	run      func(context.Context, *scope) error
}

// phases lists the reconcile in its order. Only the credentials and the network policies block
// the pass: nothing may run without its Secret, and no pod may start before the policies that
// isolate it. A rejected Ingress or an unreachable Kafka never keeps the apps from being updated.
func (r *SocialPlatformReconciler) phases() []phase {
	return []phase{
		{"secrets", scalestackv1alpha1.ConditionDatabaseReady, true, r.reconcileSecrets},
		{"network", "", true, r.applyRendered(render.NetworkTier)},
		{"database", scalestackv1alpha1.ConditionDatabaseReady, false, r.reconcileDatabase},
		{"backup", scalestackv1alpha1.ConditionBackupReady, false, r.reconcileBackup},
		{"cache", scalestackv1alpha1.ConditionCacheReady, false, r.applyRendered(render.CacheTier)},
		{"kafka", scalestackv1alpha1.ConditionKafkaReady, false, r.reconcileKafka},
		{"apps", scalestackv1alpha1.ConditionAppsReady, false, r.reconcileApps},
		{"monitoring", scalestackv1alpha1.ConditionMonitoringReady, false, r.reconcileMonitoring},
		{"archive", scalestackv1alpha1.ConditionAppsReady, false, r.applyRendered(func(sp *scalestackv1alpha1.SocialPlatform) render.Tier {
			return render.ArchiveTier(sp, r.DefaultAppsImage)
		})},
		{"cdn", scalestackv1alpha1.ConditionCDNReady, false, r.applyRendered(render.EdgeTier)},
		{"autoscaling", scalestackv1alpha1.ConditionSLOHealthy, false, r.reconcileAutoscaling},
	}
}

// reconcileSecrets makes sure the database credentials exist. Passwords are generated once with
// crypto/rand and never regenerated: a Secret left behind by a deleted platform (deletionPolicy
// Retain) is adopted with its passwords, so the retained volumes stay usable. Values never reach
// logs, events or status.
func (r *SocialPlatformReconciler) reconcileSecrets(ctx context.Context, s *scope) error {
	sp := s.sp
	live := &corev1.Secret{}
	if _, err := r.getOptional(ctx, sp.Namespace, sp.DatabaseSecretName(), live); err != nil {
		return err
	}
	passwords := maps.Clone(live.Data)
	if passwords == nil {
		passwords = map[string][]byte{}
	}
	for _, k := range render.SecretKeys {
		if len(passwords[k]) == 0 {
			passwords[k] = []byte(rand.Text())
			if k == render.SecretKeyToken {
				// 52 base32 characters (260 bits): an HMAC key longer than its 256-bit hash.
				passwords[k] = []byte(rand.Text() + rand.Text())
			}
		}
	}
	_, err := r.applyTier(ctx, s, render.SecretsTier(sp, passwords))
	return err
}

// reconcileDatabase converges the shards, with the shard map's version bumped only when its
// content changes, and moves a shard's primary when it is gone or a switchover is asked for
// (failover.go).
func (r *SocialPlatformReconciler) reconcileDatabase(ctx context.Context, s *scope) error {
	sp := s.sp
	in := render.DataInputs{AgentImage: appsImage(sp, r.DefaultAppsImage)}
	var err error
	if in.ShardMap, err = r.observedShardMap(ctx, sp); err != nil {
		return err
	}
	var recovered map[int32]render.Primary
	if in.ShardMap == nil {
		// No shard map: a new platform, or one created again over retained claims (recovery.go).
		if recovered, err = r.recoveredPrimaries(ctx, sp); err != nil {
			return err
		}
	}
	moves, err := r.decidePrimaries(ctx, s, in.ShardMap, recovered)
	if err != nil {
		return err
	}
	if len(moves) > 0 || len(recovered) > 0 {
		in.Primaries = maps.Clone(recovered)
		if in.Primaries == nil {
			in.Primaries = map[int32]render.Primary{}
		}
		for _, m := range moves {
			in.Primaries[m.shard] = render.Primary{Pod: m.to, Epoch: m.epoch}
			s.primaries[m.shard] = in.Primaries[m.shard]
		}
	}
	in.Serving = s.serving
	in.KeepReplicas = s.keepReplicas
	if in.ClaimSizes, in.Replacing, err = r.growStorage(ctx, s); err != nil {
		return err
	}
	tier, err := render.DataTier(sp, in)
	if err != nil {
		return err
	}
	if _, err = r.applyTier(ctx, s, tier); err != nil {
		return err
	}
	// Recorded in the shard map and the -primary Services: now the agents are told.
	r.announce(ctx, s, moves)
	return r.recordPrimaryClaims(ctx, s)
}

// observedShardMap reads the published shard map: nil when it is missing, or when it does not
// parse (edited by hand: the data tier replaces it; its version still counts).
func (r *SocialPlatformReconciler) observedShardMap(ctx context.Context, sp *scalestackv1alpha1.SocialPlatform) (*shard.Map, error) {
	live := &corev1.ConfigMap{}
	found, err := r.getOptional(ctx, sp.Namespace, sp.ShardMapName(), live)
	if err != nil || !found {
		return nil, err
	}
	m, _ := shard.Parse([]byte(live.Data[render.ShardMapKey]))
	return m, nil
}

// reconcileMonitoring applies the dashboards and, with prometheus-operator installed, the rules
// and scrape configs. Without prometheus-operator it says so in MonitoringReady and the rest of
// the platform is unaffected.
func (r *SocialPlatformReconciler) reconcileMonitoring(ctx context.Context, s *scope) error {
	sp := s.sp
	s.monitoring = monitoringObservation{}
	installed, err := r.monitoringInstalled()
	if err != nil {
		return err
	}
	tier, err := render.MonitoringTier(sp, installed)
	if err != nil {
		return err
	}
	if _, err := r.applyTier(ctx, s, tier); err != nil {
		return err
	}
	if !installed {
		s.monitoring.missing = true
		s.requeueAfter(requeueMissingKinds)
		return nil
	}
	for _, o := range tier.Objects() {
		if u, ok := o.(interface{ GetKind() string }); ok && u.GetKind() == "ServiceMonitor" {
			s.monitoring.monitors++
		}
	}
	for _, g := range render.SLORuleGroups(sp) {
		s.monitoring.rules += len(g.Rules)
	}
	return nil
}

// monitoringInstalled reports whether the cluster serves prometheus-operator's PrometheusRule and
// ServiceMonitor. The REST mapper re-discovers on a miss, so an operator installed later is found.
func (r *SocialPlatformReconciler) monitoringInstalled() (bool, error) {
	for _, kind := range []string{"PrometheusRule", "ServiceMonitor"} {
		_, err := r.Client.RESTMapper().RESTMapping(schema.GroupKind{Group: render.MonitoringGroup, Kind: kind}, "v1")
		if meta.IsNoMatchError(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("discovering prometheus-operator: %w", err)
		}
	}
	return true, nil
}

// applyRendered is a phase that applies the tier render makes from the platform alone (the
// network policies, the cache, the archiver, the CDN origin), and observes nothing more.
func (r *SocialPlatformReconciler) applyRendered(tier func(*scalestackv1alpha1.SocialPlatform) render.Tier) func(context.Context, *scope) error {
	return func(ctx context.Context, s *scope) error {
		_, err := r.applyTier(ctx, s, tier(s.sp))
		return err
	}
}

func appsImage(sp *scalestackv1alpha1.SocialPlatform, def string) string {
	if sp.Spec.Apps.Image != "" {
		return sp.Spec.Apps.Image
	}
	return def
}
