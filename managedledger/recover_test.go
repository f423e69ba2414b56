package managedledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/segment"
)

// TestStorageRecoveryDeterministic: ENOSPC on write, then EIO on fsync; each
// time appends fail with ErrStorage (ErrDiskFull for ENOSPC) while reads of
// visible entries work, and resume by themselves once the fault is cleared.
func TestStorageRecoveryDeterministic(t *testing.T) {
	ffs := &segment.FaultFS{FS: segment.OSFS{}}
	e := newEnv(t, t.TempDir())
	e.f.Close()
	e.opts.FS = ffs
	e.opts.StorageRetryInterval = 10 * time.Millisecond
	e.start()
	ctx := context.Background()
	ml := e.open("disk/full", Config{})
	appendEntries(t, ml, 0, 5, 1)

	for i, fault := range []struct {
		set  func(error)
		err  error
		full bool
	}{
		{func(err error) { ffs.FailWrites(".log", err) }, syscall.ENOSPC, true},
		{func(err error) { ffs.FailSyncs(".log", err) }, syscall.EIO, false},
	} {
		seq := 5 + 2*i
		fault.set(fault.err)
		_, err := ml.Append(ctx, Entry{Format: FormatKafka, MsgCount: 1, Data: payload(seq), Producer: "p", SeqFirst: int64(seq)})
		if !errors.Is(err, ErrStorage) || errors.Is(err, ErrDiskFull) != fault.full {
			t.Fatalf("fault %v: append: %v", fault.err, err)
		}
		if since, err := ml.StorageFailure(); err == nil || since.IsZero() {
			t.Fatalf("fault %v: StorageFailure %v %v", fault.err, since, err)
		}
		if f := e.f.Failed(); len(f) != 1 || f[0].Name != "disk/full" {
			t.Fatalf("Failed() = %v", f)
		}
		// Reads of visible entries keep working; the failed one is not visible.
		if got := readAll(t, ml); len(got) != 5+i {
			t.Fatalf("fault %v: %d entries visible", fault.err, len(got))
		}
		time.Sleep(50 * time.Millisecond) // retries fail while the fault lasts
		if _, err := ml.StorageFailure(); err == nil {
			t.Fatal("recovered while the fault lasts")
		}
		fault.set(nil)
		waitFor(t, 5*time.Second, func() bool { _, err := ml.StorageFailure(); return err == nil })
		got, err := ml.Append(ctx, Entry{Format: FormatKafka, MsgCount: 1, Data: payload(seq + 1), Producer: "p", SeqFirst: int64(seq + 1)})
		if err != nil {
			t.Fatalf("after recovery: %v", err)
		}
		if got.FirstIndex != int64(5+i) {
			t.Fatalf("after recovery the append got index %d, want %d", got.FirstIndex, 5+i)
		}
	}
	if f, r := e.f.StorageCounts(); f != 2 || r != 2 {
		t.Fatalf("counts: %d failures, %d recoveries", f, r)
	}
	checkContinuous(t, readAll(t, ml), 0)
	e.restart()
	ml = e.open("disk/full", Config{})
	all := readAll(t, ml)
	checkContinuous(t, all, 0)
	if len(all) != 7 {
		t.Fatalf("after restart %d entries, want 7", len(all))
	}
}

// TestStorageRecoveryRandomized appends from several goroutines while
// faults (ENOSPC on writes, EIO on fsyncs, of log or index files) come and
// go at random moments, rollovers included, and a reader tails the log.
// Afterwards: every acknowledged entry is there once with its bytes, no
// failed append is, indexes are continuous, the reader never failed; and
// the same after a restart.
func TestStorageRecoveryRandomized(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	for _, mode := range []struct {
		name string
		file bool
		sync SyncMode
	}{
		{"file-always", true, SyncAlways},
		{"file-interval", true, SyncInterval},
		{"memory", false, SyncAlways},
	} {
		t.Run(mode.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 7))
			dir := ""
			var base segment.FS = segment.NewMemFS()
			if mode.file {
				dir = t.TempDir()
				base = segment.OSFS{}
			}
			ffs := &segment.FaultFS{FS: base}
			e := newEnv(t, dir)
			e.f.Close()
			e.opts.FS = ffs
			e.opts.StorageRetryInterval = 5 * time.Millisecond
			e.opts.Prealloc = 4096 // fills fail too, and must not break anything
			e.start()
			cfg := Config{Sync: mode.sync, SyncInterval: 5 * time.Millisecond, MaxLedgerBytes: 8 << 10}
			ml := e.open("rand", cfg)
			acked, failed := runFaultRound(t, rng, ffs, ml)
			e.restart()
			ml = e.open("rand", cfg)
			checkAgainst(t, readAll(t, ml), acked, failed)
		})
	}
}

func runFaultRound(t *testing.T, rng *rand.Rand, ffs *segment.FaultFS, ml *ManagedLedger) (acked map[int64]int64, failed map[int64]bool) {
	ctx := context.Background()
	acked, failed = map[int64]int64{}, map[int64]bool{} // seq -> first index; seqs that failed
	var (
		nextSeq atomic.Int64
		mu      sync.Mutex
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				seq := nextSeq.Add(1)
				e, err := ml.Append(ctx, Entry{Format: FormatKafka, MsgCount: int32(1 + seq%3), Data: payload(int(seq)), Producer: "p", SeqFirst: seq})
				mu.Lock()
				if err == nil {
					acked[seq] = e.FirstIndex
				} else {
					if !errors.Is(err, ErrStorage) {
						t.Errorf("append %d: %v", seq, err)
					}
					failed[seq] = true
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	// A tailing reader: reads never fail and see continuous indexes.
	wg.Add(1)
	go func() {
		defer wg.Done()
		from, next := Earliest, int64(0)
		for {
			select {
			case <-stop:
				return
			default:
			}
			es, err := ml.ReadEntries(ctx, from, 50, 1<<20)
			if err != nil {
				t.Errorf("read during faults: %v", err)
				return
			}
			for _, e := range es {
				if e.FirstIndex != next || !bytes.Equal(e.Data, payload(int(e.SeqFirst))) {
					t.Errorf("reader: entry %v index %d (want %d) seq %d", e.Position, e.FirstIndex, next, e.SeqFirst)
					return
				}
				next = e.LastIndex() + 1
				from = Position{LedgerID: e.Position.LedgerID, EntryID: e.Position.EntryID + 1}
			}
			if len(es) == 0 {
				select {
				case <-ml.Changed():
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
	}()
	faults := []func(error){
		func(err error) { ffs.FailWrites(".log", err) },
		func(err error) { ffs.FailSyncs(".log", err) },
		func(err error) { ffs.FailWrites(".idx", err) },
		func(err error) { ffs.FailSyncs(".idx", err) },
		func(err error) { ffs.FailWrites("", err) },
	}
	for round := 0; round < 12; round++ {
		time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		f := faults[rng.IntN(len(faults))]
		err := syscall.ENOSPC
		if rng.IntN(2) == 0 {
			err = syscall.EIO
		}
		f(err)
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
		f(nil)
	}
	// Writes resume by themselves.
	waitFor(t, 10*time.Second, func() bool {
		_, err := ml.Append(ctx, Entry{Format: FormatKafka, MsgCount: 1, Data: payload(0), Producer: "p", SeqFirst: 0})
		if err == nil {
			mu.Lock()
			acked[0] = -1
			mu.Unlock()
		}
		return err == nil
	})
	close(stop)
	wg.Wait()
	fails, recs := ml.factory.StorageCounts()
	t.Logf("%d acked, %d failed appends; %d ledger failures, %d recoveries", len(acked), len(failed), fails, recs)
	checkAgainst(t, readAll(t, ml), acked, failed)
	return acked, failed
}

// checkAgainst verifies the log against what appenders were told.
func checkAgainst(t *testing.T, got []Entry, acked map[int64]int64, failed map[int64]bool) {
	t.Helper()
	seen := map[int64]bool{}
	next := int64(0)
	for _, e := range got {
		if e.FirstIndex != next {
			t.Fatalf("entry %v: index %d, want %d", e.Position, e.FirstIndex, next)
		}
		next = e.LastIndex() + 1
		if !bytes.Equal(e.Data, payload(int(e.SeqFirst))) {
			t.Fatalf("entry %v: wrong bytes for seq %d", e.Position, e.SeqFirst)
		}
		if seen[e.SeqFirst] && e.SeqFirst != 0 {
			t.Fatalf("seq %d twice", e.SeqFirst)
		}
		seen[e.SeqFirst] = true
		if failed[e.SeqFirst] {
			t.Fatalf("seq %d failed but is in the log at %v", e.SeqFirst, e.Position)
		}
		if idx, ok := acked[e.SeqFirst]; ok && idx >= 0 && idx != e.FirstIndex {
			t.Fatalf("seq %d acked at index %d, found at %d", e.SeqFirst, idx, e.FirstIndex)
		}
	}
	for seq := range acked {
		if !seen[seq] {
			t.Fatalf("acknowledged seq %d lost (%d entries in the log)", seq, len(got))
		}
	}
	if len(got) == 0 {
		t.Fatal(fmt.Errorf("empty log"))
	}
}
