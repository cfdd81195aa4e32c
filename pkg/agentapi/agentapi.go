// Package agentapi is the contract between the operator and the shard agents (dbagent): the
// agent's HTTP API on its port, the messages, the token that authenticates the operator, and a
// client. The operator calls it only to move a shard's primary (failover and switchover); the
// agents run their shards on their own the rest of the time.
//
//	GET  /v1/status     what the server is and has: role, topology followed, GTID position, lag
//	POST /v1/topology   follow this topology (a newer epoch, or a confirmation of the current one)
//	POST /v1/fence      stop taking writes now (the first step of a switchover)
//	POST /v1/rebuild    a diverged replica: be rebuilt from the primary at the next start
//	GET  /v1/clone      the primary: a physical copy of the server (mbstream), for a rebuild
//	POST /v1/backup     take a full backup of the server into the object store, in the background
//
// Every request carries "Authorization: Bearer <Token(replication password)>".
package agentapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/scalestack/scalestack/pkg/replication"
)

// Topology is who a shard's primary is. Epoch only grows: the operator raises it with every change
// of primary and records it in the shard map before it tells the agents, and an agent never
// follows an older epoch than one it has seen.
type Topology struct {
	Primary string `json:"primary"`
	Epoch   int64  `json:"epoch"`
	// Confirm, with the agent's current primary and epoch, lifts a fence (a switchover called off,
	// or a stalled primary confirmed by the operator).
	Confirm bool `json:"confirm,omitempty"`
}

// Role is what a server is now.
const (
	RolePrimary = "primary"
	RoleReplica = "replica"
)

// Status is an agent's report.
type Status struct {
	Pod      string   `json:"pod"`
	Shard    int      `json:"shard"`
	Topology Topology `json:"topology"`
	// Role is RolePrimary when the topology names this pod, else RoleReplica.
	Role string `json:"role"`
	// Ready and Reason are the readiness verdict of the agent's last tick.
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	// Fenced says why a server the topology names primary refuses writes.
	Fenced string `json:"fenced,omitempty"`
	// Position is the server's GTID state, read for this report.
	Position replication.Position `json:"position"`
	// LagSeconds is the replication lag last known (while the replica was connected to its
	// primary) and LagObservedAt when; both empty on a primary or before the first report.
	LagSeconds    *float64   `json:"lagSeconds,omitempty"`
	LagObservedAt *time.Time `json:"lagObservedAt,omitempty"`
	// Diverged lists transactions this server has and the primary lacks, when it refuses to
	// replicate from it for that reason (the server needs a rebuild).
	Diverged string `json:"diverged,omitempty"`
	// Stranded is the replica's I/O error when its primary cannot give it what it needs next (the
	// binary logs were purged): like a diverged one, it needs a rebuild.
	Stranded string `json:"stranded,omitempty"`
	// Rebuild is set while a rebuild is scheduled for the pod's next start (POST /v1/rebuild): when
	// it was asked for.
	Rebuild *time.Time `json:"rebuild,omitempty"`
	// Archive reports the binary log archiving of a primary (spec.database.backup); nil on a
	// replica or with archiving off.
	Archive *ArchiveStatus `json:"archive,omitempty"`
	// Backup reports the full backups (spec.database.backup); nil with backup off.
	Backup *BackupStatus `json:"backup,omitempty"`
}

// RestoreRecord says how a restored shard's data directory was filled (spec.database.restore).
// The bootstrap writes it beside the data directory and, as JSON, as its init container's
// termination message on every start, which is how the operator follows a restore.
type RestoreRecord struct {
	// Source is the bucket and prefix restored from.
	Source string `json:"source"`
	// Backup is the full backup the data directory started from, at BackupGTID.
	Backup     string `json:"backup,omitempty"`
	BackupGTID string `json:"backupGtid,omitempty"`
	// Until is the point in time asked for (nil: the end of the archive).
	Until *time.Time `json:"until,omitempty"`
	// Binlogs is the number of archived binary logs replayed; GTID the position reached.
	Binlogs int    `json:"binlogs"`
	GTID    string `json:"gtid,omitempty"`
	// Empty says the source had no such shard (the platform has more shards than its source):
	// the shard started empty.
	Empty      bool      `json:"empty,omitempty"`
	FinishedAt time.Time `json:"finishedAt"`
	Seconds    float64   `json:"seconds"`
}

// RestoreReportPrefix starts a bootstrap's termination message that is a RestoreRecord, so that
// it is never taken for an error's text.
const RestoreReportPrefix = "restored: "

// ParseRestoreReport reads a bootstrap's termination message: the record when it reports a
// restore, nil when it reports something else.
func ParseRestoreReport(message string) *RestoreRecord {
	body, ok := strings.CutPrefix(strings.TrimSpace(message), RestoreReportPrefix)
	if !ok {
		return nil
	}
	var r RestoreRecord
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return nil
	}
	return &r
}

// BackupRequest asks an agent for a full backup of its server (POST /v1/backup). The agent
// answers at once and takes it in the background; it refuses while it takes another.
type BackupRequest struct {
	// Retention is applied to the shard's backups in the store once this one is complete.
	Retention Retention `json:"retention"`
	// Why is logged: "scheduled", "requested" (the annotation), "first".
	Why string `json:"why,omitempty"`
}

// Retention keeps the newest Count full backups and any younger than MaxAgeSeconds (0: no age
// limit); the newest complete backup is never removed.
type Retention struct {
	Count         int   `json:"count"`
	MaxAgeSeconds int64 `json:"maxAgeSeconds,omitempty"`
}

// BackupStatus is what an agent knows of the shard's full backups.
type BackupStatus struct {
	// Running is the backup this agent is taking now.
	Running *BackupRun `json:"running,omitempty"`
	// Completed is the last backup this agent completed since it started.
	Completed *Base `json:"completed,omitempty"`
	// Failed is this agent's last attempt when it failed (cleared by a success).
	Failed *BackupFailure `json:"failed,omitempty"`
	// Newest is the shard's newest complete backup in the store, as the primary's agent lists
	// it with every archiving pass; nil elsewhere, or when the store has none.
	Newest *Base `json:"newest,omitempty"`
	// ListedAt is when the primary's agent last listed the store (Newest is nil for "none" only
	// once it has): nil on a replica, and on a primary before its first listing.
	ListedAt *time.Time `json:"listedAt,omitempty"`
}

// BackupRun is a full backup in progress.
type BackupRun struct {
	ID        string    `json:"id"`
	StartedAt time.Time `json:"startedAt"`
}

// Base is a complete full backup, as its manifest in the store describes it.
type Base struct {
	ID         string    `json:"id"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	Size       int64     `json:"size"`
	GTID       string    `json:"gtid,omitempty"`
	Source     string    `json:"source,omitempty"`
}

// BackupFailure is a full backup that did not complete: when, and why (a BackupReady reason).
type BackupFailure struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	Error  string    `json:"error"`
}

// ArchiveStatus is the outcome of a primary's archiving.
type ArchiveStatus struct {
	// LastSuccess is when a pass last left every closed binary log in the object store;
	// LastFile the newest file it uploaded.
	LastSuccess *time.Time `json:"lastSuccess,omitempty"`
	LastFile    string     `json:"lastFile,omitempty"`
	// Reason and Error say why the last pass failed (the BackupReady reasons); empty when it
	// succeeded.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
}

// The trailers of GET /v1/clone, sent after the copy: the source's gtid_binlog_state once the copy
// is complete, or why it is not (a copy without the state is incomplete).
const (
	TrailerBinlogState = "Scalestack-Binlog-State"
	TrailerCloneError  = "Scalestack-Clone-Error"
)

// Token authenticates the operator to the agents: an HMAC of the shard's replication password,
// which both sides hold (the operator in the credentials Secret, the agent in its environment).
func Token(replicationPassword string) string {
	m := hmac.New(sha256.New, []byte(replicationPassword))
	m.Write([]byte("scalestack dbagent v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// Authorized reports whether r carries the token.
func Authorized(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && token != "" && hmac.Equal([]byte(got), []byte(token))
}

// Client calls agents. BaseURL is http://<pod IP>:<agent port>.
type Client struct {
	HTTP  *http.Client
	Token string
}

// Status asks an agent for its report.
func (c Client) Status(ctx context.Context, baseURL string) (Status, error) {
	return c.do(ctx, http.MethodGet, baseURL+"/v1/status", nil)
}

// SetTopology tells an agent whom to follow; it answers after one tick with the new state.
func (c Client) SetTopology(ctx context.Context, baseURL string, t Topology) (Status, error) {
	return c.do(ctx, http.MethodPost, baseURL+"/v1/topology", t)
}

// Fence makes an agent's server refuse writes at the given epoch and close the apps'
// connections; the report's position is final for that epoch.
func (c Client) Fence(ctx context.Context, baseURL string, epoch int64) (Status, error) {
	return c.do(ctx, http.MethodPost, baseURL+"/v1/fence", Topology{Epoch: epoch})
}

// Rebuild asks a diverged replica's agent to have the server rebuilt from the primary when its
// pod next starts; the caller then deletes the pod. The agent refuses when its server has not
// diverged.
func (c Client) Rebuild(ctx context.Context, baseURL string) (Status, error) {
	return c.do(ctx, http.MethodPost, baseURL+"/v1/rebuild", struct{}{})
}

// Backup asks an agent to take a full backup of its server in the background; the report's
// Backup.Running says it started. It answers 409 while the agent takes another.
func (c Client) Backup(ctx context.Context, baseURL string, req BackupRequest) (Status, error) {
	return c.do(ctx, http.MethodPost, baseURL+"/v1/backup", req)
}

// CloneStream is a physical copy of a server being received.
type CloneStream struct {
	resp *http.Response
	eof  bool
}

// Clone opens a physical copy of the agent's server. Read it to the end, then BinlogState says
// whether it is complete. Only ctx bounds how long it takes.
func (c Client) Clone(ctx context.Context, baseURL string) (*CloneStream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/v1/clone", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer func() { _ = resp.Body.Close() }()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return nil, fmt.Errorf("GET %s/v1/clone: %s: %s", baseURL, resp.Status, strings.TrimSpace(string(data)))
	}
	return &CloneStream{resp: resp}, nil
}

func (s *CloneStream) Read(p []byte) (int, error) {
	n, err := s.resp.Body.Read(p)
	if err == io.EOF {
		s.eof = true
	}
	return n, err
}

// Close releases the connection.
func (s *CloneStream) Close() error { return s.resp.Body.Close() }

// BinlogState returns the source's gtid_binlog_state sent after the copy, or an error when the
// copy was not read to its end or the source says it is incomplete.
func (s *CloneStream) BinlogState() (string, error) {
	if !s.eof {
		return "", errors.New("the copy was not read to its end")
	}
	if msg := s.resp.Trailer.Get(TrailerCloneError); msg != "" {
		return "", fmt.Errorf("the source failed to copy: %s", msg)
	}
	state, ok := s.resp.Trailer[http.CanonicalHeaderKey(TrailerBinlogState)]
	if !ok {
		return "", errors.New("the copy ended without the source's binlog state: it is incomplete")
	}
	return strings.Join(state, ","), nil
}

func (c Client) do(ctx context.Context, method, url string, body any) (Status, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Status{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return Status{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 40 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Status{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Status{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Status{}, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(data)))
	}
	var st Status
	if err := json.Unmarshal(data, &st); err != nil {
		return Status{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	return st, nil
}
