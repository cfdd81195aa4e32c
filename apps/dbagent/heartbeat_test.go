package dbagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pkg/replication"
)

// blackhole forwards TCP to a server until cut, then silently drops everything in both directions
// without closing a connection: what a replica sees when its primary's pod vanishes without a FIN.
type blackhole struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{l: l, target: target}
	t.Cleanup(func() {
		_ = l.Close()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, c := range b.conns {
			_ = c.Close()
		}
	})
	go b.serve()
	return b
}

func (b *blackhole) port() int { return b.l.Addr().(*net.TCPAddr).Port }

func (b *blackhole) serve() {
	for {
		in, err := b.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", b.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		b.mu.Lock()
		b.conns = append(b.conns, in, out)
		b.mu.Unlock()
		go b.pipe(in, out)
		go b.pipe(out, in)
	}
}

// pipe copies until cut; after that it reads and discards (so the sender never sees an error).
func (b *blackhole) pipe(from, to net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if err != nil {
			return
		}
		b.mu.Lock()
		cut := b.cut
		b.mu.Unlock()
		if !cut {
			if _, err := to.Write(buf[:n]); err != nil {
				return
			}
		}
	}
}

func (b *blackhole) cutNow() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cut = true
}

// A replica whose connection to its primary goes silent (no FIN, no error) stops reporting itself
// current within seconds, because the agent asks for a heartbeat every second and the server
// drops a connection silent for slave_net_timeout (4 s in scalestack.cnf). Without the heartbeat
// it would report lag 0 on a dead connection for a minute while its primary commits without it.
func TestAReplicaNoticesASilentPrimary(t *testing.T) {
	ctx := context.Background()
	primary := localservers.StartMariaDB(t)
	replica := localservers.StartMariaDB(t)
	bootReadOnly(t, primary)
	bootReadOnly(t, replica)
	replicaRoot := replica.DB(t)
	// As scalestack.cnf sets it.
	if _, err := replicaRoot.Exec("SET GLOBAL slave_net_timeout = 4"); err != nil {
		t.Fatal(err)
	}
	hole := newBlackhole(t, primary.Addr())
	creds := replication.Credentials{AppPassword: "a-pw", ReplicationPassword: "r-pw", ExporterPassword: "e-pw"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	peer := func(pod string) (string, int) {
		if pod == "s-primary-0" {
			return "127.0.0.1", hole.port()
		}
		return "unknown", 3306
	}
	base := Config{Engine: replication.MariaDB, Shard: 2, Primary: "s-primary-0", Peer: peer, Credentials: creds,
		MaxLag: 10 * time.Second, Interval: 500 * time.Millisecond}
	pcfg, rcfg := base, base
	pcfg.Role, pcfg.Pod = "primary", "s-primary-0"
	rcfg.Role, rcfg.Pod, rcfg.Ordinal = "replica", "s-replicas-0", 0
	pa, ra := New(pcfg, primary.DB(t), log), New(rcfg, replica.DB(t), log)
	runCtx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go pa.Run(runCtx)
	go ra.Run(runCtx)
	ready := func() error {
		st, err := ra.Status(ctx)
		if err != nil {
			return err
		}
		if !st.Ready {
			return errors.New(st.Reason)
		}
		return nil
	}
	testutil.Eventually(t, "the replica ready", 60*time.Second, ready)
	if _, err := primary.DB(t).Exec("CREATE DATABASE social"); err != nil {
		t.Fatal(err)
	}

	// While the primary is idle, its heartbeats keep the connection alive past slave_net_timeout.
	testutil.Eventually(t, "heartbeats from the idle primary", 30*time.Second, func() error {
		var name string
		var n int
		if err := replicaRoot.QueryRow("SHOW GLOBAL STATUS LIKE 'Slave_received_heartbeats'").Scan(&name, &n); err != nil {
			return err
		}
		if n < 5 {
			return fmt.Errorf("%d heartbeats", n)
		}
		return ready()
	})

	hole.cutNow()
	cut := time.Now()
	if _, err := primary.DB(t).Exec("CREATE TABLE social.after_the_cut (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the replica not ready once its primary went silent", 30*time.Second, func() error {
		if err := ready(); err == nil {
			return fmt.Errorf("still ready %v after the cut", time.Since(cut).Round(100*time.Millisecond))
		}
		return nil
	})
	t.Logf("the replica stopped reporting itself current %v after its primary went silent", time.Since(cut).Round(100*time.Millisecond))
	// Its status names why, and lag is not reported as known.
	st, err := ra.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replica: %s (lag observed %v)", st.Reason, st.LagObservedAt)
}
