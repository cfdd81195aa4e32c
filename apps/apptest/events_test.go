package apptest

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/scalestack/scalestack/apps/events"
	"github.com/scalestack/scalestack/apps/localstack"
	"github.com/scalestack/scalestack/apps/service"
	"github.com/scalestack/scalestack/apps/worker"
	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pkg/shard"
)

// mailsTo counts the welcome emails each address received.
func mailsTo(s *localservers.SMTP) map[string]int {
	out := map[string]int{}
	for _, m := range s.Mails() {
		for _, to := range m.To {
			out[to]++
		}
	}
	return out
}

func suggestionsOf(t *testing.T, st *localstack.Stack, id shard.ID) int {
	t.Helper()
	db := shardDB(t, st, id)
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM social.suggestions WHERE user_id = ?", int64(id)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// shardDB is a root connection to the primary holding id.
func shardDB(t *testing.T, st *localstack.Stack, id shard.ID) *sql.DB {
	t.Helper()
	p, err := st.Apps[service.Worker].Shards.Router().RouteID(id)
	if err != nil {
		t.Fatal(err)
	}
	return rootDB(t, st.DBs[p.Index])
}

func claims(t *testing.T, st *localstack.Stack, consumer string) int {
	t.Helper()
	total := 0
	for _, m := range st.DBs {
		var n int
		if err := rootDB(t, m).QueryRow("SELECT COUNT(*) FROM social.processed_events WHERE consumer = ?", consumer).Scan(&n); err != nil {
			t.Fatal(err)
		}
		total += n
	}
	return total
}

func TestSignupWelcomeAndSuggestionsOnce(t *testing.T) {
	before := mailsTo(shared.SMTP)
	var ids []shard.ID
	for range 5 {
		_, id := signup(t, shared.Gateway(), "newbie")
		ids = append(ids, id)
	}
	testutil.Eventually(t, "welcome emails and suggestions for every new user", 20*time.Second, func() error {
		after := mailsTo(shared.SMTP)
		got := 0
		for addr, n := range after {
			if n-before[addr] > 1 {
				return fmt.Errorf("%s got %d welcome emails", addr, n-before[addr])
			}
			if n > before[addr] {
				got++
			}
		}
		if got < len(ids) {
			return fmt.Errorf("%d of %d emails", got, len(ids))
		}
		// The first may find nobody to suggest (it may have been alone); the others have it.
		for _, id := range ids[1:] {
			if suggestionsOf(t, shared, id) == 0 {
				return fmt.Errorf("no suggestions for %s yet", id)
			}
		}
		return nil
	})
}

// TestConsumerCrashMidBatchAppliesOnce runs the welcome-email and recommendation handlers in a
// consumer that dies after applying part of a batch, before committing, then in a fresh one:
// every event is applied once in effect.
func TestConsumerCrashMidBatchAppliesOnce(t *testing.T) {
	st := localstack.Start(t, localstack.Options{Configure: testConfig,
		Services: []string{service.User, service.Post, service.Feed, service.Gateway}})
	const users = 12
	for range users {
		signup(t, st.Gateway(), "crash")
	}
	relay := st.Apps[service.User].Relay
	if err := relay.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := st.Config
	shards := st.Apps[service.User].Shards
	w := &worker.Worker{Shards: shards, Redis: st.Apps[service.User].Redis, Mailer: &worker.SMTP{Addr: cfg.SMTPAddr, From: cfg.SMTPFrom}, CelebrityFollowers: celebrity}
	both := func(ctx context.Context, ev *events.Event) error {
		if err := w.Welcome(ctx, ev); err != nil {
			return err
		}
		return w.Recommend(ctx, ev)
	}
	// First consumer: dies (its context ends) after applying 5 events, mid-batch, uncommitted.
	ctx, crash := context.WithCancel(context.Background())
	var applied atomic.Int32
	c1, err := events.NewConsumer(events.ConsumerOptions{Brokers: cfg.KafkaBrokers, Group: "crashy", Topic: events.TopicUserCreated},
		func(ctx context.Context, ev *events.Event) error {
			if err := both(ctx, ev); err != nil {
				return err
			}
			if applied.Add(1) == 5 {
				crash()
			}
			return nil
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = c1.Run(ctx)
	c1.Close()
	if n := len(st.SMTP.Mails()); n < 5 {
		t.Fatalf("the first consumer sent %d emails before dying, want at least 5", n)
	}
	// Second consumer of the same group: starts from the last commit, sees everything again.
	ctx2, stop := context.WithCancel(context.Background())
	defer stop()
	c2, err := events.NewConsumer(events.ConsumerOptions{Brokers: cfg.KafkaBrokers, Group: "crashy", Topic: events.TopicUserCreated}, both, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	go func() { _ = c2.Run(ctx2) }()
	testutil.Eventually(t, "every user welcomed and recommended", 20*time.Second, func() error {
		if n := claims(t, st, worker.GroupWelcome); n != users {
			return fmt.Errorf("%d welcome claims", n)
		}
		if n := claims(t, st, worker.GroupRecommend); n != users {
			return fmt.Errorf("%d recommendation claims", n)
		}
		return nil
	})
	for addr, n := range mailsTo(st.SMTP) {
		if n != 1 {
			t.Errorf("%s received %d welcome emails, want exactly 1", addr, n)
		}
	}
	if n := len(mailsTo(st.SMTP)); n != users {
		t.Errorf("%d users received email, want %d", n, users)
	}
}

// TestBrokerDownDuringSignup: with Kafka down, signup still answers at once; the events wait in
// the outbox and leave when the broker is back.
func TestBrokerDownDuringSignup(t *testing.T) {
	st := localstack.Start(t, localstack.Options{NoKafka: true, Configure: testConfig})
	for range 3 {
		start := time.Now()
		signup(t, st.Gateway(), "offline")
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("signup took %s with the broker down: it must not wait for Kafka", d)
		}
	}
	pending := 0
	for _, m := range st.DBs {
		var n int
		if err := rootDB(t, m).QueryRow("SELECT COUNT(*) FROM social.outbox").Scan(&n); err != nil {
			t.Fatal(err)
		}
		pending += n
	}
	if pending < 3 {
		t.Fatalf("%d events in the outbox with the broker down, want 3", pending)
	}
	st.StartKafka()
	testutil.Eventually(t, "the outbox drained and every user welcomed once", 60*time.Second, func() error {
		mails := mailsTo(st.SMTP)
		if len(mails) != 3 {
			return fmt.Errorf("%d users welcomed", len(mails))
		}
		for a, n := range mails {
			if n != 1 {
				return fmt.Errorf("%s got %d emails", a, n)
			}
		}
		return nil
	})
}

// TestPoisonAndFailingMessagesGoToTheDLQAndReplay: a poison message is dead-lettered at once and
// does not block the partition; a message whose sink keeps failing is dead-lettered after its
// retries, and replay brings it back once the sink works.
func TestPoisonAndFailingMessagesGoToTheDLQAndReplay(t *testing.T) {
	st := localstack.Start(t, localstack.Options{Configure: testConfig})
	brokers := st.Config.KafkaBrokers
	ctx := context.Background()
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: events.TopicUserCreated, Key: []byte("1"), Value: []byte("{not json")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The sink fails: the welcome email cannot be sent.
	st.SMTP.SetFailing(true)
	signup(t, st.Gateway(), "unlucky")
	// Both consumer groups of the topic dead-letter the poison message; the welcome-email group
	// dead-letters the user whose email cannot be sent.
	testutil.Eventually(t, "the poison message and the failing one in the DLQ", 60*time.Second, func() error {
		n, err := events.DLQPending(ctx, brokers, events.TopicUserCreated)
		if err != nil || n != 3 {
			return fmt.Errorf("%d in the DLQ (%w)", n, err)
		}
		return nil
	})
	// The partition was not blocked: a later user is recommended (another consumer group) and,
	// once SMTP works, welcomed.
	st.SMTP.SetFailing(false)
	_, later := signup(t, st.Gateway(), "later")
	testutil.Eventually(t, "a later user welcomed", 30*time.Second, func() error {
		if suggestionsOf(t, st, later) == 0 || len(st.SMTP.Mails()) != 1 {
			return fmt.Errorf("%d emails", len(st.SMTP.Mails()))
		}
		return nil
	})
	// The DLQ gauge the alert reads.
	testutil.Eventually(t, "scalestack_kafka_dlq_messages reports them", 40*time.Second, func() error {
		body := get(t, st.URLs[service.Worker]+"/metrics")
		if !contains(body, `scalestack_kafka_dlq_messages{topic="user-created.dlq"} 3`) {
			return fmt.Errorf("gauge not there yet")
		}
		return nil
	})
	moved, skipped, err := events.Replay(ctx, brokers, events.TopicUserCreated)
	if err != nil || moved != 1 || skipped != 2 {
		t.Fatalf("replay moved %d and skipped %d (%v), want 1 and the 2 poison copies", moved, skipped, err)
	}
	testutil.Eventually(t, "the replayed user welcomed once; the DLQ empty", 60*time.Second, func() error {
		mails := mailsTo(st.SMTP)
		if len(mails) != 2 {
			return fmt.Errorf("%d users welcomed", len(mails))
		}
		for a, n := range mails {
			if n != 1 {
				return fmt.Errorf("%s got %d emails", a, n)
			}
		}
		n, err := events.DLQPending(ctx, brokers, events.TopicUserCreated)
		if err != nil || n != 0 {
			return fmt.Errorf("%d in the DLQ (%w)", n, err)
		}
		return nil
	})
	testutil.Eventually(t, "the gauge back to 0", 40*time.Second, func() error {
		body := get(t, st.URLs[service.Worker]+"/metrics")
		if !contains(body, `scalestack_kafka_dlq_messages{topic="user-created.dlq"} 0`) {
			return fmt.Errorf("gauge not there yet")
		}
		return nil
	})
}
