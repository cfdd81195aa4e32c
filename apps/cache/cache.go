// Package cache is the apps' read-through cache on Redis: get from the cache, else load from the
// database once (single-flight: a thousand concurrent misses on one key make one query), store
// with a jittered TTL, remember misses briefly (negative caching), and invalidate after a write
// commits. Reads use rueidis' client-side caching: a hot key is served from the process's memory
// until Redis says it changed.
package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"golang.org/x/sync/singleflight"
)

// ErrNotFound is what a loader returns for a key that does not exist; it is cached too, briefly.
var ErrNotFound = errors.New("not found")

// ErrDoNotStore is what a loader returns, with its value, for a value that must be served but not
// cached (a degraded answer, say): Get returns the value without an error and stores nothing.
var ErrDoNotStore = errors.New("serve but do not cache")

// negative marks a cached miss. It cannot be a serialized value: those start with '{'.
const negative = "\x00nf"

// Options tune a Cache.
type Options struct {
	// TTL of a cached value; each write picks a TTL within ±Jitter of it so that keys written
	// together do not expire together.
	TTL    time.Duration
	Jitter float64
	// NegativeTTL of a cached miss.
	NegativeTTL time.Duration
	// LocalTTL bounds how long a value lives in the client-side cache without Redis' word.
	LocalTTL time.Duration
	// Name labels the metrics (e.g. "profile").
	Name string
	// FilledByLoader says the loaders are the owning service's read endpoints, which store what
	// they load (and remember what does not exist) in the same keys: a miss then only reads,
	// instead of writing the value a second time.
	FilledByLoader bool
	// Version, when set, reads the version of a value (a number that grows with every change of
	// what the value shows; false: none). Values are then written only when no newer version was
	// written before (see SetIfNewer), so a read that loaded an old row from a lagging replica
	// cannot overwrite a value refreshed after a write.
	Version func(value []byte) (int64, bool)
}

// Metrics are the cache's counters; register them once per process.
type Metrics struct {
	Hits, Misses, Loads *prometheus.CounterVec
}

// NewMetrics returns the counters scalestack_cache_{hits,misses,loads}_total{cache}.
func NewMetrics() *Metrics {
	return &Metrics{
		Hits:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalestack_cache_hits_total", Help: "Cache reads served from Redis or the client-side cache."}, []string{"cache"}),
		Misses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalestack_cache_misses_total", Help: "Cache reads that went to the loader."}, []string{"cache"}),
		Loads:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalestack_cache_loads_total", Help: "Loader calls (one per single-flight group)."}, []string{"cache"}),
	}
}

// Register registers the counters.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.Hits, m.Misses, m.Loads} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// setIfNewer writes KEYS[1] = ARGV[1] for ARGV[3] ms unless KEYS[2] (the version last written,
// kept as long) is newer than ARGV[2]; it answers 1 when it wrote. An equal version is the same
// content, written again (the value may have been evicted without its version).
var setIfNewer = rueidis.NewLuaScript(`
local v = tonumber(redis.call('GET', KEYS[2]))
if v and v > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
`)

// versionKey holds the version of key's value; its hash tag puts it in key's cluster slot.
func versionKey(key string) string { return "{" + key + "}:v" }

// SetIfNewer writes value, of version, under key unless a newer version was written: a write
// refreshes the cached value (instead of deleting it) without a reader's older copy winning.
// Like Invalidate, it is for after the write committed; this process's next reads of key go to
// Redis until Redis' invalidation of the client-side copies has surely arrived.
func (c *Cache) SetIfNewer(ctx context.Context, key string, value []byte, version int64) error {
	c.changed(key)
	if err := c.setIfNewer(ctx, key, value, version).Error(); err != nil {
		return fmt.Errorf("refreshing %s: %w", key, err)
	}
	return nil
}

func (c *Cache) setIfNewer(ctx context.Context, key string, value []byte, version int64) rueidis.RedisResult {
	e := c.newerExec(key, value, version)
	return setIfNewer.Exec(ctx, c.client, e.Keys, e.Args)
}

// newerExec is the setIfNewer call that writes value, of version, under key.
func (c *Cache) newerExec(key string, value []byte, version int64) rueidis.LuaExec {
	return rueidis.LuaExec{Keys: []string{key, versionKey(key)},
		Args: []string{string(value), strconv.FormatInt(version, 10), strconv.FormatInt(c.ttl(c.opts.TTL).Milliseconds(), 10)}}
}

// versioned returns the setIfNewer call for a loaded value when the cache reads versions and the
// value has one; otherwise the value is written with a plain SET.
func (c *Cache) versioned(key string, value []byte) (rueidis.LuaExec, bool) {
	if c.opts.Version == nil {
		return rueidis.LuaExec{}, false
	}
	v, ok := c.opts.Version(value)
	if !ok {
		return rueidis.LuaExec{}, false
	}
	return c.newerExec(key, value, v), true
}

// store writes a loaded value: versioned values through setIfNewer. A failed write only costs a
// later miss.
func (c *Cache) store(ctx context.Context, key string, value []byte) {
	if e, ok := c.versioned(key, value); ok {
		_ = setIfNewer.Exec(ctx, c.client, e.Keys, e.Args).Error()
		return
	}
	_ = c.client.Do(ctx, c.client.B().Set().Key(key).Value(string(value)).Px(c.ttl(c.opts.TTL)).Build()).Error()
}

// Cache is a read-through cache of byte values.
type Cache struct {
	client  rueidis.Client
	opts    Options
	metrics *Metrics
	group   singleflight.Group
	// Keys this process invalidated lately, read around the client-side cache.
	invalidated   sync.Map
	invalidations atomic.Int64
}

// invalidationWindow bounds how long after our own invalidation a key skips the client-side
// cache: far longer than Redis takes to deliver the invalidation message.
const invalidationWindow = 2 * time.Second

func (c *Cache) recentlyInvalidated(key string) bool {
	t, ok := c.invalidated.Load(key)
	if !ok {
		return false
	}
	if time.Since(t.(time.Time)) < invalidationWindow {
		return true
	}
	c.invalidated.Delete(key)
	return false
}

// New returns a cache over client.
func New(client rueidis.Client, opts Options, m *Metrics) *Cache {
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Minute
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = 30 * time.Second
	}
	if opts.LocalTTL <= 0 {
		opts.LocalTTL = time.Minute
	}
	if opts.Jitter < 0 || opts.Jitter >= 1 {
		opts.Jitter = 0.1
	}
	if m == nil {
		m = NewMetrics()
	}
	return &Cache{client: client, opts: opts, metrics: m}
}

// ttl returns the TTL of one write, jittered.
func (c *Cache) ttl(base time.Duration) time.Duration {
	if c.opts.Jitter == 0 {
		return base
	}
	f := 1 + c.opts.Jitter*(2*rand.Float64()-1)
	return time.Duration(float64(base) * f)
}

// Get returns the value of key, loading it with load on a miss. A loader's ErrNotFound is cached
// for NegativeTTL and returned as ErrNotFound.
func (c *Cache) Get(ctx context.Context, key string, load func(context.Context) ([]byte, error)) ([]byte, error) {
	var res rueidis.RedisResult
	if c.recentlyInvalidated(key) {
		// Our own invalidation's message from Redis may not have reached the client-side cache
		// yet: read Redis itself.
		res = c.client.Do(ctx, c.client.B().Get().Key(key).Build())
	} else {
		res = c.client.DoCache(ctx, c.client.B().Get().Key(key).Cache(), c.opts.LocalTTL)
	}
	v, err := res.ToString()
	if rueidis.IsRedisNil(err) && res.IsCacheHit() {
		// A miss remembered locally may predate our own write of the key (Redis' invalidation
		// message is on its way): ask Redis before going to the database.
		v, err = c.client.Do(ctx, c.client.B().Get().Key(key).Build()).ToString()
	}
	switch {
	case err == nil:
		c.metrics.Hits.WithLabelValues(c.opts.Name).Inc()
		if v == negative {
			return nil, ErrNotFound
		}
		return []byte(v), nil
	case !rueidis.IsRedisNil(err):
		// Redis is down: serve from the database rather than fail (it is a cache).
		c.metrics.Misses.WithLabelValues(c.opts.Name).Inc()
		return c.load(ctx, key, load, false)
	}
	c.metrics.Misses.WithLabelValues(c.opts.Name).Inc()
	return c.load(ctx, key, load, true)
}

func (c *Cache) load(ctx context.Context, key string, load func(context.Context) ([]byte, error), store bool) ([]byte, error) {
	res, err, _ := c.group.Do(key, func() (any, error) {
		c.metrics.Loads.WithLabelValues(c.opts.Name).Inc()
		v, err := load(ctx)
		if errors.Is(err, ErrDoNotStore) {
			return v, nil
		}
		if !store || c.opts.FilledByLoader {
			return v, err
		}
		switch {
		case errors.Is(err, ErrNotFound):
			_ = c.client.Do(ctx, c.client.B().Set().Key(key).Value(negative).Px(c.ttl(c.opts.NegativeTTL)).Build()).Error()
			return nil, ErrNotFound
		case err != nil:
			return nil, err
		}
		c.store(ctx, key, v)
		return v, nil
	})
	if err != nil {
		return nil, err
	}
	return res.([]byte), nil
}

// GetMany returns the values of keys in one round trip (hot keys from the client-side cache):
// out[i] is nil when keys[i] does not exist. The misses are loaded together by one call of
// load(ctx, missing), which returns their values in missing's order (nil: not found), and stored
// (or remembered as missing) in one more round trip. Unlike Get there is no single-flight across
// callers: a batch is one query already.
func (c *Cache) GetMany(ctx context.Context, keys []string, load func(ctx context.Context, missing []int) ([][]byte, error)) ([][]byte, error) {
	out := make([][]byte, len(keys))
	cmds := make([]rueidis.CacheableTTL, 0, len(keys))
	idx := make([]int, 0, len(keys))
	// Keys this process changed lately are read from Redis itself (their client-side copies may
	// not have heard of the change yet), not counted as misses: a hot key written every second
	// would otherwise go to the database on every read.
	var fresh rueidis.Commands
	var freshIdx []int
	for i, k := range keys {
		if c.recentlyInvalidated(k) {
			fresh = append(fresh, c.client.B().Get().Key(k).Build())
			freshIdx = append(freshIdx, i)
			continue
		}
		cmds = append(cmds, rueidis.CT(c.client.B().Get().Key(k).Cache(), c.opts.LocalTTL))
		idx = append(idx, i)
	}
	var missing []int
	take := func(i int, res rueidis.RedisResult) {
		v, err := res.ToString()
		switch {
		case err == nil && v == negative:
			c.metrics.Hits.WithLabelValues(c.opts.Name).Inc()
		case err == nil:
			c.metrics.Hits.WithLabelValues(c.opts.Name).Inc()
			out[i] = []byte(v)
		default:
			missing = append(missing, i)
		}
	}
	if len(cmds) > 0 {
		for j, res := range c.client.DoMultiCache(ctx, cmds...) {
			take(idx[j], res)
		}
	}
	if len(fresh) > 0 {
		for j, res := range c.client.DoMulti(ctx, fresh...) {
			take(freshIdx[j], res)
		}
	}
	slices.Sort(missing)
	if len(missing) == 0 {
		return out, nil
	}
	c.metrics.Misses.WithLabelValues(c.opts.Name).Add(float64(len(missing)))
	c.metrics.Loads.WithLabelValues(c.opts.Name).Inc()
	vals, err := load(ctx, missing)
	if err != nil {
		return nil, err
	}
	if len(vals) != len(missing) {
		return nil, fmt.Errorf("loader returned %d values for %d keys", len(vals), len(missing))
	}
	if c.opts.FilledByLoader {
		for j, i := range missing {
			out[i] = vals[j]
		}
		return out, nil
	}
	sets := make(rueidis.Commands, 0, len(missing))
	var versioned []rueidis.LuaExec
	for j, i := range missing {
		out[i] = vals[j]
		if vals[j] == nil {
			sets = append(sets, c.client.B().Set().Key(keys[i]).Value(negative).Px(c.ttl(c.opts.NegativeTTL)).Build())
			continue
		}
		if e, ok := c.versioned(keys[i], vals[j]); ok {
			versioned = append(versioned, e)
			continue
		}
		sets = append(sets, c.client.B().Set().Key(keys[i]).Value(string(vals[j])).Px(c.ttl(c.opts.TTL)).Build())
	}
	// A failed write only costs a later miss.
	if len(sets) > 0 {
		c.client.DoMulti(ctx, sets...)
	}
	if len(versioned) > 0 {
		setIfNewer.ExecMulti(ctx, c.client, versioned...)
	}
	return out, nil
}

// MarkInvalidated makes this process read keys from Redis rather than its client-side copy for
// a moment: for a process that relayed a write it did not make itself (the gateway), so that the
// caller's next read sees it even before Redis' invalidation message arrives.
func (c *Cache) MarkInvalidated(keys ...string) { c.changed(keys...) }

// changed makes this process read keys around its client-side cache for invalidationWindow, and
// now and then forgets keys marked longer ago.
func (c *Cache) changed(keys ...string) {
	now := time.Now()
	for _, k := range keys {
		c.invalidated.Store(k, now)
	}
	if c.invalidations.Add(1)%1024 == 0 {
		c.invalidated.Range(func(k, v any) bool {
			if now.Sub(v.(time.Time)) > invalidationWindow {
				c.invalidated.Delete(k)
			}
			return true
		})
	}
}

// Invalidate deletes keys after the write that changed them has committed; Redis then tells every
// client that cached them locally.
func (c *Cache) Invalidate(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	c.changed(keys...)
	if err := c.client.Do(ctx, c.client.B().Del().Key(keys...).Build()).Error(); err != nil {
		return fmt.Errorf("invalidating %d keys: %w", len(keys), err)
	}
	return nil
}
