// Package loadgen drives the gateway with a Zipf workload over many users (a few users are very
// active, most are not, as on a real network): signups, follows, posts, feed reads and profile
// reads in a configurable mix, closed-loop (N workers back to back, for peak throughput) or
// open-loop at a fixed rate (latency is measured from each request's scheduled start, so a slow
// server cannot hide its queueing: no coordinated omission). It reports throughput, latency
// percentiles and the error rate, overall and per operation.
package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalestack/scalestack/pkg/shard"
)

// Op is one kind of request.
type Op string

// The operations.
const (
	Signup  Op = "signup"
	Follow  Op = "follow"
	Post    Op = "post"
	Feed    Op = "feed"
	Profile Op = "profile"
)

// Mix weights the operations.
type Mix map[Op]int

// DefaultMix is read-heavy, like a social network: mostly feeds and profiles.
var DefaultMix = Mix{Profile: 50, Feed: 30, Post: 10, Follow: 8, Signup: 2}

// Config is one run.
type Config struct {
	Target string
	// Users is the population the Zipf distribution ranges over (index 0 is the most active).
	Users []shard.ID
	// Token returns a bearer token for a user.
	Token func(shard.ID) string
	Mix   Mix
	// ZipfS is the Zipf exponent (> 1); larger concentrates activity on fewer users.
	ZipfS float64
	// Concurrency is the number of workers; Rate, when > 0, makes the run open-loop.
	Concurrency int
	Rate        float64
	Duration    time.Duration
	// Seed makes the sequence of operations repeatable.
	Seed uint64
	// Client is the HTTP client (default: one with a pool sized for Concurrency).
	Client *http.Client
	// Seen, when set, remembers which users' profiles were read (across the runs sharing it), so
	// that a run reports how many of its profile reads were the first read of that profile: the
	// misses even an unbounded cache that never expires would have had.
	Seen *Seen
}

// Seen is a set of user indexes, safe for concurrent use.
type Seen struct{ bits []atomic.Uint64 }

// NewSeen returns an empty set for indexes below n.
func NewSeen(n int) *Seen { return &Seen{bits: make([]atomic.Uint64, n/64+1)} }

// Add adds i and reports whether it was new.
func (s *Seen) Add(i uint64) bool {
	w, bit := &s.bits[i/64], uint64(1)<<(i%64)
	for {
		old := w.Load()
		if old&bit != 0 {
			return false
		}
		if w.CompareAndSwap(old, old|bit) {
			return true
		}
	}
}

// Stats are the figures of one operation (or of all).
type Stats struct {
	Requests   int           `json:"requests"`
	Errors     int           `json:"errors"`
	Throughput float64       `json:"throughput_rps"`
	P50        time.Duration `json:"p50"`
	P95        time.Duration `json:"p95"`
	P99        time.Duration `json:"p99"`
	Max        time.Duration `json:"max"`
}

// ErrorRate is errors over requests.
func (s Stats) ErrorRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Requests)
}

// Result is a run's figures.
type Result struct {
	Duration time.Duration `json:"duration"`
	All      Stats         `json:"all"`
	ByOp     map[Op]Stats  `json:"by_op"`
	// Dropped counts open-loop requests that could not even start (every worker busy).
	Dropped int `json:"dropped"`
	// ErrorSamples holds a few failed responses, for the report.
	ErrorSamples []string `json:"error_samples,omitempty"`
	// FirstProfileReads counts the profile reads that were the first read of their profile (with
	// Config.Seen): a cache's cold misses.
	FirstProfileReads int `json:"first_profile_reads,omitempty"`
}

func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%8.0f req/s  p50 %-8s p95 %-8s p99 %-8s errors %.3f%%", r.All.Throughput,
		r.All.P50.Round(10*time.Microsecond), r.All.P95.Round(10*time.Microsecond), r.All.P99.Round(10*time.Microsecond), 100*r.All.ErrorRate())
	ops := make([]string, 0, len(r.ByOp))
	for op := range r.ByOp {
		ops = append(ops, string(op))
	}
	sort.Strings(ops)
	for _, op := range ops {
		s := r.ByOp[Op(op)]
		fmt.Fprintf(&b, "\n    %-8s %7d req  p50 %-8s p95 %-8s p99 %-8s errors %d", op, s.Requests,
			s.P50.Round(10*time.Microsecond), s.P95.Round(10*time.Microsecond), s.P99.Round(10*time.Microsecond), s.Errors)
	}
	return b.String()
}

type sample struct {
	op  Op
	lat time.Duration
	ok  bool
}

type worker struct {
	cfg     *Config
	rnd     *rand.Rand
	zipf    *rand.Zipf
	samples []sample
	errs    []string
	next    *atomic.Int64
	first   int
}

// Run runs the workload until cfg.Duration has passed or ctx ends.
func Run(ctx context.Context, cfg Config) Result {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 32
	}
	if cfg.ZipfS <= 1 {
		cfg.ZipfS = 1.1
	}
	if cfg.Mix == nil {
		cfg.Mix = DefaultMix
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			MaxIdleConns: cfg.Concurrency * 2, MaxIdleConnsPerHost: cfg.Concurrency * 2, IdleConnTimeout: time.Minute}}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var next atomic.Int64
	workers := make([]*worker, cfg.Concurrency)
	for i := range workers {
		r := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		workers[i] = &worker{cfg: &cfg, rnd: r, zipf: rand.NewZipf(r, cfg.ZipfS, 1, uint64(len(cfg.Users)-1)), next: &next}
	}
	start := time.Now()
	var wg sync.WaitGroup
	dropped := 0
	if cfg.Rate <= 0 {
		for _, w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					w.one(ctx, time.Now())
				}
			}()
		}
		wg.Wait()
	} else {
		queue := make(chan time.Time, cfg.Concurrency)
		for _, w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for due := range queue {
					w.one(ctx, due)
				}
			}()
		}
		interval := time.Duration(float64(time.Second) / cfg.Rate)
		due := time.Now()
	loop:
		for {
			due = due.Add(interval)
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					break loop
				case <-time.After(d):
				}
			}
			if ctx.Err() != nil {
				break
			}
			select {
			case queue <- due:
			default:
				dropped++
			}
		}
		close(queue)
		wg.Wait()
	}
	elapsed := time.Since(start)
	var all []sample
	var errs []string
	first := 0
	for _, w := range workers {
		all = append(all, w.samples...)
		errs = append(errs, w.errs...)
		first += w.first
	}
	res := Result{Duration: elapsed, ByOp: map[Op]Stats{}, Dropped: dropped, FirstProfileReads: first}
	if len(errs) > 5 {
		errs = errs[:5]
	}
	res.ErrorSamples = errs
	res.All = stats(all, elapsed)
	byOp := map[Op][]sample{}
	for _, s := range all {
		byOp[s.op] = append(byOp[s.op], s)
	}
	for op, ss := range byOp {
		res.ByOp[op] = stats(ss, elapsed)
	}
	return res
}

func stats(ss []sample, elapsed time.Duration) Stats {
	st := Stats{Requests: len(ss)}
	lats := make([]time.Duration, 0, len(ss))
	for _, s := range ss {
		if !s.ok {
			st.Errors++
		}
		lats = append(lats, s.lat)
	}
	if len(lats) == 0 {
		return st
	}
	slices.Sort(lats)
	pct := func(p float64) time.Duration { return lats[min(len(lats)-1, int(p*float64(len(lats))))] }
	st.P50, st.P95, st.P99, st.Max = pct(0.50), pct(0.95), pct(0.99), lats[len(lats)-1]
	st.Throughput = float64(len(ss)) / elapsed.Seconds()
	return st
}

func (w *worker) pick() Op {
	total := 0
	for _, n := range w.cfg.Mix {
		total += n
	}
	k := w.rnd.IntN(total)
	for _, op := range []Op{Profile, Feed, Post, Follow, Signup} {
		if k < w.cfg.Mix[op] {
			return op
		}
		k -= w.cfg.Mix[op]
	}
	return Profile
}

func (w *worker) user() shard.ID { return w.cfg.Users[w.zipf.Uint64()] }

func (w *worker) one(ctx context.Context, due time.Time) {
	op := w.pick()
	var method, path, body string
	me := w.user()
	switch op {
	case Profile:
		i := w.zipf.Uint64()
		if w.cfg.Seen != nil && w.cfg.Seen.Add(i) {
			w.first++
		}
		method, path = "GET", "/api/users/"+w.cfg.Users[i].String()
	case Feed:
		method, path = "GET", "/api/feed?limit=20"
	case Post:
		method, path, body = "POST", "/api/posts", fmt.Sprintf(`{"body":"load post %d"}`, w.rnd.Int64())
	case Follow:
		target := w.user()
		if target == me {
			target = w.cfg.Users[w.rnd.IntN(len(w.cfg.Users))]
		}
		method, path = "PUT", "/api/users/"+target.String()+"/follow"
	case Signup:
		n := w.next.Add(1)
		h := fmt.Sprintf("lg%d_%d_%d", w.cfg.Seed%1000, time.Now().UnixNano()%1_000_000_000, n)
		if len(h) > 32 {
			h = h[:32]
		}
		method, path, body = "POST", "/api/signup", fmt.Sprintf(`{"handle":%q,"email":"%s@example.com","password":"load test password","display_name":"Load %d"}`, h, h, n)
	}
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, w.cfg.Target+path, rd)
	if err != nil {
		return
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if op != Signup && op != Profile {
		req.Header.Set("Authorization", "Bearer "+w.cfg.Token(me))
	}
	res, err := w.cfg.Client.Do(req)
	ok := err == nil && res.StatusCode < 400
	if err == nil {
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if !ok && len(w.errs) < 5 {
			w.errs = append(w.errs, fmt.Sprintf("%s %s: %d %s", method, path, res.StatusCode, bytes.TrimSpace(b)))
		}
	} else if ctx.Err() != nil {
		return // the run ended mid-request: not an error of the server
	} else if len(w.errs) < 5 {
		w.errs = append(w.errs, fmt.Sprintf("%s %s: %v", method, path, err))
	}
	w.samples = append(w.samples, sample{op: op, lat: time.Since(due), ok: ok})
}
