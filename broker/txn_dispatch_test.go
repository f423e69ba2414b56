package broker

import (
	"context"
	"testing"
)

// TestDispatcherTransactions: a Pulsar-style subscription on a partition
// with Kafka transactions gets plain and committed records in log order,
// never an aborted record or a marker (both are acknowledged for it), and
// nothing past an open transaction's first record until it ends.
func TestDispatcherTransactions(t *testing.T) {
	for _, typ := range []SubscriptionType{SubExclusive, SubShared, SubKeyShared} {
		t.Run(typ.String(), func(t *testing.T) {
			p := testPartition(t)
			ctx := context.Background()
			sub, err := p.Subscription(ctx, "s", true, InitialEarliest)
			if err != nil {
				t.Fatal(err)
			}
			app := func(pid int64, txn bool) int64 {
				t.Helper()
				r, err := p.Append(ctx, AppendRequest{Format: FormatKafka, MsgCount: 1, Data: testKafkaBatch(pid, txn, 1), Transactional: txn, ProducerID: pid})
				if err != nil {
					t.Fatal(err)
				}
				return r.Entry.FirstIndex
			}
			marker := func(pid int64, commit bool) {
				t.Helper()
				if _, err := p.WriteTxnMarker(ctx, TxnMarker{ProducerID: pid, Commit: commit}); err != nil {
					t.Fatal(err)
				}
			}
			plain0 := app(-1, false) // 0
			a1 := app(1, true)       // 1: aborted below
			c2 := app(2, true)       // 2: committed below
			marker(1, false)         // 3
			plain4 := app(-1, false) // 4, held behind pid 2's open txn
			s := newSink()
			h, err := attach(t, sub, DispatchOptions{Type: typ, PartitionIndex: -1}, "a", s)
			if err != nil {
				t.Fatal(err)
			}
			d, c := h.Dispatcher(), h.Consumer()
			d.Flow(c, 100)
			got := s.wait(t, 1)
			s.none(t) // held at the LSO (2)
			if got[0].Entry.FirstIndex != plain0 {
				t.Fatalf("first delivery at %d", got[0].Entry.FirstIndex)
			}
			marker(2, true) // 5
			got = s.wait(t, 2)
			s.none(t)
			if got[1].Entry.FirstIndex != c2 || got[2].Entry.FirstIndex != plain4 {
				t.Fatalf("after commit: %d %d", got[1].Entry.FirstIndex, got[2].Entry.FirstIndex)
			}
			for _, g := range got {
				if g.Entry.FirstIndex == a1 {
					t.Fatal("aborted record delivered")
				}
			}
			for _, g := range got {
				if err := d.Ack(ctx, g.Entry.Position); err != nil {
					t.Fatal(err)
				}
			}
			// Everything is acknowledged: the markers and the aborted
			// record too, so no backlog is left.
			if n := sub.Cursor().NextIndex(); n != p.NextIndex() {
				t.Fatalf("cursor at %d, partition end %d", n, p.NextIndex())
			}
		})
	}
}
