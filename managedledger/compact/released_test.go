package compact_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kopernik-io/kopernik/convert"
	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/managedledger/compact"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/segment"
)

// viewReleased answers managedledger.Released from a compactor's view, as
// the broker does for a compact-only topic (an error, as after Close:
// After cannot tell and answers pos itself).
type viewReleased struct{ c *compact.Compactor }

func (r viewReleased) After(pos managedledger.Position, minIndex int64) (managedledger.Position, bool) {
	q, _, ok, err := r.c.EntryAfter(context.Background(), ledgerName, pos, minIndex)
	if err != nil {
		return pos, true
	}
	return q, ok
}

func (r viewReleased) Before(pos managedledger.Position) (managedledger.Position, int64, bool) {
	q, last, ok, err := r.c.EntryBefore(context.Background(), ledgerName, pos)
	if err != nil {
		return managedledger.Position{}, 0, false
	}
	return q, last, ok
}

// TestCursorAmongReleasedEntries: a durable cursor moved before the view's
// entries in released ledgers (RewindReleased) records acknowledgements of
// them one by one, out of order too; its mark-delete position passes each
// only in order, across a reopen (persisted among them, loaded untouched
// until SetReleased), skipping those a DeleteRecords point deleted, and
// holds the raw ledgers until it leaves them; a reset among them starts
// from the entry reset to. A cursor that consumed the ledgers before the
// release never sees them.
func TestCursorAmongReleasedEntries(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store := metadata.NewMemory()
	var f *managedledger.Factory
	openML := func() *managedledger.ManagedLedger {
		var err error
		f, err = managedledger.NewFactory(managedledger.FactoryOptions{Dir: filepath.Join(dir, "ledgers"), Store: store, Logger: quietLogger(), RetentionInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		ml, err := f.Open(ctx, ledgerName, managedledger.Config{MaxLedgerBytes: 400, ReleasedEntries: true})
		if err != nil {
			t.Fatal(err)
		}
		return ml
	}
	ml := openML()
	defer func() { f.Close() }()
	old, err := ml.OpenCursor(ctx, "old", managedledger.InitialEarliest)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		k := i % 15 // k3..k14 only in the first half: only the view keeps them
		if i >= 30 {
			k = i % 3
		}
		data := kafkaBatch([]rec{{key: []byte(fmt.Sprintf("k%d", k)), value: []byte(fmt.Sprintf("v%d", i))}}, false, false, false, 0)
		if _, err := ml.Append(ctx, managedledger.Entry{Format: managedledger.FormatKafka, MsgCount: 1, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := compact.New(compact.Options{Dir: filepath.Join(dir, "compacted"), FS: segment.OSFS{}, Store: store, Codec: convert.CompactionCodec{}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Compact(ctx, ledgerName, ml, compact.Params{UpTo: ml.NextIndex()})
	if err != nil || !res.Compacted {
		t.Fatalf("compaction: %+v, %v", res, err)
	}
	if err := old.MarkDelete(ctx, ml.LastConfirmed()); err != nil {
		t.Fatal(err)
	}
	if freed, err := ml.ReleaseConsumedBefore(ctx, res.Cleaned); err != nil || freed == 0 {
		t.Fatalf("released %d, %v", freed, err)
	}
	ml.SetReleased(viewReleased{c})
	firstLedger := ml.Stats().Ledgers[0].LedgerID
	for i := range 20 { // a raw tail of some ledgers
		data := kafkaBatch([]rec{{key: []byte(fmt.Sprintf("k%d", i%3)), value: []byte(fmt.Sprintf("t%d", i))}}, false, false, false, 0)
		if _, err := ml.Append(ctx, managedledger.Entry{Format: managedledger.FormatKafka, MsgCount: 1, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	view, _, err := c.ReadAt(ctx, ledgerName, managedledger.Earliest, 1000, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var rel []managedledger.Entry // the view's entries in released ledgers
	for _, e := range view {
		if e.Position.LedgerID < firstLedger {
			rel = append(rel, e)
		}
	}
	if len(rel) < 10 {
		t.Fatalf("%d view entries in released ledgers; the test needs 10", len(rel))
	}
	if old.RewindReleased(managedledger.Earliest) {
		t.Fatal("a cursor that consumed the released ledgers was moved before their entries")
	}
	cur, err := ml.OpenCursor(ctx, "late", managedledger.InitialEarliest)
	if err != nil {
		t.Fatal(err)
	}
	if !cur.RewindReleased(managedledger.Earliest) {
		t.Fatal("new cursor not moved before the released entries")
	}
	if md := cur.MarkDeletePosition(); !md.Less(rel[0].Position) {
		t.Fatalf("mark-delete %v not before the first released entry %v", md, rel[0].Position)
	}
	if cur.RewindReleased(managedledger.Earliest) {
		t.Fatal("moved twice")
	}
	wantMD := func(step string, want managedledger.Position) {
		t.Helper()
		if md := cur.MarkDeletePosition(); md != want {
			t.Fatalf("%s: mark-delete %v, want %v", step, md, want)
		}
	}
	start := cur.MarkDeletePosition()
	// Out of order: later released entries and the first raw entry first.
	firstRaw, _ := ml.PositionOf(ml.FirstIndex())
	if err := cur.Delete(ctx, rel[2].Position, rel[4].Position, firstRaw); err != nil {
		t.Fatal(err)
	}
	wantMD("after acknowledging later entries", start)
	if !cur.IsAcked(rel[2].Position) || cur.IsAcked(rel[0].Position) || cur.IsAcked(rel[3].Position) {
		t.Fatal("acknowledgements of released entries not recorded exactly")
	}
	if err := cur.Delete(ctx, rel[1].Position, rel[0].Position); err != nil {
		t.Fatal(err)
	}
	wantMD("after acknowledging the first three", rel[2].Position)
	// The raw ledgers stay while it is among them.
	if freed, err := ml.ReleaseConsumedBefore(ctx, ml.NextIndex()); err != nil || freed != 0 {
		t.Fatalf("released %d bytes (%v) under a cursor among the released entries", freed, err)
	}
	// Persisted among them; loaded untouched, then continued.
	if err := cur.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ml = openML()
	cur, _ = ml.Cursor("late")
	wantMD("after reopening", rel[2].Position)
	ml.SetReleased(viewReleased{c})
	if !cur.IsAcked(rel[4].Position) || cur.IsAcked(rel[3].Position) || !cur.IsAcked(firstRaw) {
		t.Fatal("acknowledgements among released entries lost in the reopen")
	}
	if err := cur.Delete(ctx, rel[3].Position); err != nil {
		t.Fatal(err)
	}
	wantMD("after acknowledging the fourth", rel[4].Position)
	// DeleteRecords past rel[5] and rel[6]: they no longer count.
	if err := ml.TruncateBefore(ctx, rel[6].LastIndex()+1); err != nil {
		t.Fatal(err)
	}
	if err := cur.Delete(ctx, rel[7].Position); err != nil {
		t.Fatal(err)
	}
	wantMD("after deleting records", rel[7].Position)
	// AckBetween from the last released entry into the raw log while
	// released entries before it are unacknowledged: the raw entries are
	// acknowledged one by one, the mark-delete position stays.
	last := rel[len(rel)-1].Position
	before, _ := ml.PositionOf(ml.FirstIndex() + 3)
	if err := cur.AckBetween(ctx, last, before); err != nil {
		t.Fatal(err)
	}
	wantMD("after AckBetween out of order", rel[7].Position)
	var rest []managedledger.Position
	for _, e := range rel[8:] {
		rest = append(rest, e.Position)
	}
	if err := cur.Delete(ctx, rest...); err != nil {
		t.Fatal(err)
	}
	// Now in order: through the released entries, then the raw entries
	// AckBetween acknowledged.
	end, _ := ml.PositionOf(ml.FirstIndex() + 2)
	wantMD("after acknowledging every released entry", end)
	// In order, AckBetween is one step.
	far, _ := ml.PositionOf(ml.FirstIndex() + 10)
	if err := cur.AckBetween(ctx, end, far); err != nil {
		t.Fatal(err)
	}
	end, _ = ml.PositionOf(ml.FirstIndex() + 9)
	wantMD("after AckBetween in order", end)
	if cur.RewindReleased(managedledger.Earliest) {
		t.Fatal("a cursor past the released entries was moved back")
	}
	// A reset into the released ledgers (a seek to a message id there):
	// from the first released entry at or after it not deleted (rel[5]
	// and rel[6] are below the DeleteRecords point).
	if err := cur.ResetTo(ctx, rel[5].Position); err != nil {
		t.Fatal(err)
	}
	if !cur.RewindReleased(rel[5].Position) {
		t.Fatal("reset into the released ledgers: not moved among them")
	}
	atReset := managedledger.Position{LedgerID: rel[7].Position.LedgerID, EntryID: rel[7].Position.EntryID - 1}
	wantMD("after a reset to a deleted released entry", atReset)
	// The view cannot be read (closed): acknowledgements are recorded,
	// the mark-delete position stays (nothing skipped), nothing hangs.
	c.Close()
	if err := cur.Delete(ctx, rel[7].Position, rel[8].Position); err != nil {
		t.Fatal(err)
	}
	if err := cur.AckBetween(ctx, rel[8].Position, firstRaw); err != nil {
		t.Fatal(err)
	}
	wantMD("with the view unreadable", atReset)
	if !cur.IsAcked(rel[8].Position) || cur.IsAcked(rel[9].Position) {
		t.Fatal("acknowledgements with the view unreadable not recorded exactly")
	}
}
