package kafka

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkConsume isolates the read path: a partition prefilled with
// 100,000 uncompressed 1 KiB records is read from the start by a new
// franz-go consumer in every iteration, from kopernik (ledger files) and
// from kfake. MB/s counts record values.
//
//	go test ./protocol/kafka -run '^$' -bench Consume -benchtime 5x
func BenchmarkConsume(b *testing.B) {
	const records = 100_000
	b.Run("kopernik", func(b *testing.B) {
		s := startDurableServer(b)
		if _, err := kadm.NewClient(newKgo(b, s.addr)).CreateTopic(context.Background(), 1, 1, nil, "bench"); err != nil {
			b.Fatal(err)
		}
		benchConsume(b, s.addr, records)
	})
	b.Run("kfake", func(b *testing.B) {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "bench"))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		benchConsume(b, c.ListenAddrs()[0], records)
	})
}

func benchConsume(b *testing.B, addr string, n int) {
	ctx := context.Background()
	p := newKgo(b, addr, kgo.DefaultProduceTopic("bench"), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.MaxBufferedRecords(n))
	v := make([]byte, 1024)
	rand.Read(v)
	for range n {
		p.Produce(ctx, &kgo.Record{Value: v}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(n) * 1024)
	b.ResetTimer()
	for range b.N {
		c := newKgo(b, addr, kgo.ConsumeTopics("bench"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxBytes(50<<20))
		for got := 0; got < n; {
			fs := c.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				b.Fatal(err)
			}
			got += fs.NumRecords()
		}
		c.Close()
	}
}
