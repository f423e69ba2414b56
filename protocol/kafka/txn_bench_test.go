package kafka

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkTxn measures transactions end to end with franz-go on ledger
// files: "produce" commits transactions of 100 (1 KiB) records each (an
// EndTxn, i.e. a marker written and fsynced, per transaction); "consume"
// reads a partition of 100,000 such records (one transaction in ten
// aborted) from the start, read_committed (LSO-bounded reads, the
// aborted list, the client dropping aborted records) and read_uncommitted.
// MB/s counts record values.
//
//	go test ./protocol/kafka -run '^$' -bench Txn -benchtime 3x
func BenchmarkTxn(b *testing.B) {
	v := make([]byte, 1024)
	rand.Read(v)
	const perTxn = 100
	produceTxns := func(b *testing.B, cl *kgo.Client, topic string, txns int, abortEvery int) {
		ctx := context.Background()
		for i := range txns {
			if err := cl.BeginTransaction(); err != nil {
				b.Fatal(err)
			}
			for range perTxn {
				cl.Produce(ctx, &kgo.Record{Topic: topic, Value: v}, nil)
			}
			if err := cl.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			commit := abortEvery == 0 || i%abortEvery != abortEvery-1
			if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("produce", func(b *testing.B) {
		s := startDurableServer(b)
		if _, err := kadm.NewClient(newKgo(b, s.addr)).CreateTopic(context.Background(), 1, 1, nil, "txn-bench-p"); err != nil {
			b.Fatal(err)
		}
		cl := newKgo(b, s.addr, kgo.TransactionalID("bench-p"), kgo.ProducerBatchCompression(kgo.NoCompression()))
		b.SetBytes(perTxn * 1024)
		b.ResetTimer()
		produceTxns(b, cl, "txn-bench-p", b.N, 0)
	})
	s := startDurableServer(b)
	if _, err := kadm.NewClient(newKgo(b, s.addr)).CreateTopic(context.Background(), 1, 1, nil, "txn-bench-c"); err != nil {
		b.Fatal(err)
	}
	const txns = 1000
	produceTxns(b, newKgo(b, s.addr, kgo.TransactionalID("bench-c"), kgo.ProducerBatchCompression(kgo.NoCompression())), "txn-bench-c", txns, 10)
	for _, iso := range []struct {
		name string
		l    kgo.IsolationLevel
		want int
	}{{"read_committed", kgo.ReadCommitted(), txns * perTxn * 9 / 10}, {"read_uncommitted", kgo.ReadUncommitted(), txns * perTxn}} {
		b.Run("consume/"+iso.name, func(b *testing.B) {
			ctx := context.Background()
			b.SetBytes(int64(iso.want) * 1024)
			for range b.N {
				c := newKgo(b, s.addr, kgo.ConsumeTopics("txn-bench-c"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
					kgo.FetchMaxBytes(50<<20), kgo.FetchIsolationLevel(iso.l))
				for got := 0; got < iso.want; {
					fs := c.PollFetches(ctx)
					if err := fs.Err0(); err != nil {
						b.Fatal(err)
					}
					got += fs.NumRecords()
					if got > iso.want {
						b.Fatal(fmt.Sprintf("%d records, want %d", got, iso.want))
					}
				}
				c.Close()
			}
		})
	}
}
