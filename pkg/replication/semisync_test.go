package replication

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// With semi-sync on, every commit the primary acknowledged is in a replica's relay log when the
// commit returns, even while the replica applies nothing: a failover to that replica loses no
// acknowledged write. Real MariaDB servers; the replica was replicating before semi-sync was
// turned on, so its I/O thread is reconnected for it.
func TestSemiSyncAcknowledgedWritesSurviveFailover(t *testing.T) {
	ctx := context.Background()
	pm, p, _, rs := shard(t, 1)
	r := rs[0]
	insert(t, p.DB, 0, 5)
	waitFor(t, "the replica caught up", caughtUp(ctx, r, 5))
	for _, c := range []*Client{p, r} {
		changed, err := c.EnableSemiSync(ctx, 30*time.Second)
		if err != nil || !changed {
			t.Fatalf("enabling semi-sync: changed %v, %v", changed, err)
		}
		if changed, err := c.EnableSemiSync(ctx, 30*time.Second); err != nil || changed {
			t.Fatalf("enabling it again changed %v (%v): it should only read", changed, err)
		}
	}
	waitFor(t, "the replica acknowledges", func() error {
		st, err := p.SemiSync(ctx)
		if err != nil {
			return err
		}
		if !st.On || st.Replicas != 1 {
			return fmt.Errorf("primary semi-sync %+v", st)
		}
		return nil
	})
	// The replica receives but applies nothing from here on.
	if _, err := r.DB.ExecContext(ctx, "STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	insert(t, p.DB, 5, 25)
	primary, err := p.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	replica, err := r.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Read at once, with no waiting: acknowledged means received.
	// (For the primary, Received is its own position: what it executed, per domain.)
	if lack := replica.Received.Missing(primary.Received); len(lack) != 0 {
		t.Fatalf("acknowledged commits %v are not in the replica's relay log", lack)
	}
	st, err := p.SemiSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Acknowledged < 20 || st.Unacknowledged != 0 {
		t.Errorf("semi-sync counted %d acknowledged and %d unacknowledged commits, want >= 20 and 0", st.Acknowledged, st.Unacknowledged)
	}
	if n, _ := count(ctx, r.DB); n != 5 {
		t.Fatalf("the replica applied %d rows with its SQL thread stopped", n)
	}

	// The replica applies again (its relay log holds everything), and the primary dies.
	if _, err := r.DB.ExecContext(ctx, "START SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	pm.Stop()
	if err := r.Promote(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if n, err := count(ctx, r.DB); err != nil || n != 25 {
		t.Fatalf("the promoted replica has %d rows (%v), 25 acknowledged", n, err)
	}
	// No replica now: the new primary does not wait for one.
	insert(t, r.DB, 25, 26)
}

func TestMySQLSemiSyncStatements(t *testing.T) {
	got := strings.Join(SemiSyncStatements(MySQL, 2*time.Second), "\n")
	want := strings.Join([]string{
		"INSTALL PLUGIN rpl_semi_sync_source SONAME 'semisync_source.so'",
		"INSTALL PLUGIN rpl_semi_sync_replica SONAME 'semisync_replica.so'",
		"SET GLOBAL rpl_semi_sync_source_wait_point = AFTER_SYNC",
		"SET GLOBAL rpl_semi_sync_source_wait_no_replica = OFF",
		"SET GLOBAL rpl_semi_sync_source_timeout = 2000",
		"SET GLOBAL rpl_semi_sync_source_enabled = ON",
		"SET GLOBAL rpl_semi_sync_replica_enabled = ON",
	}, "\n")
	if got != want {
		t.Errorf("MySQL 8.4 semi-sync statements:\n%s\nwant:\n%s", got, want)
	}
	if s := strings.Join(SemiSyncStatements(MariaDB, time.Second), "\n"); !strings.Contains(s, "rpl_semi_sync_master_enabled = ON") ||
		!strings.Contains(s, "rpl_semi_sync_slave_enabled = ON") || strings.Contains(s, "INSTALL PLUGIN") {
		t.Errorf("MariaDB semi-sync statements:\n%s", s)
	}
}
