package replication

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// GTIDSet is a set of global transaction IDs, in a form both engines' notations map onto: for
// each key, the transactions' sequence numbers as sorted, disjoint, closed intervals.
//
//   - MySQL: the key is a source's UUID, e.g. "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7-9".
//   - MariaDB binlog state (@@gtid_binlog_state, one entry per domain and server): the key is
//     "domain-server", the interval [1, seq]. In gtid_strict_mode a domain's sequence numbers only
//     grow, so "server s wrote up to seq n in domain d" stands for every earlier one of them.
//   - MariaDB position (@@gtid_current_pos, Gtid_IO_Pos: one entry per domain): the key is the
//     domain, the interval [1, seq]. Positions rank servers that replicate from the same primary.
type GTIDSet map[string][]Interval

// Interval is a closed range of sequence numbers.
type Interval struct{ Lo, Hi int64 }

// ParseGTIDSet parses a MySQL GTID set (gtid_executed, Retrieved_Gtid_Set).
func ParseGTIDSet(s string) (GTIDSet, error) {
	set := GTIDSet{}
	for _, part := range gtidParts(s) {
		fields := strings.Split(part, ":")
		if len(fields) < 2 {
			return nil, fmt.Errorf("GTID set %q: %q has no transaction numbers", s, part)
		}
		uuid := strings.ToLower(fields[0])
		for _, r := range fields[1:] {
			lo, hi, found := strings.Cut(r, "-")
			l, err := strconv.ParseInt(lo, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("GTID set %q: %w", s, err)
			}
			h := l
			if found {
				if h, err = strconv.ParseInt(hi, 10, 64); err != nil {
					return nil, fmt.Errorf("GTID set %q: %w", s, err)
				}
			}
			if l < 1 || h < l {
				return nil, fmt.Errorf("GTID set %q: interval %q is empty or below 1", s, r)
			}
			set[uuid] = append(set[uuid], Interval{l, h})
		}
	}
	for k := range set {
		set[k] = normalize(set[k])
	}
	return set, nil
}

// ParseMariaDBState parses @@gtid_binlog_state ("0-101-500,0-102-510"): one key per domain and
// server.
func ParseMariaDBState(s string) (GTIDSet, error) { return parseMariaDB(s, true) }

// ParseMariaDBPosition parses a GTID position (@@gtid_current_pos, Gtid_IO_Pos): one key per
// domain, the highest sequence number of the domain.
func ParseMariaDBPosition(s string) (GTIDSet, error) { return parseMariaDB(s, false) }

func parseMariaDB(s string, byServer bool) (GTIDSet, error) {
	set := GTIDSet{}
	for _, part := range gtidParts(s) {
		f := strings.Split(part, "-")
		if len(f) != 3 {
			return nil, fmt.Errorf("GTID %q: want domain-server-sequence", part)
		}
		var n [3]int64
		for i := range f {
			v, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil || v < 0 {
				return nil, fmt.Errorf("GTID %q: %q is not a number", part, f[i])
			}
			n[i] = v
		}
		key := f[0]
		if byServer {
			key = f[0] + "-" + f[1]
		}
		if n[2] == 0 {
			continue
		}
		if cur, ok := set[key]; !ok || cur[0].Hi < n[2] {
			set[key] = []Interval{{1, n[2]}}
		}
	}
	return set, nil
}

// gtidParts splits a comma-separated GTID list (servers print it over several lines) into its
// entries.
func gtidParts(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// normalize sorts intervals and merges the ones that overlap or touch.
func normalize(in []Interval) []Interval {
	slices.SortFunc(in, func(a, b Interval) int { return cmp.Compare(a.Lo, b.Lo) })
	out := in[:0]
	for _, iv := range in {
		if n := len(out); n > 0 && iv.Lo <= out[n-1].Hi+1 {
			out[n-1].Hi = max(out[n-1].Hi, iv.Hi)
			continue
		}
		out = append(out, iv)
	}
	return out
}

// Union returns the transactions in a or b.
func (a GTIDSet) Union(b GTIDSet) GTIDSet {
	out := GTIDSet{}
	for _, s := range []GTIDSet{a, b} {
		for k, ivs := range s {
			out[k] = normalize(append(slices.Clone(out[k]), ivs...))
		}
	}
	return out
}

// Contains reports whether every transaction of b is in a.
func (a GTIDSet) Contains(b GTIDSet) bool { return len(a.Missing(b)) == 0 }

// Missing returns the transactions of b that a lacks.
func (a GTIDSet) Missing(b GTIDSet) GTIDSet {
	out := GTIDSet{}
	for k, want := range b {
		var lack []Interval
		for _, iv := range want {
			lack = append(lack, subtract(iv, a[k])...)
		}
		if len(lack) > 0 {
			out[k] = lack
		}
	}
	return out
}

// subtract returns the parts of iv not covered by have (sorted and disjoint).
func subtract(iv Interval, have []Interval) []Interval {
	var out []Interval
	lo := iv.Lo
	for _, h := range have {
		if h.Hi < lo || h.Lo > iv.Hi {
			continue
		}
		if h.Lo > lo {
			out = append(out, Interval{lo, h.Lo - 1})
		}
		lo = h.Hi + 1
		if lo > iv.Hi {
			return out
		}
	}
	return append(out, Interval{lo, iv.Hi})
}

// Count is the number of transactions in the set.
func (a GTIDSet) Count() int64 {
	var n int64
	for _, ivs := range a {
		for _, iv := range ivs {
			n += iv.Hi - iv.Lo + 1
		}
	}
	return n
}

// String writes the set in MySQL's notation, keys sorted: "key:1-5:7".
func (a GTIDSet) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(a)) {
		p := k
		for _, iv := range a[k] {
			if iv.Lo == iv.Hi {
				p += fmt.Sprintf(":%d", iv.Lo)
			} else {
				p += fmt.Sprintf(":%d-%d", iv.Lo, iv.Hi)
			}
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ",")
}
