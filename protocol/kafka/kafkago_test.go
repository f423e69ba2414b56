package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

func TestKafkaGoWriterReader(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	w := &kafkago.Writer{
		Addr:                   kafkago.TCP(s.addr),
		Topic:                  "kgo-writer",
		AllowAutoTopicCreation: true,
		RequiredAcks:           kafkago.RequireAll,
		BatchTimeout:           5 * time.Millisecond,
		Compression:            kafkago.Lz4,
	}
	defer w.Close()
	const n = 20
	var msgs []kafkago.Message
	for i := range n {
		msgs = append(msgs, kafkago.Message{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("v%d", i))})
	}
	// The first write may race the topic's creation: kafka-go retries
	// UNKNOWN_TOPIC_OR_PARTITION itself, but give it time.
	var err error
	for range 20 {
		if err = w.WriteMessages(ctx, msgs...); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:   []string{s.addr},
		Topic:     "kgo-writer",
		Partition: 0,
		MinBytes:  1,
		MaxBytes:  1 << 20,
		MaxWait:   100 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(kafkago.FirstOffset); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for i := range n {
		m, err := r.ReadMessage(rctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.Offset != int64(i) || string(m.Value) != fmt.Sprintf("v%d", i) {
			t.Fatalf("got %d %q", m.Offset, m.Value)
		}
	}
}
