package broker

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// TestDispatcherNeverSkipsAcrossLedgers: a subscription reading entries of
// mixed sizes over many small ledgers, with a read budget that runs out in
// the middle of ledgers, is delivered every entry once, in order. Before
// the read-path fix a read whose budget ran out inside a ledger went on
// with the next ledger's first entry, and the rest was never delivered.
func TestDispatcherNeverSkipsAcrossLedgers(t *testing.T) {
	ctx := context.Background()
	b := newTestBroker(t)
	name := mustTopic(t, "dledgers")
	if err := b.CreateTopic(ctx, name, 0, Policies{SegmentBytes: ptr(int64(1024))}); err != nil {
		t.Fatal(err)
	}
	p, err := b.OpenPartition(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{40, 900, 30, 700, 10, 10, 600, 200, 1, 800, 60, 500, 500, 500, 5, 950, 20, 90}
	var want [][]byte
	for i := range 3 * len(sizes) {
		data := append(fmt.Appendf(nil, "e%d-", i), bytes.Repeat([]byte{'x'}, sizes[i%len(sizes)])...)
		if _, err := p.Append(ctx, AppendRequest{Format: FormatPulsar, MsgCount: 1, Data: data}); err != nil {
			t.Fatal(err)
		}
		want = append(want, data)
	}
	if n := len(p.ml.Stats().Ledgers); n < 10 {
		t.Fatalf("want many ledgers, got %d", n)
	}
	for _, maxRead := range []int{1, 100, 1000, 1500, 4000} {
		t.Run(fmt.Sprint(maxRead), func(t *testing.T) {
			sub, err := p.Subscription(ctx, fmt.Sprint("s", maxRead), true, InitialEarliest)
			if err != nil {
				t.Fatal(err)
			}
			s := newSink()
			h, err := attach(t, sub, DispatchOptions{Type: SubExclusive, PartitionIndex: -1, MaxReadBytes: maxRead}, "a", s)
			if err != nil {
				t.Fatal(err)
			}
			d, c := h.Dispatcher(), h.Consumer()
			d.Flow(c, int64(len(want)))
			got := s.wait(t, len(want))
			for i, dl := range got {
				if dl.Entry.FirstIndex != int64(i) || !bytes.Equal(dl.Entry.Data, want[i]) {
					t.Fatalf("delivery %d: index %d %.10q, want index %d %.10q", i, dl.Entry.FirstIndex, dl.Entry.Data, i, want[i])
				}
			}
		})
	}
}
