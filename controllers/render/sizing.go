package render

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
)

// The connection budget of a shard server.
const (
	// DefaultPoolPerPod is how many connections each app pod keeps to each server, when the
	// budget allows it.
	DefaultPoolPerPod int32 = 16
	// MinPoolPerPod is the smallest pool the apps are given; below it the budget is reported.
	MinPoolPerPod int32 = 2
	// connectionMiB is the memory a connection is budgeted: thread stack, session and network
	// buffers, and a sort or join buffer while it works.
	connectionMiB = 1
	// defaultMaxConnections and defaultBufferPoolMiB apply when the database has no memory
	// request or limit to size from.
	defaultMaxConnections int32 = 500
	defaultBufferPoolMiB  int64 = 256
	maxMaxConnections     int32 = 10000
	minMaxConnections     int32 = 100
)

// DatabaseSizing is what each shard server is configured with and what each app pod may open to
// it, derived from the manifest: the buffer pool and max_connections from database.resources
// (half the memory for the buffer pool, a quarter for connections, the rest for the engine), and
// the app pools so that every app pod at its maxReplicas fits max_connections.
type DatabaseSizing struct {
	MemoryMiB      int64 // 0: the manifest gives none
	BufferPoolMiB  int64
	MaxConnections int32
	// PoolPerPod is the connections each app pod (user, post, worker, archiver) opens per server.
	PoolPerPod int32
	// Pods is how many app pods may connect to one server at once: every pool-holding service
	// at its maxReplicas, plus the archiver.
	Pods int32
	// Reserved is what the agent, the exporter, the replicas' replication threads and an
	// administrator keep.
	Reserved int32
	// Binding says which limit binds when even the smallest pools do not fit; "" when they do.
	Binding string
}

// poolComponents are the app services that open connections to the shards.
var poolComponents = []scalestackv1alpha1.Component{
	scalestackv1alpha1.ComponentUser, scalestackv1alpha1.ComponentPost, scalestackv1alpha1.ComponentWorker,
}

// Sizing is the platform's DatabaseSizing.
func Sizing(sp *scalestackv1alpha1.SocialPlatform) DatabaseSizing {
	z := DatabaseSizing{BufferPoolMiB: defaultBufferPoolMiB, MaxConnections: defaultMaxConnections,
		Reserved: 10 + ReplicasPerShard(sp)}
	if r := sp.Spec.Database.Resources; r != nil {
		mem := r.Limits[corev1.ResourceMemory]
		if mem.IsZero() {
			mem = r.Requests[corev1.ResourceMemory]
		}
		z.MemoryMiB = mem.Value() >> 20
	}
	if z.MemoryMiB > 0 {
		z.BufferPoolMiB = max(z.MemoryMiB/2, 32)
		z.MaxConnections = int32(min(max(z.MemoryMiB/4/connectionMiB, int64(minMaxConnections)), int64(maxMaxConnections)))
	}
	for _, c := range poolComponents {
		z.Pods += MaxReplicas(sp.Spec.Apps.Service(c))
	}
	if sp.Spec.Database.Archive != nil {
		z.Pods++
	}
	z.PoolPerPod = min(DefaultPoolPerPod, (z.MaxConnections-z.Reserved)/z.Pods)
	if z.PoolPerPod < MinPoolPerPod {
		z.PoolPerPod = MinPoolPerPod
		need := z.Pods*MinPoolPerPod + z.Reserved
		z.Binding = fmt.Sprintf("max_connections is %d (%s) but %d app pods at their maxReplicas need %d at %d connections each: "+
			"raise spec.database.resources memory or lower spec.apps maxReplicas",
			z.MaxConnections, z.source(), z.Pods, need, MinPoolPerPod)
	}
	return z
}

func (z DatabaseSizing) source() string {
	if z.MemoryMiB == 0 {
		return "the default without spec.database.resources memory"
	}
	return fmt.Sprintf("a quarter of %dMi of database memory at %dMi each", z.MemoryMiB, connectionMiB)
}
