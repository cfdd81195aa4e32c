package apptest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/scalestack/scalestack/apps/archiver"
	"github.com/scalestack/scalestack/apps/gateway"
	"github.com/scalestack/scalestack/apps/service"
	"github.com/scalestack/scalestack/apps/user"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pkg/shard"
)

// onShard signs users up until one lands on physical shard want.
func onShard(t *testing.T, want int) (*api, shard.ID) {
	t.Helper()
	router := shared.Apps[service.User].Shards.Router()
	for range 64 {
		a, id := signup(t, shared.Gateway(), "placed")
		if p, _ := router.RouteID(id); p.Index == want {
			return a, id
		}
	}
	t.Fatalf("no signup landed on shard %d", want)
	return nil, 0
}

func displayName(t *testing.T, id shard.ID) string {
	t.Helper()
	var p map[string]any
	(&api{t: t, base: shared.Gateway()}).must(http.StatusOK, "GET", "/api/users/"+id.String(), nil, &p)
	return p["display_name"].(string)
}

// TestReadsGoToReplicasExceptAfterOwnWritesOrWhenReplicasFail uses shard 0's replica: with its
// replication stopped it is visibly stale, which shows where each read went.
func TestReadsGoToReplicasExceptAfterOwnWritesOrWhenReplicasFail(t *testing.T) {
	ctx := context.Background()
	a, id := onShard(t, 0)
	replica := rootDB(t, shared.Replica)
	// The replica must have the new user before it is stopped: a replica that lags behind the
	// signup has no row to be stale about, and a miss there is read again from the primary.
	testutil.Eventually(t, "the new user on the replica", 20*time.Second, func() error {
		var n int
		if err := replica.QueryRow("SELECT COUNT(*) FROM social.users WHERE id = ?", int64(id)).Scan(&n); err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("not replicated yet")
		}
		return nil
	})
	if _, err := replica.Exec("STOP SLAVE"); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = replica.Exec("START SLAVE") }()
	a.must(http.StatusOK, "PATCH", "/api/me", map[string]string{"display_name": "Fresh"}, nil)
	// Read-your-writes: the next read (a cache miss, the write invalidated it) goes to the
	// primary although the replica does not have the change.
	if got := displayName(t, id); got != "Fresh" {
		t.Fatalf("read after own write: %q", got)
	}
	// Past the window, a cache miss reads the replica, which is stale.
	// Drop the cached profile the way a write does, in both processes that cache it.
	drop := func() {
		for _, svc := range []string{service.User, service.Gateway} {
			if err := shared.Apps[svc].Caches["profile"].Invalidate(ctx, user.ProfileKey(id)); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(5500 * time.Millisecond) // the RYW window (5 s) and the invalidation window (2 s)
	drop()
	if got := displayName(t, id); got == "Fresh" {
		t.Fatalf("a read outside the RYW window did not go to the (stale) replica")
	}
	// The replica fails: reads go to the primary.
	shared.Replica.Stop()
	defer shared.Replica.Restart()
	drop()
	time.Sleep(2100 * time.Millisecond)
	if got := displayName(t, id); got != "Fresh" {
		t.Fatalf("with the replica down, read %q: not from the primary", got)
	}
	if m := get(t, shared.URLs[service.User]+"/metrics"); !contains(m, "scalestack_db_replica_failures_total") {
		t.Fatal("replica failure not counted")
	}
}

func TestArchiverMovesOldPostsResumablyAndTheyStayReadable(t *testing.T) {
	a, id := signup(t, shared.Gateway(), "oldtimer")
	db := shardDB(t, shared, id)
	// Ten posts from 100 days ago, written as the post service would have.
	old := time.Now().Add(-100 * 24 * time.Hour)
	var oldIDs []shard.ID
	for i := range 10 {
		pid := shard.NewID(old.Sub(shard.Epoch).Milliseconds()+int64(i), id.Logical(), i)
		if _, err := db.Exec("INSERT INTO social.posts (id, author_id, body, created_at) VALUES (?, ?, ?, ?)", int64(pid), int64(id), fmt.Sprint("old ", i), old); err != nil {
			t.Fatal(err)
		}
		oldIDs = append(oldIDs, pid)
	}
	var recent gateway.FeedPost
	a.must(http.StatusCreated, "POST", "/api/posts", gateway.PostRequest{Body: "new"}, &recent)
	shards := shared.Apps[service.User].Shards
	count := func(table string) int {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM social."+table+" WHERE author_id = ?", int64(id)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// A run bounded to two batches of three stops part-way, as a killed run would.
	res, err := archiver.Run(context.Background(), shards, 90*24*time.Hour, archiver.Options{Batch: 3, MaxBatches: 2}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if hot, cold := count("posts"), count("posts_archive"); hot+cold != 11 || cold == 0 || cold == 10 {
		t.Fatalf("after a partial run: %d hot, %d archived (%v), want 11 in all, some archived", hot, cold, res)
	}
	// The next run finishes; nothing is lost or doubled; the recent post stays hot.
	if _, err := archiver.Run(context.Background(), shards, 90*24*time.Hour, archiver.Options{Batch: 3}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if hot, cold := count("posts"), count("posts_archive"); hot != 1 || cold != 10 {
		t.Fatalf("after the second run: %d hot, %d archived, want 1 and 10", hot, cold)
	}
	var p gateway.FeedPost
	a.must(http.StatusOK, "GET", "/api/posts/"+oldIDs[3].String(), nil, &p)
	if p.Body != "old 3" {
		t.Fatalf("archived post read back as %+v", p)
	}
	var page gateway.FeedResponse
	a.must(http.StatusOK, "GET", "/api/users/"+id.String()+"/posts?limit=20", nil, &page)
	if len(page.Posts) != 11 {
		t.Fatalf("the author's list shows %d posts, want 11 (hot and archived)", len(page.Posts))
	}
}

func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(series) + ` ([0-9.e+-]+)`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestCacheHitRatioMetric: ten reads of a profile make at most one miss; the counters say so.
func TestCacheHitRatioMetric(t *testing.T) {
	_, id := signup(t, shared.Gateway(), "popular")
	url := shared.URLs[service.User]
	before := get(t, url+"/metrics")
	for range 10 {
		get(t, url+"/v1/users/"+id.String())
	}
	after := get(t, url+"/metrics")
	hits := metricValue(t, after, `scalestack_cache_hits_total{cache="profile"}`) - metricValue(t, before, `scalestack_cache_hits_total{cache="profile"}`)
	misses := metricValue(t, after, `scalestack_cache_misses_total{cache="profile"}`) - metricValue(t, before, `scalestack_cache_misses_total{cache="profile"}`)
	if hits+misses != 10 || misses > 1 {
		t.Fatalf("10 reads counted %v hits and %v misses, want 10 in all and at most 1 miss", hits, misses)
	}
}

// TestShardMapReloads: a new version of the mounted map is picked up without a restart.
func TestShardMapReloads(t *testing.T) {
	path := shared.Config.ShardMapFile
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m shard.Map
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.WriteFile(path, raw, 0o600) }()
	m.Version++
	m.Shards[1].Weight = 3
	next, _ := json.Marshal(m)
	// A broken map first: it is refused and the current one stays.
	if err := os.WriteFile(path, []byte(`{"version": 99, "shards": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second)
	if v := metricValue(t, get(t, shared.URLs[service.User]+"/metrics"), "scalestack_shard_map_version"); v != float64(m.Version-1) {
		t.Fatalf("after a broken map the version is %v, want %d", v, m.Version-1)
	}
	if err := os.WriteFile(path, next, 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the new map in use", 15*time.Second, func() error {
		if v := metricValue(t, get(t, shared.URLs[service.User]+"/metrics"), "scalestack_shard_map_version"); v != float64(m.Version) {
			return fmt.Errorf("version %v", v)
		}
		return nil
	})
}
