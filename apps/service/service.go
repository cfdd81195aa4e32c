package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/scalestack/scalestack/apps/auth"
	"github.com/scalestack/scalestack/apps/cache"
	"github.com/scalestack/scalestack/apps/events"
	"github.com/scalestack/scalestack/apps/feed"
	"github.com/scalestack/scalestack/apps/gateway"
	"github.com/scalestack/scalestack/apps/post"
	"github.com/scalestack/scalestack/apps/resilience"
	"github.com/scalestack/scalestack/apps/store"
	"github.com/scalestack/scalestack/apps/telemetry"
	"github.com/scalestack/scalestack/apps/user"
	"github.com/scalestack/scalestack/apps/web"
	"github.com/scalestack/scalestack/apps/worker"
	"github.com/scalestack/scalestack/pkg/shard"
)

// Names of the services New builds.
const (
	Gateway = "gateway"
	User    = "user"
	Post    = "post"
	Feed    = "feed"
	Worker  = "worker"
)

// App is one assembled service.
type App struct {
	Name    string
	Handler http.Handler
	Metrics *telemetry.Metrics

	// Parts, for tests and the commands.
	Shards    *store.Shards
	Redis     rueidis.Client
	Relay     *events.Relay
	Worker    *worker.Worker
	Gateway   *gateway.Gateway
	Consumers *events.ConsumerMetrics
	// Caches by name (profile, following, post).
	Caches map[string]*cache.Cache

	cfg     Config
	cacheM  *cache.Metrics
	clientM *resilience.Metrics
	loops   []func(ctx context.Context)
	// schema migrates the shards (nil: the service has none); afterSchema are the loops that
	// need the tables, started once it succeeded; migrated and schemaErr are its progress.
	schema      func(ctx context.Context) error
	afterSchema []func(ctx context.Context)
	migrated    atomic.Bool
	schemaErr   atomic.Pointer[error]
	ready       []func(ctx context.Context) error
	closers     []func()
	stopping    atomic.Bool
	wg          sync.WaitGroup
}

// New assembles the named service from cfg. Nothing runs until Start.
func New(ctx context.Context, name string, cfg Config) (*App, error) {
	a := &App{Name: name, cfg: cfg, Metrics: telemetry.NewMetrics()}
	mux := http.NewServeMux()
	var err error
	switch name {
	case User:
		err = a.buildUser(ctx, mux)
	case Post:
		err = a.buildPost(ctx, mux)
	case Feed:
		err = a.buildFeed(mux)
	case Gateway:
		err = a.buildGateway(mux)
	case Worker:
		err = a.buildWorker(ctx)
	default:
		err = fmt.Errorf("unknown service %q", name)
	}
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", a.readyz)
	metrics := a.Metrics.Handler()
	if name == Gateway {
		metrics = gateway.MetricsGuard(metrics)
	}
	mux.Handle("GET /metrics", metrics)
	if a.cfg.Pprof {
		// CPU, heap, allocation, goroutine, mutex and block profiles, for finding a tail
		// (docs/benchmarks.md). Off unless SCALESTACK_PPROF=true; never through a proxy.
		guard := gateway.MetricsGuard
		mux.Handle("GET /debug/pprof/", guard(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/cmdline", guard(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("GET /debug/pprof/profile", guard(http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/symbol", guard(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("GET /debug/pprof/trace", guard(http.HandlerFunc(pprof.Trace)))
	}
	a.Handler = a.Metrics.Middleware(name, mux)
	return a, nil
}

func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	if a.stopping.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	for _, check := range a.ready {
		if err := check(ctx); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = w.Write([]byte("ready\n"))
}

func (a *App) redis() (rueidis.Client, error) {
	if a.Redis != nil {
		return a.Redis, nil
	}
	if a.cfg.RedisAddr == "" {
		return nil, errors.New("SCALESTACK_REDIS_ADDR is required")
	}
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: []string{a.cfg.RedisAddr}, Password: a.cfg.RedisPassword, ConnWriteTimeout: 5 * time.Second,
		CacheSizeEachConn: 32 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", a.cfg.RedisAddr, err)
	}
	a.Redis = c
	a.closers = append(a.closers, c.Close)
	a.ready = append(a.ready, func(ctx context.Context) error {
		if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		return nil
	})
	return c, nil
}

func (a *App) shards(ctx context.Context) (*store.Shards, error) {
	if a.cfg.ShardMapFile == "" {
		return nil, errors.New("SCALESTACK_SHARD_MAP_FILE is required")
	}
	m, raw, err := store.LoadMap(a.cfg.ShardMapFile)
	if err != nil {
		return nil, err
	}
	rc, err := a.redis()
	if err != nil {
		return nil, err
	}
	s, err := store.Open(store.Config{User: a.cfg.DBUser, Password: a.cfg.DBPassword, MaxOpenConns: a.cfg.DBPoolSize, Redis: rc}, m, store.NewMetrics(a.Metrics.Registry))
	if err != nil {
		return nil, err
	}
	s.SetRaw(raw)
	a.Shards = s
	a.closers = append(a.closers, s.Close)
	a.ready = append(a.ready, s.Ping)
	a.loops = append(a.loops, func(ctx context.Context) { s.WatchFile(ctx, a.cfg.ShardMapFile, 5*time.Second) },
		func(ctx context.Context) {
			t := time.NewTicker(10 * time.Second)
			defer t.Stop()
			for {
				s.CollectPools()
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	return s, nil
}

func (a *App) caches(names ...string) ([]*cache.Cache, error) {
	return a.cachesWith(cache.Options{TTL: a.cfg.CacheTTL}, names...)
}

// readerCaches are the caches of a service that reads another service's data: its loaders call
// the owning service, which stores what it loads, so they do not store it again.
func (a *App) readerCaches(names ...string) ([]*cache.Cache, error) {
	return a.cachesWith(cache.Options{TTL: a.cfg.CacheTTL, FilledByLoader: true}, names...)
}

// cachesWith returns caches named names with opts (values' TTL jittered by 10%, kept in the
// client-side cache for at most a minute).
func (a *App) cachesWith(opts cache.Options, names ...string) ([]*cache.Cache, error) {
	rc, err := a.redis()
	if err != nil {
		return nil, err
	}
	if a.cacheM == nil {
		a.cacheM = cache.NewMetrics()
		if err := a.cacheM.Register(a.Metrics.Registry); err != nil {
			return nil, err
		}
	}
	var out []*cache.Cache
	if a.Caches == nil {
		a.Caches = map[string]*cache.Cache{}
	}
	opts.Jitter, opts.LocalTTL = 0.1, min(opts.TTL, time.Minute)
	for _, n := range names {
		o := opts
		o.Name = n
		c := cache.New(rc, o, a.cacheM)
		a.Caches[n] = c
		out = append(out, c)
	}
	return out, nil
}

func (a *App) relay(s *store.Shards) (*events.Relay, error) {
	if len(a.cfg.KafkaBrokers) == 0 {
		return nil, errors.New("SCALESTACK_KAFKA_BROKERS is required")
	}
	p, err := events.NewProducer(a.cfg.KafkaBrokers)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, p.Close)
	r := events.NewRelay(s, p, a.Metrics.Registry)
	r.TopicPrefix = a.cfg.TopicPrefix
	a.Relay = r
	a.afterSchema = append(a.afterSchema, r.Run)
	return r, nil
}

func (a *App) tokens() (*auth.Tokens, error) {
	if len(a.cfg.TokenKey) < auth.MinKeyBytes {
		return nil, fmt.Errorf("SCALESTACK_TOKEN_KEY must hold at least %d bytes", auth.MinKeyBytes)
	}
	return auth.NewTokens(a.cfg.TokenKey, 24*time.Hour)
}

func (a *App) buildUser(ctx context.Context, mux *http.ServeMux) error {
	s, err := a.shards(ctx)
	if err != nil {
		return err
	}
	a.migrateOnStart(s)
	// Profiles carry their version (updated_at): a change refreshes the cached copy in place.
	profiles, err := a.cachesWith(cache.Options{TTL: a.cfg.CacheTTL, Version: user.ProfileVersion}, "profile")
	if err != nil {
		return err
	}
	cs, err := a.caches("following")
	if err != nil {
		return err
	}
	cs = append(profiles, cs...)
	r, err := a.relay(s)
	if err != nil {
		return err
	}
	tok, err := a.tokens()
	if err != nil {
		return err
	}
	hasher, err := auth.NewHasher(a.cfg.Hash, a.cfg.HashSlots, 0, a.Metrics.Registry)
	if err != nil {
		return err
	}
	svc := &user.Service{Shards: s, IDs: store.NewIDs(), Tokens: tok, Hasher: hasher, Profiles: cs[0], Following: cs[1], Notify: r.Notify}
	svc.Routes(mux)
	return nil
}

func (a *App) buildPost(ctx context.Context, mux *http.ServeMux) error {
	s, err := a.shards(ctx)
	if err != nil {
		return err
	}
	a.migrateOnStart(s)
	cs, err := a.caches("post")
	if err != nil {
		return err
	}
	r, err := a.relay(s)
	if err != nil {
		return err
	}
	rc, err := a.redis()
	if err != nil {
		return err
	}
	tl := &feed.Timelines{Redis: rc}
	svc := &post.Service{Shards: s, IDs: store.NewIDs(), Posts: cs[0], Notify: r.Notify,
		Created: func(ctx context.Context, p *post.Post) {
			if err := tl.Push(ctx, []shard.ID{p.Author}, p.ID); err != nil {
				slog.WarnContext(ctx, "own timeline push deferred to the fan-out", "error", err)
			}
		}}
	svc.Routes(mux)
	return nil
}

func (a *App) client(name, url string) (*resilience.Client, error) {
	if url == "" {
		return nil, fmt.Errorf("the %s service's URL is required (SCALESTACK_%s_URL)", name, map[string]string{"user": "USER", "post": "POST", "feed": "FEED"}[name])
	}
	return resilience.New(name, url, resilience.DefaultOptions(), a.clientMetrics()), nil
}

func (a *App) clientMetrics() *resilience.Metrics {
	if a.clientM == nil {
		a.clientM = resilience.NewMetrics(a.Metrics.Registry)
	}
	return a.clientM
}

func (a *App) buildFeed(mux *http.ServeMux) error {
	rc, err := a.redis()
	if err != nil {
		return err
	}
	users, err := a.client("user", a.cfg.UserURL)
	if err != nil {
		return err
	}
	posts, err := a.client("post", a.cfg.PostURL)
	if err != nil {
		return err
	}
	postCache, err := a.readerCaches("post")
	if err != nil {
		return err
	}
	svc := &feed.Service{
		Timelines: &feed.Timelines{Redis: rc},
		Following: func(ctx context.Context, u shard.ID) ([]shard.ID, error) {
			var res struct {
				IDs []shard.ID `json:"ids"`
			}
			err := users.Get(ctx, "/v1/users/"+u.String()+"/following", &res)
			return res.IDs, err
		},
		Posts: func(ctx context.Context, ids []shard.ID) ([]*post.Post, error) {
			return gateway.CachedPosts(ctx, postCache[0], posts, ids)
		},
	}
	svc.Routes(mux)
	return nil
}

func (a *App) buildGateway(mux *http.ServeMux) error {
	var err error
	g := &gateway.Gateway{TrustForwarded: a.cfg.TrustForwarded, SecureCookies: a.cfg.SecureCookies,
		Limit:     gateway.NewRateLimiter(a.cfg.RateLimit, a.cfg.RateBurst),
		AuthLimit: gateway.NewRateLimiter(a.cfg.AuthRateLimit, a.cfg.AuthRateBurst)}
	if g.Users, err = a.client("user", a.cfg.UserURL); err != nil {
		return err
	}
	if g.Posts, err = a.client("post", a.cfg.PostURL); err != nil {
		return err
	}
	if g.Feed, err = a.client("feed", a.cfg.FeedURL); err != nil {
		return err
	}
	if g.Tokens, err = a.tokens(); err != nil {
		return err
	}
	if g.Assets, err = web.New(a.cfg.AssetMaxAge); err != nil {
		return err
	}
	if a.cfg.RedisAddr != "" {
		cs, err := a.readerCaches("profile", "post")
		if err != nil {
			return err
		}
		g.ProfileCache, g.PostCache = cs[0], cs[1]
		if a.cfg.FeedPageTTL > 0 {
			pages, err := a.cachesWith(cache.Options{TTL: a.cfg.FeedPageTTL}, "feedpage")
			if err != nil {
				return err
			}
			g.FeedPages = pages[0]
		}
		// The limits are shared by every gateway replica through Redis, so they do not grow
		// with the replicas; a replica whose Redis fails limits on its own.
		rc, err := a.redis()
		if err != nil {
			return err
		}
		fallbacks := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalestack_gateway_ratelimit_fallbacks_total",
			Help: "Rate-limit decisions this replica took alone because Redis did not answer.",
		}, []string{"limit"})
		if err := a.Metrics.Registry.Register(fallbacks); err != nil {
			return err
		}
		perClient := gateway.NewSharedLimiter(rc, "client", a.cfg.RateLimit, a.cfg.RateBurst)
		perClient.Fallbacks = fallbacks.WithLabelValues("client")
		auth := gateway.NewSharedLimiter(rc, "auth", a.cfg.AuthRateLimit, a.cfg.AuthRateBurst)
		auth.Fallbacks = fallbacks.WithLabelValues("auth")
		g.Limit, g.AuthLimit = perClient, auth
	}
	g.Routes(mux)
	a.Gateway = g
	return nil
}

func (a *App) buildWorker(ctx context.Context) error {
	s, err := a.shards(ctx)
	if err != nil {
		return err
	}
	a.migrateOnStart(s)
	rc, err := a.redis()
	if err != nil {
		return err
	}
	if len(a.cfg.KafkaBrokers) == 0 {
		return errors.New("SCALESTACK_KAFKA_BROKERS is required")
	}
	w := &worker.Worker{Shards: s, Timelines: &feed.Timelines{Redis: rc}, Redis: rc, CelebrityFollowers: a.cfg.CelebrityFollowers}
	if a.cfg.SMTPAddr != "" {
		w.Mailer = &worker.SMTP{Addr: a.cfg.SMTPAddr, From: a.cfg.SMTPFrom}
	}
	a.Worker = w
	a.Consumers = events.NewConsumerMetrics(a.Metrics.Registry)
	groups := map[string]string{}
	for group, c := range w.Consumers() {
		// On the cluster, topics and groups carry the platform's prefix.
		group, topic := a.cfg.TopicPrefix+group, a.cfg.TopicPrefix+c.Topic
		groups[group] = topic
		a.afterSchema = append(a.afterSchema, func(ctx context.Context) {
			RunConsumer(ctx, events.ConsumerOptions{Brokers: a.cfg.KafkaBrokers, Group: group, Topic: topic}, c.Handler, a.Consumers)
		})
	}
	a.loops = append(a.loops, func(ctx context.Context) {
		events.WatchLag(ctx, a.cfg.KafkaBrokers, groups, a.Consumers, 15*time.Second)
	})
	return nil
}

// RunConsumer runs a consumer until ctx ends, starting it again (from its last commit) after an
// error.
func RunConsumer(ctx context.Context, opts events.ConsumerOptions, h events.Handler, m *events.ConsumerMetrics) {
	for ctx.Err() == nil {
		c, err := events.NewConsumer(opts, h, m)
		if err == nil {
			err = c.Run(ctx)
			c.Close()
		}
		if ctx.Err() != nil {
			return
		}
		slog.Warn("consumer stopped; restarting", "group", opts.Group, "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// migrateOnStart makes the service migrate the shards' schema once it runs (Start), and stay
// unready until that succeeded: a pod that starts before its shards are up waits for them,
// ready for nothing and live, instead of exiting and restarting.
func (a *App) migrateOnStart(s *store.Shards) {
	a.schema = s.Migrate
	// First among the checks: it names what the pod waits for.
	a.ready = slices.Insert(a.ready, 0, func(context.Context) error {
		if a.migrated.Load() {
			return nil
		}
		if err := a.schemaErr.Load(); err != nil {
			return fmt.Errorf("waiting for the shards' schema: %w", *err)
		}
		return errors.New("waiting for the shards' schema: migrating")
	})
}

// Start runs the background loops until ctx ends; those that need the shards' tables start once
// the migrations succeeded, tried again with a growing delay (up to 15 s) until they do.
func (a *App) Start(ctx context.Context) {
	run := func(l func(ctx context.Context)) {
		a.wg.Add(1)
		go func() { defer a.wg.Done(); l(ctx) }()
	}
	for _, l := range a.loops {
		run(l)
	}
	if a.schema == nil {
		for _, l := range a.afterSchema {
			run(l)
		}
		return
	}
	run(func(ctx context.Context) {
		for delay := time.Second; ; delay = min(2*delay, 15*time.Second) {
			err := a.schema(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			a.schemaErr.Store(&err)
			slog.Warn("the shards' schema is not migrated yet; trying again", "error", err, "in", delay)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
		}
		a.migrated.Store(true)
		slog.Info("the shards' schema is migrated")
		for _, l := range a.afterSchema {
			run(l)
		}
	})
}

// Close releases the clients (after the loops' context has ended).
func (a *App) Close() {
	a.wg.Wait()
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// Serve runs the service on addr until ctx ends, then drains: readiness goes off, load
// balancers get drainDelay to notice, in-flight requests finish, loops stop.
func (a *App) Serve(ctx context.Context, addr string, drainDelay time.Duration) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.Handler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 16 << 10}
	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	a.Start(loopCtx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	slog.Info("serving", "service", a.Name, "addr", l.Addr().String())
	select {
	case err := <-errc:
		stopLoops()
		a.Close()
		return err
	case <-ctx.Done():
	}
	a.stopping.Store(true)
	time.Sleep(drainDelay)
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	stopLoops()
	a.Close()
	return err
}
