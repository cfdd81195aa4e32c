package controllers

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestPlanRoll(t *testing.T) {
	const primary, replica0, replica1 = "demo-shard-0-0", "demo-shard-0-replicas-0", "demo-shard-0-replicas-1"
	pod := func(name string, ready, outdated bool) rollPod {
		return rollPod{name: name, ready: ready, outdated: outdated, agent: true}
	}
	for name, tc := range map[string]struct {
		pods    []rollPod
		primary string
		size    int // pods the shard should have; 0: as many as given
		want    rollStep
	}{
		"never while a restarted replica's successor does not exist yet": {
			pods:    []rollPod{pod(primary, true, true)},
			primary: primary,
			size:    2,
			want:    rollStep{wait: "1 of the shard's 2 pods exist"},
		},
		"nothing outdated": {
			pods:    []rollPod{pod(primary, true, false), pod(replica0, false, false)},
			primary: primary,
			want:    rollStep{},
		},
		"a replica first, the last by name first": {
			pods:    []rollPod{pod(primary, true, true), pod(replica0, true, true), pod(replica1, true, true)},
			primary: primary,
			want:    rollStep{restart: replica1},
		},
		"never while another pod is not ready": {
			pods:    []rollPod{pod(primary, true, true), pod(replica0, true, false), pod(replica1, false, false)},
			primary: primary,
			want:    rollStep{wait: replica1 + " is not ready"},
		},
		"the primary after its replicas, by a switchover": {
			pods:    []rollPod{pod(primary, true, true), pod(replica0, true, false)},
			primary: primary,
			want:    rollStep{switchover: true},
		},
		"a primary of record in the replicas' StatefulSet is handled the same": {
			pods:    []rollPod{pod(primary, true, false), pod(replica0, true, true)},
			primary: replica0,
			want:    rollStep{switchover: true},
		},
		"the old primary, a replica after the switchover, restarts next": {
			pods:    []rollPod{pod(primary, true, true), pod(replica0, true, false)},
			primary: replica0,
			want:    rollStep{restart: primary},
		},
		"no replica: the primary restarts in place": {
			pods:    []rollPod{pod(primary, true, true)},
			primary: primary,
			want:    rollStep{restart: primary, inPlace: true},
		},
		"replicas whose agents do not run (simulated pods) cannot take over": {
			pods:    []rollPod{pod(primary, true, true), {name: replica0, ready: true}},
			primary: primary,
			want:    rollStep{restart: primary, inPlace: true},
		},
		"an unready primary waits, even with outdated replicas": {
			pods:    []rollPod{pod(primary, false, true), pod(replica0, true, true)},
			primary: primary,
			want:    rollStep{wait: primary + " is not ready"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			size := tc.size
			if size == 0 {
				size = len(tc.pods)
			}
			if got := planRoll(tc.pods, tc.primary, size); got != tc.want {
				t.Errorf("planRoll = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPodOutdated(t *testing.T) {
	sts := func(gen, observed int64, update string) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "demo-shard-0", Generation: gen},
			Status:     appsv1.StatefulSetStatus{ObservedGeneration: observed, UpdateRevision: update},
		}
	}
	pod := func(owner, rev string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "demo-shard-0-0", Labels: map[string]string{}}}
		if rev != "" {
			p.Labels[appsv1.ControllerRevisionHashLabelKey] = rev
		}
		if owner != "" {
			p.OwnerReferences = []metav1.OwnerReference{{Kind: "StatefulSet", Name: owner, Controller: ptr.To(true)}}
		}
		return p
	}
	for name, tc := range map[string]struct {
		pod  *corev1.Pod
		sets map[string]*appsv1.StatefulSet
		want bool
	}{
		"older revision":            {pod("demo-shard-0", "demo-shard-0-a"), map[string]*appsv1.StatefulSet{"demo-shard-0": sts(2, 2, "demo-shard-0-b")}, true},
		"current revision":          {pod("demo-shard-0", "demo-shard-0-b"), map[string]*appsv1.StatefulSet{"demo-shard-0": sts(2, 2, "demo-shard-0-b")}, false},
		"status behind the spec":    {pod("demo-shard-0", "demo-shard-0-a"), map[string]*appsv1.StatefulSet{"demo-shard-0": sts(3, 2, "demo-shard-0-b")}, false},
		"no StatefulSet controller": {pod("demo-shard-0", "demo-shard-0-a"), map[string]*appsv1.StatefulSet{"demo-shard-0": sts(1, 0, "")}, false},
		"an orphan (being adopted)": {pod("", "demo-shard-0-a"), map[string]*appsv1.StatefulSet{"demo-shard-0": sts(2, 2, "demo-shard-0-b")}, false},
		"no revision label":         {pod("demo-shard-0", ""), map[string]*appsv1.StatefulSet{"demo-shard-0": sts(2, 2, "demo-shard-0-b")}, false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := podOutdated(tc.pod, tc.sets); got != tc.want {
				t.Errorf("podOutdated = %v, want %v", got, tc.want)
			}
		})
	}
}
