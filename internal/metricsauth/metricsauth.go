// Package metricsauth guards the operator's metrics endpoint: a caller must present a bearer token
// the API server authenticates (TokenReview) and be allowed to get the endpoint's path
// (SubjectAccessReview on a non-resource URL), as kube-rbac-proxy and controller-runtime's
// metrics filter do. It is our own because controller-runtime's filter links k8s.io/apiserver,
// and with it CEL, gRPC and OpenTelemetry: 34 MB of the operator's 90 MB binary and about 10 MiB
// of its resident memory at start (docs/benchmarks.md), for two API calls.
package metricsauth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authzclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// How long answers are remembered: a scrape every 30 s then costs no API request. Denials are
// remembered for less, so a binding just created takes effect soon.
const (
	authnTTL      = time.Minute
	authnFailTTL  = 10 * time.Second
	allowTTL      = 5 * time.Minute
	denyTTL       = 30 * time.Second
	reviewTimeout = 10 * time.Second
	// maxEntries bounds each cache; a full cache is emptied (callers are a few scrapers).
	maxEntries = 1024
)

// Provider is a metricsserver.Options.FilterProvider.
func Provider(cfg *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
	authn, err := authnclient.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	authz, err := authzclient.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	g := &guard{tokens: authn.TokenReviews(), reviews: authz.SubjectAccessReviews(), now: time.Now,
		users: newCache[user](), decisions: newCache[decision]()}
	return g.filter, nil
}

// user is who a token authenticates as; ok is false for a token the API server refused.
type user struct {
	ok   bool
	info authenticationv1.UserInfo
}

type decision struct {
	allowed bool
	reason  string
}

type guard struct {
	tokens    authnclient.TokenReviewInterface
	reviews   authzclient.SubjectAccessReviewInterface
	now       func() time.Time
	users     *cache[user]
	decisions *cache[decision]
}

func (g *guard) filter(log logr.Logger, next http.Handler) (http.Handler, error) {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		token, ok := bearer(req)
		if !ok {
			http.Error(w, "Unauthorized: a bearer token is required", http.StatusUnauthorized)
			return
		}
		u, err := g.authenticate(req.Context(), token)
		if err != nil {
			log.Error(err, "Authenticating a metrics request failed")
			http.Error(w, "Authentication failed", http.StatusInternalServerError)
			return
		}
		if !u.ok {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		d, err := g.authorize(req.Context(), u.info, strings.ToLower(req.Method), req.URL.Path)
		if err != nil {
			log.Error(err, "Authorizing a metrics request failed", "user", u.info.Username)
			http.Error(w, "Authorization failed for user "+u.info.Username, http.StatusInternalServerError)
			return
		}
		if !d.allowed {
			log.V(4).Info("Metrics request denied", "user", u.info.Username, "reason", d.reason)
			http.Error(w, "Authorization denied for user "+u.info.Username, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, req)
	}), nil
}

// bearer is the request's bearer token.
func bearer(req *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	return token, ok && strings.EqualFold(scheme, "bearer") && token != ""
}

// authenticate asks the API server who the token is, remembering the answer by the token's hash
// (the token itself is never kept).
func (g *guard) authenticate(ctx context.Context, token string) (user, error) {
	key := fmt.Sprintf("%x", sha256.Sum256([]byte(token)))
	if u, ok := g.users.get(key, g.now()); ok {
		return u, nil
	}
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	r, err := g.tokens.Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return user{}, fmt.Errorf("TokenReview: %w", err)
	}
	u, ttl := user{ok: r.Status.Authenticated, info: r.Status.User}, authnTTL
	if !u.ok {
		ttl = authnFailTTL
	}
	g.users.put(key, u, g.now().Add(ttl))
	return u, nil
}

// authorize asks the API server whether the user may use verb on the non-resource path.
func (g *guard) authorize(ctx context.Context, u authenticationv1.UserInfo, verb, path string) (decision, error) {
	key := strings.Join([]string{u.Username, u.UID, strings.Join(u.Groups, ","), fmt.Sprint(u.Extra), verb, path}, "\x00")
	if d, ok := g.decisions.get(key, g.now()); ok {
		return d, nil
	}
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	r, err := g.reviews.Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		return decision{}, fmt.Errorf("SubjectAccessReview: %w", err)
	}
	d, ttl := decision{allowed: r.Status.Allowed && !r.Status.Denied, reason: r.Status.Reason}, allowTTL
	if !d.allowed {
		ttl = denyTTL
	}
	g.decisions.put(key, d, g.now().Add(ttl))
	return d, nil
}

// cache is a small map of answers with their expiry.
type cache[V any] struct {
	mu      sync.Mutex
	entries map[string]entry[V]
}

type entry[V any] struct {
	v       V
	expires time.Time
}

func newCache[V any]() *cache[V] { return &cache[V]{entries: map[string]entry[V]{}} }

func (c *cache[V]) get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *cache[V]) put(key string, v V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxEntries {
		clear(c.entries)
	}
	c.entries[key] = entry[V]{v: v, expires: expires}
}
