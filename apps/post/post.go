// Package post is the post service: create (the post lives on its author's shard and its
// post-created event commits with it), get, batch get, list by author with pagination, and likes.
// Posts the archiver moved to the cold table are still served, from there.
package post

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/scalestack/scalestack/apps/cache"
	"github.com/scalestack/scalestack/apps/events"
	"github.com/scalestack/scalestack/apps/httpx"
	"github.com/scalestack/scalestack/apps/store"
	"github.com/scalestack/scalestack/apps/telemetry"
	"github.com/scalestack/scalestack/pkg/shard"
)

// Post is a post.
type Post struct {
	ID        shard.ID  `json:"id"`
	Author    shard.ID  `json:"author_id"`
	Body      string    `json:"body"`
	Likes     int       `json:"likes"`
	CreatedAt time.Time `json:"created_at"`
}

// Service is the post service.
type Service struct {
	Shards *store.Shards
	IDs    *store.IDs
	Posts  *cache.Cache // post:{id}, userposts:{author}
	Notify func()
	// Created, when set, runs after a post commits (the author's own timeline gets it at once,
	// before the fan-out: an author sees their post in their feed immediately).
	Created func(ctx context.Context, p *Post)
}

// Routes registers the API.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.Handle("POST /v1/posts", httpx.Handle(s.create))
	mux.Handle("GET /v1/posts", httpx.Handle(s.batch))
	mux.Handle("GET /v1/posts/{id}", httpx.Handle(s.get))
	mux.Handle("PUT /v1/posts/{id}/likes/{user}", httpx.Handle(s.like))
	mux.Handle("DELETE /v1/posts/{id}/likes/{user}", httpx.Handle(s.unlike))
	mux.Handle("GET /v1/users/{id}/posts", httpx.Handle(s.byAuthor))
}

// CreateRequest is POST /v1/posts (the gateway sets the author from the token).
type CreateRequest struct {
	Author shard.ID `json:"author_id"`
	Body   string   `json:"body"`
}

// ValidateBody checks a post body.
func ValidateBody(body string) error {
	if len(body) > 2000 {
		return httpx.BadRequest("body must be 1 to 500 characters")
	}
	n := 0
	blank := true
	for _, c := range body {
		n++
		if c == 0 || (c < 0x20 && c != '\n' && c != '\t') {
			return httpx.BadRequest("body must not contain control characters")
		}
		if c != ' ' && c != '\n' && c != '\t' {
			blank = false
		}
	}
	if n == 0 || n > 500 || blank {
		return httpx.BadRequest("body must be 1 to 500 characters, not all blank")
	}
	return nil
}

func Key(id shard.ID) string       { return "post:" + id.String() }
func authorKey(id shard.ID) string { return "userposts:" + id.String() }
func (s *Service) notify() {
	if s.Notify != nil {
		s.Notify()
	}
}

func (s *Service) create(w http.ResponseWriter, r *http.Request) error {
	var req CreateRequest
	if err := httpx.DecodeJSON(w, r, 0, &req); err != nil {
		return err
	}
	if req.Author == 0 {
		return httpx.BadRequest("author_id is required")
	}
	if err := ValidateBody(req.Body); err != nil {
		return err
	}
	ctx := r.Context()
	db, err := s.Shards.Shard(req.Author.Logical())
	if err != nil {
		return httpx.BadRequest("author_id %s is not a user", req.Author)
	}
	telemetry.Annotate(ctx, telemetry.UserID(int64(req.Author)), telemetry.Shard(db.Index))
	var p *Post
	for attempt := 0; ; attempt++ {
		p, err = s.insert(ctx, db, req)
		if err == nil || !store.IsDuplicate(err) || attempt == 2 {
			break
		}
	}
	if err != nil {
		// A primary that is gone or read-only (a failover in progress) is a 503 naming the shard.
		return store.Unavailable(ctx, db, err)
	}
	s.notify()
	if s.Created != nil {
		s.Created(ctx, p)
	}
	s.Shards.MarkWrite(ctx, req.Author)
	_ = s.Posts.Invalidate(ctx, authorKey(req.Author))
	httpx.WriteJSON(w, http.StatusCreated, p)
	return nil
}

func (s *Service) insert(ctx context.Context, db *store.DB, req CreateRequest) (*Post, error) {
	tx, err := db.Primary.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	id, err := s.IDs.Next(ctx, tx, req.Author.Logical())
	if err != nil {
		return nil, err
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM users WHERE id = ?", int64(req.Author)).Scan(&n); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, httpx.BadRequest("author_id %s is not a user", req.Author)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	if _, err := tx.ExecContext(ctx, "INSERT INTO posts (id, author_id, body, created_at) VALUES (?, ?, ?, ?)",
		int64(id), int64(req.Author), req.Body, now); err != nil {
		return nil, err
	}
	if _, err := events.Enqueue(ctx, tx, s.IDs, events.TopicPostCreated, req.Author, "PostCreated", events.PostCreated{Post: id}); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return &Post{ID: id, Author: req.Author, Body: req.Body, CreatedAt: now}, nil
}

// Load reads a post from the hot table, then the archive.
func Load(ctx context.Context, q *sql.DB, id shard.ID) (*Post, error) {
	var p Post
	var author int64
	for _, table := range []string{"posts", "posts_archive"} {
		err := q.QueryRowContext(ctx, "SELECT id, author_id, body, likes, created_at FROM "+table+" WHERE id = ?", int64(id)).
			Scan(&p.ID, &author, &p.Body, &p.Likes, &p.CreatedAt)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		p.Author = shard.ID(author)
		return &p, err
	}
	return nil, sql.ErrNoRows
}

// loadJSON reads a post from its shard as the cache stores it.
func (s *Service) loadJSON(ctx context.Context, id shard.ID) ([]byte, error) {
	db, err := s.Shards.Shard(id.Logical())
	if err != nil {
		return nil, cache.ErrNotFound
	}
	var p *Post
	read := func(q *sql.DB) error { p, err = Load(ctx, q, id); return err }
	err = s.Shards.ReadShard(ctx, db, id, read)
	if errors.Is(err, sql.ErrNoRows) {
		err = read(db.Primary) // the replica may lag: the primary decides before a miss is cached
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, cache.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(p)
}

// loadManyJSON reads posts from their shards, one query per shard and table: replicas first, then
// the primary for what they lack (it decides before a miss is cached), then the archive.
func (s *Service) loadManyJSON(ctx context.Context, ids []shard.ID) ([][]byte, error) {
	found := map[shard.ID]*Post{}
	byShard := map[*store.DB][]shard.ID{}
	for _, id := range ids {
		if db, err := s.Shards.Shard(id.Logical()); err == nil {
			byShard[db] = append(byShard[db], id)
		}
	}
	query := func(q *sql.DB, table string, want []shard.ID) error {
		args := make([]any, 0, len(want))
		for _, id := range want {
			if found[id] == nil {
				args = append(args, int64(id))
			}
		}
		if len(args) == 0 {
			return nil
		}
		rows, err := q.QueryContext(ctx, "SELECT id, author_id, body, likes, created_at FROM "+table+
			" WHERE id IN (?"+strings.Repeat(",?", len(args)-1)+")", args...)
		if err != nil {
			return err
		}
		defer func() { _ = rows.Close() }()
		for rows.Next() {
			p := &Post{}
			var author int64
			if err := rows.Scan(&p.ID, &author, &p.Body, &p.Likes, &p.CreatedAt); err != nil {
				return err
			}
			p.Author = shard.ID(author)
			found[p.ID] = p
		}
		return rows.Err()
	}
	for db, want := range byShard {
		if err := s.Shards.ReadShard(ctx, db, 0, func(q *sql.DB) error { return query(q, "posts", want) }); err != nil {
			return nil, err
		}
		for _, step := range []struct {
			q     *sql.DB
			table string
		}{{db.Primary, "posts"}, {db.Primary, "posts_archive"}} {
			if err := query(step.q, step.table, want); err != nil {
				return nil, err
			}
		}
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		if p := found[id]; p != nil {
			b, err := json.Marshal(p)
			if err != nil {
				return nil, err
			}
			out[i] = b
		}
	}
	return out, nil
}

// Get returns a post through the cache.
func (s *Service) Get(ctx context.Context, id shard.ID) (*Post, error) {
	b, err := s.Posts.Get(ctx, Key(id), func(ctx context.Context) ([]byte, error) { return s.loadJSON(ctx, id) })
	if errors.Is(err, cache.ErrNotFound) {
		return nil, httpx.NotFound("post %s does not exist", id)
	}
	if err != nil {
		return nil, err
	}
	var p Post
	return &p, json.Unmarshal(b, &p)
}

// GetManyRaw returns the JSON of the posts that exist among ids, in ids' order, in one cache
// round trip.
func (s *Service) GetManyRaw(ctx context.Context, ids []shard.ID) ([][]byte, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = Key(id)
	}
	vals, err := s.Posts.GetMany(ctx, keys, func(ctx context.Context, missing []int) ([][]byte, error) {
		want := make([]shard.ID, len(missing))
		for j, i := range missing {
			want[j] = ids[i]
		}
		return s.loadManyJSON(ctx, want)
	})
	if err != nil {
		return nil, err
	}
	found := vals[:0]
	for _, v := range vals {
		if v != nil {
			found = append(found, v)
		}
	}
	return found, nil
}

// GetMany returns the posts that exist among ids, in ids' order.
func (s *Service) GetMany(ctx context.Context, ids []shard.ID) ([]*Post, error) {
	raw, err := s.GetManyRaw(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*Post, len(raw))
	for i, b := range raw {
		out[i] = &Post{}
		if err := json.Unmarshal(b, out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// WriteRawList writes {"<field>":[raw...]<extra>} without decoding the cached values.
func WriteRawList(w http.ResponseWriter, field string, raw [][]byte, extra string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	buf := make([]byte, 0, 64+len(raw)*256)
	buf = append(buf, `{"`+field+`":[`...)
	for i, b := range raw {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, b...)
	}
	buf = append(buf, ']')
	buf = append(buf, extra...)
	buf = append(buf, "}\n"...)
	_, _ = w.Write(buf)
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathID(r, "id")
	if err != nil {
		return err
	}
	p, err := s.Get(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, p)
	return nil
}

// MaxBatch bounds a batch get.
const MaxBatch = 200

func (s *Service) batch(w http.ResponseWriter, r *http.Request) error {
	ids, err := httpx.QueryIDs(r, "ids", MaxBatch)
	if err != nil {
		return err
	}
	raw, err := s.GetManyRaw(r.Context(), ids)
	if err != nil {
		return err
	}
	WriteRawList(w, "posts", raw, "")
	return nil
}

// firstPage is how many of an author's newest post IDs are cached.
const firstPage = 50

// ListByAuthor returns up to limit of author's post IDs older than before (0: the newest).
func (s *Service) ListByAuthor(ctx context.Context, author, before shard.ID, limit int) ([]shard.ID, error) {
	if before == 0 && limit <= firstPage {
		b, err := s.Posts.Get(ctx, authorKey(author), func(ctx context.Context) ([]byte, error) {
			ids, err := s.queryByAuthor(ctx, author, 0, firstPage)
			if err != nil {
				return nil, err
			}
			return json.Marshal(ids)
		})
		if err != nil {
			return nil, err
		}
		var ids []shard.ID
		if err := json.Unmarshal(b, &ids); err != nil {
			return nil, err
		}
		if len(ids) > limit {
			ids = ids[:limit]
		}
		return ids, nil
	}
	return s.queryByAuthor(ctx, author, before, limit)
}

func (s *Service) queryByAuthor(ctx context.Context, author, before shard.ID, limit int) ([]shard.ID, error) {
	if before == 0 {
		before = shard.ID(1<<63 - 1)
	}
	ids := []shard.ID{}
	err := s.Shards.Read(ctx, author, func(db *sql.DB) error {
		ids = ids[:0]
		// Hot rows first; the archive only when the hot table runs out.
		for _, table := range []string{"posts", "posts_archive"} {
			rows, err := db.QueryContext(ctx, "SELECT id FROM "+table+" WHERE author_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
				int64(author), int64(before), limit-len(ids))
			if err != nil {
				return err
			}
			for rows.Next() {
				var v int64
				if err := rows.Scan(&v); err != nil {
					_ = rows.Close()
					return err
				}
				ids = append(ids, shard.ID(v))
				before = shard.ID(v)
			}
			if err := rows.Close(); err != nil {
				return err
			}
			if len(ids) >= limit {
				break
			}
		}
		return nil
	})
	return ids, err
}

func (s *Service) byAuthor(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r, "before", 20, 100)
	if err != nil {
		return err
	}
	ids, err := s.ListByAuthor(r.Context(), page.ID, page.Cursor, page.Limit)
	if err != nil {
		return err
	}
	raw, err := s.GetManyRaw(r.Context(), ids)
	if err != nil {
		return err
	}
	extra := ""
	if len(ids) == page.Limit {
		extra = `,"next":"` + ids[len(ids)-1].String() + `"`
	}
	WriteRawList(w, "posts", raw, extra)
	return nil
}

// like records that a user likes a post (once: liking again changes nothing) and answers the post.
func (s *Service) like(w http.ResponseWriter, r *http.Request) error {
	return s.setLike(w, r, true)
}

// unlike takes a user's like of a post back (a post they did not like is left as it is).
func (s *Service) unlike(w http.ResponseWriter, r *http.Request) error {
	return s.setLike(w, r, false)
}

func (s *Service) setLike(w http.ResponseWriter, r *http.Request, like bool) error {
	id, err := httpx.PathID(r, "id")
	if err != nil {
		return err
	}
	by, err := httpx.PathID(r, "user")
	if err != nil {
		return err
	}
	ctx := r.Context()
	db, err := s.Shards.Shard(id.Logical())
	if err != nil {
		return httpx.NotFound("post %s does not exist", id)
	}
	tx, err := db.Primary.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var exists int
	if err := tx.QueryRowContext(ctx, "SELECT 1 FROM posts WHERE id = ? FOR UPDATE", int64(id)).Scan(&exists); errors.Is(err, sql.ErrNoRows) {
		return httpx.NotFound("post %s does not exist (or is archived)", id)
	} else if err != nil {
		return err
	}
	stmt, delta := "INSERT IGNORE INTO post_likes (post_id, user_id) VALUES (?, ?)", "likes + 1"
	if !like {
		stmt, delta = "DELETE FROM post_likes WHERE post_id = ? AND user_id = ?", "GREATEST(likes, 1) - 1"
	}
	res, err := tx.ExecContext(ctx, stmt, int64(id), int64(by))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		if _, err := tx.ExecContext(ctx, "UPDATE posts SET likes = "+delta+" WHERE id = ?", int64(id)); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.Shards.MarkWrite(ctx, id)
	_ = s.Posts.Invalidate(ctx, Key(id))
	p, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, p)
	return nil
}
