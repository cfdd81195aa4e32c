package kafkatopics

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The tests run against kfake, franz-go's in-process Kafka that speaks the real protocol: no Kafka
// broker can be installed on these machines.
func newAdmin(t *testing.T) (*kadm.Client, func() *kadm.Client) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	connect := func() *kadm.Client {
		cl, err := kgo.NewClient(ClientOptions(cluster.ListenAddrs())...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return kadm.NewClient(cl)
	}
	// The checks use a client of their own, whose metadata cache has seen nothing yet.
	return connect(), connect
}

func TestEnsureCreatesGrowsAndReports(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, fresh := newAdmin(t)
	want := []Topic{
		{Name: "user-created", Partitions: 6, ReplicationFactor: 3, RetentionMs: 3600000},
		{Name: "user-created.dlq", Partitions: 6, ReplicationFactor: 3, RetentionMs: 604800000},
	}
	st, err := Ensure(ctx, adm, want)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.Ready || !s.Changed {
			t.Errorf("first ensure: %+v", s)
		}
	}
	details, err := fresh().ListTopics(ctx, "user-created")
	if err != nil {
		t.Fatal(err)
	}
	if d := details["user-created"]; len(d.Partitions) != 6 || d.Partitions.NumReplicas() != 3 {
		t.Errorf("created with %d partitions and %d replicas", len(d.Partitions), d.Partitions.NumReplicas())
	}

	// Converged: nothing to change.
	st, err = Ensure(ctx, fresh(), want)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.Ready || s.Changed {
			t.Errorf("second ensure changed a converged topic: %+v", s)
		}
	}

	// More partitions and another retention: altered in place.
	want[0].Partitions, want[0].RetentionMs = 12, 7200000
	if st, err = Ensure(ctx, fresh(), want); err != nil || !st[0].Ready || !st[0].Changed {
		t.Fatalf("grow: %+v %v", st, err)
	}
	details, _ = fresh().ListTopics(ctx, "user-created")
	if n := len(details["user-created"].Partitions); n != 12 {
		t.Errorf("%d partitions after growing to 12", n)
	}
	cfgs, err := fresh().DescribeTopicConfigs(ctx, "user-created")
	if err != nil {
		t.Fatal(err)
	}
	if got := retention(cfgs, "user-created"); got != "7200000" {
		t.Errorf("retention.ms %q after alter", got)
	}

	// Fewer partitions or another replication factor: reported, never attempted.
	want[0].Partitions = 3
	want[1].ReplicationFactor = 2
	st, err = Ensure(ctx, fresh(), want)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Ready || st[1].Ready || st[0].Message == "" || st[1].Message == "" {
		t.Errorf("impossible changes not reported: %+v", st)
	}
	details, _ = fresh().ListTopics(ctx, "user-created")
	if n := len(details["user-created"].Partitions); n != 12 {
		t.Errorf("partitions changed to %d", n)
	}
}

func TestEnsureUnreachableClusterIsAnError(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := Ensure(ctx, kadm.NewClient(cl), []Topic{{Name: "x", Partitions: 1, ReplicationFactor: 1}}); err == nil {
		t.Error("no error from an unreachable cluster")
	}
}
