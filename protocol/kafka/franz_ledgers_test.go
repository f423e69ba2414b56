package kafka

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFranzConsumeAllAcrossLedgers is the reported scenario at test size:
// franz-go produces 1 KiB records (acks=all) to 8 partitions of 256 KiB
// ledgers, then consumers with several fetch budgets (the report used
// 64 MiB per fetch and 8 MiB per partition; here scaled to the data)
// read from the start, from files (after a restart, so no entry cache),
// and must receive every record exactly once, in offset order, with the
// value produced at that offset.
func TestFranzConsumeAllAcrossLedgers(t *testing.T) {
	if testing.Short() {
		t.Skip("produces and reads 8 MiB several times")
	}
	s := startDurableServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic, parts, perPart = "ledgers-franz", 8, 1000
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, parts, 1, map[string]*string{"segment.bytes": ptr("262144")}, topic); err != nil {
		t.Fatal(err)
	}
	pr := newKgo(t, s.addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchMaxBytes(64<<10), kgo.ProducerBatchCompression(kgo.NoCompression()))
	var failed atomic.Int64
	value := func(p int32, i int) []byte { return fmt.Appendf(make([]byte, 0, 1024), "%d-%06d-%01000d", p, i, 0) }
	// Rounds of varying size, each flushed, give batches from 1 to 40
	// records: ledgers end on big batches followed by small ones, the
	// shape that made a fetch skip.
	for i, round := 0, 0; i < perPart; round++ {
		n := min(1+(round*17)%40, perPart-i)
		for k := range n {
			for p := range int32(parts) {
				pr.Produce(ctx, &kgo.Record{Partition: p, Value: value(p, i+k)}, func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Add(1)
					}
				})
			}
		}
		if err := pr.Flush(ctx); err != nil || failed.Load() > 0 {
			t.Fatalf("produce: %v, %d failed", err, failed.Load())
		}
		i += n
	}
	s.restart() // reads come from the files

	for _, b := range []struct{ total, part int32 }{
		{64 << 20, 8 << 20}, {4 << 20, 1 << 20}, {1 << 20, 256 << 10}, {300 << 10, 64 << 10}, {100 << 10, 50 << 10}, {150 << 10, 30 << 10},
	} {
		t.Run(fmt.Sprintf("fetch=%d,partition=%d", b.total, b.part), func(t *testing.T) {
			offsets := map[int32]kgo.Offset{}
			for p := range int32(parts) {
				offsets[p] = kgo.NewOffset().AtStart()
			}
			cl := newKgo(t, s.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
				kgo.FetchMaxBytes(b.total), kgo.FetchMaxPartitionBytes(b.part))
			next := make([]int64, parts)
			total := 0
			for total < parts*perPart {
				fs := cl.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatalf("after %d records: %v", total, err)
				}
				fs.EachRecord(func(r *kgo.Record) {
					if r.Offset != next[r.Partition] {
						t.Fatalf("partition %d: offset %d after %d (skipped %d)", r.Partition, r.Offset, next[r.Partition]-1, r.Offset-next[r.Partition])
					}
					if string(r.Value) != string(value(r.Partition, int(r.Offset))) {
						t.Fatalf("partition %d offset %d: value %.12q", r.Partition, r.Offset, r.Value)
					}
					next[r.Partition]++
					total++
				})
			}
		})
	}
}
