package render

import (
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	"k8s.io/utils/ptr"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

func TestSizingFollowsTheManifest(t *testing.T) {
	mem := func(limit, request string) *corev1.ResourceRequirements {
		r := &corev1.ResourceRequirements{Limits: corev1.ResourceList{}, Requests: corev1.ResourceList{}}
		if limit != "" {
			r.Limits[corev1.ResourceMemory] = resource.MustParse(limit)
		}
		if request != "" {
			r.Requests[corev1.ResourceMemory] = resource.MustParse(request)
		}
		return r
	}
	cases := []struct {
		name       string
		resources  *corev1.ResourceRequirements
		maxReplica int32 // of user, post and worker; 0: the default (10)
		archive    bool
		replicas   int32
		want       DatabaseSizing // Binding compared by presence
		binds      bool
	}{
		{name: "no memory: today's defaults", replicas: 1,
			want: DatabaseSizing{BufferPoolMiB: 256, MaxConnections: 500, PoolPerPod: 16, Pods: 30, Reserved: 11}},
		{name: "2Gi limit", resources: mem("2Gi", "1Gi"), replicas: 1,
			want: DatabaseSizing{MemoryMiB: 2048, BufferPoolMiB: 1024, MaxConnections: 512, PoolPerPod: 16, Pods: 30, Reserved: 11}},
		{name: "request only", resources: mem("", "512Mi"), replicas: 2,
			want: DatabaseSizing{MemoryMiB: 512, BufferPoolMiB: 256, MaxConnections: 128, PoolPerPod: 3, Pods: 30, Reserved: 12}},
		{name: "the archiver holds a pool too", resources: mem("512Mi", ""), archive: true, replicas: 1,
			want: DatabaseSizing{MemoryMiB: 512, BufferPoolMiB: 256, MaxConnections: 128, PoolPerPod: 3, Pods: 31, Reserved: 11}},
		{name: "small memory floors", resources: mem("48Mi", ""), maxReplica: 2, replicas: 0,
			want: DatabaseSizing{MemoryMiB: 48, BufferPoolMiB: 32, MaxConnections: 100, PoolPerPod: 15, Pods: 6, Reserved: 10}},
		{name: "too many pods for the memory", resources: mem("256Mi", ""), maxReplica: 40, replicas: 1, binds: true,
			want: DatabaseSizing{MemoryMiB: 256, BufferPoolMiB: 128, MaxConnections: 100, PoolPerPod: 2, Pods: 120, Reserved: 11}},
		{name: "huge memory is capped", resources: mem("64Gi", ""), replicas: 1,
			want: DatabaseSizing{MemoryMiB: 65536, BufferPoolMiB: 32768, MaxConnections: 10000, PoolPerPod: 16, Pods: 30, Reserved: 11}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sp := &scalestackv1alpha1.SocialPlatform{}
			sp.Spec.Database.Resources = tc.resources
			sp.Spec.Database.ReplicasPerShard = ptr.To(tc.replicas)
			if tc.archive {
				sp.Spec.Database.Archive = &scalestackv1alpha1.ArchiveSpec{}
			}
			if tc.maxReplica > 0 {
				for _, s := range []*scalestackv1alpha1.ServiceSpec{&sp.Spec.Apps.User, &sp.Spec.Apps.Post, &sp.Spec.Apps.Worker} {
					s.MaxReplicas = ptr.To(tc.maxReplica)
				}
			}
			got := Sizing(sp)
			if (got.Binding != "") != tc.binds {
				t.Errorf("binding %q, want binding: %v", got.Binding, tc.binds)
			}
			got.Binding = ""
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
			// What the apps may open never exceeds what the server allows, unless reported.
			if !tc.binds && got.Pods*got.PoolPerPod+got.Reserved > got.MaxConnections {
				t.Errorf("%d pods x %d + %d > max_connections %d", got.Pods, got.PoolPerPod, got.Reserved, got.MaxConnections)
			}
			cnf := DatabaseConfig(sp).Data
			if !strings.Contains(cnf["scalestack.cnf"], "max_connections = "+itoa(got.MaxConnections)+"\n") {
				t.Errorf("cnf lacks max_connections %d", got.MaxConnections)
			}
			if pool := AppsConfig(sp).Data["SCALESTACK_DB_POOL_SIZE"]; pool != itoa(got.PoolPerPod) {
				t.Errorf("apps pool %q, want %d", pool, got.PoolPerPod)
			}
		})
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// A replicas StatefulSet that holds the primary of record keeps it through a scale-down.
func TestDataTierKeepsThePrimaryThroughAScaleDown(t *testing.T) {
	sp := &scalestackv1alpha1.SocialPlatform{}
	sp.Name, sp.Namespace = "demo", "ns"
	sp.Spec.Database.Shards = 1
	sp.Spec.Database.ReplicasPerShard = ptr.To[int32](0)
	replicas := func(in DataInputs) int32 { // -1: not rendered
		tier, err := DataTier(sp, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, step := range tier.Steps {
			for _, o := range step {
				if s, ok := o.(*appsv1ac.StatefulSetApplyConfiguration); ok && *s.Name == sp.ShardReplicasName(0) {
					return *s.Spec.Replicas
				}
			}
		}
		return -1
	}
	if n := replicas(DataInputs{}); n != 0 {
		t.Errorf("no floor: %d replicas", n)
	}
	if n := replicas(DataInputs{KeepReplicas: map[string]int32{sp.ShardReplicasName(0): 2}}); n != 2 {
		t.Errorf("floor 2: %d replicas", n)
	}
	if n := replicas(DataInputs{Replacing: map[string]bool{sp.ShardReplicasName(0): true}}); n != -1 {
		t.Errorf("being replaced, yet rendered with %d replicas", n)
	}
}
