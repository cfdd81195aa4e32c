package controllers

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	"github.com/scalestack/scalestack/controllers/render"
)

// reconcileApps converges the app tier: the shared config, then per service its ServiceAccount,
// Service, PodDisruptionBudget and Deployment. The Deployments carry the config's hash, so a
// config change rolls them and nothing else does.
func (r *SocialPlatformReconciler) reconcileApps(ctx context.Context, s *scope) error {
	sp := s.sp
	cfg := render.AppsConfig(sp)
	res, err := apply(ctx, r.Client, cfg, &corev1.ConfigMap{}, corev1ac.ExtractConfigMap)
	if err != nil {
		return err
	}
	s.record("ConfigMap", *cfg.Name, res)
	hash := render.HashData(cfg.Data)

	for _, c := range appComponents() {
		sa := render.AppServiceAccount(sp, c)
		if res, err = apply(ctx, r.Client, sa, &corev1.ServiceAccount{}, corev1ac.ExtractServiceAccount); err != nil {
			return err
		}
		s.record("ServiceAccount", *sa.Name, res)

		svc := render.AppService(sp, c)
		if res, err = apply(ctx, r.Client, svc, &corev1.Service{}, corev1ac.ExtractService); err != nil {
			return err
		}
		s.record("Service", *svc.Name, res)

		pdb := render.AppPodDisruptionBudget(sp, c)
		if res, err = apply(ctx, r.Client, pdb, &policyv1.PodDisruptionBudget{}, policyv1ac.ExtractPodDisruptionBudget); err != nil {
			return err
		}
		s.record("PodDisruptionBudget", *pdb.Name, res)

		dep := render.AppDeployment(sp, c, render.AppInputs{DefaultImage: r.DefaultAppsImage, ConfigHash: hash})
		if res, err = apply(ctx, r.Client, dep, &appsv1.Deployment{}, appsv1ac.ExtractDeployment); err != nil {
			return err
		}
		s.record("Deployment", *dep.Name, res)
	}
	return nil
}
