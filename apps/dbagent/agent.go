// Package dbagent is the agent that runs beside each shard's database container. It owns the
// server's replication role: on the primary it keeps the accounts and makes the server writable;
// on a replica it points the server at the shard's primary with GTID and keeps it there. It
// answers the pod's readiness probe: ready means "accepts writes" on a primary and "replicates
// from the right primary with lag under the bound" on a replica, never merely "process up".
//
// Why an agent in the pod rather than the operator connecting to the databases: the operator may
// run outside the cluster network (make run) or behind NetworkPolicies that keep it away from the
// data, and a replica's health must be judged where the replica is, every few seconds, without a
// round trip through the API server.
package dbagent

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/scalestack/scalestack/pkg/platform"
	"github.com/scalestack/scalestack/pkg/replication"
)

// Config is the agent's configuration; cmd/dbagent fills it from the environment.
type Config struct {
	Role        string // primary or replica
	Engine      replication.Engine
	Shard       int
	Ordinal     int
	PrimaryHost string
	PrimaryPort int
	Credentials replication.Credentials
	MaxLag      time.Duration
	Interval    time.Duration
}

// ServerID is unique per pod of a platform: 100 per shard, 1 for the primary, 2+ordinal for
// replicas.
func (c Config) ServerID() int { return platform.ServerID(c.Shard, c.Role == "primary", c.Ordinal) }

// OrdinalFromPodName returns the StatefulSet ordinal at the end of a pod name.
func OrdinalFromPodName(name string) (int, error) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return 0, fmt.Errorf("pod name %q has no ordinal", name)
	}
	return strconv.Atoi(name[i+1:])
}

// Agent runs the loop and serves probes and metrics.
type Agent struct {
	cfg Config
	db  *sql.DB
	log *slog.Logger
	rep *replication.Client

	mu        sync.Mutex
	lastOK    time.Time
	readyErr  error
	lag       prometheus.Gauge
	healthy   prometheus.Gauge
	ticks     *prometheus.CounterVec
	registry  *prometheus.Registry
	startedAt time.Time
	// usersApplied fingerprints the credentials EnsureUsers last applied (in memory only: a
	// restarted agent applies them once more). Account statements are binlogged and replicated,
	// so a converged primary must not repeat them every tick.
	usersApplied [32]byte
}

// New returns an agent for the server behind db.
func New(cfg Config, db *sql.DB, log *slog.Logger) *Agent {
	a := &Agent{cfg: cfg, db: db, log: log, rep: &replication.Client{DB: db, Engine: cfg.Engine},
		readyErr: fmt.Errorf("not checked yet"), registry: prometheus.NewRegistry(), startedAt: time.Now()}
	labels := prometheus.Labels{"shard": strconv.Itoa(cfg.Shard), "role": cfg.Role}
	a.lag = prometheus.NewGauge(prometheus.GaugeOpts{Name: "scalestack_replication_lag_seconds",
		Help: "Seconds the replica is behind its primary (-1 when unknown).", ConstLabels: labels})
	a.healthy = prometheus.NewGauge(prometheus.GaugeOpts{Name: "scalestack_replication_healthy",
		Help: "1 when the server is ready in its role (primary writable, replica replicating within the lag bound).", ConstLabels: labels})
	a.ticks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalestack_dbagent_ticks_total",
		Help: "Agent loop iterations by result.", ConstLabels: labels}, []string{"result"})
	a.registry.MustRegister(a.lag, a.healthy, a.ticks)
	return a
}

// Tick does one round: make the server what its role says, then judge readiness.
func (a *Agent) Tick(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(a.cfg.Interval, 5*time.Second))
	defer cancel()
	ready, err := a.tick(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.readyErr = err
		a.healthy.Set(0)
		a.ticks.WithLabelValues("error").Inc()
		return err
	}
	a.lastOK = time.Now()
	a.readyErr = ready
	if ready == nil {
		a.healthy.Set(1)
	} else {
		a.healthy.Set(0)
	}
	a.ticks.WithLabelValues("ok").Inc()
	return nil
}

// ensureUsers makes the accounts when one is missing or the credentials changed since the last
// time, and otherwise only reads: a converged primary's binary log does not grow by itself.
func (a *Agent) ensureUsers(ctx context.Context) error {
	c := a.cfg.Credentials
	sum := sha256.Sum256([]byte(c.AppPassword + "\x00" + c.ReplicationPassword + "\x00" + c.ExporterPassword))
	if sum == a.usersApplied {
		exist, err := a.rep.UsersExist(ctx)
		if err != nil || exist {
			return err
		}
		a.log.Info("An account is missing; making the accounts again")
	}
	if err := a.rep.EnsureUsers(ctx, c); err != nil {
		return err
	}
	a.usersApplied = sum
	return nil
}

// tick returns the readiness verdict, or an error when the server could not be asked.
func (a *Agent) tick(ctx context.Context) (ready error, err error) {
	if err := a.rep.SetServerID(ctx, a.cfg.ServerID()); err != nil {
		return nil, err
	}
	if a.cfg.Role == "primary" {
		if err := a.ensureUsers(ctx); err != nil {
			return nil, err
		}
		if err := a.rep.ConfigurePrimary(ctx); err != nil {
			return nil, err
		}
		a.lag.Set(0)
		return nil, nil
	}
	src := replication.Source{Host: a.cfg.PrimaryHost, Port: a.cfg.PrimaryPort, User: "replication", Password: a.cfg.Credentials.ReplicationPassword}
	changed, err := a.rep.ConfigureReplica(ctx, src)
	if err != nil {
		// The primary may not be up yet: not ready, and try again next tick.
		return err, nil
	}
	if changed {
		a.log.Info("Pointed the replica at the primary", "primary", src.Addr())
	}
	st, err := a.rep.Status(ctx)
	if err != nil {
		return nil, err
	}
	if st.Lag != nil {
		a.lag.Set(st.Lag.Seconds())
	} else {
		a.lag.Set(-1)
	}
	return replication.Check(st, src, a.cfg.MaxLag), nil
}

// Run ticks every interval until ctx ends.
func (a *Agent) Run(ctx context.Context) {
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		if err := a.Tick(ctx); err != nil {
			a.log.Warn("Agent tick failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Handler serves /healthz (the agent reaches its server), /readyz (the server is ready in its
// role) and /metrics.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		last, started := a.lastOK, a.startedAt
		a.mu.Unlock()
		// Give the database time to start before the first success; after that, three missed
		// intervals mean the agent cannot reach it.
		grace := 3 * a.cfg.Interval
		if last.IsZero() && time.Since(started) < 2*time.Minute || time.Since(last) <= grace {
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		http.Error(w, "the database has not answered for "+time.Since(last).Round(time.Second).String(), http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		err := a.readyErr
		a.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	return mux
}
