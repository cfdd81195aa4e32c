// Command realpods is issue 16's measurement in real pods (make bench-realpods; needs root): the
// apps' workload (apps/loadgen, the Zipf mix of make bench-apps) against the gateway Service of a
// SocialPlatform the operator provisioned on the local real node (kubelet, containerd, kube-proxy),
// and, in the same run and with the same seed and runs, against the same apps as host processes
// (apps/localstack, as make bench-apps starts them). It prints the two side by side and writes
// docs/bench/realpods-results.json.
//
// The platform: two MariaDB shards with a replica each, a 1 GiB Redis, kfake in a pod for Kafka,
// one pod per service (no autoscaling), and rate limits raised out of the way
// (spec.apps.rateLimit), as the host-process stack has them: the workload comes from one address
// and its most active user makes about a tenth of the requests.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/redis/rueidis"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/scalestack/scalestack/apps/auth"
	"github.com/scalestack/scalestack/apps/loadgen"
	"github.com/scalestack/scalestack/apps/localstack"
	"github.com/scalestack/scalestack/apps/service"
	"github.com/scalestack/scalestack/apps/store"
	"github.com/scalestack/scalestack/internal/localservers"
)

type options struct {
	users, active, concurrency int
	run, warmup                time.Duration
}

func say(format string, args ...any) {
	fmt.Printf("[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func main() {
	var o options
	flag.IntVar(&o.users, "users", 1_000_000, "users to seed")
	flag.IntVar(&o.active, "active", 20_000, "active users (they follow others and have timelines)")
	flag.DurationVar(&o.run, "run", 15*time.Second, "duration of each measured run")
	flag.DurationVar(&o.warmup, "warmup", 10*time.Second, "duration of the warm-up (the mixed workload, closed loop)")
	flag.IntVar(&o.concurrency, "concurrency", 64, "closed-loop workers")
	out := flag.String("out", "docs/bench", "where to write realpods-results.json")
	only := flag.String("only", "", "measure only one side: host or pods (default both)")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctrllog.SetLogger(logr.Discard())
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench-realpods needs root: the real node runs kubelet, containerd, network namespaces and iptables")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	results := map[string]figures{}
	if *only != "pods" {
		say("=== the apps as host processes (apps/localstack)")
		f, err := hostProcesses(ctx, o)
		if err != nil {
			fail(err)
		}
		results["host"] = f
	}
	if *only != "host" {
		say("=== the apps in real pods, provisioned by the operator on the real node")
		f, err := realPods(ctx, o)
		if err != nil {
			fail(err)
		}
		results["pods"] = f
	}
	printSummary(o, results)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}
	b, _ := json.MarshalIndent(map[string]any{"options": map[string]any{"users": o.users, "active": o.active,
		"concurrency": o.concurrency, "run": o.run.String()}, "results": results}, "", "  ")
	path := filepath.Join(*out, "realpods-results.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		fail(err)
	}
	say("wrote %s", path)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench-realpods:", err)
	os.Exit(1)
}

// target is what the measurement drives and reads: the gateway, the services' metrics pages, the
// shards and Redis for seeding (and for the ceiling), the key tokens are signed with.
type target struct {
	gateway  string
	metrics  map[string]string // service -> its /metrics URL
	shards   *store.Shards
	rc       rueidis.Client
	tokenKey []byte
	// caughtUp returns once every replica has applied what its primary wrote.
	caughtUp func(context.Context) error
	// cpu reads the CPU time of this target's processes by part (readCPU).
	cpu func() cpuUse
}

// figures are one side's measurements.
type figures struct {
	Seed             string             `json:"seed"`
	CeilingRPS       float64            `json:"ceiling_rps"`
	ProfilePeakRPS   float64            `json:"profile_peak_rps"`
	ProfileP99HalfMs float64            `json:"profile_p99_at_half_peak_ms"`
	MixedPeakRPS     float64            `json:"mixed_peak_rps"`
	MixedErrorRate   float64            `json:"mixed_error_rate"`
	MixedP95Ms       float64            `json:"mixed_p95_ms"`
	FeedP95HalfMs    float64            `json:"feed_p95_at_half_mixed_peak_ms"`
	P99HalfMs        float64            `json:"p99_at_half_mixed_peak_ms"`
	SignupP99At20Ms  float64            `json:"signup_p99_at_20pct_ms"`
	SignupsAt20      int                `json:"signups_at_20pct"`
	OthersP99At20Ms  float64            `json:"other_p99_at_20pct_ms"`
	HitRatioSteady   float64            `json:"cache_hit_ratio_steady"`
	HitRatioByCache  map[string]float64 `json:"cache_hit_ratio_steady_by_cache"`
	// CPU by part: cores busy with no load, and milliseconds per request in the closed-loop runs.
	IdleCPU             cpuFigures `json:"idle_cpu_cores"`
	ProfileCPU          cpuFigures `json:"profile_closed_loop_cpu_ms_per_request"`
	MixedCPU            cpuFigures `json:"mixed_closed_loop_cpu_ms_per_request"`
	ErrorSamples        []string   `json:"error_samples,omitempty"`
	HalfMixedErrorRate  float64    `json:"error_rate_at_half_mixed_peak"`
	ProfileClosedErrors float64    `json:"profile_closed_loop_error_rate"`
}

// measure seeds the target and runs make bench-apps' runs that issue 16's table reads, each with
// its own seed (the same in both targets, so both see the same users and targets).
func measure(ctx context.Context, t target, o options) (figures, error) {
	var f figures
	say("seeding %d users (%d active)", o.users, o.active)
	start := time.Now()
	ids, err := loadgen.Seed(ctx, t.shards, t.rc, loadgen.SeedOptions{Users: o.users, Active: o.active, FollowsEach: 20,
		Authors: 5000, PostsEach: 10, CelebrityFollowers: 1000}, func(s string) { say("  %s", s) })
	if err != nil {
		return f, fmt.Errorf("seeding: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	err = t.caughtUp(wctx)
	cancel()
	if err != nil {
		return f, fmt.Errorf("waiting for the replicas: %w", err)
	}
	f.Seed = time.Since(start).Round(time.Second).String()
	say("seeded in %s; the replicas have caught up", f.Seed)
	tok, err := auth.NewTokens(t.tokenKey, 24*time.Hour)
	if err != nil {
		return f, err
	}
	token := loadgen.TokenFor(tok)
	runs := uint64(0)
	cfg := func(base string, mix loadgen.Mix, rate float64) loadgen.Config {
		runs++
		return loadgen.Config{Target: base, Users: ids, Token: token, Mix: mix, Concurrency: o.concurrency, Rate: rate, Duration: o.run, Seed: 6 + runs}
	}
	run := func(name string, c loadgen.Config) loadgen.Result {
		r := loadgen.Run(ctx, c)
		say("%s\n  %s", name, r)
		for _, e := range r.ErrorSamples {
			say("  error sample: %s", e)
			if len(f.ErrorSamples) < 10 {
				f.ErrorSamples = append(f.ErrorSamples, name+": "+e)
			}
		}
		return r
	}
	profiles := loadgen.Mix{loadgen.Profile: 1}
	// What the target costs with no load: probes, scrapes, agents, the control plane.
	idle := t.cpu()
	select {
	case <-ctx.Done():
		return f, ctx.Err()
	case <-time.After(10 * time.Second):
	}
	f.IdleCPU = t.cpu().since(idle).per(10, time.Second)
	say("CPU cores busy with no load: %s", sortedFigures(f.IdleCPU))
	say("warming up")
	warm := cfg(t.gateway, loadgen.DefaultMix, 0)
	warm.Duration = o.warmup
	loadgen.Run(ctx, warm)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return f, err
	}
	ceilingSrv := &http.Server{Handler: loadgen.CeilingHandler(t.rc, ids), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = ceilingSrv.Serve(l) }()
	ceil := run("ceiling: net/http + one GET on this target's Redis, closed loop", cfg("http://"+l.Addr().String(), profiles, 0))
	_ = ceilingSrv.Close()
	c0 := t.cpu()
	prof := run("profile read, closed loop", cfg(t.gateway, profiles, 0))
	c1 := t.cpu()
	mixed := run("mixed workload, closed loop", cfg(t.gateway, loadgen.DefaultMix, 0))
	c2 := t.cpu()
	f.ProfileCPU = c1.since(c0).per(float64(prof.All.Requests), time.Millisecond)
	f.MixedCPU = c2.since(c1).per(float64(mixed.All.Requests), time.Millisecond)
	say("CPU ms per request, profile run: %s", sortedFigures(f.ProfileCPU))
	say("CPU ms per request, mixed run: %s", sortedFigures(f.MixedCPU))
	half := run("profile read at half of its peak, open loop", cfg(t.gateway, profiles, prof.All.Throughput/2))
	c20 := cfg(t.gateway, loadgen.DefaultMix, 0.2*mixed.All.Throughput)
	c20.Duration = 4 * o.run // a few hundred signups, as make bench-apps
	at20 := run("mixed workload at 20% of its peak, open loop", c20)
	before := loadgen.CacheCountsByService(t.metrics)
	at50 := run("mixed workload at 50% of its peak, open loop", cfg(t.gateway, loadgen.DefaultMix, 0.5*mixed.All.Throughput))
	after := loadgen.CacheCountsByService(t.metrics)
	if err := ctx.Err(); err != nil {
		return f, err
	}

	f.CeilingRPS, f.ProfilePeakRPS, f.ProfileClosedErrors = ceil.All.Throughput, prof.All.Throughput, prof.All.ErrorRate()
	f.ProfileP99HalfMs = ms(half.All.P99)
	f.MixedPeakRPS, f.MixedErrorRate, f.MixedP95Ms = mixed.All.Throughput, mixed.All.ErrorRate(), ms(mixed.All.P95)
	f.FeedP95HalfMs, f.P99HalfMs, f.HalfMixedErrorRate = ms(at50.ByOp[loadgen.Feed].P95), ms(at50.All.P99), at50.All.ErrorRate()
	f.SignupP99At20Ms, f.SignupsAt20, f.OthersP99At20Ms = ms(at20.ByOp[loadgen.Signup].P99), at20.ByOp[loadgen.Signup].Requests, ms(at20.OthersP99())
	var tb, ta loadgen.Counts
	f.HitRatioByCache = map[string]float64{}
	for name, c := range after {
		f.HitRatioByCache[name] = c.Ratio(before[name])
		tb.Hits, tb.Misses = tb.Hits+before[name].Hits, tb.Misses+before[name].Misses
		ta.Hits, ta.Misses = ta.Hits+c.Hits, ta.Misses+c.Misses
	}
	f.HitRatioSteady = ta.Ratio(tb)
	return f, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// hostProcesses measures the apps as make bench-apps runs them: every service in this process,
// MariaDB (two shards, a replica of the first), Redis and kfake on loopback.
func hostProcesses(ctx context.Context, o options) (figures, error) {
	session := localservers.NewSession("bench-realpods")
	defer session.Close()
	service.SetGCPercent()
	st := localstack.Start(session, localstack.Options{Replica: true, InnoDBBufferPool: "384M", RedisMaxMemory: "1gb",
		Configure: func(c *service.Config) {
			c.RateLimit, c.RateBurst, c.AuthRateLimit, c.AuthRateBurst = 1e6, 1e6, 1e6, 1e6
		}})
	metrics := map[string]string{}
	for _, svc := range []string{service.Gateway, service.User, service.Post, service.Feed} {
		metrics[svc] = st.URLs[svc] + "/metrics"
	}
	self := os.Getpid()
	cpu := func() cpuUse {
		return readCPU(func(pid, ppid int, comm string) string {
			switch {
			case pid == self:
				return "bench process: loadgen and every service"
			case ppid == self && comm == "mariadbd":
				return "mariadb"
			case ppid == self && strings.HasPrefix(comm, "redis"):
				return "redis"
			}
			return ""
		})
	}
	return measure(ctx, target{gateway: st.Gateway(), metrics: metrics, shards: st.Apps[service.User].Shards,
		rc: st.Apps[service.User].Redis, tokenKey: st.Config.TokenKey, caughtUp: st.WaitReplica, cpu: cpu}, o)
}

// printSummary prints each figure of both sides and their ratio.
func printSummary(o options, r map[string]figures) {
	h, hok := r["host"]
	p, pok := r["pods"]
	fmt.Println()
	fmt.Printf("=== summary (this machine, one run; %d users, %d active, %s runs, %d closed-loop workers)\n", o.users, o.active, o.run, o.concurrency)
	fmt.Printf("  %-46s %14s %14s %10s\n", "", "host processes", "real pods", "pods/host")
	row := func(name string, hv, pv float64, format string) {
		cell := func(ok bool, v float64) string {
			if !ok {
				return "-"
			}
			return fmt.Sprintf(format, v)
		}
		ratio := "-"
		if hok && pok && hv != 0 {
			ratio = fmt.Sprintf("%.2f", pv/hv)
		}
		fmt.Printf("  %-46s %14s %14s %10s\n", name, cell(hok, hv), cell(pok, pv), ratio)
	}
	row("ceiling: net/http + one Redis GET (req/s)", h.CeilingRPS, p.CeilingRPS, "%.0f")
	row("profile read peak (req/s)", h.ProfilePeakRPS, p.ProfilePeakRPS, "%.0f")
	row("  its ratio to the ceiling", ratio(h.ProfilePeakRPS, h.CeilingRPS), ratio(p.ProfilePeakRPS, p.CeilingRPS), "%.2f")
	row("profile read p99 at half its peak (ms)", h.ProfileP99HalfMs, p.ProfileP99HalfMs, "%.1f")
	row("mixed workload peak (req/s)", h.MixedPeakRPS, p.MixedPeakRPS, "%.0f")
	row("  its p95 (ms)", h.MixedP95Ms, p.MixedP95Ms, "%.1f")
	row("  its error rate (%)", 100*h.MixedErrorRate, 100*p.MixedErrorRate, "%.3f")
	row("feed p95 at half the mixed peak (ms)", h.FeedP95HalfMs, p.FeedP95HalfMs, "%.1f")
	row("  every request's p99 there (ms)", h.P99HalfMs, p.P99HalfMs, "%.1f")
	row("signup p99 at 20% of the mixed peak (ms)", h.SignupP99At20Ms, p.SignupP99At20Ms, "%.1f")
	row("  signups in that run", float64(h.SignupsAt20), float64(p.SignupsAt20), "%.0f")
	row("  every other request's p99 there (ms)", h.OthersP99At20Ms, p.OthersP99At20Ms, "%.1f")
	row("cache hit ratio at half the mixed peak (%)", 100*h.HitRatioSteady, 100*p.HitRatioSteady, "%.2f")
	for _, n := range sortedUnion(h.HitRatioByCache, p.HitRatioByCache) {
		row("  "+n+" (%)", 100*h.HitRatioByCache[n], 100*p.HitRatioByCache[n], "%.2f")
	}
	for _, run := range []struct {
		name string
		h, p cpuFigures
	}{{"CPU cores busy with no load", h.IdleCPU, p.IdleCPU},
		{"CPU ms per request, profile read, closed loop", h.ProfileCPU, p.ProfileCPU},
		{"CPU ms per request, mixed workload, closed loop", h.MixedCPU, p.MixedCPU}} {
		fmt.Printf("  %s (in parentheses: the kernel's part):\n", run.name)
		for _, n := range sortedUnion(run.h, run.p) {
			if strings.HasSuffix(n, ", system") {
				continue
			}
			cell := func(m cpuFigures) string {
				v, ok := m[n]
				if !ok {
					return "-"
				}
				if sys, ok := m[n+", system"]; ok {
					return fmt.Sprintf("%.3f (%.3f)", v, sys)
				}
				return fmt.Sprintf("%.3f", v)
			}
			fmt.Printf("    %-44s %16s %16s\n", n, cell(run.h), cell(run.p))
		}
	}
	fmt.Printf("  seeding: host %s, pods %s\n", h.Seed, p.Seed)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// sortedFigures formats name=value pairs in name order.
func sortedFigures(m map[string]float64) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "%s=%.3f  ", k, m[k])
	}
	return b.String()
}

// sortedUnion is the names in either a or b, sorted.
func sortedUnion[M ~map[string]float64](a, b M) []string {
	names := slices.Collect(maps.Keys(a))
	for n := range b {
		if _, ok := a[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}
