package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
)

// Limiter decides whether a client's request may go on.
type Limiter interface {
	Allow(ctx context.Context, key string) bool
}

// gcra is a token bucket kept in Redis (the generic cell rate algorithm: one number per client,
// its theoretical arrival time, in microseconds of Redis' clock, so every replica shares one clock).
// It grants up to ARGV[3] tokens at once, as many as the bucket holds, and answers
// {granted, microseconds until the next token}.
var gcra = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local n = math.floor((tolerance - (tat - now)) / interval)
if n > tonumber(ARGV[3]) then n = tonumber(ARGV[3]) end
if n < 1 then
  return {0, tat + interval - tolerance - now}
end
tat = tat + n * interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
return {n, 0}
`)

// SharedLimiter is a per-client token bucket shared by every gateway replica through Redis, so
// the limit does not multiply with the replicas the autoscaler adds. Each replica takes tokens
// in small leases (a tenth of the burst, at most 100, valid for a second) and spends them
// locally, so a client costs one Redis round trip per lease, not per request; a refused client
// is refused locally until its next token is due. The replicas together may admit up to one lease
// each above the burst. When Redis fails, the replica falls back to its own bucket (Fallback).
type SharedLimiter struct {
	redis    rueidis.Client
	prefix   string
	interval time.Duration
	burst    int
	lease    int
	fallback *RateLimiter
	// Fallbacks counts the decisions taken by the local bucket because Redis failed (nil: none).
	Fallbacks prometheus.Counter

	mu    sync.Mutex
	held  map[string]*leased
	swept time.Time
	// downUntil: after a failed round trip, Redis is left alone for a second (the local bucket
	// decides), so a hung Redis costs one timeout a second, not one per request.
	downUntil time.Time
}

type leased struct {
	tokens      int
	expires     time.Time
	deniedUntil time.Time
}

var errRedisResting = errors.New("redis failed less than a second ago")

// leaseTTL is how long leased tokens stay spendable.
const leaseTTL = time.Second

// NewSharedLimiter allows perSecond requests per client with bursts of burst, counted in Redis
// under keys "scalestack:ratelimit:<name>:<client>".
func NewSharedLimiter(rc rueidis.Client, name string, perSecond float64, burst int) *SharedLimiter {
	return &SharedLimiter{
		redis:    rc,
		prefix:   "scalestack:ratelimit:" + name + ":",
		interval: max(time.Duration(float64(time.Second)/perSecond), time.Microsecond),
		burst:    burst,
		lease:    min(max(burst/10, 1), 100),
		fallback: NewRateLimiter(perSecond, burst),
		held:     map[string]*leased{},
		swept:    time.Now(),
	}
}

// Allow takes one token from key's shared bucket.
func (l *SharedLimiter) Allow(ctx context.Context, key string) bool {
	now := time.Now()
	l.mu.Lock()
	l.sweep(now)
	h := l.held[key]
	if h != nil && now.Before(h.expires) && h.tokens > 0 {
		h.tokens--
		l.mu.Unlock()
		return true
	}
	if h != nil && now.Before(h.deniedUntil) {
		l.mu.Unlock()
		return false
	}
	down := now.Before(l.downUntil)
	l.mu.Unlock()

	var granted int
	var wait time.Duration
	err := errRedisResting
	if !down {
		granted, wait, err = l.take(ctx, key)
	}
	if err != nil {
		if l.Fallbacks != nil {
			l.Fallbacks.Inc()
		}
		if !down {
			l.mu.Lock()
			l.downUntil = time.Now().Add(time.Second)
			l.mu.Unlock()
		}
		return l.fallback.Allow(ctx, key)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	h = l.held[key]
	if h == nil {
		h = &leased{}
		l.held[key] = h
	}
	if granted == 0 {
		h.deniedUntil = now.Add(min(wait, leaseTTL))
		return false
	}
	h.tokens, h.expires = granted-1, now.Add(leaseTTL)
	return true
}

// take asks Redis for a lease.
func (l *SharedLimiter) take(ctx context.Context, key string) (granted int, wait time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	res, err := gcra.Exec(ctx, l.redis, []string{l.prefix + key},
		[]string{fmt.Sprint(l.interval.Microseconds()), fmt.Sprint(l.burst), fmt.Sprint(l.lease)}).AsIntSlice()
	if err != nil {
		return 0, 0, fmt.Errorf("rate limit %s: %w", key, err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("rate limit %s: Redis answered %v", key, res)
	}
	return int(res[0]), time.Duration(res[1]) * time.Microsecond, nil
}

// sweep forgets the clients with nothing held once a minute. l.mu is held.
func (l *SharedLimiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	for k, h := range l.held {
		if now.After(h.expires) && now.After(h.deniedUntil) {
			delete(l.held, k)
		}
	}
	l.swept = now
}
