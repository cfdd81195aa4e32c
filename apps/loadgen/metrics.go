package loadgen

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
)

var cacheCounterRE = regexp.MustCompile(`(?m)^scalestack_cache_(hits|misses)_total\{cache="[a-z]+"\} ([0-9.e+]+)$`)

// CacheCounts sums the cache hit and miss counters that the services at metricsURLs expose
// (each a /metrics URL). Unreachable ones are skipped.
func CacheCounts(metricsURLs []string) (hits, misses float64) {
	for _, u := range metricsURLs {
		res, err := http.Get(u)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		for _, m := range cacheCounterRE.FindAllStringSubmatch(string(b), -1) {
			v, _ := strconv.ParseFloat(m[2], 64)
			if m[1] == "hits" {
				hits += v
			} else {
				misses += v
			}
		}
	}
	return hits, misses
}

// HitRatio is the share of hits between two CacheCounts readings (0 when nothing was read).
func HitRatio(h0, m0, h1, m1 float64) float64 {
	h, m := h1-h0, m1-m0
	if h+m <= 0 {
		return 0
	}
	return h / (h + m)
}
