// Command archiver moves posts older than -older-than to the archive table on every shard (see
// apps/archiver). The operator runs it as a CronJob; a killed run resumes on the next.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/scalestack/scalestack/apps/archiver"
	"github.com/scalestack/scalestack/apps/service"
	"github.com/scalestack/scalestack/apps/store"
	"github.com/scalestack/scalestack/apps/telemetry"
)

func main() {
	olderThan := flag.Duration("older-than", 0, "archive posts created longer ago than this (e.g. 2160h)")
	batch := flag.Int("batch", 500, "posts moved per transaction")
	maxBatches := flag.Int("max-batches", 0, "batches per shard in one run (0: until done); the next run continues")
	flag.Parse()
	cfg, err := service.FromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	slog.SetDefault(telemetry.NewLogger("archiver", cfg.LogFormat))
	if *olderThan <= 0 || cfg.ShardMapFile == "" {
		fmt.Fprintln(os.Stderr, "archiver: -older-than > 0 and SCALESTACK_SHARD_MAP_FILE are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	m, _, err := store.LoadMap(cfg.ShardMapFile)
	if err != nil {
		slog.Error("shard map", "error", err)
		os.Exit(1)
	}
	shards, err := store.Open(store.Config{User: cfg.DBUser, Password: cfg.DBPassword, MaxOpenConns: cfg.DBPoolSize}, m, nil)
	if err != nil {
		slog.Error("shards", "error", err)
		os.Exit(1)
	}
	defer shards.Close()
	res, err := archiver.Run(ctx, shards, *olderThan, archiver.Options{Batch: *batch, MaxBatches: *maxBatches}, time.Now())
	total := 0
	for _, n := range res {
		total += n
	}
	if err != nil {
		slog.Error("archiving stopped; the next run resumes", "archived", total, "error", err)
		os.Exit(1)
	}
	slog.Info("archive run complete", "archived", total)
}
