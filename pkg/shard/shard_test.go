package shard

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestIDRoundTrip(t *testing.T) {
	cases := []struct {
		ms           int64
		logical, seq int
	}{{0, 0, 0}, {1, 1, 1}, {maxMillis, LogicalShards - 1, maxSeq}, {123456789, 4097, 512}}
	for _, c := range cases {
		id := NewID(c.ms, c.logical, c.seq)
		if id.Logical() != c.logical || id.Seq() != c.seq || id.Time() != Epoch.Add(time.Duration(c.ms)*time.Millisecond) {
			t.Errorf("NewID(%d,%d,%d) = %d: logical %d seq %d time %v", c.ms, c.logical, c.seq, id, id.Logical(), id.Seq(), id.Time())
		}
		if c.ms > 0 {
			back, err := ParseID(id.String())
			if err != nil || back != id {
				t.Errorf("ParseID(%s) = %d, %v", id, back, err)
			}
		}
	}
}

func TestParseIDRejects(t *testing.T) {
	for _, s := range []string{"", "0", "-1", "+5", "01", " 1", "1 ", "1e3", "0x10", "99999999999999999999", "9223372036854775808", "12a", "１２"} {
		if _, err := ParseID(s); !errors.Is(err, ErrInvalidID) {
			t.Errorf("ParseID(%q) = %v, want ErrInvalidID", s, err)
		}
	}
}

func TestGeneratorUniqueOrderedAcrossExhaustionAndClockStepBack(t *testing.T) {
	now := Epoch.Add(time.Hour)
	var mu sync.Mutex
	g := &Generator{now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	seen := map[ID]bool{}
	var last ID
	for i := range 5000 { // more than one millisecond's sequence, with a frozen clock
		if i == 3000 {
			mu.Lock()
			now = now.Add(-time.Second) // the clock steps back
			mu.Unlock()
		}
		id, err := g.Next(42)
		if err != nil {
			t.Fatal(err)
		}
		if seen[id] || id <= last {
			t.Fatalf("id %d repeated or out of order after %d", id, last)
		}
		if id.Logical() != 42 {
			t.Fatalf("id %d on logical shard %d", id, id.Logical())
		}
		seen[id], last = true, id
	}
	if _, err := g.Next(LogicalShards); err == nil {
		t.Error("out-of-range logical shard accepted")
	}
}

func TestGeneratorConcurrent(t *testing.T) {
	g := NewGenerator()
	var mu sync.Mutex
	seen := map[ID]bool{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				id, err := g.Next(w)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[id] {
					t.Errorf("duplicate id %d", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func addrs(i int) (string, string) {
	return fmt.Sprintf("s%d-primary:3306", i), fmt.Sprintf("s%d-replicas:3306", i)
}

func TestBuildGrowMovesNoLogicalShard(t *testing.T) {
	small, err := Build(2, addrs)
	if err != nil {
		t.Fatal(err)
	}
	big, err := Build(5, addrs)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := NewRouter(small)
	rb, _ := NewRouter(big)
	for l := range LogicalShards {
		ps, errS := rs.Route(l)
		pb, errB := rb.Route(l)
		if errS == nil && (errB != nil || pb.Index != ps.Index) {
			t.Fatalf("logical shard %d moved from %d to %v (%v) when growing", l, ps.Index, pb, errB)
		}
	}
	// New physical shards take new users at once.
	placed := map[int]int{}
	for range 5000 {
		p, err := rb.Route(rb.Place(nil))
		if err != nil {
			t.Fatal(err)
		}
		placed[p.Index]++
	}
	for i := range 5 {
		if placed[i] < 700 { // 1000 expected each
			t.Errorf("physical shard %d got %d of 5000 new users", i, placed[i])
		}
	}
	if _, err := Build(0, addrs); err == nil {
		t.Error("Build(0) accepted")
	}
	if _, err := Build(65, addrs); err == nil {
		t.Error("Build(65) accepted")
	}
}

func TestPlacementFollowsWeights(t *testing.T) {
	m, _ := Build(3, addrs)
	m.Shards[0].Weight, m.Shards[1].Weight, m.Shards[2].Weight = 0, 1, 3
	r, err := NewRouter(m)
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	counts := map[int]int{}
	for range 8000 {
		l := r.Place(rnd.IntN)
		p, _ := r.Route(l)
		counts[p.Index]++
	}
	if counts[0] != 0 || counts[2] < 5500 || counts[2] > 6500 {
		t.Errorf("placement by weight 0:1:3 gave %v", counts)
	}
}

func TestValidate(t *testing.T) {
	good := func() *Map { m, _ := Build(2, addrs); return m }
	cases := map[string]func(*Map){
		"overlap":       func(m *Map) { m.Shards[1].Ranges = append(m.Shards[1].Ranges, Range{0, 1}) },
		"out of range":  func(m *Map) { m.Shards[1].Ranges = []Range{{8000, 9000}} },
		"empty range":   func(m *Map) { m.Shards[1].Ranges = []Range{{10, 10}} },
		"no weight":     func(m *Map) { m.Shards[0].Weight, m.Shards[1].Weight = 0, 0 },
		"no primary":    func(m *Map) { m.Shards[0].Primary = "" },
		"duplicate":     func(m *Map) { m.Shards[1].Index = 0 },
		"wrong logical": func(m *Map) { m.LogicalShards = 4096 },
		"weight without ranges": func(m *Map) {
			m.Shards[1].Ranges = nil
		},
	}
	for name, mutate := range cases {
		m := good()
		mutate(m)
		if err := m.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := good().Validate(); err != nil {
		t.Errorf("built map invalid: %v", err)
	}
}

func TestReconcileVersion(t *testing.T) {
	a, _ := Build(2, addrs)
	if v := Reconcile(nil, a).Version; v != 1 {
		t.Errorf("first version %d", v)
	}
	observed := Reconcile(nil, a)
	observed.Version = 7
	if v := Reconcile(observed, a).Version; v != 7 {
		t.Errorf("unchanged map bumped to %d", v)
	}
	b, _ := Build(3, addrs)
	if v := Reconcile(observed, b).Version; v != 8 {
		t.Errorf("changed map version %d, want 8", v)
	}
}

func TestUnownedLogicalShardIsAnError(t *testing.T) {
	m, _ := Build(1, addrs)
	r, _ := NewRouter(m)
	if _, err := r.RouteID(NewID(1, BlockSize+3, 0)); !errors.Is(err, ErrUnowned) {
		t.Errorf("route of an unowned logical shard: %v", err)
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"1", "123456789012345678", "-1", "", "0", "9223372036854775807", "abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			return
		}
		if id <= 0 || id.String() != s {
			t.Fatalf("ParseID(%q) = %d, which formats as %q", s, id, id.String())
		}
		if l := id.Logical(); l < 0 || l >= LogicalShards {
			t.Fatalf("logical shard %d out of range", l)
		}
	})
}

func FuzzIDParts(f *testing.F) {
	f.Add(int64(5), 7, 9)
	f.Fuzz(func(t *testing.T, ms int64, logical, seq int) {
		if ms < 0 || ms > maxMillis || logical < 0 || logical >= LogicalShards || seq < 0 || seq > maxSeq {
			return
		}
		id := NewID(ms, logical, seq)
		if id.Logical() != logical || id.Seq() != seq || id.Time().Sub(Epoch).Milliseconds() != ms {
			t.Fatalf("parts of %d: %d %d %v", id, id.Logical(), id.Seq(), id.Time())
		}
	})
}

func FuzzParseMap(f *testing.F) {
	m, _ := Build(2, addrs)
	good, _ := jsonMarshal(m)
	f.Add(good)
	f.Add([]byte(`{"version":1,"logicalShards":8192,"shards":[{"index":0,"ranges":[{"start":0,"end":8192}],"primary":"p","weight":1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		r, err := NewRouter(m)
		if err != nil {
			t.Fatalf("a parsed map does not index: %v", err)
		}
		l := r.Place(func(n int) int { return n - 1 })
		if _, err := r.Route(l); err != nil {
			t.Fatalf("placed on an unowned logical shard %d", l)
		}
	})
}
