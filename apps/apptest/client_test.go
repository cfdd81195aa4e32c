package apptest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/scalestack/scalestack/apps/gateway"
	"github.com/scalestack/scalestack/apps/user"
	"github.com/scalestack/scalestack/pkg/shard"
)

// api is a client of the gateway's public API.
type api struct {
	t     testing.TB
	base  string
	token string
}

type reply struct {
	Status int
	Body   []byte
	Header http.Header
}

func (r reply) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.Body, err)
	}
}

func (a *api) raw(method, path, contentType string, body io.Reader) reply {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	return reply{Status: res.StatusCode, Body: b, Header: res.Header}
}

func (a *api) do(method, path string, in any) reply {
	a.t.Helper()
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			a.t.Fatal(err)
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	return a.raw(method, path, ct, body)
}

func (a *api) must(status int, method, path string, in, out any) {
	a.t.Helper()
	r := a.do(method, path, in)
	if r.Status != status {
		a.t.Fatalf("%s %s: got %d, want %d: %s", method, path, r.Status, status, strings.TrimSpace(string(r.Body)))
	}
	if out != nil {
		r.decode(a.t, out)
	}
}

var seq atomic.Int64

// signup creates a user with a unique handle and returns a client acting as it.
func signup(t testing.TB, base, prefix string) (*api, shard.ID) {
	t.Helper()
	n := seq.Add(1)
	handle := fmt.Sprintf("%s_%d", prefix, n)
	anon := &api{t: t, base: base}
	var res user.TokenResponse
	anon.must(http.StatusCreated, "POST", "/api/signup", user.SignupRequest{
		Handle: handle, Email: handle + "@example.com", Password: "correct horse battery", DisplayName: "User " + handle,
	}, &res)
	if res.Token == "" || res.ID == 0 {
		t.Fatalf("signup returned %+v", res)
	}
	return &api{t: t, base: base, token: res.Token}, res.ID
}

func feedOf(t testing.TB, a *api) gateway.FeedResponse {
	t.Helper()
	var f gateway.FeedResponse
	a.must(http.StatusOK, "GET", "/api/feed", nil, &f)
	return f
}

func feedHas(f gateway.FeedResponse, id shard.ID) bool {
	for _, p := range f.Posts {
		if p.ID == id {
			return true
		}
	}
	return false
}
