package pulsar

import (
	"fmt"
	"slices"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
)

func TestProduceConsumeBasic(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("basic")
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	produce(t, p, 20, "m")
	ms := receive(t, cons, 20, true)
	got := payloads(ms)
	for i := range 20 {
		if got[i] != fmt.Sprintf("m-%d", i) {
			t.Fatalf("got %v", got)
		}
		// Broker entry metadata: the message index is the Kafka offset.
		if idx := ms[i].Index(); idx == nil || *idx != uint64(i) {
			t.Fatalf("message %d: index %v", i, idx)
		}
		if ms[i].BrokerPublishTime() == nil {
			t.Fatalf("message %d: no broker publish time", i)
		}
	}
	_ = slices.Equal[[]string]
}
