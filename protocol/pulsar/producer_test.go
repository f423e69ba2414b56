package pulsar

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/kopernik-io/kopernik/broker"
)

func TestProducerNames(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("pname")
	p1 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	p2 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	if p1.Name() == "" || p1.Name() == p2.Name() {
		t.Fatalf("generated names %q %q", p1.Name(), p2.Name())
	}
	named := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: "fixed"})
	if _, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "fixed"}); err == nil || !strings.Contains(err.Error(), "ProducerBusy") {
		t.Fatalf("duplicate name: %v, want ProducerBusy", err)
	}
	produce(t, named, 5, "s") // one batch: sequence ids 0..4, recorded as 0 (no highest_sequence_id)
	named.Close()
	again := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: "fixed"})
	// The client continues after PRODUCER_SUCCESS.last_sequence_id (0), as with Pulsar.
	produce(t, again, 1, "t")
	part, err := s.broker.OpenPartition(ctxT(t), mustName(t, s, topic), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := part.LastSequence("fixed"); got != 1 {
		t.Fatalf("re-created producer sent sequence %d, want 1", got)
	}
}

func TestExclusiveProducerFencing(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("fence")
	p1 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, ProducerAccessMode: pulsar.ProducerAccessModeExclusive})
	if _, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, ProducerAccessMode: pulsar.ProducerAccessModeExclusive}); err == nil || !strings.Contains(err.Error(), "ProducerFenced") {
		t.Fatalf("second exclusive: %v", err)
	}
	if _, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic}); err == nil || !strings.Contains(err.Error(), "ProducerBusy") {
		t.Fatalf("shared beside exclusive: %v", err)
	}

	// WaitForExclusive waits past the client's request timeout until p1 goes.
	short, err := pulsar.NewClient(pulsar.ClientOptions{URL: s.url, OperationTimeout: 200 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	var p2 pulsar.Producer
	var p2err error
	go func() {
		defer wg.Done()
		p2, p2err = short.CreateProducer(pulsar.ProducerOptions{Topic: topic, ProducerAccessMode: pulsar.ProducerAccessModeWaitForExclusive})
	}()
	time.Sleep(300 * time.Millisecond)
	produce(t, p1, 1, "p1")
	p1.Close()
	wg.Wait()
	if p2err != nil {
		t.Fatal(p2err)
	}
	produce(t, p2, 1, "p2")

	// The Go client has no ExclusiveWithFencing mode: see TestFencingRaw.
	produce(t, p2, 1, "p3")
	p2.Close()

	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	got := payloads(receive(t, cons, 3, true))
	if strings.Join(got, ",") != "p1-0,p2-0,p3-0" {
		t.Fatalf("got %v", got)
	}
	expectNone(t, cons, 100*time.Millisecond)
}

func TestChunking(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("chunks")
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true, EnableChunking: true, ChunkMaxMessageSize: 10 << 10})
	big := bytes.Repeat([]byte("0123456789abcdef"), 5000) // 80 KB: 8 chunks
	if _, err := p.Send(ctxT(t), &pulsar.ProducerMessage{Payload: big}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Send(ctxT(t), &pulsar.ProducerMessage{Payload: []byte("small")}); err != nil {
		t.Fatal(err)
	}
	got := receive(t, cons, 2, true)
	if !bytes.Equal(got[0].Payload(), big) || string(got[1].Payload()) != "small" {
		t.Fatalf("chunked message mangled: %d bytes, then %q", len(got[0].Payload()), got[1].Payload())
	}
}

type jsonRec struct {
	A int    `json:"a"`
	B string `json:"b"`
}

func TestSchemas(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("schema")
	def1 := `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}`
	def2 := `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"},{"name":"c","type":["null","string"],"default":null}]}`
	p1 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewJSONSchema(def1, nil)})
	if _, err := p1.Send(ctxT(t), &pulsar.ProducerMessage{Value: jsonRec{A: 1, B: "x"}}); err != nil {
		t.Fatal(err)
	}
	p2 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewJSONSchema(def1, nil)})
	p3 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewJSONSchema(def2, nil)})
	produce(t, p2, 0, "")
	_ = p3

	md, all, err := s.h.schemas(ctxT(t), mustName(t, s, topic))
	if err != nil || len(all) != 2 {
		t.Fatalf("stored schemas %d (%v) on %s", len(all), err, md.Name)
	}
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Schema: pulsar.NewJSONSchema(def1, nil)})
	m := receive(t, cons, 1, true)[0]
	var r jsonRec
	if err := m.GetSchemaValue(&r); err != nil || r != (jsonRec{1, "x"}) {
		t.Fatalf("decoded %+v, %v", r, err)
	}
}

// A backlog quota with producer_request_hold holds SENDs while the backlog
// is over the limit: the client's send timeout fails them (pulsar-client-go's
// TestSendTimeout, TestSendContextExpired).
func TestBacklogQuotaHoldsProducer(t *testing.T) {
	s := startServerWith(t, func(c *Config) { c.BacklogQuotaCheckInterval = 0 }) // check on every SEND
	ctx := ctxT(t)
	pol, err := s.broker.NamespacePolicies(ctx, "public/default")
	if err != nil {
		t.Fatal(err)
	}
	pol.BacklogQuota = &broker.BacklogQuota{LimitBytes: 4096, Policy: "producer_request_hold"}
	if err := s.broker.SetNamespacePolicies(ctx, "public/default", pol); err != nil {
		t.Fatal(err)
	}
	c := s.client(t)
	topic := newTopic("quota")
	subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "idle"})
	noRetry := uint(0)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, SendTimeout: time.Second, MaxReconnectToBroker: &noRetry, DisableBatching: true})
	for range 3 { // 3 KiB and some metadata: under the limit
		if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: make([]byte, 1024)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; ; i++ {
		if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: make([]byte, 1024)}); err != nil {
			break
		}
		if i == 2 {
			t.Fatal("sends over the backlog quota succeeded")
		}
	}
}

// Chunks fill max_message_size with payload; their metadata must not count
// against the limit (pulsar-client-go's TestLargeMessage).
func TestChunkOfMaxMessageSize(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("bigchunk")
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true, EnableChunking: true})
	size := int(s.broker.Defaults().MaxMessageBytes) + 1
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i)
	}
	if _, err := p.Send(ctxT(t), &pulsar.ProducerMessage{Payload: payload}); err != nil {
		t.Fatal(err)
	}
	m := receive(t, cons, 1, true)[0]
	if !bytes.Equal(m.Payload(), payload) {
		t.Fatalf("got %d bytes, want %d", len(m.Payload()), size)
	}
}

// producer_exception: over the quota, producers are closed and new ones
// refused with ProducerBlockedQuotaExceededException (pulsar-client-go's
// TestProducerReconnectWhenBacklogQuotaExceed).
func TestBacklogQuotaException(t *testing.T) {
	s := startServerWith(t, func(c *Config) { c.BacklogQuotaCheckInterval = 0 }) // check on every SEND
	ctx := ctxT(t)
	pol, err := s.broker.NamespacePolicies(ctx, "public/default")
	if err != nil {
		t.Fatal(err)
	}
	pol.BacklogQuota = &broker.BacklogQuota{LimitBytes: 2048, Policy: "producer_exception"}
	if err := s.broker.SetNamespacePolicies(ctx, "public/default", pol); err != nil {
		t.Fatal(err)
	}
	c := s.client(t)
	topic := newTopic("quotaexc")
	subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "idle"})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: make([]byte, 4096)}); err != nil {
		t.Fatal(err)
	}
	noRetry := uint(0)
	_, err = c.CreateProducer(pulsar.ProducerOptions{Topic: topic, MaxReconnectToBroker: &noRetry, SendTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "ProducerBlockedQuotaExceededException") {
		t.Fatalf("new producer over quota: %v", err)
	}
}

// A terminated topic closes its producers and refuses new ones with
// TopicTerminatedError (pulsar-client-go's TestTopicTermination).
func TestTopicTerminated(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	ctx := ctxT(t)
	topic := newTopic("term")
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, SendTimeout: 2 * time.Second})
	if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	md, err := s.broker.GetTopic(ctx, mustName(t, s, topic))
	if err != nil {
		t.Fatal(err)
	}
	md.Policies.Terminated = true
	if err := s.broker.SetTopicPolicies(ctx, md.Name, md.Policies); err != nil {
		t.Fatal(err)
	}
	_, err = p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("y")})
	if !errors.Is(err, pulsar.ErrTopicTerminated) && !errors.Is(err, pulsar.ErrProducerClosed) {
		t.Fatalf("send to a terminated topic: %v", err)
	}
	if _, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic}); err == nil || !strings.Contains(err.Error(), "TopicTerminated") {
		t.Fatalf("new producer on a terminated topic: %v", err)
	}
}

// The quota verdict stands for BacklogQuotaCheckInterval: a producer may
// overshoot until the next check, as in Pulsar (pulsar-client-go's
// TestSendTimeout sends 10 KiB into a 10 KiB quota, waits for the check,
// and only then expects a timeout).
func TestBacklogQuotaCheckInterval(t *testing.T) {
	s := startServerWith(t, func(c *Config) { c.BacklogQuotaCheckInterval = 500 * time.Millisecond })
	ctx := ctxT(t)
	pol, err := s.broker.NamespacePolicies(ctx, "public/default")
	if err != nil {
		t.Fatal(err)
	}
	pol.BacklogQuota = &broker.BacklogQuota{LimitBytes: 2048, Policy: "producer_request_hold"}
	if err := s.broker.SetNamespacePolicies(ctx, "public/default", pol); err != nil {
		t.Fatal(err)
	}
	c := s.client(t)
	topic := newTopic("quotaint")
	subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "idle"})
	noRetry := uint(0)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, SendTimeout: time.Second, MaxReconnectToBroker: &noRetry, DisableBatching: true})
	for i := range 4 { // 4 KiB: over the quota, but within one check interval
		if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: make([]byte, 1024)}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	time.Sleep(600 * time.Millisecond)
	if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: make([]byte, 1024)}); err == nil {
		t.Fatal("send after the check succeeded over the quota")
	}
}
