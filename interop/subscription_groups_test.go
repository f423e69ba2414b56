package interop

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/twmb/franz-go/pkg/kadm"
)

// TestPulsarSubscriptionIsKafkaGroup: a subscription made by a Pulsar
// consumer is a Kafka group for Kafka tools. After the consumer acked the
// first half of each partition, kadm's ListGroups lists the subscription
// (Empty, protocol type "consumer"), DescribeGroups describes it and
// FetchOffsets (OffsetFetch with null topics) answers the acked position
// on every partition; DeleteGroups deletes it. For a non-partitioned and a
// partitioned topic.
func TestPulsarSubscriptionIsKafkaGroup(t *testing.T) {
	for _, partitions := range []int{0, 2} {
		t.Run(fmt.Sprintf("partitions=%d", partitions), func(t *testing.T) {
			testPulsarSubscriptionIsKafkaGroup(t, partitions)
		})
	}
}

func testPulsarSubscriptionIsKafkaGroup(t *testing.T, partitions int) {
	e := start(t)
	ctx := ctxT(t)
	pc := e.pulsarClient(t)
	topic := topicName("subgroup")
	const total = 1000
	perPartition, parts := total, []string{topic}
	if partitions > 0 {
		e.createTopic(t, topic, int32(partitions))
		perPartition, parts = total/partitions, nil
		for i := range partitions {
			parts = append(parts, fmt.Sprintf("%s-partition-%d", topic, i))
		}
	}
	// One message per entry (no batching): an ack is one entry's.
	for pi, pt := range parts {
		p, err := pc.CreateProducer(pulsar.ProducerOptions{Topic: pt, DisableBatching: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := range perPartition {
			p.SendAsync(ctx, &pulsar.ProducerMessage{Payload: []byte(fmt.Sprintf("%d-%d", pi, i))}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				if err != nil {
					t.Error(err)
				}
			})
		}
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		p.Close()
	}

	const group = "pulsar-sub"
	cons, err := pc.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: group, Type: pulsar.Shared,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, ReceiverQueueSize: 2000})
	if err != nil {
		t.Fatal(err)
	}
	half := perPartition / 2
	for range total {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, idx, _ := strings.Cut(string(m.Payload()), "-")
		if i, _ := strconv.Atoi(idx); i < half {
			if err := cons.Ack(m); err != nil {
				t.Fatal(err)
			}
		}
	}

	adm := kadm.NewClient(e.kgo(t))
	// Acks reach the broker grouped (~100 ms): wait for the positions.
	deadline := time.Now().Add(20 * time.Second)
	for {
		offs, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			err = offs.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
		var bad []string
		for p := range max(partitions, 1) {
			if o, ok := offs.Lookup(topic, int32(p)); !ok || o.At != int64(half) {
				bad = append(bad, fmt.Sprintf("partition %d: %+v (found %v)", p, o.At, ok))
			}
		}
		if n := len(offs[topic]); n != max(partitions, 1) {
			bad = append(bad, fmt.Sprintf("%d partitions answered", n))
		}
		if len(bad) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("FetchOffsets(%s): %v", group, bad)
		}
		time.Sleep(50 * time.Millisecond)
	}

	lg, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := lg[group]; !ok || g.State != "Empty" || g.ProtocolType != "consumer" {
		t.Fatalf("ListGroups: %+v", lg)
	}
	dg, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if d := dg[group]; d.Err != nil || d.State != "Empty" || d.ProtocolType != "consumer" || len(d.Members) != 0 {
		t.Fatalf("DescribeGroups: %+v", d)
	}
	// Lag is the subscription's backlog.
	lag, err := adm.Lag(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if l := lag[group].Lag.Total(); l != int64(total-half*max(partitions, 1)) {
		t.Fatalf("lag %d", l)
	}

	// The live Pulsar consumer holds the subscription: not deleted.
	if r, _ := adm.DeleteGroup(ctx, group); r.Err == nil {
		t.Fatal("DeleteGroups deleted a subscription with a live Pulsar consumer")
	}
	cons.Close()
	if r, err := adm.DeleteGroup(ctx, group); err != nil || r.Err != nil {
		t.Fatalf("DeleteGroups: %v %v", err, r.Err)
	}
	if lg, err := adm.ListGroups(ctx); err != nil || lg[group].Group != "" {
		t.Fatalf("ListGroups after delete: %v %+v", err, lg)
	}
}
