package apptest

import (
	"context"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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

// TestWebPageInChromium signs up, posts and sees the post in the feed, in headless Chromium.
func TestWebPageInChromium(t *testing.T) {
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
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	handle := "webuser_" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	step := func(what string, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, a); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML("body"))
			t.Fatalf("in the browser, %s: %v\n%s", what, err, html)
		}
	}
	step("opening the page", chromedp.Navigate(shared.Gateway()+"/"))
	step("the signup form", chromedp.WaitVisible("#signup"))
	step("typing", chromedp.SendKeys("#signup input[name=handle]", handle))
	step("typing", chromedp.SendKeys("#signup input[name=display_name]", "Web User"))
	step("typing", chromedp.SendKeys("#signup input[name=email]", handle+"@example.com"))
	step("typing", chromedp.SendKeys("#signup input[name=password]", "a good long password"))
	step("signing up", chromedp.Click("#signup button"))
	step("the app after signup", chromedp.WaitVisible("#compose"))
	who, err := chromedp.Run(ctx, chromedp.Text("#who"))
	if err != nil {
		t.Fatal(err)
	}
	step("typing a post", chromedp.SendKeys("#compose textarea", "my first post from a browser"))
	step("posting", chromedp.Click("#compose button"))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("#feed li.post") !== null`, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("the post never showed in the feed: %v", err)
	}
	feed, err := chromedp.Run(ctx, chromedp.Text("#feed"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(who, "@"+handle) {
		t.Fatalf("the page shows %q, not the new user", who)
	}
	if !strings.Contains(feed, "my first post from a browser") || !strings.Contains(feed, "Web User") {
		t.Fatalf("the feed shows %q", feed)
	}
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
