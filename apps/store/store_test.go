package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/apps/httpx"
	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/pkg/shard"
)

// openMigrated opens the shards of m as root and applies the migrations, as a service's start does.
func openMigrated(t *testing.T, m *shard.Map) *Shards {
	t.Helper()
	s, err := Open(Config{User: "root"}, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// A service stays ready while one shard's primary is down (that shard's users get errors, the
// others are served); it is not ready when no primary answers. Real MariaDB servers on free ports.
func TestPingSurvivesOneShardDown(t *testing.T) {
	a, b := localservers.StartMariaDB(t), localservers.StartMariaDB(t)
	m, err := shard.Build(2, func(i int) (string, string) {
		if i == 0 {
			return a.Addr(), ""
		}
		return b.Addr(), ""
	})
	if err != nil {
		t.Fatal(err)
	}
	s := openMigrated(t, m)
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return s.Ping(ctx)
	}
	if err := ping(); err != nil {
		t.Fatalf("both primaries up: %v", err)
	}
	b.Stop()
	if err := ping(); err != nil {
		t.Errorf("one primary down made the service unready: %v", err)
	}
	// That shard's users get a 503 naming it; the other shard's users are served.
	ctx := context.Background()
	onShard := func(i int) shard.ID { return shard.NewID(1, shard.Block(i).Start, 0) }
	_, _, err = s.Begin(ctx, onShard(1))
	var he *httpx.Error
	if !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable || !strings.Contains(he.Message, "physical shard 1") {
		t.Errorf("a write for a user of the down shard: %v", err)
	}
	if err := s.Read(ctx, onShard(1), func(db *sql.DB) error { return db.PingContext(ctx) }); !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable {
		t.Errorf("a read for a user of the down shard: %v", err)
	}
	_, tx, err := s.Begin(ctx, onShard(0))
	if err != nil {
		t.Fatalf("a write for a user of the other shard: %v", err)
	}
	_ = tx.Rollback()
	// A query's own error is not turned into "unavailable".
	if err := s.Read(ctx, onShard(0), func(db *sql.DB) error { return httpx.NotFound("no such user") }); !errors.As(err, &he) || he.Status != http.StatusNotFound {
		t.Errorf("a not-found read became %v", err)
	}
	a.Stop()
	if err := ping(); err == nil {
		t.Error("ready with no primary answering")
	}
}

// A running service picks up a grown shard map without a restart: a new shard that takes no
// users yet may wait for its server; once the map gives it users, it is migrated before the map
// is used, and a map whose user-taking shard cannot be migrated is not switched to.
func TestGrownMapIsMigratedBeforeUse(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := localservers.StartMariaDB(t), localservers.StartMariaDB(t)
	dead := fmt.Sprintf("127.0.0.1:%d", localservers.FreePort(t))
	build := func(n int, second string, weight int) []byte {
		m, err := shard.Build(n, func(i int) (string, string) {
			if i == 0 {
				return a.Addr(), ""
			}
			return second, ""
		})
		if err != nil {
			t.Fatal(err)
		}
		if n > 1 {
			m.Shards[1].Weight = weight
		}
		raw, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	path := filepath.Join(t.TempDir(), "shardmap.json")
	write := func(raw []byte) {
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(build(1, "", 0))
	m, raw, err := LoadMap(path)
	if err != nil {
		t.Fatal(err)
	}
	s := openMigrated(t, m)
	s.SetRaw(raw)
	go s.WatchFile(ctx, path, 50*time.Millisecond)
	shards := func() int { return len(s.All()) }
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// A new shard taking no users, its server not up: the map is used; nobody is placed there.
	write(build(2, dead, 0))
	wait("the map with a waiting shard", func() bool { return shards() == 2 })
	// Given users while it cannot be migrated: the map is not switched to.
	write(build(2, dead, 1))
	time.Sleep(500 * time.Millisecond)
	if w := s.Router().Map().Shards[1].Weight; w != 0 {
		t.Fatalf("switched to a map that places users on an unmigrated shard (weight %d)", w)
	}
	// Its server up: migrated, then used.
	write(build(2, b.Addr(), 1))
	wait("the map with the new shard taking users", func() bool { return s.Router().Map().Shards[1].Weight == 1 })
	var n int
	if err := b.DB(t).QueryRow("SELECT COUNT(*) FROM social.schema_migrations").Scan(&n); err != nil || n == 0 {
		t.Errorf("the new shard was used before it was migrated: %d migrations, %v", n, err)
	}
}
