package pulsar

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol"
)

func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := &Config{AdvertisedAddr: "nohost", MaxMessageSize: 1, Tenant: "a/b", Namespace: "", Keepalive: 0, ConnectionBufferBytes: 1}
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"advertised-addr", "max-message-size", "tenant", "namespace", "keepalive", "connection-buffer-bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q not reported in %v", want, err)
		}
	}
	reg, err := protocol.Lookup("pulsar")
	if err != nil || reg.DefaultAddr != "localhost:6650" {
		t.Fatalf("registration %+v %v", reg, err)
	}
	if _, ok := reg.NewConfig().(*Config); !ok {
		t.Fatal("NewConfig is not *Config")
	}
}

func TestNonDurableSubscription(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("nondurable")
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	produce(t, p, 3, "old")
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "nd",
		SubscriptionMode: pulsar.NonDurable, SubscriptionInitialPosition: pulsar.SubscriptionPositionLatest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	produce(t, p, 2, "new")
	if got := payloads(receive(t, cons, 2, true)); got[0] != "new-0" || got[1] != "new-1" {
		t.Fatalf("got %v", got)
	}
	part, err := s.broker.OpenPartition(ctxT(t), mustName(t, s, topic), false)
	if err != nil {
		t.Fatal(err)
	}
	if subs := part.Subscriptions(ctxT(t)); len(subs) != 0 {
		t.Fatalf("non-durable subscription left a cursor: %d", len(subs))
	}
}

func TestAutoCreationOff(t *testing.T) {
	s := startServer(t)
	off := false
	if err := s.broker.CreateNamespace(ctxT(t), "public/strict", broker.Policies{AutoTopicCreation: &off, AutoSubscriptionCreation: &off}); err != nil {
		t.Fatal(err)
	}
	c := s.client(t)
	if _, err := c.CreateProducer(pulsar.ProducerOptions{Topic: "public/strict/missing"}); err == nil || !strings.Contains(err.Error(), "TopicNotFound") {
		t.Fatalf("producer on a missing topic: %v", err)
	}
	name, _ := broker.ParseTopicName("public/strict/there", "", "")
	if err := s.broker.CreateTopic(ctxT(t), name, 0, broker.Policies{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "public/strict/there", SubscriptionName: "nope"}); err == nil || !strings.Contains(err.Error(), "SubscriptionNotFound") {
		t.Fatalf("subscribe without auto-creation: %v", err)
	}
}

// Kafka-format entries are not converted yet: a Pulsar consumer skips them
// and still gets the Pulsar entries around them.
func TestForeignFormatSkipped(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("foreign")
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	produce(t, p, 1, "a")
	part, err := s.broker.OpenPartition(ctxT(t), mustName(t, s, topic), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := part.Append(context.Background(), broker.AppendRequest{Format: broker.FormatKafka, MsgCount: 1, Data: []byte("kafka batch")}); err != nil {
		t.Fatal(err)
	}
	produce(t, p, 1, "b")
	if got := payloads(receive(t, cons, 2, true)); got[0] != "a-0" || got[1] != "b-0" {
		t.Fatalf("got %v", got)
	}
	expectNone(t, cons, 100*time.Millisecond)
}

// Deleting a topic under live clients closes their producers and consumers;
// they re-create the topic (auto-creation) and carry on.
func TestTopicDeletedUnderClients(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("deleted")
	// Earliest: the consumer's subscription is re-created with the topic,
	// maybe after the producer re-created it and sent b-*; from latest it
	// would start past them.
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	produce(t, p, 2, "a")
	receive(t, cons, 2, true)
	if err := s.broker.DeleteTopic(ctxT(t), mustName(t, s, topic), true); err != nil {
		t.Fatal(err)
	}
	produce(t, p, 4, "b")
	// The in-memory engine numbers the re-created topic's entries from
	// (0,0) again, and the Go client drops ids up to the last one it saw
	// before the reconnection (0,1): expect b-2 and b-3 at least. (With
	// ledger ids that are unique per store, b-0 and b-1 arrive too.)
	ctx := ctxT(t)
	for {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cons.Ack(m)
		if string(m.Payload()) == "b-3" {
			return
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServerWith(t, nil)
	h, err := New(protocol.Env{Broker: s.broker, Logger: testLogger(), Metrics: reg}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(protocol.Env{Broker: s.broker, Logger: testLogger(), Metrics: reg}, DefaultConfig()); err != nil {
		t.Fatalf("second handler on one registry: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go h.Serve(context.Background(), ln)
	t.Cleanup(func() { h.Close(context.Background()) }) // after the client's cleanup
	s.url = "pulsar://" + ln.Addr().String()
	c := s.client(t)
	topic := newTopic("metrics")
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	produce(t, p, 3, "m")
	receive(t, cons, 3, true)
	// Messages in and out are the broker's counters (the server exports
	// them, as the admin stats answer them): the handler feeds them.
	name, err := broker.ParseTopicName(topic, "public", "default")
	if err != nil {
		t.Fatal(err)
	}
	part, err := s.broker.OpenPartition(ctxT(t), name, false)
	if err != nil {
		t.Fatal(err)
	}
	if in, _ := part.InCounters(); in != 3 {
		t.Fatalf("messages in %v", in)
	}
	if out, _ := part.OutCounters(); out != 3 {
		t.Fatalf("messages out %v", out)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		found = found || f.GetName() == "kopernik_pulsar_commands_total"
	}
	if !found {
		t.Fatal("kopernik_pulsar_commands_total not registered")
	}
}

// Non-persistent topics are served (stored like persistent ones) and kept
// out of persistent topic listings (pulsar-client-go's TestNonPersistentTopic,
// TestNamespaceTopics).
func TestNonPersistentTopic(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := "non-persistent://public/default/" + newTopic("np")
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "my-sub"})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	produce(t, p, 3, "np")
	if got := payloads(receive(t, cons, 3, true)); len(got) != 3 {
		t.Fatalf("got %v", got)
	}
	mds, err := s.broker.ListTopics(ctxT(t), "public/default")
	if err != nil {
		t.Fatal(err)
	}
	for _, md := range mds {
		if md.Name.Domain != "persistent" {
			t.Fatalf("persistent listing has %s", md.Name)
		}
	}
}
