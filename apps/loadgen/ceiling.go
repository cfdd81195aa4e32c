package loadgen

import (
	"context"
	"net/http"

	"github.com/redis/rueidis"

	"github.com/scalestack/scalestack/pkg/shard"
)

// CeilingHandler answers GET /api/users/{id} with one Redis GET and nothing else: the least any
// cached profile read can cost against that Redis. It first stores a small profile for the first
// 100,000 users. Benchmarks drive it with the profile-only mix beside the gateway.
func CeilingHandler(rc rueidis.Client, ids []shard.ID) http.Handler {
	ctx := context.Background()
	for i := 0; i < len(ids) && i < 100_000; i++ {
		_ = rc.Do(ctx, rc.B().Set().Key("ceiling:"+ids[i].String()).Value(`{"id":"`+ids[i].String()+`","handle":"u"}`).Build()).Error()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		v, err := rc.Do(r.Context(), rc.B().Get().Key("ceiling:"+r.PathValue("id")).Build()).ToString()
		if err != nil && !rueidis.IsRedisNil(err) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(v))
	})
	return mux
}
