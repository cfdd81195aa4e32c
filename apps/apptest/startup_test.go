package apptest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/apps/service"
	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pkg/replication"
	"github.com/scalestack/scalestack/pkg/shard"
)

// TestAServiceStartedBeforeItsShardWaitsUnready: a user service whose shard is down when it
// starts does not exit (a restart loop in a pod): it is live, unready with the reason, and turns
// ready once the shard is up and migrated, with nothing restarted.
func TestAServiceStartedBeforeItsShardWaitsUnready(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db := localservers.StartMariaDB(t)
	c := &replication.Client{DB: db.DB(t), Engine: replication.MariaDB}
	if err := c.EnsureUsers(ctx, replication.Credentials{AppPassword: shared.AppPass, ReplicationPassword: "r", ExporterPassword: "e"}); err != nil {
		t.Fatal(err)
	}
	db.Stop()

	m, err := shard.Build(1, func(int) (string, string) { return db.Addr(), "" })
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(m)
	cfg := shared.Config
	cfg.ShardMapFile = filepath.Join(t.TempDir(), "shardmap.json")
	if err := os.WriteFile(cfg.ShardMapFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := service.New(ctx, service.User, cfg)
	if err != nil {
		t.Fatalf("the service refused to start while its shard is down: %v", err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", localservers.FreePort(t))
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, strings.TrimPrefix(base, "http://"), 0) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serving: %v", err)
		}
	}()

	status := func(path string) (int, string) {
		res, err := http.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer func() { _ = res.Body.Close() }()
		return res.StatusCode, readAll(res)
	}
	testutil.Eventually(t, "the service unready with the reason", 20*time.Second, func() error {
		code, body := status("/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "waiting for the shards' schema") || !strings.Contains(body, "migrating shard 0") {
			return fmt.Errorf("/readyz %d %q", code, body)
		}
		return nil
	})
	for range 3 { // and it stays so, live, while the shard is down
		if code, body := status("/healthz"); code != http.StatusOK {
			t.Fatalf("/healthz %d %q while the shard is down: the kubelet would restart the pod", code, body)
		}
		if code, _ := status("/readyz"); code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz %d while the shard is down", code)
		}
		time.Sleep(time.Second)
	}

	db.Restart()
	testutil.Eventually(t, "the service ready once its shard is up", 40*time.Second, func() error {
		if code, body := status("/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz %d %q", code, body)
		}
		return nil
	})
	var n int
	if err := db.DB(t).QueryRow("SELECT COUNT(*) FROM social.schema_migrations").Scan(&n); err != nil || n == 0 {
		t.Fatalf("ready, but the shard has %d migrations (%v)", n, err)
	}
}
