package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files (make update-golden)")

// sample is config/samples' platform, as the API server would store it.
func sample(t *testing.T) *scalestackv1alpha1.SocialPlatform {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "scalestack_v1alpha1_socialplatform.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sp := &scalestackv1alpha1.SocialPlatform{}
	if err := yaml.UnmarshalStrict(raw, sp); err != nil {
		t.Fatal(err)
	}
	sp.Namespace = "shop"
	sp.UID = types.UID("00000000-0000-0000-0000-000000000001")
	return sp
}

// golden compares got with testdata/<name>, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run make update-golden): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendered output; if the change is intended, run make update-golden and review the diff.\n--- got ---\n%s", path, got)
	}
}

func toYAML(t *testing.T, objs ...any) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes()
}

func TestAppsGolden(t *testing.T) {
	sp := sample(t)
	cfg := AppsConfig(sp)
	objs := []any{cfg}
	for _, c := range scalestackv1alpha1.AppComponents {
		objs = append(objs,
			AppServiceAccount(sp, c),
			AppService(sp, c),
			AppPodDisruptionBudget(sp, c),
			AppDeployment(sp, c, AppInputs{DefaultImage: "unused", ConfigHash: HashData(cfg.Data)}),
		)
	}
	golden(t, "apps.golden.yaml", toYAML(t, objs...))
}

func TestAppDeploymentAutoscalingLeavesReplicasOut(t *testing.T) {
	sp := sample(t)
	if d := AppDeployment(sp, scalestackv1alpha1.ComponentFeed, AppInputs{}); d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Fatalf("autoscaling off: replicas %v, want 2", d.Spec.Replicas)
	}
	sp.Spec.SLO.Autoscaling.Enabled = true
	if d := AppDeployment(sp, scalestackv1alpha1.ComponentFeed, AppInputs{}); d.Spec.Replicas != nil {
		t.Errorf("autoscaling on: replicas %d applied; the autoscaler owns them", *d.Spec.Replicas)
	}
}

func TestAppDeploymentDefaultImage(t *testing.T) {
	sp := sample(t)
	sp.Spec.Apps.Image = ""
	d := AppDeployment(sp, scalestackv1alpha1.ComponentUser, AppInputs{DefaultImage: "registry.example/apps:v9"})
	if got := *d.Spec.Template.Spec.Containers[0].Image; got != "registry.example/apps:v9" {
		t.Errorf("image %q", got)
	}
}

func TestAppsConfigTracingOff(t *testing.T) {
	sp := sample(t)
	sp.Spec.Observability.Tracing.Endpoint = ""
	cfg := AppsConfig(sp)
	if cfg.Data["OTEL_SDK_DISABLED"] != "true" || cfg.Data["OTEL_EXPORTER_OTLP_ENDPOINT"] != "" {
		t.Errorf("tracing not off: %v", cfg.Data)
	}
}

func TestConfigHash(t *testing.T) {
	sp := sample(t)
	a := HashData(AppsConfig(sp).Data)
	if b := HashData(AppsConfig(sp).Data); a != b {
		t.Fatalf("hash not stable: %s %s", a, b)
	}
	sp.Spec.Cache.DefaultTTL = &metav1.Duration{Duration: time.Hour}
	if b := HashData(AppsConfig(sp).Data); a == b {
		t.Errorf("hash unchanged after a config change")
	}
	if HashData(map[string]string{"ab": "c"}) == HashData(map[string]string{"a": "bc"}) {
		t.Errorf("hash ignores key/value boundaries")
	}
}

func TestReplicaDefaults(t *testing.T) {
	cases := []struct {
		spec          scalestackv1alpha1.ServiceSpec
		r, minR, maxR int32
	}{
		{scalestackv1alpha1.ServiceSpec{}, 2, 1, 10},
		{scalestackv1alpha1.ServiceSpec{MinReplicas: ptr.To[int32](3)}, 3, 3, 10},
		{scalestackv1alpha1.ServiceSpec{MaxReplicas: ptr.To[int32](1)}, 1, 1, 1},
		{scalestackv1alpha1.ServiceSpec{Replicas: ptr.To[int32](20)}, 20, 1, 20},
	}
	for _, tc := range cases {
		if r, lo, hi := Replicas(tc.spec), MinReplicas(tc.spec), MaxReplicas(tc.spec); r != tc.r || lo != tc.minR || hi != tc.maxR {
			t.Errorf("%+v: got %d/%d/%d, want %d/%d/%d", tc.spec, r, lo, hi, tc.r, tc.minR, tc.maxR)
		}
	}
}
