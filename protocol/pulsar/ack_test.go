package pulsar

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

func TestNackRedelivery(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	for _, typ := range []pulsar.SubscriptionType{pulsar.Shared, pulsar.Exclusive} {
		t.Run(fmt.Sprint(typ), func(t *testing.T) {
			topic := newTopic("nack")
			cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: typ,
				NackRedeliveryDelay: 50 * time.Millisecond})
			p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
			produce(t, p, 5, "n")
			for _, m := range receive(t, cons, 5, false) {
				if string(m.Payload()) == "n-2" {
					cons.Nack(m)
				} else {
					cons.Ack(m)
				}
			}
			m := receive(t, cons, 1, true)[0]
			if string(m.Payload()) != "n-2" || m.RedeliveryCount() != 1 {
				t.Fatalf("redelivered %q count %d", m.Payload(), m.RedeliveryCount())
			}
			expectNone(t, cons, 150*time.Millisecond)
		})
	}
}

// The Go client has no ack timeout; its broker-side equivalent is that
// unacknowledged messages go back to the subscription when their consumer
// leaves. This checks that for a shared subscription.
func TestUnackedRedeliveredWhenConsumerLeaves(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("unacked")
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Shared}
	c1, err := c.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	produce(t, p, 10, "u")
	got := receive(t, c1, 10, false)
	for _, m := range got[:4] {
		c1.Ack(m)
	}
	time.Sleep(50 * time.Millisecond) // acks are grouped by the client
	c1.Close()
	c2 := subscribe(t, s.client(t), opts)
	again := payloads(receive(t, c2, 6, true))
	sort.Strings(again)
	if again[0] != "u-4" || again[5] != "u-9" {
		t.Fatalf("redelivered %v", again)
	}
	expectNone(t, c2, 100*time.Millisecond)
}

func TestBatchIndexAck(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("batchidx")
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", EnableBatchIndexAcknowledgment: true}
	cons, err := c.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 10, BatchingMaxPublishDelay: time.Second})
	ids := produce(t, p, 10, "b")
	for _, id := range ids {
		if id.EntryID() != ids[0].EntryID() {
			t.Fatalf("not one batch: %v", ids)
		}
	}
	for i, m := range receive(t, cons, 10, false) {
		if i%2 == 0 {
			if err := cons.AckWithTxn(m, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(200 * time.Millisecond) // grouped acks flush every 100 ms
	cons.Close()
	cons = subscribe(t, c, opts)
	got := payloads(receive(t, cons, 5, true))
	if fmt.Sprint(got) != "[b-1 b-3 b-5 b-7 b-9]" {
		t.Fatalf("after batch-index acks got %v", got)
	}
	expectNone(t, cons, 100*time.Millisecond)
}

func TestCumulativeAckAndUnsubscribe(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("cumul")
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", AckWithResponse: true}
	cons, err := c.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	produce(t, p, 10, "c")
	got := receive(t, cons, 10, false)
	if err := cons.AckCumulative(got[6]); err != nil {
		t.Fatal(err)
	}
	cons.Close()
	cons, err = c.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	if r := payloads(receive(t, cons, 3, true)); r[0] != "c-7" {
		t.Fatalf("after cumulative ack: %v", r)
	}
	if err := cons.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	part, err := s.broker.OpenPartition(ctxT(t), mustName(t, s, topic), false)
	if err != nil {
		t.Fatal(err)
	}
	if subs := part.Subscriptions(ctxT(t)); len(subs) != 0 {
		t.Fatalf("subscription still there after unsubscribe: %d", len(subs))
	}
}

// The client's dead-letter policy relies on the broker's redelivery count.
func TestDeadLetterPolicy(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("dlq")
	dlq := topic + "-DLQ"
	dead := subscribe(t, c, pulsar.ConsumerOptions{Topic: dlq, SubscriptionName: "d"})
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Shared,
		NackRedeliveryDelay: 20 * time.Millisecond,
		DLQ:                 &pulsar.DLQPolicy{MaxDeliveries: 2, DeadLetterTopic: dlq, InitialSubscriptionName: "init"}})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	produce(t, p, 1, "poison")
	for range 2 {
		m := receive(t, cons, 1, false)[0]
		cons.Nack(m)
	}
	if got := payloads(receive(t, dead, 1, true)); got[0] != "poison-0" {
		t.Fatalf("dead letter %v", got)
	}
	// The DLQ producer asked for an initial subscription (PRODUCER.initial_subscription_name).
	part, err := s.broker.OpenPartition(ctxT(t), mustName(t, s, dlq), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := part.Subscription(ctxT(t), "init", false, 0); err != nil {
		t.Fatalf("initial subscription: %v", err)
	}
	expectNone(t, cons, 100*time.Millisecond)
}

func TestDelayedDelivery(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("delayed")
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Shared})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	start := time.Now()
	if _, err := p.Send(ctxT(t), &pulsar.ProducerMessage{Payload: []byte("later"), DeliverAfter: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Send(ctxT(t), &pulsar.ProducerMessage{Payload: []byte("now")}); err != nil {
		t.Fatal(err)
	}
	got := receive(t, cons, 2, true)
	if string(got[0].Payload()) != "now" || string(got[1].Payload()) != "later" {
		t.Fatalf("order %v", payloads(got))
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("delayed message arrived after %v", d)
	}
}
