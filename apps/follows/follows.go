// Package follows is the follow graph: who follows whom, stored twice so that each side reads on
// its own shard (following on the follower's shard, followers on the followee's), with the counts
// kept beside the rows in the same transaction. The user service writes it on a follow or an
// unfollow; the worker repairs the followee side from the follow-created event and pages through
// followers for the timeline fan-out.
package follows

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/scalestack/scalestack/apps/store"
	"github.com/scalestack/scalestack/pkg/shard"
)

// Counts are the two columns of follow_counts.
const (
	CountFollowers = "followers"
	CountFollowing = "following"
)

// AddFollowing writes the follower-side row of a follow in tx and counts it; it reports whether
// the row is new (a follow of an already-followed user changes nothing).
func AddFollowing(ctx context.Context, tx *sql.Tx, follower, followee shard.ID) (bool, error) {
	res, err := tx.ExecContext(ctx, "INSERT IGNORE INTO following (user_id, followee_id, created_at) VALUES (?, ?, NOW(3))", int64(follower), int64(followee))
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return false, nil
	}
	return true, AddCount(ctx, tx, follower, CountFollowing, 1)
}

// AddFollower writes the followee-side row of a follow and counts it, once (idempotent); it
// reports whether the row is new.
func AddFollower(ctx context.Context, shards *store.Shards, followee, follower shard.ID) (bool, error) {
	return change(ctx, shards, followee, "INSERT IGNORE INTO followers (user_id, follower_id, created_at) VALUES (?, ?, NOW(3))",
		[]any{int64(followee), int64(follower)}, CountFollowers, 1)
}

// Remove deletes both rows of a follow and uncounts them: the followee side first, so that a
// retry after a failure in between finishes the job. It reports whether either row existed.
func Remove(ctx context.Context, shards *store.Shards, follower, followee shard.ID) (bool, error) {
	removedFollower, err := change(ctx, shards, followee, "DELETE FROM followers WHERE user_id = ? AND follower_id = ?",
		[]any{int64(followee), int64(follower)}, CountFollowers, -1)
	if err != nil {
		return removedFollower, err
	}
	removedFollowing, err := change(ctx, shards, follower, "DELETE FROM following WHERE user_id = ? AND followee_id = ?",
		[]any{int64(follower), int64(followee)}, CountFollowing, -1)
	return removedFollower || removedFollowing, err
}

// change runs one statement on owner's shard and, when it changed a row, moves owner's count by
// delta in the same transaction; it reports whether a row changed.
func change(ctx context.Context, shards *store.Shards, owner shard.ID, stmt string, args []any, column string, delta int) (bool, error) {
	_, tx, err := shards.Begin(ctx, owner)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, stmt, args...)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	if n == 1 {
		if err := AddCount(ctx, tx, owner, column, delta); err != nil {
			return false, err
		}
	}
	return n == 1, tx.Commit()
}

// AddCount moves a user's followers or following count, never below zero, and the user's
// updated_at (NextUpdatedAt).
func AddCount(ctx context.Context, tx *sql.Tx, user shard.ID, column string, delta int) error {
	if column != CountFollowers && column != CountFollowing {
		return fmt.Errorf("no count %q", column)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO follow_counts (user_id, "+column+") VALUES (?, GREATEST(?, 0)) ON DUPLICATE KEY UPDATE "+
		column+" = GREATEST("+column+" + ?, 0)", int64(user), delta, delta); err != nil {
		return err
	}
	// The user's updated_at moves with the counts: it is the cached profile's version.
	_, err := tx.ExecContext(ctx, "UPDATE users SET updated_at = "+NextUpdatedAt+" WHERE id = ?", int64(user))
	return err
}

// NextUpdatedAt is the SQL expression of a user row's next updated_at, set in the transaction
// that changes what the user's profile shows: past its last value (and now, when now is later),
// so the cached profile's version only grows, also when two changes fall in one millisecond or the
// clock steps back.
const NextUpdatedAt = "GREATEST(NOW(3), updated_at + INTERVAL 1000 MICROSECOND)"

// FollowerCount is a user's follower count.
func FollowerCount(ctx context.Context, db *sql.DB, u shard.ID) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT followers FROM follow_counts WHERE user_id = ?", int64(u)).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

// Followers pages through followee's followers in ID order, after the given ID.
func Followers(ctx context.Context, shards *store.Shards, followee, after shard.ID, limit int) ([]shard.ID, error) {
	var ids []shard.ID
	err := shards.Read(ctx, followee, func(db *sql.DB) (err error) {
		ids, err = store.QueryIDs(ctx, db, "SELECT follower_id FROM followers WHERE user_id = ? AND follower_id > ? ORDER BY follower_id LIMIT ?",
			int64(followee), int64(after), limit)
		return err
	})
	return ids, err
}
