package interop

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/twmb/franz-go/pkg/kgo"
)

var kafkaCodecs = []struct {
	name  string
	codec kgo.CompressionCodec
}{
	{"none", kgo.NoCompression()}, {"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()},
	{"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()},
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// special is a record with every field mapping worth checking, and what a
// Pulsar application sees of it.
type special struct {
	rec   *kgo.Record
	key   string // Message.Key()
	props map[string]string
}

func specials(r *rand.Rand, t0 time.Time) []special {
	big := randBytes(r, 1<<20)
	return []special{
		{rec: &kgo.Record{Key: []byte("user-1"), Value: []byte("hello"), Timestamp: t0, Headers: []kgo.RecordHeader{
			{Key: "h", Value: []byte("text")}, {Key: "h", Value: []byte("again")},
			{Key: "bin", Value: []byte{0xff, 0x00, 0x80}}, {Key: "nullhdr", Value: nil}}},
			key: "user-1",
			props: map[string]string{"h": "again", "__kafka_rep.0.h": "text", "bin": "/wCA", "nullhdr": "",
				"__kafka_b64": "bin", "__kafka_null": "nullhdr", "__kafka_order": "h,h,bin,nullhdr"}},
		{rec: &kgo.Record{Key: nil, Value: nil, Timestamp: t0.Add(time.Millisecond)}, key: "", props: map[string]string{}},
		{rec: &kgo.Record{Key: []byte{0xde, 0xad, 0xbe, 0xef}, Value: []byte{}, Timestamp: t0.Add(2 * time.Millisecond)},
			key: base64.StdEncoding.EncodeToString([]byte{0xde, 0xad, 0xbe, 0xef}), props: map[string]string{}},
		{rec: &kgo.Record{Key: []byte("big"), Value: big, Timestamp: t0.Add(3 * time.Millisecond)}, key: "big", props: map[string]string{}},
	}
}

// checkPulsarView compares what the Pulsar consumer got with the record
// the Kafka producer sent (after its produce result filled the offset).
func checkPulsarView(t *testing.T, rec *kgo.Record, key string, props map[string]string, m pulsar.Message) {
	t.Helper()
	if m.Key() != key {
		t.Fatalf("offset %d: key %q, want %q", rec.Offset, m.Key(), key)
	}
	if rec.Key != nil && m.OrderingKey() != string(rec.Key) {
		t.Fatalf("offset %d: ordering key %q", rec.Offset, m.OrderingKey())
	}
	if !bytes.Equal(m.Payload(), rec.Value) {
		t.Fatalf("offset %d: payload of %d bytes, want %d", rec.Offset, len(m.Payload()), len(rec.Value))
	}
	if !m.EventTime().Equal(rec.Timestamp) {
		t.Fatalf("offset %d: event time %v, want %v", rec.Offset, m.EventTime(), rec.Timestamp)
	}
	if idx := m.Index(); idx == nil || int64(*idx) != rec.Offset {
		t.Fatalf("offset %d: Index() %v", rec.Offset, idx)
	}
	if props != nil {
		got := m.Properties()
		if len(got) != len(props) {
			t.Fatalf("offset %d: properties %v, want %v", rec.Offset, got, props)
		}
		for k, v := range props {
			if got[k] != v {
				t.Fatalf("offset %d: properties %v, want %v", rec.Offset, got, props)
			}
		}
	}
}

// TestKafkaProducerPulsarConsumer: franz-go produces, pulsar-client-go
// consumes the same topic, for every Kafka codec, batches of one record
// and of 1000.
func TestKafkaProducerPulsarConsumer(t *testing.T) {
	e := start(t)
	pc := e.pulsarClient(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range kafkaCodecs {
		t.Run(c.name, func(t *testing.T) {
			topic := topicName("k2p-" + c.name)
			e.createTopic(t, topic, 1)
			p := e.kgo(t, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(c.codec), kgo.ProducerLinger(time.Second))
			ctx := ctxT(t)
			t0 := time.UnixMilli(time.Now().UnixMilli() - 60_000)

			// Batches of one: each record produced on its own.
			sp := specials(r, t0)
			for _, s := range sp {
				if err := p.ProduceSync(ctx, s.rec).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			// One batch of 1000.
			const n = 1000
			batch := make([]*kgo.Record, n)
			errs := make(chan error, n)
			for i := range batch {
				batch[i] = &kgo.Record{Key: []byte("k" + strconv.Itoa(i%7)), Value: []byte(fmt.Sprintf("v-%d", i)),
					Timestamp: t0.Add(time.Duration(10+i) * time.Millisecond),
					Headers:   []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}}}
				p.Produce(ctx, batch[i], func(_ *kgo.Record, err error) { errs <- err })
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			for range n {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}

			msgs := receivePulsar(t, pc, topic, "sub", len(sp)+n)
			for i, s := range sp {
				checkPulsarView(t, s.rec, s.key, s.props, msgs[i])
				if msgs[i].ID().BatchSize() != 1 {
					t.Fatalf("record %d arrived in a batch of %d", i, msgs[i].ID().BatchSize())
				}
			}
			for i, rec := range batch {
				m := msgs[len(sp)+i]
				checkPulsarView(t, rec, string(rec.Key), map[string]string{"i": strconv.Itoa(i)}, m)
				if m.ID().BatchSize() < 2 {
					t.Fatalf("record %d arrived in a batch of %d", i, m.ID().BatchSize())
				}
			}

			// The Kafka side still reads the records as produced.
			recs := consumeKafka(t, e, topic, len(sp)+n)
			for i, s := range sp {
				if got := recs[i]; !bytes.Equal(got.Value, s.rec.Value) || (got.Value == nil) != (s.rec.Value == nil) || got.Offset != s.rec.Offset {
					t.Fatalf("kafka record %d differs", i)
				}
			}
		})
	}
}

// TestKafkaPartitionsPulsarOrder: a Kafka-created topic of 3 partitions is a
// partitioned Pulsar topic; per partition, Pulsar delivers in offset order
// and Index() is the offset.
func TestKafkaPartitionsPulsarOrder(t *testing.T) {
	e := start(t)
	topic := topicName("k2p-parts")
	e.createTopic(t, topic, 3)
	p := e.kgo(t, kgo.DefaultProduceTopic(topic))
	ctx := ctxT(t)
	const n = 300
	type at struct {
		part int32
		off  int64
	}
	where := map[string]at{}
	for i := range n {
		rec := &kgo.Record{Key: []byte("key-" + strconv.Itoa(i%11)), Value: []byte(strconv.Itoa(i))}
		res, err := p.ProduceSync(ctx, rec).First()
		if err != nil {
			t.Fatal(err)
		}
		where[string(rec.Value)] = at{res.Partition, res.Offset}
	}
	msgs := receivePulsar(t, e.pulsarClient(t), topic, "sub", n)
	last := map[int32]int64{0: -1, 1: -1, 2: -1}
	for _, m := range msgs {
		w := where[string(m.Payload())]
		if m.ID().PartitionIdx() != w.part || m.Index() == nil || int64(*m.Index()) != w.off {
			t.Fatalf("message %s: partition %d index %v, want %+v", m.Payload(), m.ID().PartitionIdx(), m.Index(), w)
		}
		if w.off <= last[w.part] {
			t.Fatalf("partition %d: offset %d after %d", w.part, w.off, last[w.part])
		}
		last[w.part] = w.off
	}
}

// TestPulsarReaderHasNextOnKafkaBatches: a Pulsar reader's HasNext relies on
// GET_LAST_MESSAGE_ID, whose batch index must count the records of a Kafka
// batch (they arrive as one Pulsar batch).
func TestPulsarReaderHasNextOnKafkaBatches(t *testing.T) {
	e := start(t)
	topic := topicName("k2p-reader")
	e.createTopic(t, topic, 1)
	p := e.kgo(t, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Second))
	ctx := ctxT(t)
	for i := range 10 {
		p.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := e.pulsarClient(t).CreateReader(pulsar.ReaderOptions{Topic: topic + "-partition-0", StartMessageID: pulsar.EarliestMessageID()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []string
	for r.HasNext() {
		m, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.Payload()))
	}
	if len(got) != 10 || got[9] != "9" {
		t.Fatalf("reader got %q", got)
	}
}

// TestKeySharedOnKafkaRecords: Key_Shared routes Kafka-produced records by
// key (an entry by its first record's key; here one record per batch).
func TestKeySharedOnKafkaRecords(t *testing.T) {
	e := start(t)
	topic := topicName("k2p-keyshared")
	e.createTopic(t, topic, 1)
	p := e.kgo(t, kgo.DefaultProduceTopic(topic))
	ctx := ctxT(t)
	const n = 60
	for i := range n {
		if err := p.ProduceSync(ctx, &kgo.Record{Key: []byte("key-" + strconv.Itoa(i%6)), Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	pc := e.pulsarClient(t)
	var cons []pulsar.Consumer
	for range 2 {
		c, err := pc.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "ks", Type: pulsar.KeyShared,
			SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cons = append(cons, c)
	}
	owner := map[string]int{}
	seen := map[string]bool{}
	for len(seen) < n {
		var m pulsar.ConsumerMessage
		select {
		case m = <-cons[0].Chan():
		case m = <-cons[1].Chan():
		case <-ctx.Done():
			t.Fatalf("%d of %d messages", len(seen), n)
		}
		who := 0
		if m.Consumer == cons[1] {
			who = 1
		}
		if o, ok := owner[m.Key()]; ok && o != who {
			t.Fatalf("key %s went to both consumers", m.Key())
		}
		owner[m.Key()] = who
		seen[string(m.Payload())] = true
		m.Consumer.Ack(m.Message)
	}
}

// TestInflatingBatches: a zstd Kafka batch of 6 MiB of zeros (a few KiB
// stored) converts to more than the Pulsar max message size (5 MiB here);
// it reaches the Pulsar consumer LZ4-compressed instead of a frame the client
// would drop the connection over. The reverse for a Kafka consumer.
func TestInflatingBatches(t *testing.T) {
	e := start(t)
	topic := topicName("inflate")
	e.createTopic(t, topic, 1)
	p := e.kgo(t, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.ZstdCompression()),
		kgo.ProducerLinger(time.Second), kgo.ProducerBatchMaxBytes(16<<20))
	ctx := ctxT(t)
	zeros := make([]byte, 300<<10)
	for range 20 {
		p.Produce(ctx, &kgo.Record{Value: zeros}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := receivePulsar(t, e.pulsarClient(t), topic, "sub", 20)
	for i, m := range msgs {
		if len(m.Payload()) != len(zeros) || *m.Index() != uint64(i) {
			t.Fatalf("message %d: %d bytes at index %d", i, len(m.Payload()), *m.Index())
		}
	}

	ptopic := topicName("inflate-p")
	pp, err := e.pulsarClient(t).CreateProducer(pulsar.ProducerOptions{Topic: ptopic, CompressionType: pulsar.ZSTD,
		BatchingMaxMessages: 100, BatchingMaxSize: 16 << 20, BatchingMaxPublishDelay: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pp.Close()
	for range 20 {
		pp.SendAsync(ctx, &pulsar.ProducerMessage{Payload: zeros}, nil)
	}
	if err := pp.Flush(); err != nil {
		t.Fatal(err)
	}
	for i, r := range consumeKafka(t, e, ptopic, 20) {
		if len(r.Value) != len(zeros) || r.Offset != int64(i) {
			t.Fatalf("record %d: %d bytes at %d", i, len(r.Value), r.Offset)
		}
	}
}
