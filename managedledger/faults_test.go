package managedledger

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/segment"
)

var faultRounds = flag.Int("ml.fault-rounds", 6, "TestRandomIOFaults: rounds")

// TestRandomIOFaults: appenders write to a few journalled ledgers with small
// ledger files (frequent rollovers, files deferred and created past 64 KiB
// or by a checkpoint every few ms) while write (ENOSPC) and fsync (EIO)
// failures come and go on one ledger's files, the journal or everything.
// Appends fail and ledgers recover in place by themselves. Once the faults
// stop every ledger must recover, hold every acknowledged entry exactly
// once in order (unacknowledged ones may or may not be there), and hold
// the same after a restart. The in-process counterpart of the server's
// TestVerifyUnderIOFaults; it runs in seconds and names the seed.
func TestRandomIOFaults(t *testing.T) {
	for round := range *faultRounds {
		seed := uint64(time.Now().UnixNano()) + uint64(round)
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { runIOFaults(t, seed) })
	}
}

func runIOFaults(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 9))
	ffs := &segment.FaultFS{FS: segment.OSFS{}}
	e := newEnv(t, t.TempDir())
	e.f.Close()
	e.opts.FS = ffs
	logs := &lockedBuffer{}
	e.opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.opts.StorageRetryInterval = 5 * time.Millisecond
	e.opts.CheckpointInterval = time.Duration(5+rng.IntN(50)) * time.Millisecond
	e.opts.JournalFileBytes = 256 << 10
	e.start()
	ctx := context.Background()
	names := []string{"f/a", "f/b", "f/c"}
	cfg := Config{MaxLedgerBytes: int64(16<<10 + rng.IntN(96<<10))}
	mls := make([]*ManagedLedger, len(names))
	for i, n := range names {
		mls[i] = e.open(n, cfg)
	}
	var mu sync.Mutex
	acked := make([]map[string]bool, len(names))
	for i := range acked {
		acked[i] = map[string]bool{}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := r.IntN(len(names))
				v := fmt.Sprintf("w%d-%06d-%s", w, n, bytes.Repeat([]byte{'v'}, r.IntN(3000)))
				if _, err := mls[i].Append(ctx, Entry{Format: FormatKafka, MsgCount: 1, Data: []byte(v)}); err == nil {
					mu.Lock()
					acked[i][v] = true
					mu.Unlock()
				} else if !errors.Is(err, ErrStorage) {
					t.Errorf("append: %v", err)
					return
				} else {
					time.Sleep(time.Millisecond)
				}
			}
		}(w)
	}
	deadline := time.Now().Add(2 * time.Second)
	faults := 0
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		target := ""
		switch rng.IntN(3) {
		case 0:
			target = names[rng.IntN(len(names))] + "/"
		case 1:
			target = journalSuffix
		}
		if rng.IntN(2) == 0 {
			ffs.FailWrites(target, syscall.ENOSPC)
		} else {
			ffs.FailSyncs(target, syscall.EIO)
		}
		faults++
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		ffs.FailWrites(target, nil)
		ffs.FailSyncs(target, nil)
	}
	close(stop)
	wg.Wait()
	for i, ml := range mls {
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if _, err := ml.StorageFailure(); err == nil {
				break
			}
		}
		if _, err := ml.StorageFailure(); err != nil {
			t.Fatalf("seed %d: %s did not recover after the faults stopped: %v\nlog tail:\n%s", seed, names[i], err, logs.tail(names[i], 600))
		}
	}
	check := func(when string) {
		for i, ml := range mls {
			seen := map[string]int{}
			for _, en := range readAll(t, ml) {
				seen[string(en.Data)]++
			}
			for v := range acked[i] {
				if seen[v] != 1 {
					t.Fatalf("seed %d, %s, %s: acknowledged entry %.20s... read %d times (%d faults)", seed, when, names[i], v, seen[v], faults)
				}
			}
		}
	}
	check("after recovery")
	e.restart()
	for i, n := range names {
		mls[i] = e.open(n, cfg)
	}
	check("after restart")
}

// lockedBuffer collects log lines for a failure message.
type lockedBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, string(p))
	return len(p), nil
}

// tail returns the last n lines mentioning name.
func (b *lockedBuffer) tail(name string, n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range b.lines {
		if strings.Contains(l, name) {
			out = append(out, l)
		}
	}
	end := len(out)
	for i, l := range out {
		if strings.Contains(l, "after recovery") { // the first hopeless attempt
			end = i + 1
			break
		}
	}
	return strings.Join(out[max(0, end-n):end], "")
}
