package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Handler applies one event. It must be idempotent at its sink (see Claim): a message is
// delivered again after a crash before its offset commits.
type Handler func(ctx context.Context, ev *Event) error

// ConsumerOptions tune a Consumer.
type ConsumerOptions struct {
	Brokers []string
	Group   string
	Topic   string
	// Attempts per message before it goes to the DLQ; Backoff is the first wait, doubled after
	// each attempt, with jitter.
	Attempts int
	Backoff  time.Duration
	// Extra client options (tests).
	Opts []kgo.Opt
}

// ConsumerMetrics are shared by a process's consumers.
type ConsumerMetrics struct {
	processed *prometheus.CounterVec
	lag       *prometheus.GaugeVec
	dlq       *prometheus.GaugeVec
}

// NewConsumerMetrics registers scalestack_kafka_* metrics on reg.
func NewConsumerMetrics(reg prometheus.Registerer) *ConsumerMetrics {
	m := &ConsumerMetrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalestack_kafka_messages_total", Help: "Messages handled, by topic, group and outcome (ok, retried, dead_lettered).",
		}, []string{"topic", "group", "outcome"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scalestack_kafka_consumer_lag", Help: "Messages a consumer group has yet to commit, per topic.",
		}, []string{"topic", "group"}),
		dlq: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scalestack_kafka_dlq_messages", Help: "Messages waiting in a dead-letter topic (not yet replayed).",
		}, []string{"topic"}),
	}
	reg.MustRegister(m.processed, m.lag, m.dlq)
	return m
}

// Consumer applies a topic's events for one consumer group.
type Consumer struct {
	opts    ConsumerOptions
	handle  Handler
	client  *kgo.Client
	metrics *ConsumerMetrics
}

// NewConsumer joins opts.Group on opts.Topic. Offsets are committed only after a batch is
// applied (or dead-lettered), so a crash redelivers rather than loses.
func NewConsumer(opts ConsumerOptions, h Handler, m *ConsumerMetrics) (*Consumer, error) {
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 100 * time.Millisecond
	}
	client, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(opts.Brokers...),
		kgo.ConsumerGroup(opts.Group),
		kgo.ConsumeTopics(opts.Topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ProducerLinger(0),
	}, opts.Opts...)...)
	if err != nil {
		return nil, err
	}
	return &Consumer{opts: opts, handle: h, client: client, metrics: m}, nil
}

// Close leaves the group without committing what was polled but not committed.
func (c *Consumer) Close() { c.client.Close() }

// Run polls, applies and commits until ctx ends or a message can neither be applied nor
// dead-lettered (then it returns the error without committing; run it again).
func (c *Consumer) Run(ctx context.Context) error {
	for {
		fetches := c.client.PollRecords(ctx, 256)
		if ctx.Err() != nil {
			c.client.AllowRebalance()
			return ctx.Err()
		}
		if fetches.IsClientClosed() {
			return errors.New("consumer closed")
		}
		fetches.EachError(func(t string, p int32, err error) {
			slog.Warn("fetch", "topic", t, "partition", p, "error", err)
		})
		recs := fetches.Records()
		for _, rec := range recs {
			if err := c.process(ctx, rec); err != nil {
				c.client.AllowRebalance()
				return err
			}
		}
		if len(recs) > 0 {
			if err := c.client.CommitRecords(ctx, recs...); err != nil {
				slog.Warn("commit", "group", c.opts.Group, "error", err)
			}
		}
		c.client.AllowRebalance()
	}
}

func (c *Consumer) count(outcome string) {
	if c.metrics != nil {
		c.metrics.processed.WithLabelValues(c.opts.Topic, c.opts.Group, outcome).Inc()
	}
}

// maxOutageWait bounds the wait between two tries while a dependency is unavailable.
const maxOutageWait = 10 * time.Second

func (c *Consumer) process(ctx context.Context, rec *kgo.Record) error {
	ev, err := Decode(rec.Value)
	attempts, outages := 0, 0
	for err == nil { // an undecodable message goes straight to the DLQ
		if err = c.handle(ctx, ev); err == nil {
			c.count("ok")
			return nil
		}
		if IsPermanent(err) || ctx.Err() != nil {
			break
		}
		// A dependency that is down (a database restarting, a primary being replaced) fails
		// every message alike: wait for it instead of spending the message's attempts, so an
		// outage never fills the DLQ with messages that were fine.
		var wait time.Duration
		if Unavailable(err) {
			outages++
			c.count("waited")
			wait = min(c.opts.Backoff<<min(outages-1, 16), maxOutageWait)
			if outages == 1 || outages%10 == 0 {
				slog.Warn("a dependency is unavailable; waiting to apply the message", "topic", rec.Topic, "offset", rec.Offset, "error", err)
			}
		} else {
			if attempts++; attempts >= c.opts.Attempts {
				break
			}
			c.count("retried")
			wait = c.opts.Backoff << (attempts - 1)
		}
		wait = wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		err = nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	slog.Warn("dead-lettering a message", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
		"attempts", attempts, "error", err)
	dead := &kgo.Record{
		Topic: rec.Topic + DLQSuffix, Key: rec.Key, Value: rec.Value,
		Headers: append(append([]kgo.RecordHeader(nil), rec.Headers...),
			kgo.RecordHeader{Key: "x-original-topic", Value: []byte(rec.Topic)},
			kgo.RecordHeader{Key: "x-original-partition", Value: []byte(strconv.Itoa(int(rec.Partition)))},
			kgo.RecordHeader{Key: "x-original-offset", Value: []byte(strconv.FormatInt(rec.Offset, 10))},
			kgo.RecordHeader{Key: "x-consumer-group", Value: []byte(c.opts.Group)},
			kgo.RecordHeader{Key: "x-error", Value: []byte(truncate(err.Error(), 512))},
			kgo.RecordHeader{Key: "x-attempts", Value: []byte(strconv.Itoa(attempts))},
			kgo.RecordHeader{Key: "x-permanent", Value: []byte(strconv.FormatBool(IsPermanent(err)))}),
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if perr := c.client.ProduceSync(pctx, dead).FirstErr(); perr != nil {
		return fmt.Errorf("dead-lettering %s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, perr)
	}
	c.count("dead_lettered")
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// ReplayGroup is the consumer group that marks how far a DLQ has been replayed.
const ReplayGroup = "scalestack-dlq-replay"

// Replay moves the messages waiting in topic's DLQ back to topic (after the cause is fixed) and
// returns how many it moved and how many it skipped: a message that failed permanently (a
// poison message: it cannot be decoded) would only fail again, so it stays in the DLQ for
// inspection and is not replayed. Every consumer group of topic sees a replayed message again;
// their sinks dedupe. It stops at the DLQ's end as of the start.
func Replay(ctx context.Context, brokers []string, topic string, opts ...kgo.Opt) (moved, skipped int, err error) {
	return ReplayPrefixed(ctx, brokers, "", topic, opts...)
}

// ReplayPrefixed is Replay on a cluster where the platform's topics carry prefix: topic is the
// logical name (user-created). The replay group keeps one name on a shared cluster: its commits
// are per topic, and every platform's DLQs have their own.
func ReplayPrefixed(ctx context.Context, brokers []string, prefix, topic string, opts ...kgo.Opt) (moved, skipped int, err error) {
	topic, group := prefix+topic, ReplayGroup
	dlq := topic + DLQSuffix
	client, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(dlq),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, opts...)...)
	if err != nil {
		return 0, 0, err
	}
	defer client.Close()
	adm := kadm.NewClient(client)
	pending, err := dlqPending(ctx, adm, dlq)
	if err != nil {
		return 0, 0, err
	}
	for moved+skipped < int(pending) {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil {
			return moved, skipped, ctx.Err()
		}
		if err := fetches.Err0(); err != nil {
			return moved, skipped, err
		}
		var out []*kgo.Record
		n := 0
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			var hs []kgo.RecordHeader
			for _, h := range r.Headers {
				if h.Key == "x-permanent" && string(h.Value) == "true" {
					skipped++
					return
				}
				if h.Key != "x-replayed" {
					hs = append(hs, h)
				}
			}
			hs = append(hs, kgo.RecordHeader{Key: "x-replayed", Value: []byte(time.Now().UTC().Format(time.RFC3339))})
			out = append(out, &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: hs})
		})
		if n == 0 {
			continue
		}
		if len(out) > 0 {
			if err := client.ProduceSync(ctx, out...).FirstErr(); err != nil {
				return moved, skipped, err
			}
		}
		if err := client.CommitUncommittedOffsets(ctx); err != nil {
			return moved, skipped, err
		}
		moved += len(out)
	}
	return moved, skipped, nil
}

// dlqPending is the DLQ's end offsets minus the replay group's commits (or the start offsets).
func dlqPending(ctx context.Context, adm *kadm.Client, dlq string) (int64, error) {
	ends, err := adm.ListEndOffsets(ctx, dlq)
	if err != nil {
		return 0, err
	}
	starts, err := adm.ListStartOffsets(ctx, dlq)
	if err != nil {
		return 0, err
	}
	committed, err := adm.FetchOffsets(ctx, ReplayGroup)
	if err != nil && !errors.Is(err, kadm.ErrEmpty) {
		committed = nil
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		from := int64(0)
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok {
			from = s.Offset
		}
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.At > from {
			from = c.At
		}
		if o.Offset > from {
			total += o.Offset - from
		}
	})
	return total, nil
}

// WatchLag updates the lag and DLQ gauges for groups (group -> topic) every interval until ctx ends.
func WatchLag(ctx context.Context, brokers []string, groups map[string]string, m *ConsumerMetrics, interval time.Duration) {
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		slog.Error("lag watcher", "error", err)
		return
	}
	defer client.Close()
	adm := kadm.NewClient(client)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for group, topic := range groups {
			lags, err := adm.Lag(ctx, group)
			if err == nil {
				var total int64
				for _, gl := range lags {
					for _, pl := range gl.Lag[topic] {
						if pl.Lag > 0 {
							total += pl.Lag
						}
					}
				}
				m.lag.WithLabelValues(topic, group).Set(float64(total))
			}
			if n, err := dlqPending(ctx, adm, topic+DLQSuffix); err == nil {
				m.dlq.WithLabelValues(topic + DLQSuffix).Set(float64(n))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// DLQPending reports how many messages wait in topic's DLQ.
func DLQPending(ctx context.Context, brokers []string, topic string) (int64, error) {
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return 0, err
	}
	defer client.Close()
	return dlqPending(ctx, kadm.NewClient(client), topic+DLQSuffix)
}
