package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestShareDeliveryCountSurvivesRestart: delivery counts are part of the
// subscription cursor's persisted state. A franz-go share consumer
// releases a record on every delivery; across a broker restart the
// counts it sees go on from where they were (they do not start over at
// 1), and the delivery count limit archives the record at the limit: the
// application sees it exactly limit times in all, the last time with
// count = limit, and the share-partition start offset moves past it.
// (Strict record limits make franz-go fetch only inside PollFetches, so
// no fetch acquires the record unseen while the client closes.)
func TestShareDeliveryCountSurvivesRestart(t *testing.T) {
	const limit = 4
	d := startDurableServer(t)
	ctx := testCtx(t)
	cl := newKgo(t, d.addr, kgo.DefaultProduceTopic("sdc"))
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "sdc"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, kgo.StringRecord("x")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "dcg"
	for k, v := range map[string]string{"share.auto.offset.reset": "earliest", "share.delivery.count.limit": fmt.Sprint(limit)} {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		res.Configs = append(res.Configs, c)
	}
	req.Resources = append(req.Resources, res)
	if resp, err := req.RequestWith(ctx, cl); err != nil || resp.Resources[0].ErrorCode != 0 {
		t.Fatalf("configs: %v %+v", err, resp)
	}

	var counts []int32 // delivery counts the application saw, in order
	// consume releases what it gets until it has seen n deliveries or,
	// with n = 0, until quiet has passed without one.
	consume := func(n int, quiet time.Duration) {
		t.Helper()
		kc := newKgo(t, d.addr, kgo.ShareGroup("dcg"), kgo.ConsumeTopics("sdc"), kgo.FetchMaxWait(100*time.Millisecond),
			kgo.ShareMaxRecords(1), kgo.ShareMaxRecordsStrict())
		defer kc.Close()
		seen := 0
		last := time.Now()
		for (n == 0 || seen < n) && ctx.Err() == nil {
			if n == 0 && time.Since(last) > quiet {
				return
			}
			pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			fs := kc.PollFetches(pctx)
			cancel()
			fs.EachRecord(func(r *kgo.Record) {
				counts = append(counts, r.DeliveryCount())
				seen++
				last = time.Now()
				r.Ack(kgo.AckRelease)
			})
			if err := kc.FlushAcks(ctx); err != nil {
				t.Fatalf("flush acks: %v", err)
			}
		}
		if n > 0 && seen < n {
			t.Fatalf("saw %d of %d deliveries: %v", seen, n, counts)
		}
	}
	consume(2, 0)
	d.restart()
	consume(2, 0)
	consume(0, time.Second) // archived: nothing more comes

	if fmt.Sprint(counts) != "[1 2 3 4]" {
		t.Fatalf("delivery counts %v across the restart, want [1 2 3 4] (limit %d)", counts, limit)
	}
	// Archived: the share-partition start offset is past the record.
	dreq := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
	rg := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
	rg.GroupID = "dcg"
	dreq.Groups = append(dreq.Groups, rg)
	dresp, err := dreq.RequestWith(ctx, newKgo(t, d.addr))
	if err != nil || len(dresp.Groups[0].Topics) != 1 {
		t.Fatalf("describe share offsets: %v %+v", err, dresp)
	}
	if p := dresp.Groups[0].Topics[0].Partitions[0]; p.StartOffset != 1 {
		t.Fatalf("start offset %d, want 1 (the record archived)", p.StartOffset)
	}
	t.Logf("delivery counts across the restart: %v", counts)
}

// TestShareStrictRecordLimit: with franz-go's ShareMaxRecordsStrict
// (ShareAcquireMode 1), a share fetch acquires at most ShareMaxRecords
// records even inside one produced batch; the rest of the batch is
// acquired by later fetches, every record exactly once.
func TestShareStrictRecordLimit(t *testing.T) {
	const total, maxRecs = 10, 3
	s := startServer(t)
	ctx := testCtx(t)
	cl := newKgo(t, s.addr, kgo.DefaultProduceTopic("sstrict"))
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "sstrict"); err != nil {
		t.Fatal(err)
	}
	var batch []*kgo.Record
	for i := range total {
		batch = append(batch, kgo.StringRecord(fmt.Sprint(i)))
	}
	// One ProduceSync of ten records: one batch.
	if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "strict"
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Value = "share.auto.offset.reset", kmsg.StringPtr("earliest")
	res.Configs = append(res.Configs, c)
	req.Resources = append(req.Resources, res)
	if resp, err := req.RequestWith(ctx, cl); err != nil || resp.Resources[0].ErrorCode != 0 {
		t.Fatalf("configs: %v %+v", err, resp)
	}
	kc := newKgo(t, s.addr, kgo.ShareGroup("strict"), kgo.ConsumeTopics("sstrict"),
		kgo.ShareMaxRecords(maxRecs), kgo.ShareMaxRecordsStrict(), kgo.FetchMaxWait(100*time.Millisecond))
	seen := map[string]int{}
	polls := 0
	for len(seen) < total && ctx.Err() == nil {
		fs := kc.PollFetches(ctx)
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Value)]++
			n++
			r.Ack(kgo.AckAccept)
		})
		if n > maxRecs {
			t.Fatalf("one poll returned %d records, strict limit %d", n, maxRecs)
		}
		if n > 0 {
			polls++
		}
		if err := kc.FlushAcks(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("record %s seen %d times", v, n)
		}
	}
	if len(seen) != total || polls < (total+maxRecs-1)/maxRecs {
		t.Fatalf("%d records in %d polls", len(seen), polls)
	}
}
