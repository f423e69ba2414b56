package server

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkClusterProduce measures a cluster broker's produce path end to
// end: a franz-go idempotent producer (acks=all, 1 KiB records, 8
// partitions) against one cluster broker whose log is in a local S3
// server (versitygw) and committed through embedded etcd, at two object
// flush intervals, with 8 records in flight (latency) and 4096 (throughput).
// Reported: acknowledged MB/s and the latency from Produce to its
// acknowledgement (p50, p99).
//
//	go test ./server -run '^$' -bench ClusterProduce -benchtime 20000x
func BenchmarkClusterProduce(b *testing.B) {
	for _, c := range []struct {
		flush    string
		inflight int
	}{{"1ms", 8}, {"10ms", 8}, {"1ms", 4096}, {"10ms", 4096}} {
		flush := c.flush
		b.Run(fmt.Sprintf("flush=%s/inflight=%d", c.flush, c.inflight), func(b *testing.B) {
			_, brokers := startCluster(b, 1, "object-flush-interval", flush)
			ctx := context.Background()
			const topic, parts, size = "bench", 8, 1024
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers[0].Addr("kafka").String()), kgo.DefaultProduceTopic(topic),
				kgo.ProducerLinger(0), kgo.MaxBufferedRecords(1<<16))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			if _, err := kadm.NewClient(cl).CreateTopic(ctx, parts, 1, nil, topic); err != nil {
				b.Fatal(err)
			}
			// Warm up: every partition loaded.
			for p := range parts {
				if err := cl.ProduceSync(ctx, &kgo.Record{Partition: int32(p), Value: []byte("w")}).FirstErr(); err != nil {
					b.Fatal(err)
				}
			}
			value := make([]byte, size)
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			var mu sync.Mutex
			var firstErr error
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			sem := make(chan struct{}, c.inflight)
			for i := range b.N {
				sem <- struct{}{}
				wg.Add(1)
				t0 := time.Now()
				cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
					lat[i] = time.Since(t0)
					if err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
					}
					<-sem
					wg.Done()
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if firstErr != nil {
				b.Fatal(firstErr)
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(b.N)*size/elapsed.Seconds()/1e6, "acked-MB/s")
		})
	}
}
