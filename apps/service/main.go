package service

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/scalestack/scalestack/apps/telemetry"
)

// GCPercent is the garbage collector's target (GOGC) of every service unless GOGC says otherwise:
// a collection when the heap has grown by four times what survived the last one, rather than by
// as much again (Go's 100). Each password hash allocates 19 MiB, so at 100 a user service whose
// live heap is a few tens of MiB collected after every hash or two, taking CPU and stop-the-world
// pauses from every request (docs/benchmarks.md measures both settings). The heap stays bounded by
// GOMEMLIMIT, which the operator sets from the container's memory limit.
const GCPercent = 400

// SetGCPercent applies GCPercent unless the environment sets GOGC.
func SetGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
}

// Main is the whole main function of a service binary: configuration from the environment (and
// -http-addr), JSON logs, tracing, then serve until SIGTERM.
func Main(name string) {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	addr := fs.String("http-addr", "", "listen address (default: $SCALESTACK_HTTP_ADDR or :8080)")
	drain := fs.Duration("drain-delay", 5*time.Second, "how long /readyz reports not-ready before the server stops")
	_ = fs.Parse(os.Args[1:])
	SetGCPercent()
	os.Exit(run(name, *addr, *drain))
}

func run(name, addr string, drain time.Duration) int {
	cfg, err := FromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if addr != "" {
		cfg.HTTPAddr = addr
	}
	slog.SetDefault(telemetry.NewLogger(name, cfg.LogFormat))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	shutdown, err := telemetry.SetupTracing(ctx, name)
	if err != nil {
		slog.Error("tracing", "error", err)
		return 1
	}
	defer func() { _ = shutdown(context.Background()) }()
	a, err := New(ctx, name, cfg)
	if err != nil {
		slog.Error("starting", "error", err)
		return 1
	}
	if err := a.Serve(ctx, cfg.HTTPAddr, drain); err != nil {
		slog.Error("serving", "error", err)
		return 1
	}
	return 0
}
