package managedledger

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/segment"
)

func TestRetentionByTimeHonoursCursors(t *testing.T) {
	storageModes(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cfg := Config{MaxLedgerBytes: 1000, RetentionTime: 80 * time.Millisecond, RetentionBytes: -1}
		ml := e.open("ret/time", cfg)
		c, err := ml.OpenCursor(ctx, "slow", InitialEarliest)
		if err != nil {
			t.Fatal(err)
		}
		written := appendEntries(t, ml, 0, 40, 1)
		ledgers := len(ml.Stats().Ledgers)
		if ledgers < 4 {
			t.Fatalf("%d ledgers", ledgers)
		}
		// Not consumed: survives even when old.
		time.Sleep(100 * time.Millisecond)
		if err := ml.ApplyRetention(ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(ml.Stats().Ledgers); n != ledgers {
			t.Fatalf("unconsumed ledgers deleted: %d -> %d", ledgers, n)
		}
		// Consume up to the middle: only ledgers wholly consumed go.
		mid := written[20].Position
		if err := c.MarkDelete(ctx, mid); err != nil {
			t.Fatal(err)
		}
		if err := ml.ApplyRetention(ctx); err != nil {
			t.Fatal(err)
		}
		st := ml.Stats()
		if st.Ledgers[0].LedgerID > mid.LedgerID || st.FirstIndex > 21 {
			t.Fatalf("deleted unconsumed data: first ledger %d, first index %d (mark-delete %v)", st.Ledgers[0].LedgerID, st.FirstIndex, mid)
		}
		if st.Ledgers[0].LedgerID == 0 {
			t.Fatal("consumed ledgers kept")
		}
		got := readAll(t, ml)
		checkContinuous(t, got, st.FirstIndex)
		if got[len(got)-1].Position != written[39].Position {
			t.Fatal("lost the tail")
		}
		// Consumed but young: kept until RetentionTime passes.
		c.MarkDelete(ctx, written[39].Position)
		ml.ApplyRetention(ctx) // the old, now consumed ledgers go
		sealedAt := time.Now()
		appendEntries(t, ml, 40, 12, 1) // seal the ledger holding 39
		c.MarkDelete(ctx, ml.LastConfirmed())
		before := len(ml.Stats().Ledgers)
		ml.ApplyRetention(ctx)
		// Only meaningful while the ledger is younger than RetentionTime: a
		// loaded machine may take longer than that to get here.
		if n := len(ml.Stats().Ledgers); n != before && time.Since(sealedAt) < cfg.RetentionTime {
			t.Fatalf("young consumed ledgers deleted: %d -> %d", before, n)
		}
		time.Sleep(100 * time.Millisecond)
		ml.ApplyRetention(ctx)
		st = ml.Stats()
		if len(st.Ledgers) != 1 || st.Ledgers[0].Sealed {
			t.Fatalf("expected only the active ledger, got %+v", st.Ledgers)
		}
		if st.FirstIndex != ml.NextIndex() && st.Ledgers[0].Entries == 0 {
			t.Fatalf("first %d next %d", st.FirstIndex, ml.NextIndex())
		}
	})
}

func TestRetentionNoCursorsAndBackgroundLoop(t *testing.T) {
	e := newEnv(t, t.TempDir())
	e.f.Close()
	e.opts.RetentionInterval = 20 * time.Millisecond
	e.start()
	ctx := context.Background()
	// No durable cursors: everything counts as consumed; idle ledgers roll
	// over by age and go.
	ml := e.open("ret/bg", Config{MaxLedgerBytes: 800, MaxLedgerAge: 30 * time.Millisecond, RetentionTime: 0})
	appendEntries(t, ml, 0, 30, 2)
	waitFor(t, 5*time.Second, func() bool {
		st := ml.Stats()
		return len(st.Ledgers) == 1 && st.Ledgers[0].Entries == 0 && st.FirstIndex == 60
	})
	// Files are gone too.
	// Only the active ledger's .log and .idx may be left (they may not
	// exist yet: segment.CreateUnsynced defers them to a checkpoint).
	names, _ := os.ReadDir(filepath.Join(e.dir, "ret", "bg"))
	activeID := ml.Stats().Ledgers[0].LedgerID
	for _, n := range names {
		if id, ok := segment.ParseName(n.Name()); !ok || id != activeID {
			t.Fatalf("files left: %v (active ledger %d)", names, activeID)
		}
	}
	// Appends continue; readers see the new data only.
	ml.SetConfig(Config{MaxLedgerBytes: 800, MaxLedgerAge: time.Hour})
	appendEntries(t, ml, 30, 3, 1)
	got := readAll(t, ml)
	if len(got) != 3 || got[0].FirstIndex != 60 {
		t.Fatalf("after retention: %d entries from %d", len(got), got[0].FirstIndex)
	}
	if _, err := ml.ReadFromIndex(ctx, 10, 1, 1); !errors.Is(err, ErrIndexOutOfRange) {
		t.Fatalf("reading deleted index: %v", err)
	}
}

func TestTruncateBeforeAndRestart(t *testing.T) {
	storageModes(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cfg := Config{MaxLedgerBytes: 1000}
		ml := e.open("trunc", cfg)
		appendEntries(t, ml, 0, 40, 3)
		c, _ := ml.OpenCursor(ctx, "g", InitialEarliest)
		if err := ml.TruncateBefore(ctx, 61); err != nil {
			t.Fatal(err)
		}
		if err := ml.TruncateBefore(ctx, 10); err != nil || ml.FirstIndex() != 61 {
			t.Fatalf("truncate backwards moved first to %d (%v)", ml.FirstIndex(), err)
		}
		if err := ml.TruncateBefore(ctx, 1000); !errors.Is(err, ErrIndexOutOfRange) {
			t.Fatalf("truncate beyond: %v", err)
		}
		if c.NextIndex() != 61 {
			t.Fatalf("cursor not moved: %d", c.NextIndex())
		}
		es, err := ml.ReadFromIndex(ctx, 61, 1, 1<<20)
		if err != nil || es[0].FirstIndex != 60 {
			t.Fatalf("read at first: %v %v", es, err)
		}
		if _, err := ml.ReadFromIndex(ctx, 59, 1, 1<<20); !errors.Is(err, ErrIndexOutOfRange) {
			t.Fatalf("read below first: %v", err)
		}
		first := readAll(t, ml)[0]
		if first.FirstIndex != 60 {
			t.Fatalf("first readable entry starts at %d", first.FirstIndex)
		}
		// Positions in deleted ledgers or below the first index read from
		// the first retained entry; so does a reader created there.
		for _, from := range []Position{{LedgerID: 0, EntryID: 0}, Earliest, {LedgerID: first.Position.LedgerID, EntryID: 0}} {
			es, err := ml.ReadEntries(ctx, from, 1, 1<<20)
			if err != nil || len(es) != 1 || es[0].Position != first.Position {
				t.Fatalf("read from %v: %v %v, want %v", from, es, err, first.Position)
			}
		}
		r := ml.NewReader(Position{LedgerID: 0, EntryID: 3})
		if es, _ := r.ReadEntries(ctx, 1, 1<<20); len(es) != 1 || es[0].Position != first.Position {
			t.Fatalf("reader from a deleted ledger: %v", es)
		}
		e.restart()
		ml = e.open("trunc", cfg)
		if ml.FirstIndex() != 61 || ml.NextIndex() != 120 {
			t.Fatalf("after restart first %d next %d", ml.FirstIndex(), ml.NextIndex())
		}
		c, _ = ml.Cursor("g")
		if c.NextIndex() != 61 {
			t.Fatalf("cursor after restart: %d", c.NextIndex())
		}
	})
}

func TestCursorBackgroundFlushAndDelete(t *testing.T) {
	e := newEnv(t, t.TempDir())
	e.f.Close()
	e.opts.CursorFlushInterval = 10 * time.Millisecond
	e.start()
	ctx := context.Background()
	ml := e.open("flush", Config{})
	written := appendEntries(t, ml, 0, 10, 1)
	c, err := ml.OpenCursor(ctx, "a/b", InitialEarliest)
	if err != nil {
		t.Fatal(err)
	}
	path := "/managed-ledgers/flush/cursors/a%2Fb"
	rec, err := e.store.Get(ctx, path)
	if err != nil {
		t.Fatalf("new cursor not persisted at once: %v", err)
	}
	c.MarkDelete(ctx, written[4].Position)
	waitFor(t, 2*time.Second, func() bool {
		r, err := e.store.Get(ctx, path)
		if err != nil || r.Version == rec.Version {
			return false
		}
		var st cursorRecord
		json.Unmarshal(r.Value, &st)
		return st.MarkDelete == written[4].Position
	})
	if err := ml.DeleteCursor(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Get(ctx, path); !errors.Is(err, metadata.ErrNotFound) {
		t.Fatalf("deleted cursor still stored: %v", err)
	}
	if err := ml.DeleteCursor(ctx, "a/b"); !errors.Is(err, ErrNoCursor) {
		t.Fatalf("delete twice: %v", err)
	}
	c.MarkDelete(ctx, written[6].Position) // a forgotten cursor never comes back
	time.Sleep(30 * time.Millisecond)
	if _, err := e.store.Get(ctx, path); !errors.Is(err, metadata.ErrNotFound) {
		t.Fatal("deleted cursor resurrected by the flusher")
	}
}

func TestFactoryDeleteAndFencing(t *testing.T) {
	storageModes(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		ml := e.open("del/me", Config{MaxLedgerBytes: 500})
		appendEntries(t, ml, 0, 20, 1)
		ml.OpenCursor(ctx, "c", InitialEarliest)
		// A nested ledger name shares the directory prefix and must survive.
		other := e.open("del/me/too", Config{})
		appendEntries(t, other, 0, 3, 1)
		lastLedger := ml.LastConfirmed().LedgerID
		if err := e.f.Delete(ctx, "del/me"); err != nil {
			t.Fatal(err)
		}
		if _, err := ml.Append(ctx, Entry{MsgCount: 1}); !errors.Is(err, ErrClosed) {
			t.Fatalf("append to deleted: %v", err)
		}
		if kids, _ := e.store.Children(ctx, "/managed-ledgers/del/me/cursors"); len(kids) != 0 {
			t.Fatalf("cursor records left: %v", kids)
		}
		if e.dir != "" {
			names, _ := segment.OSFS{}.List(filepath.Join(e.dir, "del", "me"))
			if len(names) != 0 {
				t.Fatalf("files left: %v", names)
			}
		}
		ml = e.open("del/me", Config{})
		if ml.NextIndex() != 0 || len(ml.Cursors()) != 0 {
			t.Fatalf("recreated ledger not empty: next %d", ml.NextIndex())
		}
		// Ledger ids are never reused under one name (Pulsar clients drop
		// message ids they have already seen).
		if e, err := ml.Append(ctx, Entry{MsgCount: 1}); err != nil || e.Position.LedgerID <= lastLedger {
			t.Fatalf("recreated ledger reuses ids: %v after %d (%v)", e.Position, lastLedger, err)
		}
		if n := len(readAll(t, other)); n != 3 {
			t.Fatalf("nested ledger damaged: %d entries", n)
		}
		// Someone else rewrites the ledger list: this instance is fenced.
		if _, err := e.store.Put(ctx, "/managed-ledgers/del/me/too", []byte(`{"format":1}`), metadata.AnyVersion); err != nil {
			t.Fatal(err)
		}
		other.SetConfig(Config{MaxLedgerBytes: 100})
		_, err := other.Append(ctx, Entry{MsgCount: 1, Data: make([]byte, 200)})
		if err == nil {
			_, err = other.Append(ctx, Entry{MsgCount: 1})
		}
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("append after losing ownership: %v", err)
		}
	})
}
