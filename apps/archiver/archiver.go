// Package archiver moves posts older than a bound from the hot posts table to posts_archive, in
// batches, shard by shard. Each batch copies and deletes in one transaction, so a run killed at any
// point loses nothing and the next run carries on where it stopped. Posts stay readable: the post
// service falls back to the archive.
package archiver

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/scalestack/scalestack/apps/store"
	"github.com/scalestack/scalestack/pkg/shard"
)

// Result counts what a run moved per shard.
type Result map[int]int

// Options bound a run.
type Options struct {
	// Batch is the rows moved per transaction (default 500).
	Batch int
	// MaxBatches per shard bounds one run's work (0: until done); the next run continues.
	MaxBatches int
}

// Run archives posts created before now-olderThan on every shard.
func Run(ctx context.Context, shards *store.Shards, olderThan time.Duration, opts Options, now time.Time) (Result, error) {
	if olderThan <= 0 {
		return nil, fmt.Errorf("older-than must be positive, got %s", olderThan)
	}
	batch := opts.Batch
	if batch <= 0 {
		batch = 500
	}
	// IDs order by creation time: every post older than the cutoff has a smaller ID than this.
	cutoff := shard.NewID(now.Add(-olderThan).Sub(shard.Epoch).Milliseconds(), 0, 0)
	res := Result{}
	for _, db := range shards.All() {
		for i := 0; opts.MaxBatches == 0 || i < opts.MaxBatches; i++ {
			n, err := archiveBatch(ctx, db, cutoff, batch)
			if err != nil {
				return res, fmt.Errorf("shard %d: %w", db.Index, err)
			}
			res[db.Index] += n
			if n < batch {
				break
			}
		}
		slog.Info("archived", "shard", db.Index, "posts", res[db.Index])
	}
	return res, nil
}

func archiveBatch(ctx context.Context, db *store.DB, cutoff shard.ID, batch int) (int, error) {
	tx, err := db.Primary.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, "SELECT id FROM posts WHERE id < ? ORDER BY id LIMIT ? FOR UPDATE", int64(cutoff), batch)
	if err != nil {
		return 0, err
	}
	var ids []any
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			_ = rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	in := "(?" + strings.Repeat(",?", len(ids)-1) + ")"
	if _, err := tx.ExecContext(ctx, "INSERT IGNORE INTO posts_archive (id, author_id, body, likes, created_at) SELECT id, author_id, body, likes, created_at FROM posts WHERE id IN "+in, ids...); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM posts WHERE id IN "+in, ids...); err != nil {
		return 0, err
	}
	return len(ids), tx.Commit()
}
