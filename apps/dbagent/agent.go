// Package dbagent is the agent that runs beside each shard's database container. It owns the
// server's replication role, which follows the shard's topology (the primary of record and its
// epoch, from the mounted shard map or the operator's push; package agentapi): on the primary it
// keeps the accounts and makes the server writable (promoting it first, relay log applied, when
// it was a replica); on a replica it points the server at the primary with GTID and keeps it
// there, after checking the primary lacks none of its transactions. A primary that stalled, or
// that the operator fences for a switchover, stays read-only until a newer decision or a
// confirmation. It
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
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/scalestack/scalestack/pkg/agentapi"
	"github.com/scalestack/scalestack/pkg/backup"
	"github.com/scalestack/scalestack/pkg/platform"
	"github.com/scalestack/scalestack/pkg/replication"
	"github.com/scalestack/scalestack/pkg/shard"
)

// Config is the agent's configuration; cmd/dbagent fills it from the environment.
type Config struct {
	// Role is the pod's StatefulSet, primary or replica: it fixes the server_id. The server's
	// current role follows the topology (Primary, or the shard map after a failover).
	Role    string
	Engine  replication.Engine
	Shard   int
	Ordinal int
	// Pod is this pod's name; Primary the pod that is the primary until the shard map names
	// another.
	Pod     string
	Primary string
	// Peer returns where a pod of the shard serves its database.
	Peer func(pod string) (host string, port int)
	// ShardMap is the path of the mounted shard map; empty when there is none.
	ShardMap    string
	Credentials replication.Credentials
	MaxLag      time.Duration
	Interval    time.Duration
	// FenceAfter: when a primary's agent could not reach its server for this long, the server
	// refuses writes until the operator confirms it is still the primary (the operator may have
	// promoted another meanwhile). Zero never fences.
	FenceAfter time.Duration
	// SemiSyncTimeout: with it, every server runs semi-synchronous replication (both roles), so a
	// primary's commit returns once a replica has it; the primary waits this long for an
	// acknowledgement before it falls back to asynchronous. Zero leaves replication asynchronous.
	SemiSyncTimeout time.Duration
	// PromoteWait bounds how long a promoted replica may take to apply what it received.
	PromoteWait time.Duration
	// Token authenticates the operator's requests (agentapi.Token).
	Token string
	// Backup is how mariadb-backup reaches the server (as root, over TCP, and through its data
	// directory); nil when the agent does not run beside the data, and then it neither serves
	// copies of its server nor schedules rebuilds.
	Backup *backup.Server
	// Tool names the backup programs (looked up on PATH when empty).
	Tool backup.Tool
	// Archive, when set, archives the primary's binary logs to an object store.
	Archive *ArchiveConfig
}

// ServerID is unique per pod of a platform: 100 per shard, 1 for the primary StatefulSet's pod,
// 2+ordinal for the replicas'. It stays with the pod when its role changes.
func (c Config) ServerID() int { return platform.ServerID(c.Shard, c.Role == "primary", c.Ordinal) }

// OrdinalFromPodName returns the StatefulSet ordinal at the end of a pod name.
func OrdinalFromPodName(name string) (int, error) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return 0, fmt.Errorf("pod name %q has no ordinal", name)
	}
	return strconv.Atoi(name[i+1:])
}

// ErrDiverged says a server has transactions the primary lacks: replicating from it would fail
// or silently lose them, so the server needs a rebuild.
var ErrDiverged = errors.New("diverged from the primary")

// ErrStaleEpoch refuses a topology older than the one the agent follows.
var ErrStaleEpoch = errors.New("stale topology")

// fence is why a server the topology names primary refuses writes.
type fence struct {
	epoch  int64
	reason string
}

// Agent runs the loop and serves probes, metrics and the operator's API.
type Agent struct {
	cfg Config
	db  *sql.DB
	log *slog.Logger
	rep *replication.Client

	// tickMu serializes ticks: the loop's and those the operator's requests run.
	tickMu sync.Mutex
	// cloning is held while a copy of the server is streamed (one at a time).
	cloning sync.Mutex

	mu        sync.Mutex
	lastOK    time.Time
	readyErr  error
	role      string
	pushed    agentapi.Topology
	following agentapi.Topology
	fence     *fence
	lag       *time.Duration
	lagAt     time.Time
	diverged  replication.GTIDSet
	// stranded is the I/O error of a replica its primary cannot serve (replication.Stranded).
	stranded  string
	startedAt time.Time
	// checkedStart is set once fenceIfRestarted has looked at the server.
	checkedStart bool
	// archiver keeps its rotation state across passes; archived is the last pass's outcome.
	archiver *backup.Archiver
	archived archiveState
	archiveM *archiveMetrics
	// full is the full backups' state (fullbackup.go); runCtx the context Run was given, which
	// bounds a backup running in the background.
	full   fullBackupState
	fullM  *fullBackupMetrics
	runCtx context.Context

	lagGauge  *prometheus.GaugeVec
	healthy   *prometheus.GaugeVec
	epoch     prometheus.Gauge
	ticks     *prometheus.CounterVec
	promoted  prometheus.Counter
	fenced    prometheus.Gauge
	divergedG prometheus.Gauge
	semiSync  prometheus.Gauge
	registry  *prometheus.Registry
}

// New returns an agent for the server behind db.
func New(cfg Config, db *sql.DB, log *slog.Logger) *Agent {
	if cfg.PromoteWait == 0 {
		cfg.PromoteWait = 30 * time.Second
	}
	a := &Agent{cfg: cfg, db: db, log: log, rep: &replication.Client{DB: db, Engine: cfg.Engine},
		readyErr: fmt.Errorf("not checked yet"), registry: prometheus.NewRegistry(), startedAt: time.Now()}
	labels := prometheus.Labels{"shard": strconv.Itoa(cfg.Shard)}
	a.lagGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "scalestack_replication_lag_seconds",
		Help: "Seconds the replica is behind its primary (-1 when unknown); role is the server's current role.", ConstLabels: labels}, []string{"role"})
	a.healthy = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "scalestack_replication_healthy",
		Help: "1 when the server is ready in its current role (primary writable, replica replicating within the lag bound).", ConstLabels: labels}, []string{"role"})
	a.epoch = prometheus.NewGauge(prometheus.GaugeOpts{Name: "scalestack_dbagent_topology_epoch",
		Help: "Epoch of the shard topology the agent follows (it grows with every failover or switchover).", ConstLabels: labels})
	a.ticks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalestack_dbagent_ticks_total",
		Help: "Agent loop iterations by result.", ConstLabels: labels}, []string{"result"})
	a.promoted = prometheus.NewCounter(prometheus.CounterOpts{Name: "scalestack_dbagent_promotions_total",
		Help: "Times this server was promoted from replica to primary.", ConstLabels: labels})
	a.fenced = prometheus.NewGauge(prometheus.GaugeOpts{Name: "scalestack_dbagent_fenced",
		Help: "1 while the topology names this server primary but it refuses writes (switchover, or stalled and unconfirmed).", ConstLabels: labels})
	a.divergedG = prometheus.NewGauge(prometheus.GaugeOpts{Name: "scalestack_dbagent_diverged",
		Help: "1 while the server has transactions its primary lacks and refuses to replicate (it needs a rebuild).", ConstLabels: labels})
	a.semiSync = prometheus.NewGauge(prometheus.GaugeOpts{Name: "scalestack_dbagent_semisync_waiting",
		Help: "On a primary: 1 while its commits wait for a replica's acknowledgement (semi-sync), 0 while replication is asynchronous (no replica connected, or one timed out); -1 on a replica.", ConstLabels: labels})
	a.registry.MustRegister(a.lagGauge, a.healthy, a.epoch, a.ticks, a.promoted, a.fenced, a.divergedG, a.semiSync)
	a.archiveM = newArchiveMetrics(labels, a.registry, cfg.Archive != nil)
	a.fullM = newFullBackupMetrics(labels, a.registry, cfg.Archive != nil)
	return a
}

// topology is what the agent follows: the newer of the shard map's record and what the operator
// pushed (the operator records in the map first, so a push is never older than a decision).
func (a *Agent) topology() agentapi.Topology {
	t, err := MapTopology(a.cfg.ShardMap, a.cfg.Shard, a.cfg.Primary)
	if err != nil {
		a.log.Warn("Could not read the shard map; following the last topology known", "error", err.Error())
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if k := a.newestKnown(); k.Epoch > t.Epoch {
		t = k
	}
	t.Confirm = false
	return t
}

// newestKnown is the newer of what the operator pushed and what the agent follows (a.mu held).
func (a *Agent) newestKnown() agentapi.Topology {
	if a.following.Epoch > a.pushed.Epoch {
		return a.following
	}
	return a.pushed
}

// MapTopology is the shard's primary of record in the mounted shard map at path, or fallback at
// epoch 0 when there is no map or it names none (with the error when the map is unreadable).
func MapTopology(path string, shardIndex int, fallback string) (agentapi.Topology, error) {
	t := agentapi.Topology{Primary: fallback}
	if path == "" {
		return t, nil
	}
	m, err := loadMap(path)
	if errors.Is(err, os.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return t, err
	}
	for _, p := range m.Shards {
		if p.Index == shardIndex && p.PrimaryPod != "" {
			t = agentapi.Topology{Primary: p.PrimaryPod, Epoch: p.Epoch}
		}
	}
	return t, nil
}

func loadMap(path string) (*shard.Map, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return shard.Parse(data)
}

// Tick does one round: make the server what the topology says, then judge readiness.
func (a *Agent) Tick(ctx context.Context) error {
	a.tickMu.Lock()
	defer a.tickMu.Unlock()
	topo := a.topology()
	role := agentapi.RoleReplica
	if topo.Primary == a.cfg.Pod {
		role = agentapi.RolePrimary
	}
	// A tick that waits on a frozen server must end quickly, so that readiness turns false; only
	// a promotion may take longer (it applies the relay log first).
	timeout := max(a.cfg.Interval, 5*time.Second)
	a.mu.Lock()
	if role == agentapi.RolePrimary && a.role != agentapi.RolePrimary {
		timeout += a.cfg.PromoteWait
	}
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := a.fenceIfRestarted(ctx, topo); err != nil {
		a.mu.Lock()
		a.readyErr = err
		a.mu.Unlock()
		a.ticks.WithLabelValues("error").Inc()
		return err
	}
	a.mu.Lock()
	if topo.Epoch > a.following.Epoch || topo.Primary != a.following.Primary {
		a.following = topo
		if a.fence != nil && topo.Epoch > a.fence.epoch {
			a.fence = nil // a newer decision replaces the one the fence waited on
		}
	}
	if a.fence == nil && role == agentapi.RolePrimary && a.cfg.FenceAfter > 0 && !a.lastOK.IsZero() && time.Since(a.lastOK) > a.cfg.FenceAfter {
		a.fence = &fence{epoch: topo.Epoch, reason: fmt.Sprintf("the agent could not reach its server for %v, longer than %v: another server may have been promoted meanwhile; waiting for the operator to confirm this one",
			time.Since(a.lastOK).Round(time.Second), a.cfg.FenceAfter)}
		a.log.Warn("Fenced the primary after a stall", "stalled", time.Since(a.lastOK).Round(time.Second).String())
	}
	a.mu.Unlock()
	a.epoch.Set(float64(topo.Epoch))

	ready, err := a.tick(ctx, topo, role)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.role != role {
		a.healthy.Reset()
		a.lagGauge.Reset()
		a.role = role
	}
	a.fenced.Set(b2f(a.fence != nil))
	a.divergedG.Set(b2f(len(a.diverged) > 0))
	if err != nil {
		a.readyErr = err
		a.healthy.WithLabelValues(role).Set(0)
		a.ticks.WithLabelValues("error").Inc()
		return err
	}
	a.lastOK = time.Now()
	a.readyErr = ready
	a.healthy.WithLabelValues(role).Set(b2f(ready == nil))
	a.ticks.WithLabelValues("ok").Inc()
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// fenceIfRestarted runs once, on the agent's first contact with its server: an agent that
// starts beside a server that was already running writable (the agent restarted, the server did
// not, e.g. while the server was frozen) cannot know whether another server was promoted
// meanwhile, so the server refuses writes until the operator confirms it or a newer topology
// arrives. A server that starts itself starts read-only, and the apps' connections died with it.
func (a *Agent) fenceIfRestarted(ctx context.Context, topo agentapi.Topology) error {
	a.mu.Lock()
	checked := a.checkedStart
	a.mu.Unlock()
	if checked || topo.Primary != a.cfg.Pod || a.cfg.FenceAfter == 0 {
		return nil
	}
	var ro bool
	var uptime int64
	if err := a.db.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'").Scan(&ro, &uptime); err != nil {
		return fmt.Errorf("reading the server's state: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checkedStart = true
	if !ro && time.Duration(uptime)*time.Second > time.Since(a.startedAt)+a.cfg.Interval+2*time.Second {
		a.fence = &fence{epoch: topo.Epoch, reason: "the agent restarted beside a server that was already writable: another server may have been promoted meanwhile; waiting for the operator to confirm this one"}
		a.log.Warn("Fenced the primary: the agent restarted beside a running writable server")
	}
	return nil
}

// ensureUsers makes the accounts when one is missing or the credentials differ from those they
// were made with (recorded on the server, replicated), and otherwise only reads: a converged
// primary's binary log does not grow by itself, nor when its agent restarts or a replica is
// promoted.
func (a *Agent) ensureUsers(ctx context.Context) error {
	current, err := a.rep.UsersCurrent(ctx, a.cfg.Credentials)
	if err != nil || current {
		return err
	}
	a.log.Info("Making the accounts (new server, changed credentials or a missing account)")
	return a.rep.EnsureUsers(ctx, a.cfg.Credentials)
}

func (a *Agent) source(pod string) replication.Source {
	host, port := a.cfg.Peer(pod)
	return replication.Source{Host: host, Port: port, User: "replication", Password: a.cfg.Credentials.ReplicationPassword}
}

// tick returns the readiness verdict, or an error when the server could not be asked.
func (a *Agent) tick(ctx context.Context, topo agentapi.Topology, role string) (ready error, err error) {
	if err := a.rep.SetServerID(ctx, a.cfg.ServerID()); err != nil {
		return nil, err
	}
	if a.cfg.SemiSyncTimeout > 0 {
		if changed, err := a.rep.EnableSemiSync(ctx, a.cfg.SemiSyncTimeout); err != nil {
			return nil, err
		} else if changed {
			a.log.Info("Semi-synchronous replication on", "timeout", a.cfg.SemiSyncTimeout.String())
		}
	}
	if role == agentapi.RolePrimary {
		return a.asPrimary(ctx)
	}
	return a.asReplica(ctx, a.source(topo.Primary))
}

func (a *Agent) asPrimary(ctx context.Context) (ready error, err error) {
	a.mu.Lock()
	f := a.fence
	a.diverged, a.stranded = nil, ""
	a.mu.Unlock()
	a.lagGauge.WithLabelValues(agentapi.RolePrimary).Set(0)
	if f != nil {
		if err := a.rep.SetReadOnly(ctx, true); err != nil {
			return nil, fmt.Errorf("keeping the fenced primary read-only: %w", err)
		}
		return fmt.Errorf("fenced: %s", f.reason), nil
	}
	st, err := a.rep.Status(ctx)
	if err != nil {
		return nil, err
	}
	if st.Configured {
		// A replica the topology now names primary: promoted with what it received applied first.
		if err := a.rep.Promote(ctx, a.cfg.PromoteWait); err != nil {
			if errors.Is(err, replication.ErrRelayNotApplied) {
				return fmt.Errorf("promoting: %w", err), nil
			}
			return nil, err
		}
		a.promoted.Inc()
		a.log.Info("Promoted to primary", "previousPrimary", st.SourceHost)
	}
	if err := a.ensureUsers(ctx); err != nil {
		return nil, err
	}
	if err := a.rep.ConfigurePrimary(ctx); err != nil {
		return nil, err
	}
	if a.cfg.SemiSyncTimeout > 0 {
		st, err := a.rep.SemiSync(ctx)
		if err != nil {
			return nil, err
		}
		a.semiSync.Set(b2f(st.On))
	}
	return nil, nil
}

func (a *Agent) asReplica(ctx context.Context, src replication.Source) (ready error, err error) {
	a.semiSync.Set(-1)
	a.mu.Lock()
	a.fence = nil
	a.mu.Unlock()
	st, err := a.rep.Status(ctx)
	if err != nil {
		return nil, err
	}
	if !st.Configured || st.SourceHost != src.Host || st.SourcePort != src.Port {
		// About to replicate from a new source: read-only first (a demoted primary stops taking
		// writes here), then make sure the source has everything this server has.
		if _, err := a.rep.Fence(ctx); err != nil {
			return nil, err
		}
		mine, err := a.rep.Position(ctx)
		if err != nil {
			return nil, err
		}
		theirs, err := replication.ExecutedAt(ctx, a.cfg.Engine, src)
		if err != nil {
			// The primary may not be up yet: not ready, and try again next tick.
			return err, nil
		}
		lack := theirs.Missing(mine.Executed)
		a.mu.Lock()
		a.diverged = lack
		a.mu.Unlock()
		if len(lack) > 0 {
			return fmt.Errorf("%w: this server has transactions %s that %s lacks; it needs a rebuild", ErrDiverged, lack, src.Addr()), nil
		}
	}
	changed, err := a.rep.ConfigureReplica(ctx, src)
	if err != nil {
		return err, nil
	}
	if changed {
		a.log.Info("Pointed the replica at the primary", "primary", src.Addr())
	}
	if st, err = a.rep.Status(ctx); err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.stranded = ""
	if replication.Stranded(st) {
		a.stranded = st.IOError
	}
	a.mu.Unlock()
	// Only a replica connected to its primary knows its lag: while its I/O thread is connecting,
	// the server may still say 0 (it applied all it received), which is not what the primary has.
	if st.Lag != nil && st.IORunning && st.SQLRunning {
		a.lagGauge.WithLabelValues(agentapi.RoleReplica).Set(st.Lag.Seconds())
		a.mu.Lock()
		a.lag, a.lagAt = st.Lag, time.Now()
		a.mu.Unlock()
	} else {
		a.lagGauge.WithLabelValues(agentapi.RoleReplica).Set(-1)
	}
	return replication.Check(st, src, a.cfg.MaxLag), nil
}

// Status reports the server for the operator: the last tick's verdict and a fresh GTID position.
func (a *Agent) Status(ctx context.Context) (agentapi.Status, error) {
	pos, err := a.rep.Position(ctx)
	if err != nil {
		return agentapi.Status{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := agentapi.Status{Pod: a.cfg.Pod, Shard: a.cfg.Shard, Topology: a.following, Role: a.role,
		Ready: a.readyErr == nil, Position: pos}
	if a.readyErr != nil {
		st.Reason = a.readyErr.Error()
	}
	if a.fence != nil {
		st.Fenced = a.fence.reason
	}
	if len(a.diverged) > 0 {
		st.Diverged = a.diverged.String()
	}
	st.Stranded = a.stranded
	if a.lag != nil {
		secs, at := a.lag.Seconds(), a.lagAt
		st.LagSeconds, st.LagObservedAt = &secs, &at
	}
	st.Archive = a.archiveStatus()
	st.Backup = a.fullBackupStatus()
	if a.cfg.Backup != nil {
		if req, err := ReadRebuild(a.cfg.Backup.DataDir); err == nil && req != nil {
			at := req.RequestedAt
			st.Rebuild = &at
		}
	}
	return st, nil
}

// SetTopology takes the operator's decision and runs a tick with it. An older epoch is refused;
// a confirmation of the current one lifts a fence.
func (a *Agent) SetTopology(ctx context.Context, t agentapi.Topology) error {
	a.mu.Lock()
	cur := a.newestKnown()
	switch {
	case t.Epoch < cur.Epoch:
		a.mu.Unlock()
		return fmt.Errorf("%w: epoch %d is older than the epoch %d this agent follows", ErrStaleEpoch, t.Epoch, cur.Epoch)
	case t.Confirm:
		if a.fence != nil && t.Primary == a.cfg.Pod && t.Epoch >= a.fence.epoch {
			a.log.Info("The operator confirmed this primary; lifting the fence", "epoch", t.Epoch)
			a.fence = nil
			// The confirmation covers the stall: the next tick does not fence again for it.
			a.lastOK = time.Now()
		}
	}
	t.Confirm = false
	a.pushed = t
	a.mu.Unlock()
	return a.Tick(ctx)
}

// Fence makes the server refuse writes at epoch: read-only, the apps' connections closed. The
// topology is unchanged; a newer epoch or a confirmation lifts it.
func (a *Agent) Fence(ctx context.Context, epoch int64) error {
	a.tickMu.Lock()
	defer a.tickMu.Unlock()
	a.mu.Lock()
	a.fence = &fence{epoch: epoch, reason: fmt.Sprintf("switchover at epoch %d: handing the primary over", epoch)}
	a.readyErr = errors.New("fenced: " + a.fence.reason)
	a.mu.Unlock()
	a.fenced.Set(1)
	killed, err := a.rep.Fence(ctx)
	if err != nil {
		return err
	}
	a.log.Info("Fenced the primary for a switchover", "epoch", epoch, "connectionsClosed", killed)
	return nil
}

// Run ticks every interval until ctx ends.
func (a *Agent) Run(ctx context.Context) {
	a.mu.Lock()
	a.runCtx = ctx
	a.mu.Unlock()
	if a.cfg.Archive != nil {
		go a.archiveLoop(ctx)
	}
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

type badRequest struct{ error }

func decode(r *http.Request, v any) error {
	if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<16)).Decode(v); err != nil {
		return badRequest{fmt.Errorf("request body: %w", err)}
	}
	return nil
}

// api wraps an operator endpoint: the token first, then the action, then the report.
func (a *Agent) api(do func(*http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !agentapi.Authorized(r, a.cfg.Token) {
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		if err := do(r); err != nil {
			code := http.StatusInternalServerError
			var br badRequest
			var conflict errConflict
			var unsupported errUnsupported
			switch {
			case errors.As(err, &br):
				code = http.StatusBadRequest
			case errors.As(err, &conflict):
				code = http.StatusConflict
			case errors.As(err, &unsupported):
				code = http.StatusNotImplemented
			}
			http.Error(w, err.Error(), code)
			return
		}
		st, err := a.Status(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	}
}

// Handler serves /healthz (the agent reaches its server), /readyz (the server is ready in its
// role), /metrics and the operator's API (package agentapi).
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
		err, last := a.readyErr, a.lastOK
		a.mu.Unlock()
		// A verdict is only as good as its age: a tick stuck on a frozen server is not ready.
		if stale := time.Since(last); err == nil && stale > 2*a.cfg.Interval+10*time.Second {
			err = fmt.Errorf("the server has not answered for %v", stale.Round(time.Second))
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/status", a.api(func(r *http.Request) error { return nil }))
	mux.HandleFunc("POST /v1/topology", a.api(func(r *http.Request) error {
		var t agentapi.Topology
		if err := decode(r, &t); err != nil {
			return err
		}
		if t.Primary == "" {
			return badRequest{errors.New("topology.primary is required")}
		}
		if err := a.SetTopology(r.Context(), t); errors.Is(err, ErrStaleEpoch) {
			return badRequest{err}
		}
		// A failed tick is in the report's readiness, not an error of the request.
		return nil
	}))
	mux.HandleFunc("POST /v1/fence", a.api(func(r *http.Request) error {
		var t agentapi.Topology
		if err := decode(r, &t); err != nil {
			return err
		}
		return a.Fence(r.Context(), t.Epoch)
	}))
	mux.HandleFunc("POST /v1/rebuild", a.api(func(r *http.Request) error { return a.RequestRebuild(r.Context()) }))
	mux.HandleFunc("GET /v1/clone", a.serveClone)
	mux.HandleFunc("POST /v1/backup", a.api(func(r *http.Request) error {
		var req agentapi.BackupRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		return a.StartBackup(req)
	}))
	return mux
}
