package service

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel"

	"github.com/scalestack/scalestack/apps/telemetry"
	"github.com/scalestack/scalestack/apps/user"
	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/pkg/platform"
	"github.com/scalestack/scalestack/pkg/shard"
)

// BenchmarkProfileRead measures what a cached profile read costs inside the gateway (no sockets
// between the client and the gateway; Redis is real): the whole handler, with its middleware
// (request ID, tracing, RED metrics), rate limit and client-side cache, beside a bare handler
// doing one Redis GET. Tracing is set up as in a pod with no trace endpoint: spans carry trace IDs
// and are not recorded. `go test -bench ProfileRead -benchmem ./apps/service`.
func BenchmarkProfileRead(b *testing.B) {
	ctx := context.Background()
	b.Setenv(platform.EnvTraceEndpoint, "")
	b.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	prev := otel.GetTracerProvider()
	shutdown, err := telemetry.SetupTracing(ctx, "gateway")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = shutdown(ctx); otel.SetTracerProvider(prev) }()
	r := localservers.StartRedis(b)
	cfg := Defaults()
	cfg.RedisAddr = r.Addr()
	cfg.TokenKey = []byte("0123456789abcdef0123456789abcdef")
	cfg.UserURL, cfg.PostURL, cfg.FeedURL = "http://127.0.0.1:1", "http://127.0.0.1:1", "http://127.0.0.1:1"
	cfg.RateLimit, cfg.RateBurst = 1e9, 1e9
	a, err := New(ctx, Gateway, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	id := shard.NewID(1, 1, 1)
	profile := `{"id":"` + id.String() + `","handle":"ada","display_name":"Ada","bio":"","followers":3,"following":1}`
	if err := rc.Do(ctx, rc.B().Set().Key(user.ProfileKey(id)).Value(profile).Build()).Error(); err != nil {
		b.Fatal(err)
	}
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := rc.Do(r.Context(), rc.B().Get().Key(user.ProfileKey(id)).Build()).ToString()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(v))
	})
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"gateway", a.Handler}, {"bare-redis-get", bare}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					w := httptest.NewRecorder()
					req := httptest.NewRequest(http.MethodGet, "/api/users/"+id.String(), nil)
					c.h.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatalf("%d %s", w.Code, w.Body)
					}
				}
			})
		})
	}
}
