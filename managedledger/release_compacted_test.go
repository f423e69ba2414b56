package managedledger

import (
	"context"
	"testing"
)

// TestReleaseConsumedBefore: only sealed ledgers wholly below the index and
// consumed by every durable cursor go; TruncatedBefore does not move with
// them, and a TruncateBefore below the first retained index moves only it
// (persisted across a reopen).
func TestReleaseConsumedBefore(t *testing.T) {
	storageModes(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		ml := e.open("rel/compacted", Config{MaxLedgerBytes: 1000, RetentionTime: -1, RetentionBytes: -1})
		c, err := ml.OpenCursor(ctx, "group", InitialEarliest)
		if err != nil {
			t.Fatal(err)
		}
		written := appendEntries(t, ml, 0, 40, 1)
		ledgers := ml.Stats().Ledgers
		if len(ledgers) < 4 {
			t.Fatalf("%d ledgers", len(ledgers))
		}
		if freed, err := ml.ReleaseConsumedBefore(ctx, 40); err != nil || freed != 0 {
			t.Fatalf("released unconsumed ledgers: %d, %v", freed, err)
		}
		if err := c.MarkDelete(ctx, written[39].Position); err != nil {
			t.Fatal(err)
		}
		below := ledgers[2].FirstIndex // ledgers 0 and 1 lie wholly below it
		freed, err := ml.ReleaseConsumedBefore(ctx, below)
		if err != nil || freed != ledgers[0].Bytes+ledgers[1].Bytes {
			t.Fatalf("released %d bytes, %v; want ledgers 0 and 1 (%d)", freed, err, ledgers[0].Bytes+ledgers[1].Bytes)
		}
		if ml.FirstIndex() != below || ml.TruncatedBefore() != 0 {
			t.Fatalf("first index %d (want %d), truncated before %d", ml.FirstIndex(), below, ml.TruncatedBefore())
		}
		// DeleteRecords below the first retained index: the logical point.
		if err := ml.TruncateBefore(ctx, 3); err != nil {
			t.Fatal(err)
		}
		if ml.TruncatedBefore() != 3 || ml.FirstIndex() != below {
			t.Fatalf("after truncation to 3: truncated before %d, first %d", ml.TruncatedBefore(), ml.FirstIndex())
		}
		e.restart()
		ml = e.open("rel/compacted", Config{MaxLedgerBytes: 1000, RetentionTime: -1, RetentionBytes: -1})
		if ml.TruncatedBefore() != 3 || ml.FirstIndex() != below {
			t.Fatalf("after reopen: truncated before %d, first %d", ml.TruncatedBefore(), ml.FirstIndex())
		}
	})
}
