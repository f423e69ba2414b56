package kafka

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kopernik-io/kopernik/broker"
)

// TestKafkaProducerAttachment: a franz-go producer is attached to the
// partition it produces to (listed by Partition.Producers, counted) while
// it produces, once per connection and producer id however many batches
// it sends, and detached after kafkaProducerIdle without producing while
// its connection stays open.
func TestKafkaProducerAttachment(t *testing.T) {
	old := kafkaProducerIdle
	kafkaProducerIdle = 500 * time.Millisecond
	t.Cleanup(func() { kafkaProducerIdle = old })
	s := startServer(t)
	ctx := testCtx(t)
	const topic = "kprod"
	if _, err := kadm.NewClient(newKgo(t, s.addr)).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	cl := newKgo(t, s.addr, kgo.DefaultProduceTopic(topic), kgo.ClientID("kprod-client"))
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	name, err := broker.ParseTopicName(topic+"-partition-0", "public", "default")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.broker.OpenPartition(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	kafkaProducers := func() []broker.ProducerInfo {
		var out []broker.ProducerInfo
		for _, pi := range p.Producers() {
			if pi.Protocol == "kafka" {
				out = append(out, pi)
			}
		}
		return out
	}
	ps := kafkaProducers()
	if len(ps) != 1 || !strings.HasPrefix(ps[0].Name, "kafka-kprod-client-") || ps[0].AccessMode != "Shared" || ps[0].Counters == nil {
		t.Fatalf("kafka producers %+v", ps)
	}
	if msgs, _, _, _ := ps[0].Counters.Stats(); msgs != 20 {
		t.Fatalf("counted %d messages, want 20", msgs)
	}
	checkFor(t, 5*time.Second, func() error {
		if ps := kafkaProducers(); len(ps) != 0 {
			return fmt.Errorf("still attached after the idle timeout: %+v", ps)
		}
		return nil
	})
	// Producing again attaches it again.
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("again")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if ps := kafkaProducers(); len(ps) != 1 {
		t.Fatalf("after producing again: %+v", ps)
	}
}
