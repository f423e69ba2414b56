package pulsar

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/kopernik-io/kopernik/broker"
)

func subscribe(t testing.TB, c pulsar.Client, o pulsar.ConsumerOptions) pulsar.Consumer {
	t.Helper()
	if o.SubscriptionInitialPosition == 0 {
		o.SubscriptionInitialPosition = pulsar.SubscriptionPositionEarliest
	}
	cons, err := c.Subscribe(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cons.Close)
	return cons
}

func newProducer(t testing.TB, c pulsar.Client, o pulsar.ProducerOptions) pulsar.Producer {
	t.Helper()
	p, err := c.CreateProducer(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestExclusiveSubscription(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("excl")
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Exclusive})
	if _, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Exclusive}); err == nil || !strings.Contains(err.Error(), "ConsumerBusy") {
		t.Fatalf("second exclusive consumer: %v, want ConsumerBusy", err)
	}
	if _, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Shared}); err == nil {
		t.Fatal("shared consumer on an exclusive subscription was accepted")
	}
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	produce(t, p, 10, "x")
	got := payloads(receive(t, cons, 10, true))
	for i, g := range got {
		if g != fmt.Sprintf("x-%d", i) {
			t.Fatalf("out of order: %v", got)
		}
	}
}

func TestSharedSubscription(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("shared")
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Shared, ReceiverQueueSize: 5}
	c1 := subscribe(t, c, opts)
	c2 := subscribe(t, s.client(t), opts)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	produce(t, p, 100, "m")
	seen := map[string]int{}
	ctx := ctxT(t)
	counts := [2]int{}
	for len(seen) < 100 {
		for i, cons := range []pulsar.Consumer{c1, c2} {
			rctx, cancel := contextWithTimeout(ctx, 50*time.Millisecond)
			m, err := cons.Receive(rctx)
			cancel()
			if err != nil {
				continue
			}
			cons.Ack(m)
			seen[string(m.Payload())]++
			counts[i]++
		}
		if ctx.Err() != nil {
			t.Fatalf("got %d distinct of 100", len(seen))
		}
	}
	if counts[0] == 0 || counts[1] == 0 {
		t.Fatalf("one consumer got nothing: %v", counts)
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s delivered %d times", k, n)
		}
	}
}

type activeEvents chan bool

func (e activeEvents) BecameActive(pulsar.Consumer, string, int32)   { e <- true }
func (e activeEvents) BecameInactive(pulsar.Consumer, string, int32) { e <- false }

func waitActive(t *testing.T, e activeEvents, want bool) {
	t.Helper()
	for {
		select {
		case got := <-e:
			if got == want {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no ACTIVE_CONSUMER_CHANGE to active=%v", want)
		}
	}
}

func TestFailoverSubscription(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("failover")
	ea, eb := make(activeEvents, 10), make(activeEvents, 10)
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Failover, Name: "a", EventListener: ea}
	ca := subscribe(t, c, opts)
	waitActive(t, ea, true)
	opts.Name, opts.EventListener = "b", eb
	cb, err := s.client(t).Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	produce(t, p, 10, "f")
	// "a" sorts first: it is the active consumer and gets everything.
	receive(t, ca, 10, true)
	expectNone(t, cb, 200*time.Millisecond)
	waitActive(t, eb, false)
	ca.Close()
	waitActive(t, eb, true)
	produce(t, p, 5, "g")
	got := payloads(receive(t, cb, 5, true))
	if got[0] != "g-0" || got[4] != "g-4" {
		t.Fatalf("standby got %v", got)
	}
}

func TestKeySharedSubscription(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("keyshared")
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.KeyShared}
	c1 := subscribe(t, c, opts)
	c2 := subscribe(t, s.client(t), opts)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	for i := range 200 {
		p.SendAsync(ctxT(t), &pulsar.ProducerMessage{Key: fmt.Sprintf("key-%d", i%20), Payload: fmt.Appendf(nil, "%d", i)},
			func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				if err != nil {
					t.Error(err)
				}
			})
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	owner := map[string]int{}
	ctx := ctxT(t)
	for total := 0; total < 200; total++ {
		var cm pulsar.ConsumerMessage
		i := 0
		select {
		case cm = <-c1.Chan():
		case cm = <-c2.Chan():
			i = 1
		case <-ctx.Done():
			t.Fatalf("got %d of 200", total)
		}
		cm.Consumer.Ack(cm.Message)
		if o, ok := owner[cm.Key()]; ok && o != i {
			t.Fatalf("key %s went to both consumers", cm.Key())
		}
		owner[cm.Key()] = i
	}
	used := map[int]bool{}
	for _, o := range owner {
		used[o] = true
	}
	if len(used) != 2 {
		t.Fatalf("keys all went to one consumer: %v", owner)
	}
}

func TestBatchingAndCompression(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	for _, batching := range []bool{false, true} {
		for _, ct := range []pulsar.CompressionType{pulsar.NoCompression, pulsar.LZ4, pulsar.ZLib, pulsar.ZSTD, pulsar.SNAPPY} {
			t.Run(fmt.Sprintf("batching=%v/compression=%d", batching, ct), func(t *testing.T) {
				topic := newTopic("comp")
				cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
				p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: !batching, CompressionType: ct,
					BatchingMaxPublishDelay: 5 * time.Millisecond})
				body := strings.Repeat("compressible ", 50)
				produce(t, p, 30, body)
				got := receive(t, cons, 30, true)
				for i, m := range got {
					if want := fmt.Sprintf("%s-%d", body, i); string(m.Payload()) != want {
						t.Fatalf("message %d: got %q", i, m.Payload())
					}
					if m.Key() != fmt.Sprintf("k%d", i%7) {
						t.Fatalf("message %d key %q", i, m.Key())
					}
				}
			})
		}
	}
}

func TestPartitionedTopic(t *testing.T) {
	s := startServer(t)
	topic := newTopic("parted")
	name, _ := s.h.topicName(topic)
	if err := s.broker.CreateTopic(ctxT(t), name, 3, brokerPolicies()); err != nil {
		t.Fatal(err)
	}
	c := s.client(t)
	parts, err := c.TopicPartitions(topic)
	if err != nil || len(parts) != 3 {
		t.Fatalf("partitions %v %v", parts, err)
	}
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	produce(t, p, 60, "p")
	got := payloads(receive(t, cons, 60, true))
	sort.Strings(got)
	for i := 1; i < len(got); i++ {
		if got[i] == got[i-1] {
			t.Fatalf("duplicate %s", got[i])
		}
	}
	perPart := map[int32]int{}
	_ = perPart
}

func TestRegexSubscription(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	prefix := newTopic("rx")
	for i := range 3 {
		p := newProducer(t, c, pulsar.ProducerOptions{Topic: fmt.Sprintf("%s-%d", prefix, i)})
		produce(t, p, 5, fmt.Sprintf("t%d", i))
	}
	newProducer(t, c, pulsar.ProducerOptions{Topic: "other-" + prefix})
	// A partitioned topic matches through its partitions.
	if err := s.broker.CreateTopic(ctxT(t), mustName(t, s, prefix+"-parted"), 2, brokerPolicies()); err != nil {
		t.Fatal(err)
	}
	produce(t, newProducer(t, c, pulsar.ProducerOptions{Topic: prefix + "-parted"}), 4, "z")
	cons := subscribe(t, c, pulsar.ConsumerOptions{TopicsPattern: "persistent://public/default/" + prefix + "-.*", SubscriptionName: "s"})
	got := payloads(receive(t, cons, 19, true))
	sort.Strings(got)
	if got[0] != "t0-0" || got[14] != "t2-4" || got[18] != "z-3" {
		t.Fatalf("got %v", got)
	}
}

// pulsar-client-go's TestConsumerKeyShared: three keys, two consumers; with
// Pulsar's Murmur3 auto-split both consumers get some of them.
func TestKeySharedThreeKeysSpread(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("keyshared3")
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub-1", Type: pulsar.KeyShared}
	c1 := subscribe(t, c, opts)
	c2 := subscribe(t, c, opts)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	for i := range 30 {
		if _, err := p.Send(ctxT(t), &pulsar.ProducerMessage{Key: fmt.Sprintf("key-shared-%d", i%3), Payload: fmt.Appendf(nil, "v%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	got := [2]int{}
	ctx := ctxT(t)
	for got[0]+got[1] < 30 {
		select {
		case cm := <-c1.Chan():
			got[0]++
			cm.Consumer.Ack(cm.Message)
		case cm := <-c2.Chan():
			got[1]++
			cm.Consumer.Ack(cm.Message)
		case <-ctx.Done():
			t.Fatalf("got %v of 30", got)
		}
	}
	if got[0] == 0 || got[1] == 0 {
		t.Fatalf("one consumer got everything: %v", got)
	}
}

// Admin topic stats list Pulsar producers and consumers with their client
// version and metadata (pulsar-client-go's TestConsumerMetadata,
// TestTokenAuthWithClientVersion).
func TestStatsListClients(t *testing.T) {
	s := startServer(t)
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: s.url, Description: "test-client", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	topic := newTopic("stats")
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Properties: map[string]string{"pk": "pv"}})
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "my-sub", Properties: map[string]string{"key1": "value1"}})
	part, err := s.broker.OpenPartition(ctxT(t), mustName(t, s, topic), false)
	if err != nil {
		t.Fatal(err)
	}
	ps := part.Producers()
	if len(ps) != 1 || !strings.HasPrefix(ps[0].ClientVersion, "Pulsar-Go-version") || !strings.HasSuffix(ps[0].ClientVersion, "-test-client") || ps[0].Metadata["pk"] != "pv" {
		t.Fatalf("producers %+v", ps)
	}
	sub, err := part.Subscription(ctxT(t), "my-sub", false, broker.InitialLatest)
	if err != nil {
		t.Fatal(err)
	}
	cs := sub.Consumers()
	if len(cs) != 1 || cs[0].Metadata["key1"] != "value1" || cs[0].Type != "Exclusive" {
		t.Fatalf("consumers %+v", cs)
	}
	p.Close()
	cons.Close()
	if ps := part.Producers(); len(ps) != 0 {
		t.Fatalf("producers after close %+v", ps)
	}
	if cs := sub.Consumers(); len(cs) != 0 {
		t.Fatalf("consumers after close %+v", cs)
	}
}

// A pattern over a namespace that does not exist finds no topics instead of
// failing (pulsar-client-go's TestNamespaceTopicsNamespaceDoesNotExit).
func TestPatternMissingNamespace(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	start := time.Now()
	cons, err := c.Subscribe(pulsar.ConsumerOptions{TopicsPattern: "persistent://public/no-such-ns/.*", SubscriptionName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("subscribe took %v", d)
	}
}
