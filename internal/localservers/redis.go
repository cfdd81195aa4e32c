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
	bin := find(t, "redis-server")
	r := &Redis{Port: FreePort(t)}
	r.cmd = exec.Command(bin, "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--protected-mode", "no", "--maxmemory", maxMemory, "--maxmemory-policy", "allkeys-lru")
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	t.Cleanup(func() { _ = r.cmd.Process.Kill(); _ = r.cmd.Wait() })
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
