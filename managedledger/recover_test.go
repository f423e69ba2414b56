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
	for _, path := range syncPaths {
		t.Run(path.name, func(t *testing.T) { testStorageRecoveryDeterministic(t, path.perLedger, path.syncFile) })
	}
}

// testStorageRecoveryDeterministic faults the file an acknowledgement
// waits for: the ledger's log (per-ledger path) or the journal.
func testStorageRecoveryDeterministic(t *testing.T, perLedger bool, syncFile string) {
	ffs := &segment.FaultFS{FS: segment.OSFS{}}
	e := newEnv(t, t.TempDir())
	e.f.Close()
	e.opts.FS = ffs
	e.opts.StorageRetryInterval = 10 * time.Millisecond
	e.opts.PerLedgerSync = perLedger
	e.start()
	ctx := context.Background()
	ml := e.open("disk/full", Config{})
	appendEntries(t, ml, 0, 5, 1)

	for i, fault := range []struct {
		set  func(error)
		err  error
		full bool
	}{
		{func(err error) { ffs.FailWrites(syncFile, err) }, syscall.ENOSPC, true},
		{func(err error) { ffs.FailSyncs(syncFile, err) }, syscall.EIO, false},
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
		name      string
		file      bool
		sync      SyncMode
		perLedger bool
	}{
		{"file-always", true, SyncAlways, false},
		{"file-always-per-ledger", true, SyncAlways, true},
		{"file-interval", true, SyncInterval, false},
		{"memory", false, SyncAlways, false},
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
			e.opts.PerLedgerSync = mode.perLedger
			e.opts.JournalFileBytes = 16 << 10 // rotations under faults
			e.opts.CheckpointInterval = 3 * time.Millisecond
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
		func(err error) { ffs.FailWrites(journalSuffix, err) },
		func(err error) { ffs.FailSyncs(journalSuffix, err) },
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

// TestAsyncOutcomesUnderSyncFailures: many appends in flight at once (as a
// Pulsar producer keeps them), so that a group fsync often covers entries
// whose waiters joined the next round, rollovers, and fsyncs that fail now
// and then. An append told it failed must not be in the log after recovery
// (its producer resends it: it would be there twice), and every
// acknowledged one must be. It found a rollover's failed seal failing
// waiters whose entries the syncer's fsync in flight then made durable.
func TestAsyncOutcomesUnderSyncFailures(t *testing.T) {
	for _, path := range syncPaths {
		t.Run(path.name, func(t *testing.T) { testAsyncOutcomesUnderSyncFailures(t, path.perLedger) })
	}
}

// testAsyncOutcomesUnderSyncFailures fails the fsyncs of ledger logs and,
// in journal mode, of the journal (an acknowledgement waits for the
// journal's; a checkpoint for the logs').
func testAsyncOutcomesUnderSyncFailures(t *testing.T, perLedger bool) {
	ctx := context.Background()
	ffs, e := faultEnv(t, perLedger)
	ml := e.open("async", Config{Sync: SyncAlways, MaxLedgerBytes: 64 << 10})
	acked, failed := map[int64]int64{}, map[int64]bool{}
	var (
		mu      sync.Mutex
		nextSeq atomic.Int64
		wg      sync.WaitGroup
		stop    = make(chan struct{})
	)
	why := map[int64]string{}
	defer func() {
		if t.Failed() {

			for _, e := range readAll(t, ml) {
				if failed[e.SeqFirst] {
					t.Logf("seq %d at %v: %s", e.SeqFirst, e.Position, why[e.SeqFirst])
				}
			}
		}
	}()
	type inFlight struct {
		seq int64
		p   *Pending
	}
	for w := 0; w < 4; w++ {
		// Like a Pulsar producer: one goroutine appends without waiting,
		// another waits for the outcomes in order.
		queue := make(chan inFlight, 256)
		wg.Add(2)
		go func() {
			defer wg.Done()
			defer close(queue)
			for {
				select {
				case <-stop:
					return
				default:
				}
				seq := nextSeq.Add(1)
				p, err := ml.AppendAsync(Entry{Format: FormatKafka, MsgCount: 1, Data: payload(int(seq)), Producer: "p", SeqFirst: seq})
				if err != nil {
					mu.Lock()
					failed[seq] = true
					why[seq] = "refused: " + err.Error()
					mu.Unlock()
					time.Sleep(100 * time.Microsecond)
					continue
				}
				queue <- inFlight{seq, p}
			}
		}()
		go func() {
			defer wg.Done()
			for f := range queue {
				e, err := f.p.Wait(ctx)
				mu.Lock()
				if err == nil {
					acked[f.seq] = e.FirstIndex
				} else {
					failed[f.seq] = true
					why[f.seq] = "wait: " + err.Error()
				}
				mu.Unlock()
			}
		}()
	}
	deadline := time.Now().Add(time.Second)
	faults := 0
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(2000+rand.IntN(8000)) * time.Microsecond)
		file := ".log"
		if !perLedger && rand.IntN(2) == 0 {
			file = journalSuffix
		}
		ffs.FailSyncs(file, syscall.EIO)
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		ffs.FailSyncs(file, nil)
		faults++
	}
	close(stop)
	wg.Wait()
	waitFor(t, 10*time.Second, func() bool { _, err := ml.StorageFailure(); return err == nil })
	t.Logf("%d faults; %d acked, %d failed appends", faults, len(acked), len(failed))
	checkAgainst(t, readAll(t, ml), acked, failed)
}

// TestFailedRoundSparesCoveredEntries: an entry appended while the syncer
// starts a round is written and fsynced by that round (and so visible), but
// its waiter waits for the next round. When the next round's fsync fails,
// that waiter must still succeed: recovery keeps the entry, and a producer
// told it failed would resend it and store it twice.
//
// The rounds are the per-ledger syncer's (testAfterTake); the journal's
// counterpart is an entry written to the segment but failed by the
// journal, covered by TestJournalModel and the fault tests.
func TestFailedRoundSparesCoveredEntries(t *testing.T) {
	ctx := context.Background()
	ffs, e := faultEnv(t, true)
	ml := e.open("covered", Config{Sync: SyncAlways})
	entry := func(seq int64) Entry {
		return Entry{Format: FormatKafka, MsgCount: 1, Data: payload(int(seq)), Producer: "p", SeqFirst: seq}
	}
	type appended struct {
		p   *Pending
		err error
	}
	hooked := make(chan appended, 2)
	round := 0 // the syncer's alone
	ml.testAfterTake = func() {
		round++
		switch round {
		case 1: // taken: a; b joins and is covered by this round's fsync
			p, err := ml.AppendAsync(entry(2))
			hooked <- appended{p, err}
		case 2: // taken: b; c joins and this round's fsync fails
			ffs.FailSyncs(".log", syscall.EIO)
			p, err := ml.AppendAsync(entry(3))
			hooked <- appended{p, err}
		}
	}
	if _, err := ml.Append(ctx, entry(1)); err != nil {
		t.Fatal(err)
	}
	b, c := <-hooked, <-hooked
	if b.err != nil || c.err != nil {
		t.Fatalf("appends in the hook: %v, %v", b.err, c.err)
	}
	_, bErr := b.p.Wait(ctx)
	_, cErr := c.p.Wait(ctx)
	ffs.FailSyncs(".log", nil)
	if cErr == nil {
		t.Fatal("c succeeded although its fsync failed")
	}
	waitFor(t, 10*time.Second, func() bool { _, err := ml.StorageFailure(); return err == nil })
	acked, failed := map[int64]int64{1: 0}, map[int64]bool{3: true}
	if bErr == nil {
		acked[2] = 1
	} else {
		failed[2] = true
	}
	checkAgainst(t, readAll(t, ml), acked, failed)
}

// faultEnv is a file-backed environment whose ledger files go through a
// FaultFS, retrying recovery every 2 ms.
func faultEnv(t *testing.T, perLedger bool) (*segment.FaultFS, *env) {
	ffs := &segment.FaultFS{FS: segment.OSFS{}}
	e := newEnv(t, t.TempDir())
	e.f.Close()
	e.opts.FS = ffs
	e.opts.StorageRetryInterval = 2 * time.Millisecond
	e.opts.PerLedgerSync = perLedger
	e.opts.CheckpointInterval = 2 * time.Millisecond // log fsyncs (and their faults) often
	e.start()
	return ffs, e
}
