package cache

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/rueidis"

	"github.com/scalestack/scalestack/internal/localservers"
)

// Against a real Redis (Debian's redis-server) that the test starts on a free port.
func newClient(t *testing.T, addr string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestReadThroughInvalidateAndMetrics(t *testing.T) {
	ctx := context.Background()
	r := localservers.StartRedis(t)
	m := NewMetrics()
	c := New(newClient(t, r.Addr()), Options{Name: "profile", TTL: time.Minute}, m)
	db := map[string]string{"user:1": `{"name":"ada"}`}
	var queries atomic.Int64
	load := func(key string) func(context.Context) ([]byte, error) {
		return func(context.Context) ([]byte, error) {
			queries.Add(1)
			v, ok := db[key]
			if !ok {
				return nil, ErrNotFound
			}
			return []byte(v), nil
		}
	}
	for i := range 10 {
		v, err := c.Get(ctx, "user:1", load("user:1"))
		if err != nil || string(v) != `{"name":"ada"}` {
			t.Fatalf("read %d: %q %v", i, v, err)
		}
	}
	if q := queries.Load(); q != 1 {
		t.Errorf("%d database queries for 10 reads, want 1", q)
	}
	if h, mi := testutil.ToFloat64(m.Hits), testutil.ToFloat64(m.Misses); h != 9 || mi != 1 {
		t.Errorf("hits %v misses %v, want 9 and 1 (hit ratio 90%%)", h, mi)
	}

	// A write commits, then invalidates: the next read sees the new value, from another client too.
	other := New(newClient(t, r.Addr()), Options{Name: "profile"}, nil)
	if _, err := other.Get(ctx, "user:1", load("user:1")); err != nil {
		t.Fatal(err)
	}
	db["user:1"] = `{"name":"ada lovelace"}`
	if err := c.Invalidate(ctx, "user:1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err := other.Get(ctx, "user:1", load("user:1"))
		if err != nil {
			t.Fatal(err)
		}
		if string(v) == `{"name":"ada lovelace"}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other client still reads %q after invalidation", v)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Negative caching: a missing key is asked for once.
	before := queries.Load()
	for range 5 {
		if _, err := c.Get(ctx, "user:404", load("user:404")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing key: %v", err)
		}
	}
	if q := queries.Load() - before; q != 1 {
		t.Errorf("%d queries for 5 reads of a missing key, want 1", q)
	}
}

func TestStampedeMakesOneQuery(t *testing.T) {
	ctx := context.Background()
	r := localservers.StartRedis(t)
	c := New(newClient(t, r.Addr()), Options{Name: "feed"}, nil)
	var queries atomic.Int64
	release := make(chan struct{})
	load := func(context.Context) ([]byte, error) {
		queries.Add(1)
		<-release // a slow query: every other reader arrives while it runs
		return []byte(`[1,2,3]`), nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Get(ctx, "feed:7", load)
			if err == nil && string(v) != `[1,2,3]` {
				err = errors.New("wrong value " + string(v))
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if q := queries.Load(); q != 1 {
		t.Errorf("1000 concurrent misses made %d database queries, want 1", q)
	}
}

func TestJitter(t *testing.T) {
	c := New(nil, Options{TTL: time.Minute, Jitter: 0.2}, nil)
	seen := map[time.Duration]bool{}
	for range 50 {
		d := c.ttl(time.Minute)
		if d < 48*time.Second || d > 72*time.Second {
			t.Fatalf("ttl %v outside ±20%%", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("jitter gave only %d distinct TTLs", len(seen))
	}
}

// A value the loader marks ErrDoNotStore (a degraded answer) is served, and the next read loads again.
func TestDoNotStoreServesWithoutCaching(t *testing.T) {
	ctx := context.Background()
	r := localservers.StartRedis(t)
	c := New(newClient(t, r.Addr()), Options{Name: "feedpage", TTL: time.Minute}, nil)
	var loads atomic.Int64
	degraded := true
	load := func(context.Context) ([]byte, error) {
		loads.Add(1)
		if degraded {
			return []byte(`{"degraded":["posts"]}`), ErrDoNotStore
		}
		return []byte(`{"post_ids":[]}`), nil
	}
	for range 2 {
		v, err := c.Get(ctx, "page", load)
		if err != nil || string(v) != `{"degraded":["posts"]}` {
			t.Fatalf("degraded read: %q %v", v, err)
		}
	}
	if n := loads.Load(); n != 2 {
		t.Fatalf("%d loads for two reads of a value not to be stored, want 2", n)
	}
	degraded = false
	for range 2 {
		if v, err := c.Get(ctx, "page", load); err != nil || string(v) != `{"post_ids":[]}` {
			t.Fatalf("read: %q %v", v, err)
		}
	}
	if n := loads.Load(); n != 3 {
		t.Fatalf("%d loads, want 3: the first complete answer is stored", n)
	}
}

// A reader's cache whose loader is the owning service (FilledByLoader) does not write what the
// service stored already; what the service stored serves the next read.
func TestFilledByLoaderDoesNotStoreAgain(t *testing.T) {
	ctx := context.Background()
	r := localservers.StartRedis(t)
	rc := newClient(t, r.Addr())
	// The owner stores for 10 s; a value the reader wrote itself would live for an hour.
	owner := New(rc, Options{Name: "profile", TTL: 10 * time.Second}, nil)
	reader := New(newClient(t, r.Addr()), Options{Name: "profile", TTL: time.Hour, FilledByLoader: true}, nil)
	var loads atomic.Int64
	service := func(context.Context) ([]byte, error) {
		loads.Add(1)
		return owner.Get(ctx, "user:7", func(context.Context) ([]byte, error) { return []byte(`{"id":"7"}`), nil })
	}
	mon, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	for i := range 3 {
		v, err := reader.Get(ctx, "user:7", service)
		if err != nil || string(v) != `{"id":"7"}` {
			t.Fatalf("read %d: %q %v", i, v, err)
		}
	}
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d calls of the owning service for 3 reads, want 1", n)
	}
	if ttl, err := mon.Do(ctx, mon.B().Pttl().Key("user:7").Build()).AsInt64(); err != nil || ttl <= 0 || ttl > 10_000 {
		t.Fatalf("the value's TTL is %d ms (%v): want the owner's 10 s, not the reader's hour", ttl, err)
	}

	// Batch reads likewise: the misses come from the service, which stores them; the reader does not.
	vals, err := reader.GetMany(ctx, []string{"user:8", "user:9"}, func(_ context.Context, missing []int) ([][]byte, error) {
		out := make([][]byte, len(missing))
		for j := range missing {
			out[j] = []byte(`{"id":"x"}`)
		}
		return out, nil
	})
	if err != nil || len(vals) != 2 || string(vals[1]) != `{"id":"x"}` {
		t.Fatalf("batch: %q %v", vals, err)
	}
	if n, _ := mon.Do(ctx, mon.B().Exists().Key("user:8", "user:9").Build()).AsInt64(); n != 0 {
		t.Fatalf("the reader stored %d of the batch's values the service did not store", n)
	}
}

// TestVersionedValuesNeverGoBack: with a Version, a value refreshed after a write is not
// overwritten by an older one (a reader that loaded the row from a lagging replica, a slower
// refresh), while the same version is written again after an eviction.
func TestVersionedValuesNeverGoBack(t *testing.T) {
	ctx := context.Background()
	r := localservers.StartRedis(t)
	version := func(b []byte) (int64, bool) {
		v, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSuffix(string(b), "}"), `{"v":`), 10, 64)
		return v, err == nil
	}
	c := New(newClient(t, r.Addr()), Options{Name: "profile", TTL: time.Minute, Version: version}, nil)
	other := New(newClient(t, r.Addr()), Options{Name: "profile", TTL: time.Minute, Version: version}, nil)
	read := func(cc *Cache) string {
		t.Helper()
		v, err := cc.Get(ctx, "p", func(context.Context) ([]byte, error) { return nil, errors.New("unexpected load") })
		if err != nil {
			t.Fatal(err)
		}
		return string(v)
	}
	if err := c.SetIfNewer(ctx, "p", []byte(`{"v":2}`), 2); err != nil {
		t.Fatal(err)
	}
	if err := c.SetIfNewer(ctx, "p", []byte(`{"v":1}`), 1); err != nil {
		t.Fatal(err)
	}
	if v := read(other); v != `{"v":2}` {
		t.Fatalf("after writes of versions 2 then 1: %s", v)
	}
	// A reader's load of an older row loses too, through Get and GetMany, once the value is gone.
	rc := newClient(t, r.Addr())
	if err := rc.Do(ctx, rc.B().Del().Key("p").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	c.MarkInvalidated("p")
	if v, err := c.Get(ctx, "p", func(context.Context) ([]byte, error) { return []byte(`{"v":1}`), nil }); err != nil || string(v) != `{"v":1}` {
		t.Fatalf("the load itself is served: %q %v", v, err)
	}
	if _, err := c.GetMany(ctx, []string{"p"}, func(context.Context, []int) ([][]byte, error) { return [][]byte{[]byte(`{"v":1}`)}, nil }); err != nil {
		t.Fatal(err)
	}
	if n, _ := rc.Do(ctx, rc.B().Exists().Key("p").Build()).AsInt64(); n != 0 {
		t.Fatal("a load of version 1 was stored over the memory of version 2")
	}
	// The same version again (the value was evicted, its version kept) and newer ones are stored.
	if _, err := c.GetMany(ctx, []string{"p"}, func(context.Context, []int) ([][]byte, error) { return [][]byte{[]byte(`{"v":2}`)}, nil }); err != nil {
		t.Fatal(err)
	}
	if v := read(other); v != `{"v":2}` {
		t.Fatalf("version 2 loaded again after an eviction: %s", v)
	}
	if err := c.SetIfNewer(ctx, "p", []byte(`{"v":3}`), 3); err != nil {
		t.Fatal(err)
	}
	if v := read(c); v != `{"v":3}` {
		t.Fatalf("the writer's own next read after a refresh to version 3: %s", v)
	}
	if ttl, _ := rc.Do(ctx, rc.B().Pttl().Key(versionKey("p")).Build()).AsInt64(); ttl <= 0 {
		t.Fatalf("the version's TTL is %d: it must expire with its value", ttl)
	}
}

// TestBatchReadsOfAKeyJustChangedHitRedis: right after this process refreshed or invalidated a
// key, batch reads take it from Redis (around the client-side copy), not from the loader: a hot
// key changed every second must not send every read to the database.
func TestBatchReadsOfAKeyJustChangedHitRedis(t *testing.T) {
	ctx := context.Background()
	r := localservers.StartRedis(t)
	m := NewMetrics()
	c := New(newClient(t, r.Addr()), Options{Name: "profile", TTL: time.Minute}, m)
	if err := c.SetIfNewer(ctx, "hot", []byte(`{"v":1}`), 1); err != nil {
		t.Fatal(err)
	}
	c.MarkInvalidated("hot")
	vals, err := c.GetMany(ctx, []string{"hot", "cold"}, func(_ context.Context, missing []int) ([][]byte, error) {
		if len(missing) != 1 || missing[0] != 1 {
			t.Fatalf("loader asked for %v, want only the cold key", missing)
		}
		return [][]byte{[]byte(`{"v":0}`)}, nil
	})
	if err != nil || string(vals[0]) != `{"v":1}` || string(vals[1]) != `{"v":0}` {
		t.Fatalf("batch: %q %v", vals, err)
	}
	if h, mi := testutil.ToFloat64(m.Hits), testutil.ToFloat64(m.Misses); h != 1 || mi != 1 {
		t.Fatalf("hits %v misses %v, want 1 and 1", h, mi)
	}
}
