package gateway

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimiter is a token bucket per client (x/time/rate) in this process, forgotten after idle
// minutes: the limit of a single replica, and SharedLimiter's fallback.
type RateLimiter struct {
	limit rate.Limit
	burst int
	mu    sync.Mutex
	m     map[string]*clientLimiter
	swept time.Time
}

type clientLimiter struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewRateLimiter allows perSecond requests per client with bursts of burst.
func NewRateLimiter(perSecond float64, burst int) *RateLimiter {
	return &RateLimiter{limit: rate.Limit(perSecond), burst: burst, m: map[string]*clientLimiter{}, swept: time.Now()}
}

// Allow takes one token from key's bucket.
func (l *RateLimiter) Allow(_ context.Context, key string) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, c := range l.m {
			if now.Sub(c.seen) > 3*time.Minute {
				delete(l.m, k)
			}
		}
		l.swept = now
	}
	c, ok := l.m[key]
	if !ok {
		c = &clientLimiter{lim: rate.NewLimiter(l.limit, l.burst)}
		l.m[key] = c
	}
	c.seen = now
	return c.lim.AllowN(now, 1)
}

// ClientIP is the caller's address: the connection's peer, or, behind a trusted proxy (the CDN
// or ingress), the last address it appended to X-Forwarded-For.
func ClientIP(r *http.Request, trustForwarded bool) string {
	if trustForwarded {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			parts := strings.Split(xff, ",")
			if ip := net.ParseIP(strings.TrimSpace(parts[len(parts)-1])); ip != nil {
				return ip.String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
