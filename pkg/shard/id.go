// Package shard holds what the operator and the apps must agree on about data placement: the
// 64-bit IDs that carry their logical shard, and the versioned shard map from logical shards to
// physical shards.
//
// An ID is laid out like Instagram's: 41 bits of milliseconds since Epoch, 13 bits of logical
// shard, 10 bits of sequence. A user's posts and follows carry the user's logical shard, so all of a
// user's hot data lives on one physical shard, and any ID can be routed without a lookup.
package shard

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

const (
	// LogicalShards is the number of logical shards (2^13).
	LogicalShards = 1 << shardBits
	// MaxPhysicalShards is the most physical shards a map can hold.
	MaxPhysicalShards = 64
	// BlockSize is how many logical shards each physical shard owns when created.
	BlockSize = LogicalShards / MaxPhysicalShards

	timeBits  = 41
	shardBits = 13
	seqBits   = 10
	maxSeq    = 1<<seqBits - 1
	// maxMillis leaves the top time bit clear, so IDs are positive int64s (SQL BIGINT, JSON
	// strings that parse everywhere) until 2060.
	maxMillis = 1<<(timeBits-1) - 1
)

// Epoch is the zero of ID time: 2026-01-01T00:00:00Z. IDs can be made until 2060.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// ID is a 64-bit identifier that carries its logical shard.
type ID int64

// ErrInvalidID is returned for strings and numbers that are not IDs.
var ErrInvalidID = errors.New("invalid id")

// NewID composes an ID. It panics on out-of-range parts: callers pass validated values.
func NewID(ms int64, logical int, seq int) ID {
	if ms < 0 || ms > maxMillis || logical < 0 || logical >= LogicalShards || seq < 0 || seq > maxSeq {
		panic(fmt.Sprintf("shard.NewID(%d, %d, %d): part out of range", ms, logical, seq))
	}
	return ID(ms<<(shardBits+seqBits) | int64(logical)<<seqBits | int64(seq))
}

// Logical is the ID's logical shard.
func (id ID) Logical() int { return int(id>>seqBits) & (LogicalShards - 1) }

// Time is when the ID was made, to the millisecond.
func (id ID) Time() time.Time {
	return Epoch.Add(time.Duration(int64(id)>>(shardBits+seqBits)) * time.Millisecond)
}

// Seq is the ID's sequence number within its millisecond.
func (id ID) Seq() int { return int(id) & maxSeq }

// String formats the ID in decimal, as the API carries it (JSON numbers lose precision above 2^53).
func (id ID) String() string { return strconv.FormatInt(int64(id), 10) }

// ParseID parses a decimal ID. It rejects signs, leading zeros, spaces, negative values and
// anything longer than an int64.
func ParseID(s string) (ID, error) {
	if s == "" || len(s) > 19 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%w: %q", ErrInvalidID, truncate(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: %q", ErrInvalidID, truncate(s))
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%w: %q", ErrInvalidID, truncate(s))
	}
	return ID(v), nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// Generator makes IDs, unique within one process (apps/store's IDs make them unique across
// processes): at most 1024 per millisecond, after which it
// waits for the next millisecond. If the clock steps back, it keeps counting from the last time
// it used, so IDs never repeat and stay ordered.
type Generator struct {
	mu     sync.Mutex
	now    func() time.Time
	lastMs int64
	seq    int
}

// NewGenerator returns a Generator on the wall clock.
func NewGenerator() *Generator { return &Generator{now: time.Now} }

// NewGeneratorOn returns a Generator on the given clock.
func NewGeneratorOn(now func() time.Time) *Generator { return &Generator{now: now} }

// Next returns a new ID on the given logical shard.
func (g *Generator) Next(logical int) (ID, error) {
	if logical < 0 || logical >= LogicalShards {
		return 0, fmt.Errorf("logical shard %d out of range [0, %d)", logical, LogicalShards)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		ms := g.now().Sub(Epoch).Milliseconds()
		if ms < g.lastMs {
			ms = g.lastMs
		}
		if ms > maxMillis {
			return 0, errors.New("id time space exhausted")
		}
		if ms == g.lastMs {
			if g.seq < maxSeq {
				g.seq++
				return NewID(ms, logical, g.seq), nil
			}
			// Sequence exhausted for this millisecond: wait for the clock to move on.
			g.mu.Unlock()
			time.Sleep(100 * time.Microsecond)
			g.mu.Lock()
			if g.now().Sub(Epoch).Milliseconds() <= g.lastMs {
				// The clock has not moved (or stepped back): borrow the next millisecond.
				g.lastMs++
				g.seq = 0
				return NewID(g.lastMs, logical, 0), nil
			}
			continue
		}
		g.lastMs, g.seq = ms, 0
		return NewID(ms, logical, 0), nil
	}
}

// MarshalText makes an ID a JSON string (JSON numbers lose precision above 2^53).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses an ID with ParseID's rules.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
