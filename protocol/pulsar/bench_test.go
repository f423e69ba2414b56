package pulsar

import (
	"context"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// BenchmarkProduceConsume: one pulsar-client-go producer (batching on) and
// one consumer over loopback, 1 KiB messages. Reports msgs/s; MB/s comes
// from SetBytes. "memory" runs on the in-memory ledger engine, "durable" on
// ledger files with fsync on every acknowledged write (the default policy).
func BenchmarkProduceConsume(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchProduceConsume(b, startServer(b)) })
	b.Run("durable", func(b *testing.B) { benchProduceConsume(b, startDurableServer(b)) })
}

func benchProduceConsume(b *testing.B, s *server) {
	c := s.client(b)
	topic := newTopic("bench")
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, ReceiverQueueSize: 5000})
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxPublishDelay: time.Millisecond,
		BatchingMaxMessages: 1000, MaxPendingMessages: 10000})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	payload := make([]byte, 1024)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for i := 0; i < b.N; i++ {
			m, err := cons.Receive(ctx)
			if err != nil {
				done <- err
				return
			}
			cons.Ack(m)
		}
		done <- nil
	}()
	for i := 0; i < b.N; i++ {
		p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: payload}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := p.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
