package resilience

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/scalestack/scalestack/apps/httpx"
)

func server(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

func opts() Options {
	o := DefaultOptions()
	o.Timeout, o.Backoff, o.OpenFor = 50*time.Millisecond, time.Millisecond, time.Hour
	o.ConsecutiveFailures = 5
	return o
}

func TestSlowDependencyTripsTheBreakerAndCallsFailFast(t *testing.T) {
	s, hits := server(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	})
	c := New("slow", s.URL, opts(), NewMetrics(prometheus.NewRegistry()))
	for range 10 {
		_ = c.Get(context.Background(), "/x", nil)
	}
	if c.State() != gobreaker.StateOpen {
		t.Fatalf("breaker %s after 10 timed-out calls, want open", c.State())
	}
	before := hits.Load()
	start := time.Now()
	err := c.Get(context.Background(), "/x", nil)
	if !errors.Is(err, gobreaker.ErrOpenState) {
		t.Fatalf("call with the breaker open: %v", err)
	}
	if hits.Load() != before {
		t.Fatal("the open breaker let a call through to the dependency")
	}
	if d := time.Since(start); d > 40*time.Millisecond {
		// Not a timing assertion on the dependency: an open breaker must not wait at all.
		t.Logf("open-breaker call took %s", d)
	}
}

func TestOnlyIdempotentCallsAreRetried(t *testing.T) {
	s, hits := server(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	c := New("flaky", s.URL, opts(), nil)
	_ = c.Get(context.Background(), "/x", nil)
	if n := hits.Load(); n != 3 {
		t.Fatalf("GET tried %d times, want 1 + 2 retries", n)
	}
	hits.Store(0)
	_ = c.Post(context.Background(), "/x", map[string]string{"a": "b"}, nil)
	if n := hits.Load(); n != 1 {
		t.Fatalf("POST tried %d times, want once", n)
	}
}

func TestClientErrorsPassThroughAndDoNotTrip(t *testing.T) {
	s, hits := server(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"not_found","message":"user 5 does not exist"}`))
	})
	c := New("user", s.URL, opts(), nil)
	for range 20 {
		err := c.Get(context.Background(), "/x", nil)
		he := HTTPError(err)
		if he.Error() != "404 not_found: user 5 does not exist" {
			t.Fatalf("4xx became %v", he)
		}
	}
	if c.State() != gobreaker.StateClosed || hits.Load() != 20 {
		t.Fatalf("4xx answers tripped the breaker (%s) or were retried (%d hits)", c.State(), hits.Load())
	}
}

func TestBulkheadBoundsCallsInFlight(t *testing.T) {
	release := make(chan struct{})
	var inflight, peak atomic.Int32
	s, _ := server(t, func(w http.ResponseWriter, _ *http.Request) {
		n := inflight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		inflight.Add(-1)
	})
	o := opts()
	o.Timeout, o.MaxConcurrent, o.QueueWait, o.Retries = 5*time.Second, 3, 10*time.Millisecond, 0
	c := New("busy", s.URL, o, nil)
	var wg sync.WaitGroup
	var full atomic.Int32
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Get(context.Background(), "/x", nil); errors.Is(err, ErrBulkheadFull) {
				full.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for full.Load() < 7 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	if peak.Load() > 3 || full.Load() != 7 {
		t.Fatalf("peak %d in flight (limit 3), %d refused (want 7)", peak.Load(), full.Load())
	}
}

// A dependency that answers one shard's requests with a partial 503 (httpx.HeaderPartial) is
// healthy: the breaker stays closed and the 503 reaches the caller with its reason; the same
// answers without the mark open it.
func TestPartialOutagesDoNotTripTheBreaker(t *testing.T) {
	var partial atomic.Bool
	partial.Store(true)
	s, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, r, func() *httpx.Error {
			e := httpx.Unavailable("physical shard 1, which holds this user's data, is unavailable")
			if partial.Load() {
				e = e.AsPartial()
			}
			return e
		}())
	})
	c := New("post", s.URL, opts(), nil)
	for range 20 {
		err := HTTPError(c.Post(context.Background(), "/v1/posts", map[string]string{}, nil))
		var he *httpx.Error
		if !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable || !strings.Contains(he.Message, "physical shard 1") || !he.Partial {
			t.Fatalf("a partial outage reached the caller as %v", err)
		}
	}
	if c.State() != gobreaker.StateClosed {
		t.Fatalf("breaker %s after partial outages, want closed", c.State())
	}
	partial.Store(false)
	for range 20 {
		_ = c.Post(context.Background(), "/v1/posts", map[string]string{}, nil)
	}
	if c.State() != gobreaker.StateOpen {
		t.Fatalf("breaker %s after 20 plain 503s, want open", c.State())
	}
}
