// Package testutil holds the polling helpers the test suites share.
package testutil

import (
	"os"
	"testing"
	"time"
)

// Eventually polls cond every 100ms until it returns nil, and fails the test with cond's last
// error if that has not happened within timeout.
func Eventually(t testing.TB, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
}

// Consistently checks every 100ms that cond stays nil for the whole duration.
func Consistently(t testing.TB, what string, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Poll is Eventually for a real cluster: it checks every interval, logs how long cond took to
// hold (the suites' timings in docs come from these lines), and logs every failure when
// E2E_DEBUG is set.
func Poll(t testing.TB, what string, timeout, interval time.Duration, cond func() error) {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if err = cond(); err == nil {
			t.Logf("%s after %v", what, time.Since(start).Round(100*time.Millisecond))
			return
		}
		if os.Getenv("E2E_DEBUG") != "" {
			t.Logf("%s: %v", what, err)
		}
		time.Sleep(interval)
	}
	t.Fatalf("%s: not done after %v: %v", what, timeout, err)
}
