// Command worker runs scalestack's event consumers (see apps/worker). "worker replay -topic T"
// moves the messages waiting in T's dead-letter topic back to T.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/scalestack/scalestack/apps/events"
	"github.com/scalestack/scalestack/apps/service"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "replay" {
		os.Exit(replay(os.Args[2:]))
	}
	service.Main(service.Worker)
}

func replay(args []string) int {
	fs := flag.NewFlagSet("replay", flag.ExitOnError)
	topic := fs.String("topic", "", "the topic whose DLQ to replay (user-created, post-created, follow-created)")
	_ = fs.Parse(args)
	if *topic == "" {
		fmt.Fprintln(os.Stderr, "replay: -topic is required")
		return 2
	}
	cfg, err := service.FromEnv()
	if err != nil || len(cfg.KafkaBrokers) == 0 {
		fmt.Fprintln(os.Stderr, "replay: SCALESTACK_KAFKA_BROKERS is required", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	n, skipped, err := events.ReplayPrefixed(ctx, cfg.KafkaBrokers, cfg.TopicPrefix, *topic)
	if err != nil {
		fmt.Fprintf(os.Stderr, "replay: moved %d messages, then: %v\n", n, err)
		return 1
	}
	fmt.Printf("moved %d messages from %s%s%s back to %s%s; left %d poison messages (undecodable) in place\n", n, cfg.TopicPrefix, *topic, events.DLQSuffix, cfg.TopicPrefix, *topic, skipped)
	return 0
}
