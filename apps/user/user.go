// Package user is the user service: signup (the user lands on the shard the shard map's weights
// pick and gets a token at once; everything else happens asynchronously from the user-created
// event), login, profiles, follows (stored for both directions, each on its owner's shard) and
// suggestions.
package user

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/scalestack/scalestack/apps/auth"
	"github.com/scalestack/scalestack/apps/cache"
	"github.com/scalestack/scalestack/apps/events"
	"github.com/scalestack/scalestack/apps/feed"
	"github.com/scalestack/scalestack/apps/follows"
	"github.com/scalestack/scalestack/apps/httpx"
	"github.com/scalestack/scalestack/apps/post"
	"github.com/scalestack/scalestack/apps/store"
	"github.com/scalestack/scalestack/apps/telemetry"
	"github.com/scalestack/scalestack/pkg/shard"
)

// MaxFollowing bounds the following list a feed read considers.
const MaxFollowing = 5000

// Profile is a user's public view.
type Profile struct {
	ID          shard.ID  `json:"id"`
	Handle      string    `json:"handle"`
	DisplayName string    `json:"display_name"`
	Bio         string    `json:"bio"`
	Followers   int       `json:"followers"`
	Following   int       `json:"following"`
	CreatedAt   time.Time `json:"created_at"`
	// UpdatedAt is when the profile last changed (its counts too): the cached copy's version.
	UpdatedAt time.Time `json:"updated_at"`
}

// ProfileVersion reads a stored profile's version (its updated_at, in milliseconds).
func ProfileVersion(b []byte) (int64, bool) {
	var p struct {
		UpdatedAt time.Time `json:"updated_at"`
	}
	if json.Unmarshal(b, &p) != nil || p.UpdatedAt.IsZero() {
		return 0, false
	}
	return p.UpdatedAt.UnixMilli(), true
}

// Service is the user service.
type Service struct {
	Shards *store.Shards
	IDs    *store.IDs
	Tokens *auth.Tokens
	// Hasher hashes and checks passwords in a bounded pool (signup and login).
	Hasher    *auth.Hasher
	Profiles  *cache.Cache // profile:{id}
	Following *cache.Cache // following:{id}
	// Notify wakes the outbox relay after a commit (may be nil).
	Notify func()
}

// Routes registers the service's API on mux.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.Handle("POST /v1/users", httpx.Handle(s.signup))
	mux.Handle("POST /v1/login", httpx.Handle(s.login))
	mux.Handle("GET /v1/users", httpx.Handle(s.batch))
	mux.Handle("GET /v1/users/{id}", httpx.Handle(s.get))
	mux.Handle("GET /v1/handles/{handle}", httpx.Handle(s.byHandle))
	mux.Handle("PATCH /v1/users/{id}", httpx.Handle(s.update))
	mux.Handle("PUT /v1/users/{id}/following/{target}", httpx.Handle(s.follow))
	mux.Handle("DELETE /v1/users/{id}/following/{target}", httpx.Handle(s.unfollow))
	mux.Handle("GET /v1/users/{id}/following", httpx.Handle(s.listFollowing))
	mux.Handle("GET /v1/users/{id}/followers", httpx.Handle(s.listFollowers))
	mux.Handle("GET /v1/users/{id}/suggestions", httpx.Handle(s.suggestions))
}

// SignupRequest is POST /v1/users.
type SignupRequest struct {
	Handle      string `json:"handle"`
	Email       string `json:"email"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
}

// TokenResponse answers signup and login.
type TokenResponse struct {
	ID     shard.ID `json:"id"`
	Handle string   `json:"handle"`
	Token  string   `json:"token"`
}

var handleRE = regexp.MustCompile(`^[a-z0-9_]{3,32}$`)

// ValidateSignup checks a signup request and names the first bad field.
func ValidateSignup(r *SignupRequest) error {
	if !handleRE.MatchString(r.Handle) {
		return httpx.BadRequest("handle must be 3 to 32 characters of a-z, 0-9 and _")
	}
	if len(r.Email) > 254 {
		return httpx.BadRequest("email must be at most 254 characters")
	}
	if a, err := mail.ParseAddress(r.Email); err != nil || a.Address != r.Email || a.Name != "" {
		return httpx.BadRequest("email must be a plain address like name@example.com")
	}
	if n := utf8.RuneCountInString(r.Password); n < 8 || n > 128 || !utf8.ValidString(r.Password) {
		return httpx.BadRequest("password must be 8 to 128 characters")
	}
	return validateText("display_name", r.DisplayName, 1, 64)
}

func validateText(field, s string, min, max int) error {
	if !utf8.ValidString(s) {
		return httpx.BadRequest("%s must be valid UTF-8", field)
	}
	n := utf8.RuneCountInString(s)
	if n < min || n > max {
		return httpx.BadRequest("%s must be %d to %d characters", field, min, max)
	}
	if min > 0 && strings.TrimSpace(s) == "" {
		return httpx.BadRequest("%s must not be blank", field)
	}
	for _, c := range s {
		if unicode.IsControl(c) && c != '\n' {
			return httpx.BadRequest("%s must not contain control characters", field)
		}
	}
	return nil
}

func (s *Service) notify() {
	if s.Notify != nil {
		s.Notify()
	}
}

// hashError answers a full argon2id line with 503 and Retry-After (the client may retry in a
// moment; the other endpoints are unaffected).
func hashError(err error) error {
	if errors.Is(err, auth.ErrHasherBusy) {
		return httpx.Unavailable("too many sign-ups and logins at once; retry in a moment").WithRetryAfter(time.Second)
	}
	return err
}

func (s *Service) signup(w http.ResponseWriter, r *http.Request) error {
	var req SignupRequest
	if err := httpx.DecodeJSON(w, r, 0, &req); err != nil {
		return err
	}
	req.Handle = strings.ToLower(req.Handle)
	if err := ValidateSignup(&req); err != nil {
		return err
	}
	ctx := r.Context()
	hash, err := s.Hasher.Hash(ctx, req.Password)
	if err != nil {
		return hashError(err)
	}
	handleDB, err := s.Shards.Shard(store.HandleShard(req.Handle))
	if err != nil {
		return err
	}
	var id shard.ID
	down := map[int]bool{} // physical shards that did not answer this signup
	for attempt := 0; ; attempt++ {
		logical := s.place(down)
		home, herr := s.Shards.Shard(logical)
		if herr != nil {
			return herr
		}
		// Minted on the new user's own shard (unique across processes) before the handle is
		// claimed with it on the handle's shard. A home shard whose primary does not answer (down,
		// or fenced for a switchover) is a 503 naming it; the user is placed on another shard.
		if id, err = s.IDs.Next(ctx, home.Primary, logical); err != nil {
			if err = store.Unavailable(ctx, home, err); unavailable(err) && attempt < 2 {
				down[home.Index] = true
				continue
			}
			return err
		}
		// Claim the handle first: it is unique across shards, the user row is not.
		_, err = handleDB.Primary.ExecContext(ctx, "INSERT INTO handles (handle, user_id) VALUES (?, ?)", req.Handle, int64(id))
		if store.IsDuplicate(err) {
			return httpx.Conflict("handle %q is taken", req.Handle)
		}
		if err != nil {
			return store.Unavailable(ctx, handleDB, err)
		}
		err = s.createUser(ctx, id, &req, hash)
		if err == nil {
			break
		}
		// Undo the claim (only ours) so that the handle is free again.
		_, _ = handleDB.Primary.ExecContext(context.WithoutCancel(ctx), "DELETE FROM handles WHERE handle = ? AND user_id = ?", req.Handle, int64(id))
		if attempt == 2 || !store.IsDuplicate(err) && !unavailable(err) {
			return err
		}
		if unavailable(err) {
			down[home.Index] = true
		}
		// A duplicate user row (only after a lossy failover forgot minted IDs), or a home shard
		// that stopped answering: take another ID, on another placement.
	}
	telemetry.Annotate(ctx, telemetry.UserID(int64(id)))
	s.Shards.MarkWrite(ctx, id)
	s.notify()
	token, err := s.Tokens.Issue(id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, TokenResponse{ID: id, Handle: req.Handle, Token: token})
	return nil
}

func (s *Service) createUser(ctx context.Context, id shard.ID, req *SignupRequest, hash string) error {
	db, tx, err := s.Shards.Begin(ctx, id)
	if err != nil {
		return err
	}
	telemetry.Annotate(ctx, telemetry.Shard(db.Index))
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, handle, email, password_hash, display_name, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, NOW(3), NOW(3))`, int64(id), req.Handle, req.Email, hash, req.DisplayName); err != nil {
		return store.Unavailable(ctx, db, err)
	}
	if _, err := events.Enqueue(ctx, tx, s.IDs, events.TopicUserCreated, id, "UserCreated",
		events.UserCreated{Handle: req.Handle, Email: req.Email, DisplayName: req.DisplayName}); err != nil {
		return store.Unavailable(ctx, db, err)
	}
	return store.Unavailable(ctx, db, tx.Commit())
}

// place picks a new user's logical shard by the map's weights, away from the physical shards in
// down when it can (a bounded number of draws: with every shard down, it places anyway).
func (s *Service) place(down map[int]bool) int {
	r := s.Shards.Router()
	logical := r.Place(nil)
	for range 32 {
		if p, err := r.Route(logical); err != nil || !down[p.Index] {
			return logical
		}
		logical = r.Place(nil)
	}
	return logical
}

// unavailable reports a 503 made by store.Unavailable: a shard whose primary does not answer.
func unavailable(err error) bool {
	var he *httpx.Error
	return errors.As(err, &he) && he.Status == http.StatusServiceUnavailable
}

// LoginRequest is POST /v1/login.
type LoginRequest struct {
	Handle   string `json:"handle"`
	Password string `json:"password"`
}

// dummyHash makes a login for an unknown handle cost what a real one costs.
var dummyHash, _ = auth.HashPassword("scalestack-dummy-password", auth.DefaultHashParams)

func (s *Service) login(w http.ResponseWriter, r *http.Request) error {
	var req LoginRequest
	if err := httpx.DecodeJSON(w, r, 0, &req); err != nil {
		return err
	}
	req.Handle = strings.ToLower(req.Handle)
	if !handleRE.MatchString(req.Handle) || len(req.Password) > 512 {
		return httpx.Unauthorized("invalid handle or password")
	}
	ctx := r.Context()
	id, hash, err := s.lookupCredentials(ctx, req.Handle)
	if err != nil {
		return err
	}
	if id == 0 {
		if _, err := s.Hasher.Check(ctx, req.Password, dummyHash); err != nil {
			return hashError(err)
		}
		return httpx.Unauthorized("invalid handle or password")
	}
	ok, err := s.Hasher.Check(ctx, req.Password, hash)
	if err != nil {
		return hashError(err)
	}
	if !ok {
		return httpx.Unauthorized("invalid handle or password")
	}
	token, err := s.Tokens.Issue(id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, TokenResponse{ID: id, Handle: req.Handle, Token: token})
	return nil
}

func (s *Service) lookupCredentials(ctx context.Context, handle string) (shard.ID, string, error) {
	hdb, err := s.Shards.Shard(store.HandleShard(handle))
	if err != nil {
		return 0, "", err
	}
	var raw int64
	if err := hdb.Primary.QueryRowContext(ctx, "SELECT user_id FROM handles WHERE handle = ?", handle).Scan(&raw); errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	} else if err != nil {
		return 0, "", err
	}
	id := shard.ID(raw)
	db, err := s.Shards.Shard(id.Logical())
	if err != nil {
		return 0, "", err
	}
	var hash string
	if err := db.Primary.QueryRowContext(ctx, "SELECT password_hash FROM users WHERE id = ?", raw).Scan(&hash); errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil // a claim whose user was never created
	} else if err != nil {
		return 0, "", err
	}
	return id, hash, nil
}

// HandleResponse is GET /v1/handles/{handle}: whose handle it is.
type HandleResponse struct {
	ID shard.ID `json:"id"`
}

// byHandle resolves a handle to its user (404 when nobody has it).
func (s *Service) byHandle(w http.ResponseWriter, r *http.Request) error {
	handle := strings.ToLower(r.PathValue("handle"))
	if !handleRE.MatchString(handle) {
		return httpx.BadRequest("handle must be 3-32 characters of a-z, 0-9 and _")
	}
	id, _, err := s.lookupCredentials(r.Context(), handle)
	if err != nil {
		return err
	}
	if id == 0 {
		return httpx.NotFound("nobody has the handle %q", handle)
	}
	httpx.WriteJSON(w, http.StatusOK, HandleResponse{ID: id})
	return nil
}

// ProfileKey is a profile's cache key.
func ProfileKey(id shard.ID) string { return "profile:" + id.String() }

func followingKey(id shard.ID) string { return "following:" + id.String() }

// GetProfile returns a user's profile through the cache.
func (s *Service) GetProfile(ctx context.Context, id shard.ID) (*Profile, error) {
	b, err := s.Profiles.Get(ctx, ProfileKey(id), func(ctx context.Context) ([]byte, error) {
		p, err := s.loadProfile(ctx, id)
		if err != nil {
			return nil, err
		}
		return json.Marshal(p)
	})
	if errors.Is(err, cache.ErrNotFound) {
		return nil, httpx.NotFound("user %s does not exist", id)
	}
	if err != nil {
		return nil, err
	}
	var p Profile
	return &p, json.Unmarshal(b, &p)
}

// readProfile reads p's profile (p.ID names it) from q.
func readProfile(ctx context.Context, q *sql.DB, p *Profile) error {
	return q.QueryRowContext(ctx, `SELECT u.handle, u.display_name, u.bio, u.created_at, u.updated_at,
		COALESCE(c.followers, 0), COALESCE(c.following, 0)
		FROM users u LEFT JOIN follow_counts c ON c.user_id = u.id WHERE u.id = ?`, int64(p.ID)).
		Scan(&p.Handle, &p.DisplayName, &p.Bio, &p.CreatedAt, &p.UpdatedAt, &p.Followers, &p.Following)
}

// refreshProfile writes id's profile, as its primary has it after a committed change, into the
// cache (unless a newer version is there already), so that the change does not cost every reader
// a miss; if that fails, the cached copy is deleted instead.
func (s *Service) refreshProfile(ctx context.Context, id shard.ID) error {
	err := func() error {
		db, err := s.Shards.Shard(id.Logical())
		if err != nil {
			return err
		}
		p := &Profile{ID: id}
		if err := readProfile(ctx, db.Primary, p); err != nil {
			return err
		}
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		return s.Profiles.SetIfNewer(ctx, ProfileKey(id), b, p.UpdatedAt.UnixMilli())
	}()
	if err != nil {
		return s.Profiles.Invalidate(ctx, ProfileKey(id))
	}
	return nil
}

func (s *Service) loadProfile(ctx context.Context, id shard.ID) (*Profile, error) {
	db, err := s.Shards.Shard(id.Logical())
	if err != nil {
		return nil, cache.ErrNotFound // an ID no shard owns is not a user
	}
	p := &Profile{ID: id}
	read := func(q *sql.DB) error { return readProfile(ctx, q, p) }
	err = s.Shards.ReadShard(ctx, db, id, read)
	if errors.Is(err, sql.ErrNoRows) {
		// A replica may not have the row yet: the primary decides before we cache a miss.
		err = read(db.Primary)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, cache.ErrNotFound
	}
	return p, err
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathID(r, "id")
	if err != nil {
		return err
	}
	b, err := s.Profiles.Get(r.Context(), ProfileKey(id), func(ctx context.Context) ([]byte, error) {
		p, err := s.loadProfile(ctx, id)
		if err != nil {
			return nil, err
		}
		return json.Marshal(p)
	})
	if errors.Is(err, cache.ErrNotFound) {
		return httpx.NotFound("user %s does not exist", id)
	}
	if err != nil {
		return err
	}
	httpx.WriteRaw(w, http.StatusOK, b)
	return nil
}

// MaxBatch bounds a batch read.
const MaxBatch = 100

func (s *Service) batch(w http.ResponseWriter, r *http.Request) error {
	ids, err := httpx.QueryIDs(r, "ids", MaxBatch)
	if err != nil {
		return err
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = ProfileKey(id)
	}
	vals, err := s.Profiles.GetMany(r.Context(), keys, func(ctx context.Context, missing []int) ([][]byte, error) {
		out := make([][]byte, len(missing))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for j, i := range missing {
			g.Go(func() error {
				p, err := s.loadProfile(gctx, ids[i])
				if errors.Is(err, cache.ErrNotFound) {
					return nil
				}
				if err != nil {
					return err
				}
				out[j], err = json.Marshal(p)
				return err
			})
		}
		return out, g.Wait()
	})
	if err != nil {
		return err
	}
	found := vals[:0]
	for _, v := range vals {
		if v != nil { // missing users are left out
			found = append(found, v)
		}
	}
	post.WriteRawList(w, "users", found, "")
	return nil
}

// UpdateRequest is PATCH /v1/users/{id}; absent fields are left alone.
type UpdateRequest struct {
	DisplayName *string `json:"display_name"`
	Bio         *string `json:"bio"`
}

func (s *Service) update(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathID(r, "id")
	if err != nil {
		return err
	}
	var req UpdateRequest
	if err := httpx.DecodeJSON(w, r, 0, &req); err != nil {
		return err
	}
	if req.DisplayName == nil && req.Bio == nil {
		return httpx.BadRequest("nothing to update: set display_name or bio")
	}
	if req.DisplayName != nil {
		if err := validateText("display_name", *req.DisplayName, 1, 64); err != nil {
			return err
		}
	}
	if req.Bio != nil {
		if err := validateText("bio", *req.Bio, 0, 280); err != nil {
			return err
		}
	}
	ctx := r.Context()
	db, err := s.Shards.Shard(id.Logical())
	if err != nil {
		return httpx.NotFound("user %s does not exist", id)
	}
	res, err := db.Primary.ExecContext(ctx, `UPDATE users SET display_name = COALESCE(?, display_name), bio = COALESCE(?, bio),
		updated_at = `+follows.NextUpdatedAt+` WHERE id = ?`, req.DisplayName, req.Bio, int64(id))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var exists int
		if err := db.Primary.QueryRowContext(ctx, "SELECT COUNT(*) FROM users WHERE id = ?", int64(id)).Scan(&exists); err != nil {
			return err
		}
		if exists == 0 {
			return httpx.NotFound("user %s does not exist", id)
		}
	}
	s.Shards.MarkWrite(ctx, id)
	if err := s.refreshProfile(ctx, id); err != nil {
		return err
	}
	p, err := s.GetProfile(ctx, id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, p)
	return nil
}

func (s *Service) exists(ctx context.Context, id shard.ID) (bool, error) {
	db, err := s.Shards.Shard(id.Logical())
	if err != nil {
		return false, nil
	}
	var n int
	err = db.Primary.QueryRowContext(ctx, "SELECT COUNT(*) FROM users WHERE id = ?", int64(id)).Scan(&n)
	return n > 0, err
}

func (s *Service) followPair(r *http.Request) (shard.ID, shard.ID, error) {
	id, err := httpx.PathID(r, "id")
	if err != nil {
		return 0, 0, err
	}
	target, err := httpx.PathID(r, "target")
	if err != nil {
		return 0, 0, err
	}
	if id == target {
		return 0, 0, httpx.BadRequest("a user cannot follow themselves")
	}
	for _, u := range []shard.ID{id, target} {
		ok, err := s.exists(r.Context(), u)
		if err != nil {
			return 0, 0, err
		}
		if !ok {
			return 0, 0, httpx.NotFound("user %s does not exist", u)
		}
	}
	return id, target, nil
}

// follow is PUT: following an already-followed user changes nothing.
func (s *Service) follow(w http.ResponseWriter, r *http.Request) error {
	id, target, err := s.followPair(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	_, tx, err := s.Shards.Begin(ctx, id)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	added, err := follows.AddFollowing(ctx, tx, id, target)
	if err != nil {
		return err
	}
	if added {
		// The worker writes the followers row too (the repair path), and backfills the timeline.
		if _, err := events.Enqueue(ctx, tx, s.IDs, events.TopicFollowCreated, id, "FollowCreated", events.FollowCreated{Followee: target}); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.notify()
	// The other direction, on the followee's shard. If this fails the follow-created event's
	// consumer writes it.
	followerAdded, err := follows.AddFollower(ctx, s.Shards, target, id)
	if err != nil {
		slog.WarnContext(ctx, "followers row deferred to the worker", "followee", target, "error", err)
	}
	// A follow of an already-followed user changed nothing: the cached profiles (their counts),
	// following list and feed page stay.
	if added || followerAdded || err != nil {
		s.afterFollowChange(ctx, id, target)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) afterFollowChange(ctx context.Context, id, target shard.ID) {
	s.Shards.MarkWrite(ctx, id)
	s.Shards.MarkWrite(ctx, target)
	// The counts changed on both profiles: refreshed, not deleted, so that the next readers of
	// two often-read profiles do not all miss.
	_ = s.refreshProfile(ctx, id)
	_ = s.refreshProfile(ctx, target)
	// The follower's feed page (feed.PageKey, kept by the gateway) goes with the following list:
	// the next feed read is built with the new list.
	_ = s.Following.Invalidate(ctx, followingKey(id), feed.PageKey(id))
}

func (s *Service) unfollow(w http.ResponseWriter, r *http.Request) error {
	id, target, err := s.followPair(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	removed, err := follows.Remove(ctx, s.Shards, id, target)
	if removed {
		s.afterFollowChange(ctx, id, target)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// GetFollowing returns whom id follows (at most MaxFollowing, newest first), through the cache.
func (s *Service) GetFollowing(ctx context.Context, id shard.ID) ([]shard.ID, error) {
	b, err := s.Following.Get(ctx, followingKey(id), func(ctx context.Context) ([]byte, error) {
		var ids []shard.ID
		err := s.Shards.Read(ctx, id, func(db *sql.DB) (err error) {
			ids, err = store.QueryIDs(ctx, db, "SELECT followee_id FROM following WHERE user_id = ? ORDER BY created_at DESC LIMIT ?", int64(id), MaxFollowing)
			return err
		})
		if err != nil {
			return nil, err
		}
		return json.Marshal(ids)
	})
	if err != nil {
		return nil, err
	}
	var ids []shard.ID
	return ids, json.Unmarshal(b, &ids)
}

func (s *Service) listFollowing(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathID(r, "id")
	if err != nil {
		return err
	}
	ids, err := s.GetFollowing(r.Context(), id)
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []shard.ID{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"ids": ids})
	return nil
}

func (s *Service) listFollowers(w http.ResponseWriter, r *http.Request) error {
	page, err := httpx.ParsePage(r, "after", 100, 1000)
	if err != nil {
		return err
	}
	ids, err := follows.Followers(r.Context(), s.Shards, page.ID, page.Cursor, page.Limit)
	if err != nil {
		return err
	}
	out := map[string]any{"ids": ids}
	if len(ids) == page.Limit {
		out["next"] = ids[len(ids)-1]
	}
	if ids == nil {
		out["ids"] = []shard.ID{}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Service) suggestions(w http.ResponseWriter, r *http.Request) error {
	id, err := httpx.PathID(r, "id")
	if err != nil {
		return err
	}
	ctx := r.Context()
	following, err := s.GetFollowing(ctx, id)
	if err != nil {
		return err
	}
	skip := map[shard.ID]bool{id: true}
	for _, f := range following {
		skip[f] = true
	}
	var all []shard.ID
	err = s.Shards.Read(ctx, id, func(db *sql.DB) (err error) {
		all, err = store.QueryIDs(ctx, db, "SELECT suggested_id FROM suggestions WHERE user_id = ? ORDER BY score DESC, suggested_id LIMIT 50", int64(id))
		return err
	})
	if err != nil {
		return fmt.Errorf("suggestions of %s: %w", id, err)
	}
	ids := []shard.ID{}
	for _, v := range all {
		if !skip[v] {
			ids = append(ids, v)
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"ids": ids})
	return nil
}
