// Command apps is `make bench-apps`: loadgen's Zipf workload over a million seeded users against
// the gateway, with every service, two MariaDB shards (and a replica), Redis and kfake on this
// machine; and, in the same run, two baselines for a profile read: a bare net/http handler doing
// one Redis GET (the ceiling) and the write-up's phase-1 path, a handler querying one database
// with no cache (the floor). It prints the figures and ratios, and writes them, with a plot of
// latency against load, to docs/bench/.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scalestack/scalestack/apps/auth"
	"github.com/scalestack/scalestack/apps/loadgen"
	"github.com/scalestack/scalestack/apps/localstack"
	"github.com/scalestack/scalestack/apps/service"
	"github.com/scalestack/scalestack/apps/store"
	"github.com/scalestack/scalestack/internal/localservers"
)

func main() {
	users := flag.Int("users", 1_000_000, "users to seed")
	active := flag.Int("active", 20_000, "active users (they follow others and have timelines)")
	run := flag.Duration("run", 15*time.Second, "duration of each measured run")
	warmup := flag.Duration("warmup", 10*time.Second, "duration of the warm-up (the mixed workload, closed loop) before the measured runs")
	concurrency := flag.Int("concurrency", 64, "closed-loop workers")
	out := flag.String("out", "docs/bench", "where to write the results and the plot")
	feedPageTTL := flag.Duration("feed-page-ttl", service.Defaults().FeedPageTTL, "how long the gateway keeps a user's first feed page (0: no page cache)")
	hashSlots := flag.Int("hash-slots", 0, "password hashes the user service runs at once (0: its default, one core fewer than the process has)")
	profileDir := flag.String("profile", "", "write CPU, allocation, mutex and block profiles of the measured runs, their top functions and the GC pauses into this directory (make bench-apps PROFILE=1)")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	// Every service runs in this process: it collects garbage as each service binary does.
	service.SetGCPercent()
	session := localservers.NewSession("bench-apps")
	defer session.Close()
	ctx := context.Background()
	say := func(format string, args ...any) {
		fmt.Printf("[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}

	say("starting the stack (2 MariaDB shards + a replica, Redis, kfake, every service)")
	st := localstack.Start(session, localstack.Options{Replica: true, InnoDBBufferPool: "384M", RedisMaxMemory: "1gb",
		Configure: func(c *service.Config) {
			c.RateLimit, c.RateBurst, c.AuthRateLimit, c.AuthRateBurst = 1e6, 1e6, 1e6, 1e6
			c.CelebrityFollowers = 1000
			c.FeedPageTTL = *feedPageTTL
			c.HashSlots = *hashSlots
		}})
	shards := st.Apps[service.User].Shards
	rc := st.Apps[service.User].Redis
	say("seeding %d users (%d active)", *users, *active)
	ids, err := loadgen.Seed(ctx, shards, rc, loadgen.SeedOptions{Users: *users, Active: *active, FollowsEach: 20,
		Authors: 5000, PostsEach: 10, CelebrityFollowers: 1000}, func(s string) { say("  %s", s) })
	if err != nil {
		panic(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	if err := st.WaitReplica(wctx); err != nil {
		panic(err)
	}
	cancel()
	say("the replica has caught up")
	tok, err := auth.NewTokens(st.Config.TokenKey, 24*time.Hour)
	if err != nil {
		panic(err)
	}
	token := loadgen.TokenFor(tok)
	// Loadgen picks the acting user among the active ones, and targets (profiles, follows) over
	// the whole million.
	// seen remembers every profile the gateway was asked for since the seeding, so that each run
	// says how many of its profile reads were first reads: misses no cache could have avoided.
	seen := loadgen.NewSeen(len(ids))
	// Each run draws its own sequence (seeds 7, 8, ...: the same in every invocation), so that a
	// run does not replay the users and targets of the runs before it.
	runs := uint64(0)
	cfg := func(target string, mix loadgen.Mix, rate float64) loadgen.Config {
		runs++
		c := loadgen.Config{Target: target, Users: ids, Token: token, Mix: mix, Concurrency: *concurrency, Rate: rate, Duration: *run, Seed: 6 + runs}
		if target == st.Gateway() {
			c.Seen = seen
		}
		return c
	}
	ceiling := serve(loadgen.CeilingHandler(rc, ids))
	floor := serve(floorHandler(st.DBs[0], st.AppPass))
	profiles := loadgen.Mix{loadgen.Profile: 1}

	say("warming up")
	warm := cfg(st.Gateway(), loadgen.DefaultMix, 0)
	warm.Duration = *warmup
	loadgen.Run(ctx, warm)

	var stopProfiles func()
	if *profileDir != "" {
		stopProfiles = startProfiles(*profileDir, say)
	}
	results := map[string]any{}
	record := func(name string, r loadgen.Result) loadgen.Result {
		say("%s\n  %s", name, r)
		for _, e := range r.ErrorSamples {
			say("  error sample: %s", e)
		}
		results[name] = r
		return r
	}
	record("ceiling: net/http + one Redis GET, closed loop", loadgen.Run(ctx, cfg(ceiling, profiles, 0)))
	record("floor: phase-1 path, one database, no cache, closed loop", loadgen.Run(ctx, cfg(floor, profiles, 0)))
	hitsBefore := cacheCounts(st)
	prof := record("scalestack profile read, closed loop", loadgen.Run(ctx, cfg(st.Gateway(), profiles, 0)))
	mixed := record("scalestack mixed workload, closed loop", loadgen.Run(ctx, cfg(st.Gateway(), loadgen.DefaultMix, 0)))
	hitsAfter := cacheCounts(st)
	half := record("scalestack profile read at half of its peak, open loop",
		loadgen.Run(ctx, cfg(st.Gateway(), profiles, prof.All.Throughput/2)))
	at1k := record("scalestack mixed workload at 1000 req/s, open loop", loadgen.Run(ctx, cfg(st.Gateway(), loadgen.DefaultMix, 1000)))

	var p50, p95, p99 series
	p50 = series{name: "p50", color: "#2b7bb9"}
	p95 = series{name: "p95", color: "#e08a1e"}
	p99 = series{name: "p99", color: "#c0392b"}
	var steadyBefore, steadyAfter map[string]loadgen.Counts
	var last loadgen.Result
	atFraction := map[float64]loadgen.Result{}
	var signupsAt20 signupParts
	for _, f := range []float64{0.2, 0.4, 0.5, 0.6, 0.8, 0.9} {
		if f == 0.9 {
			steadyBefore = cacheCounts(st)
		}
		c := cfg(st.Gateway(), loadgen.DefaultMix, f*mixed.All.Throughput)
		if f == 0.2 {
			// The signup p99 is read off this run: 2% of 20% of the peak for one run's length is
			// 50-80 signups, whose p99 is their largest or second largest. Four runs' length gives
			// it a few hundred.
			c.Duration = 4 * *run
		}
		partsBefore := readSignupParts(st.URLs[service.User] + "/metrics")
		r := record(fmt.Sprintf("scalestack mixed workload at %.0f%% of peak, open loop", 100*f), loadgen.Run(ctx, c))
		if f == 0.2 {
			signupsAt20 = readSignupParts(st.URLs[service.User] + "/metrics").since(partsBefore)
			say("  %s", signupsAt20)
		}
		last = r
		atFraction[f] = r
		for _, s := range []*series{&p50, &p95, &p99} {
			var v time.Duration
			switch s.name {
			case "p50":
				v = r.All.P50
			case "p95":
				v = r.All.P95
			default:
				v = r.All.P99
			}
			s.points = append(s.points, [2]float64{r.All.Throughput, float64(v.Microseconds()) / 1000})
		}
	}
	steadyAfter = cacheCounts(st)
	if stopProfiles != nil {
		stopProfiles()
	}
	ratio := total(hitsAfter).Ratio(total(hitsBefore))
	steady := total(steadyAfter).Ratio(total(steadyBefore))
	byCache := map[string]map[string]float64{}
	for name, c := range steadyAfter {
		byCache[name] = map[string]float64{
			"after_warmup": 0,
			"steady":       c.Ratio(steadyBefore[name]),
			"steady_reads": c.Hits + c.Misses - steadyBefore[name].Hits - steadyBefore[name].Misses,
		}
		if a, ok := hitsAfter[name]; ok {
			byCache[name]["after_warmup"] = a.Ratio(hitsBefore[name])
		}
	}
	ceil := results["ceiling: net/http + one Redis GET, closed loop"].(loadgen.Result)
	flo := results["floor: phase-1 path, one database, no cache, closed loop"].(loadgen.Result)
	summary := map[string]any{
		"users": *users, "active": *active, "concurrency": *concurrency, "run": run.String(),
		"profile_peak_rps": prof.All.Throughput, "ceiling_rps": ceil.All.Throughput, "floor_rps": flo.All.Throughput,
		"ratio_to_ceiling": prof.All.Throughput / ceil.All.Throughput, "ratio_to_floor": prof.All.Throughput / flo.All.Throughput,
		"mixed_peak_rps": mixed.All.Throughput, "cache_hit_ratio": ratio, "cache_hit_ratio_steady": steady,
		"cache_hit_ratio_by_cache":   byCache,
		"profile_first_reads_steady": firstShare(last), "profile_first_reads_closed_loop": firstShare(prof),
		"profile_p99_at_half_peak_ms": ms(half.All.P99), "signup_p99_ms": ms(mixed.ByOp[loadgen.Signup].P99),
		"feed_p95_at_1k_ms": ms(at1k.ByOp[loadgen.Feed].P95), "error_rate_mixed": mixed.All.ErrorRate(),
		"error_rate_1k":                  at1k.All.ErrorRate(),
		"feed_p95_at_half_mixed_peak_ms": ms(atFraction[0.5].ByOp[loadgen.Feed].P95),
		"signup_p99_at_20pct_ms":         ms(atFraction[0.2].ByOp[loadgen.Signup].P99),
		"other_p99_at_20pct_ms":          ms(atFraction[0.2].OthersP99()),
		"signups_at_20pct":               atFraction[0.2].ByOp[loadgen.Signup].Requests,
		"signup_parts_at_20pct":          signupsAt20.summary(),
	}
	results["summary"] = summary
	fmt.Println()
	fmt.Println("=== summary (this machine; ratios measured side by side in this run)")
	fmt.Printf("  profile read peak          %8.0f req/s   ceiling %8.0f (ratio %.2f)   floor %8.0f (ratio %.2f)\n",
		prof.All.Throughput, ceil.All.Throughput, prof.All.Throughput/ceil.All.Throughput, flo.All.Throughput, prof.All.Throughput/flo.All.Throughput)
	fmt.Printf("  profile read p99 at half peak %s\n", half.All.P99.Round(10*time.Microsecond))
	fmt.Printf("  mixed workload peak        %8.0f req/s, error rate %.4f%%\n", mixed.All.Throughput, 100*mixed.All.ErrorRate())
	fmt.Printf("  cache hit ratio            %.2f%% (profile and mixed closed-loop runs, right after a 10 s warm-up)\n", 100*ratio)
	fmt.Printf("  cache hit ratio, steady    %.2f%% (the last open-loop run, after every run above)\n", 100*steady)
	for _, name := range slices.Sorted(maps.Keys(byCache)) {
		c := byCache[name]
		fmt.Printf("    %-18s after warm-up %6.2f%%   steady %6.2f%% of %.0f reads\n", name, 100*c["after_warmup"], 100*c["steady"], c["steady_reads"])
	}
	fmt.Printf("    first reads of a profile (an unbounded, never-expiring cache's misses): %.2f%% of the profile reads in the closed-loop profile run, %.2f%% in the last run\n",
		100*firstShare(prof), 100*firstShare(last))
	fmt.Printf("  signup p99 (in the mix)    %s\n", mixed.ByOp[loadgen.Signup].P99.Round(10*time.Microsecond))
	fmt.Printf("  feed p95 at half of the mixed peak %s\n", atFraction[0.5].ByOp[loadgen.Feed].P95.Round(10*time.Microsecond))
	fmt.Printf("  signup p99 at 20%% of the mixed peak %s of %d signups (every other request's p99 beside it: %s)\n",
		atFraction[0.2].ByOp[loadgen.Signup].P99.Round(10*time.Microsecond), atFraction[0.2].ByOp[loadgen.Signup].Requests, atFraction[0.2].OthersP99().Round(10*time.Microsecond))
	fmt.Printf("    where they spent it: %s\n", signupsAt20)
	fmt.Printf("  feed p95 at 1000 req/s     %s (error rate %.4f%%)\n", at1k.ByOp[loadgen.Feed].P95.Round(10*time.Microsecond), 100*at1k.All.ErrorRate())
	if err := os.MkdirAll(*out, 0o755); err != nil {
		panic(err)
	}
	b, _ := json.MarshalIndent(results, "", "  ")
	if err := os.WriteFile(filepath.Join(*out, "apps-results.json"), b, 0o644); err != nil {
		panic(err)
	}
	plot := svgPlot("scalestack mixed workload: latency against load (open loop, this machine)", []series{p50, p95, p99})
	if err := os.WriteFile(filepath.Join(*out, "apps-latency.svg"), []byte(plot), 0o644); err != nil {
		panic(err)
	}
	say("wrote %s and %s", filepath.Join(*out, "apps-results.json"), filepath.Join(*out, "apps-latency.svg"))
}

// firstShare is the share of a run's profile reads that were the first read of their profile.
func firstShare(r loadgen.Result) float64 {
	n := r.ByOp[loadgen.Profile].Requests
	if n == 0 {
		return 0
	}
	return float64(r.FirstProfileReads) / float64(n)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// startProfiles profiles the whole process (every service runs in it) from now until the returned
// function is called: CPU, allocations, mutex and block contention, then the 25 heaviest functions
// of each (go tool pprof -top) and the GC's stop-the-world pauses over the same span.
func startProfiles(dir string, say func(string, ...any)) func() {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		panic(err)
	}
	cpu, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		panic(err)
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		panic(err)
	}
	runtime.SetMutexProfileFraction(100)
	runtime.SetBlockProfileRate(int(time.Millisecond))
	pausesBefore := gcPauses()
	return func() {
		pprof.StopCPUProfile()
		_ = cpu.Close()
		for _, name := range []string{"allocs", "mutex", "block"} {
			f, err := os.Create(filepath.Join(dir, name+".pprof"))
			if err != nil {
				panic(err)
			}
			if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
				panic(err)
			}
			_ = f.Close()
		}
		runtime.SetMutexProfileFraction(0)
		runtime.SetBlockProfileRate(0)
		for _, name := range []string{"cpu", "allocs", "mutex", "block"} {
			args := []string{"tool", "pprof", "-top", "-nodecount=25"}
			if name == "allocs" {
				args = append(args, "-sample_index=alloc_space")
			}
			out, err := exec.Command("go", append(args, filepath.Join(dir, name+".pprof"))...).CombinedOutput()
			if err != nil {
				say("go tool pprof %s: %v", name, err)
			}
			_ = os.WriteFile(filepath.Join(dir, name+".top.txt"), out, 0o644)
		}
		p := gcPauses().since(pausesBefore)
		summary := fmt.Sprintf("GC stop-the-world pauses during the measured runs: %d, p50 %v, p99 %v, max %v\n",
			p.count, p.quantile(0.5), p.quantile(0.99), p.quantile(1))
		_ = os.WriteFile(filepath.Join(dir, "gc.txt"), []byte(summary), 0o644)
		say("profiles in %s; %s", dir, strings.TrimSpace(summary))
	}
}

// pauses is the runtime's histogram of GC stop-the-world pauses.
type pauses struct {
	counts  []uint64
	buckets []float64
	count   uint64
}

func gcPauses() pauses {
	s := []metrics.Sample{{Name: "/sched/pauses/total/gc:seconds"}}
	metrics.Read(s)
	h := s[0].Value.Float64Histogram()
	p := pauses{counts: append([]uint64(nil), h.Counts...), buckets: h.Buckets}
	for _, c := range p.counts {
		p.count += c
	}
	return p
}

func (p pauses) since(before pauses) pauses {
	out := pauses{buckets: p.buckets, counts: make([]uint64, len(p.counts))}
	for i := range p.counts {
		out.counts[i] = p.counts[i] - before.counts[i]
		out.count += out.counts[i]
	}
	return out
}

// quantile is the upper bound of the bucket holding quantile q.
func (p pauses) quantile(q float64) time.Duration {
	if p.count == 0 {
		return 0
	}
	target := uint64(q * float64(p.count))
	var seen uint64
	for i, c := range p.counts {
		seen += c
		if c > 0 && seen >= target {
			upper := p.buckets[i+1]
			if math.IsInf(upper, 1) {
				upper = p.buckets[i]
			}
			return time.Duration(upper * float64(time.Second)).Round(time.Microsecond)
		}
	}
	return 0
}

func serve(h http.Handler) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() { _ = http.Serve(l, h) }()
	return "http://" + l.Addr().String()
}

// floorHandler is the write-up's phase 1: every profile read is a query on one database.
func floorHandler(m *localservers.MariaDB, password string) http.Handler {
	db, err := sql.Open("mysql", store.DSN(m.Addr(), "app", password, store.Database))
	if err != nil {
		panic(err)
	}
	db.SetMaxOpenConns(64)
	db.SetMaxIdleConns(64)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		var handle, name, bio string
		var followers int
		err := db.QueryRowContext(r.Context(), "SELECT handle, display_name, bio FROM users WHERE id = ?", id).Scan(&handle, &name, &bio)
		if err != nil && err != sql.ErrNoRows {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = db.QueryRowContext(r.Context(), "SELECT COUNT(*) FROM followers WHERE user_id = ?", id).Scan(&followers)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": strconv.FormatInt(id, 10), "handle": handle, "display_name": name, "followers": followers})
	})
	return mux
}

// cacheCounts reads the cache counters of every service that reads the cache, by service and
// cache ("gateway/profile").
func cacheCounts(st *localstack.Stack) map[string]loadgen.Counts {
	urls := map[string]string{}
	for _, svc := range []string{service.Gateway, service.User, service.Post, service.Feed} {
		urls[svc] = st.URLs[svc] + "/metrics"
	}
	return loadgen.CacheCountsByService(urls)
}

// total sums the counts of every cache.
func total(by map[string]loadgen.Counts) loadgen.Counts {
	var t loadgen.Counts
	for _, c := range by {
		t.Hits, t.Misses = t.Hits+c.Hits, t.Misses+c.Misses
	}
	return t
}
