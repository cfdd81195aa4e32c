package gateway

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/rueidis"

	"github.com/scalestack/scalestack/internal/localservers"
)

func redisClient(t *testing.T, addr string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Two gateway replicas on one real Redis share each client's bucket: together they admit the
// burst once (give or take one lease each), where two per-replica buckets admit it twice; other
// clients are unaffected; without Redis each replica limits on its own and counts it.
func TestSharedLimiterHoldsAcrossReplicas(t *testing.T) {
	r := localservers.StartRedis(t)
	const burst = 20
	// One token a minute: nothing refills while the test runs.
	replicas := []*SharedLimiter{
		NewSharedLimiter(redisClient(t, r.Addr()), "client", 1.0/60, burst),
		NewSharedLimiter(redisClient(t, r.Addr()), "client", 1.0/60, burst),
	}
	ctx := context.Background()
	admitted := func(key string, lims ...Limiter) int {
		n := 0
		for i := range 200 {
			if lims[i%len(lims)].Allow(ctx, key) {
				n++
			}
		}
		return n
	}
	shared := admitted("ip:10.0.0.1", replicas[0], replicas[1])
	lease := replicas[0].lease
	if shared < burst-2*lease || shared > burst+2*lease {
		t.Errorf("two replicas sharing Redis admitted %d requests of one client, want %d (± a lease of %d per replica)", shared, burst, lease)
	}
	alone := admitted("ip:10.0.0.1", NewRateLimiter(1.0/60, burst), NewRateLimiter(1.0/60, burst))
	if alone != 2*burst {
		t.Errorf("two per-replica buckets admitted %d, want %d (the multiplication the shared limiter avoids)", alone, 2*burst)
	}
	if other := admitted("ip:10.0.0.2", replicas[0], replicas[1]); other < burst-2*lease {
		t.Errorf("another client was admitted %d times: its bucket is not its own", other)
	}

	fallbacks := prometheus.NewCounter(prometheus.CounterOpts{Name: "fallbacks"})
	replicas[0].Fallbacks = fallbacks
	r.Stop()
	if got := admitted("ip:10.0.0.3", replicas[0]); got != burst {
		t.Errorf("without Redis, one replica admitted %d, want its own burst %d", got, burst)
	}
	if n := testutil.ToFloat64(fallbacks); n == 0 {
		t.Errorf("no fallback counted while Redis was down")
	}
}
