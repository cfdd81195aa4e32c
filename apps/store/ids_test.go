package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/pkg/shard"
)

// Two processes (two generators) whose clocks read the same millisecond propose the same IDs;
// minted through the shard's primary they never collide, whatever the interleaving, stay on their
// logical shard, and carry into the next millisecond when a millisecond's 1024 sequence numbers
// are used up. Real MariaDB on a free port.
func TestIDsUniqueAcrossProcesses(t *testing.T) {
	srv := localservers.StartMariaDB(t)
	m, err := shard.Build(1, func(int) (string, string) { return srv.Addr(), "" })
	if err != nil {
		t.Fatal(err)
	}
	s := openMigrated(t, m)
	db := s.All()[0]

	frozen := func() time.Time { return shard.Epoch.Add(42 * time.Hour) }
	procs := []*IDs{NewIDsWith(shard.NewGeneratorOn(frozen)), NewIDsWith(shard.NewGeneratorOn(frozen))}
	// The candidates alone collide: this is the case the clock row exists for.
	a, _ := shard.NewGeneratorOn(frozen).Next(7)
	b, _ := shard.NewGeneratorOn(frozen).Next(7)
	if a != b {
		t.Fatalf("two generators on one clock proposed %s and %s; the test needs them to collide", a, b)
	}

	const workers, perWorker = 3, 400 // 2 x 3 x 400 = 2400 IDs on one logical shard: two carries
	logicals := []int{7, shard.LogicalShards - 1}
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[shard.ID]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, len(procs)*workers)
	for _, p := range procs {
		for w := range workers {
			wg.Go(func() {
				for i := range perWorker {
					logical := logicals[(w+i)%len(logicals)]
					var id shard.ID
					var err error
					if i%2 == 0 { // in the transaction that writes the row, as a post's insert does
						tx, terr := db.Primary.BeginTx(ctx, nil)
						if terr != nil {
							errs <- terr
							return
						}
						id, err = p.Next(ctx, tx, logical)
						if err == nil {
							err = tx.Commit()
						} else {
							_ = tx.Rollback()
						}
					} else { // on the pool, as a signup does before it claims the handle
						id, err = p.Next(ctx, db.Primary, logical)
					}
					if err != nil {
						errs <- err
						return
					}
					if id.Logical() != logical {
						t.Errorf("minted %s on logical shard %d: it carries %d", id, logical, id.Logical())
					}
					mu.Lock()
					if seen[id] {
						t.Errorf("id %s minted twice", id)
					}
					seen[id] = true
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != len(procs)*workers*perWorker {
		t.Fatalf("%d distinct ids, want %d", len(seen), len(procs)*workers*perWorker)
	}
	var last shard.ID
	if err := db.Primary.QueryRowContext(ctx, "SELECT last_id FROM id_clock WHERE logical = 7").Scan(&last); err != nil {
		t.Fatal(err)
	}
	base := shard.NewID(frozen().Sub(shard.Epoch).Milliseconds(), 7, 0)
	if want := base.Time().Add(time.Millisecond); last.Time().Before(want) {
		t.Errorf("1200 ids on logical shard 7 in one frozen millisecond should carry into %s; the last is at %s", want, last.Time())
	}

	// A rolled-back mint leaves no trace: nothing holds its ID, and the next mint on that logical
	// shard is whatever the proposing process offers (here procs[1]'s own, lower, sequence).
	tx, err := db.Primary.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := procs[0].Next(ctx, tx, 9); err != nil {
		t.Fatal(err)
	}
	_ = tx.Rollback()
	again, err := procs[1].Next(ctx, db.Primary, 9)
	if err != nil || again.Logical() != 9 {
		t.Errorf("after a rollback the next id is %s (%v)", again, err)
	}
	if seen[again] {
		t.Errorf("after a rollback, id %s was minted a second time", again)
	}
}
