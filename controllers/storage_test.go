package controllers

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/controllers/render"
)

func TestPlanClaims(t *testing.T) {
	sts := func(size string, deleting bool) *appsv1.StatefulSet {
		s := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
			ObjectMeta: metav1.ObjectMeta{Name: render.DataVolume},
			Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}}},
		}}}}
		if deleting {
			s.DeletionTimestamp = &metav1.Time{}
		}
		return s
	}
	want := resource.MustParse("2Gi")
	cases := []struct {
		name       string
		sts        *appsv1.StatefulSet
		smaller    int
		expandable bool
		wantAction claimAction
	}{
		{"not created yet", nil, 0, false, claimsAsDesired},
		{"already at the size", sts("2Gi", false), 0, false, claimsAsDesired},
		{"larger than asked (never shrinks)", sts("4Gi", false), 0, false, claimsAsDesired},
		{"template and claims smaller", sts("1Gi", false), 2, true, claimsGrowAndReplace},
		{"template smaller, no claims yet", sts("1Gi", false), 0, true, claimsGrowAndReplace},
		{"template replaced, a claim left behind", sts("2Gi", false), 1, true, claimsGrow},
		{"cannot expand", sts("1Gi", false), 1, false, claimsUnsupported},
		{"cannot expand a claim left behind", sts("2Gi", false), 1, false, claimsUnsupported},
		{"being replaced", sts("1Gi", true), 1, true, claimsReplacing},
	}
	for _, tc := range cases {
		if got := planClaims(tc.sts, want, tc.smaller, tc.expandable); got != tc.wantAction {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.wantAction)
		}
	}
}

func TestStorageCondition(t *testing.T) {
	ready := metav1.Condition{Type: scalestackv1alpha1.ConditionDatabaseReady, Status: metav1.ConditionTrue, Reason: scalestackv1alpha1.ReasonAvailable}
	notReady := metav1.Condition{Type: ready.Type, Status: metav1.ConditionFalse, Reason: scalestackv1alpha1.ReasonCreating}
	if got := storageCondition(ready, storageObservation{}); got != ready {
		t.Errorf("nothing to report changed the condition: %+v", got)
	}
	got := storageCondition(ready, storageObservation{unsupported: []string{"demo-shard-0-primary: StorageClass standard does not allow volume expansion"}})
	if got.Status != metav1.ConditionTrue || got.Reason != scalestackv1alpha1.ReasonStorageResizeUnsupported ||
		!strings.Contains(got.Message, "spec.database.storage.size") || !strings.Contains(got.Message, "StorageClass standard") {
		t.Errorf("unsupported: %+v", got)
	}
	got = storageCondition(ready, storageObservation{resizing: []string{"PersistentVolumeClaim data-x-0 is 1Gi of 2Gi"}})
	if got.Status != metav1.ConditionTrue || got.Reason != scalestackv1alpha1.ReasonStorageResizing || !strings.Contains(got.Message, "1Gi of 2Gi") {
		t.Errorf("resizing: %+v", got)
	}
	// A tier that is not ready keeps its verdict, unless a StatefulSet is being replaced: then the
	// reason says why its pods are not observed.
	if got := storageCondition(notReady, storageObservation{resizing: []string{"x"}}); got != notReady {
		t.Errorf("not ready while claims grow: %+v", got)
	}
	got = storageCondition(notReady, storageObservation{resizing: []string{"StatefulSet demo-shard-0-primary is being replaced"}, replacing: true})
	if got.Status != metav1.ConditionFalse || got.Reason != scalestackv1alpha1.ReasonStorageResizing {
		t.Errorf("replacing: %+v", got)
	}
}

func TestReplicaOrdinal(t *testing.T) {
	sp := &scalestackv1alpha1.SocialPlatform{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}
	cases := map[string]struct {
		ord int32
		ok  bool
	}{
		"demo-shard-1-replicas-0": {0, true},
		"demo-shard-1-replicas-3": {3, true},
		"demo-shard-1-primary-0":  {0, false},
		"demo-shard-0-replicas-1": {0, false},
		"demo-shard-1-replicas-x": {0, false},
		"demo-shard-1-replicas-":  {0, false},
	}
	for pod, want := range cases {
		if ord, ok := replicaOrdinal(sp, 1, pod); ord != want.ord || ok != want.ok {
			t.Errorf("%s: %d %v, want %d %v", pod, ord, ok, want.ord, want.ok)
		}
	}
}

func TestPrimariesFromClaims(t *testing.T) {
	sp := &scalestackv1alpha1.SocialPlatform{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}
	sp.Spec.Database.Shards = 2
	claim := func(name, shard, epoch string) corev1.PersistentVolumeClaim {
		c := corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{scalestackv1alpha1.LabelShard: shard}}}
		if epoch != "" {
			c.Annotations = map[string]string{scalestackv1alpha1.AnnotationPrimaryEpoch: epoch}
		}
		return c
	}
	got := primariesFromClaims(sp, []corev1.PersistentVolumeClaim{
		claim("data-demo-shard-0-primary-0", "0", "2"),
		claim("data-demo-shard-0-replicas-0", "0", "3"), // the newest move wins
		claim("data-demo-shard-0-replicas-1", "0", ""),
		claim("data-demo-shard-1-primary-0", "1", "x"),   // unreadable
		claim("data-demo-shard-1-replicas-0", "0", "9"),  // names another shard than its label
		claim("data-demo-shard-7-replicas-0", "7", "4"),  // a shard the platform no longer has
		claim("data-other-shard-0-replicas-0", "0", "5"), // another platform's name
	})
	want := map[int32]render.Primary{0: {Pod: "demo-shard-0-replicas-0", Epoch: 3}}
	if len(got) != len(want) || got[0] != want[0] {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
