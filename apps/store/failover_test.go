package store

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/scalestack/scalestack/apps/httpx"
	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/pkg/shard"
)

// movingService plays a ClusterIP whose endpoint moves (kube-proxy after a switchover): new
// connections reach the current target, established ones stay where they were.
type movingService struct {
	l      net.Listener
	target atomic.Pointer[string]
	wg     sync.WaitGroup
}

func newMovingService(t *testing.T, target string) *movingService {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &movingService{l: l}
	m.target.Store(&target)
	m.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", *m.target.Load())
			if err != nil {
				_ = c.Close()
				continue
			}
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	})
	t.Cleanup(func() { _ = l.Close(); m.wg.Wait() })
	return m
}

// After a switchover, the connections a primary's pool opened to the old primary (now read-only)
// are dropped at their first refused write, so writes reach the new primary on the next try
// instead of failing for as long as the pooled connections live; the refused one is a 503 that
// names the shard. Real MariaDB servers behind a proxy that moves like a Service.
func TestPrimaryPoolLeavesADemotedPrimary(t *testing.T) {
	ctx := context.Background()
	a, b := localservers.StartMariaDB(t), localservers.StartMariaDB(t)
	for _, srv := range []*localservers.MariaDB{a, b} {
		m, err := shard.Build(1, func(int) (string, string) { return srv.Addr(), "" })
		if err != nil {
			t.Fatal(err)
		}
		openMigrated(t, m)
		// The apps' account: without SUPER, so read_only refuses its writes.
		for _, q := range []string{"CREATE USER 'w'@'127.0.0.1' IDENTIFIED BY 'pw'", "GRANT ALL ON social.* TO 'w'@'127.0.0.1'"} {
			if _, err := srv.DB(t).ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	svc := newMovingService(t, a.Addr())
	m, err := shard.Build(1, func(int) (string, string) { return svc.l.Addr().String(), "" })
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(Config{User: "w", Password: "pw", MaxOpenConns: 4}, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	db := s.All()[0]
	// Fill the pool with connections to a.
	var conns []*sql.Conn
	for range 4 {
		c, err := db.Primary.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		_ = c.Close()
	}
	// The switchover: a turns read-only, the Service moves to b.
	if _, err := a.DB(t).ExecContext(ctx, "SET GLOBAL read_only = ON"); err != nil {
		t.Fatal(err)
	}
	moved := b.Addr()
	svc.target.Store(&moved)
	write := func() error {
		_, err := db.Primary.ExecContext(ctx, "INSERT INTO social.suggestions (user_id, suggested_id, score) VALUES (1, 2, 3) ON DUPLICATE KEY UPDATE score = score + 1")
		return Unavailable(ctx, db, err)
	}
	// database/sql retries a dropped connection on another pooled one, then on a new one: the
	// write lands on b at once, or after one refusal per pooled connection at most.
	var refusals int
	for i := 0; i < 6; i++ {
		err := write()
		if err == nil {
			break
		}
		var he *httpx.Error
		if !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable {
			t.Fatalf("a refused write gave %v, want a 503 naming the shard", err)
		}
		refusals++
	}
	var n int
	if err := b.DB(t).QueryRowContext(ctx, "SELECT COUNT(*) FROM social.suggestions").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the write did not reach the new primary after %d refusals: %d rows (%v)", refusals, n, err)
	}
	for range 10 {
		if err := write(); err != nil {
			t.Fatalf("a write after the pool left the old primary: %v", err)
		}
	}
}
