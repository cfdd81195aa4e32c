package auth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The pool never runs more hashes than its slots, queues up to its line, refuses beyond it, lets
// a waiting caller give up, and hashes and checks for real.
func TestHasherBoundsConcurrencyAndQueue(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := NewHasher(HashParams{Time: 1, Memory: 64, Threads: 1}, 2, 3, reg)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var running, peak atomic.Int64
	block := func() {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 4 { // 2 run, 2 wait
		wg.Go(func() { errs <- h.run(context.Background(), block) })
	}
	waitFor(t, func() bool { return running.Load() == 2 && h.waiting.Load() == 2 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.run(ctx, block); !errors.Is(err, context.Canceled) {
		t.Errorf("a caller that gave up: %v, want its context's error", err)
	}
	wg.Go(func() { errs <- h.run(context.Background(), block) }) // the line's third place
	waitFor(t, func() bool { return h.waiting.Load() == 3 })
	if got := testutil.ToFloat64(h.waitingGauge); got != 3 {
		t.Errorf("waiting gauge %v, want 3", got)
	}
	if err := h.run(context.Background(), block); !errors.Is(err, ErrHasherBusy) {
		t.Errorf("a caller beyond the line: %v, want ErrHasherBusy", err)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a queued caller: %v", err)
		}
	}
	if peak.Load() != 2 {
		t.Errorf("%d hashes ran at once, want at most the 2 slots", peak.Load())
	}
	if got := testutil.ToFloat64(h.rejected); got != 1 {
		t.Errorf("rejected %v, want 1", got)
	}

	enc, err := h.Hash(context.Background(), "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.Check(context.Background(), "correct horse", enc); !ok || err != nil {
		t.Errorf("check of the right password: %v %v", ok, err)
	}
	if ok, _ := h.Check(context.Background(), "wrong", enc); ok {
		t.Errorf("a wrong password matched")
	}
	// Every hash that got a slot (5 blocked ones, one hash, two checks) is counted in both the
	// wait and the duration histograms; the refused and the cancelled ones in neither.
	for _, name := range []string{"scalestack_password_hash_wait_seconds", "scalestack_password_hash_duration_seconds"} {
		if got := histogramCount(t, reg, name); got != 8 {
			t.Errorf("%s counted %d hashes, want 8", name, got)
		}
	}
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("%s is not registered", name)
	return 0
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkHashPassword is one argon2id hash with the default parameters: the CPU a signup or a
// login costs (docs/benchmarks.md divides the mix's signups by it).
func BenchmarkHashPassword(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := HashPassword("correct horse battery staple", DefaultHashParams); err != nil {
			b.Fatal(err)
		}
	}
}
