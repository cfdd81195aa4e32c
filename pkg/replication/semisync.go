package replication

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Semi-synchronous replication, the way MOCO makes failover lossless: a commit on the primary
// returns only once a replica has the transaction in its relay log (the AFTER_SYNC wait point, so
// no other session sees it before then either). Promoting the replica that received the most then
// loses no acknowledged write. When no replica is connected the primary does not wait (a shard
// without replicas, or one whose replicas are all down, keeps taking writes), and a replica that
// does not answer within the timeout switches the primary to asynchronous replication until it
// catches up; SemiSyncState says which mode the primary is in.

// semiSyncVars are one engine's variable names.
type semiSyncVars struct {
	plugins                                         [][2]string // name, library (MySQL only)
	sourceEnabled, replicaEnabled, waitPoint        string
	waitNoReplica, timeout                          string
	statusOn, clients, acknowledged, unacknowledged string
}

var semiSync = map[Engine]semiSyncVars{
	MariaDB: {
		sourceEnabled: "rpl_semi_sync_master_enabled", replicaEnabled: "rpl_semi_sync_slave_enabled",
		waitPoint: "rpl_semi_sync_master_wait_point", waitNoReplica: "rpl_semi_sync_master_wait_no_slave",
		timeout: "rpl_semi_sync_master_timeout", statusOn: "Rpl_semi_sync_master_status", clients: "Rpl_semi_sync_master_clients",
		acknowledged: "Rpl_semi_sync_master_yes_tx", unacknowledged: "Rpl_semi_sync_master_no_tx",
	},
	MySQL: {
		plugins:       [][2]string{{"rpl_semi_sync_source", "semisync_source.so"}, {"rpl_semi_sync_replica", "semisync_replica.so"}},
		sourceEnabled: "rpl_semi_sync_source_enabled", replicaEnabled: "rpl_semi_sync_replica_enabled",
		waitPoint: "rpl_semi_sync_source_wait_point", waitNoReplica: "rpl_semi_sync_source_wait_no_replica",
		timeout: "rpl_semi_sync_source_timeout", statusOn: "Rpl_semi_sync_source_status", clients: "Rpl_semi_sync_source_clients",
		acknowledged: "Rpl_semi_sync_source_yes_tx", unacknowledged: "Rpl_semi_sync_source_no_tx",
	},
}

func (c *Client) semiSync() semiSyncVars {
	v, ok := semiSync[c.Engine]
	if !ok {
		return semiSync[MariaDB]
	}
	return v
}

// SemiSyncStatements are the statements EnableSemiSync runs when nothing is set yet, for an
// engine (MySQL 8.4's are checked in unit tests: no MySQL server can be installed here).
func SemiSyncStatements(e Engine, timeout time.Duration) []string {
	v := semiSync[e]
	var out []string
	for _, p := range v.plugins {
		out = append(out, fmt.Sprintf("INSTALL PLUGIN %s SONAME '%s'", p[0], p[1]))
	}
	return append(out,
		fmt.Sprintf("SET GLOBAL %s = AFTER_SYNC", v.waitPoint),
		fmt.Sprintf("SET GLOBAL %s = OFF", v.waitNoReplica),
		fmt.Sprintf("SET GLOBAL %s = %d", v.timeout, timeout.Milliseconds()),
		fmt.Sprintf("SET GLOBAL %s = ON", v.sourceEnabled),
		fmt.Sprintf("SET GLOBAL %s = ON", v.replicaEnabled),
	)
}

// EnableSemiSync turns semi-synchronous replication on for both roles, so a server's role can
// change without it: as a primary it waits up to timeout for a replica's acknowledgement, as a
// replica it acknowledges. It reads first and changes only what differs (SET GLOBAL writes nothing
// to the binary log either way). A replica whose I/O thread was already running without it is
// reconnected, since the replica side takes effect when the thread starts. It reports whether
// anything changed.
func (c *Client) EnableSemiSync(ctx context.Context, timeout time.Duration) (bool, error) {
	v := c.semiSync()
	for _, p := range v.plugins {
		var n int
		if err := c.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = ?", p[0]).Scan(&n); err != nil {
			return false, fmt.Errorf("looking for plugin %s: %w", p[0], err)
		}
		if n == 0 {
			if _, err := c.DB.ExecContext(ctx, fmt.Sprintf("INSTALL PLUGIN %s SONAME '%s'", p[0], p[1])); err != nil {
				return false, fmt.Errorf("installing plugin %s: %w", p[0], err)
			}
		}
	}
	var source, replica, waitNo bool
	var waitPoint string
	var ms int64
	q := fmt.Sprintf("SELECT @@GLOBAL.%s, @@GLOBAL.%s, @@GLOBAL.%s, @@GLOBAL.%s, @@GLOBAL.%s",
		v.sourceEnabled, v.replicaEnabled, v.waitPoint, v.waitNoReplica, v.timeout)
	if err := c.DB.QueryRowContext(ctx, q).Scan(&source, &replica, &waitPoint, &waitNo, &ms); err != nil {
		return false, fmt.Errorf("reading the semi-sync settings: %w", err)
	}
	var stmts []string
	if waitPoint != "AFTER_SYNC" {
		stmts = append(stmts, fmt.Sprintf("SET GLOBAL %s = AFTER_SYNC", v.waitPoint))
	}
	if waitNo {
		stmts = append(stmts, fmt.Sprintf("SET GLOBAL %s = OFF", v.waitNoReplica))
	}
	if ms != timeout.Milliseconds() {
		stmts = append(stmts, fmt.Sprintf("SET GLOBAL %s = %d", v.timeout, timeout.Milliseconds()))
	}
	if !source {
		stmts = append(stmts, fmt.Sprintf("SET GLOBAL %s = ON", v.sourceEnabled))
	}
	if !replica {
		stmts = append(stmts, fmt.Sprintf("SET GLOBAL %s = ON", v.replicaEnabled))
	}
	for _, s := range stmts {
		if _, err := c.DB.ExecContext(ctx, s); err != nil {
			return false, fmt.Errorf("%s: %w", s, err)
		}
	}
	if !replica {
		st, err := c.Status(ctx)
		if err != nil {
			return false, err
		}
		if st.IORunning {
			d := c.dialect()
			for _, s := range []string{d.stopIO, d.startIO} {
				if _, err := c.DB.ExecContext(ctx, s); err != nil {
					return false, fmt.Errorf("reconnecting the replica for semi-sync: %s: %w", s, err)
				}
			}
		}
	}
	return len(stmts) > 0, nil
}

// SemiSyncState is the primary side of semi-synchronous replication.
type SemiSyncState struct {
	// On: commits wait for a replica's acknowledgement (false: asynchronous, no replica connected
	// or one timed out).
	On bool
	// Replicas acknowledging; Acknowledged and Unacknowledged count commits since the server
	// started.
	Replicas, Acknowledged, Unacknowledged int64
}

// SemiSync reads the primary side's state.
func (c *Client) SemiSync(ctx context.Context) (SemiSyncState, error) {
	v := c.semiSync()
	rows, err := c.DB.QueryContext(ctx, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_%'")
	if err != nil {
		return SemiSyncState{}, fmt.Errorf("reading the semi-sync status: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var st SemiSyncState
	seen := 0
	for rows.Next() {
		var name string
		var value sql.NullString
		if err := rows.Scan(&name, &value); err != nil {
			return SemiSyncState{}, err
		}
		var n int64
		_, _ = fmt.Sscan(value.String, &n)
		switch name {
		case v.statusOn, v.clients, v.acknowledged, v.unacknowledged:
			seen++
		}
		switch name {
		case v.statusOn:
			st.On = value.String == "ON"
		case v.clients:
			st.Replicas = n
		case v.acknowledged:
			st.Acknowledged = n
		case v.unacknowledged:
			st.Unacknowledged = n
		}
	}
	if err := rows.Err(); err != nil {
		return SemiSyncState{}, err
	}
	if seen == 0 {
		return SemiSyncState{}, errors.New("the server reports no semi-sync status (plugin not loaded)")
	}
	return st, nil
}
