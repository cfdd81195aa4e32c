// Package gateway is the public HTTP API and the CDN origin of the web UI. It authenticates
// callers (bearer token or the session cookie), limits each client's rate and request size,
// and assembles responses from the user, post and feed services, degrading instead of failing
// when a non-essential part is unavailable: a feed without author profiles beats an error.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/scalestack/scalestack/apps/auth"
	"github.com/scalestack/scalestack/apps/cache"
	"github.com/scalestack/scalestack/apps/feed"
	"github.com/scalestack/scalestack/apps/httpx"
	"github.com/scalestack/scalestack/apps/post"
	"github.com/scalestack/scalestack/apps/resilience"
	"github.com/scalestack/scalestack/apps/telemetry"
	"github.com/scalestack/scalestack/apps/user"
	"github.com/scalestack/scalestack/apps/web"
	"github.com/scalestack/scalestack/pkg/shard"
)

// SessionCookie holds the token for the web UI.
const SessionCookie = "ss_session"

// Gateway serves the public API.
type Gateway struct {
	Users, Posts, Feed *resilience.Client
	Tokens             *auth.Tokens
	Assets             *web.Assets
	// Limit applies to every client; AuthLimit to signup and login per address.
	Limit, AuthLimit Limiter
	TrustForwarded   bool
	// SecureCookies marks the session cookie Secure (behind TLS).
	SecureCookies bool
	// Profiles and Posts, when set, read the services' shared cache directly (hot entries from
	// this process's client-side cache); the services are called only on a miss.
	ProfileCache, PostCache *cache.Cache
	// FeedPages, when set, keeps each user's first feed page (feed.PageKey) for a short TTL, so
	// that rereading a feed whose timeline did not change skips the feed service.
	FeedPages *cache.Cache
}

// Routes registers the public API and the UI on mux.
func (g *Gateway) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", g.Assets.Page)
	// A profile page, /@handle: the same page, which routes on its path.
	mux.HandleFunc("GET /{page}", func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.PathValue("page"), "@") {
			httpx.WriteError(w, r, httpx.NotFound("no page %s", r.URL.Path))
			return
		}
		g.Assets.Page(w, r)
	})
	mux.HandleFunc("GET /static/{name}", g.Assets.Static)
	mux.Handle("POST /api/signup", g.public(g.signup, true))
	mux.Handle("POST /api/login", g.public(g.login, true))
	mux.Handle("POST /api/logout", g.public(g.logout, false))
	mux.Handle("GET /api/users/{id}", g.public(g.profile, false))
	mux.Handle("GET /api/users/{id}/posts", g.public(g.userPosts, false))
	mux.Handle("GET /api/posts/{id}", g.public(g.getPost, false))
	mux.Handle("GET /api/me", g.authed(g.me))
	mux.Handle("GET /api/me/following", g.authed(g.myFollowing))
	mux.Handle("PATCH /api/me", g.authed(g.updateMe))
	mux.Handle("PUT /api/users/{id}/follow", g.authed(g.follow))
	mux.Handle("DELETE /api/users/{id}/follow", g.authed(g.unfollow))
	mux.Handle("POST /api/posts", g.authed(g.createPost))
	mux.Handle("POST /api/posts/{id}/like", g.authed(g.like))
	mux.Handle("PUT /api/posts/{id}/like", g.authed(g.like))
	mux.Handle("DELETE /api/posts/{id}/like", g.authed(g.unlike))
	mux.Handle("GET /api/handles/{handle}", g.public(g.byHandle, false))
	mux.Handle("GET /api/feed", g.authed(g.feed))
	mux.Handle("GET /api/suggestions", g.authed(g.suggestions))
}

type authedFunc func(w http.ResponseWriter, r *http.Request, me shard.ID) error

func (g *Gateway) limited(w http.ResponseWriter, r *http.Request, key string, lim Limiter) bool {
	if lim == nil || lim.Allow(r.Context(), key) {
		return false
	}
	w.Header().Set("Retry-After", "1")
	httpx.WriteError(w, r, httpx.Errorf(http.StatusTooManyRequests, "rate_limited", "too many requests from this client; retry after a second"))
	return true
}

func (g *Gateway) public(h httpx.HandlerFunc, authEndpoint bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := ClientIP(r, g.TrustForwarded)
		if g.limited(w, r, "ip:"+ip, g.Limit) || (authEndpoint && g.limited(w, r, "auth:"+ip, g.AuthLimit)) {
			return
		}
		if err := h(w, r); err != nil {
			httpx.WriteError(w, r, resilience.HTTPError(err))
		}
	})
}

// token returns the caller's token: the Authorization header, else the session cookie.
func token(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return t
		}
		return "\x00" // a malformed header is refused, not ignored
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		return c.Value
	}
	return ""
}

func (g *Gateway) authed(h authedFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := token(r)
		if t == "" {
			httpx.WriteError(w, r, httpx.Unauthorized("sign in first: send a bearer token or the session cookie"))
			return
		}
		me, err := g.Tokens.Verify(t)
		if err != nil {
			httpx.WriteError(w, r, httpx.Unauthorized("the token is invalid or expired"))
			return
		}
		if g.limited(w, r, "user:"+me.String(), g.Limit) {
			return
		}
		telemetry.Annotate(r.Context(), telemetry.UserID(int64(me)))
		if err := h(w, r, me); err != nil {
			httpx.WriteError(w, r, resilience.HTTPError(err))
		}
	})
}

func (g *Gateway) setSession(w http.ResponseWriter, tok string) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: tok, Path: "/", HttpOnly: true, Secure: g.SecureCookies,
		SameSite: http.SameSiteStrictMode, MaxAge: int((24 * time.Hour).Seconds()),
	})
}

func (g *Gateway) signup(w http.ResponseWriter, r *http.Request) error {
	var req user.SignupRequest
	if err := httpx.DecodeJSON(w, r, 0, &req); err != nil {
		return err
	}
	req.Handle = strings.ToLower(req.Handle)
	if err := user.ValidateSignup(&req); err != nil {
		return err
	}
	var res user.TokenResponse
	if err := g.Users.Post(r.Context(), "/v1/users", req, &res); err != nil {
		return err
	}
	g.setSession(w, res.Token)
	httpx.WriteJSON(w, http.StatusCreated, res)
	return nil
}

func (g *Gateway) login(w http.ResponseWriter, r *http.Request) error {
	var req user.LoginRequest
	if err := httpx.DecodeJSON(w, r, 0, &req); err != nil {
		return err
	}
	var res user.TokenResponse
	if err := g.Users.Post(r.Context(), "/v1/login", req, &res); err != nil {
		return err
	}
	g.setSession(w, res.Token)
	httpx.WriteJSON(w, http.StatusOK, res)
	return nil
}

func (g *Gateway) logout(w http.ResponseWriter, _ *http.Request) error {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", HttpOnly: true, MaxAge: -1, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// loadRaw calls a service for one entity; a 404 is a cacheable miss.
func loadRaw(ctx context.Context, c *resilience.Client, path string) ([]byte, error) {
	var raw []byte
	err := c.Get(ctx, path, &raw)
	var se *resilience.StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return nil, cache.ErrNotFound
	}
	return raw, err
}

// batchRaw batch-gets entities from a service (at most 100 per call) and returns each one's JSON
// in ids' order, nil for those that do not exist.
func batchRaw(ctx context.Context, svc *resilience.Client, prefix, field string, ids []shard.ID) ([][]byte, error) {
	byID := map[shard.ID][]byte{}
	for start := 0; start < len(ids); start += 100 {
		end := min(start+100, len(ids))
		var res map[string][]json.RawMessage
		if err := svc.Get(ctx, prefix+joinIDs(ids[start:end]), &res); err != nil {
			return nil, err
		}
		for _, raw := range res[field] {
			var head struct {
				ID shard.ID `json:"id"`
			}
			if err := json.Unmarshal(raw, &head); err != nil {
				return nil, err
			}
			byID[head.ID] = raw
		}
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = byID[id]
	}
	return out, nil
}

// rawProfile returns a profile's JSON, from the cache when it is there.
func (g *Gateway) rawProfile(ctx context.Context, id shard.ID) ([]byte, error) {
	path := "/v1/users/" + id.String()
	if g.ProfileCache == nil {
		var raw []byte
		return raw, g.Users.Get(ctx, path, &raw)
	}
	b, err := g.ProfileCache.Get(ctx, user.ProfileKey(id), func(ctx context.Context) ([]byte, error) { return loadRaw(ctx, g.Users, path) })
	if errors.Is(err, cache.ErrNotFound) {
		return nil, httpx.NotFound("user %s does not exist", id)
	}
	return b, err
}

// passProfile answers with a profile as it is stored.
func (g *Gateway) passProfile(w http.ResponseWriter, r *http.Request, id shard.ID) error {
	raw, err := g.rawProfile(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.WriteRaw(w, http.StatusOK, raw)
	return nil
}

// relayed marks cache keys a write through the gateway may have changed (the service that made
// it deleted them from Redis): this process reads them from Redis, around its client-side copy,
// until Redis' invalidation message has surely arrived.
func (g *Gateway) relayed(keys ...string) {
	for _, c := range []*cache.Cache{g.ProfileCache, g.PostCache, g.FeedPages} {
		if c != nil {
			c.MarkInvalidated(keys...)
		}
	}
}

func (g *Gateway) profile(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathID(r, "id")
	if err != nil {
		return err
	}
	return g.passProfile(w, r, id)
}

// myFollowing is GET /api/me/following: the IDs of the users the caller follows.
func (g *Gateway) myFollowing(w http.ResponseWriter, r *http.Request, me shard.ID) error {
	var res struct {
		IDs []shard.ID `json:"ids"`
	}
	if err := g.Users.Get(r.Context(), "/v1/users/"+me.String()+"/following", &res); err != nil {
		return err
	}
	if res.IDs == nil {
		res.IDs = []shard.ID{}
	}
	httpx.WriteJSON(w, http.StatusOK, res)
	return nil
}

// byHandle is GET /api/handles/{handle}: the profile of whoever has the handle.
func (g *Gateway) byHandle(w http.ResponseWriter, r *http.Request) error {
	var who user.HandleResponse
	if err := g.Users.Get(r.Context(), "/v1/handles/"+url.PathEscape(r.PathValue("handle")), &who); err != nil {
		return err
	}
	return g.passProfile(w, r, who.ID)
}

func (g *Gateway) me(w http.ResponseWriter, r *http.Request, me shard.ID) error {
	return g.passProfile(w, r, me)
}

func (g *Gateway) updateMe(w http.ResponseWriter, r *http.Request, me shard.ID) error {
	var req user.UpdateRequest
	if err := httpx.DecodeJSON(w, r, 0, &req); err != nil {
		return err
	}
	var p user.Profile
	if err := g.Users.Patch(r.Context(), "/v1/users/"+me.String(), req, &p); err != nil {
		return err
	}
	g.relayed(user.ProfileKey(me))
	httpx.WriteJSON(w, http.StatusOK, p)
	return nil
}

func (g *Gateway) follow(w http.ResponseWriter, r *http.Request, me shard.ID) error {
	target, err := httpx.PathID(r, "id")
	if err != nil {
		return err
	}
	if err := g.Users.Put(r.Context(), "/v1/users/"+me.String()+"/following/"+target.String(), nil, nil); err != nil {
		return err
	}
	g.relayed(user.ProfileKey(me), user.ProfileKey(target), feed.PageKey(me))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (g *Gateway) unfollow(w http.ResponseWriter, r *http.Request, me shard.ID) error {
	target, err := httpx.PathID(r, "id")
	if err != nil {
		return err
	}
	if err := g.Users.Delete(r.Context(), "/v1/users/"+me.String()+"/following/"+target.String(), nil); err != nil {
		return err
	}
	g.relayed(user.ProfileKey(me), user.ProfileKey(target), feed.PageKey(me))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// PostRequest is POST /api/posts.
type PostRequest struct {
	Body string `json:"body"`
}

func (g *Gateway) createPost(w http.ResponseWriter, r *http.Request, me shard.ID) error {
	var req PostRequest
	if err := httpx.DecodeJSON(w, r, 0, &req); err != nil {
		return err
	}
	if err := post.ValidateBody(req.Body); err != nil {
		return err
	}
	var p post.Post
	if err := g.Posts.Post(r.Context(), "/v1/posts", post.CreateRequest{Author: me, Body: req.Body}, &p); err != nil {
		return err
	}
	// The post service pushed the post into the author's own timeline, which dropped the cached
	// page in Redis.
	g.relayed(feed.PageKey(me))
	httpx.WriteJSON(w, http.StatusCreated, p)
	return nil
}

// like and unlike are the caller's like of a post: idempotent (liking twice counts once).
func (g *Gateway) like(w http.ResponseWriter, r *http.Request, me shard.ID) error {
	return g.setLike(w, r, me, true)
}

func (g *Gateway) unlike(w http.ResponseWriter, r *http.Request, me shard.ID) error {
	return g.setLike(w, r, me, false)
}

func (g *Gateway) setLike(w http.ResponseWriter, r *http.Request, me shard.ID, like bool) error {
	id, err := httpx.PathID(r, "id")
	if err != nil {
		return err
	}
	var p post.Post
	path := "/v1/posts/" + id.String() + "/likes/" + me.String()
	if like {
		err = g.Posts.Put(r.Context(), path, nil, &p)
	} else {
		err = g.Posts.Delete(r.Context(), path, &p)
	}
	if err != nil {
		return err
	}
	g.relayed(post.Key(id))
	httpx.WriteJSON(w, http.StatusOK, p)
	return nil
}

// FeedPost is a post as the public API shows it, with its author when known.
type FeedPost struct {
	post.Post
	AuthorProfile *AuthorView `json:"author,omitempty"`
}

// AuthorView is the author part of a FeedPost.
type AuthorView struct {
	ID          shard.ID `json:"id"`
	Handle      string   `json:"handle"`
	DisplayName string   `json:"display_name"`
}

// FeedResponse is GET /api/feed and the post lists.
type FeedResponse struct {
	Posts    []FeedPost `json:"posts"`
	Degraded []string   `json:"degraded,omitempty"`
	Next     *shard.ID  `json:"next,omitempty"`
}

func (g *Gateway) getPost(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathID(r, "id")
	if err != nil {
		return err
	}
	var p post.Post
	if err := g.Posts.Get(r.Context(), "/v1/posts/"+id.String(), &p); err != nil {
		return err
	}
	res := g.assemble(r.Context(), []*post.Post{&p}, nil)
	httpx.WriteJSON(w, http.StatusOK, res.Posts[0])
	return nil
}

func (g *Gateway) userPosts(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathID(r, "id")
	if err != nil {
		return err
	}
	q := url.Values{}
	if v := r.URL.Query().Get("limit"); v != "" {
		q.Set("limit", v)
	}
	if v := r.URL.Query().Get("before"); v != "" {
		q.Set("before", v)
	}
	var list struct {
		Posts []*post.Post `json:"posts"`
		Next  *shard.ID    `json:"next"`
	}
	if err := g.Posts.Get(r.Context(), "/v1/users/"+id.String()+"/posts?"+q.Encode(), &list); err != nil {
		return err
	}
	res := g.assemble(r.Context(), list.Posts, nil)
	res.Next = list.Next
	httpx.WriteJSON(w, http.StatusOK, res)
	return nil
}

func (g *Gateway) feed(w http.ResponseWriter, r *http.Request, me shard.ID) error {
	limit := r.URL.Query().Get("limit")
	if limit == "" {
		limit = "20"
	}
	if n, err := strconv.Atoi(limit); err != nil || n < 1 || n > 100 {
		return httpx.BadRequest("query parameter limit must be an integer in [1, 100]")
	}
	ctx := r.Context()
	f, err := g.feedPage(ctx, me, limit)
	if err != nil {
		return err
	}
	posts, err := g.getPosts(ctx, f.PostIDs)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, g.assemble(ctx, posts, f.Degraded))
	return nil
}

// feedPage returns me's ranked post IDs: the first page of the default length from the page cache
// when it is set, anything else (and a miss) from the feed service. A degraded page is served
// but not cached.
func (g *Gateway) feedPage(ctx context.Context, me shard.ID, limit string) (*feed.Response, error) {
	path := "/v1/feed/" + me.String() + "?limit=" + limit
	f := &feed.Response{}
	if g.FeedPages == nil || limit != strconv.Itoa(feed.DefaultPage) {
		return f, g.Feed.Get(ctx, path, f)
	}
	raw, err := g.FeedPages.Get(ctx, feed.PageKey(me), func(ctx context.Context) ([]byte, error) {
		raw, err := loadRaw(ctx, g.Feed, path)
		if err != nil {
			return nil, err
		}
		var head struct {
			Degraded []string `json:"degraded"`
		}
		if json.Unmarshal(raw, &head) == nil && len(head.Degraded) > 0 {
			return raw, cache.ErrDoNotStore
		}
		return raw, nil
	})
	if err != nil {
		return nil, err
	}
	return f, json.Unmarshal(raw, f)
}

// getPosts returns the posts that exist among ids, in order: from the cache when set.
func (g *Gateway) getPosts(ctx context.Context, ids []shard.ID) ([]*post.Post, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if g.PostCache == nil {
		var batch struct {
			Posts []*post.Post `json:"posts"`
		}
		err := g.Posts.Get(ctx, "/v1/posts?ids="+joinIDs(ids), &batch)
		return batch.Posts, err
	}
	return CachedPosts(ctx, g.PostCache, g.Posts, ids)
}

// CachedPosts batch-reads posts from the shared cache, loading misses from the post service.
func CachedPosts(ctx context.Context, c *cache.Cache, svc *resilience.Client, ids []shard.ID) ([]*post.Post, error) {
	return cachedBatch[post.Post](ctx, c, svc, ids, post.Key, "/v1/posts?ids=", "posts")
}

// cachedBatch batch-reads objects of type T from a shared cache by ID (key names each one's cache
// key), loading every miss in one request to the owning service's batch endpoint (path, then the
// IDs; the objects come back in the response's field). Objects that do not exist are left out.
func cachedBatch[T any](ctx context.Context, c *cache.Cache, svc *resilience.Client, ids []shard.ID,
	key func(shard.ID) string, path, field string,
) ([]*T, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = key(id)
	}
	vals, err := c.GetMany(ctx, keys, func(ctx context.Context, missing []int) ([][]byte, error) {
		want := make([]shard.ID, len(missing))
		for j, i := range missing {
			want[j] = ids[i]
		}
		return batchRaw(ctx, svc, path, field, want)
	})
	if err != nil {
		return nil, err
	}
	out := make([]*T, 0, len(vals))
	for _, v := range vals {
		if v == nil {
			continue
		}
		obj := new(T)
		if err := json.Unmarshal(v, obj); err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
	return out, nil
}

// assemble adds author profiles to posts; without the user service, posts go out without them.
func (g *Gateway) assemble(ctx context.Context, posts []*post.Post, degraded []string) *FeedResponse {
	res := &FeedResponse{Posts: make([]FeedPost, 0, len(posts)), Degraded: degraded}
	seen := map[shard.ID]bool{}
	var authors []shard.ID
	for _, p := range posts {
		if !seen[p.Author] {
			seen[p.Author] = true
			authors = append(authors, p.Author)
		}
	}
	profiles := map[shard.ID]*AuthorView{}
	if len(authors) > 0 {
		users, err := g.getProfiles(ctx, authors)
		if err != nil {
			res.Degraded = append(res.Degraded, "profiles")
		}
		for _, u := range users {
			profiles[u.ID] = &AuthorView{ID: u.ID, Handle: u.Handle, DisplayName: u.DisplayName}
		}
	}
	for _, p := range posts {
		res.Posts = append(res.Posts, FeedPost{Post: *p, AuthorProfile: profiles[p.Author]})
	}
	return res
}

// getProfiles returns the profiles that exist among ids: from the cache when set.
func (g *Gateway) getProfiles(ctx context.Context, ids []shard.ID) ([]*user.Profile, error) {
	if g.ProfileCache == nil {
		var batch struct {
			Users []*user.Profile `json:"users"`
		}
		err := g.Users.Get(ctx, "/v1/users?ids="+joinIDs(ids), &batch)
		return batch.Users, err
	}
	return cachedBatch[user.Profile](ctx, g.ProfileCache, g.Users, ids, user.ProfileKey, "/v1/users?ids=", "users")
}

func (g *Gateway) suggestions(w http.ResponseWriter, r *http.Request, me shard.ID) error {
	ctx := r.Context()
	var s struct {
		IDs []shard.ID `json:"ids"`
	}
	if err := g.Users.Get(ctx, "/v1/users/"+me.String()+"/suggestions", &s); err != nil {
		return err
	}
	users := []*user.Profile{}
	if len(s.IDs) > 0 {
		if len(s.IDs) > 20 {
			s.IDs = s.IDs[:20]
		}
		var err error
		if users, err = g.getProfiles(ctx, s.IDs); err != nil {
			return err
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"users": users})
	return nil
}

func joinIDs(ids []shard.ID) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = id.String()
	}
	return strings.Join(parts, ",")
}

// MetricsGuard refuses /metrics to requests that came through a proxy (the CDN or ingress add
// X-Forwarded-For); Prometheus scrapes the pod directly.
func MetricsGuard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "" {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
