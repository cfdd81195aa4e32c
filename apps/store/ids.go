package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/scalestack/scalestack/pkg/shard"
)

// Execer is a transaction or a pool: where an ID is minted.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// IDs mints IDs that are unique across every process, the way Instagram's shards did it with a
// sequence per logical shard: this process's generator proposes an ID (its clock, its sequence),
// and the primary of the physical shard that holds the logical shard raises it above the last ID
// handed out there, in one statement (the row is locked until the caller's transaction ends).
// IDs stay ordered by time and carry their logical shard; the sequence carries into the next
// millisecond, never into the shard bits. A logical shard never moves between physical shards,
// so its clock row is always where its rows are. Only a lossy failover can forget IDs the old
// primary had handed out (with the rows that held them).
type IDs struct {
	gen *shard.Generator
}

// NewIDs returns IDs on the wall clock.
func NewIDs() *IDs { return &IDs{gen: shard.NewGenerator()} }

// NewIDsWith returns IDs over gen (tests give it a fixed clock).
func NewIDsWith(gen *shard.Generator) *IDs { return &IDs{gen: gen} }

// mintSQL stores max(candidate, last + 1) and returns it through LAST_INSERT_ID(expr), which the
// server reports as the statement's insert ID. last + 1 of an ID whose sequence is full (1023) is
// the next millisecond's sequence 0: + 2^23 - 1023.
const mintSQL = `INSERT INTO id_clock (logical, last_id) VALUES (?, LAST_INSERT_ID(?))
ON DUPLICATE KEY UPDATE last_id = LAST_INSERT_ID(GREATEST(?,
  last_id + IF(last_id & 1023 = 1023, 8387585, 1)))`

// Next mints an ID on logical shard logical through q: the transaction that writes the row (or
// the shard's primary pool, when the ID is needed before that transaction).
func (g *IDs) Next(ctx context.Context, q Execer, logical int) (shard.ID, error) {
	candidate, err := g.gen.Next(logical)
	if err != nil {
		return 0, err
	}
	res, err := q.ExecContext(ctx, mintSQL, logical, int64(candidate), int64(candidate))
	if err != nil {
		return 0, fmt.Errorf("minting an id on logical shard %d: %w", logical, err)
	}
	v, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("minting an id on logical shard %d: %w", logical, err)
	}
	id := shard.ID(v)
	if id < candidate || id.Logical() != logical {
		return 0, fmt.Errorf("minting an id on logical shard %d: the server returned %d for candidate %d", logical, v, candidate)
	}
	return id, nil
}
