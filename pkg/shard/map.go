package shard

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Map is the versioned shard map: which physical shard owns each logical shard, where its primary
// and replicas are, and how new users are spread. The operator renders it into a ConfigMap; the
// apps load it at start and reload it when the mounted file changes. A change that moves logical
// shards (resharding) bumps Version, so apps can tell a newer map from an older one.
type Map struct {
	// Version increases with every change of the map's content.
	Version int64 `json:"version"`
	// LogicalShards is always 8192; it is written down so that a reader can check it.
	LogicalShards int `json:"logicalShards"`
	// Shards lists the physical shards in index order.
	Shards []Physical `json:"shards"`
}

// Physical is one physical shard.
type Physical struct {
	Index int `json:"index"`
	// Ranges are the logical shards it owns, as half-open [start, end) intervals.
	Ranges []Range `json:"ranges"`
	// Primary is host:port of the shard's primary (writes and read-your-writes).
	Primary string `json:"primary"`
	// Replicas is host:port of the replicas' Service (reads). Empty: reads go to the primary.
	Replicas string `json:"replicas,omitempty"`
	// Weight is the share of new users placed on this shard. Zero takes no new users.
	Weight int `json:"weight"`
	// PrimaryPod is the pod that is the shard's primary of record, once a failover or switchover
	// has moved it (empty: the primary StatefulSet's pod). Epoch counts those moves. The shard's
	// agents follow both; the apps need neither, since Primary is the Service that follows them.
	PrimaryPod string `json:"primaryPod,omitempty"`
	Epoch      int64  `json:"epoch,omitempty"`
}

// Range is a half-open interval of logical shards.
type Range struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Block returns the block of logical shards physical shard i owns when it is created.
func Block(i int) Range { return Range{Start: i * BlockSize, End: (i + 1) * BlockSize} }

// Addresses names a physical shard's endpoints.
type Addresses func(index int) (primary, replicas string)

// Build returns the map of n physical shards, each owning its own block. Growing n adds shards
// whose blocks no user has yet, so growing moves no data.
func Build(n int, addr Addresses) (*Map, error) {
	if n < 1 || n > MaxPhysicalShards {
		return nil, fmt.Errorf("physical shards %d out of range [1, %d]", n, MaxPhysicalShards)
	}
	m := &Map{Version: 1, LogicalShards: LogicalShards}
	for i := range n {
		p, r := addr(i)
		m.Shards = append(m.Shards, Physical{Index: i, Ranges: []Range{Block(i)}, Primary: p, Replicas: r, Weight: 1})
	}
	return m, nil
}

// Reconcile returns desired with the version of observed carried over: the same version when
// the content is unchanged, the next one when it changed. A nil observed starts at 1.
func Reconcile(observed, desired *Map) *Map {
	out := *desired
	out.Shards = slices.Clone(desired.Shards)
	if observed == nil {
		out.Version = 1
		return &out
	}
	out.Version = observed.Version
	if !sameContent(observed, desired) {
		out.Version = observed.Version + 1
	}
	return &out
}

func sameContent(a, b *Map) bool {
	x, y := *a, *b
	x.Version, y.Version = 0, 0
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

// Validate checks that every logical shard is owned at most once, indexes are unique and some
// shard takes new users.
func (m *Map) Validate() error {
	if m.LogicalShards != LogicalShards {
		return fmt.Errorf("logicalShards is %d, want %d", m.LogicalShards, LogicalShards)
	}
	if len(m.Shards) == 0 || len(m.Shards) > MaxPhysicalShards {
		return fmt.Errorf("%d physical shards, want 1..%d", len(m.Shards), MaxPhysicalShards)
	}
	owner := make([]int, LogicalShards)
	for i := range owner {
		owner[i] = -1
	}
	seen := map[int]bool{}
	weight := 0
	for _, p := range m.Shards {
		if seen[p.Index] {
			return fmt.Errorf("physical shard %d listed twice", p.Index)
		}
		seen[p.Index] = true
		if p.Primary == "" {
			return fmt.Errorf("physical shard %d has no primary", p.Index)
		}
		if p.Weight < 0 {
			return fmt.Errorf("physical shard %d has negative weight", p.Index)
		}
		if p.Weight > 0 && len(p.Ranges) == 0 {
			return fmt.Errorf("physical shard %d takes new users but owns no logical shard", p.Index)
		}
		weight += p.Weight
		for _, r := range p.Ranges {
			if r.Start < 0 || r.End > LogicalShards || r.Start >= r.End {
				return fmt.Errorf("physical shard %d: range [%d, %d) invalid", p.Index, r.Start, r.End)
			}
			for l := r.Start; l < r.End; l++ {
				if owner[l] >= 0 {
					return fmt.Errorf("logical shard %d owned by physical shards %d and %d", l, owner[l], p.Index)
				}
				owner[l] = p.Index
			}
		}
	}
	if weight == 0 {
		return errors.New("no physical shard takes new users (all weights are zero)")
	}
	return nil
}

// Parse decodes and validates a map.
func Parse(data []byte) (*Map, error) {
	m := &Map{}
	if err := json.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("decoding shard map: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("invalid shard map: %w", err)
	}
	return m, nil
}

// Router answers routing questions from a validated map in O(1).
type Router struct {
	m     *Map
	owner [LogicalShards]int16 // position in m.Shards, -1 when unowned
	// placement lists logical shards new users may get, per position in m.Shards.
	cumWeight []int
}

// ErrUnowned is returned for a logical shard no physical shard owns: the ID was not made by us.
var ErrUnowned = errors.New("logical shard not owned by any physical shard")

// NewRouter indexes a map. The map must be valid.
func NewRouter(m *Map) (*Router, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	r := &Router{m: m}
	for i := range r.owner {
		r.owner[i] = -1
	}
	total := 0
	for pos, p := range m.Shards {
		for _, rg := range p.Ranges {
			for l := rg.Start; l < rg.End; l++ {
				r.owner[l] = int16(pos)
			}
		}
		total += p.Weight
		r.cumWeight = append(r.cumWeight, total)
	}
	return r, nil
}

// Map returns the routed map.
func (r *Router) Map() *Map { return r.m }

// Route returns the physical shard that owns a logical shard.
func (r *Router) Route(logical int) (*Physical, error) {
	if logical < 0 || logical >= LogicalShards || r.owner[logical] < 0 {
		return nil, fmt.Errorf("%w: %d", ErrUnowned, logical)
	}
	return &r.m.Shards[r.owner[logical]], nil
}

// RouteID returns the physical shard that holds an ID's data.
func (r *Router) RouteID(id ID) (*Physical, error) { return r.Route(id.Logical()) }

// Place picks a logical shard for a new user: a physical shard chosen by weight, then a logical
// shard it owns, uniformly. rnd must be safe for the caller's concurrency (math/rand/v2's
// top-level functions are).
func (r *Router) Place(rnd func(n int) int) int {
	if rnd == nil {
		rnd = rand.IntN
	}
	total := r.cumWeight[len(r.cumWeight)-1]
	pick := rnd(total)
	pos, _ := slices.BinarySearchFunc(r.cumWeight, pick, func(c, t int) int {
		if c <= t {
			return -1
		}
		return 1
	})
	p := r.m.Shards[pos]
	size := 0
	for _, rg := range p.Ranges {
		size += rg.End - rg.Start
	}
	k := rnd(size)
	for _, rg := range p.Ranges {
		if k < rg.End-rg.Start {
			return rg.Start + k
		}
		k -= rg.End - rg.Start
	}
	panic("unreachable: placement outside the shard's ranges")
}
