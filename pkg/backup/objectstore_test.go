package backup

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/localservers"
)

// TestCheckNamesTheCause runs Check against a real SeaweedFS S3 gateway: a usable store passes,
// and wrong credentials, a missing bucket and an unreachable endpoint each fail with their own
// reason.
func TestCheckNamesTheCause(t *testing.T) {
	t.Parallel()
	st, good := testStore(t, "/team-a/demo/")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if got := st.Key("shard-0/x"); got != "team-a/demo/shard-0/x" {
		t.Errorf("Key = %q", got)
	}
	if err := st.Check(ctx); err != nil {
		t.Fatalf("Check on a usable store: %v", err)
	}

	cases := map[string]struct {
		mutate func(*StoreConfig)
		reason string
	}{
		"wrong secret":    {func(c *StoreConfig) { c.SecretKey = "not-the-secret" }, ReasonCredentialsRejected},
		"unknown key":     {func(c *StoreConfig) { c.AccessKey = "nobody" }, ReasonCredentialsRejected},
		"missing bucket":  {func(c *StoreConfig) { c.Bucket = "no-such-bucket" }, ReasonBucketMissing},
		"nothing listens": {func(c *StoreConfig) { c.Endpoint = localservers.Unreachable(t) }, ReasonObjectStoreUnreachable},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := good
			tc.mutate(&cfg)
			st, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = st.Check(ctx)
			if err == nil {
				t.Fatal("Check passed")
			}
			if got := ReasonOf(err); got != tc.reason {
				t.Errorf("reason = %s, want %s (%v)", got, tc.reason, err)
			}
			if cfg.SecretKey != "" && strings.Contains(err.Error(), cfg.SecretKey) {
				t.Error("the error carries the secret key")
			}
		})
	}
}
