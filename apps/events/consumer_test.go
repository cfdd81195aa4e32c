package events

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/scalestack/scalestack/pkg/shard"
)

func TestUnavailable(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{&mysql.MySQLError{Number: 1040, Message: "Too many connections"}, true},
		{&mysql.MySQLError{Number: 1290, Message: "read-only"}, true},
		{&mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, false},
		{context.DeadlineExceeded, true},
		{errors.New("the user does not exist"), false},
		{Permanent(&net.OpError{Op: "dial"}), false},
	}
	for _, tc := range cases {
		if got := Unavailable(tc.err); got != tc.want {
			t.Errorf("Unavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// A consumer whose database is down for longer than a message's attempts would last waits for it
// and applies the message, instead of dead-lettering a message that was fine; a message whose
// handler fails for its own reasons still goes to the DLQ after its attempts. Kafka is kfake (the
// real protocol; no broker can be installed here).
func TestAnOutageIsWaitedOutAndAFailingMessageDeadLettered(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t", "t"+DLQSuffix))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	seeds := cluster.ListenAddrs()
	producer, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range []shard.ID{1 << 23, 2 << 23} {
		raw, _ := json.Marshal(Event{ID: id, Type: "T", User: id, At: time.Now(), Data: json.RawMessage(`{}`)})
		if err := producer.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: raw}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	var calls atomic.Int32
	applied := make(chan shard.ID, 2)
	handler := func(_ context.Context, ev *Event) error {
		if ev.ID == 2<<23 {
			return errors.New("this message cannot be applied")
		}
		// The first message meets a database that is down for 8 tries: more than its 3 attempts.
		if calls.Add(1) <= 8 {
			return &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
		}
		applied <- ev.ID
		return nil
	}
	c, err := NewConsumer(ConsumerOptions{Brokers: seeds, Group: "g", Topic: "t", Attempts: 3, Backoff: time.Millisecond}, handler, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()

	select {
	case id := <-applied:
		if id != 1<<23 {
			t.Fatalf("applied %d", id)
		}
	case <-ctx.Done():
		t.Fatal("the message was never applied after the outage")
	}
	dlq, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("t"+DLQSuffix), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close()
	var dead []*kgo.Record
	for len(dead) == 0 && ctx.Err() == nil {
		fetches := dlq.PollFetches(ctx)
		dead = append(dead, fetches.Records()...)
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("the consumer stopped with %v", err)
	}
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want the failing message only", len(dead))
	}
	ev, err := Decode(dead[0].Value)
	if err != nil || ev.ID != 2<<23 {
		t.Errorf("dead letter %v (%v), want event %d", ev, err, 2<<23)
	}
}
