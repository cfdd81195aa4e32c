package dbagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/scalestack/scalestack/pkg/agentapi"
	"github.com/scalestack/scalestack/pkg/replication"
)

// Rebuilding a diverged replica. A server with transactions its primary lacks (an old primary
// whose last commits no replica received before the failover) cannot replicate. The operator asks
// its agent to schedule a rebuild (POST /v1/rebuild: the agent writes a request beside the data
// directory) and deletes the pod; the pod's bootstrap then keeps the server's binary logs, which
// hold the diverged transactions, in a directory of the volume, copies the primary's data
// (GET /v1/clone on the primary's agent: mariadb-backup streamed, never staged whole), prepares
// it, records where the copy stands in the GTID history, and the server starts as a replica that
// continues from there. Nothing but the copy the primary already has is replaced.

// RebuildRequest is the request written beside the data directory.
type RebuildRequest struct {
	RequestedAt time.Time `json:"requestedAt"`
	// Errant is the transactions only this server had; Primary the primary it diverged from.
	Errant  string `json:"errant"`
	Primary string `json:"primary"`
	// Stranded is the I/O error of a replica its primary could not serve (purged binary logs).
	Stranded string `json:"stranded,omitempty"`
	// Binlogs is the server's log_bin_basename: its binary logs are <Binlogs>.* (index included).
	Binlogs string `json:"binlogs"`
	// Kept is where the bootstrap moved the server's binary logs (set once it has).
	Kept string `json:"kept,omitempty"`
}

// RebuildMarker is the path of the rebuild request for a data directory.
func RebuildMarker(dataDir string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(dataDir)), ".scalestack-rebuild")
}

// ReadRebuild returns the pending rebuild request of a data directory, if there is one.
func ReadRebuild(dataDir string) (*RebuildRequest, error) {
	data, err := os.ReadFile(RebuildMarker(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var req RebuildRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, fmt.Errorf("rebuild request %s: %w", RebuildMarker(dataDir), err)
	}
	return &req, nil
}

func writeRebuild(dataDir string, req RebuildRequest) error {
	data, err := json.MarshalIndent(req, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(RebuildMarker(dataDir), append(data, '\n'), 0o640)
}

// writeFileAtomic writes through a temporary file and a rename, so a crash leaves the old file or
// the new one, never half of one.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// errConflict is a request the agent's current state does not allow (HTTP 409).
type errConflict struct{ error }

// errUnsupported is a request this agent cannot serve (HTTP 501).
type errUnsupported struct{ error }

// canClone reports why the agent cannot copy its server or take part in a rebuild, or nil.
func (a *Agent) canClone() error {
	switch {
	case a.cfg.Engine != replication.MariaDB:
		return errUnsupported{fmt.Errorf("rebuilds from a copy of the primary need mariadb-backup; the %s engine rebuilds by hand (docs/runbooks.md, ScalestackShardDiverged)", a.cfg.Engine)}
	case a.cfg.Backup == nil:
		return errUnsupported{errors.New("this agent does not run beside its server's data directory")}
	}
	return nil
}

// RequestRebuild schedules a rebuild of a diverged replica for its pod's next start.
func (a *Agent) RequestRebuild(ctx context.Context) error {
	if err := a.canClone(); err != nil {
		return err
	}
	a.mu.Lock()
	role, primary := a.role, a.following.Primary
	a.mu.Unlock()
	if req, err := ReadRebuild(a.cfg.Backup.DataDir); err != nil || req != nil {
		return err // already scheduled
	}
	// Judged afresh, not from the last tick: a server that was just rebuilt and restarted may not
	// have ticked yet.
	if role != agentapi.RoleReplica {
		return errConflict{errors.New("the server is the shard's primary: there is nothing to rebuild it from")}
	}
	mine, err := a.rep.Position(ctx)
	if err != nil {
		return err
	}
	theirs, err := replication.ExecutedAt(ctx, a.cfg.Engine, a.source(primary))
	if err != nil {
		return fmt.Errorf("asking the primary %s what it has: %w", primary, err)
	}
	diverged := theirs.Missing(mine.Executed)
	st, err := a.rep.Status(ctx)
	if err != nil {
		return err
	}
	stranded := replication.Stranded(st)
	if len(diverged) == 0 && !stranded {
		return errConflict{errors.New("the server has not diverged from its primary and replicates from it: there is nothing to rebuild")}
	}
	req := RebuildRequest{RequestedAt: time.Now().UTC(), Errant: diverged.String(), Primary: primary}
	if stranded {
		req.Stranded = st.IOError
	}
	if err := a.db.QueryRowContext(ctx, "SELECT @@GLOBAL.log_bin_basename").Scan(&req.Binlogs); err != nil {
		return fmt.Errorf("reading where the binary logs are: %w", err)
	}
	if err := writeRebuild(a.cfg.Backup.DataDir, req); err != nil {
		return fmt.Errorf("writing the rebuild request: %w", err)
	}
	a.log.Warn("Rebuild scheduled for the pod's next start: this server cannot replicate from its primary", "errant", req.Errant, "stranded", req.Stranded, "primary", primary)
	return nil
}

// serveClone streams a physical copy of the server (GET /v1/clone), only while it is the
// primary, one at a time. The source's gtid_binlog_state follows the copy as a trailer.
func (a *Agent) serveClone(w http.ResponseWriter, r *http.Request) {
	if !agentapi.Authorized(r, a.cfg.Token) {
		http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
		return
	}
	if err := a.canClone(); err != nil {
		http.Error(w, err.Error(), http.StatusNotImplemented)
		return
	}
	a.mu.Lock()
	role := a.role
	a.mu.Unlock()
	if role != agentapi.RolePrimary {
		http.Error(w, "this server is not the shard's primary: copy the primary", http.StatusConflict)
		return
	}
	if !a.cloning.TryLock() {
		http.Error(w, "a copy of this server is being made already; try again later", http.StatusServiceUnavailable)
		return
	}
	defer a.cloning.Unlock()
	w.Header().Set("Trailer", agentapi.TrailerBinlogState+", "+agentapi.TrailerCloneError)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	start := time.Now()
	cw := &countingWriter{w: w}
	p, err := a.cfg.Tool.Stream(r.Context(), *a.cfg.Backup, cw)
	var state string
	if err == nil {
		err = a.db.QueryRowContext(r.Context(), "SELECT @@GLOBAL.gtid_binlog_state").Scan(&state)
	}
	if err != nil {
		w.Header().Set(agentapi.TrailerCloneError, oneLine(err.Error()))
		a.log.Warn("A copy of the server failed", "error", err.Error(), "bytes", cw.n)
		return
	}
	w.Header().Set(agentapi.TrailerBinlogState, oneLine(state))
	secs := time.Since(start).Seconds()
	a.log.Info("Copied the server for a rebuild", "bytes", cw.n, "seconds", secs, "gtid", p.GTID)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// oneLine makes s fit in a header value.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// ClonedState is the gtid_binlog_state of a copy consistent at pos (a GTID position: per domain,
// the last transaction), given the source's state read after the copy (it may include later
// transactions). Under gtid_strict_mode a domain's sequence numbers grow across servers, so the
// copy holds, per domain, every transaction up to pos: the source's entries capped there (other
// servers' below pos's own), and domains pos lacks are dropped.
func ClonedState(sourceState, pos string) (string, error) {
	type entry struct {
		domain, server string
		seq            int64
	}
	parse := func(s string) ([]entry, error) {
		var out []entry
		for part := range strings.SplitSeq(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			var e entry
			f := strings.Split(part, "-")
			if len(f) != 3 {
				return nil, fmt.Errorf("GTID %q: want domain-server-sequence", part)
			}
			if _, err := fmt.Sscan(f[2], &e.seq); err != nil || e.seq < 0 {
				return nil, fmt.Errorf("GTID %q: bad sequence number", part)
			}
			e.domain, e.server = f[0], f[1]
			out = append(out, e)
		}
		return out, nil
	}
	state, err := parse(sourceState)
	if err != nil {
		return "", err
	}
	last, err := parse(pos)
	if err != nil {
		return "", err
	}
	upTo := map[string]entry{}
	for _, e := range last {
		upTo[e.domain] = e
	}
	var out []string
	for _, e := range state {
		p, ok := upTo[e.domain]
		if !ok || e.server == p.server {
			continue // pos's own entry goes last in its domain
		}
		if seq := min(e.seq, p.seq-1); seq > 0 {
			out = append(out, fmt.Sprintf("%s-%s-%d", e.domain, e.server, seq))
		}
	}
	for _, e := range last {
		if e.seq > 0 {
			out = append(out, fmt.Sprintf("%s-%s-%d", e.domain, e.server, e.seq))
		}
	}
	return strings.Join(out, ","), nil
}
