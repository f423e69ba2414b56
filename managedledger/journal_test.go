package managedledger

// TestJournalModel is a model-based test of the shared journal alone
// (journal.go): random bursts of records of a few ledger names go in,
// synchronously or left in flight, with write and fsync failures injected
// (segment.FaultFS) and recovered from, releases and file deletions, small
// files (frequent rotation), clean restarts and power losses (crashFS of
// powerloss_test.go: every write not yet fsynced is lost, kept, or torn
// mid-frame). After every reopen the records the journal replays are
// compared with the model:
//
//   - every acknowledged record not yet released is there, byte for byte;
//   - per name, records come in submission order, each at most once;
//   - nothing that was never submitted, and no record that failed before a
//     successful recovery (recovery cuts the file back and syncs);
//   - extras are only records submitted but not acknowledged (in flight or
//     failed without a recovery before the crash) or released ones whose
//     file was not deleted yet: the contract allows both.
//
// And a liveness check: once every record is released, deleteReleased
// leaves only the file being written.
//
// -ml.seed and -ml.duration (model_test.go) apply.

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/segment"
)

func TestJournalModel(t *testing.T) {
	if *modelSeed != 0 {
		runJournalRound(t, *modelSeed)
		return
	}
	master := splitmix64(uint64(time.Now().UnixNano()))
	t.Logf("first round seed %d", splitmix64(master))
	deadline := time.Now().Add(max(*modelDuration/2, time.Second))
	rounds, ops := 0, 0
	for rounds == 0 || time.Now().Before(deadline) {
		ops += runJournalRound(t, splitmix64(master+uint64(rounds)))
		rounds++
	}
	t.Logf("%d rounds, %d operations", rounds, ops)
}

// Record states in the journal model.
const (
	jmInFlight  = iota // submitted, no completion seen (yet)
	jmAcked            // completed without error
	jmFailed           // completed with an error; may survive a crash
	jmCancelled        // failed, and a recovery succeeded after: must never come back
)

type jmRec struct {
	name     string
	pos      Position
	data     []byte
	state    int
	released bool
}

type journalRig struct {
	t       testing.TB
	seed    uint64
	rng     *rand.Rand
	cfs     *crashFS
	ffs     *segment.FaultFS
	j       *journal
	opts    journalOptions
	mu      sync.Mutex // guards rec.state against completions, and crashed
	crashed bool
	recs    []*jmRec
	byName  map[string][]*jmRec
	next    map[string]Position // next position per name
	history []string
	op      int
}

var jmNames = []string{"t/a", "t/b-0", "tenant/ns/persistent/c-partition-7"}

func runJournalRound(t testing.TB, seed uint64) int {
	rng := rand.New(rand.NewPCG(seed, seed^0x10a1))
	r := &journalRig{t: t, seed: seed, rng: rng, cfs: newCrashFS(), byName: map[string][]*jmRec{}, next: map[string]Position{}}
	r.opts = journalOptions{
		Dir: "/data/journal", Log: quietLogger(), RetryInterval: -1,
		MaxFileBytes: pick[int64](rng, 200, 1<<10, 8<<10),
		Prealloc:     pick[int64](rng, 0, 512, 4<<10),
	}
	r.ffs = &segment.FaultFS{FS: r.cfs}
	r.reopen("open")
	defer func() {
		if r.j != nil {
			r.j.close()
		}
	}()
	n := *modelOps / 2
	for r.op = 0; r.op < n; r.op++ {
		switch x := rng.IntN(100); {
		case x < 30:
			r.opWrite()
		case x < 35:
			r.opBarrier()
		case x < 45:
			r.opFault()
		case x < 60:
			r.opRelease()
		case x < 65:
			r.opReleaseAll()
		case x < 75:
			r.opRestart()
		case x < 87:
			r.opCrash(false)
		default:
			r.opCrash(true)
		}
	}
	return n
}

func (r *journalRig) log(format string, args ...any) {
	s := fmt.Sprintf("%4d ", r.op) + fmt.Sprintf(format, args...)
	if len(r.history) == historyLen {
		r.history = r.history[1:]
	}
	r.history = append(r.history, s)
}

func (r *journalRig) fail(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("journal model, seed %d (reproduce: -run 'TestJournalModel$' -ml.seed=%d), op %d, MaxFileBytes %d, Prealloc %d:\n%s\nlast operations:\n  %s",
		r.seed, r.seed, r.op, r.opts.MaxFileBytes, r.opts.Prealloc,
		fmt.Sprintf(format, args...), joinLines(r.history))
}

func joinLines(ss []string) string {
	var b bytes.Buffer
	for i, s := range ss {
		if i > 0 {
			b.WriteString("\n  ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// submit sends one new record of a random name; false: refused (the
// journal is failed or closed), which the model also records as failed.
func (r *journalRig) submit(wg *sync.WaitGroup) *jmRec {
	name := pick(r.rng, jmNames...)
	p := r.next[name]
	if r.rng.IntN(8) == 0 {
		p = Position{LedgerID: p.LedgerID + 1} // a rollover
	}
	r.next[name] = Position{LedgerID: p.LedgerID, EntryID: p.EntryID + 1}
	data := make([]byte, pick(r.rng, 0, 1, 40, 300))
	for i := range data {
		data[i] = byte(r.rng.Uint32())
	}
	rec := &jmRec{name: name, pos: p, data: data}
	r.recs = append(r.recs, rec)
	r.byName[name] = append(r.byName[name], rec)
	sr := segment.Record{EntryID: p.EntryID, FirstIndex: p.EntryID * 3, PublishTime: int64(len(r.recs)), MsgCount: 3,
		Producer: "p", SeqFirst: int64(len(r.recs)), Data: data}
	wg.Add(1)
	err := r.j.append(name, p.LedgerID, &sr, func(err error) {
		defer wg.Done()
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.crashed {
			return // after the power cut: not an acknowledgement that counts
		}
		if err != nil {
			rec.state = jmFailed
		} else {
			rec.state = jmAcked
		}
	})
	if err != nil {
		wg.Done()
		r.mu.Lock()
		rec.state = jmCancelled // never submitted
		r.mu.Unlock()
	}
	return rec
}

func (r *journalRig) burst(wait bool) (n int) {
	var wg sync.WaitGroup
	n = 1 + r.rng.IntN(12)
	for range n {
		r.submit(&wg)
	}
	if wait {
		wg.Wait()
	}
	return n
}

func (r *journalRig) opWrite() {
	if err := r.j.recoverNow(); err != nil {
		r.fail("recovery with no fault set: %v", err)
	}
	r.markCancelled()
	from := len(r.recs)
	n := r.burst(true)
	for _, rec := range r.recs[from:] {
		if rec.state != jmAcked {
			r.fail("record %s %v failed with no fault set (state %d)", rec.name, rec.pos, rec.state)
		}
	}
	r.log("write %d records", n)
}

// opBarrier waits for a round that writes no frame (what a ledger's
// storage recovery issues), then submits bursts without waiting between
// them, so that submitters append while the writer writes: a round that
// wrote nothing once left the submitters' buffer and the writer's spare
// one the same array, and later groups reached the file torn.
func (r *journalRig) opBarrier() {
	if err := r.j.recoverNow(); err != nil {
		r.fail("recovery with no fault set: %v", err)
	}
	r.markCancelled()
	r.j.barrier()
	from := len(r.recs)
	var wg sync.WaitGroup
	n := 0
	for range 2 + r.rng.IntN(6) {
		k := 1 + r.rng.IntN(12)
		for range k {
			r.submit(&wg)
		}
		n += k
	}
	wg.Wait()
	for _, rec := range r.recs[from:] {
		if rec.state != jmAcked {
			r.fail("record %s %v failed with no fault set (state %d)", rec.name, rec.pos, rec.state)
		}
	}
	r.log("barrier, then %d records in flight together", n)
}

// opFault fails writes or fsyncs of the journal for one burst: every
// record of it fails, then the fault is cleared and, usually, the journal
// recovers.
func (r *journalRig) opFault() {
	if err := r.j.recoverNow(); err != nil {
		r.fail("recovery with no fault set: %v", err)
	}
	r.markCancelled()
	what := pick(r.rng, "write", "sync")
	err := pick(r.rng, syscall.EIO, syscall.ENOSPC)
	if what == "write" {
		r.ffs.FailWrites(journalSuffix, err)
	} else {
		r.ffs.FailSyncs(journalSuffix, err)
	}
	from := len(r.recs)
	n := r.burst(true)
	for _, rec := range r.recs[from:] {
		if rec.state == jmAcked {
			r.fail("record %s %v acknowledged while %ss fail", rec.name, rec.pos, what)
		}
	}
	if jerr := r.j.err(); !errors.Is(jerr, ErrStorage) || errors.Is(jerr, ErrDiskFull) != (err == syscall.ENOSPC) {
		r.fail("journal error after a failed %s (%v): %v", what, err, jerr)
	}
	// Recovery is refused while the fault lasts.
	if err := r.j.recoverNow(); err == nil {
		r.fail("journal recovered while %ss fail", what)
	}
	r.ffs.FailWrites(journalSuffix, nil)
	r.ffs.FailSyncs(journalSuffix, nil)
	recovered := r.rng.IntN(3) > 0
	if recovered {
		if err := r.j.recoverNow(); err != nil {
			r.fail("recovery after the fault cleared: %v", err)
		}
		r.markCancelled()
	}
	r.log("fault: %s %v for %d records, recovered %v", what, err, n, recovered)
}

// markCancelled: the journal is healthy after a recovery, which cut
// every failed record out of the file for good.
func (r *journalRig) markCancelled() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.state == jmFailed {
			rec.state = jmCancelled
		}
	}
}

func (r *journalRig) opRelease() {
	name := pick(r.rng, jmNames...)
	rs := r.byName[name]
	if len(rs) == 0 {
		return
	}
	// Only up to acknowledged records, as a ledger releases visible ones.
	k := r.rng.IntN(len(rs))
	for k >= 0 && rs[k].state != jmAcked {
		k--
	}
	if k < 0 {
		return
	}
	upTo := rs[k].pos
	r.j.release(name, upTo)
	for _, rec := range rs[:k+1] {
		rec.released = true
	}
	before := r.j.fileCount()
	r.j.deleteReleased()
	r.log("release %s up to %v: files %d -> %d", name, upTo, before, r.j.fileCount())
}

// opReleaseAll releases everything submitted; then only the file being
// written may remain.
func (r *journalRig) opReleaseAll() {
	for _, name := range jmNames {
		rs := r.byName[name]
		if len(rs) == 0 {
			continue
		}
		r.j.release(name, rs[len(rs)-1].pos)
		for _, rec := range rs {
			rec.released = true
		}
	}
	r.j.deleteReleased()
	if n := r.j.fileCount(); n != 1 {
		r.fail("everything released, %d journal files kept", n)
	}
	r.log("release all: 1 file")
}

// opRestart closes the journal and opens it again on the same files.
func (r *journalRig) opRestart() {
	if err := r.j.close(); err != nil && r.j.err() == nil {
		r.fail("close: %v", err)
	}
	r.j = nil
	// A record that failed without a recovery may come back after a
	// clean restart just as after a crash: the files are read as they are.
	r.reopen("restart")
}

// opCrash cuts power, with a burst in flight when inFlight.
func (r *journalRig) opCrash(inFlight bool) {
	if inFlight {
		if err := r.j.recoverNow(); err == nil {
			r.markCancelled()
			r.burst(false)
		}
	}
	r.mu.Lock()
	nfs := r.cfs.crash(r.rng)
	r.crashed = true
	r.mu.Unlock()
	r.ffs.FailWrites(journalSuffix, nil)
	r.ffs.FailSyncs(journalSuffix, nil)
	r.j.close() // its writes go to the discarded file system
	r.mu.Lock()
	r.crashed = false
	r.mu.Unlock()
	r.j = nil
	r.cfs = nfs
	r.ffs = &segment.FaultFS{FS: nfs}
	r.reopen(fmt.Sprintf("power loss (in flight: %v)", inFlight))
}

// reopen opens the journal on r.ffs, checks what it replays and then
// releases all of it (as the factory does once ledgers have replayed).
func (r *journalRig) reopen(why string) {
	r.opts.FS = r.ffs
	j, replay, err := openJournal(r.opts)
	if err != nil {
		r.fail("%s: open: %v", why, err)
	}
	r.j = j
	total := 0
	for name, got := range replay {
		total += len(got)
		r.checkReplay(name, got)
	}
	for name := range r.byName {
		if _, ok := replay[name]; !ok {
			r.checkReplay(name, nil)
		}
	}
	r.log("%s: %d records replayed, %d files", why, total, j.fileCount())
	// In-flight records left over are in flight no more: they either made
	// it (replayed) or not; either way the model forgets them now.
	r.mu.Lock()
	for _, rec := range r.recs {
		if rec.state == jmInFlight || rec.state == jmFailed {
			rec.state = jmCancelled
		}
	}
	r.mu.Unlock()
	for _, name := range jmNames {
		if rs := r.byName[name]; len(rs) > 0 {
			j.release(name, rs[len(rs)-1].pos)
			for _, rec := range rs {
				rec.released = true
			}
		}
	}
	j.deleteReleased()
}

// checkReplay compares one name's replayed records with the model.
func (r *journalRig) checkReplay(name string, got []jrec) {
	rs := r.byName[name]
	if len(got) > 0 && len(rs) == 0 {
		r.fail("replay: %d records of %s, which was never written", len(got), name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := 0 // next model record a replayed one may match
	for i := range got {
		g := &got[i]
		if g.kind != jKindEntry {
			r.fail("replay: %s: unexpected record kind %d", name, g.kind)
		}
		p := Position{LedgerID: g.ledgerID, EntryID: g.rec.EntryID}
		// Skip model records that were not replayed: allowed if released,
		// never acknowledged, or cancelled.
		for k < len(rs) && rs[k].pos.Less(p) {
			if rs[k].state == jmAcked && !rs[k].released {
				r.fail("replay: %s: acknowledged record %v is missing (next replayed %v)", name, rs[k].pos, p)
			}
			k++
		}
		if k == len(rs) || rs[k].pos != p {
			r.fail("replay: %s: record %v was never submitted, or comes out of order", name, p)
		}
		m := rs[k]
		if m.state == jmCancelled {
			// Cancelled records that never reached the journal cannot be
			// here; ones that failed before a recovery must not be.
			r.fail("replay: %s: record %v came back although it failed and the journal recovered (or it was refused)", name, p)
		}
		if !bytes.Equal(g.rec.Data, m.data) || g.rec.FirstIndex != p.EntryID*3 || g.rec.MsgCount != 3 || g.rec.Producer != "p" {
			r.fail("replay: %s: record %v differs from what was written", name, p)
		}
		k++
	}
	for ; k < len(rs); k++ {
		if rs[k].state == jmAcked && !rs[k].released {
			r.fail("replay: %s: acknowledged record %v is missing (%d replayed)", name, rs[k].pos, len(got))
		}
	}
}

// TestJournalTail: cuts, rewrites after a cut and gaps, as replay applies them.
func TestJournalTail(t *testing.T) {
	e := func(ledger, entry int64) jrec {
		return jrec{kind: jKindEntry, ledgerID: ledger, rec: segment.Record{EntryID: entry, MsgCount: 1}}
	}
	c := func(ledger, from int64) jrec {
		return jrec{kind: jKindCut, ledgerID: ledger, rec: segment.Record{EntryID: from}}
	}
	ids := func(rs []segment.Record) []int64 {
		var out []int64
		for _, r := range rs {
			out = append(out, r.EntryID)
		}
		return out
	}
	for _, tc := range []struct {
		recs    []jrec
		from    int64
		want    []int64
		corrupt bool
	}{
		{[]jrec{e(1, 0), e(1, 1), e(1, 2)}, 1, []int64{1, 2}, false},
		{[]jrec{e(1, 0), e(1, 1), e(1, 2)}, 3, nil, false},
		{[]jrec{e(1, 0), e(2, 0), e(1, 1)}, 0, []int64{0, 1}, false},
		// Failed 2, 3; cut at 2; rewritten 2.
		{[]jrec{e(1, 1), e(1, 2), e(1, 3), c(1, 2), e(1, 2)}, 1, []int64{1, 2}, false},
		{[]jrec{e(1, 1), e(1, 2), e(1, 3), c(1, 2)}, 2, nil, false},
		// The journal starts after the segment's end: entries are missing.
		{[]jrec{e(1, 5), e(1, 6)}, 3, nil, true},
		{[]jrec{e(1, 5), e(1, 6)}, 5, []int64{5, 6}, false},
	} {
		got, err := journalTail(tc.recs, 1, tc.from)
		if (err != nil) != tc.corrupt || (err != nil && !errors.Is(err, ErrCorrupt)) {
			t.Fatalf("%v from %d: error %v, want corrupt %v", tc.recs, tc.from, err, tc.corrupt)
		}
		if g := ids(got); !slicesEqual(g, tc.want) {
			t.Fatalf("%v from %d: %v, want %v", tc.recs, tc.from, g, tc.want)
		}
	}
}

func slicesEqual(a, b []int64) bool {
	sort.Slice(a, func(i, j int) bool { return a[i] < a[j] })
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestJournalCutSurvivesPowerLoss: an append whose journal record became
// durable but whose segment write failed is not acknowledged; the ledger
// recovers in place, and after a power loss the journal's replay must not
// bring the failed entry back (the recovery's cut record cancels it),
// while an entry appended after the recovery at the same entry id must
// come back with its own bytes.
func TestJournalCutSurvivesPowerLoss(t *testing.T) {
	for _, appendAfter := range []bool{false, true} {
		t.Run(fmt.Sprintf("append-after-recovery=%v", appendAfter), func(t *testing.T) {
			ctx := t.Context()
			rng := rand.New(rand.NewPCG(1, 2))
			cfs := newCrashFS()
			ffs := &segment.FaultFS{FS: cfs}
			var store metadata.Store = metadata.NewMemory()
			open := func(fs segment.FS, st metadata.Store) (*Factory, *ManagedLedger) {
				f, err := NewFactory(FactoryOptions{Dir: "/data", FS: fs, Store: st, Logger: quietLogger(),
					RetentionInterval: -1, StorageRetryInterval: 2 * time.Millisecond, CheckpointInterval: -1})
				if err != nil {
					t.Fatal(err)
				}
				ml, err := f.Open(ctx, "cut/t", Config{})
				if err != nil {
					t.Fatal(err)
				}
				return f, ml
			}
			f, ml := open(ffs, store)
			appendEntries(t, ml, 0, 5, 1)
			// The active file exists (not deferred to a checkpoint), so
			// that the next segment write reaches it.
			ml.mu.Lock()
			seg := ml.activeLocked().seg
			ml.mu.Unlock()
			if err := seg.Materialize(); err != nil {
				t.Fatal(err)
			}
			ffs.FailWrites(".log", syscall.EIO) // the journal's write works, the segment's fails
			if _, err := ml.Append(ctx, Entry{Format: FormatKafka, MsgCount: 1, Data: payload(100), Producer: "p", SeqFirst: 100}); !errors.Is(err, ErrStorage) {
				t.Fatalf("append with a failing segment write: %v", err)
			}
			ffs.FailWrites(".log", nil)
			waitFor(t, 5*time.Second, func() bool { _, err := ml.StorageFailure(); return err == nil })
			want := 5
			if appendAfter {
				appendEntries(t, ml, 5, 1, 1)
				want = 6
			}
			// Power loss: whatever was not fsynced may be lost or torn.
			newStore := copyStore(t, store)
			nfs := cfs.crash(rng)
			f.Close()
			f, ml = open(nfs, newStore)
			defer f.Close()
			got := readAll(t, ml)
			checkContinuous(t, got, 0)
			if len(got) != want {
				t.Fatalf("%d entries after the power loss, want %d (replayed %d)", len(got), want, f.replayed.Load())
			}
			for i, e := range got {
				if e.SeqFirst == 100 || !bytes.Equal(e.Data, payload(i)) {
					t.Fatalf("entry %d: seq %d: the failed append came back, or wrong bytes", i, e.SeqFirst)
				}
			}
		})
	}
}

// TestJournalBarrierThenConcurrentAppends: a round that writes no frame
// (barriers only, as a ledger's storage recovery issues) followed by
// appenders that submit while the writer writes. Every acknowledged record
// must come back byte for byte from the files. A round without frames once
// left the submitters' buffer and the writer's spare buffer one array; from
// then on every group was written while submitters appended into it, and
// the files held torn frames (TestRandomIOFaults lost acknowledged entries
// once ledger files were left to the journal alone).
func TestJournalBarrierThenConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	opts := journalOptions{FS: segment.OSFS{}, Dir: dir, Log: quietLogger(), RetryInterval: -1, MaxFileBytes: 64 << 20}
	j, _, err := openJournal(opts)
	if err != nil {
		t.Fatal(err)
	}
	const appenders, perAppender = 4, 1500
	var mu sync.Mutex
	acked := map[string][]byte{} // "name/entry" -> data
	for round := range 4 {
		j.barrier()
		var wg sync.WaitGroup
		for a := range appenders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("t/a%d", a)
				rng := rand.New(rand.NewPCG(uint64(round), uint64(a)))
				var inner sync.WaitGroup
				for i := range perAppender {
					id := int64(round*perAppender + i)
					data := make([]byte, 1+rng.IntN(2000))
					for k := range data {
						data[k] = byte(rng.Uint32())
					}
					inner.Add(1)
					rec := segment.Record{EntryID: id, FirstIndex: id, MsgCount: 1, Data: data}
					err := j.append(name, 0, &rec, func(err error) {
						defer inner.Done()
						if err != nil {
							t.Errorf("append %s %d: %v", name, id, err)
							return
						}
						mu.Lock()
						acked[fmt.Sprintf("%s/%d", name, id)] = data
						mu.Unlock()
					})
					if err != nil {
						t.Errorf("submit: %v", err)
						inner.Done()
					}
					if i%200 == 0 {
						j.barrier() // more rounds without frames, mid-stream
					}
				}
				inner.Wait()
			}()
		}
		wg.Wait()
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	j, replay, err := openJournal(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	found := 0
	for name, recs := range replay {
		for _, r := range recs {
			key := fmt.Sprintf("%s/%d", name, r.rec.EntryID)
			if want, ok := acked[key]; ok && bytes.Equal(want, r.rec.Data) {
				found++
				delete(acked, key)
			}
		}
	}
	if len(acked) > 0 {
		t.Fatalf("%d of %d acknowledged records are not in the journal byte for byte after a reopen", len(acked), len(acked)+found)
	}
}
