package replication

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Position is what a server has executed and received, for choosing whom to promote and for
// refusing to replicate from a primary that lacks transactions the server has.
type Position struct {
	// Executed is every transaction in the server's binary log (MariaDB: gtid_binlog_state, per
	// domain and server; MySQL: gtid_executed). Compared between servers of any lineage.
	Executed GTIDSet `json:"executed"`
	// Received adds what a replica has received but not yet applied (MariaDB: a per-domain
	// position; MySQL: a GTID set). It ranks replicas of the same primary.
	Received GTIDSet `json:"received"`
	// ReadOnly is the server's read_only.
	ReadOnly bool `json:"readOnly"`
}

// Position reads the server's GTID state.
func (c *Client) Position(ctx context.Context) (Position, error) {
	var executed, current string
	var ro bool
	if err := c.DB.QueryRowContext(ctx, c.dialect().position).Scan(&executed, &current, &ro); err != nil {
		return Position{}, fmt.Errorf("reading the GTID state: %w", err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		return Position{}, err
	}
	return position(c.Engine, executed, current, st.GTIDPos, ro)
}

func position(e Engine, executed, current, received string, ro bool) (Position, error) {
	p := Position{ReadOnly: ro}
	var err error
	if e == MySQL {
		if p.Executed, err = ParseGTIDSet(executed); err != nil {
			return Position{}, err
		}
		got, err := ParseGTIDSet(received)
		if err != nil {
			return Position{}, err
		}
		p.Received = p.Executed.Union(got)
		return p, nil
	}
	if p.Executed, err = ParseMariaDBState(executed); err != nil {
		return Position{}, err
	}
	cur, err := ParseMariaDBPosition(current)
	if err != nil {
		return Position{}, err
	}
	got, err := ParseMariaDBPosition(received)
	if err != nil {
		return Position{}, err
	}
	p.Received = cur.Union(got)
	return p, nil
}

// ErrRelayNotApplied says a replica could not apply what it had received within the time given:
// it is not promoted, since it would lose those transactions.
var ErrRelayNotApplied = errors.New("the replica did not apply its relay log in time")

// Promote makes a replica the primary without losing what it received: it stops fetching,
// waits up to wait for the SQL thread to apply everything fetched, forgets its source and turns
// writable. A server that replicates from nobody is only made writable. When the relay log is not
// applied in time it returns ErrRelayNotApplied and changes nothing else (replication stays
// stopped on the I/O side; the agent's next tick as a replica starts it again).
func (c *Client) Promote(ctx context.Context, wait time.Duration) error {
	d := c.dialect()
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if st.Configured {
		if _, err := c.DB.ExecContext(ctx, d.stopIO); err != nil {
			return fmt.Errorf("%s: %w", d.stopIO, err)
		}
		if st, err = c.Status(ctx); err != nil {
			return err
		}
		if st.GTIDPos != "" {
			var res sql.NullInt64
			if err := c.DB.QueryRowContext(ctx, d.waitApplied, st.GTIDPos, int(wait.Seconds())).Scan(&res); err != nil {
				return fmt.Errorf("waiting for the relay log to be applied: %w", err)
			}
			if !res.Valid || res.Int64 != 0 {
				return fmt.Errorf("%w (%v, received up to %s)", ErrRelayNotApplied, wait, st.GTIDPos)
			}
		}
	}
	// Everything received is applied: forget the source and turn writable.
	return c.ConfigurePrimary(ctx)
}

// systemUsers are the accounts whose connections Fence leaves alone: the server's own threads,
// the agent's (root), replication and the exporter.
var systemUsers = []any{"system user", "event_scheduler", "root", "replication", "exporter"}

// Fence makes a server refuse writes from the apps: read_only on, then every application
// connection killed, so no transaction begun before it can commit and no pooled connection
// lingers. It returns the number of connections killed.
func (c *Client) Fence(ctx context.Context) (int, error) {
	if err := c.SetReadOnly(ctx, true); err != nil {
		return 0, err
	}
	rows, err := c.DB.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND USER NOT IN (?, ?, ?, ?, ?)", systemUsers...)
	if err != nil {
		return 0, fmt.Errorf("listing connections: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			_ = rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	_ = rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	killed := 0
	for _, id := range ids {
		if _, err := c.DB.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id)); err != nil {
			var me *mysql.MySQLError
			if errors.As(err, &me) && me.Number == 1094 { // unknown thread: it ended meanwhile
				continue
			}
			return killed, fmt.Errorf("killing connection %d: %w", id, err)
		}
		killed++
	}
	return killed, nil
}

// ExecutedAt reads the executed transactions of the server at src, as the replication account
// (global variables are readable by any account). A replica compares it with its own before it
// starts replicating from src.
func ExecutedAt(ctx context.Context, e Engine, src Source) (GTIDSet, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = src.User, src.Password, "tcp", src.Addr()
	cfg.Timeout = 5 * time.Second
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	defer func() { _ = db.Close() }()
	var executed, current string
	var ro bool
	if err := db.QueryRowContext(ctx, dialects[e].position).Scan(&executed, &current, &ro); err != nil {
		return nil, fmt.Errorf("reading the GTID state of %s: %w", src.Addr(), redact(err, src.Password))
	}
	p, err := position(e, executed, current, "", ro)
	return p.Executed, err
}
