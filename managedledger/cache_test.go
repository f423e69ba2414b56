package managedledger

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// cachedRun returns the positions in ml's entry cache.
func cachedRun(ml *ManagedLedger) []Position {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	var out []Position
	for _, e := range ml.mu.cache.entries {
		out = append(out, e.Position)
	}
	return out
}

// TestEntryCache: recent entries are served from memory with the same
// content and metadata as from files, across a rollover; the budget
// evicts the oldest first and never leaves a gap; a reopened ledger reads
// its files; trimming by age and closing free the budget.
func TestEntryCache(t *testing.T) {
	e := newEnv(t, t.TempDir())
	e.opts.CacheBytes = 1000
	e.restart()
	ml := e.open("t/cache", Config{MaxLedgerBytes: 1200})
	appended := appendEntries(t, ml, 0, 60, 2) // ~25-60 bytes each, several ledgers

	run := cachedRun(ml)
	if len(run) == 0 || len(run) == len(appended) {
		t.Fatalf("cached %d of %d entries: want the newest, within 1000 bytes", len(run), len(appended))
	}
	for i, p := range run {
		if want := appended[len(appended)-len(run)+i].Position; p != want {
			t.Fatalf("cached run %v does not end with the newest entries (at %d: %v, want %v)", run, i, p, want)
		}
	}
	if used := e.f.cacheUsed.Load(); used > 1000 || used <= 0 {
		t.Fatalf("cache uses %d bytes, budget 1000", used)
	}
	if run[0].LedgerID == run[len(run)-1].LedgerID {
		t.Fatalf("want a run across a rollover, got %v", run)
	}

	// Reads from the cache (first cached entry on), from files (before
	// it), and across the boundary agree with what was appended.
	all := readAll(t, ml)
	checkContinuous(t, all, 0)
	if len(all) != len(appended) {
		t.Fatalf("read %d entries, appended %d", len(all), len(appended))
	}
	for i, got := range all {
		want := appended[i]
		if got.Position != want.Position || got.FirstIndex != want.FirstIndex || got.PublishTime != want.PublishTime ||
			got.Producer != want.Producer || got.SeqFirst != want.SeqFirst || got.MsgCount != want.MsgCount || got.Format != want.Format {
			t.Fatalf("entry %d: read %+v, appended %+v", i, got, want)
		}
	}
	// By message index, every index finds its entry, cached or not; the
	// Within variant returns nothing when the entry does not fit.
	for _, want := range appended {
		size := len(payload(int(want.SeqFirst)))
		for idx := want.FirstIndex; idx <= want.LastIndex(); idx++ {
			es, err := ml.ReadFromIndex(context.Background(), idx, 1, 1)
			if err != nil || len(es) != 1 || es[0].Position != want.Position {
				t.Fatalf("ReadFromIndex(%d): %v %v, want %v", idx, es, err, want.Position)
			}
			if es, err := ml.ReadFromIndexWithin(context.Background(), idx, 1, size-1); err != nil || len(es) != 0 {
				t.Fatalf("ReadFromIndexWithin(%d, %d bytes): %d entries, %v", idx, size-1, len(es), err)
			}
			if es, err := ml.ReadFromIndexWithin(context.Background(), idx, 1, size); err != nil || len(es) != 1 || es[0].Position != want.Position {
				t.Fatalf("ReadFromIndexWithin(%d, %d bytes): %v, %v", idx, size, es, err)
			}
		}
	}
	es, err := ml.ReadEntries(context.Background(), run[0], 1000, 1<<20)
	if err != nil || len(es) != len(run) {
		t.Fatalf("read from the cache: %d entries, %v", len(es), err)
	}
	// The byte limit applies as for files: at least one entry, then only
	// what fits.
	es, err = ml.ReadEntries(context.Background(), run[0], 1000, 1)
	if err != nil || len(es) != 1 {
		t.Fatalf("read 1 byte from the cache: %d entries, %v", len(es), err)
	}
	// Appending through the caller's slice does not change the cache.
	data := []byte("mutable")
	last, err := ml.Append(context.Background(), Entry{Format: FormatKafka, MsgCount: 1, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	copy(data, "changed")
	if es, err := ml.ReadEntries(context.Background(), last.Position, 1, 100); err != nil || len(es) != 1 || !bytes.Equal(es[0].Data, []byte("mutable")) {
		t.Fatalf("cached entry after the caller changed its slice: %v %v", es, err)
	}

	// An entry without data is cached too: the run never has a gap.
	if _, err := ml.Append(context.Background(), Entry{Format: FormatKafka, MsgCount: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := ml.Append(context.Background(), Entry{Format: FormatKafka, MsgCount: 1, Data: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	run = cachedRun(ml)
	for i := 1; i < len(run); i++ {
		if p, q := run[i-1], run[i]; !(q.LedgerID == p.LedgerID && q.EntryID == p.EntryID+1 || q.LedgerID > p.LedgerID && q.EntryID == 0) {
			t.Fatalf("gap in the cached run between %v and %v", p, q)
		}
	}

	ml.cacheTrim(time.Hour)
	if len(cachedRun(ml)) == 0 {
		t.Fatal("trimming by an hour dropped fresh entries")
	}
	ml.cacheTrim(-time.Hour) // everything is older than an hour from now
	if n, used := len(cachedRun(ml)), e.f.cacheUsed.Load(); n != 0 || used != 0 {
		t.Fatalf("after trimming: %d entries, %d bytes", n, used)
	}
	appendEntries(t, ml, 60, 3, 1)
	if len(cachedRun(ml)) != 3 {
		t.Fatalf("cache did not restart after trimming: %v", cachedRun(ml))
	}

	// A restart starts with an empty cache and reads files.
	e.restart()
	if used := e.f.cacheUsed.Load(); used != 0 {
		t.Fatalf("new factory uses %d bytes", used)
	}
	ml = e.open("t/cache", Config{MaxLedgerBytes: 1200})
	if run := cachedRun(ml); len(run) != 0 {
		t.Fatalf("reopened ledger has a cache: %v", run)
	}
	if got := readAll(t, ml); len(got) != len(appended)+6 {
		t.Fatalf("after restart read %d entries, want %d", len(got), len(appended)+6)
	}
	ml.Close()
	if used := e.f.cacheUsed.Load(); used != 0 {
		t.Fatalf("closed ledger leaves %d cached bytes", used)
	}
}

// TestEntryCacheBudgetShared: ledgers share the budget; one that finds it
// taken by another caches nothing rather than leaving a gap.
func TestEntryCacheBudgetShared(t *testing.T) {
	e := newEnv(t, t.TempDir())
	e.opts.CacheBytes = 500
	e.restart()
	a, b := e.open("t/a", Config{}), e.open("t/b", Config{})
	appendEntries(t, a, 0, 40, 1)
	if e.f.cacheUsed.Load() > 500 || len(cachedRun(a)) == 0 {
		t.Fatalf("a: %d cached, %d bytes", len(cachedRun(a)), e.f.cacheUsed.Load())
	}
	appendEntries(t, b, 0, 5, 1)
	if n := len(cachedRun(b)); n != 0 {
		t.Fatalf("b cached %d entries of a full budget", n)
	}
	checkContinuous(t, readAll(t, b), 0)
	a.cacheTrim(-time.Hour)
	appendEntries(t, b, 5, 5, 1)
	if run := cachedRun(b); len(run) != 5 || run[0].EntryID != 5 {
		t.Fatalf("b's run after a's entries aged out: %v", run)
	}
	checkContinuous(t, readAll(t, b), 0)
}

// TestEntryCacheOffInMemory: an in-memory factory does not cache.
func TestEntryCacheOffInMemory(t *testing.T) {
	e := newEnv(t, "")
	ml := e.open("t/mem", Config{})
	appendEntries(t, ml, 0, 10, 1)
	if n := len(cachedRun(ml)); n != 0 {
		t.Fatalf("memory mode cached %d entries", n)
	}
}
