package loadgen

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
)

var cacheCounterRE = regexp.MustCompile(`(?m)^scalestack_cache_(hits|misses)_total\{cache="([a-z]+)"\} ([0-9.e+]+)$`)

// Counts is one cache's hit and miss counters.
type Counts struct{ Hits, Misses float64 }

// Ratio is the share of hits since an earlier reading (0 when nothing was read).
func (c Counts) Ratio(since Counts) float64 {
	return HitRatio(since.Hits, since.Misses, c.Hits, c.Misses)
}

// CacheCountsByCache reads the cache hit and miss counters that the services at metricsURLs expose
// (each a /metrics URL), summed by cache (profiles, posts, timelines, ...). Unreachable ones are
// skipped.
func CacheCountsByCache(metricsURLs []string) map[string]Counts {
	out := map[string]Counts{}
	for _, u := range metricsURLs {
		res, err := http.Get(u)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		for _, m := range cacheCounterRE.FindAllStringSubmatch(string(b), -1) {
			v, _ := strconv.ParseFloat(m[3], 64)
			c := out[m[2]]
			if m[1] == "hits" {
				c.Hits += v
			} else {
				c.Misses += v
			}
			out[m[2]] = c
		}
	}
	return out
}

// CacheCounts sums the cache hit and miss counters that the services at metricsURLs expose
// (each a /metrics URL) over every cache. Unreachable ones are skipped.
func CacheCounts(metricsURLs []string) (hits, misses float64) {
	for _, c := range CacheCountsByCache(metricsURLs) {
		hits, misses = hits+c.Hits, misses+c.Misses
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
