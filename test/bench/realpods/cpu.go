package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc's CPU times (100 on every Linux this runs on).
const clockTick = 10 * time.Millisecond

// cpuUse is a reading of CPU time: user plus system time of processes, by group, and the
// machine's busy and total time (/proc/stat, every core).
type cpuUse struct {
	byGroup, sysByGroup map[string]time.Duration
	busy, total         time.Duration
}

// readCPU reads the CPU time of every process that group names (group returns "" to leave one
// out) and the machine's.
func readCPU(group func(pid int, ppid int, comm string) string) cpuUse {
	u := cpuUse{byGroup: map[string]time.Duration{}, sysByGroup: map[string]time.Duration{}}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime stime: comm may hold spaces, so fields count from ")".
		s := string(raw)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		name := group(pid, ppid, s[open+1:end])
		if name == "" {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		u.byGroup[name] += time.Duration(ut+st) * clockTick
		u.sysByGroup[name] += time.Duration(st) * clockTick
	}
	if raw, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(raw), "\n")
		for i, v := range strings.Fields(line)[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			d := time.Duration(n) * clockTick
			if i < 8 { // user nice system idle iowait irq softirq steal; guest time is in user already
				u.total += d
				if i != 3 && i != 4 {
					u.busy += d
				}
			}
		}
	}
	return u
}

// since is the CPU time spent between an earlier reading and this one.
func (u cpuUse) since(before cpuUse) cpuUse {
	out := cpuUse{byGroup: map[string]time.Duration{}, sysByGroup: map[string]time.Duration{}, busy: u.busy - before.busy, total: u.total - before.total}
	for g, d := range u.byGroup {
		out.byGroup[g] = d - before.byGroup[g]
		out.sysByGroup[g] = u.sysByGroup[g] - before.sysByGroup[g]
	}
	return out
}

// cpuFigures are CPU figures by part; each part's system (kernel) time is under "<part>, system".
type cpuFigures map[string]float64

// per divides every part's CPU time by n (requests, or seconds) in milliseconds, or in seconds
// with unit time.Second, and adds "machine, busy" (every core's non-idle time, the kernel's
// network work included, whoever it ran for) and "machine, idle share".
func (u cpuUse) per(n float64, unit time.Duration) cpuFigures {
	out := cpuFigures{}
	if n == 0 {
		return out
	}
	f := func(d time.Duration) float64 { return float64(d) / float64(unit) / n }
	for g, d := range u.byGroup {
		out[g] = f(d)
		out[g+", system"] = f(u.sysByGroup[g])
	}
	out["machine, busy"] = f(u.busy)
	if u.total > 0 {
		out["machine, idle share"] = 1 - float64(u.busy)/float64(u.total)
	}
	return out
}

// podOf reads which pod a process belongs to from its cgroup path: kubelet's cgroupfs driver
// names a pod's cgroup "pod<uid>". byUID maps a pod's UID to the name it is reported under.
func podOf(pid int, byUID map[string]string) string {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return ""
	}
	s := string(raw)
	i := strings.LastIndex(s, "/pod")
	if i < 0 {
		return ""
	}
	rest := s[i+4:]
	if j := strings.IndexAny(rest, "/\n"); j >= 0 {
		rest = rest[:j]
	}
	return byUID[strings.ReplaceAll(rest, "_", "-")]
}
