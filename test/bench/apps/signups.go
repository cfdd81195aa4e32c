package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// hist is one Prometheus histogram read from a /metrics page (its matching series summed): the
// number of observations, their sum, and the cumulative count at each upper bound.
type hist struct {
	Count, Sum float64
	Buckets    map[float64]float64
}

// scrapeFamilies reads the /metrics page at url. A page that cannot be read gives no families.
func scrapeFamilies(url string) map[string]*dto.MetricFamily {
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return nil
	}
	return families
}

// histOf is the histogram name of families, summing the series whose labels include every one of
// match; an absent one is empty.
func histOf(families map[string]*dto.MetricFamily, name string, match map[string]string) hist {
	h := hist{Buckets: map[float64]float64{}}
series:
	for _, m := range families[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range match {
			if labels[k] != v {
				continue series
			}
		}
		hm := m.GetHistogram()
		h.Count += float64(hm.GetSampleCount())
		h.Sum += hm.GetSampleSum()
		for _, b := range hm.GetBucket() {
			h.Buckets[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
	}
	return h
}

// since is what was observed between before and h.
func (h hist) since(before hist) hist {
	d := hist{Count: h.Count - before.Count, Sum: h.Sum - before.Sum, Buckets: map[float64]float64{}}
	for le, c := range h.Buckets {
		d.Buckets[le] = c - before.Buckets[le]
	}
	return d
}

// meanMS is the mean observation in milliseconds.
func (h hist) meanMS() float64 {
	if h.Count == 0 {
		return 0
	}
	return 1000 * h.Sum / h.Count
}

// over is the share of observations above the bucket bound le (which must be one of its bounds).
func (h hist) over(le float64) float64 {
	if h.Count == 0 {
		return 0
	}
	return 1 - h.Buckets[le]/h.Count
}

// signupParts reads, from the user service, where its signups spent their time: the whole
// request, the wait for a slot of the hash pool, and the hash itself.
type signupParts struct{ Request, HashWait, Hash hist }

func readSignupParts(userMetricsURL string) signupParts {
	families := scrapeFamilies(userMetricsURL)
	return signupParts{
		Request:  histOf(families, "scalestack_http_request_duration_seconds", map[string]string{"route": "POST /v1/users"}),
		HashWait: histOf(families, "scalestack_password_hash_wait_seconds", nil),
		Hash:     histOf(families, "scalestack_password_hash_duration_seconds", nil),
	}
}

func (p signupParts) since(before signupParts) signupParts {
	return signupParts{Request: p.Request.since(before.Request), HashWait: p.HashWait.since(before.HashWait), Hash: p.Hash.since(before.Hash)}
}

func (p signupParts) String() string {
	part := func(name string, h hist) string {
		return fmt.Sprintf("%s mean %.1f ms, %.1f%% over 100 ms", name, h.meanMS(), 100*h.over(0.1))
	}
	return fmt.Sprintf("%.0f signups at the user service: %s; %s; %s",
		p.Request.Count, part("request", p.Request), part("wait for a hash slot", p.HashWait), part("hash", p.Hash))
}

func (p signupParts) summary() map[string]float64 {
	return map[string]float64{
		"signups": p.Request.Count, "request_mean_ms": p.Request.meanMS(), "request_over_100ms": p.Request.over(0.1),
		"hash_wait_mean_ms": p.HashWait.meanMS(), "hash_wait_over_100ms": p.HashWait.over(0.1),
		"hash_mean_ms": p.Hash.meanMS(), "hash_over_100ms": p.Hash.over(0.1),
	}
}
