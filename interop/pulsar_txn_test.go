package interop

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kopernik-io/kopernik/server"
)

// Pulsar transactions (NEW_TXN ... END_TXN, transactional SEND and ACK)
// against a Kafka read_committed consumer (franz-go) and a Pulsar consumer.

// startDir is start over data directory dir; stop closes the server (for a
// restart on the same directory).
func startDir(t testing.TB, dir string) (e *env, stop func()) {
	t.Helper()
	cfg, err := server.Load("", nil, map[string]string{
		"data-dir": dir, "http-addr": "127.0.0.1:0",
		"kafka-addr": "127.0.0.1:0", "pulsar-addr": "127.0.0.1:0", "fsync": "interval",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := server.Start(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := false
	stop = func() {
		if done {
			return
		}
		done = true
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		s.Close(cctx)
		cancel()
	}
	t.Cleanup(stop)
	return &env{kafka: s.Addr("kafka").String(), pulsar: "pulsar://" + s.Addr("pulsar").String()}, stop
}

func (e *env) pulsarTxnClient(t testing.TB) pulsar.Client {
	t.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: e.pulsar, OperationTimeout: 10 * time.Second,
		ConnectionTimeout: 5 * time.Second, Logger: plog.DefaultNopLogger(), EnableTransaction: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// txnReaders are a franz-go read_committed consumer and a Pulsar consumer
// of one partition, both from the start.
type txnReaders struct {
	t     *testing.T
	kafka *kgo.Client
	pc    pulsar.Consumer
}

func newTxnReaders(t *testing.T, e *env, c pulsar.Client, topic string) *txnReaders {
	t.Helper()
	k := e.kgo(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	pc, err := c.Subscribe(pulsar.ConsumerOptions{Topic: pulsarPartition(topic), SubscriptionName: "txn-readers",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Close)
	return &txnReaders{t: t, kafka: k, pc: pc}
}

func pulsarPartition(topic string) string {
	return "persistent://public/default/" + topic + "-partition-0"
}

// expect reads exactly want from both readers, in order.
func (r *txnReaders) expect(want ...string) {
	r.t.Helper()
	ctx := ctxT(r.t)
	var got []string
	for len(got) < len(want) {
		fs := r.kafka.PollFetches(ctx)
		if ctx.Err() != nil {
			r.t.Fatalf("kafka: got %q, want %q: %v", got, want, ctx.Err())
		}
		fs.EachError(func(_ string, _ int32, err error) { r.t.Fatalf("fetch: %v", err) })
		for _, rec := range fs.Records() {
			got = append(got, string(rec.Value))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		r.t.Fatalf("kafka read_committed: got %q, want %q", got, want)
	}
	got = got[:0]
	for range want {
		m, err := r.pc.Receive(ctx)
		if err != nil {
			r.t.Fatalf("pulsar: got %q, want %q: %v", got, want, err)
		}
		r.pc.Ack(m)
		got = append(got, string(m.Payload()))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		r.t.Fatalf("pulsar: got %q, want %q", got, want)
	}
}

// expectNothing checks that neither reader gets anything for a while.
func (r *txnReaders) expectNothing(wait time.Duration) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if fs := r.kafka.PollFetches(ctx); len(fs.Records()) > 0 {
		r.t.Fatalf("kafka read_committed got %q too early", fs.Records()[0].Value)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), wait)
	defer cancel2()
	if m, err := r.pc.Receive(ctx2); err == nil {
		r.t.Fatalf("pulsar got %q too early", m.Payload())
	}
}

func sendTxn(t *testing.T, p pulsar.Producer, txn pulsar.Transaction, values ...string) {
	t.Helper()
	for _, v := range values {
		msg := &pulsar.ProducerMessage{Payload: []byte(v), Properties: map[string]string{"v": v}}
		if txn != nil {
			msg.Transaction = txn
		}
		if _, err := p.Send(ctxT(t), msg); err != nil {
			t.Fatalf("send %s: %v", v, err)
		}
	}
}

func TestPulsarTxnCommitAbort(t *testing.T) {
	e := start(t)
	topic := topicName("pulsar-txn")
	e.createTopic(t, topic, 1)
	c := e.pulsarTxnClient(t)
	r := newTxnReaders(t, e, c, topic)
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: pulsarPartition(topic), SendTimeout: 0, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	txn, err := c.NewTransaction(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sendTxn(t, p, txn, "c-0", "c-1", "c-2")
	r.expectNothing(time.Second)
	if err := txn.Commit(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	r.expect("c-0", "c-1", "c-2")

	// Aborted: never delivered; a plain message behind it is.
	txn, err = c.NewTransaction(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sendTxn(t, p, txn, "a-0", "a-1")
	sendTxn(t, p, nil, "plain")
	r.expectNothing(time.Second) // held behind the open transaction
	if err := txn.Abort(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	r.expect("plain")
	if err := txn.Commit(ctxT(t)); err == nil {
		t.Fatal("commit after abort succeeded")
	}

	// An empty transaction commits.
	txn, err = c.NewTransaction(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	sendTxn(t, p, nil, "last")
	r.expect("last")
}

func TestPulsarTxnAck(t *testing.T) {
	e := start(t)
	topic := topicName("pulsar-txn-ack")
	e.createTopic(t, topic, 1)
	c := e.pulsarTxnClient(t)
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: pulsarPartition(topic), DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sendTxn(t, p, nil, "m-0", "m-1", "m-2")
	subscribe := func() pulsar.Consumer {
		cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: pulsarPartition(topic), SubscriptionName: "acks",
			SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
		if err != nil {
			t.Fatal(err)
		}
		return cons
	}
	ackIn := func(cons pulsar.Consumer, want string, commit bool) {
		t.Helper()
		m, err := cons.Receive(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Payload()) != want {
			t.Fatalf("got %q, want %q", m.Payload(), want)
		}
		txn, err := c.NewTransaction(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
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
	ackIn(subscribe(), "m-0", false) // aborted: m-0 is redelivered
	ackIn(subscribe(), "m-0", true)  // committed: m-0 is gone
	ackIn(subscribe(), "m-1", true)
	cons := subscribe()
	defer cons.Close()
	m, err := cons.Receive(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Payload()) != "m-2" {
		t.Fatalf("got %q, want m-2", m.Payload())
	}
}

// TestPulsarTxnRestartTimeout: a broker restart with an open transaction;
// it times out and aborts on the restarted broker, so its messages are
// never delivered and dispatch moves past them.
func TestPulsarTxnRestartTimeout(t *testing.T) {
	dir := t.TempDir()
	e, stop := startDir(t, dir)
	topic := topicName("pulsar-txn-restart")
	e.createTopic(t, topic, 1)
	c := e.pulsarTxnClient(t)
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: pulsarPartition(topic), DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	sendTxn(t, p, nil, "before")
	txn, err := c.NewTransaction(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sendTxn(t, p, txn, "open-0", "open-1")
	p.Close()
	c.Close()
	stop()

	e, _ = startDir(t, dir)
	c = e.pulsarClient(t)
	p, err = c.CreateProducer(pulsar.ProducerOptions{Topic: pulsarPartition(topic), DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sendTxn(t, p, nil, "after")
	r := newTxnReaders(t, e, c, topic)
	// The coordinator's loop (every 10 s) aborts it; until then only
	// "before" is stable.
	r.expect("before", "after")
}
