package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

func TestTransientErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{fmt.Errorf("wrapped: %w", &net.DNSError{Err: "no such host", Name: "demo-shard-0-primary", IsNotFound: true}), true},
		{driver.ErrBadConn, true},
		{&mysql.MySQLError{Number: 1045, Message: "Access denied"}, true},
		{&mysql.MySQLError{Number: 1064, Message: "You have an error in your SQL syntax"}, false},
		{errors.New("taking the migration lock: another process held it for 60s"), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// A primary that never answers is waited for up to MigrateWait, not given up on at once.
func TestMigrateWaitsForAPrimary(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens: connection refused
	old := MigrateWait
	MigrateWait = 1500 * time.Millisecond
	defer func() { MigrateWait = old }()
	start := time.Now()
	err = migrateWithWait(context.Background(), 0, addr, "app", "pw")
	if err == nil || !transient(err) {
		t.Fatalf("want a transient error in the end, got %v", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("gave up after %v: no retries", d)
	}
}
