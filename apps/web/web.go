// Package web is the small web UI the gateway serves as the CDN origin. Static assets are served
// under content-hashed names with "Cache-Control: public, max-age=31536000, immutable" (a new
// build gets new names, so caches never need purging); the HTML page that names them is
// "no-cache", so browsers and the CDN revalidate it (cheaply, by ETag) on every load.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

type asset struct {
	body  []byte
	ctype string
}

// Assets are the built UI: hashed asset names and the rendered page.
type Assets struct {
	byName map[string]asset // hashed name -> asset
	names  map[string]string
	page   []byte
	etag   string
	maxAge time.Duration
}

// New hashes the embedded assets and renders the page; maxAge is the assets' cache lifetime.
func New(maxAge time.Duration) (*Assets, error) {
	if maxAge <= 0 {
		maxAge = 365 * 24 * time.Hour
	}
	a := &Assets{byName: map[string]asset{}, names: map[string]string{}, maxAge: maxAge}
	for _, name := range []string{"app.js", "app.css"} {
		b, err := static.ReadFile("static/" + name)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		ext := path.Ext(name)
		hashed := strings.TrimSuffix(name, ext) + "." + hex.EncodeToString(sum[:6]) + ext
		a.byName[hashed] = asset{body: b, ctype: mime.TypeByExtension(ext)}
		a.names[name] = "/static/" + hashed
	}
	tpl, err := template.ParseFS(static, "static/index.html")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := tpl.Execute(&buf, map[string]string{"JS": a.names["app.js"], "CSS": a.names["app.css"]}); err != nil {
		return nil, err
	}
	a.page = buf.Bytes()
	sum := sha256.Sum256(a.page)
	a.etag = `"` + hex.EncodeToString(sum[:8]) + `"`
	return a, nil
}

// URL returns an asset's hashed URL (e.g. URL("app.js") = "/static/app.1a2b3c4d5e6f.js").
func (a *Assets) URL(name string) string { return a.names[name] }

func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
}

// Page serves the HTML.
func (a *Assets) Page(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", a.etag)
	if r.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(a.page)
}

// Static serves /static/{name}: hashed names only, immutable.
func (a *Assets) Static(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	as, ok := a.byName[r.PathValue("name")]
	if !ok {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "no such asset", http.StatusNotFound)
		return
	}
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d, immutable", int(a.maxAge.Seconds())))
	w.Header().Set("Content-Type", as.ctype)
	_, _ = w.Write(as.body)
}
