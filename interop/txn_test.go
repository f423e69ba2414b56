package interop

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKafkaTransactionsToPulsar: a Pulsar consumer of a topic written by
// Kafka transactions gets the committed records in order and nothing
// else: no marker, no aborted record, and nothing past an open
// transaction until it commits (dispatch holds at the last stable offset).
func TestKafkaTransactionsToPulsar(t *testing.T) {
	e := start(t)
	topic := topicName("txn-to-pulsar")
	e.createTopic(t, topic, 1)
	ctx := ctxT(t)
	p := e.kgo(t, kgo.TransactionalID("interop-txn"), kgo.TransactionTimeout(30*time.Second))
	txn := func(prefix string, n int, end *bool) {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := p.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%s-%d", prefix, i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if end != nil {
			if err := p.EndTransaction(ctx, kgo.TransactionEndTry(*end)); err != nil {
				t.Fatal(err)
			}
		}
	}
	commit, abort := true, false
	txn("c1", 5, &commit)
	txn("a", 5, &abort)
	txn("open", 3, nil)

	c := e.pulsarClient(t)
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "persistent://public/default/" + topic + "-partition-0", SubscriptionName: "txn-sub",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	want := []string{"c1-0", "c1-1", "c1-2", "c1-3", "c1-4"}
	for _, w := range want {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Payload()) != w {
			t.Fatalf("got %q, want %q", m.Payload(), w)
		}
		cons.Ack(m)
	}
	quiet, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	m, err := cons.Receive(quiet)
	cancel()
	if err == nil {
		t.Fatalf("received %q past an open transaction", m.Payload())
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"open-0", "open-1", "open-2"} {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Payload()) != w {
			t.Fatalf("after commit: got %q, want %q", m.Payload(), w)
		}
		cons.Ack(m)
	}
	quiet, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
	m, err = cons.Receive(quiet)
	cancel()
	if err == nil {
		t.Fatalf("unexpected message %q", m.Payload())
	}
}
