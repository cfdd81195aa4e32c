package controllers

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/pkg/shard"
)

// reconcileSecrets makes sure the database credentials exist. Passwords are generated once with
// crypto/rand and never regenerated: a Secret left behind by a deleted platform (deletionPolicy
// Retain) is adopted with its passwords, so the retained volumes stay usable. Values never reach
// logs, events or status.
func (r *SocialPlatformReconciler) reconcileSecrets(ctx context.Context, s *scope) error {
	sp := s.sp
	live := &corev1.Secret{}
	passwords := map[string][]byte{}
	switch err := r.Client.Get(ctx, client.ObjectKey{Namespace: sp.Namespace, Name: sp.DatabaseSecretName()}, live); {
	case err == nil:
		for k, v := range live.Data {
			passwords[k] = v
		}
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("getting database secret: %w", err)
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
	desired := render.DatabaseSecret(sp, passwords)
	res, err := apply(ctx, r.Client, desired, &corev1.Secret{}, corev1ac.ExtractSecret)
	if err != nil {
		return err
	}
	s.record("Secret", *desired.Name, res)
	return nil
}

// reconcileNetwork converges the NetworkPolicies: deny all ingress to the platform's pods, then
// allow the paths the stack uses.
func (r *SocialPlatformReconciler) reconcileNetwork(ctx context.Context, s *scope) error {
	for _, np := range render.NetworkPolicies(s.sp) {
		if err := applyRecord(ctx, r.Client, s, "NetworkPolicy", np, &networkingv1.NetworkPolicy{}, networkingv1ac.ExtractNetworkPolicy); err != nil {
			return err
		}
	}
	return nil
}

// reconcileDatabase converges the shards: the server config, the shard map, and per physical
// shard a headless Service, the -primary and -replicas Services and two StatefulSets. Shards only
// grow (the API refuses a decrease), and a new shard starts with an empty block of logical shards,
// so growing moves no data.
func (r *SocialPlatformReconciler) reconcileDatabase(ctx context.Context, s *scope) error {
	sp := s.sp
	cfg := render.DatabaseConfig(sp)
	if err := applyRecord(ctx, r.Client, s, "ConfigMap", cfg, &corev1.ConfigMap{}, corev1ac.ExtractConfigMap); err != nil {
		return err
	}
	hash := render.HashData(cfg.Data)

	if err := r.reconcileShardMap(ctx, s); err != nil {
		return err
	}
	in := render.ShardInputs{AgentImage: appsImage(sp, r.DefaultAppsImage), ConfigHash: hash}
	// Shards are independent: converge them concurrently.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(applyConcurrency)
	for i := range render.Shards(sp) {
		g.Go(func() error {
			for _, svc := range []*corev1ac.ServiceApplyConfiguration{
				render.ShardHeadlessService(sp, i),
				render.ShardService(sp, i, "primary"),
				render.ShardService(sp, i, "replica"),
			} {
				if err := applyRecord(gctx, r.Client, s, "Service", svc, &corev1.Service{}, corev1ac.ExtractService); err != nil {
					return err
				}
			}
			for _, role := range []string{"primary", "replica"} {
				sts := render.ShardStatefulSet(sp, i, role, in)
				if err := applyRecord(gctx, r.Client, s, "StatefulSet", sts, &appsv1.StatefulSet{}, appsv1ac.ExtractStatefulSet); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// reconcileShardMap publishes the shard map, bumping its version only when its content changes.
func (r *SocialPlatformReconciler) reconcileShardMap(ctx context.Context, s *scope) error {
	sp := s.sp
	desired, err := render.ShardMap(sp)
	if err != nil {
		return err
	}
	var observed *shard.Map
	live := &corev1.ConfigMap{}
	switch err := r.Client.Get(ctx, client.ObjectKey{Namespace: sp.Namespace, Name: sp.ShardMapName()}, live); {
	case err == nil:
		// A map that does not parse (edited by hand) is replaced; its version still counts.
		observed, _ = shard.Parse([]byte(live.Data[render.ShardMapKey]))
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("getting shard map: %w", err)
	}
	m := shard.Reconcile(observed, desired)
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding shard map: %w", err)
	}
	return applyRecord(ctx, r.Client, s, "ConfigMap", render.ShardMapConfigMap(sp, string(raw)), &corev1.ConfigMap{}, corev1ac.ExtractConfigMap)
}

// reconcileCache converges Redis: redis.conf (its hash rolls the pod), the Service, the StatefulSet.
func (r *SocialPlatformReconciler) reconcileCache(ctx context.Context, s *scope) error {
	sp := s.sp
	cfg := render.CacheConfig(sp)
	if err := applyRecord(ctx, r.Client, s, "ConfigMap", cfg, &corev1.ConfigMap{}, corev1ac.ExtractConfigMap); err != nil {
		return err
	}
	if err := applyRecord(ctx, r.Client, s, "Service", render.CacheService(sp), &corev1.Service{}, corev1ac.ExtractService); err != nil {
		return err
	}
	return applyRecord(ctx, r.Client, s, "StatefulSet", render.CacheStatefulSet(sp, render.HashData(cfg.Data)), &appsv1.StatefulSet{}, appsv1ac.ExtractStatefulSet)
}

// reconcileCDN converges the origin Ingress, or deletes it when originHost was removed.
func (r *SocialPlatformReconciler) reconcileCDN(ctx context.Context, s *scope) error {
	sp := s.sp
	ing := render.CDNOriginIngress(sp)
	if ing == nil {
		return r.deleteOwned(ctx, s, &networkingv1.Ingress{}, sp.CDNOriginName())
	}
	return applyRecord(ctx, r.Client, s, "Ingress", ing, &networkingv1.Ingress{}, networkingv1ac.ExtractIngress)
}

// reconcileArchive converges the archiver CronJob, or deletes it when archive was removed.
func (r *SocialPlatformReconciler) reconcileArchive(ctx context.Context, s *scope) error {
	sp := s.sp
	cj := render.ArchiverCronJob(sp, render.AppInputs{DefaultImage: r.DefaultAppsImage})
	if cj == nil {
		return r.deleteOwned(ctx, s, &batchv1.CronJob{}, sp.ArchiverName())
	}
	return applyRecord(ctx, r.Client, s, "CronJob", cj, &batchv1.CronJob{}, batchv1ac.ExtractCronJob)
}

// deleteOwned deletes a child the spec no longer asks for, if the platform controls it.
func (r *SocialPlatformReconciler) deleteOwned(ctx context.Context, s *scope, obj client.Object, name string) error {
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.sp.Namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("getting %T %s: %w", obj, name, err)
	}
	if !metav1IsControlledBy(obj, s.sp) {
		return nil
	}
	if err := r.Client.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting %T %s: %w", obj, name, err)
	}
	s.note(fmt.Sprintf("%T/%s (deleted)", obj, name))
	return nil
}

// applyRecord applies one child and records what changed.
func applyRecord[AC applyConfiguration, O client.Object](ctx context.Context, c client.Client, s *scope, kind string, desired AC, live O,
	extract func(O, string) (AC, error),
) error {
	res, err := apply(ctx, c, desired, live, extract)
	if err != nil {
		return err
	}
	s.record(kind, deref(desired.GetName()), res)
	return nil
}

func appsImage(sp *scalestackv1alpha1.SocialPlatform, def string) string {
	if sp.Spec.Apps.Image != "" {
		return sp.Spec.Apps.Image
	}
	return def
}
