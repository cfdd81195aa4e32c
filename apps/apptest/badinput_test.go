package apptest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/apps/auth"
	"github.com/scalestack/scalestack/apps/gateway"
	"github.com/scalestack/scalestack/apps/service"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pkg/shard"
)

// rows counts the rows of the tables a bad request could write to, over every shard.
func rows(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range shared.DBs {
		for _, table := range []string{"users", "handles", "posts", "following", "followers", "outbox"} {
			var n int
			if err := rootDB(t, m).QueryRow("SELECT COUNT(*) FROM social." + table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			out[table] += n
		}
	}
	return out
}

// TestBadRequestsAreRefusedAndWriteNothing is the gateway's catalog of malformed and hostile
// requests: each gets a 4xx with a reason, and no table changes.
func TestBadRequestsAreRefusedAndWriteNothing(t *testing.T) {
	me, meID := signup(t, shared.Gateway(), "target")
	other, otherID := signup(t, shared.Gateway(), "other")
	_ = other
	// A token signed with another key, one with alg "none", one expired, one for a user of ours
	// but tampered with.
	forgedSigner, _ := auth.NewTokens([]byte(strings.Repeat("k", 32)), 0)
	forged, _ := forgedSigner.Issue(meID)
	none := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + "eyJpc3MiOiJzY2FsZXN0YWNrIiwic3ViIjoiMSJ9."
	parts := strings.Split(me.token, ".")
	tampered := parts[0] + "." + strings.TrimRight(parts[1], "=") + "x." + parts[2]

	long := strings.Repeat("a", 70_000)
	validSignup := `{"handle":"fresh_user_1","email":"f@example.com","password":"long enough pw","display_name":"F"}`
	cases := []struct {
		name, method, path, ctype, body, token string
		want                                   int
		reason                                 string
	}{
		{"malformed JSON", "POST", "/api/signup", "application/json", `{"handle":`, "", 400, "malformed JSON"},
		{"not JSON at all", "POST", "/api/signup", "application/json", `handle=x`, "", 400, "malformed JSON"},
		{"two objects", "POST", "/api/signup", "application/json", validSignup + validSignup, "", 400, "single JSON object"},
		{"unknown field", "POST", "/api/signup", "application/json", `{"handle":"abc","admin":true}`, "", 400, "unknown field"},
		{"wrong type", "POST", "/api/signup", "application/json", `{"handle":123}`, "", 400, "handle"},
		{"missing content type", "POST", "/api/signup", "", validSignup, "", 415, "application/json"},
		{"form content type", "POST", "/api/signup", "application/x-www-form-urlencoded", validSignup, "", 415, "application/json"},
		{"oversized body", "POST", "/api/signup", "application/json", `{"handle":"` + long + `"}`, "", 413, "larger than"},
		{"empty body", "POST", "/api/signup", "application/json", ``, "", 400, "empty"},
		{"handle too short", "POST", "/api/signup", "application/json", `{"handle":"ab","email":"a@b.co","password":"long enough pw","display_name":"A"}`, "", 400, "handle"},
		{"handle with SQL", "POST", "/api/signup", "application/json", `{"handle":"x'; DROP TABLE users;--","email":"a@b.co","password":"long enough pw","display_name":"A"}`, "", 400, "handle"},
		{"bad email", "POST", "/api/signup", "application/json", `{"handle":"okhandle","email":"not-an-email","password":"long enough pw","display_name":"A"}`, "", 400, "email"},
		{"email with header injection", "POST", "/api/signup", "application/json", `{"handle":"okhandle","email":"a@b.co\r\nBcc: x@y.z","password":"long enough pw","display_name":"A"}`, "", 400, "email"},
		{"short password", "POST", "/api/signup", "application/json", `{"handle":"okhandle","email":"a@b.co","password":"short","display_name":"A"}`, "", 400, "password"},
		{"blank display name", "POST", "/api/signup", "application/json", `{"handle":"okhandle","email":"a@b.co","password":"long enough pw","display_name":"   "}`, "", 400, "display_name"},
		{"control characters", "POST", "/api/signup", "application/json", `{"handle":"okhandle","email":"a@b.co","password":"long enough pw","display_name":"a\u0000b"}`, "", 400, "display_name"},
		{"duplicate signup", "POST", "/api/signup", "application/json", fmt.Sprintf(`{"handle":"target_%s","email":"t@example.com","password":"long enough pw","display_name":"T"}`, strings.TrimPrefix(handleOf(t, meID), "target_")), "", 409, "taken"},
		{"wrong password", "POST", "/api/login", "application/json", fmt.Sprintf(`{"handle":%q,"password":"wrong password"}`, handleOf(t, meID)), "", 401, "invalid handle or password"},
		{"unknown user login", "POST", "/api/login", "application/json", `{"handle":"nobody_here","password":"whatever pw"}`, "", 401, "invalid handle or password"},
		{"post without token", "POST", "/api/posts", "application/json", `{"body":"hi"}`, "", 401, "sign in"},
		{"forged token", "POST", "/api/posts", "application/json", `{"body":"hi"}`, forged, 401, "invalid"},
		{"alg none token", "POST", "/api/posts", "application/json", `{"body":"hi"}`, none, 401, "invalid"},
		{"tampered token", "POST", "/api/posts", "application/json", `{"body":"hi"}`, tampered, 401, "invalid"},
		{"garbage token", "POST", "/api/posts", "application/json", `{"body":"hi"}`, "abc", 401, "invalid"},
		{"empty post", "POST", "/api/posts", "application/json", `{"body":""}`, me.token, 400, "body"},
		{"blank post", "POST", "/api/posts", "application/json", `{"body":"  \n "}`, me.token, 400, "body"},
		{"post too long", "POST", "/api/posts", "application/json", `{"body":"` + strings.Repeat("é", 501) + `"}`, me.token, 400, "body"},
		{"post sets its author", "POST", "/api/posts", "application/json", fmt.Sprintf(`{"body":"hi","author_id":"%s"}`, otherID), me.token, 400, "unknown field"},
		{"follow a missing user", "PUT", "/api/users/" + shard.NewID(1, 1, 1).String() + "/follow", "", "", me.token, 404, "does not exist"},
		{"follow yourself", "PUT", "/api/users/" + meID.String() + "/follow", "", "", me.token, 400, "themselves"},
		{"invalid ID", "PUT", "/api/users/12abc/follow", "", "", me.token, 400, "invalid id"},
		{"negative ID", "GET", "/api/users/-5", "", "", "", 400, "invalid id"},
		{"ID overflow", "GET", "/api/users/99999999999999999999", "", "", "", 400, "invalid id"},
		{"SQL in an ID", "GET", "/api/users/1%20OR%201=1", "", "", "", 400, "invalid id"},
		{"path traversal", "GET", "/static/..%2f..%2fetc%2fpasswd", "", "", "", 404, ""},
		{"unknown asset", "GET", "/static/app.js", "", "", "", 404, ""},
		{"unknown route", "GET", "/api/admin", "", "", "", 404, "not found"},
		{"limit out of range", "GET", "/api/feed?limit=100000", "", "", me.token, 400, "limit"},
		{"update nothing", "PATCH", "/api/me", "application/json", `{}`, me.token, 400, "nothing to update"},
		{"bio too long", "PATCH", "/api/me", "application/json", `{"bio":"` + strings.Repeat("b", 281) + `"}`, me.token, 400, "bio"},
		{"metrics through the CDN", "GET", "/metrics", "", "", "", 404, ""},
		{"wrong method", "DELETE", "/api/posts", "", "", me.token, 405, ""},
	}
	// The signups' events leave the outbox asynchronously (the relay deletes them once in Kafka):
	// count only once it has drained, so that nothing but the requests below could change a table.
	testutil.Eventually(t, "the signups' events relayed", 30*time.Second, func() error {
		if n := rows(t)["outbox"]; n != 0 {
			return fmt.Errorf("%d events in the outbox", n)
		}
		return nil
	})
	before := rows(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := &api{t: t, base: shared.Gateway(), token: c.token}
			req, _ := http.NewRequest(c.method, a.base+c.path, strings.NewReader(c.body))
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			if c.name == "metrics through the CDN" {
				req.Header.Set("X-Forwarded-For", "203.0.113.9")
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = res.Body.Close() }()
			var sb strings.Builder
			_, _ = fmt.Fprint(&sb, readAll(res))
			if res.StatusCode != c.want {
				t.Fatalf("got %d, want %d: %s", res.StatusCode, c.want, sb.String())
			}
			if c.reason != "" && !strings.Contains(sb.String(), c.reason) {
				t.Fatalf("the reason %q does not say %q", sb.String(), c.reason)
			}
		})
	}
	if after := rows(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("bad requests wrote rows: before %v, after %v", before, after)
	}
}

func handleOf(t *testing.T, id shard.ID) string {
	t.Helper()
	var h string
	for _, m := range shared.DBs {
		if err := rootDB(t, m).QueryRow("SELECT handle FROM social.users WHERE id = ?", int64(id)).Scan(&h); err == nil {
			return h
		}
	}
	t.Fatalf("no user %s", id)
	return ""
}

// TestRateLimitPerClient: one client over its rate gets 429s with Retry-After; another does not.
func TestRateLimitPerClient(t *testing.T) {
	st := shared
	a, _ := signup(t, st.Gateway(), "spammer")
	b, _ := signup(t, st.Gateway(), "calm")
	g := st.Apps[service.Gateway].Gateway
	saved := g.Limit
	g.Limit = gateway.NewRateLimiter(5, 10)
	defer func() { g.Limit = saved }()
	limited := 0
	for range 50 {
		r := a.do("GET", "/api/me", nil)
		if r.Status == http.StatusTooManyRequests {
			limited++
			if r.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		}
	}
	if limited == 0 {
		t.Fatal("50 requests at once were never limited (limit 5/s, burst 10)")
	}
	b.must(http.StatusOK, "GET", "/api/me", nil, nil)
}
