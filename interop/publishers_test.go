package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/twmb/franz-go/pkg/kgo"
)

type publisherJSON struct {
	ProducerName string            `json:"producerName"`
	AccessMode   string            `json:"accessMode"`
	MsgRateIn    float64           `json:"msgRateIn"`
	Address      string            `json:"address"`
	Metadata     map[string]string `json:"metadata"`
}

func (e *env) publishers(t *testing.T, topic string) []publisherJSON {
	t.Helper()
	resp, err := http.Get(e.http + "/admin/v2/persistent/public/default/" + topic + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stats of %s: %s", topic, resp.Status)
	}
	var st struct {
		Publishers []publisherJSON `json:"publishers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Publishers
}

// TestKafkaProducersArePublishers: a franz-go producer is one of the
// partition's producers for the Pulsar admin API, beside a Pulsar
// producer: listed with protocol-neutral fields (Shared access, its
// address, its producer id) and its message rate, and gone once its
// client closes. A Pulsar producer asking for Exclusive access is refused
// while the Kafka producer is attached, as with any other producer.
func TestKafkaProducersArePublishers(t *testing.T) {
	e := start(t)
	const topic = "kpub"
	e.createTopic(t, topic, 1)
	part := topic + "-partition-0"
	pc := e.pulsarClient(t)
	pp, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "pulsar-side"})
	if err != nil {
		t.Fatal(err)
	}
	defer pp.Close()

	kc, err := kgo.NewClient(kgo.SeedBrokers(e.kafka), kgo.DefaultProduceTopic(topic), kgo.ClientID("kpub-client"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; ctx.Err() == nil; i++ {
			if err := kc.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil && ctx.Err() == nil {
				t.Error(err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	// Rates are computed over windows of at least 5 s.
	var kafkaPub publisherJSON
	deadline := time.Now().Add(20 * time.Second)
	for {
		kafkaPub = publisherJSON{}
		names := []string{}
		for _, p := range e.publishers(t, part) {
			names = append(names, p.ProducerName)
			if strings.HasPrefix(p.ProducerName, "kafka-kpub-client-") {
				kafkaPub = p
			}
		}
		if kafkaPub.MsgRateIn > 0 && len(names) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publishers %v, the Kafka one %+v", names, kafkaPub)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if kafkaPub.AccessMode != "Shared" || kafkaPub.Address == "" || kafkaPub.Metadata["kafka.producer.id"] == "" {
		t.Fatalf("kafka publisher %+v", kafkaPub)
	}
	if _, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "pulsar-exclusive",
		ProducerAccessMode: pulsar.ProducerAccessModeExclusive, SendTimeout: 5 * time.Second}); err == nil {
		t.Fatal("an Exclusive Pulsar producer was accepted beside a Kafka producer")
	}

	cancel()
	<-produced
	kc.Close()
	deadline = time.Now().Add(10 * time.Second)
	for {
		var names []string
		for _, p := range e.publishers(t, part) {
			names = append(names, p.ProducerName)
		}
		if len(names) == 1 && names[0] == "pulsar-side" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the Kafka client closed: publishers %v", names)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
