package interop

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	benchRecords = 20000
	benchBatch   = 100
	benchValue   = 100
)

// benchTopics produces the same records through each protocol: topic "k"
// from franz-go (batches of benchBatch, uncompressed), topic "p" from
// pulsar-client-go (batches of benchBatch, uncompressed).
func benchTopics(b *testing.B, e *env) (kafkaTopic, pulsarTopic string) {
	kafkaTopic, pulsarTopic = topicName("bench-k"), topicName("bench-p")
	e.createTopic(b, kafkaTopic, 1)
	ctx := ctxT(b)
	val := bytes.Repeat([]byte("v"), benchValue)
	kc := e.kgo(b, kgo.DefaultProduceTopic(kafkaTopic), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(time.Second))
	for i := 0; i < benchRecords; i += benchBatch {
		for j := range benchBatch {
			kc.Produce(ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(j%10)), Value: val}, nil)
		}
		if err := kc.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	pp, err := e.pulsarClient(b).CreateProducer(pulsar.ProducerOptions{Topic: pulsarTopic,
		BatchingMaxMessages: benchBatch, BatchingMaxPublishDelay: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer pp.Close()
	for i := 0; i < benchRecords; i += benchBatch {
		for j := range benchBatch {
			pp.SendAsync(ctx, &pulsar.ProducerMessage{Key: "k" + strconv.Itoa(j%10), Payload: val}, nil)
		}
		if err := pp.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	return kafkaTopic, pulsarTopic
}

// BenchmarkReadPath: a full read of benchRecords records by a new consumer,
// same-protocol (stored bytes passed through) against cross-protocol
// (converted on read).
func BenchmarkReadPath(b *testing.B) {
	e := start(b)
	kt, pt := benchTopics(b, e)
	kafkaRead := func(b *testing.B, topic string) {
		b.SetBytes(benchRecords * benchValue)
		for b.Loop() {
			consumeKafka(b, e, topic, benchRecords)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRecords), "ns/record")
	}
	pulsarRead := func(b *testing.B, topic string) {
		pc := e.pulsarClient(b)
		b.SetBytes(benchRecords * benchValue)
		i := 0
		for b.Loop() {
			i++
			cons, err := pc.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "bench-" + strconv.Itoa(i),
				SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, ReceiverQueueSize: 5000})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			for range benchRecords {
				if _, err := cons.Receive(ctx); err != nil {
					b.Fatal(err)
				}
			}
			cancel()
			cons.Close()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRecords), "ns/record")
	}
	b.Run("kafka-reads-kafka", func(b *testing.B) { kafkaRead(b, kt) })
	b.Run("kafka-reads-pulsar", func(b *testing.B) { kafkaRead(b, pt) })
	b.Run("pulsar-reads-pulsar", func(b *testing.B) { pulsarRead(b, pt) })
	b.Run("pulsar-reads-kafka", func(b *testing.B) { pulsarRead(b, kt) })
}
