package apptest

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/scalestack/scalestack/apps/feed"
	"github.com/scalestack/scalestack/apps/gateway"
	"github.com/scalestack/scalestack/apps/service"
	"github.com/scalestack/scalestack/apps/user"
	"github.com/scalestack/scalestack/internal/testutil"
)

// TestFeedDegradesWithoutTheUserService: with the user service down, the feed still comes,
// without author profiles, and the gateway's breaker opens so that it stops waiting on it.
func TestFeedDegradesWithoutTheUserService(t *testing.T) {
	alice, aliceID := signup(t, shared.Gateway(), "resilient")
	var p gateway.FeedPost
	alice.must(http.StatusCreated, "POST", "/api/posts", gateway.PostRequest{Body: "still here"}, &p)
	testutil.Eventually(t, "the post in her feed", 20*time.Second, func() error {
		if !feedHas(feedOf(t, alice), p.ID) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	// The page the gateway cached would be served as it is: drop it, so that the feed is built
	// again while the user service is down.
	rc := shared.Apps[service.Gateway].Redis
	dropPage := func() {
		t.Helper()
		if err := rc.Do(context.Background(), rc.B().Del().Key(feed.PageKey(aliceID)).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		shared.Apps[service.Gateway].Gateway.FeedPages.MarkInvalidated(feed.PageKey(aliceID))
	}
	dropPage()
	shared.StopService(service.User)
	restarted := false
	defer func() {
		if !restarted {
			shared.RestartService(service.User)
		}
	}()
	// Profiles already cached still come; the feed service cannot read the following list and
	// says so.
	f := feedOf(t, alice)
	if !feedHas(f, p.ID) || f.Posts[0].AuthorProfile == nil || !slices.Contains(f.Degraded, "following") {
		t.Fatalf("feed with the user service down: %+v", f)
	}
	// Without the profiles in the cache either: the posts come without authors.
	if err := rc.Do(context.Background(), rc.B().Del().Key(user.ProfileKey(aliceID)).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	shared.Apps[service.Gateway].Gateway.ProfileCache.MarkInvalidated(user.ProfileKey(aliceID))
	for range 30 {
		f := feedOf(t, alice)
		if !feedHas(f, p.ID) {
			t.Fatalf("degraded feed lost the post: %+v", f)
		}
		if !slices.Contains(f.Degraded, "profiles") || f.Posts[0].AuthorProfile != nil {
			t.Fatalf("degraded feed does not say so: %+v", f.Degraded)
		}
	}
	g := shared.Apps[service.Gateway].Gateway
	if st := g.Users.State().String(); st != "open" {
		t.Fatalf("the gateway's breaker to the user service is %s after 30 failing feeds, want open", st)
	}
	if m := get(t, shared.Gateway()+"/metrics"); metricValue(t, m, `scalestack_dependency_calls_total{dependency="user",outcome="open"}`) == 0 {
		t.Fatal("no call was refused by the open breaker")
	}
	// What needs the user service fails fast with a 503 and a reason.
	r := alice.do("GET", "/api/suggestions", nil)
	if r.Status != http.StatusServiceUnavailable || !contains(string(r.Body), "unavailable") {
		t.Fatalf("suggestions with the user service down: %d %s", r.Status, r.Body)
	}
	shared.RestartService(service.User)
	restarted = true
	testutil.Eventually(t, "profiles back after the breaker's timeout", 20*time.Second, func() error {
		f := feedOf(t, alice)
		if len(f.Degraded) > 0 || len(f.Posts) == 0 || f.Posts[0].AuthorProfile == nil {
			return fmt.Errorf("still degraded: %v", f.Degraded)
		}
		return nil
	})
}
