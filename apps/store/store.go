// Package store routes the apps' SQL to the physical shards of the shard map: writes to a shard's
// primary, reads to its replicas except just after the owner's own write (read-your-writes) and
// when the replicas fail. It applies the embedded schema migrations on start, reloads the shard
// map when its mounted file changes, and keeps one connection pool per address.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/scalestack/scalestack/apps/httpx"
	"github.com/scalestack/scalestack/pkg/shard"
)

// Database is the schema every shard holds.
const Database = "social"

// Config says how to reach the shards.
type Config struct {
	User, Password string
	// MaxOpenConns per pool.
	MaxOpenConns int
	// RYWWindow is how long after an owner's write its reads go to the primary.
	RYWWindow time.Duration
	// Redis, when set, shares recent-write marks between the service's replicas; without it
	// marks are kept in this process only.
	Redis rueidis.Client
}

// DB is one physical shard's pools.
type DB struct {
	Index    int
	Primary  *sql.DB
	Replicas *sql.DB // == Primary when the shard has no replicas
	addr     string
	raddr    string
}

// Shards routes to the physical shards.
type Shards struct {
	cfg     Config
	state   atomic.Pointer[state]
	mu      sync.Mutex
	pools   map[string]*sql.DB // by address
	local   sync.Map           // owner ID -> time of its last write through this process
	marks   atomic.Int64
	down    sync.Map // replica address -> time it failed
	metrics *Metrics
	// migrated holds the primary addresses the migrations were applied to by this process.
	migrated sync.Map
}

type state struct {
	router *shard.Router
	dbs    []*DB // by position in the map
	raw    []byte
}

// Metrics count routed queries.
type Metrics struct {
	reads    *prometheus.CounterVec
	fallback prometheus.Counter
	version  prometheus.Gauge
	pools    *prometheus.GaugeVec
}

// NewMetrics registers the store's metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalestack_db_reads_total", Help: "Reads routed, by target (replica, primary_ryw, primary_fallback, primary).",
		}, []string{"target"}),
		fallback: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalestack_db_replica_failures_total", Help: "Replica reads that failed and went to the primary.",
		}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scalestack_shard_map_version", Help: "Version of the shard map in use.",
		}),
		pools: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scalestack_db_pool_connections", Help: "Open connections per pool and state (in_use, idle).",
		}, []string{"shard", "role", "state"}),
	}
	reg.MustRegister(m.reads, m.fallback, m.version, m.pools)
	return m
}

// Open connects to every shard of m. Connections are made lazily by database/sql.
func Open(cfg Config, m *shard.Map, metrics *Metrics) (*Shards, error) {
	if cfg.MaxOpenConns <= 0 {
		cfg.MaxOpenConns = 64
	}
	if cfg.RYWWindow <= 0 {
		cfg.RYWWindow = 5 * time.Second
	}
	s := &Shards{cfg: cfg, pools: map[string]*sql.DB{}, metrics: metrics}
	if err := s.Update(m); err != nil {
		return nil, err
	}
	return s, nil
}

// LoadMap reads and validates a shard map file.
func LoadMap(path string) (*shard.Map, []byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	m, err := shard.Parse(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, b, nil
}

// Update switches to map m; pools of addresses still in use are kept.
func (s *Shards) Update(m *shard.Map) error {
	r, err := shard.NewRouter(m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &state{router: r}
	used := map[string]bool{}
	for _, p := range m.Shards {
		db := &DB{Index: p.Index, addr: p.Primary, raddr: p.Replicas}
		if db.Primary, err = s.pool(p.Primary, true); err != nil {
			return err
		}
		db.Replicas = db.Primary
		if p.Replicas != "" {
			if db.Replicas, err = s.pool(p.Replicas, false); err != nil {
				return err
			}
		}
		used[p.Primary], used[p.Replicas] = true, true
		st.dbs = append(st.dbs, db)
	}
	old := s.state.Swap(st)
	if old != nil {
		for addr, p := range s.pools {
			if !used[addr] {
				_ = p.Close()
				delete(s.pools, addr)
			}
		}
	}
	if s.metrics != nil {
		s.metrics.version.Set(float64(m.Version))
	}
	return nil
}

// pool returns the pool of addr. A primary's pool drops a connection that meets a read-only
// server (go-sql-driver's rejectReadOnly): after a failover or switchover, connections opened to
// the old primary before kube-proxy moved the -primary Service would otherwise stay in the pool
// and fail every write; dropped, the next one reaches the new primary.
func (s *Shards) pool(addr string, primary bool) (*sql.DB, error) {
	if p, ok := s.pools[addr]; ok {
		return p, nil
	}
	dsn := DSN(addr, s.cfg.User, s.cfg.Password, Database)
	if primary {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return nil, err
		}
		cfg.RejectReadOnly = true
		dsn = cfg.FormatDSN()
	}
	p, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, err
	}
	p.SetMaxOpenConns(s.cfg.MaxOpenConns)
	p.SetMaxIdleConns(s.cfg.MaxOpenConns)
	p.SetConnMaxIdleTime(5 * time.Minute)
	s.pools[addr] = p
	return p, nil
}

// DSN is the go-sql-driver DSN the apps use. Parameters are interpolated client-side (one round
// trip per query instead of prepare+execute+close), with the driver's escaping; queries are still
// written with placeholders only.
func DSN(addr, user, password, db string) string {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = user, password, "tcp", addr, db
	c.ParseTime = true
	c.InterpolateParams = true
	c.Timeout = 3 * time.Second
	c.ReadTimeout = 10 * time.Second
	c.WriteTimeout = 10 * time.Second
	c.Params = map[string]string{"charset": "utf8mb4"}
	return c.FormatDSN()
}

// Router returns the current router.
func (s *Shards) Router() *shard.Router { return s.state.Load().router }

// Shard returns the pools of the physical shard that owns logical.
func (s *Shards) Shard(logical int) (*DB, error) {
	st := s.state.Load()
	p, err := st.router.Route(logical)
	if err != nil {
		return nil, err
	}
	for _, db := range st.dbs {
		if db.Index == p.Index {
			return db, nil
		}
	}
	return nil, fmt.Errorf("shard %d has no pools", p.Index)
}

// Begin starts a transaction on the primary of the physical shard that owns owner's logical
// shard, and returns that shard's pools with it.
func (s *Shards) Begin(ctx context.Context, owner shard.ID) (*DB, *sql.Tx, error) {
	db, err := s.Shard(owner.Logical())
	if err != nil {
		return nil, nil, err
	}
	tx, err := db.Primary.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, unavailable(ctx, db, err)
	}
	return db, tx, nil
}

// Unavailable is unavailable for the apps' own write paths (a transaction begun on db.Primary).
func Unavailable(ctx context.Context, db *DB, err error) error { return unavailable(ctx, db, err) }

// unavailable turns a failure of a shard's server into a 503 that names the shard: its users'
// requests fail with a reason and a retry hint while the other shards' users are served. A
// query's own error passes through.
func unavailable(ctx context.Context, db *DB, err error) error {
	if err == nil || !serverDown(err) || ctx.Err() != nil {
		return err
	}
	slog.WarnContext(ctx, "a shard's primary does not answer", "shard", db.Index, "error", err)
	return httpx.Unavailable("physical shard %d, which holds this user's data, is unavailable (its primary does not answer); retry shortly: the other shards are served", db.Index).AsPartial()
}

// All returns every physical shard's pools.
func (s *Shards) All() []*DB { return slices.Clone(s.state.Load().dbs) }

// HandleShard is the logical shard a handle's uniqueness row lives on: one of the first block's
// logical shards, picked by the handle's hash. The first block always exists (physical shard 0
// is created owning it), and the mapping never changes as shards are added; if resharding ever
// moves those logical shards, the handle rows move with them like any other data.
func HandleShard(handle string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(strings.ToLower(handle)))
	return int(h.Sum32() % shard.BlockSize)
}

// MarkWrite records that owner just wrote: its reads go to the primary for the RYW window.
func (s *Shards) MarkWrite(ctx context.Context, owner shard.ID) {
	if s.cfg.Redis != nil {
		c := s.cfg.Redis
		// Best effort: other replicas of the service see the mark; this one keeps its own below.
		_ = c.Do(ctx, c.B().Set().Key(rywKey(owner)).Value("1").Px(s.cfg.RYWWindow).Build()).Error()
	}
	s.local.Store(owner, time.Now())
	if s.marks.Add(1)%4096 == 0 {
		// Sweep expired marks so the map stays as small as the window's writers.
		s.local.Range(func(k, v any) bool {
			if time.Since(v.(time.Time)) >= s.cfg.RYWWindow {
				s.local.Delete(k)
			}
			return true
		})
	}
}

func rywKey(owner shard.ID) string { return "ryw:" + owner.String() }

func (s *Shards) recentWrite(ctx context.Context, owner shard.ID) bool {
	if t, ok := s.local.Load(owner); ok {
		if time.Since(t.(time.Time)) < s.cfg.RYWWindow {
			return true
		}
		s.local.Delete(owner)
	}
	if s.cfg.Redis == nil || owner == 0 {
		return false
	}
	c := s.cfg.Redis
	// Client-side cached: a mark set by any replica invalidates the local copy at once.
	err := c.DoCache(ctx, c.B().Get().Key(rywKey(owner)).Cache(), s.cfg.RYWWindow).Error()
	return !rueidis.IsRedisNil(err) // a mark, or Redis unreachable: read the primary to be safe
}

// Read runs fn against a reader of the shard that owns owner's data: a replica, or the primary
// when owner wrote within the RYW window or the replicas fail.
func (s *Shards) Read(ctx context.Context, owner shard.ID, fn func(db *sql.DB) error) error {
	db, err := s.Shard(owner.Logical())
	if err != nil {
		return err
	}
	return s.ReadShard(ctx, db, owner, fn)
}

// ReadShard is Read on a known shard.
func (s *Shards) ReadShard(ctx context.Context, db *DB, owner shard.ID, fn func(db *sql.DB) error) error {
	if db.Replicas == db.Primary {
		s.count("primary")
		return unavailable(ctx, db, fn(db.Primary))
	}
	if s.recentWrite(ctx, owner) {
		s.count("primary_ryw")
		return unavailable(ctx, db, fn(db.Primary))
	}
	if t, ok := s.down.Load(db.raddr); ok && time.Since(t.(time.Time)) < 5*time.Second {
		s.count("primary_fallback")
		return unavailable(ctx, db, fn(db.Primary))
	}
	s.count("replica")
	err := fn(db.Replicas)
	if err == nil || !isConnError(err) || ctx.Err() != nil {
		return err
	}
	slog.WarnContext(ctx, "replica read failed; reading the primary", "shard", db.Index, "error", err)
	s.down.Store(db.raddr, time.Now())
	if s.metrics != nil {
		s.metrics.fallback.Inc()
	}
	s.count("primary_fallback")
	return unavailable(ctx, db, fn(db.Primary))
}

func (s *Shards) count(target string) {
	if s.metrics != nil {
		s.metrics.reads.WithLabelValues(target).Inc()
	}
}

// isConnError is true for failures of the server rather than of the query.
func isConnError(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		// Query errors (syntax, constraint) are the caller's.
		return serverRefused(me)
	}
	return !errors.Is(err, sql.ErrNoRows)
}

// serverRefused is true for the MySQL errors that come from the server's state, not from the
// query: read-only (1290: a replica, or a fenced primary), shutting down (1053), connection
// killed (1927).
func serverRefused(me *mysql.MySQLError) bool {
	return me.Number == 1290 || me.Number == 1053 || me.Number == 1927
}

// serverDown is true only for errors that say the server is gone or refuses writes (a fenced or
// demoted primary), never for a query's or the caller's own error.
func serverDown(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return serverRefused(me)
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn)
}

// IsDuplicate reports a duplicate-key error.
func IsDuplicate(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1062
}

// Ping is the readiness of a service that uses the shards: at least one primary answers (all are
// asked at once). A shard that is down fails its own users' requests only; failing the pod's
// readiness would take every other shard's users down with it.
func (s *Shards) Ping(ctx context.Context) error {
	dbs := s.All()
	if len(dbs) == 0 {
		return errors.New("the shard map lists no shard")
	}
	errs := make(chan error, len(dbs))
	for _, db := range dbs {
		go func() {
			if err := db.Primary.PingContext(ctx); err != nil {
				errs <- fmt.Errorf("shard %d primary: %w", db.Index, err)
				return
			}
			errs <- nil
		}()
	}
	var failed []error
	for range dbs {
		err := <-errs
		if err == nil {
			return nil
		}
		failed = append(failed, err)
	}
	return fmt.Errorf("no shard's primary answers: %w", errors.Join(failed...))
}

// CollectPools updates the pool gauges.
func (s *Shards) CollectPools() {
	if s.metrics == nil {
		return
	}
	for _, db := range s.All() {
		idx := fmt.Sprint(db.Index)
		ps := db.Primary.Stats()
		s.metrics.pools.WithLabelValues(idx, "primary", "in_use").Set(float64(ps.InUse))
		s.metrics.pools.WithLabelValues(idx, "primary", "idle").Set(float64(ps.Idle))
		if db.Replicas != db.Primary {
			rs := db.Replicas.Stats()
			s.metrics.pools.WithLabelValues(idx, "replicas", "in_use").Set(float64(rs.InUse))
			s.metrics.pools.WithLabelValues(idx, "replicas", "idle").Set(float64(rs.Idle))
		}
	}
}

// WatchFile reloads the shard map from path whenever its content changes (a mounted ConfigMap is
// swapped atomically by the kubelet), checking every interval, until ctx ends. A map that fails
// validation is logged and ignored: the last good map stays in use.
func (s *Shards) WatchFile(ctx context.Context, path string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m, raw, err := LoadMap(path)
		if err != nil {
			slog.Error("shard map reload failed; keeping the current map", "path", path, "error", err)
			continue
		}
		if st := s.state.Load(); string(st.raw) == string(raw) {
			continue
		}
		if err := s.migrateNew(ctx, m); err != nil {
			slog.Warn("a shard of the new map is not migrated yet; keeping the current map", "error", err)
			continue
		}
		if err := s.Update(m); err != nil {
			slog.Error("shard map rejected; keeping the current map", "error", err)
			continue
		}
		s.state.Load().raw = raw
		slog.Info("shard map reloaded", "version", m.Version, "shards", len(m.Shards))
	}
}

// SetRaw records the file content the current map came from (so WatchFile skips it).
func (s *Shards) SetRaw(raw []byte) { s.state.Load().raw = raw }

// Close closes every pool.
func (s *Shards) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pools {
		_ = p.Close()
	}
}

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate creates the database if needed and applies the embedded migrations on every primary,
// each once, in order, under a lock so that concurrent starts do not race.
func (s *Shards) Migrate(ctx context.Context) error {
	for _, db := range s.All() {
		if err := migrate(ctx, db.addr, s.cfg.User, s.cfg.Password); err != nil {
			return fmt.Errorf("migrating shard %d: %w", db.Index, err)
		}
		s.migrated.Store(db.addr, true)
	}
	return nil
}

// migrateNew applies the migrations to the shards of m this process has not migrated, before m
// is used: a shard that takes new users (weight above zero) must be migrated or the map is not
// switched to; one that takes none yet (a shard being added) is tried and may wait, since nothing
// is placed on it. Running pods so pick up a grown map without a restart.
func (s *Shards) migrateNew(ctx context.Context, m *shard.Map) error {
	for _, p := range m.Shards {
		if _, done := s.migrated.Load(p.Primary); done {
			continue
		}
		err := migrate(ctx, p.Primary, s.cfg.User, s.cfg.Password)
		switch {
		case err == nil:
			s.migrated.Store(p.Primary, true)
			slog.Info("migrated a shard of the new map", "shard", p.Index)
		case p.Weight > 0:
			return fmt.Errorf("migrating shard %d: %w", p.Index, err)
		default:
			slog.Info("a shard that takes no users yet is not migrated yet", "shard", p.Index, "error", err.Error())
		}
	}
	return nil
}

func migrate(ctx context.Context, addr, user, password string) error {
	boot, err := sql.Open("mysql", DSN(addr, user, password, ""))
	if err != nil {
		return err
	}
	defer func() { _ = boot.Close() }()
	if _, err := boot.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+Database+" CHARACTER SET utf8mb4"); err != nil {
		return err
	}
	conn, err := boot.Conn(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	if _, err := conn.ExecContext(ctx, "USE "+Database); err != nil {
		return err
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('scalestack_migrate', 60)").Scan(&got); err != nil {
		return fmt.Errorf("taking the migration lock: %w", err)
	}
	if got.Int64 != 1 {
		return errors.New("taking the migration lock: another process held it for 60s")
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK('scalestack_migrate')")
	}()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version VARCHAR(64) NOT NULL PRIMARY KEY, applied_at DATETIME(3) NOT NULL) ENGINE=InnoDB`); err != nil {
		return err
	}
	entries, err := migrations.ReadDir("migrations")
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		var n int
		if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE version = ?", name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		b, err := migrations.ReadFile("migrations/" + name)
		if err != nil {
			return err
		}
		for _, stmt := range Statements(string(b)) {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		if _, err := conn.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, NOW(3))", name); err != nil {
			return err
		}
		slog.Info("migration applied", "shard", addr, "version", name)
	}
	return nil
}

// Statements splits a migration file into statements: comments dropped, split on ';' at line ends.
func Statements(src string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(src, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteString("\n")
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// QueryIDs runs a query whose rows are single IDs and returns them in order.
func QueryIDs(ctx context.Context, q *sql.DB, query string, args ...any) ([]shard.ID, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	ids := []shard.ID{}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		ids = append(ids, shard.ID(v))
	}
	return ids, rows.Err()
}
