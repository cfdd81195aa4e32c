// Package feed is the feed service and the timelines behind it. An ordinary author's post is
// fanned out on write into each follower's Redis timeline (by the worker); a celebrity's post (an
// author with at least CelebrityFollowers followers) is not, and is merged in at read time from
// the author's own recent-posts list. The merged candidates are ranked by recency and engagement.
package feed

import (
	"context"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/redis/rueidis"

	"github.com/scalestack/scalestack/apps/httpx"
	"github.com/scalestack/scalestack/apps/post"
	"github.com/scalestack/scalestack/pkg/shard"
)

// Redis keys shared with the worker.
const (
	celebritiesKey = "celebrities"
	// TimelineLen bounds a timeline and an author's recent-posts list.
	TimelineLen = 800
	// candidates read from a timeline per feed request.
	timelineRead = 200
	// per celebrity followed, and how many celebrities are merged.
	celebRead = 20
	maxCelebs = 100
)

// TimelineKey is a user's home timeline: a sorted set of post IDs scored by post time.
func TimelineKey(u shard.ID) string { return "timeline:" + u.String() }

// PageKey is a user's first feed page as the gateway last assembled it (the ranked post IDs of a
// DefaultPage-long page), kept for a short TTL. Every push into the user's timeline deletes it, so
// a followed author's new post, the user's own post and a follow's backfill show at once; what the
// page can miss for up to its TTL is a celebrity's new post (merged at read time, not pushed) and a
// change of likes' ranking.
func PageKey(u shard.ID) string { return "feedpage:" + u.String() }

// DefaultPage is the length of a feed page when the caller does not ask for another, the only
// length the gateway caches.
const DefaultPage = 20

// AuthorPostsKey is a celebrity's recent posts.
func AuthorPostsKey(a shard.ID) string { return "authorposts:" + a.String() }

// Timelines writes and reads the Redis side of feeds.
type Timelines struct {
	Redis rueidis.Client
}

func score(p shard.ID) float64 { return float64(p.Time().UnixMilli()) }

// Push adds post to each user's timeline and trims them, and drops their cached feed pages, in
// one pipeline. Idempotent.
func (t *Timelines) Push(ctx context.Context, users []shard.ID, p shard.ID) error {
	c := t.Redis
	cmds := make(rueidis.Commands, 0, 3*len(users))
	for _, u := range users {
		cmds = append(cmds,
			c.B().Zadd().Key(TimelineKey(u)).ScoreMember().ScoreMember(score(p), p.String()).Build(),
			c.B().Zremrangebyrank().Key(TimelineKey(u)).Start(0).Stop(-TimelineLen-1).Build(),
			c.B().Del().Key(PageKey(u)).Build())
	}
	for _, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return err
		}
	}
	return nil
}

// PushAuthor records a celebrity's post in its recent-posts list and marks it a celebrity.
func (t *Timelines) PushAuthor(ctx context.Context, author, p shard.ID) error {
	c := t.Redis
	for _, r := range c.DoMulti(ctx,
		c.B().Sadd().Key(celebritiesKey).Member(author.String()).Build(),
		c.B().Zadd().Key(AuthorPostsKey(author)).ScoreMember().ScoreMember(score(p), p.String()).Build(),
		c.B().Zremrangebyrank().Key(AuthorPostsKey(author)).Start(0).Stop(-TimelineLen-1).Build()) {
		if err := r.Error(); err != nil {
			return err
		}
	}
	return nil
}

// MarkCelebrity makes author's posts merge at read time from now on.
func (t *Timelines) MarkCelebrity(ctx context.Context, author shard.ID) error {
	return t.Redis.Do(ctx, t.Redis.B().Sadd().Key(celebritiesKey).Member(author.String()).Build()).Error()
}

// IsCelebrity reports whether author's posts are merged at read time.
func (t *Timelines) IsCelebrity(ctx context.Context, author shard.ID) (bool, error) {
	return t.Redis.Do(ctx, t.Redis.B().Sismember().Key(celebritiesKey).Member(author.String()).Build()).AsBool()
}

func (t *Timelines) read(ctx context.Context, key string, n int64) ([]shard.ID, error) {
	vals, err := t.Redis.Do(ctx, t.Redis.B().Zrevrange().Key(key).Start(0).Stop(n-1).Build()).AsStrSlice()
	if err != nil {
		return nil, err
	}
	ids := make([]shard.ID, 0, len(vals))
	for _, v := range vals {
		if id, err := shard.ParseID(v); err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// Service is the feed service.
type Service struct {
	Timelines *Timelines
	// Following returns whom a user follows (the user service).
	Following func(ctx context.Context, u shard.ID) ([]shard.ID, error)
	// Posts batch-gets posts (the post service).
	Posts func(ctx context.Context, ids []shard.ID) ([]*post.Post, error)
	Now   func() time.Time
}

// Routes registers the API.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.Handle("GET /v1/feed/{id}", httpx.Handle(s.feed))
}

// Response is a ranked feed. Degraded says a part was left out because a dependency failed.
type Response struct {
	PostIDs  []shard.ID `json:"post_ids"`
	Degraded []string   `json:"degraded,omitempty"`
}

func (s *Service) feed(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r, "", 20, 100)
	if err != nil {
		return err
	}
	res, err := s.Build(r.Context(), page.ID, page.Limit)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, res)
	return nil
}

// Build returns u's ranked feed.
func (s *Service) Build(ctx context.Context, u shard.ID, limit int) (*Response, error) {
	res := &Response{PostIDs: []shard.ID{}}
	cands, err := s.Timelines.read(ctx, TimelineKey(u), timelineRead)
	if err != nil {
		return nil, httpx.Unavailable("timelines are unavailable: %v", err)
	}
	following, ferr := s.Following(ctx, u)
	if ferr != nil {
		// Without the following list: no celebrity merge and no unfollow filter, but a feed.
		res.Degraded = append(res.Degraded, "following")
	} else if len(following) > 0 {
		celebs, err := s.celebrities(ctx, following)
		if err != nil {
			res.Degraded = append(res.Degraded, "celebrities")
		}
		// Every celebrity's recent posts in one pipelined round trip.
		c := s.Timelines.Redis
		cmds := make(rueidis.Commands, 0, len(celebs))
		for _, cb := range celebs {
			cmds = append(cmds, c.B().Zrevrange().Key(AuthorPostsKey(cb)).Start(0).Stop(celebRead-1).Build())
		}
		for _, r := range c.DoMulti(ctx, cmds...) {
			vals, err := r.AsStrSlice()
			if err != nil {
				res.Degraded = append(res.Degraded, "celebrities")
				break
			}
			for _, v := range vals {
				if id, err := shard.ParseID(v); err == nil {
					cands = append(cands, id)
				}
			}
		}
	}
	slices.SortFunc(cands, func(a, b shard.ID) int { return cmpID(b, a) }) // newest first: IDs order by time
	cands = slices.Compact(cands)
	// Rank the newest three times the page: older candidates cannot win on engagement alone.
	if n := 3 * limit; len(cands) > n {
		cands = cands[:n]
	}
	if len(cands) == 0 {
		return res, nil
	}
	posts, err := s.Posts(ctx, cands)
	if err != nil {
		// Degrade to recency order without engagement and without the unfollow filter.
		res.Degraded = append(res.Degraded, "posts")
		if len(cands) > limit {
			cands = cands[:limit]
		}
		res.PostIDs = cands
		return res, nil
	}
	allowed := map[shard.ID]bool{u: true}
	for _, f := range following {
		allowed[f] = true
	}
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	type ranked struct {
		id    shard.ID
		score float64
	}
	var rs []ranked
	for _, p := range posts {
		if ferr == nil && !allowed[p.Author] {
			continue // unfollowed since the fan-out
		}
		rs = append(rs, ranked{p.ID, Score(p, now)})
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if a.score != b.score {
			if a.score > b.score {
				return -1
			}
			return 1
		}
		return cmpID(b.id, a.id)
	})
	for i := 0; i < len(rs) && i < limit; i++ {
		res.PostIDs = append(res.PostIDs, rs[i].id)
	}
	return res, nil
}

func cmpID(a, b shard.ID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Score ranks a post: its recency in hours (newer is higher) plus an engagement boost that grows
// with the logarithm of its likes, so that 7 likes are worth 6 hours of freshness.
func Score(p *post.Post, now time.Time) float64 {
	age := now.Sub(p.CreatedAt).Hours()
	if age < 0 {
		age = 0
	}
	return -age + 2*math.Log2(1+float64(p.Likes))
}

func (s *Service) celebrities(ctx context.Context, following []shard.ID) ([]shard.ID, error) {
	c := s.Timelines.Redis
	members := make([]string, len(following))
	for i, f := range following {
		members[i] = f.String()
	}
	// The celebrity set changes rarely: client-side cached.
	flags, err := c.DoCache(ctx, c.B().Smismember().Key(celebritiesKey).Member(members...).Cache(), 10*time.Second).AsIntSlice()
	if err != nil {
		return nil, err
	}
	var out []shard.ID
	for i, f := range flags {
		if f == 1 {
			out = append(out, following[i])
			if len(out) == maxCelebs {
				break
			}
		}
	}
	return out, nil
}
