// Package apptest tests the social network end to end: every service in-process on its own
// port, against real MariaDB shards (and a replica), Redis, an SMTP server, and kfake for Kafka,
// all started by the tests on free ports (apps/localstack).
package apptest

import (
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/scalestack/scalestack/apps/localstack"
	"github.com/scalestack/scalestack/apps/service"
	"github.com/scalestack/scalestack/internal/localservers"
)

// shared is the stack most tests use; tests that stop parts of a stack start their own.
var shared *localstack.Stack

// celebrity is the follower count from which posts merge at read time, kept small for tests.
const celebrity = 3

func TestMain(m *testing.M) {
	if os.Getenv("SCALESTACK_TEST_VERBOSE") == "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	session := localservers.NewSession("apptest")
	code := func() int {
		defer session.Close()
		shared = localstack.Start(session, localstack.Options{Replica: true, Configure: testConfig})
		return m.Run()
	}()
	os.Exit(code)
}

func testConfig(c *service.Config) {
	c.CelebrityFollowers = celebrity
	c.RateLimit, c.RateBurst = 1000, 1000
	c.AuthRateLimit, c.AuthRateBurst = 1000, 1000
}
