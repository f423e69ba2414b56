package kafka

import (
	"context"
	"crypto/rand"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkProduceConsume produces b.N 1 KiB records with franz-go
// (acks=all, idempotent: the client defaults) to one partition and consumes
// them back, against kopernik and, as a peer baseline in the same run,
// franz-go's in-memory kfake. Reported: records/s and MB/s for each phase,
// the p50/p99 produce latency of the throughput phase (record handed to the
// client until acknowledged, queueing included) and of a closed loop of
// single synchronous produces (sync-p50/p99: the broker round trip).
//
//	go test ./protocol/kafka -run '^$' -bench ProduceConsume -benchtime 200000x
func BenchmarkProduceConsume(b *testing.B) {
	kopernik := func(start func(testing.TB, ...func(*Config)) *testServer) func(b *testing.B) {
		return func(b *testing.B) {
			s := start(b)
			ctx := testCtx(b)
			adm := kadm.NewClient(newKgo(b, s.addr))
			if _, err := adm.CreateTopic(ctx, 1, 1, nil, "bench"); err != nil {
				b.Fatal(err)
			}
			benchProduceConsume(b, s.addr)
		}
	}
	// kopernik: ledger files, fsync before every acknowledgement (the default).
	b.Run("kopernik", kopernik(startDurableServer))
	// kopernik-memory: the same engine over an in-memory file system.
	b.Run("kopernik-memory", kopernik(startServer))
	b.Run("kfake", func(b *testing.B) {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "bench"))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		benchProduceConsume(b, c.ListenAddrs()[0])
	})
}

func benchProduceConsume(b *testing.B, addr string) {
	const size = 1 << 10
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	value := make([]byte, size)
	rand.Read(value)
	p := newKgo(b, addr, kgo.DefaultProduceTopic("bench"), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MaxBufferedRecords(100_000))
	// Warm up: connections, metadata, producer id.
	if err := p.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()

	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	wg.Add(b.N)
	var firstErr error
	var errOnce sync.Once
	start := time.Now()
	for i := range b.N {
		t0 := time.Now()
		p.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			lat[i] = time.Since(t0)
			if err != nil {
				errOnce.Do(func() { firstErr = err })
			}
			wg.Done()
		})
	}
	wg.Wait()
	produced := time.Since(start)
	if firstErr != nil {
		b.Fatal(firstErr)
	}

	c := newKgo(b, addr, kgo.ConsumeTopics("bench"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(50<<20))
	start = time.Now()
	got := 0
	for got < b.N+1 {
		fs := c.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			b.Fatal(err)
		}
		got += fs.NumRecords()
	}
	consumed := time.Since(start)
	b.StopTimer()

	// Closed-loop latency: one record in flight at a time, so the figure is
	// the round trip through the broker, not time spent queued behind the
	// throughput phase's backlog.
	sync := make([]time.Duration, 500)
	for i := range sync {
		t0 := time.Now()
		if err := p.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		sync[i] = time.Since(t0)
	}
	slices.Sort(sync)

	slices.Sort(lat)
	mb := float64(b.N) * size / 1e6
	b.ReportMetric(float64(b.N)/produced.Seconds(), "produce-rec/s")
	b.ReportMetric(mb/produced.Seconds(), "produce-MB/s")
	b.ReportMetric(float64(b.N)/consumed.Seconds(), "consume-rec/s")
	b.ReportMetric(mb/consumed.Seconds(), "consume-MB/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1e3, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1e3, "p99-ms")
	b.ReportMetric(float64(sync[len(sync)/2].Microseconds())/1e3, "sync-p50-ms")
	b.ReportMetric(float64(sync[len(sync)*99/100].Microseconds())/1e3, "sync-p99-ms")
}
