package controllers

import (
	"context"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	"github.com/scalestack/scalestack/controllers/render"
)

// applyConcurrency bounds the applies one reconcile sends at once.
const applyConcurrency = 5

// reconcileApps converges the app tier: the shared config, then per service its ServiceAccount,
// Service, PodDisruptionBudget and Deployment. The Deployments carry the config's hash, so a
// config change rolls them and nothing else does.
func (r *SocialPlatformReconciler) reconcileApps(ctx context.Context, s *scope) error {
	sp := s.sp
	cfg := render.AppsConfig(sp)
	if err := applyRecord(ctx, r.Client, s, "ConfigMap", cfg, &corev1.ConfigMap{}, corev1ac.ExtractConfigMap); err != nil {
		return err
	}
	hash := render.HashData(cfg.Data)

	// The services are independent: converge them concurrently, each in its order (the
	// Deployment last, once its ServiceAccount exists).
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(applyConcurrency)
	for _, c := range appComponents() {
		g.Go(func() error {
			if err := applyRecord(gctx, r.Client, s, "ServiceAccount", render.AppServiceAccount(sp, c), &corev1.ServiceAccount{}, corev1ac.ExtractServiceAccount); err != nil {
				return err
			}
			if err := applyRecord(gctx, r.Client, s, "Service", render.AppService(sp, c), &corev1.Service{}, corev1ac.ExtractService); err != nil {
				return err
			}
			if err := applyRecord(gctx, r.Client, s, "PodDisruptionBudget", render.AppPodDisruptionBudget(sp, c), &policyv1.PodDisruptionBudget{}, policyv1ac.ExtractPodDisruptionBudget); err != nil {
				return err
			}
			dep := render.AppDeployment(sp, c, render.AppInputs{DefaultImage: r.DefaultAppsImage, ConfigHash: hash})
			return applyRecord(gctx, r.Client, s, "Deployment", dep, &appsv1.Deployment{}, appsv1ac.ExtractDeployment)
		})
	}
	return g.Wait()
}
