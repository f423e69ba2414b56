package interop

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/twmb/franz-go/pkg/kgo"
)

// expectNoMore fails if cons receives anything within a short while.
func expectNoMore(t *testing.T, cons pulsar.Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if m, err := cons.Receive(ctx); err == nil {
		t.Fatalf("unexpected message %q", m.Payload())
	}
}

// pollGroup consumes n records as member of group, committing exactly
// those (records fetched beyond them are not committed).
func pollGroup(t *testing.T, e *env, group, topic string, n int) []string {
	t.Helper()
	c := e.kgo(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := ctxT(t)
	var got []string
	for len(got) < n {
		fs := c.PollRecords(ctx, n-len(got))
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records: %v", len(got), n, ctx.Err())
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		for _, r := range fs.Records() {
			got = append(got, string(r.Value))
		}
		if err := c.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c.Close() // leaves the group
	return got
}

func values(from, to int) []string {
	var v []string
	for i := from; i < to; i++ {
		v = append(v, strconv.Itoa(i))
	}
	return v
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %q, want %q", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: %q, want %q", what, got, want)
		}
	}
}

// TestKafkaGroupToPulsarSubscription: a Kafka group's commit is where the
// Pulsar subscription of the same name continues, and the reverse, on
// Kafka-produced records; nothing lost, nothing twice.
func TestKafkaGroupToPulsarSubscription(t *testing.T) {
	e := start(t)
	topic := topicName("group-k")
	e.createTopic(t, topic, 1)
	kc := e.kgo(t, kgo.DefaultProduceTopic(topic))
	ctx := ctxT(t)
	for i := range 30 {
		if err := kc.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Kafka group G takes 0..9 and commits.
	equal(t, "kafka group", pollGroup(t, e, "G", topic, 10), values(0, 10))

	// Pulsar subscription G continues at 10 and acknowledges 10..19.
	pc := e.pulsarClient(t)
	cons, err := pc.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "G", Type: pulsar.Failover,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range receiveN(t, cons, 10) {
		got = append(got, string(m.Payload()))
	}
	equal(t, "pulsar subscription", got, values(10, 20))
	cons.Close() // flushes the acknowledgements

	// Kafka group G continues at 20.
	equal(t, "kafka group again", pollGroup(t, e, "G", topic, 10), values(20, 30))
}

// TestPulsarSubscriptionToKafkaGroup: the same, starting from Pulsar, on
// Pulsar-produced messages (batched: acknowledgements of whole batches).
func TestPulsarSubscriptionToKafkaGroup(t *testing.T) {
	e := start(t)
	topic := topicName("group-p")
	pc := e.pulsarClient(t)
	ctx := ctxT(t)
	p, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 10, BatchingMaxPublishDelay: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for batch := range 3 {
		for i := range 10 {
			p.SendAsync(ctx, &pulsar.ProducerMessage{Payload: []byte(strconv.Itoa(batch*10 + i))}, nil)
		}
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := pc.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "H",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, ReceiverQueueSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range receiveN(t, cons, 10) {
		got = append(got, string(m.Payload()))
	}
	equal(t, "pulsar subscription", got, values(0, 10))
	cons.Close()

	equal(t, "kafka group", pollGroup(t, e, "H", topic, 10), values(10, 20))

	cons, err = pc.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "H"})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got = got[:0]
	for _, m := range receiveN(t, cons, 10) {
		got = append(got, string(m.Payload()))
	}
	equal(t, "pulsar subscription again", got, values(20, 30))
	expectNoMore(t, cons)
}
