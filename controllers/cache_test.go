package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCacheOptionsWatchNamespaces(t *testing.T) {
	if o := CacheOptions(); o.DefaultNamespaces != nil {
		t.Errorf("no namespaces given, yet the cache is limited to %v", o.DefaultNamespaces)
	}
	o := CacheOptions("team-a", "team-b")
	if _, ok := o.DefaultNamespaces["team-a"]; !ok || len(o.DefaultNamespaces) != 2 {
		t.Errorf("watched namespaces %v, want team-a and team-b", o.DefaultNamespaces)
	}
	if o.DefaultLabelSelector == nil || o.DefaultLabelSelector.Empty() {
		t.Errorf("limiting namespaces dropped the managed-by selector")
	}
}

func TestPodsAreCachedWithoutTheirSpec(t *testing.T) {
	var transform func(any) (any, error)
	for obj, by := range CacheOptions().ByObject {
		if _, ok := obj.(*corev1.Pod); ok {
			transform = by.Transform
		}
	}
	if transform == nil {
		t.Fatal("pods have no transform of their own")
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-shard-0-0", Annotations: map[string]string{"scalestack.dev/switchover": "any"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}}},
		Spec: corev1.PodSpec{NodeName: "node", Containers: []corev1.Container{{Name: "mariadb", Image: "mariadb:10.11"}}},
		Status: corev1.PodStatus{PodIP: "10.0.0.1", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			InitContainerStatuses: []corev1.ContainerStatus{{Name: "bootstrap"}}},
	}
	want := p.DeepCopy()
	want.ManagedFields, want.Spec = nil, corev1.PodSpec{NodeName: "node"}
	got, err := transform(p)
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("cached pod %+v, want %+v", got, want)
	}
}
