package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKafkaGroupIsPulsarSubscription: a Kafka consumer group's commit is
// where a Pulsar consumer on the subscription of the same name starts, and
// the Pulsar consumer's acknowledgements are the group's commits.
func TestKafkaGroupIsPulsarSubscription(t *testing.T) {
	cfg, err := Load("", nil, map[string]string{
		"data-dir": t.TempDir(), "http-addr": "127.0.0.1:0", "protocols": "kafka,pulsar",
		"kafka-addr": "127.0.0.1:0", "pulsar-addr": "127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	pcl, err := pulsar.NewClient(pulsar.ClientOptions{URL: "pulsar://" + s.Addr("pulsar").String(), Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	// Pulsar-format data (reading across formats is not this test's
	// business): a non-partitioned topic, one Kafka partition.
	const topic = "persistent://public/default/shared"
	pp, err := pcl.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := pp.Send(ctx, &pulsar.ProducerMessage{Payload: fmt.Appendf(nil, "v%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	pp.Close()

	kcl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka").String()))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "shared", Partition: 0, At: 4, LeaderEpoch: -1})
	if r, err := adm.CommitOffsets(ctx, "both", offs); err != nil || r.Error() != nil {
		t.Fatalf("commit: %v %v", err, r.Error())
	}

	pc, err := pcl.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "both", Type: pulsar.Failover})
	if err != nil {
		t.Fatal(err)
	}
	for i := 4; i < 10; i++ {
		m, err := pc.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("v%d", i); string(m.Payload()) != want {
			t.Fatalf("pulsar consumer got %q, want %q (it must start at the Kafka commit)", m.Payload(), want)
		}
		if err := pc.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	// The acknowledgements are the group's commit.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := adm.FetchOffsetsForTopics(ctx, "both", "shared")
		if err != nil {
			t.Fatal(err)
		}
		o, _ := r.Lookup("shared", 0)
		if o.At == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed offset %d after the Pulsar acks, want 10", o.At)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A live Pulsar consumer keeps the group from being deleted.
	if r, _ := adm.DeleteGroup(ctx, "both"); !errors.Is(r.Err, kerr.NonEmptyGroup) {
		t.Fatalf("delete with a Pulsar consumer attached: %v", r.Err)
	}
	pc.Close()
	if r, err := adm.DeleteGroup(ctx, "both"); err != nil || r.Err != nil {
		t.Fatalf("delete: %v %v", err, r.Err)
	}
}
