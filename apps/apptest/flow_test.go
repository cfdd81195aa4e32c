package apptest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/apps/feed"
	"github.com/scalestack/scalestack/apps/gateway"
	"github.com/scalestack/scalestack/apps/post"
	"github.com/scalestack/scalestack/apps/service"
	"github.com/scalestack/scalestack/apps/user"
	"github.com/scalestack/scalestack/apps/worker"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pkg/shard"
)

func TestFollowThenPostReachesFeed(t *testing.T) {
	alice, _ := signup(t, shared.Gateway(), "alice")
	bob, bobID := signup(t, shared.Gateway(), "bob")
	alice.must(http.StatusNoContent, "PUT", "/api/users/"+bobID.String()+"/follow", nil, nil)
	alice.must(http.StatusNoContent, "PUT", "/api/users/"+bobID.String()+"/follow", nil, nil) // idempotent
	var prof user.Profile
	alice.must(http.StatusOK, "GET", "/api/users/"+bobID.String(), nil, &prof)
	if prof.Followers != 1 {
		t.Fatalf("bob has %d followers after one follow (made twice), want 1", prof.Followers)
	}
	var p post.Post
	bob.must(http.StatusCreated, "POST", "/api/posts", gateway.PostRequest{Body: "hello from bob"}, &p)
	testutil.Eventually(t, "bob's post in alice's feed", 20*time.Second, func() error {
		f := feedOf(t, alice)
		if !feedHas(f, p.ID) {
			return fmt.Errorf("feed has %d posts, not %s", len(f.Posts), p.ID)
		}
		for _, fp := range f.Posts {
			if fp.ID == p.ID && (fp.AuthorProfile == nil || fp.AuthorProfile.ID != bobID) {
				return fmt.Errorf("post without its author: %+v", fp)
			}
		}
		return nil
	})
	// Unfollow: bob's posts leave alice's feed at once (filtered at read time).
	alice.must(http.StatusNoContent, "DELETE", "/api/users/"+bobID.String()+"/follow", nil, nil)
	testutil.Eventually(t, "bob's post gone from alice's feed", 10*time.Second, func() error {
		if feedHas(feedOf(t, alice), p.ID) {
			return fmt.Errorf("still there")
		}
		return nil
	})
	alice.must(http.StatusNoContent, "DELETE", "/api/users/"+bobID.String()+"/follow", nil, nil) // idempotent
	alice.must(http.StatusOK, "GET", "/api/users/"+bobID.String(), nil, &prof)
	var me user.Profile
	alice.must(http.StatusOK, "GET", "/api/me", nil, &me)
	if prof.Followers != 0 || me.Following != 0 {
		t.Fatalf("after unfollowing (twice): bob has %d followers, alice follows %d", prof.Followers, me.Following)
	}
}

func TestCelebrityPostsMergeAtReadTime(t *testing.T) {
	star, starID := signup(t, shared.Gateway(), "star")
	var fans []*api
	var fanIDs []shard.ID
	for range celebrity + 1 {
		f, id := signup(t, shared.Gateway(), "fan")
		f.must(http.StatusNoContent, "PUT", "/api/users/"+starID.String()+"/follow", nil, nil)
		fans = append(fans, f)
		fanIDs = append(fanIDs, id)
	}
	// Wait until the worker has counted the followers (it promotes at the bound).
	rc := shared.Apps["worker"].Redis
	testutil.Eventually(t, "star promoted to celebrity", 20*time.Second, func() error {
		ok, err := rc.Do(context.Background(), rc.B().Sismember().Key("celebrities").Member(starID.String()).Build()).AsBool()
		if err != nil || !ok {
			return fmt.Errorf("not yet (%w)", err)
		}
		return nil
	})
	var p post.Post
	star.must(http.StatusCreated, "POST", "/api/posts", gateway.PostRequest{Body: "a post for millions"}, &p)
	for i, f := range fans {
		testutil.Eventually(t, "the star's post in a fan's feed", 20*time.Second, func() error {
			if !feedHas(feedOf(t, f), p.ID) {
				return fmt.Errorf("fan %d: not yet", i)
			}
			return nil
		})
	}
	// It got there by the read-time merge: no fan's timeline holds it.
	for _, id := range fanIDs {
		_, err := rc.Do(context.Background(), rc.B().Zscore().Key("timeline:"+id.String()).Member(p.ID.String()).Build()).AsFloat64()
		if err == nil {
			t.Fatalf("the celebrity's post was fanned out to %s's timeline", id)
		}
	}
}

func TestProfileUpdateIsReadBackAtOnce(t *testing.T) {
	a, id := signup(t, shared.Gateway(), "carol")
	anon := &api{t: t, base: shared.Gateway()}
	var before map[string]any
	anon.must(http.StatusOK, "GET", "/api/users/"+id.String(), nil, &before) // now cached
	for i := range 5 {
		name := fmt.Sprintf("Carol v%d", i)
		a.must(http.StatusOK, "PATCH", "/api/me", map[string]string{"display_name": name}, nil)
		var after map[string]any
		anon.must(http.StatusOK, "GET", "/api/users/"+id.String(), nil, &after)
		if after["display_name"] != name {
			t.Fatalf("read after update %d: %v, want %q", i, after["display_name"], name)
		}
	}
}

func TestUserPostsPaginate(t *testing.T) {
	a, id := signup(t, shared.Gateway(), "writer")
	var ids []shard.ID
	for i := range 7 {
		var p post.Post
		a.must(http.StatusCreated, "POST", "/api/posts", gateway.PostRequest{Body: fmt.Sprintf("post %d", i)}, &p)
		ids = append(ids, p.ID)
	}
	var got []shard.ID
	path := "/api/users/" + id.String() + "/posts?limit=3"
	for path != "" {
		var page gateway.FeedResponse
		a.must(http.StatusOK, "GET", path, nil, &page)
		for _, p := range page.Posts {
			got = append(got, p.ID)
		}
		path = ""
		if page.Next != nil {
			path = "/api/users/" + id.String() + "/posts?limit=3&before=" + page.Next.String()
		}
	}
	if len(got) != 7 {
		t.Fatalf("paged %d posts, want 7: %v", len(got), got)
	}
	for i := range got {
		if got[i] != ids[6-i] {
			t.Fatalf("page order: got %v, want newest first %v", got, ids)
		}
	}
}

// A like is one per user: liking twice counts once, unliking takes back only a like that exists,
// two users' likes count two; a post that does not exist is a 404 with its reason.
func TestLikesCountOncePerUser(t *testing.T) {
	author, _ := signup(t, shared.Gateway(), "liked")
	fan, _ := signup(t, shared.Gateway(), "fan")
	other, _ := signup(t, shared.Gateway(), "other")
	var p post.Post
	author.must(http.StatusCreated, "POST", "/api/posts", gateway.PostRequest{Body: "like me"}, &p)
	likes := func() int {
		var got post.Post
		author.must(http.StatusOK, "GET", "/api/posts/"+p.ID.String(), nil, &got)
		return got.Likes
	}
	var after post.Post
	fan.must(http.StatusOK, "PUT", "/api/posts/"+p.ID.String()+"/like", nil, &after)
	fan.must(http.StatusOK, "POST", "/api/posts/"+p.ID.String()+"/like", nil, &after) // again: no change
	if after.Likes != 1 || likes() != 1 {
		t.Fatalf("one user liking twice: %d likes (read back %d), want 1", after.Likes, likes())
	}
	other.must(http.StatusOK, "PUT", "/api/posts/"+p.ID.String()+"/like", nil, nil)
	if n := likes(); n != 2 {
		t.Fatalf("two users' likes: %d, want 2", n)
	}
	fan.must(http.StatusOK, "DELETE", "/api/posts/"+p.ID.String()+"/like", nil, &after)
	fan.must(http.StatusOK, "DELETE", "/api/posts/"+p.ID.String()+"/like", nil, &after) // again: no change
	author.must(http.StatusOK, "DELETE", "/api/posts/"+p.ID.String()+"/like", nil, nil) // never liked it
	if after.Likes != 1 || likes() != 1 {
		t.Fatalf("after one unlike (made twice) and an unlike of a post never liked: %d likes, want 1", likes())
	}
	missing := shard.ID(uint64(p.ID) + 1)
	if r := fan.do("PUT", "/api/posts/"+missing.String()+"/like", nil); r.Status != http.StatusNotFound || !strings.Contains(string(r.Body), "does not exist") {
		t.Errorf("liking a post that does not exist: %d %s", r.Status, r.Body)
	}
	if r := fan.do("DELETE", "/api/posts/not-an-id/like", nil); r.Status != http.StatusBadRequest {
		t.Errorf("unliking a malformed ID: %d %s", r.Status, r.Body)
	}
}

// A profile is found by its handle (in any case); an unknown handle is a 404, a malformed one a 400.
func TestProfileByHandle(t *testing.T) {
	a, id := signup(t, shared.Gateway(), "byhandle")
	handle := handleOf(t, id)
	var prof user.Profile
	a.must(http.StatusOK, "GET", "/api/handles/"+strings.ToUpper(handle), nil, &prof)
	if prof.ID != id || prof.Handle != handle {
		t.Fatalf("profile by handle %s: %+v, want user %s", handle, prof, id)
	}
	anon := &api{t: t, base: shared.Gateway()}
	if r := anon.do("GET", "/api/handles/nobody_has_this_1", nil); r.Status != http.StatusNotFound || !strings.Contains(string(r.Body), "nobody has the handle") {
		t.Errorf("an unknown handle: %d %s", r.Status, r.Body)
	}
	if r := anon.do("GET", "/api/handles/x!", nil); r.Status != http.StatusBadRequest {
		t.Errorf("a malformed handle: %d %s", r.Status, r.Body)
	}
}

// TestFeedPageIsCachedUntilItsTimelineChanges: the gateway keeps a user's first feed page, so a
// reread does not build the feed again; a followed author's post pushed by the fan-out, the user's
// own post and an unfollow each show at the next read, not after the page's TTL.
func TestFeedPageIsCachedUntilItsTimelineChanges(t *testing.T) {
	ctx := context.Background()
	alice, aliceID := signup(t, shared.Gateway(), "pager")
	bob, bobID := signup(t, shared.Gateway(), "paged")
	alice.must(http.StatusNoContent, "PUT", "/api/users/"+bobID.String()+"/follow", nil, nil)
	builds := func() float64 {
		return metricValue(t, get(t, shared.URLs[service.Feed]+"/metrics"),
			`scalestack_http_requests_total{code="200",method="GET",route="GET /v1/feed/{id}"}`)
	}
	feedOf(t, alice)
	before := builds()
	for range 5 {
		feedOf(t, alice)
	}
	if n := builds() - before; n != 0 {
		t.Fatalf("five rereads of an unchanged feed built it %v times, want 0 (served from the page cache)", n)
	}

	// Bob's post reaches alice's timeline through the fan-out, which drops her page with it.
	var p post.Post
	bob.must(http.StatusCreated, "POST", "/api/posts", gateway.PostRequest{Body: "pushed into a cached page"}, &p)
	rc := shared.Apps[service.Gateway].Redis
	testutil.Eventually(t, "bob's post in alice's timeline", 20*time.Second, func() error {
		if _, err := rc.Do(ctx, rc.B().Zscore().Key(feed.TimelineKey(aliceID)).Member(p.ID.String()).Build()).AsFloat64(); err != nil {
			return fmt.Errorf("not yet: %w", err)
		}
		return nil
	})
	testutil.Eventually(t, "bob's post in alice's feed, before the page's TTL", 2*time.Second, func() error {
		if !feedHas(feedOf(t, alice), p.ID) {
			return fmt.Errorf("the page still lacks it")
		}
		return nil
	})

	// Her own post is in her next read.
	var mine post.Post
	alice.must(http.StatusCreated, "POST", "/api/posts", gateway.PostRequest{Body: "my own"}, &mine)
	if !feedHas(feedOf(t, alice), mine.ID) {
		t.Fatal("alice's own post is not in her next feed read")
	}
	// An unfollow drops the page: bob's post leaves her next read.
	alice.must(http.StatusNoContent, "DELETE", "/api/users/"+bobID.String()+"/follow", nil, nil)
	if feedHas(feedOf(t, alice), p.ID) {
		t.Fatal("bob's post is still in alice's next feed read after she unfollowed him")
	}
}

// TestFollowsKeepTheCachesWarm: following an already-followed user (or unfollowing one not
// followed) changes nothing, so the cached profiles and feed page stay; a follow that changes the
// counts refreshes the two profiles in the cache rather than deleting them.
func TestFollowsKeepTheCachesWarm(t *testing.T) {
	ctx := context.Background()
	alice, aliceID := signup(t, shared.Gateway(), "steady")
	_, bobID := signup(t, shared.Gateway(), "steadied")
	_, carolID := signup(t, shared.Gateway(), "unfollowed")
	since := shard.NewID(time.Since(shard.Epoch).Milliseconds(), 0, 0)
	alice.must(http.StatusNoContent, "PUT", "/api/users/"+bobID.String()+"/follow", nil, nil)
	// The worker handles the follow-created event (it drops bob's cached profile and may backfill
	// alice's timeline): wait until it has, so that only the no-op follow below could drop a key.
	testutil.Eventually(t, "the worker handled the follow", 20*time.Second, func() error {
		n := 0
		for _, m := range shared.DBs {
			var c int
			if err := rootDB(t, m).QueryRow("SELECT COUNT(*) FROM social.processed_events WHERE consumer = ? AND event_id >= ?",
				worker.GroupFollow, int64(since)).Scan(&c); err != nil {
				return err
			}
			n += c
		}
		if n == 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	rc := shared.Apps[service.Gateway].Redis
	cached := func() int64 {
		n, err := rc.Do(ctx, rc.B().Exists().Key(user.ProfileKey(aliceID), user.ProfileKey(bobID), feed.PageKey(aliceID)).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	warm := func() {
		alice.must(http.StatusOK, "GET", "/api/users/"+bobID.String(), nil, nil)
		alice.must(http.StatusOK, "GET", "/api/me", nil, nil)
		feedOf(t, alice)
	}
	warm()
	if n := cached(); n != 3 {
		t.Fatalf("%d of alice's profile, bob's profile and alice's feed page cached after reading them, want 3", n)
	}
	alice.must(http.StatusNoContent, "PUT", "/api/users/"+bobID.String()+"/follow", nil, nil)
	alice.must(http.StatusNoContent, "DELETE", "/api/users/"+carolID.String()+"/follow", nil, nil)
	if n := cached(); n != 3 {
		t.Fatalf("a repeated follow and an unfollow of someone not followed dropped %d of the 3 cached entries", 3-n)
	}
	// A real change refreshes both profiles in the cache with their new counts (readers do not
	// miss), and drops alice's feed page.
	alice.must(http.StatusNoContent, "DELETE", "/api/users/"+bobID.String()+"/follow", nil, nil)
	for _, c := range []struct {
		id    shard.ID
		field string
	}{{aliceID, "following"}, {bobID, "followers"}} {
		raw, err := rc.Do(ctx, rc.B().Get().Key(user.ProfileKey(c.id)).Build()).AsBytes()
		if err != nil {
			t.Fatalf("profile %s not in the cache after the unfollow: %v", c.id, err)
		}
		var p map[string]any
		if err := json.Unmarshal(raw, &p); err != nil || p[c.field] != float64(0) {
			t.Fatalf("cached profile %s after the unfollow: %s (%v), want %s 0", c.id, raw, err, c.field)
		}
	}
	if n, _ := rc.Do(ctx, rc.B().Exists().Key(feed.PageKey(aliceID)).Build()).AsInt64(); n != 0 {
		t.Fatal("alice's feed page survived her unfollow")
	}
	var me user.Profile
	alice.must(http.StatusOK, "GET", "/api/me", nil, &me)
	if me.Following != 0 {
		t.Fatalf("alice reads her own profile after the unfollow with following %d", me.Following)
	}
}
