// Package kafkatopics converges Kafka topics through the admin API: it creates missing topics,
// adds partitions, and sets retention. It never deletes a topic or a partition, and reports what
// it cannot do (shrink partitions, change the replication factor) instead of trying.
package kafkatopics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ClientOptions are the franz-go options of an admin client for Ensure. Metadata answers are not
// reused: kgo caches them for five seconds by default, which would hide a topic created a moment
// ago (or deleted behind our back) from the next Ensure.
func ClientOptions(seeds []string) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.MetadataMinAge(10 * time.Millisecond),
		kgo.RequestTimeoutOverhead(5 * time.Second),
		kgo.RetryTimeout(10 * time.Second),
	}
}

// Topic is a desired topic.
type Topic struct {
	Name       string
	Partitions int32
	// ReplicationFactor is -1 for the broker's default.
	ReplicationFactor int16
	// RetentionMs is 0 to leave the broker's default.
	RetentionMs int64
}

// Status is one topic after Ensure.
type Status struct {
	Name  string
	Ready bool
	// Message says what is wrong when not ready.
	Message string
	// Changed says Ensure created or altered the topic.
	Changed bool
}

// Ensure converges the topics and returns their status in the order given. An error means the
// cluster could not be asked at all.
func Ensure(ctx context.Context, adm *kadm.Client, topics []Topic) ([]Status, error) {
	names := make([]string, 0, len(topics))
	for _, t := range topics {
		names = append(names, t.Name)
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("listing topics: %w", err)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
		return nil, fmt.Errorf("describing topic configs: %w", err)
	}

	out := make([]Status, 0, len(topics))
	for _, t := range topics {
		st := Status{Name: t.Name, Ready: true}
		d, ok := details[t.Name]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			var cfg map[string]*string
			if t.RetentionMs > 0 {
				cfg = map[string]*string{"retention.ms": ptr(strconv.FormatInt(t.RetentionMs, 10))}
			}
			resp, err := adm.CreateTopic(ctx, t.Partitions, t.ReplicationFactor, cfg, t.Name)
			if err == nil {
				err = resp.Err
			}
			switch {
			case errors.Is(err, kerr.TopicAlreadyExists):
			case err != nil:
				st.Ready, st.Message = false, fmt.Sprintf("creating: %v", err)
			default:
				st.Changed = true
			}
			out = append(out, st)
			continue
		}
		if d.Err != nil {
			out = append(out, Status{Name: t.Name, Message: d.Err.Error()})
			continue
		}
		have := int32(len(d.Partitions))
		switch {
		case have < t.Partitions:
			resp, err := adm.CreatePartitions(ctx, int(t.Partitions-have), t.Name)
			if err == nil {
				err = firstErr(resp)
			}
			if err != nil {
				st.Ready, st.Message = false, fmt.Sprintf("adding %d partitions: %v", t.Partitions-have, err)
			}
			st.Changed = true
		case have > t.Partitions:
			st.Ready, st.Message = false, fmt.Sprintf("has %d partitions, more than the %d asked for: Kafka cannot remove partitions", have, t.Partitions)
		}
		if rf := int16(d.Partitions.NumReplicas()); t.ReplicationFactor > 0 && rf != t.ReplicationFactor {
			st.Ready, st.Message = false, fmt.Sprintf("replication factor is %d, not %d: changing it needs a partition reassignment", rf, t.ReplicationFactor)
		}
		if t.RetentionMs > 0 && retention(configs, t.Name) != strconv.FormatInt(t.RetentionMs, 10) {
			v := strconv.FormatInt(t.RetentionMs, 10)
			resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &v}}, t.Name)
			if err == nil {
				for _, r := range resp {
					if r.Err != nil {
						err = r.Err
					}
				}
			}
			if err != nil {
				st.Ready, st.Message = false, fmt.Sprintf("setting retention: %v", err)
			}
			st.Changed = true
		}
		out = append(out, st)
	}
	return out, nil
}

func retention(configs kadm.ResourceConfigs, topic string) string {
	i := slices.IndexFunc(configs, func(rc kadm.ResourceConfig) bool { return rc.Name == topic })
	if i < 0 {
		return ""
	}
	for _, c := range configs[i].Configs {
		if c.Key == "retention.ms" && c.Value != nil {
			return *c.Value
		}
	}
	return ""
}

func firstErr(resp kadm.CreatePartitionsResponses) error {
	for _, r := range resp {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
