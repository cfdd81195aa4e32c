package loadgen

import (
	"sync"
	"time"

	"github.com/scalestack/scalestack/apps/auth"
	"github.com/scalestack/scalestack/pkg/shard"
)

// TokenFor returns a Config.Token that signs each user's token with tok once and reuses it.
func TokenFor(tok *auth.Tokens) func(shard.ID) string {
	var mu sync.Mutex
	tokens := map[shard.ID]string{}
	return func(id shard.ID) string {
		mu.Lock()
		defer mu.Unlock()
		if t, ok := tokens[id]; ok {
			return t
		}
		t, _ := tok.Issue(id)
		tokens[id] = t
		return t
	}
}

// OthersP99 is the largest p99 of the run's operations other than signups: what a signup burst
// costs everything else.
func (r Result) OthersP99() time.Duration {
	var worst time.Duration
	for op, st := range r.ByOp {
		if op != Signup {
			worst = max(worst, st.P99)
		}
	}
	return worst
}

// CacheCountsByService reads the cache counters of each service's /metrics URL (by service name),
// keyed "service/cache" ("gateway/profile"): a miss at the gateway is usually a miss at the
// owning service too, so the services' figures are told apart.
func CacheCountsByService(metricsURLs map[string]string) map[string]Counts {
	out := map[string]Counts{}
	for svc, u := range metricsURLs {
		for name, c := range CacheCountsByCache([]string{u}) {
			out[svc+"/"+name] = c
		}
	}
	return out
}
