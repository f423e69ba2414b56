package interop

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestShareGroupWithPulsarShared: a Kafka share group G on topic T is the
// Pulsar Shared subscription G on T. A franz-go share consumer and a
// pulsar-client-go Shared consumer attached at the same time divide the
// records; every record is accepted exactly once overall; a record the
// Pulsar side negatively acknowledges and one the Kafka side releases
// are redelivered (to either side), with the delivery count moved on; in
// the end the share group's start offset is the log end on every
// partition (nothing left unacknowledged).
func TestShareGroupWithPulsarShared(t *testing.T) {
	e := start(t)
	ctx := ctxT(t)
	topic := topicName("share")
	const partitions, total = 2, 300
	e.createTopic(t, topic, partitions)
	group := "g-" + topic

	// One record per batch, so that the dispatcher can hand any record to
	// either side (acquisition is per batch).
	prod := e.kgo(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	for i := range total {
		if err := prod.ProduceSync(ctx, kgo.StringRecord(strconv.Itoa(i))).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// The share group reads from the log start (Kafka's default is the end).
	{
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		res := kmsg.NewIncrementalAlterConfigsRequestResource()
		res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
		cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		cfg.Name, cfg.Value = "share.auto.offset.reset", kmsg.StringPtr("earliest")
		res.Configs = append(res.Configs, cfg)
		req.Resources = append(req.Resources, res)
		resp, err := req.RequestWith(ctx, prod)
		if err == nil {
			err = kerr.ErrorForCode(resp.Resources[0].ErrorCode)
		}
		if err != nil {
			t.Fatalf("share.auto.offset.reset: %v", err)
		}
	}

	var mu sync.Mutex
	accepted := map[string]int{}    // value -> accepts, both sides
	side := map[string]string{}     // value -> side that accepted it
	seenBy := map[string][]string{} // value -> sides it was delivered to, in order
	done := make(chan struct{})
	var once sync.Once
	accept := func(who, v string) {
		mu.Lock()
		defer mu.Unlock()
		accepted[v]++
		side[v] = who
		if len(accepted) == total {
			once.Do(func() { close(done) })
		}
	}
	seen := func(who, v string) int {
		mu.Lock()
		defer mu.Unlock()
		seenBy[v] = append(seenBy[v], who)
		return len(seenBy[v])
	}
	// Values the Pulsar side negatively acknowledges on their first
	// delivery, and those the Kafka side releases on theirs.
	pulsarNacks := func(v int) bool { return v%10 == 3 }
	kafkaReleases := func(v int) bool { return v%10 == 7 }

	pc := e.pulsarClient(t)
	cons, err := pc.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: group, Type: pulsar.Shared,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, ReceiverQueueSize: 5,
		NackRedeliveryDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	kc := e.kgo(t, kgo.ShareGroup(group), kgo.ConsumeTopics(topic), kgo.ShareMaxRecords(5),
		kgo.FetchMaxWait(200*time.Millisecond))

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			m, err := cons.Receive(rctx)
			cancel()
			select {
			case <-done:
				return
			default:
			}
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				continue
			}
			v := string(m.Payload())
			n, _ := strconv.Atoi(v)
			seen("pulsar", v)
			if pulsarNacks(n) && m.RedeliveryCount() == 0 {
				cons.Nack(m)
				continue
			}
			if err := cons.Ack(m); err != nil {
				t.Errorf("pulsar ack %s: %v", v, err)
			}
			accept("pulsar", v)
		}
	}()
	go func() {
		defer wg.Done()
		for {
			pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			fs := kc.PollFetches(pctx)
			cancel()
			fs.EachRecord(func(r *kgo.Record) {
				v := string(r.Value)
				n, _ := strconv.Atoi(v)
				seen("kafka", v)
				if kafkaReleases(n) && r.DeliveryCount() == 1 {
					r.Ack(kgo.AckRelease)
					return
				}
				r.Ack(kgo.AckAccept)
				accept("kafka", v)
			})
			if err := kc.FlushAcks(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("flush acks: %v", err)
			}
			select {
			case <-done:
				return
			default:
			}
			if ctx.Err() != nil {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(accepted) != total {
		t.Fatalf("%d of %d records accepted", len(accepted), total)
	}
	perSide := map[string]int{}
	for v, n := range accepted {
		if n != 1 {
			t.Errorf("record %s accepted %d times (seen by %v)", v, n, seenBy[v])
		}
		perSide[side[v]]++
	}
	if perSide["kafka"] == 0 || perSide["pulsar"] == 0 {
		t.Errorf("records not divided: %v", perSide)
	}
	redelivered, crossed := 0, 0
	for v, who := range seenBy {
		n, _ := strconv.Atoi(v)
		first := who[0]
		if (first == "pulsar" && pulsarNacks(n)) || (first == "kafka" && kafkaReleases(n)) {
			if len(who) < 2 {
				t.Errorf("record %s negatively acknowledged by %s but not redelivered", v, first)
				continue
			}
			redelivered++
			if who[1] != first {
				crossed++
			}
		}
	}
	t.Logf("accepted per side %v; %d redelivered, %d of them to the other side", perSide, redelivered, crossed)
	if redelivered == 0 {
		t.Error("nothing was redelivered")
	}

	// Nothing is left: the start offset is the log end on each partition.
	req := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
	rg := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
	rg.GroupID = group
	req.Groups = append(req.Groups, rg)
	resp, err := req.RequestWith(ctx, prod)
	if err != nil {
		t.Fatal(err)
	}
	var start int64
	for _, rt := range resp.Groups[0].Topics {
		for _, rp := range rt.Partitions {
			if rp.Lag != 0 || rp.ErrorCode != 0 {
				t.Errorf("partition %d: start offset %d lag %d error %d", rp.Partition, rp.StartOffset, rp.Lag, rp.ErrorCode)
			}
			start += rp.StartOffset
		}
	}
	if start != total {
		t.Errorf("start offsets sum to %d, want %d", start, total)
	}
}

// TestShareDeliveryLimitWithPulsarDLQ: group.share.delivery.count.limit
// and a Pulsar dead-letter policy with the same MaxDeliveries agree. Both
// sides refuse every record (Kafka releases, Pulsar negatively
// acknowledges): every record reaches the applications exactly `limit`
// times overall (on either side), and each ends archived by the share group or
// dead-lettered by the Pulsar client, leaving nothing behind.
func TestShareDeliveryLimitWithPulsarDLQ(t *testing.T) {
	e := start(t)
	ctx := ctxT(t)
	topic := topicName("sharedlq")
	const total, limit = 40, 2
	e.createTopic(t, topic, 1)
	group := "g-" + topic
	prod := e.kgo(t, kgo.DefaultProduceTopic(topic))
	for i := range total {
		if err := prod.ProduceSync(ctx, kgo.StringRecord(strconv.Itoa(i))).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	for k, v := range map[string]string{"share.auto.offset.reset": "earliest", "share.delivery.count.limit": strconv.Itoa(limit)} {
		cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		cfg.Name, cfg.Value = k, kmsg.StringPtr(v)
		res.Configs = append(res.Configs, cfg)
	}
	req.Resources = append(req.Resources, res)
	if resp, err := req.RequestWith(ctx, prod); err != nil || resp.Resources[0].ErrorCode != 0 {
		t.Fatalf("configs: %v %+v", err, resp)
	}

	var mu sync.Mutex
	deliveries := map[string]int{}
	pc := e.pulsarClient(t)
	dlq := topic + "-dlq"
	cons, err := pc.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: group, Type: pulsar.Shared,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, ReceiverQueueSize: 4,
		NackRedeliveryDelay: 50 * time.Millisecond,
		DLQ:                 &pulsar.DLQPolicy{MaxDeliveries: limit, DeadLetterTopic: dlq}})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	kc := e.kgo(t, kgo.ShareGroup(group), kgo.ConsumeTopics(topic), kgo.ShareMaxRecords(4),
		kgo.FetchMaxWait(100*time.Millisecond))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			m, err := cons.Receive(rctx)
			cancel()
			if err != nil {
				continue
			}
			mu.Lock()
			deliveries[string(m.Payload())]++
			mu.Unlock()
			cons.Nack(m)
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			fs := kc.PollFetches(pctx)
			cancel()
			fs.EachRecord(func(r *kgo.Record) {
				mu.Lock()
				deliveries[string(r.Value)]++
				mu.Unlock()
				r.Ack(kgo.AckRelease)
			})
			kc.FlushAcks(ctx)
		}
	}()

	// Wait until nothing is left unacknowledged.
	lag := int64(-1)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		dreq := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
		rg := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
		rg.GroupID = group
		dreq.Groups = append(dreq.Groups, rg)
		resp, err := dreq.RequestWith(ctx, prod)
		if err != nil || len(resp.Groups[0].Topics) != 1 {
			continue
		}
		if lag = resp.Groups[0].Topics[0].Partitions[0].Lag; lag == 0 {
			break
		}
	}
	close(stop)
	wg.Wait()
	if lag != 0 {
		t.Fatalf("lag %d: records neither archived nor dead-lettered", lag)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(deliveries) != total {
		t.Errorf("%d of %d records delivered", len(deliveries), total)
	}
	for v, n := range deliveries {
		// Refused on every delivery: exactly limit deliveries, never more.
		if n != limit {
			t.Errorf("record %s delivered %d times, limit %d", v, n, limit)
		}
	}
	t.Logf("deliveries per record: %v", deliveries)
}

// TestShareGroupReadsPulsarBatches: a share consumer reads messages a
// Pulsar producer batched (converted to Kafka records on fetch), and a
// batch partly acknowledged by a Pulsar consumer delivers only the rest.
func TestShareGroupReadsPulsarBatches(t *testing.T) {
	e := start(t)
	ctx := ctxT(t)
	topic := topicName("sharepb")
	group := "g-" + topic
	pc := e.pulsarClient(t)
	// The Pulsar consumer creates the subscription at the start and
	// acknowledges message 3 of the batch only.
	cons, err := pc.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: group, Type: pulsar.Shared,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, EnableBatchIndexAcknowledgment: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 10, BatchingMaxPublishDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		p.SendAsync(ctx, &pulsar.ProducerMessage{Payload: []byte(strconv.Itoa(i))}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	for range 10 { // (receiveN would acknowledge them all)
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Payload()) == "3" {
			if err := cons.Ack(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Let the grouped ack land, then leave: the rest is released.
	time.Sleep(300 * time.Millisecond)
	cons.Close()

	kc := e.kgo(t, kgo.ShareGroup(group), kgo.ConsumeTopics(topic), kgo.FetchMaxWait(200*time.Millisecond))
	var got []string
	pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
	defer pcancel()
	for len(got) < 9 && pctx.Err() == nil {
		fs := kc.PollFetches(pctx)
		fs.EachRecord(func(r *kgo.Record) {
			got = append(got, string(r.Value))
			r.Ack(kgo.AckAccept)
		})
	}
	if err := kc.FlushAcks(ctx); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[0 1 2 4 5 6 7 8 9]" {
		t.Fatalf("share consumer got %v", got)
	}
}
