package interop

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var pulsarCodecs = []struct {
	name  string
	codec pulsar.CompressionType
}{{"none", pulsar.NoCompression}, {"lz4", pulsar.LZ4}, {"zlib", pulsar.ZLib}, {"zstd", pulsar.ZSTD}}

// checkKafkaView compares the Kafka record with the Pulsar message sent
// (pm) and received by a Pulsar consumer (m).
func checkKafkaView(t *testing.T, i int, pm *pulsar.ProducerMessage, m pulsar.Message, rec *kgo.Record) {
	t.Helper()
	if m.Index() == nil || int64(*m.Index()) != rec.Offset {
		t.Fatalf("message %d: Pulsar Index() %v, Kafka offset %d", i, m.Index(), rec.Offset)
	}
	wantKey := []byte(pm.Key)
	if pm.Key == "" {
		wantKey = nil
	}
	if !bytes.Equal(rec.Key, wantKey) || (rec.Key == nil) != (wantKey == nil) {
		t.Fatalf("message %d: key %q, want %q", i, rec.Key, wantKey)
	}
	if !bytes.Equal(rec.Value, pm.Payload) || rec.Value == nil {
		t.Fatalf("message %d: value of %d bytes, want %d", i, len(rec.Value), len(pm.Payload))
	}
	var want []string
	for k, v := range pm.Properties {
		want = append(want, k+"="+v)
	}
	slices.Sort(want)
	if pm.OrderingKey != "" {
		want = append(want, "pulsar.ordering_key="+pm.OrderingKey)
	}
	var got []string
	for _, h := range rec.Headers {
		got = append(got, h.Key+"="+string(h.Value))
	}
	if pm.OrderingKey != "" {
		slices.Sort(got[:len(got)-1])
	} else {
		slices.Sort(got)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("message %d: headers %v, want %v", i, got, want)
	}
	if pm.EventTime.IsZero() {
		if !rec.Timestamp.Equal(m.PublishTime()) {
			t.Fatalf("message %d: timestamp %v, want publish time %v", i, rec.Timestamp, m.PublishTime())
		}
	} else if !rec.Timestamp.Equal(pm.EventTime) || rec.Attrs.TimestampType() != 0 {
		t.Fatalf("message %d: timestamp %v (type %d), want create time %v", i, rec.Timestamp, rec.Attrs.TimestampType(), pm.EventTime)
	}
}

// TestPulsarProducerKafkaConsumer: pulsar-client-go produces (unbatched
// messages, then one batch of 1000), franz-go consumes the same topic, for
// every compression the Go client has (SNAPPY: package convert's tests).
func TestPulsarProducerKafkaConsumer(t *testing.T) {
	e := start(t)
	pc := e.pulsarClient(t)
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range pulsarCodecs {
		t.Run(c.name, func(t *testing.T) {
			topic := topicName("p2k-" + c.name)
			ctx := ctxT(t)
			t0 := time.UnixMilli(time.Now().UnixMilli() - 60_000)
			single, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: topic, CompressionType: c.codec, DisableBatching: true})
			if err != nil {
				t.Fatal(err)
			}
			defer single.Close()
			sent := []*pulsar.ProducerMessage{
				{Key: "pk", OrderingKey: "ok", Properties: map[string]string{"a": "1", "b": "two"}, Payload: []byte("p0"), EventTime: t0},
				// An unbatched empty payload needs a property: without one
				// the Go consumer itself discards the message as corrupt.
				{Payload: []byte{}, Properties: map[string]string{"empty": ""}},
				{Key: "k2", Payload: randBytes(r, 100), EventTime: t0.Add(2 * time.Millisecond)},
				{Key: "big", Payload: randBytes(r, 1<<20), EventTime: t0.Add(3 * time.Millisecond)},
			}
			for _, pm := range sent {
				if _, err := single.Send(ctx, pm); err != nil {
					t.Fatal(err)
				}
			}
			batched, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: topic, CompressionType: c.codec,
				BatchingMaxMessages: 1000, BatchingMaxPublishDelay: 10 * time.Second, BatchingMaxSize: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer batched.Close()
			const n = 1000
			errs := make(chan error, n)
			for i := range n {
				pm := &pulsar.ProducerMessage{Key: "k" + strconv.Itoa(i%7), Payload: fmt.Appendf(nil, "v-%d", i),
					Properties: map[string]string{"i": strconv.Itoa(i)}}
				sent = append(sent, pm)
				batched.SendAsync(ctx, pm, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) { errs <- err })
			}
			if err := batched.Flush(); err != nil {
				t.Fatal(err)
			}
			for range n {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}

			msgs := receivePulsar(t, pc, topic, "sub", len(sent))
			recs := consumeKafka(t, e, topic, len(sent))
			for i, pm := range sent {
				if recs[i].Offset != int64(i) {
					t.Fatalf("record %d at offset %d", i, recs[i].Offset)
				}
				checkKafkaView(t, i, pm, msgs[i], recs[i])
			}
			if msgs[len(msgs)-1].ID().BatchSize() != n {
				t.Fatalf("the 1000 messages were sent in batches of %d", msgs[len(msgs)-1].ID().BatchSize())
			}
			// Messages without event time: the Kafka batch is LogAppendTime.
			if recs[len(recs)-1].Attrs.TimestampType() != 1 || recs[1].Attrs.TimestampType() != 1 {
				t.Fatal("messages without event time are not log-append time records")
			}
		})
	}
}

// TestListOffsetsFindsPulsarMessage: Kafka ListOffsets by timestamp answers
// the exact message inside a Pulsar batch.
func TestListOffsetsFindsPulsarMessage(t *testing.T) {
	e := start(t)
	pc := e.pulsarClient(t)
	topic := topicName("p2k-time")
	ctx := ctxT(t)
	p, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: topic, CompressionType: pulsar.LZ4,
		BatchingMaxMessages: 1000, BatchingMaxPublishDelay: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	t0 := time.UnixMilli(time.Now().UnixMilli() - 3_600_000)
	const n = 1000
	errs := make(chan error, n)
	for i := range n {
		p.SendAsync(ctx, &pulsar.ProducerMessage{Payload: fmt.Appendf(nil, "%d", i), EventTime: t0.Add(time.Duration(i) * time.Millisecond)},
			func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) { errs <- err })
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(e.kgo(t))
	for _, c := range []struct {
		ms   int64
		want int64
	}{{t0.UnixMilli() - 5, 0}, {t0.UnixMilli(), 0}, {t0.UnixMilli() + 500, 500}, {t0.UnixMilli() + 999, 999}} {
		lo, err := adm.ListOffsetsAfterMilli(ctx, c.ms, topic)
		if err != nil {
			t.Fatal(err)
		}
		o, ok := lo.Lookup(topic, 0)
		if !ok || o.Err != nil || o.Offset != c.want {
			t.Fatalf("after %d: %+v, want offset %d", c.ms-t0.UnixMilli(), o, c.want)
		}
		if c.want > 0 && o.Timestamp != c.ms {
			t.Fatalf("after %d: timestamp %d", c.ms-t0.UnixMilli(), o.Timestamp)
		}
	}
}

// TestPulsarSeekByTimeFindsKafkaRecord: a Pulsar consumer's seek by time
// lands on the Kafka record (batch) holding that time.
func TestPulsarSeekByTimeFindsKafkaRecord(t *testing.T) {
	e := start(t)
	topic := topicName("k2p-seek")
	e.createTopic(t, topic, 1)
	kc := e.kgo(t, kgo.DefaultProduceTopic(topic))
	ctx := ctxT(t)
	t0 := time.UnixMilli(time.Now().UnixMilli() - 3_600_000)
	for i := range 5 {
		if err := kc.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i)), Timestamp: t0.Add(time.Duration(i) * time.Second)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := e.pulsarClient(t).Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "seek",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	receiveN(t, cons, 5)
	if err := cons.SeekByTime(t0.Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	m := receiveN(t, cons, 1)[0]
	if string(m.Payload()) != "2" || *m.Index() != 2 {
		t.Fatalf("after seek: %q at index %v, want record 2", m.Payload(), *m.Index())
	}
}

// TestKafkaFetchLimitsOnConvertedBatches: converted batches count against
// fetch max bytes after conversion; one larger than the limit still comes
// alone (KIP-74), so a consumer with tiny limits progresses.
func TestKafkaFetchLimitsOnConvertedBatches(t *testing.T) {
	e := start(t)
	topic := topicName("p2k-limits")
	ctx := ctxT(t)
	p, err := e.pulsarClient(t).CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r := rand.New(rand.NewPCG(9, 9))
	for range 5 {
		if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: randBytes(r, 10<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	c := e.kgo(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(1000), kgo.FetchMaxPartitionBytes(1000))
	var got int64
	for got < 5 {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of 5 records", got)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		for _, rec := range fs.Records() {
			if rec.Offset != got || len(rec.Value) != 10<<10 {
				t.Fatalf("record at %d (%d bytes), want offset %d", rec.Offset, len(rec.Value), got)
			}
			got++
		}
	}
}

// TestKafkaFetchInsideConvertedBatch: a Kafka consumer starting in the
// middle of a Pulsar batch gets exactly the records from its offset on.
func TestKafkaFetchInsideConvertedBatch(t *testing.T) {
	e := start(t)
	topic := topicName("p2k-mid")
	pulsarMessages(t, e, topic, 10)
	c := e.kgo(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(5)}}))
	ctx := ctxT(t)
	var got []int64
	for len(got) < 5 {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got offsets %v", got)
		}
		for _, r := range fs.Records() {
			if string(r.Value) != strconv.FormatInt(r.Offset, 10) {
				t.Fatalf("offset %d holds %q", r.Offset, r.Value)
			}
			got = append(got, r.Offset)
		}
	}
	if got[0] != 5 || len(got) != 5 {
		t.Fatalf("got offsets %v", got)
	}
}
