package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"golang.org/x/sync/errgroup"

	"github.com/scalestack/scalestack/apps/auth"
	"github.com/scalestack/scalestack/apps/feed"
	"github.com/scalestack/scalestack/apps/store"
	"github.com/scalestack/scalestack/pkg/shard"
)

// SeedOptions size a seeded network.
type SeedOptions struct {
	// Users in all; index 0 is the most active and the most followed.
	Users int
	// Active users follow FollowsEach others (picked by Zipf) and get a timeline.
	Active      int
	FollowsEach int
	// Authors (the first ones) have PostsEach posts from the last day.
	Authors   int
	PostsEach int
	// CelebrityFollowers: authors with this many followers are merged at read time (as the
	// worker would mark them).
	CelebrityFollowers int
	ZipfS              float64
}

// Seed writes a network straight into the shards and Redis, as the services and the worker
// would have left it (signing up a million users through argon2id would take hours on this
// machine). Every seeded user's password is "loadgen password". It returns the users in
// activity order.
func Seed(ctx context.Context, shards *store.Shards, rc rueidis.Client, o SeedOptions, progress func(string)) ([]shard.ID, error) {
	if o.ZipfS <= 1 {
		o.ZipfS = 1.1
	}
	rnd := rand.New(rand.NewPCG(42, 1))
	router := shards.Router()
	base := time.Now().Add(-60 * 24 * time.Hour)
	baseMs := base.Sub(shard.Epoch).Milliseconds()
	users := make([]shard.ID, o.Users)
	for i := range users {
		users[i] = shard.NewID(baseMs+int64(i/1024), router.Place(func(n int) int { return rnd.IntN(n) }), i%1024)
	}
	hash, err := auth.HashPassword("loadgen password", auth.DefaultHashParams)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	b := newBulk(shards)
	for i, id := range users {
		h := fmt.Sprintf("u%d", i)
		b.add(id.Logical(), "users (id, handle, email, password_hash, display_name, created_at, updated_at)",
			"(?,?,?,?,?,?,?)", int64(id), h, h+"@example.com", hash, fmt.Sprintf("User %d", i), base, base)
		b.add(store.HandleShard(h), "handles (handle, user_id)", "(?,?)", h, int64(id))
	}
	if err := b.flush(ctx); err != nil {
		return nil, err
	}
	progress(fmt.Sprintf("%d users in %s", o.Users, time.Since(start).Round(time.Millisecond)))

	// Follows: the active users follow Zipf-picked users, so the first users are followed most.
	start = time.Now()
	zipf := rand.NewZipf(rnd, o.ZipfS, 1, uint64(o.Users-1))
	followers := map[int]int{}
	following := make([][]int, o.Active)
	for u := range o.Active {
		seen := map[int]bool{u: true}
		for len(following[u]) < o.FollowsEach {
			v := int(zipf.Uint64())
			if seen[v] {
				v = rnd.IntN(o.Users)
				if seen[v] {
					continue
				}
			}
			seen[v] = true
			following[u] = append(following[u], v)
			followers[v]++
			b.add(users[u].Logical(), "following (user_id, followee_id, created_at)", "(?,?,?)", int64(users[u]), int64(users[v]), base)
			b.add(users[v].Logical(), "followers (user_id, follower_id, created_at)", "(?,?,?)", int64(users[v]), int64(users[u]), base)
		}
	}
	// Posts of the first authors, over the last day.
	posts := make([][]shard.ID, o.Authors)
	now := time.Now()
	for a := range o.Authors {
		for k := range o.PostsEach {
			at := now.Add(-time.Duration(rnd.Int64N(int64(24 * time.Hour))))
			id := shard.NewID(at.Sub(shard.Epoch).Milliseconds(), users[a].Logical(), (a*o.PostsEach+k)%1024)
			posts[a] = append(posts[a], id)
			b.add(users[a].Logical(), "posts (id, author_id, body, likes, created_at)", "(?,?,?,?,?)",
				int64(id), int64(users[a]), fmt.Sprintf("seeded post %d of user %d", k, a), rnd.IntN(20), at)
		}
	}
	if err := b.flush(ctx); err != nil {
		return nil, err
	}
	for _, db := range shards.All() {
		for _, q := range []string{
			"INSERT INTO follow_counts (user_id, followers) SELECT user_id, COUNT(*) FROM followers GROUP BY user_id ON DUPLICATE KEY UPDATE followers = VALUES(followers)",
			"INSERT INTO follow_counts (user_id, following) SELECT user_id, COUNT(*) FROM following GROUP BY user_id ON DUPLICATE KEY UPDATE following = VALUES(following)",
		} {
			if _, err := db.Primary.ExecContext(ctx, q); err != nil {
				return nil, err
			}
		}
	}
	progress(fmt.Sprintf("%d follows and %d posts in %s", o.Active*o.FollowsEach, o.Authors*o.PostsEach, time.Since(start).Round(time.Millisecond)))

	// Timelines as the worker's fan-out would have built them; celebrities' posts go to their
	// recent-posts lists instead.
	start = time.Now()
	tl := &feed.Timelines{Redis: rc}
	for a := range o.Authors {
		if followers[a] >= o.CelebrityFollowers {
			for _, p := range posts[a] {
				if err := tl.PushAuthor(ctx, users[a], p); err != nil {
					return nil, err
				}
			}
		}
	}
	entries := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for u := range o.Active {
		var mine []shard.ID
		for _, v := range following[u] {
			if v < o.Authors && followers[v] < o.CelebrityFollowers {
				mine = append(mine, posts[v]...)
			}
		}
		if len(mine) > 50 {
			mine = mine[len(mine)-50:]
		}
		entries += len(mine)
		g.Go(func() error {
			for _, p := range mine {
				if err := tl.Push(gctx, []shard.ID{users[u]}, p); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	progress(fmt.Sprintf("%d timeline entries in %s", entries, time.Since(start).Round(time.Millisecond)))
	return users, nil
}

// bulk batches multi-row INSERTs per physical shard and table.
type bulk struct {
	shards *store.Shards
	rows   map[string]*pending
	err    error
}

type pending struct {
	db    *store.DB
	table string
	tuple string
	n     int
	args  []any
}

func newBulk(s *store.Shards) *bulk { return &bulk{shards: s, rows: map[string]*pending{}} }

const bulkRows = 1000

func (b *bulk) add(logical int, table, tuple string, args ...any) {
	if b.err != nil {
		return
	}
	db, err := b.shards.Shard(logical)
	if err != nil {
		b.err = err
		return
	}
	key := fmt.Sprint(db.Index, table)
	p := b.rows[key]
	if p == nil {
		p = &pending{db: db, table: table, tuple: tuple}
		b.rows[key] = p
	}
	p.args = append(p.args, args...)
	p.n++
	if p.n == bulkRows {
		b.err = p.exec(context.Background())
	}
}

func (p *pending) exec(ctx context.Context) error {
	if p.n == 0 {
		return nil
	}
	q := "INSERT IGNORE INTO " + p.table + " VALUES " + strings.TrimSuffix(strings.Repeat(p.tuple+",", p.n), ",")
	_, err := p.db.Primary.ExecContext(ctx, q, p.args...)
	p.n, p.args = 0, p.args[:0]
	return err
}

func (b *bulk) flush(ctx context.Context) error {
	if b.err != nil {
		return b.err
	}
	for _, p := range b.rows {
		if err := p.exec(ctx); err != nil {
			return err
		}
	}
	return nil
}
