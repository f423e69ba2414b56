package interop

import (
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRepeatedHeadersThroughPulsarApp: a Kafka record with headers h=one,
// x=y, h=two is read by a pulsar-client-go consumer, whose Properties() map
// holds h=two with the earlier value under a derived key, and republished
// by it from that map; a Kafka consumer of the republished message gets
// the three headers back, in order.
func TestRepeatedHeadersThroughPulsarApp(t *testing.T) {
	e := start(t)
	ctx := ctxT(t)
	in, out := topicName("hdr-in"), topicName("hdr-out")
	e.createTopic(t, in, 1)
	e.createTopic(t, out, 1)
	sent := []kgo.RecordHeader{{Key: "h", Value: []byte("one")}, {Key: "x", Value: []byte("y")}, {Key: "h", Value: []byte("two")},
		{Key: "bin", Value: []byte{0xff, 0x00}}, {Key: "bin", Value: nil}}
	p := e.kgo(t, kgo.DefaultProduceTopic(in))
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("v"), Headers: sent}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	pc := e.pulsarClient(t)
	m := receivePulsar(t, pc, in, "app", 1)[0]
	props := m.Properties()
	if props["h"] != "two" || props["__kafka_rep.0.h"] != "one" || props["x"] != "y" {
		t.Fatalf("Pulsar application's map: %v", props)
	}
	prod, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: out})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := prod.Send(ctx, &pulsar.ProducerMessage{Payload: m.Payload(), Properties: props}); err != nil {
		t.Fatal(err)
	}

	got := consumeKafka(t, e, out, 1)[0].Headers
	if len(got) != len(sent) {
		t.Fatalf("headers %q, want %q", got, sent)
	}
	for i := range sent {
		if got[i].Key != sent[i].Key || string(got[i].Value) != string(sent[i].Value) || (got[i].Value == nil) != (sent[i].Value == nil) {
			t.Fatalf("headers %q, want %q", got, sent)
		}
	}
}
