package pulsar

import (
	"fmt"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
)

// pulsar-client-go's TestKeyBasedBatchProducerConsumerKeyShared: key-based
// batches (one key per entry) keep per-key order across two consumers.
func TestKeyBasedBatchKeyShared(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("kbb")
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub-1", Type: pulsar.KeyShared}
	c1 := subscribe(t, c, opts)
	c2 := subscribe(t, c, opts)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, BatcherBuilderType: pulsar.KeyBasedBatchBuilder, BatchingMaxMessages: 10})
	keys := []string{"key1", "key2", "key3"}
	for i := range 100 {
		for _, k := range keys {
			p.SendAsync(ctxT(t), &pulsar.ProducerMessage{Key: k, Payload: fmt.Appendf(nil, "value-%d", i)}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				if err != nil {
					t.Error(err)
				}
			})
		}
	}
	next := [2]map[string]int{{}, {}}
	ctx := ctxT(t)
	for n := 0; n < 300; n++ {
		var cm pulsar.ConsumerMessage
		i := 0
		select {
		case cm = <-c1.Chan():
		case cm = <-c2.Chan():
			i = 1
		case <-ctx.Done():
			t.Fatalf("got %d of 300", n)
		}
		if want := fmt.Sprintf("value-%d", next[i][cm.Key()]); string(cm.Payload()) != want {
			t.Fatalf("consumer %d key %s: got %s, want %s (id %v)", i, cm.Key(), cm.Payload(), want, cm.ID())
		}
		next[i][cm.Key()]++
		cm.Consumer.Ack(cm.Message)
	}
	// A message can reach a consumer before its send receipt reaches the
	// producer; wait for the receipts, or closing the producer at cleanup
	// fails their callbacks with ProducerClosed.
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
}
