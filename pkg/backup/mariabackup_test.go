package backup

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/localservers"
)

// TestFullBackupUnderWritesRestoresToItsGTID takes a physical backup of a real MariaDB while a
// writer commits rows, restores it into a new data directory, starts a server on it, and checks
// that the rows there are exactly those the manifest's GTID position covers.
func TestFullBackupUnderWritesRestoresToItsGTID(t *testing.T) {
	t.Parallel()
	st, _ := testStore(t, "")
	src := localservers.StartMariaDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	db := src.DB(t)
	for _, q := range []string{"CREATE DATABASE app", "CREATE TABLE app.rows (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 500; i++ {
		if _, err := db.ExecContext(ctx, "INSERT INTO app.rows VALUES (?, ?)", i, strings.Repeat("x", 32)); err != nil {
			t.Fatal(err)
		}
	}
	// A steady writer, one row per transaction, during the whole backup.
	stop := make(chan struct{})
	written := make(chan int)
	go func() {
		n := 500
		defer func() { written <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.ExecContext(ctx, "INSERT INTO app.rows VALUES (?, 'during')", n); err != nil {
				return
			}
			n++
		}
	}()
	start := time.Now()
	m, err := TakeFull(ctx, st, 0, Server{Host: "127.0.0.1", Port: src.Port, User: "root", DataDir: src.DataDir()}, Tool{}, "test")
	took := time.Since(start)
	close(stop)
	total := <-written
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup %s: %d bytes in %s (%.1f MB/s), GTID %s at %s:%d, %d rows committed by then", m.ID, m.Size, took.Round(time.Millisecond),
		float64(m.Size)/1e6/took.Seconds(), m.GTID, m.BinlogFile, m.BinlogPos, total)
	if m.GTID == "" || m.BinlogFile == "" {
		t.Fatalf("manifest without a position: %+v", m)
	}
	bases, err := st.Bases(ctx, 0)
	if err != nil || len(bases) != 1 || bases[0].GTID != m.GTID {
		t.Fatalf("bases = %+v, err = %v", bases, err)
	}

	dir := filepath.Join(t.TempDir(), "data")
	start = time.Now()
	if err := PrepareRestore(ctx, st, bases[0], dir, Tool{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("restore prepared in %s", time.Since(start).Round(time.Millisecond))
	restored := localservers.StartMariaDBOn(t, dir)
	rdb := restored.DB(t)
	var rows int
	if err := rdb.QueryRowContext(ctx, "SELECT COUNT(*) FROM app.rows").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	// Each row after the first 500 is its own transaction, numbered by GTID sequence: the
	// restored server must hold exactly those committed up to the manifest's GTID.
	wantRows := rowsAt(t, m.GTID)
	if rows != wantRows {
		t.Errorf("restored server has %d rows, the manifest's GTID %s covers %d", rows, m.GTID, wantRows)
	}
	var maxID int
	if err := rdb.QueryRowContext(ctx, "SELECT MAX(id) FROM app.rows").Scan(&maxID); err != nil {
		t.Fatal(err)
	}
	if maxID != rows-1 {
		t.Errorf("restored rows have a gap: %d rows, max id %d", rows, maxID)
	}
	if rows < 500 || rows > total {
		t.Errorf("restored %d rows, between 500 and %d expected", rows, total)
	}
}

// rowsAt returns how many rows the source held when its binlog reached gtid (domain-server-seq):
// the schema took 2 transactions and each row one, so rows = seq - 2.
func rowsAt(t *testing.T, gtid string) int {
	t.Helper()
	var domain, server, seq int
	if _, err := fmt.Sscanf(gtid, "%d-%d-%d", &domain, &server, &seq); err != nil {
		t.Fatalf("GTID %q: %v", gtid, err)
	}
	return seq - 2
}
