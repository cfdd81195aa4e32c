package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/test/testenv"
)

// Generated passwords live only in their Secret: never in the platform's spec or status, in an
// Event, in the operator's logs (at every level), or in any other child.
func TestSecretsStayInTheirSecret(t *testing.T) {
	sp := createSample(t)
	ns := sp.Namespace
	markDeploymentsAvailable(t, sp)
	waitForCondition(t, sp, scalestackv1alpha1.ConditionReady, metav1.ConditionTrue)
	// A change and a teardown add log lines and Events worth scanning.
	updateSP(t, sp, func(cur *scalestackv1alpha1.SocialPlatform) { cur.Spec.Database.ReplicasPerShard = nil })

	secret, err := get(t, &corev1.Secret{}, ns, sp.DatabaseSecretName())
	if err != nil {
		t.Fatal(err)
	}
	var passwords []string
	for k, v := range secret.Data {
		if len(v) < 16 {
			t.Fatalf("password %s is %d bytes", k, len(v))
		}
		passwords = append(passwords, string(v))
	}

	scan := func(where, text string) {
		t.Helper()
		for _, p := range passwords {
			if strings.Contains(text, p) {
				t.Errorf("a generated password appears in %s", where)
			}
		}
	}
	cur, _ := get(t, &scalestackv1alpha1.SocialPlatform{}, ns, sp.Name)
	raw, _ := json.Marshal(cur)
	scan("the SocialPlatform", string(raw))

	var events eventsv1.EventList
	if err := k8s.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(events.Items) == 0 {
		t.Error("no Events to scan")
	}
	raw, _ = json.Marshal(events)
	scan("the Events", string(raw))

	for _, list := range []client.ObjectList{&corev1.ConfigMapList{}, &corev1.ServiceList{}} {
		if err := k8s.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		raw, _ = json.Marshal(list)
		scan("a ConfigMap or Service", string(raw))
	}
	var secrets corev1.SecretList
	if err := k8s.List(context.Background(), &secrets, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		if s.Name == sp.DatabaseSecretName() {
			continue
		}
		raw, _ = json.Marshal(s)
		scan("Secret "+s.Name, string(raw))
	}

	logs := testenv.Logs.String()
	if len(logs) == 0 {
		t.Error("no operator logs to scan")
	}
	scan("the operator's logs", logs)
}
