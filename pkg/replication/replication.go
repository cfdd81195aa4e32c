// Package replication sets up and watches GTID replication between a shard's primary and its read
// replicas, for MariaDB and MySQL 8.4. The database agent that runs beside each shard's database
// container drives it; its tests run against real MariaDB servers.
package replication

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Engine selects the SQL dialect of replication.
type Engine string

const (
	// MariaDB uses CHANGE MASTER ... MASTER_USE_GTID=slave_pos and SHOW SLAVE STATUS.
	MariaDB Engine = "MariaDB"
	// MySQL uses CHANGE REPLICATION SOURCE ... SOURCE_AUTO_POSITION=1 and SHOW REPLICA STATUS.
	MySQL Engine = "MySQL"
)

// Source is the primary a replica replicates from.
type Source struct {
	Host     string
	Port     int
	User     string
	Password string
}

// Addr is host:port.
func (s Source) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Credentials are the accounts the agent keeps on the primary (they replicate to the replicas).
type Credentials struct {
	AppPassword         string
	ReplicationPassword string
	ExporterPassword    string
}

// Status is a replica's replication state.
type Status struct {
	// Configured is false when the server replicates from nobody.
	Configured bool
	SourceHost string
	SourcePort int
	IORunning  bool
	SQLRunning bool
	// Lag is nil when the server does not know it (replication stopped or not connected).
	Lag     *time.Duration
	IOError string
	SQLErr  string
	GTIDPos string
}

// Statements of one engine.
type dialect struct {
	changeSource func(Source) (string, []any)
	start, stop  string
	stopIO       string
	startIO      string
	reset        string
	status       string
	// waitApplied waits until the given GTIDs are applied or the timeout (seconds) passes; it
	// returns 0 when they are.
	waitApplied string
	// position reads the executed transactions and read_only.
	position string
	// resume, run before pointing the server at a source, makes replication resume after every
	// transaction the server has, its own included (MariaDB: gtid_slave_pos from gtid_current_pos;
	// a demoted primary's slave position is empty or old, and asking its new primary for the
	// whole history fails once the first binary logs are purged or were never there, as on a
	// server copied from a backup). The agent checks beforehand that the source lacks none of them.
	resume string
	cols   map[string]string // our name -> column name
}

var dialects = map[Engine]dialect{
	MariaDB: {
		changeSource: func(s Source) (string, []any) {
			return "CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=5, MASTER_HEARTBEAT_PERIOD=1",
				[]any{s.Host, s.Port, s.User, s.Password}
		},
		start: "START SLAVE", stop: "STOP SLAVE", stopIO: "STOP SLAVE IO_THREAD", startIO: "START SLAVE IO_THREAD", reset: "RESET SLAVE ALL", status: "SHOW SLAVE STATUS",
		waitApplied: "SELECT MASTER_GTID_WAIT(?, ?)",
		resume:      "SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_current_pos",
		position:    "SELECT @@GLOBAL.gtid_binlog_state, @@GLOBAL.gtid_current_pos, @@GLOBAL.read_only",
		cols: map[string]string{"host": "Master_Host", "port": "Master_Port", "io": "Slave_IO_Running", "sql": "Slave_SQL_Running",
			"lag": "Seconds_Behind_Master", "ioerr": "Last_IO_Error", "sqlerr": "Last_SQL_Error", "gtid": "Gtid_IO_Pos"},
	},
	MySQL: {
		changeSource: func(s Source) (string, []any) {
			return "CHANGE REPLICATION SOURCE TO SOURCE_HOST=?, SOURCE_PORT=?, SOURCE_USER=?, SOURCE_PASSWORD=?, SOURCE_AUTO_POSITION=1, SOURCE_CONNECT_RETRY=5, SOURCE_HEARTBEAT_PERIOD=1, GET_SOURCE_PUBLIC_KEY=1",
				[]any{s.Host, s.Port, s.User, s.Password}
		},
		start: "START REPLICA", stop: "STOP REPLICA", stopIO: "STOP REPLICA IO_THREAD", startIO: "START REPLICA IO_THREAD", reset: "RESET REPLICA ALL", status: "SHOW REPLICA STATUS",
		// 0 when applied, 1 on timeout.
		waitApplied: "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)",
		position:    "SELECT @@GLOBAL.gtid_executed, @@GLOBAL.gtid_executed, @@GLOBAL.read_only",
		cols: map[string]string{"host": "Source_Host", "port": "Source_Port", "io": "Replica_IO_Running", "sql": "Replica_SQL_Running",
			"lag": "Seconds_Behind_Source", "ioerr": "Last_IO_Error", "sqlerr": "Last_SQL_Error", "gtid": "Retrieved_Gtid_Set"},
	},
}

// Statements returns the engine's statement to point a replica at a source, with its arguments.
// The connection must interpolate parameters client-side (go-sql-driver's interpolateParams):
// CHANGE MASTER cannot be prepared.
func Statements(e Engine, s Source) (string, []any) { return dialects[e].changeSource(s) }

// Client talks replication to one server.
type Client struct {
	DB     *sql.DB
	Engine Engine
}

func (c *Client) dialect() dialect {
	d, ok := dialects[c.Engine]
	if !ok {
		return dialects[MariaDB]
	}
	return d
}

// SetServerID sets the server's server_id (dynamic in both engines), which must be unique in a
// replication topology.
func (c *Client) SetServerID(ctx context.Context, id int) error {
	if _, err := c.DB.ExecContext(ctx, "SET GLOBAL server_id = ?", id); err != nil {
		return fmt.Errorf("setting server_id: %w", err)
	}
	return nil
}

// statement is one SQL statement with its arguments.
type statement struct {
	q    string
	args []any
}

// account is one account EnsureUsers makes, with its statements.
type account struct {
	name, password string
	stmts          []statement
}

// accountStatements are what EnsureUsers runs for cr, by account.
func accountStatements(cr Credentials) ([]account, error) {
	users := []struct {
		name, password string
		grants         []string
	}{
		{"replication", cr.ReplicationPassword, []string{"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'replication'@'%'"}},
		{"app", cr.AppPassword, []string{"GRANT ALL PRIVILEGES ON `social`.* TO 'app'@'%'", "GRANT ALL PRIVILEGES ON `social\\_%`.* TO 'app'@'%'"}},
		{"exporter", cr.ExporterPassword, []string{"GRANT PROCESS, REPLICATION CLIENT, SELECT ON *.* TO 'exporter'@'%'"}},
	}
	var out []account
	for _, u := range users {
		if u.password == "" {
			return nil, fmt.Errorf("no password for user %s", u.name)
		}
		stmts := []statement{
			{"CREATE USER IF NOT EXISTS '" + u.name + "'@'%' IDENTIFIED BY ?", []any{u.password}},
			{"ALTER USER '" + u.name + "'@'%' IDENTIFIED BY ?", []any{u.password}},
		}
		for _, g := range u.grants {
			stmts = append(stmts, statement{q: g})
		}
		out = append(out, account{name: u.name, password: u.password, stmts: stmts})
	}
	return out, nil
}

// accountsFingerprint identifies what EnsureUsers makes of cr: a SHA-256 over its statements and
// their arguments, so another password or another grant (a newer release) gives another. It
// holds no password.
func accountsFingerprint(users []account) string {
	h := sha256.New()
	for _, u := range users {
		for _, s := range u.stmts {
			h.Write([]byte(s.q + "\x00"))
			for _, a := range s.args {
				h.Write([]byte(fmt.Sprint(a) + "\x00"))
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// The accounts' fingerprint is recorded on the primary in this table, which replicates like the
// accounts do: any server of the shard knows which credentials its accounts were made with.
const (
	accountsSchema = "CREATE DATABASE IF NOT EXISTS scalestack"
	accountsTable  = "CREATE TABLE IF NOT EXISTS scalestack.accounts (id TINYINT PRIMARY KEY, fingerprint CHAR(64) NOT NULL)"
	accountsRecord = "REPLACE INTO scalestack.accounts (id, fingerprint) VALUES (1, ?)"
	accountsRead   = "SELECT fingerprint FROM scalestack.accounts WHERE id = 1"
)

// EnsureUsers creates or updates the app, replication and exporter accounts on the primary, then
// records their fingerprint (UsersCurrent). Passwords are set every time, so a rotated Secret
// takes effect; they are never logged.
func (c *Client) EnsureUsers(ctx context.Context, cr Credentials) error {
	users, err := accountStatements(cr)
	if err != nil {
		return err
	}
	for _, u := range users {
		for _, s := range u.stmts {
			if _, err := c.DB.ExecContext(ctx, s.q, s.args...); err != nil {
				// The statement carries a password: report the user, not the statement.
				return fmt.Errorf("ensuring user %s: %w", u.name, redact(err, u.password))
			}
		}
	}
	for _, q := range []string{accountsSchema, accountsTable} {
		if _, err := c.DB.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("making the accounts' record: %w", err)
		}
	}
	if _, err := c.DB.ExecContext(ctx, accountsRecord, accountsFingerprint(users)); err != nil {
		return fmt.Errorf("recording the accounts: %w", err)
	}
	return nil
}

// UsersCurrent reports whether EnsureUsers(cr) has nothing to do: every account exists and the
// fingerprint the last EnsureUsers recorded is cr's. It only reads, so an agent that restarts
// beside a converged server (or a replica promoted) writes nothing to the binary log: a restarted
// primary that wrote while its replicas were away would hold transactions a replica promoted
// meanwhile lacks.
func (c *Client) UsersCurrent(ctx context.Context, cr Credentials) (bool, error) {
	users, err := accountStatements(cr)
	if err != nil {
		return false, err
	}
	var got string
	err = c.DB.QueryRowContext(ctx, accountsRead).Scan(&got)
	var me *mysql.MySQLError
	switch {
	case errors.Is(err, sql.ErrNoRows), errors.As(err, &me) && (me.Number == 1146 || me.Number == 1049):
		return false, nil // never recorded (a server of an earlier release, or a new one)
	case err != nil:
		return false, fmt.Errorf("reading the accounts' record: %w", err)
	case got != accountsFingerprint(users):
		return false, nil
	}
	return c.UsersExist(ctx)
}

// Accounts are the accounts EnsureUsers makes.
var Accounts = []string{"replication", "app", "exporter"}

// UsersExist reports whether every account EnsureUsers makes exists. It only reads, so it writes
// nothing to the binary log.
func (c *Client) UsersExist(ctx context.Context) (bool, error) {
	var n int
	if err := c.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE host = '%' AND user IN (?, ?, ?)",
		Accounts[0], Accounts[1], Accounts[2]).Scan(&n); err != nil {
		return false, fmt.Errorf("listing accounts: %w", err)
	}
	return n == len(Accounts), nil
}

// ConfigurePrimary makes the server a writable primary that replicates from nobody.
func (c *Client) ConfigurePrimary(ctx context.Context) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if st.Configured {
		for _, q := range []string{c.dialect().stop, c.dialect().reset} {
			if _, err := c.DB.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
	}
	return c.SetReadOnly(ctx, false)
}

// SetReadOnly turns the server's read_only on or off (replication threads and SUPER accounts
// write either way; the apps' account does not).
func (c *Client) SetReadOnly(ctx context.Context, on bool) error {
	q, what := "SET GLOBAL read_only = OFF", "making the server writable"
	if on {
		q, what = "SET GLOBAL read_only = ON", "making the server read-only"
	}
	if _, err := c.DB.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// ConfigureReplica makes the server a read-only replica of src. It is idempotent: a replica that
// already replicates from src with both threads running is left alone, so calling it on every
// tick costs one status query. A replica pointed elsewhere is re-pointed.
func (c *Client) ConfigureReplica(ctx context.Context, src Source) (changed bool, err error) {
	if err := c.SetReadOnly(ctx, true); err != nil {
		return false, err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return false, err
	}
	if st.Configured && st.SourceHost == src.Host && st.SourcePort == src.Port {
		if st.IORunning && st.SQLRunning {
			return false, nil
		}
		if st.SQLErr == "" && st.IOError == "" {
			// Stopped cleanly (e.g. by hand): start again from where it was.
			if _, err := c.DB.ExecContext(ctx, c.dialect().start); err != nil {
				return false, fmt.Errorf("starting replication: %w", err)
			}
			return true, nil
		}
	}
	d := c.dialect()
	if st.Configured {
		if _, err := c.DB.ExecContext(ctx, d.stop); err != nil {
			return false, fmt.Errorf("stopping replication: %w", err)
		}
	}
	if d.resume != "" {
		if _, err := c.DB.ExecContext(ctx, d.resume); err != nil {
			return false, fmt.Errorf("recording where replication resumes: %w", err)
		}
	}
	q, args := d.changeSource(src)
	if _, err := c.DB.ExecContext(ctx, q, args...); err != nil {
		return false, fmt.Errorf("pointing the replica at %s: %w", src.Addr(), redact(err, src.Password))
	}
	if _, err := c.DB.ExecContext(ctx, d.start); err != nil {
		return false, fmt.Errorf("starting replication: %w", err)
	}
	return true, nil
}

// Status reads the replication state.
func (c *Client) Status(ctx context.Context) (Status, error) {
	d := c.dialect()
	rows, err := c.DB.QueryContext(ctx, d.status)
	if err != nil {
		return Status{}, fmt.Errorf("%s: %w", d.status, err)
	}
	defer func() { _ = rows.Close() }()
	cols, err := rows.Columns()
	if err != nil {
		return Status{}, err
	}
	if !rows.Next() {
		return Status{}, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return Status{}, fmt.Errorf("reading %s: %w", d.status, err)
	}
	get := func(ours string) sql.NullString {
		want := d.cols[ours]
		for i, c := range cols {
			if c == want {
				return vals[i]
			}
		}
		return sql.NullString{}
	}
	st := Status{
		SourceHost: get("host").String,
		IORunning:  get("io").String == "Yes",
		SQLRunning: get("sql").String == "Yes",
		IOError:    get("ioerr").String,
		SQLErr:     get("sqlerr").String,
		GTIDPos:    get("gtid").String,
	}
	st.Configured = st.SourceHost != ""
	st.SourcePort, _ = strconv.Atoi(get("port").String)
	if l := get("lag"); l.Valid {
		if secs, err := strconv.Atoi(l.String); err == nil {
			lag := time.Duration(secs) * time.Second
			st.Lag = &lag
		}
	}
	return st, nil
}

// ErrNotReplicating and friends say why a replica is not ready.
var (
	ErrNotReplicating = errors.New("not replicating")
	ErrWrongSource    = errors.New("replicating from the wrong primary")
	ErrLagging        = errors.New("replication lag over the bound")
)

// Check says whether a replica is ready: replicating from want, both threads running, lag known
// and at most maxLag. "Process up" is not ready.
func Check(st Status, want Source, maxLag time.Duration) error {
	switch {
	case !st.Configured:
		return fmt.Errorf("%w: no source configured", ErrNotReplicating)
	case st.SourceHost != want.Host || st.SourcePort != want.Port:
		return fmt.Errorf("%w: source is %s, want %s", ErrWrongSource, net.JoinHostPort(st.SourceHost, strconv.Itoa(st.SourcePort)), want.Addr())
	case !st.IORunning || !st.SQLRunning:
		msg := fmt.Sprintf("io thread running=%v, sql thread running=%v", st.IORunning, st.SQLRunning)
		if st.IOError != "" {
			msg += "; io error: " + st.IOError
		}
		if st.SQLErr != "" {
			msg += "; sql error: " + st.SQLErr
		}
		return fmt.Errorf("%w: %s", ErrNotReplicating, msg)
	case st.Lag == nil:
		return fmt.Errorf("%w: lag unknown", ErrNotReplicating)
	case *st.Lag > maxLag:
		return fmt.Errorf("%w: %v behind, bound %v", ErrLagging, *st.Lag, maxLag)
	}
	return nil
}

// Stranded reports whether a replica's I/O error says it cannot continue from its primary at all:
// the fatal error 1236 of both engines (the binary logs it needs were purged, or it asks for a
// position the primary never had). Only a copy of the primary brings it back.
func Stranded(st Status) bool { return strings.Contains(st.IOError, "fatal error 1236") }

// redact removes a secret from an error's text.
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "[redacted]"))
}
