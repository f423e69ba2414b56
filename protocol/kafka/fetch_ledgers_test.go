package kafka

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetchNeverSkipsAcrossLedgers is the regression test for a fetch
// that skipped from the middle of a ledger to the first batch of the next
// one when the next batch did not fit what was left of the budget. Small
// ledgers (segment.bytes 2048) hold batches of mixed sizes over three
// partitions; raw fetches with every combination of response and
// partition budgets and fetch offsets must return, per partition, a
// gapless run of batches starting exactly at the fetch offset, with the
// right values; then consumers with random budgets read every partition
// to its end and must see every offset once. From the entry cache and,
// after a restart, from files.
func TestFetchNeverSkipsAcrossLedgers(t *testing.T) {
	onEachStorage(t, func(t *testing.T, s *testServer, durable bool) {
		const topic, parts = "ledgers", 3
		c := dialRaw(t, s.addr)
		req := kmsg.NewPtrCreateTopicsRequest()
		req.Version = 7
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, parts, 1
		cfg := kmsg.NewCreateTopicsRequestTopicConfig()
		cfg.Name, cfg.Value = "segment.bytes", kmsg.StringPtr("2048")
		rt.Configs = append(rt.Configs, cfg)
		req.Topics = append(req.Topics, rt)
		if err := kerr.ErrorForCode(c.do(req).(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode); err != nil {
			t.Fatal(err)
		}
		sizes := []int{40, 900, 30, 1500, 10, 10, 700, 200, 1, 1800, 60, 500, 500, 500, 5, 1900, 20, 90, 1000, 3}
		values := make([][]string, parts) // values[p][offset]
		for p := range int32(parts) {
			for i := range sizes {
				n := sizes[(i+int(p)*7)%len(sizes)]
				v := fmt.Sprintf("p%d-o%d-", p, i) + string(bytes.Repeat([]byte{'x'}, n))
				r := c.do(produceReq(topic, p, makeBatch(-1, -1, -1, 1000, v))).(*kmsg.ProduceResponse)
				if rp := r.Topics[0].Partitions[0]; rp.ErrorCode != 0 || rp.BaseOffset != int64(i) {
					t.Fatalf("produce p%d #%d: %+v", p, i, rp)
				}
				values[p] = append(values[p], v)
			}
		}
		fetch := func(maxBytes, partMax int32, offsets [parts]int64) [parts][]string {
			f := kmsg.NewPtrFetchRequest()
			f.Version = 12
			f.SessionEpoch = -1
			f.MaxBytes = maxBytes
			ft := kmsg.NewFetchRequestTopic()
			ft.Topic = topic
			for p := range int32(parts) {
				fp := kmsg.NewFetchRequestTopicPartition()
				fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p, offsets[p], partMax
				ft.Partitions = append(ft.Partitions, fp)
			}
			f.Topics = append(f.Topics, ft)
			r := c.do(f).(*kmsg.FetchResponse)
			var out [parts][]string
			for _, rp := range r.Topics[0].Partitions {
				if rp.ErrorCode != 0 {
					t.Fatalf("partition %d: %v", rp.Partition, kerr.ErrorForCode(rp.ErrorCode))
				}
				want := offsets[rp.Partition]
				for _, rec := range decodeRecords(t, rp.RecordBatches) {
					if rec.Offset != want {
						t.Fatalf("max %d, partition max %d, offsets %v: partition %d returned offset %d where %d was next",
							maxBytes, partMax, offsets, rp.Partition, rec.Offset, want)
					}
					if string(rec.Value) != values[rp.Partition][rec.Offset] {
						t.Fatalf("partition %d offset %d: wrong value %.20q", rp.Partition, rec.Offset, rec.Value)
					}
					out[rp.Partition] = append(out[rp.Partition], string(rec.Value))
					want++
				}
			}
			return out
		}
		check := func(from string) {
			budgets := []int32{1, 100, 1000, 2000, 2100, 3000, 5000, 10000, 1 << 20}
			for _, maxBytes := range budgets {
				for _, partMax := range budgets {
					for start := range len(sizes) {
						var offsets [parts]int64
						for p := range offsets {
							offsets[p] = int64((start + p*5) % len(sizes))
						}
						fetch(maxBytes, partMax, offsets)
					}
				}
			}
			// Consumers with random budgets read every partition to its end.
			rng := rand.New(rand.NewPCG(1, 2))
			for range 5 {
				var offsets [parts]int64
				for round := 0; ; round++ {
					done := true
					for p := range offsets {
						done = done && offsets[p] == int64(len(sizes))
					}
					if done {
						break
					}
					if round > 10000 {
						t.Fatalf("%s: consumers stuck at %v", from, offsets)
					}
					got := fetch(budgets[rng.IntN(len(budgets))], budgets[rng.IntN(len(budgets))], offsets)
					for p := range offsets {
						offsets[p] += int64(len(got[p]))
					}
				}
			}
		}
		check("cache")
		if durable {
			s.restart() // an empty cache: reads go to the files
			c = dialRaw(t, s.addr)
			check("files")
		}
	})
}
