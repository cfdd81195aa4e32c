package apptest

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/scalestack/scalestack/apps/gateway"
	"github.com/scalestack/scalestack/apps/post"
)

func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("chromium not found: install Debian's chromium (hack/test-deps.sh does)")
	return ""
}

// browser starts headless Chromium (a fresh profile) and returns a context for it.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestWebPageInChromium is a person using the site: they sign up, open another user's profile by
// its handle, follow them from it, see their post in the feed, like it, post, follow a third user
// by handle from the home page, unfollow from the profile page; every control is reachable with
// the keyboard alone. With SCALESTACK_SCREENSHOTS=dir it saves the pages at desktop and phone
// widths there (make screenshots: docs/screenshots, shown in docs/apps.md).
func TestWebPageInChromium(t *testing.T) {
	ctx := browser(t)
	stamp := strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	handle := "webuser_" + stamp
	// The people to find: bob has a post; carol is followed by handle.
	bob, bobID := signup(t, shared.Gateway(), "bob_web")
	bobHandle := handleOf(t, bobID)
	bob.must(http.StatusCreated, "POST", "/api/posts", gateway.PostRequest{Body: "bob's first post"}, nil)
	_, carolID := signup(t, shared.Gateway(), "carol_web")
	carolHandle := handleOf(t, carolID)

	fail := func(what string, err error) {
		t.Helper()
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML("body"))
		t.Fatalf("in the browser, %s: %v\n%s", what, err, html)
	}
	step := func(what string, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, a); err != nil {
			fail(what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			fail("reading "+sel, err)
		}
		return s
	}
	until := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			fail("waiting for "+what, err)
		}
	}
	shots := os.Getenv("SCALESTACK_SCREENSHOTS")
	screenshot := func(name string) {
		t.Helper()
		if shots == "" {
			return
		}
		for _, size := range []struct {
			suffix string
			w, h   int64
			mobile bool
		}{{"desktop", 1280, 900, false}, {"phone", 390, 844, true}} {
			var opts []chromedp.EmulateViewportOption
			if size.mobile {
				opts = append(opts, chromedp.EmulateMobile)
			}
			step("sizing the window", chromedp.EmulateViewport(size.w, size.h, opts...))
			time.Sleep(300 * time.Millisecond) // the layout settles
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				fail("a screenshot", err)
			}
			if err := os.WriteFile(filepath.Join(shots, name+"-"+size.suffix+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		step("sizing the window back", chromedp.EmulateViewport(1280, 900))
	}

	step("opening the page", chromedp.Navigate(shared.Gateway()+"/"))
	step("the signup form", chromedp.WaitVisible("#signup"))
	screenshot("signup")
	step("typing", chromedp.SendKeys("#su-handle", handle))
	step("typing", chromedp.SendKeys("#su-name", "Web User"))
	step("typing", chromedp.SendKeys("#su-email", handle+"@example.com"))
	step("typing", chromedp.SendKeys("#su-password", "a good long password"))
	step("signing up", chromedp.Click("#signup button"))
	step("the home page after signup", chromedp.WaitVisible("#compose"))
	if who := text("#my-profile"); who != "@"+handle {
		t.Fatalf("the page shows %q, not the new user", who)
	}

	// Bob's profile, by its path, and the follow button on it.
	step("opening bob's profile", chromedp.Navigate(shared.Gateway()+"/@"+bobHandle))
	step("bob's profile", chromedp.WaitVisible("#p-follow"))
	until("bob's post on his profile", `document.querySelector("#p-posts").textContent.includes("bob's first post")`)
	if f := text("#p-follow"); f != "Follow" {
		t.Fatalf("the follow button says %q", f)
	}
	step("following bob", chromedp.Click("#p-follow"))
	until("the button turning to Unfollow and the count", `document.querySelector("#p-follow").textContent === "Unfollow" && document.querySelector("#p-followers").textContent === "1 follower"`)

	// Home: bob's next post arrives through the fan-out; like it.
	var bobPost post.Post
	bob.must(http.StatusCreated, "POST", "/api/posts", gateway.PostRequest{Body: "bob says hello to the web"}, &bobPost)
	step("going home by the nav", chromedp.Click(`nav a[href="/"]`))
	step("the home page", chromedp.WaitVisible("#feed"))
	until("bob's post in the feed", `document.querySelector("#feed").textContent.includes("bob says hello")`)
	step("liking it", chromedp.Click(`#feed li[data-id="`+bobPost.ID.String()+`"] button.like`))
	until("the like counted", `document.querySelector('#feed li[data-id="`+bobPost.ID.String()+`"] button.like').textContent === "Unlike · 1"`)
	var liked post.Post
	bob.must(http.StatusOK, "GET", "/api/posts/"+bobPost.ID.String(), nil, &liked)
	if liked.Likes != 1 {
		t.Fatalf("the post has %d likes after one like in the browser", liked.Likes)
	}

	// Posting, with the character count.
	step("typing a post", chromedp.SendKeys("#compose-body", "my first post from a browser"))
	if c := text("#compose-count"); c != "28 / 500" {
		t.Errorf("the character count says %q", c)
	}
	step("posting", chromedp.Click("#compose button"))
	until("my post in the feed", `document.querySelector("#feed").textContent.includes("my first post from a browser")`)

	// Following carol by handle; a handle nobody has is a clear error.
	step("typing a handle nobody has", chromedp.SendKeys("#follow-handle", "nobody_"+stamp))
	step("following nobody", chromedp.Click("#follow button"))
	until("the error", `document.querySelector("#error").textContent.includes("nobody has the handle")`)
	step("clearing", chromedp.Evaluate[chromedp.Void](`document.querySelector("#follow-handle").value = ""`))
	step("typing carol's handle", chromedp.SendKeys("#follow-handle", "@"+carolHandle))
	step("following carol", chromedp.Click("#follow button"))
	until("following carol", `document.querySelector("#status").textContent.includes("@`+carolHandle+`")`)
	screenshot("home")

	// Keyboard only: Tab visits every visible control of the home page.
	reached, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
	  window.__seen = new Set();
	  document.addEventListener("focusin", (e) => window.__seen.add(e.target.id || e.target.textContent.trim() || e.target.getAttribute("href")));
	  return [];
	})()`))
	_ = reached
	if err != nil {
		fail("watching focus", err)
	}
	controls, err := chromedp.Run(ctx, chromedp.Evaluate[int](`[...document.querySelectorAll("a, button, input, textarea")].filter((e) => e.offsetParent !== null).length`))
	if err != nil {
		fail("counting the controls", err)
	}
	// From the first control of the page, not from wherever the last click left the browser's
	// starting point (blurring the active element does not move that point in Chromium when the
	// clicked control was re-rendered meanwhile). The first control counts only when Tab comes
	// back round to it. The sweep goes on until it does: a feed refresh that lands during the
	// sweep (following carol above loads her posts) adds controls after they were counted.
	step("starting from the top", chromedp.Evaluate[chromedp.Void](`window.__first = [...document.querySelectorAll("a, button, input, textarea")].find((e) => e.offsetParent !== null); window.__first.focus(); window.__seen.clear()`))
	for i := range 3*controls + 10 {
		step("pressing Tab", chromedp.KeyEvent("\t"))
		if i < controls {
			continue
		}
		back, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.activeElement === window.__first`))
		if err != nil {
			fail("reading the focus", err)
		}
		if back {
			break
		}
	}
	missed, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("a, button, input, textarea")]
	  .filter((e) => e.offsetParent !== null)
	  .map((e) => e.id || e.textContent.trim() || e.getAttribute("href"))
	  .filter((k) => !window.__seen.has(k))`))
	if err != nil {
		fail("checking focus", err)
	}
	if len(missed) > 0 {
		t.Errorf("Tab never reached %v of the %d controls", missed, controls)
	}

	// Unfollowing from bob's profile, reached by the link on his post.
	step("opening bob's profile from his post", chromedp.Click(`#feed li[data-id="`+bobPost.ID.String()+`"] .author a`))
	step("bob's profile", chromedp.WaitVisible("#p-follow"))
	until("the Unfollow button", `document.querySelector("#p-follow").textContent === "Unfollow"`)
	screenshot("profile")
	step("unfollowing bob", chromedp.Click("#p-follow"))
	until("the button turning back to Follow", `document.querySelector("#p-follow").textContent === "Follow" && document.querySelector("#p-followers").textContent === "0 followers"`)
	step("going home", chromedp.Click(`nav a[href="/"]`))
	until("bob's post gone from the feed", `!document.querySelector("#feed").textContent.includes("bob says hello")`)

	// Logging out returns to the forms; logging in again brings the feed back.
	step("logging out", chromedp.Click("#logout"))
	step("the login form", chromedp.WaitVisible("#login"))
	step("typing", chromedp.SendKeys("#li-handle", handle))
	step("typing", chromedp.SendKeys("#li-password", "a good long password"))
	step("logging in", chromedp.Click("#login button"))
	until("my post in the feed again", `document.querySelector("#feed") && document.querySelector("#feed").textContent.includes("my first post from a browser")`)
}

// TestAssetsAreHashedAndCachedForever checks the CDN origin's headers.
func TestAssetsAreHashedAndCachedForever(t *testing.T) {
	res, err := http.Get(shared.Gateway() + "/")
	if err != nil {
		t.Fatal(err)
	}
	page := readAll(res)
	_ = res.Body.Close()
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Fatalf("HTML Cache-Control %q, want no-cache", cc)
	}
	etag := res.Header.Get("ETag")
	req, _ := http.NewRequest("GET", shared.Gateway()+"/", nil)
	req.Header.Set("If-None-Match", etag)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation with the ETag: %v %v", res.StatusCode, err)
	}
	urls := regexp.MustCompile(`/static/app\.[0-9a-f]{12}\.(js|css)`).FindAllString(page, -1)
	if len(urls) != 2 {
		t.Fatalf("the page names %v, want a hashed JS and CSS", urls)
	}
	for _, u := range urls {
		res, err := http.Get(shared.Gateway() + u)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(res)
		_ = res.Body.Close()
		if res.StatusCode != 200 || len(body) == 0 {
			t.Fatalf("%s: %d", u, res.StatusCode)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Fatalf("%s Cache-Control %q", u, cc)
		}
	}
}
