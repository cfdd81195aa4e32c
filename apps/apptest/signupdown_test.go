package apptest

import (
	"bytes"
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
	"github.com/scalestack/scalestack/apps/user"
	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pkg/replication"
	"github.com/scalestack/scalestack/pkg/shard"
)

// TestSignupsAvoidAShardThatIsDown: with one of two shards' servers stopped, every signup still
// succeeds, placed on the shard that answers (the handles live on shard 0's block); the user
// service stays ready.
func TestSignupsAvoidAShardThatIsDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dbs := []*localservers.MariaDB{localservers.StartMariaDB(t), localservers.StartMariaDB(t)}
	for _, db := range dbs {
		c := &replication.Client{DB: db.DB(t), Engine: replication.MariaDB}
		if err := c.EnsureUsers(ctx, replication.Credentials{AppPassword: shared.AppPass, ReplicationPassword: "r", ExporterPassword: "e"}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := shard.Build(2, func(i int) (string, string) { return dbs[i].Addr(), "" })
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
		t.Fatal(err)
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
	testutil.Eventually(t, "the user service ready with both shards migrated", 40*time.Second, func() error {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		defer func() { _ = res.Body.Close() }()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz %d %s", res.StatusCode, readAll(res))
		}
		return nil
	})

	dbs[1].Stop()
	for i := range 8 {
		handle := fmt.Sprintf("downshard%d", i)
		b, _ := json.Marshal(map[string]string{"handle": handle, "email": handle + "@example.com", "password": "correct horse battery", "display_name": handle})
		res, err := http.Post(base+"/v1/users", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(res)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("signup %s with shard 1 down: %d %s", handle, res.StatusCode, body)
		}
		var out user.TokenResponse
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("signup answer %q: %v", body, err)
		}
		if p := out.ID.Logical() / shard.BlockSize; p != 0 {
			t.Errorf("signup %s placed on shard %d, which is down", handle, p)
		}
	}
	res, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("/readyz %d with one shard of two down", res.StatusCode)
	}
}
