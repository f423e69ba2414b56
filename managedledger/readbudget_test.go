package managedledger

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/segment"
)

// budgetLedger builds a managed ledger whose entries have mixed sizes and
// span several ledgers, over the in-memory file system, with the entry
// cache on or off. It returns the ledger and what was appended.
func budgetLedger(t *testing.T, cache bool) (*ManagedLedger, []Entry) {
	t.Helper()
	opts := FactoryOptions{
		Dir: "/budget", FS: segment.NewMemFS(), Store: metadata.NewMemory(), Logger: quietLogger(),
		RetentionInterval: -1, IndexInterval: 256, CacheBytes: -1,
	}
	if cache {
		opts.CacheBytes = 1 << 20
	}
	f, err := NewFactory(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	ml, err := f.Open(context.Background(), "budget", Config{MaxLedgerBytes: 700})
	if err != nil {
		t.Fatal(err)
	}
	// Sizes chosen so that ledgers end on entries both bigger and smaller
	// than the ones that start the next ledger.
	sizes := []int{40, 300, 20, 500, 10, 10, 260, 90, 1, 450, 30, 200, 200, 200, 5, 600, 15, 70}
	var all []Entry
	for i, n := range sizes {
		data := bytes.Repeat([]byte{byte(i)}, n)
		e, err := ml.Append(context.Background(), Entry{Format: FormatKafka, MsgCount: int32(1 + i%3), Data: data})
		if err != nil {
			t.Fatal(err)
		}
		e.Data = data
		all = append(all, e)
	}
	if n := len(ml.Stats().Ledgers); n < 4 {
		t.Fatalf("want entries over several ledgers, got %d ledgers", n)
	}
	return ml, all
}

// TestReadBudgetsNeverSkip reads from every entry with every byte budget
// and several entry budgets, through ReadEntries, ReadFromIndex and
// ReadFromIndexWithin, cache on and off, and checks each result is the
// longest gapless run from the asked entry that the contract allows.
// Before the fix, a read whose next entry did not fit went on to the next
// ledger and returned its first entry: a silent skip.
func TestReadBudgetsNeverSkip(t *testing.T) {
	for _, cache := range []bool{false, true} {
		t.Run(fmt.Sprintf("cache=%v", cache), func(t *testing.T) {
			ml, all := budgetLedger(t, cache)
			ctx := context.Background()
			for start := range all {
				for maxBytes := 0; maxBytes <= 1300; maxBytes += 1 + maxBytes/40 {
					for _, maxEntries := range []int{1, 2, 3, 5, 100} {
						for _, mode := range []string{"entries", "index", "within"} {
							idx := all[start].FirstIndex + int64(start%int(all[start].MsgCount))
							var got []Entry
							var err error
							atLeastOne := true
							switch mode {
							case "entries":
								got, err = ml.ReadEntries(ctx, all[start].Position, maxEntries, maxBytes)
							case "index":
								got, err = ml.ReadFromIndex(ctx, idx, maxEntries, maxBytes)
							case "within":
								got, err = ml.ReadFromIndexWithin(ctx, idx, maxEntries, maxBytes)
								atLeastOne = false
							}
							if err != nil {
								t.Fatalf("%s from %d, %d entries, %d bytes: %v", mode, start, maxEntries, maxBytes, err)
							}
							want := expectedRun(all[start:], maxEntries, maxBytes, atLeastOne)
							if msg := compareRun(got, want); msg != "" {
								t.Fatalf("%s from entry %d (index %d), maxEntries %d, maxBytes %d: %s", mode, start, idx, maxEntries, maxBytes, msg)
							}
						}
					}
				}
			}
		})
	}
}

// expectedRun is the model: the longest prefix of rest within maxEntries
// and maxBytes, with the first entry exempt from maxBytes if atLeastOne.
func expectedRun(rest []Entry, maxEntries, maxBytes int, atLeastOne bool) []Entry {
	var out []Entry
	size := 0
	for _, e := range rest {
		if len(out) >= maxEntries {
			break
		}
		if (len(out) > 0 || !atLeastOne) && size+len(e.Data) > maxBytes {
			break
		}
		size += len(e.Data)
		out = append(out, e)
	}
	return out
}

func compareRun(got, want []Entry) string {
	if len(got) != len(want) {
		var pos []Position
		for _, e := range got {
			pos = append(pos, e.Position)
		}
		return fmt.Sprintf("got %d entries %v, want %d", len(got), pos, len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Position != w.Position || g.FirstIndex != w.FirstIndex || g.MsgCount != w.MsgCount || !bytes.Equal(g.Data, w.Data) {
			return fmt.Sprintf("entry %d: got %v index %d (%d bytes), want %v index %d (%d bytes)",
				i, g.Position, g.FirstIndex, len(g.Data), w.Position, w.FirstIndex, len(w.Data))
		}
	}
	return ""
}

// TestReadFromIndexOfDeletedLedger: a read by index whose ledger is gone
// (truncated below it) answers out of range, never a later entry.
func TestReadFromIndexOfDeletedLedger(t *testing.T) {
	ml, all := budgetLedger(t, false)
	ctx := context.Background()
	cut := all[6].FirstIndex
	if err := ml.TruncateBefore(ctx, cut); err != nil {
		t.Fatal(err)
	}
	for _, e := range all[:6] {
		if got, err := ml.ReadFromIndex(ctx, e.FirstIndex, 10, 1<<20); err == nil {
			t.Fatalf("index %d below the first retained %d: got %d entries from %d, want out of range", e.FirstIndex, cut, len(got), got[0].FirstIndex)
		}
	}
	got, err := ml.ReadFromIndex(ctx, cut, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if msg := compareRun(got, all[6:]); msg != "" {
		t.Fatal(msg)
	}
}
