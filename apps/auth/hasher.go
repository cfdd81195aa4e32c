package auth

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// ErrHasherBusy is returned when more password hashes wait than the Hasher queues: the caller
// should answer 503 with Retry-After rather than let the queue (and its 19 MiB per hash) grow.
var ErrHasherBusy = errors.New("too many password hashes waiting")

// Hasher runs argon2id in a bounded pool: at most Slots hashes at once (one core fewer than the
// process has, at least one), so a signup or login burst leaves a core to every other request
// instead of pushing their tail up, and bounds the memory the hashes take (Memory KiB each).
// Callers beyond the slots wait in line, up to MaxQueue; the line's length and each caller's wait
// and each hash's time in its slot are metrics (scalestack_password_hash_waiting, _wait_seconds,
// _duration_seconds, _rejected_total).
type Hasher struct {
	Params HashParams

	sem      *semaphore.Weighted
	maxQueue int64
	waiting  atomic.Int64

	waitingGauge prometheus.GaugeFunc
	wait         prometheus.Histogram
	duration     prometheus.Histogram
	rejected     prometheus.Counter
}

// NewHasher returns a pool of slots (0: GOMAXPROCS-1, at least 1) with a line of maxQueue
// (0: 16 per slot), registering its metrics with reg when reg is not nil.
func NewHasher(p HashParams, slots, maxQueue int, reg prometheus.Registerer) (*Hasher, error) {
	if slots <= 0 {
		slots = max(runtime.GOMAXPROCS(0)-1, 1)
	}
	if maxQueue <= 0 {
		maxQueue = 16 * slots
	}
	h := &Hasher{Params: p, sem: semaphore.NewWeighted(int64(slots)), maxQueue: int64(maxQueue)}
	h.waitingGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "scalestack_password_hash_waiting",
		Help: "Password hashes (signup, login) waiting for a slot of the argon2id pool.",
	}, func() float64 { return float64(h.waiting.Load()) })
	h.wait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "scalestack_password_hash_wait_seconds",
		Help:    "Time a password hash waited for a slot of the argon2id pool.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	h.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "scalestack_password_hash_duration_seconds",
		Help: "Time a password hash took in its slot of the argon2id pool (a rise with the same parameters means the hashes are short of CPU).",
		// One hash takes about 26 ms of a free core (go test -bench HashPassword ./apps/auth).
		Buckets: []float64{.01, .02, .03, .04, .05, .075, .1, .25, .5, 1},
	})
	h.rejected = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "scalestack_password_hash_rejected_total",
		Help: "Password hashes refused because the argon2id pool's line was full.",
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{h.waitingGauge, h.wait, h.duration, h.rejected} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return h, nil
}

// Hash hashes password in the pool.
func (h *Hasher) Hash(ctx context.Context, password string) (encoded string, err error) {
	err = h.run(ctx, func() { encoded, err = HashPassword(password, h.Params) })
	return encoded, err
}

// Check checks password against encoded in the pool.
func (h *Hasher) Check(ctx context.Context, password, encoded string) (ok bool, err error) {
	err = h.run(ctx, func() { ok, err = CheckPassword(password, encoded) })
	return ok, err
}

// run runs fn in a free slot, or waits in line for one (until the caller gives up), or refuses
// when the line is full.
func (h *Hasher) run(ctx context.Context, fn func()) error {
	start := time.Now()
	if !h.sem.TryAcquire(1) {
		if h.waiting.Add(1) > h.maxQueue {
			h.waiting.Add(-1)
			h.rejected.Inc()
			return ErrHasherBusy
		}
		err := h.sem.Acquire(ctx, 1)
		h.waiting.Add(-1)
		if err != nil {
			return err
		}
	}
	defer h.sem.Release(1)
	h.wait.Observe(time.Since(start).Seconds())
	began := time.Now()
	fn()
	h.duration.Observe(time.Since(began).Seconds())
	return nil
}
