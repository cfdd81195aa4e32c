package events

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/scalestack/scalestack/apps/store"
)

// Relay moves outbox rows to Kafka. One relay per shard works at a time (a named lock on the
// shard), so running it in every replica of a service is safe.
type Relay struct {
	// TopicPrefix goes before the outbox's topic names (the logical ones: user-created, ...) on
	// the Kafka cluster: the platform's prefix.
	TopicPrefix string

	shards   *store.Shards
	client   *kgo.Client
	batch    int
	interval time.Duration
	wake     chan struct{}
	pending  *prometheus.GaugeVec
	relayed  prometheus.Counter
}

// NewProducer returns an idempotent, ordered producer (franz-go's defaults: idempotence on,
// acks from all in-sync replicas) that partitions by key.
func NewProducer(brokers []string, opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ProducerLinger(time.Millisecond),
		kgo.RecordRetries(10),
	}, opts...)...)
}

// NewRelay returns a relay over every shard's outbox; metrics go to reg.
func NewRelay(shards *store.Shards, client *kgo.Client, reg prometheus.Registerer) *Relay {
	r := &Relay{
		shards: shards, client: client, batch: 500, interval: time.Second, wake: make(chan struct{}, 1),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scalestack_outbox_pending", Help: "Events waiting in a shard's outbox.",
		}, []string{"shard"}),
		relayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalestack_outbox_relayed_total", Help: "Events relayed from the outbox to Kafka.",
		}),
	}
	if reg != nil {
		reg.MustRegister(r.pending, r.relayed)
	}
	return r
}

// Notify wakes the relay after a commit, so events leave at once rather than on the next tick.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run relays until ctx ends. Errors (Kafka down, a shard down) are logged and retried; the
// events wait in the outbox meanwhile.
func (r *Relay) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		for _, db := range r.shards.All() {
			if err := r.drain(ctx, db); err != nil && ctx.Err() == nil {
				slog.Warn("outbox relay", "shard", db.Index, "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
		}
	}
}

// Drain relays every shard's outbox once (tests and shutdown).
func (r *Relay) Drain(ctx context.Context) error {
	for _, db := range r.shards.All() {
		if err := r.drain(ctx, db); err != nil {
			return err
		}
	}
	return nil
}

func (r *Relay) drain(ctx context.Context, db *store.DB) error {
	conn, err := db.Primary.Conn(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('scalestack_outbox_relay', 0)").Scan(&got); err != nil {
		return err
	}
	if got.Int64 != 1 {
		return nil // another replica is relaying this shard
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK('scalestack_outbox_relay')")
	}()
	for {
		n, err := r.relayBatch(ctx, conn)
		if err != nil {
			r.updatePending(ctx, conn, db.Index)
			return err
		}
		if n < r.batch {
			r.updatePending(ctx, conn, db.Index)
			return nil
		}
	}
}

func (r *Relay) updatePending(ctx context.Context, conn *sql.Conn, index int) {
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox").Scan(&n); err == nil {
		r.pending.WithLabelValues(strconv.Itoa(index)).Set(float64(n))
	}
}

func (r *Relay) relayBatch(ctx context.Context, conn *sql.Conn) (int, error) {
	rows, err := conn.QueryContext(ctx, "SELECT seq, topic, msg_key, payload FROM outbox ORDER BY seq LIMIT ?", r.batch)
	if err != nil {
		return 0, err
	}
	var seqs []any
	var recs []*kgo.Record
	for rows.Next() {
		var seq int64
		rec := &kgo.Record{}
		var key string
		if err := rows.Scan(&seq, &rec.Topic, &key, &rec.Value); err != nil {
			_ = rows.Close()
			return 0, err
		}
		rec.Key = []byte(key)
		rec.Topic = r.TopicPrefix + rec.Topic
		seqs = append(seqs, seq)
		recs = append(recs, rec)
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	if len(recs) == 0 {
		return 0, nil
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := r.client.ProduceSync(pctx, recs...).FirstErr(); err != nil {
		return 0, fmt.Errorf("producing %d events: %w", len(recs), err)
	}
	// Delete exactly what was sent: a row with a lower seq may commit after our read.
	q := "DELETE FROM outbox WHERE seq IN (?" + strings.Repeat(",?", len(seqs)-1) + ")"
	if _, err := conn.ExecContext(ctx, q, seqs...); err != nil {
		return 0, err // they go again: consumers dedupe
	}
	r.relayed.Add(float64(len(recs)))
	return len(recs), nil
}
