package interop

import (
	"fmt"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kopernik-io/kopernik/router"
)

// TestPulsarRouterPlacesKeysLikeKafka: a Kafka producer (default murmur2
// partitioner) and a Pulsar producer using router.PulsarRouter put every
// key on the same partition of a shared partitioned topic.
func TestPulsarRouterPlacesKeysLikeKafka(t *testing.T) {
	e := start(t)
	topic := topicName("routing")
	e.createTopic(t, topic, 5)
	const keys = 40
	kp := e.kgo(t, kgo.DefaultProduceTopic(topic))
	ctx := ctxT(t)
	for i := range keys {
		if err := kp.ProduceSync(ctx, &kgo.Record{Key: fmt.Appendf(nil, "key-%d", i), Value: []byte("kafka")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	pp, err := e.pulsarClient(t).CreateProducer(pulsar.ProducerOptions{Topic: topic, MessageRouter: router.PulsarRouter})
	if err != nil {
		t.Fatal(err)
	}
	defer pp.Close()
	for i := range keys {
		if _, err := pp.Send(ctx, &pulsar.ProducerMessage{Key: fmt.Sprintf("key-%d", i), Payload: []byte("pulsar")}); err != nil {
			t.Fatal(err)
		}
	}
	where := map[string]map[string]int32{} // key -> producer -> partition
	for _, r := range consumeKafka(t, e, topic, 2*keys) {
		if where[string(r.Key)] == nil {
			where[string(r.Key)] = map[string]int32{}
		}
		where[string(r.Key)][string(r.Value)] = r.Partition
	}
	used := map[int32]bool{}
	for k, m := range where {
		if m["kafka"] != m["pulsar"] {
			t.Errorf("key %s: Kafka partition %d, Pulsar partition %d", k, m["kafka"], m["pulsar"])
		}
		if int(m["kafka"]) != router.KafkaPartition([]byte(k), 5) {
			t.Errorf("key %s: Kafka partition %d, KafkaPartition %d", k, m["kafka"], router.KafkaPartition([]byte(k), 5))
		}
		used[m["kafka"]] = true
	}
	if len(where) != keys || len(used) < 3 {
		t.Fatalf("%d keys over %d partitions", len(where), len(used))
	}
}
