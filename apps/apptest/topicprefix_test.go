package apptest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/scalestack/scalestack/apps/events"
	"github.com/scalestack/scalestack/apps/localstack"
	"github.com/scalestack/scalestack/internal/testutil"
)

// With a topic prefix (spec.kafka.topicPrefix), the relay produces to the prefixed topics and the
// worker consumes from them: a signup's welcome email still arrives, and nothing reaches the
// unprefixed topics another platform on the same cluster might use.
func TestTopicPrefixKeepsAPlatformsEventsToItself(t *testing.T) {
	const prefix = "team-a.demo."
	st := localstack.Start(t, localstack.Options{Shards: 1, TopicPrefix: prefix, Configure: testConfig})
	before := len(st.SMTP.Mails())
	signup(t, st.Gateway(), "prefixed")
	testutil.Eventually(t, "the welcome email, through the prefixed topics", 20*time.Second, func() error {
		if n := len(st.SMTP.Mails()); n <= before {
			return fmt.Errorf("%d emails", n)
		}
		return nil
	})

	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Config.KafkaBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, prefix+events.TopicUserCreated, events.TopicUserCreated)
	if err != nil {
		t.Fatal(err)
	}
	count := func(topic string) int64 {
		var n int64
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic == topic && o.Err == nil {
				n += o.Offset
			}
		})
		return n
	}
	if n := count(prefix + events.TopicUserCreated); n == 0 {
		t.Errorf("nothing was produced to %s", prefix+events.TopicUserCreated)
	}
	if n := count(events.TopicUserCreated); n != 0 {
		t.Errorf("%d messages reached the unprefixed %s", n, events.TopicUserCreated)
	}
	groups, err := kadm.NewClient(cl).ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups.Groups()) == 0 {
		t.Errorf("no consumer group on the cluster")
	}
	for _, g := range groups.Groups() {
		if !strings.HasPrefix(g, prefix) {
			t.Errorf("consumer group %q does not carry the prefix", g)
		}
	}
}
