// Package resilience is how one service calls another: a timeout on every call, retries only for
// idempotent calls (with exponential backoff and full jitter), a circuit breaker (sony/gobreaker)
// and a concurrency limit (a bulkhead) per dependency, so that a slow or failing dependency costs
// its callers a fast error, not their threads, and the caller can degrade instead of failing.
package resilience

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/semaphore"

	"github.com/scalestack/scalestack/apps/httpx"
	"github.com/scalestack/scalestack/apps/telemetry"
)

// ErrBulkheadFull is returned when a dependency already has its limit of calls in flight.
var ErrBulkheadFull = errors.New("too many calls in flight to the dependency")

// Options tune a Client.
type Options struct {
	// Timeout of one attempt.
	Timeout time.Duration
	// Retries of an idempotent call after the first attempt.
	Retries int
	// Backoff is the base of the exponential backoff between attempts.
	Backoff time.Duration
	// MaxConcurrent calls in flight; further calls wait up to QueueWait, then fail.
	MaxConcurrent int64
	QueueWait     time.Duration
	// The breaker opens after ConsecutiveFailures failures in a row, or when at least
	// MinRequests calls in its interval fail at FailureRatio or more; it stays open for OpenFor,
	// then lets one call probe.
	ConsecutiveFailures uint32
	MinRequests         uint32
	FailureRatio        float64
	OpenFor             time.Duration
}

// DefaultOptions suit a call to a sibling service in the same cluster.
func DefaultOptions() Options {
	return Options{
		Timeout: 2 * time.Second, Retries: 2, Backoff: 20 * time.Millisecond,
		MaxConcurrent: 256, QueueWait: 50 * time.Millisecond,
		ConsecutiveFailures: 10, MinRequests: 20, FailureRatio: 0.5, OpenFor: 5 * time.Second,
	}
}

// Metrics count calls per dependency and outcome and show breaker states.
type Metrics struct {
	calls   *prometheus.CounterVec
	state   *prometheus.GaugeVec
	latency *prometheus.HistogramVec
}

// NewMetrics registers the client metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalestack_dependency_calls_total", Help: "Calls to a dependency by outcome (ok, error, client_error, open, bulkhead).",
		}, []string{"dependency", "outcome"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scalestack_circuit_breaker_state", Help: "A dependency's breaker: 0 closed, 1 half-open, 2 open.",
		}, []string{"dependency"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "scalestack_dependency_call_duration_seconds", Help: "Duration of calls to a dependency, retries included.",
			Buckets: telemetry.DurationBuckets,
		}, []string{"dependency"}),
	}
	reg.MustRegister(m.calls, m.state, m.latency)
	return m
}

// Client calls one dependency's JSON API.
type Client struct {
	name    string
	base    string
	http    *http.Client
	opts    Options
	breaker *gobreaker.CircuitBreaker[*response]
	sem     *semaphore.Weighted
	metrics *Metrics
}

type response struct {
	status int
	body   []byte
}

// StatusError is a dependency's non-2xx answer. A 4xx is the caller's fault and does not count
// against the breaker; a 5xx does.
type StatusError struct {
	Dependency string
	Status     int
	Body       []byte
	// Partial: the dependency answered that part of its data is unavailable (one shard), not
	// that it is (httpx.HeaderPartial): it does not count against the breaker.
	Partial bool
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s answered %d: %s", e.Dependency, e.Status, bytes.TrimSpace(e.Body))
}

// HTTPError turns a dependency's 4xx into the same error for our caller (its reason passes
// through), and anything else into a 503 naming the dependency.
func HTTPError(err error) error {
	var se *StatusError
	if errors.As(err, &se) && se.Partial {
		var he httpx.Error
		if json.Unmarshal(se.Body, &he) == nil && he.Code != "" {
			he.Status, he.Partial = se.Status, true
			return &he
		}
	}
	if errors.As(err, &se) && se.Status >= 400 && se.Status < 500 {
		var he httpx.Error
		if json.Unmarshal(se.Body, &he) == nil && he.Code != "" {
			he.Status = se.Status
			return &he
		}
		return httpx.Errorf(se.Status, "dependency_rejected", "%s", bytes.TrimSpace(se.Body))
	}
	var he *httpx.Error
	if errors.As(err, &he) {
		return he
	}
	return httpx.Unavailable("a dependency is unavailable: %v", err)
}

// New returns a client of the service at base (e.g. http://demo-user:8080).
func New(name, base string, opts Options, m *Metrics) *Client {
	c := &Client{
		name: name, base: base, opts: opts, metrics: m,
		http: &http.Client{Transport: telemetry.Transport(&http.Transport{
			MaxIdleConns: 1024, MaxIdleConnsPerHost: 512, IdleConnTimeout: 90 * time.Second,
		})},
		sem: semaphore.NewWeighted(opts.MaxConcurrent),
	}
	c.breaker = gobreaker.NewCircuitBreaker[*response](gobreaker.Settings{
		Name:    name,
		Timeout: opts.OpenFor,
		ReadyToTrip: func(cn gobreaker.Counts) bool {
			return cn.ConsecutiveFailures >= opts.ConsecutiveFailures ||
				(cn.Requests >= opts.MinRequests && float64(cn.TotalFailures)/float64(cn.Requests) >= opts.FailureRatio)
		},
		IsSuccessful: func(err error) bool {
			var se *StatusError
			return err == nil || (errors.As(err, &se) && (se.Status < 500 || se.Partial)) || errors.Is(err, context.Canceled)
		},
		OnStateChange: func(_ string, _, to gobreaker.State) {
			if m != nil {
				m.state.WithLabelValues(name).Set(float64(to))
			}
		},
	})
	if m != nil {
		m.state.WithLabelValues(name).Set(0)
	}
	return c
}

// State reports the breaker's state (for tests and readiness).
func (c *Client) State() gobreaker.State { return c.breaker.State() }

// Get calls GET path and decodes the JSON answer into out (a *[]byte receives it undecoded).
// GET is idempotent: it is retried.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out, true)
}

// Put calls PUT path; PUT and DELETE are idempotent by our APIs' contract and are retried.
func (c *Client) Put(ctx context.Context, path string, in, out any) error {
	return c.do(ctx, http.MethodPut, path, in, out, true)
}

// Delete calls DELETE path.
func (c *Client) Delete(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodDelete, path, nil, out, true)
}

// Post calls POST path once: a POST may have taken effect before a failure, so it is not retried.
func (c *Client) Post(ctx context.Context, path string, in, out any) error {
	return c.do(ctx, http.MethodPost, path, in, out, false)
}

// Patch calls PATCH path once.
func (c *Client) Patch(ctx context.Context, path string, in, out any) error {
	return c.do(ctx, http.MethodPatch, path, in, out, false)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any, idempotent bool) error {
	start := time.Now()
	defer func() {
		if c.metrics != nil {
			c.metrics.latency.WithLabelValues(c.name).Observe(time.Since(start).Seconds())
		}
	}()
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	attempts := 1
	if idempotent {
		attempts += c.opts.Retries
	}
	var err error
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			// Full jitter: a random wait up to base*2^attempt, so retries from many callers spread.
			wait := time.Duration(rand.Int64N(int64(c.opts.Backoff) << attempt))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		var res *response
		res, err = c.attempt(ctx, method, path, body)
		if err == nil {
			c.count("ok")
			if raw, ok := out.(*[]byte); ok {
				*raw = res.body // passed through undecoded
				return nil
			}
			if out != nil && len(res.body) > 0 {
				if err := json.Unmarshal(res.body, out); err != nil {
					return fmt.Errorf("decoding %s's answer: %w", c.name, err)
				}
			}
			return nil
		}
		var se *StatusError
		switch {
		case errors.As(err, &se) && se.Status < 500:
			c.count("client_error")
			return err
		case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
			c.count("open")
			return fmt.Errorf("%s: %w", c.name, err)
		case errors.Is(err, ErrBulkheadFull):
			c.count("bulkhead")
			return fmt.Errorf("%s: %w", c.name, err)
		case ctx.Err() != nil:
			c.count("error")
			return err
		}
		c.count("error")
	}
	return err
}

func (c *Client) count(outcome string) {
	if c.metrics != nil {
		c.metrics.calls.WithLabelValues(c.name, outcome).Inc()
	}
}

func (c *Client) attempt(ctx context.Context, method, path string, body []byte) (*response, error) {
	wctx, cancel := context.WithTimeout(ctx, c.opts.QueueWait)
	err := c.sem.Acquire(wctx, 1)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, ErrBulkheadFull
	}
	defer c.sem.Release(1)
	return c.breaker.Execute(func() (*response, error) {
		actx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(actx, method, c.base+path, rd)
		if err != nil {
			return nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, err
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 300 {
			return nil, &StatusError{Dependency: c.name, Status: resp.StatusCode, Body: b, Partial: resp.Header.Get(httpx.HeaderPartial) != ""}
		}
		return &response{status: resp.StatusCode, body: b}, nil
	})
}
