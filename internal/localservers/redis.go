package localservers

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// Redis is one redis-server process on a free port, with no persistence.
type Redis struct {
	Port int
	cmd  *exec.Cmd
}

// Stop kills the server (before the test ends, to see what its clients do without it).
func (r *Redis) Stop() { _ = r.cmd.Process.Kill(); _ = r.cmd.Wait() }

// Addr is host:port.
func (r *Redis) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.Port) }

// StartRedis starts Debian's redis-server on a free loopback port in a temporary directory and
// stops it when the test ends.
func StartRedis(t Lifetime) *Redis { t.Helper(); return StartRedisWith(t, "") }

// StartRedisWith is StartRedis with a maxmemory (default 64mb).
func StartRedisWith(t Lifetime, maxMemory string) *Redis {
	t.Helper()
	if maxMemory == "" {
		maxMemory = "64mb"
	}
	return startRedis(t, "--save", "", "--appendonly", "no", "--protected-mode", "no",
		"--maxmemory", maxMemory, "--maxmemory-policy", "allkeys-lru")
}

// StartRedisConf starts redis-server with a configuration file (as the operator renders it), on
// a free loopback port in a temporary directory; overrides are more directives, as
// command-line arguments ("--aclfile", path).
func StartRedisConf(t Lifetime, confFile string, overrides ...string) *Redis {
	t.Helper()
	return startRedis(t, append([]string{confFile}, overrides...)...)
}

func startRedis(t Lifetime, args ...string) *Redis {
	t.Helper()
	bin := find(t, "redis-server")
	r := &Redis{Port: FreePort(t)}
	args = append(args, "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--dir", t.TempDir())
	r.cmd = exec.Command(bin, args...)
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	t.Cleanup(r.Stop)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", r.Addr()); err == nil {
			_ = c.Close()
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("redis-server on port %d did not answer", r.Port)
	return nil
}
