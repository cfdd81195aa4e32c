// Package events carries the apps' domain events through Kafka without losing or doubling their
// effects: a change and its event commit together in one transaction (the outbox), a relay moves
// outbox rows to Kafka with franz-go's idempotent producer keyed by user, and consumers apply
// events at least once with dedupe at the sink, bounded retries with backoff, and a dead-letter
// topic for what still fails, so that a poison message never blocks its partition.
package events

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/scalestack/scalestack/apps/httpx"
	"github.com/scalestack/scalestack/apps/store"
	"github.com/scalestack/scalestack/pkg/platform"
	"github.com/scalestack/scalestack/pkg/shard"
)

// The topics (the operator creates them, with a ".dlq" twin each).
const (
	TopicUserCreated   = platform.TopicUserCreated
	TopicPostCreated   = platform.TopicPostCreated
	TopicFollowCreated = platform.TopicFollowCreated
	DLQSuffix          = platform.DLQSuffix
)

// Event is the envelope of every message.
type Event struct {
	ID   shard.ID        `json:"id"`
	Type string          `json:"type"`
	User shard.ID        `json:"user_id"`
	At   time.Time       `json:"at"`
	Data json.RawMessage `json:"data"`
}

// UserCreated is the data of a user-created event.
type UserCreated struct {
	Handle      string `json:"handle"`
	Email       string `json:"email"`
	DisplayName string `json:"display_name"`
}

// PostCreated is the data of a post-created event.
type PostCreated struct {
	Post shard.ID `json:"post_id"`
}

// FollowCreated is the data of a follow-created event (User follows Followee).
type FollowCreated struct {
	Followee shard.ID `json:"followee_id"`
}

// Enqueue writes an event to the outbox in tx, so that it commits, or not, with the change.
// The event's ID is minted in tx (unique across processes, see store.IDs), so a sink's dedupe by
// ID never drops another process's event.
func Enqueue(ctx context.Context, tx *sql.Tx, ids *store.IDs, topic string, user shard.ID, typ string, data any) (shard.ID, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return 0, err
	}
	id, err := ids.Next(ctx, tx, user.Logical())
	if err != nil {
		return 0, err
	}
	payload, err := json.Marshal(Event{ID: id, Type: typ, User: user, At: time.Now().UTC(), Data: raw})
	if err != nil {
		return 0, err
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO outbox (event_id, topic, msg_key, payload, created_at) VALUES (?, ?, ?, ?, NOW(3))",
		int64(id), topic, user.String(), payload)
	return id, err
}

// Decode parses a message value strictly; a failure is permanent (a poison message).
func Decode(value []byte) (*Event, error) {
	var ev Event
	if err := httpx.Decode(bytes.NewReader(value), int64(len(value))+1, &ev); err != nil {
		return nil, Permanent(fmt.Errorf("undecodable event: %w", err))
	}
	if ev.ID == 0 || ev.User == 0 || ev.Type == "" {
		return nil, Permanent(errors.New("event lacks id, user_id or type"))
	}
	return &ev, nil
}

// DataAs decodes an event's data strictly into T; a failure is permanent.
func DataAs[T any](ev *Event) (T, error) {
	var v T
	if err := httpx.Decode(bytes.NewReader(ev.Data), int64(len(ev.Data))+1, &v); err != nil {
		return v, Permanent(fmt.Errorf("event %s data: %w", ev.ID, err))
	}
	return v, nil
}

type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Permanent marks an error that retrying cannot fix: the message goes to the DLQ at once.
func Permanent(err error) error { return permanent{err} }

// Unavailable reports an error that says a dependency cannot be reached or cannot take the
// work right now, rather than that the message is bad: a refused or broken connection, a
// timeout, a server with too many connections, out of its locks, or read-only (a primary being
// replaced). The consumer waits these out instead of counting them against the message.
func Unavailable(err error) bool {
	if err == nil || IsPermanent(err) {
		return false
	}
	var netErr net.Error
	var myErr *mysql.MySQLError
	switch {
	case errors.As(err, &netErr), errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return true
	case errors.As(err, &myErr):
		switch myErr.Number {
		case 1040, 1203, 1205, 1213, 1290, 1836: // too many connections, lock wait, deadlock, read-only
			return true
		}
	}
	return false
}

// IsPermanent reports a Permanent error.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// Claim records in tx that consumer applied event id; false when it already had (a redelivery).
func Claim(ctx context.Context, tx *sql.Tx, consumer string, id shard.ID) (bool, error) {
	res, err := tx.ExecContext(ctx, "INSERT IGNORE INTO processed_events (consumer, event_id, processed_at) VALUES (?, ?, NOW(3))", consumer, int64(id))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Processed reports whether consumer already applied event id.
func Processed(ctx context.Context, db *sql.DB, consumer string, id shard.ID) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM processed_events WHERE consumer = ? AND event_id = ?", consumer, int64(id)).Scan(&n)
	return n > 0, err
}
