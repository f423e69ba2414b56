package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/twmb/franz-go/pkg/kgo"
)

// chunkPayload is n bytes that differ per name, so that a message put
// together from another one's chunks cannot pass for it.
func chunkPayload(name string, n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s-%d;", name, i)
	}
	return b.Bytes()[:n]
}

// TestPulsarTxnChunks (like pulsar-client-go's TestTxn_AckChunkMessage):
// chunked messages sent in a transaction are delivered whole to a Pulsar
// consumer once the transaction commits, with the transaction's other
// messages, and never when it aborts (also after a broker restart); a
// chunked message acknowledged in an aborted transaction is redelivered,
// in a committed one it is gone. A read_committed Kafka consumer sees the
// transactions' unchunked messages exactly when committed (chunks have no
// Kafka form).
func TestPulsarTxnChunks(t *testing.T) {
	dir := t.TempDir()
	e, stop := startDir(t, dir)
	topic := topicName("pulsar-txn-chunks")
	e.createTopic(t, topic, 1)
	c := e.pulsarTxnClient(t)
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: pulsarPartition(topic), EnableChunking: true,
		DisableBatching: true, ChunkMaxMessageSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	big := func(name string) []byte { return chunkPayload(name, 100<<10) } // 7 chunks
	send := func(txn pulsar.Transaction, payload []byte) {
		t.Helper()
		msg := &pulsar.ProducerMessage{Payload: payload}
		if txn != nil {
			msg.Transaction = txn
		}
		if _, err := p.Send(ctxT(t), msg); err != nil {
			t.Fatalf("send %.12q: %v", payload, err)
		}
	}
	newTxn := func() pulsar.Transaction {
		t.Helper()
		txn, err := c.NewTransaction(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return txn
	}

	committed := newTxn()
	send(committed, big("A"))
	send(committed, []byte("s-1"))
	aborted := newTxn()
	send(aborted, big("B"))
	send(aborted, []byte("x-1"))
	if err := committed.Commit(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := aborted.Abort(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	send(nil, []byte("after"))
	want := [][]byte{big("A"), []byte("s-1"), []byte("after")}

	subscribe := func(c pulsar.Client, sub string) pulsar.Consumer {
		t.Helper()
		cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: pulsarPartition(topic), SubscriptionName: sub,
			Type: pulsar.Exclusive, SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
		if err != nil {
			t.Fatal(err)
		}
		return cons
	}
	receive := func(cons pulsar.Consumer, want []byte) pulsar.Message {
		t.Helper()
		m, err := cons.Receive(ctxT(t))
		if err != nil {
			t.Fatalf("receive (want %.12q): %v", want, err)
		}
		if !bytes.Equal(m.Payload(), want) {
			t.Fatalf("received %d bytes %.12q, want %d bytes %.12q", len(m.Payload()), m.Payload(), len(want), want)
		}
		return m
	}
	readAll := func(c pulsar.Client, sub string) {
		t.Helper()
		cons := subscribe(c, sub)
		defer cons.Close()
		for _, w := range want {
			cons.Ack(receive(cons, w))
		}
	}
	readAll(c, "all-before")
	kafkaWant := []string{"s-1", "after"}
	if got := consumeKafkaCommitted(t, e, topic, len(kafkaWant)); fmt.Sprint(got) != fmt.Sprint(kafkaWant) {
		t.Fatalf("kafka read_committed: %q, want %q", got, kafkaWant)
	}

	// Acknowledged in a transaction: aborted, the whole message comes
	// back; committed, it is gone.
	for _, commit := range []bool{false, true} {
		cons := subscribe(c, "acks")
		m := receive(cons, want[0])
		txn := newTxn()
		if err := cons.AckWithTxn(m, txn); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = txn.Commit(ctxT(t))
		} else {
			err = txn.Abort(ctxT(t))
		}
		if err != nil {
			t.Fatal(err)
		}
		cons.Close()
	}
	cons := subscribe(c, "acks")
	receive(cons, want[1])
	cons.Close()
	p.Close()
	c.Close()

	// After a restart the same: B never, A whole.
	stop()
	e, _ = startDir(t, dir)
	c = e.pulsarTxnClient(t)
	readAll(c, "all-after")
	cons = subscribe(c, "acks")
	receive(cons, want[1])
	cons.Close()
}

// consumeKafkaCommitted reads topic from the start with read_committed
// until it has n values and nothing more comes for half a second (or 20 s
// pass).
func consumeKafkaCommitted(t *testing.T, e *env, topic string, n int) []string {
	t.Helper()
	k := e.kgo(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	defer k.Close()
	deadline := time.Now().Add(20 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		wait := time.Second
		if len(got) >= n {
			wait = 500 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fs := k.PollFetches(ctx)
		cancel()
		if ctx.Err() != nil && len(got) >= n {
			break
		}
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("fetch: %v", err)
			}
		})
		for _, r := range fs.Records() {
			got = append(got, string(r.Value))
		}
	}
	return got
}
