// Package worker holds the event consumers: cold-start recommendations and the welcome email on
// user-created, timeline fan-out on post-created, and the followee side of a follow (plus a
// timeline backfill) on follow-created. Each is idempotent at its sink, so redelivery after a
// crash changes nothing.
package worker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/smtp"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/scalestack/scalestack/apps/events"
	"github.com/scalestack/scalestack/apps/feed"
	"github.com/scalestack/scalestack/apps/follows"
	"github.com/scalestack/scalestack/apps/store"
	"github.com/scalestack/scalestack/apps/user"
	"github.com/scalestack/scalestack/pkg/shard"
)

// Consumer names (consumer groups and dedupe keys).
const (
	GroupRecommend = "worker-recommend"
	GroupWelcome   = "worker-welcome-email"
	GroupFanOut    = "worker-fanout"
	GroupFollow    = "worker-follow"
	popularKey     = "popular"
)

// Mailer sends one email; messageID is stable per event so a receiver can drop a duplicate.
type Mailer interface {
	Send(ctx context.Context, to, subject, body, messageID string) error
}

// SMTP sends mail through an SMTP relay.
type SMTP struct {
	Addr, From string
}

// Send implements Mailer.
func (m *SMTP) Send(ctx context.Context, to, subject, body, messageID string) error {
	if strings.ContainsAny(to+subject+messageID, "\r\n") {
		return events.Permanent(errors.New("header injection attempt"))
	}
	msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: %s\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		m.From, to, subject, messageID, time.Now().UTC().Format(time.RFC1123Z), strings.ReplaceAll(body, "\n", "\r\n"))
	done := make(chan error, 1)
	go func() { done <- smtp.SendMail(m.Addr, nil, m.From, []string{to}, []byte(msg)) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return errors.New("smtp: timed out")
	}
}

// Worker applies events.
type Worker struct {
	Shards    *store.Shards
	Timelines *feed.Timelines
	Redis     rueidis.Client
	// Mailer may be nil: welcome emails are then skipped (and counted as such in the logs).
	Mailer Mailer
	// CelebrityFollowers is the follower count from which an author's posts are merged at read
	// time instead of fanned out.
	CelebrityFollowers int
}

// Recommend writes cold-start suggestions for a new user: the most-followed users, then the
// newest users of the same shard. Exactly once: the claim and the rows share a transaction.
func (w *Worker) Recommend(ctx context.Context, ev *events.Event) error {
	if _, err := events.DataAs[events.UserCreated](ev); err != nil {
		return err
	}
	db, err := w.Shards.Shard(ev.User.Logical())
	if err != nil {
		return events.Permanent(err)
	}
	popular, err := w.Redis.Do(ctx, w.Redis.B().Zrevrange().Key(popularKey).Start(0).Stop(19).Build()).AsStrSlice()
	if err != nil {
		return err
	}
	type sugg struct {
		id    int64
		score int
	}
	var out []sugg
	for i, p := range popular {
		if id, err := shard.ParseID(p); err == nil && id != ev.User {
			out = append(out, sugg{int64(id), 100 - i})
		}
	}
	// Then the newest users of every shard (a few each): a new network has no popular users yet.
	for _, sdb := range w.Shards.All() {
		rows, err := sdb.Replicas.QueryContext(ctx, "SELECT id FROM users WHERE id <> ? ORDER BY id DESC LIMIT 5", int64(ev.User))
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				_ = rows.Close()
				return err
			}
			out = append(out, sugg{id, 1})
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}
	tx, err := db.Primary.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if ok, err := events.Claim(ctx, tx, GroupRecommend, ev.ID); err != nil || !ok {
		return err
	}
	for _, s := range out {
		if _, err := tx.ExecContext(ctx, "INSERT IGNORE INTO suggestions (user_id, suggested_id, score) VALUES (?, ?, ?)", int64(ev.User), s.id, s.score); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Welcome sends the welcome email once per user-created event: it skips an event already
// claimed, and claims only after the send, so a failed send is retried. A crash between the send
// and the claim is the one window for a duplicate; its Message-ID is the same, so the mail system
// can drop it.
func (w *Worker) Welcome(ctx context.Context, ev *events.Event) error {
	data, err := events.DataAs[events.UserCreated](ev)
	if err != nil {
		return err
	}
	db, err := w.Shards.Shard(ev.User.Logical())
	if err != nil {
		return events.Permanent(err)
	}
	if done, err := events.Processed(ctx, db.Primary, GroupWelcome, ev.ID); err != nil || done {
		return err
	}
	if w.Mailer == nil {
		slog.InfoContext(ctx, "no SMTP relay configured; welcome email skipped", "user_id", ev.User)
	} else {
		body := fmt.Sprintf("Hello %s,\n\nwelcome to scalestack! Your handle is @%s.\n", data.DisplayName, data.Handle)
		if err := w.Mailer.Send(ctx, data.Email, "Welcome to scalestack", body, fmt.Sprintf("<welcome-%s@scalestack>", ev.ID)); err != nil {
			return err
		}
	}
	tx, err := db.Primary.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := events.Claim(ctx, tx, GroupWelcome, ev.ID); err != nil {
		return err
	}
	return tx.Commit()
}

func (w *Worker) followerCount(ctx context.Context, u shard.ID) (int, error) {
	db, err := w.Shards.Shard(u.Logical())
	if err != nil {
		return 0, events.Permanent(err)
	}
	return follows.FollowerCount(ctx, db.Primary, u)
}

// FanOut pushes a new post into its author's and each follower's timeline, or, for a celebrity,
// into the author's recent-posts list that feeds merge at read time. ZADD makes it idempotent.
func (w *Worker) FanOut(ctx context.Context, ev *events.Event) error {
	data, err := events.DataAs[events.PostCreated](ev)
	if err != nil {
		return err
	}
	author := ev.User
	n, err := w.followerCount(ctx, author)
	if err != nil {
		return err
	}
	if err := w.Timelines.Push(ctx, []shard.ID{author}, data.Post); err != nil {
		return err
	}
	if n >= w.CelebrityFollowers {
		return w.Timelines.PushAuthor(ctx, author, data.Post)
	}
	var after shard.ID
	for {
		page, err := follows.Followers(ctx, w.Shards, author, after, 1000)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		if err := w.Timelines.Push(ctx, page, data.Post); err != nil {
			return err
		}
		after = page[len(page)-1]
	}
}

// Follow writes the followee side of a follow (the user service tries first; this repairs a
// failure), counts the followee's popularity once, backfills the follower's timeline with the
// followee's recent posts, and promotes the followee to celebrity when it crosses the bound.
func (w *Worker) Follow(ctx context.Context, ev *events.Event) error {
	data, err := events.DataAs[events.FollowCreated](ev)
	if err != nil {
		return err
	}
	follower, followee := ev.User, data.Followee
	repaired, err := follows.AddFollower(ctx, w.Shards, followee, follower)
	if err != nil {
		return err
	}
	db, err := w.Shards.Shard(followee.Logical())
	if err != nil {
		return events.Permanent(err)
	}
	recent, err := recentPosts(ctx, db.Primary, followee, 50)
	if err != nil {
		return err
	}
	n, err := w.followerCount(ctx, followee)
	if err != nil {
		return err
	}
	if n >= w.CelebrityFollowers {
		if err := w.Timelines.MarkCelebrity(ctx, followee); err != nil {
			return err
		}
		for _, p := range recent {
			if err := w.Timelines.PushAuthor(ctx, followee, p); err != nil {
				return err
			}
		}
	} else {
		for i, p := range recent {
			if i == 20 {
				break
			}
			if err := w.Timelines.Push(ctx, []shard.ID{follower}, p); err != nil {
				return err
			}
		}
	}
	if repaired {
		// The user service could not write the followee's side; now that its count moved, the
		// cached profile (refreshed by the user service only when it wrote) goes.
		_ = w.Redis.Do(ctx, w.Redis.B().Del().Key(user.ProfileKey(followee)).Build()).Error()
	}
	tx, err := db.Primary.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	claimed, err := events.Claim(ctx, tx, GroupFollow, ev.ID)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if claimed {
		return w.Redis.Do(ctx, w.Redis.B().Zincrby().Key(popularKey).Increment(1).Member(followee.String()).Build()).Error()
	}
	return nil
}

func recentPosts(ctx context.Context, db *sql.DB, author shard.ID, n int) ([]shard.ID, error) {
	return store.QueryIDs(ctx, db, "SELECT id FROM posts WHERE author_id = ? ORDER BY id DESC LIMIT ?", int64(author), n)
}

// Consumers maps each consumer group to its topic and handler.
func (w *Worker) Consumers() map[string]struct {
	Topic   string
	Handler events.Handler
} {
	return map[string]struct {
		Topic   string
		Handler events.Handler
	}{
		GroupRecommend: {events.TopicUserCreated, w.Recommend},
		GroupWelcome:   {events.TopicUserCreated, w.Welcome},
		GroupFanOut:    {events.TopicPostCreated, w.FanOut},
		GroupFollow:    {events.TopicFollowCreated, w.Follow},
	}
}
