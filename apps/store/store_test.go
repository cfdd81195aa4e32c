package store

import (
	"context"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/pkg/shard"
)

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
	s, err := Open(Config{User: "root"}, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
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
	a.Stop()
	if err := ping(); err == nil {
		t.Error("ready with no primary answering")
	}
}
