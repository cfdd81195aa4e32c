package integration

import (
	"context"
	"fmt"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

// Every published sample is accepted by the real API server and reconciled with no child refused;
// minimal (External Kafka, nothing else installed) becomes Ready once its workloads are.
func TestSamplesApplyCleanly(t *testing.T) {
	for _, name := range []string{"minimal", "dev", "production"} {
		t.Run(name, func(t *testing.T) {
			sp := loadSampleFile(t, newNamespace(t), name+".yaml")
			if sp.Spec.Kafka.Mode == scalestackv1alpha1.KafkaModeExternal {
				// The suite's Kafka (kfake, the real protocol) stands in for kafka.kafka.svc.
				sp.Spec.Kafka.BootstrapServers = kafkaSeeds
			}
			if err := k8s.Create(context.Background(), sp); err != nil {
				t.Fatalf("the API server refused config/samples/%s.yaml: %v", name, err)
			}
			eventually(t, "reconciled with no child refused", func() error {
				cur, err := get(t, &scalestackv1alpha1.SocialPlatform{}, sp.Namespace, sp.Name)
				if err != nil {
					return err
				}
				if cur.Status.ObservedGeneration != cur.Generation {
					return fmt.Errorf("observedGeneration %d", cur.Status.ObservedGeneration)
				}
				for _, c := range cur.Status.Conditions {
					if c.Reason == scalestackv1alpha1.ReasonApplyFailed || (c.Type == scalestackv1alpha1.ConditionStalled && c.Status != metav1.ConditionFalse) ||
						(c.Type == scalestackv1alpha1.ConditionDegraded && c.Status != metav1.ConditionFalse) {
						return fmt.Errorf("%s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
					}
				}
				if meta.FindStatusCondition(cur.Status.Conditions, scalestackv1alpha1.ConditionStalled) == nil {
					return fmt.Errorf("no Stalled condition yet")
				}
				return nil
			})
			if name == "production" {
				// The site is published through its own Ingress, every path to the gateway.
				ing := &networkingv1.Ingress{}
				eventually(t, "the site Ingress", func() error {
					return k8s.Get(context.Background(), client.ObjectKey{Namespace: sp.Namespace, Name: sp.SiteIngressName()}, ing)
				})
				if r := ing.Spec.Rules[0]; r.Host != "social.example.com" || r.HTTP.Paths[0].Path != "/" || len(ing.Spec.TLS) != 1 {
					t.Errorf("site Ingress %+v", ing.Spec)
				}
				cur, err := get(t, &scalestackv1alpha1.SocialPlatform{}, sp.Namespace, sp.Name)
				if err != nil || cur.Status.Endpoints.Site != "https://social.example.com/" {
					t.Errorf("status.endpoints.site %q (%v)", cur.Status.Endpoints.Site, err)
				}
			}
			if name == "minimal" {
				markDeploymentsAvailable(t, sp)
				waitForCondition(t, sp, scalestackv1alpha1.ConditionReady, metav1.ConditionTrue)
			}
		})
	}
}
