package controllers

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

func TestSpecFieldTracesARefusedChildFieldToTheManifest(t *testing.T) {
	cases := []struct {
		kind, name, component, childField string
		want                              string
	}{
		{"Deployment", "demo-gateway", "gateway", "spec.template.spec.containers[0].resources.requests", "spec.apps.gateway.resources"},
		{"Deployment", "demo-feed", "feed", "spec.replicas", "spec.apps.feed.replicas"},
		{"Deployment", "demo-user", "user", "spec.template.spec.containers[0].image", "spec.apps.image"},
		{"Deployment", "demo-post", "post", "", "spec.apps.post"},
		{"StatefulSet", "demo-shard-0", "database", "spec.template.spec.containers[1].resources.limits", "spec.database.resources"},
		{"StatefulSet", "demo-shard-0", "database", "spec.template.spec.containers[0].image", "spec.database.image"},
		{"StatefulSet", "demo-shard-0-replicas", "database", "spec.volumeClaimTemplates[0].spec.storageClassName", "spec.database.storage.storageClassName"},
		{"StatefulSet", "demo-shard-0-replicas", "database", "spec.volumeClaimTemplates[0].spec.resources.requests", "spec.database.storage.size"},
		{"StatefulSet", "demo-shard-0-replicas", "database", "spec.replicas", "spec.database.replicasPerShard"},
		{"StatefulSet", "demo-cache", "cache", "spec.template.spec.containers[0].resources.limits", "spec.cache"},
		{"StatefulSet", "demo-cache", "cache", "spec.template.spec.containers[0].image", "spec.cache.image"},
		{"Ingress", "demo-site", "gateway", "spec.ingressClassName", "spec.ingress.ingressClassName"},
		{"Ingress", "demo-cdn", "cdn", "spec.ingressClassName", "spec.cdn.ingressClassName"},
		{"Ingress", "demo-site", "gateway", "spec.tls[0].secretName", "spec.ingress.tlsSecretName"},
		{"Ingress", "demo-cdn", "cdn", "spec.rules[0].host", "spec.cdn.originHost"},
		{"Ingress", "demo-site", "gateway", "spec.rules[0].host", "spec.ingress.host"},
		{"CronJob", "demo-archiver", "archiver", "spec.schedule", "spec.database.archive.schedule"},
		{"CronJob", "demo-archiver", "archiver", "", "spec.database"},
		{"PrometheusRule", "demo-slo", "monitoring", "metadata.labels", "spec.observability.ruleLabels"},
		{"KafkaTopic", "demo-post-created", "kafka", "spec.partitions", "spec.kafka.topics"},
		{"ConfigMap", "demo-shard-map", "shard-map", "", "spec.database"},
		{"Service", "demo-gateway", "gateway", "metadata.name", "metadata.name"},
		{"NetworkPolicy", "demo-default-deny", "network", "", "spec"},
	}
	for _, tc := range cases {
		if got := specField(tc.kind, tc.name, tc.component, tc.childField); got != tc.want {
			t.Errorf("%s %s field %q: got %q, want %q", tc.kind, tc.name, tc.childField, got, tc.want)
		}
	}
}

func TestAPreflightRefusalNamesTheFieldAndKeepsTheAPIServersWords(t *testing.T) {
	refusal := apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "demo-gateway", field.ErrorList{
		field.Invalid(field.NewPath("spec", "template", "spec", "containers").Index(0).Child("resources", "limits"), "64Gi", "over the namespace's limit"),
	})
	wrapped := fmt.Errorf("applying *v1.Deployment demo/demo-gateway: %w", refusal)
	if got := causeField(wrapped); got != "spec.template.spec.containers[0].resources.limits" {
		t.Fatalf("causeField = %q", got)
	}
	err := &invalidSpecError{field: specField("Deployment", "demo-gateway", "gateway", causeField(wrapped)), child: "Deployment demo-gateway", err: wrapped}
	msg := err.Error()
	for _, want := range []string{"spec.apps.gateway.resources", "Deployment demo-gateway", "over the namespace's limit"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	joined := errors.Join(errors.New("other"), fmt.Errorf("preflight: %w", err))
	if !isInvalidSpec(joined) || !rejected(joined) {
		t.Errorf("a joined preflight refusal is not seen as one")
	}
	if got := failureReason(joined); got != scalestackv1alpha1.ReasonInvalidSpec {
		t.Errorf("failureReason = %q", got)
	}
	if got := failureReason(errors.New("agent unreachable")); got != scalestackv1alpha1.ReasonReconcileFailed {
		t.Errorf("failureReason of a transient error = %q", got)
	}
	if c := readyCondition(nil, joined, false, false); c.Reason != scalestackv1alpha1.ReasonInvalidSpec || c.Status != metav1.ConditionFalse {
		t.Errorf("Ready = %s/%s", c.Status, c.Reason)
	}
}
