package pulsar

import (
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// TestFlowPermits: the broker sends only what FLOW permits, counting
// messages (a batch of n costs n permits), and MESSAGE frames carry valid
// payloads with broker entry metadata only when the client asked for it.
func TestFlowPermits(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("flow")
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	produce(t, p, 8, "single")
	pb10 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 10, BatchingMaxPublishDelay: time.Second})
	produce(t, pb10, 10, "batch")

	rc := dialRaw(t, s)
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_SUBSCRIBE.Enum(), Subscribe: &pb.CommandSubscribe{
		Topic: proto.String(topic), Subscription: proto.String("s"), SubType: pb.CommandSubscribe_Exclusive.Enum(),
		ConsumerId: proto.Uint64(1), RequestId: proto.Uint64(1), InitialPosition: pb.CommandSubscribe_Earliest.Enum()}}, nil)
	rc.recvType(pb.BaseCommand_SUCCESS)
	flow := func(n uint32) {
		rc.send(&pb.BaseCommand{Type: pb.BaseCommand_FLOW.Enum(), Flow: &pb.CommandFlow{ConsumerId: proto.Uint64(1), MessagePermits: proto.Uint32(n)}}, nil)
	}
	expectMessages := func(n int) []*pb.MessageMetadata {
		t.Helper()
		var out []*pb.MessageMetadata
		for range n {
			cmd, payload := rc.recv()
			if cmd.GetType() != pb.BaseCommand_MESSAGE {
				t.Fatalf("got %v, want MESSAGE", cmd.GetType())
			}
			stored, md, err := parsePayload(payload)
			if err != nil || len(stored) != len(payload) {
				t.Fatalf("payload: %v (broker entry metadata sent to a client without the feature?)", err)
			}
			out = append(out, md)
		}
		return out
	}
	expectSilence := func() {
		t.Helper()
		rc.nc.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
		if body, err := readFrame(rc.r, 1<<20, nil); err == nil {
			cmd, _, _ := parseFrame(body)
			t.Fatalf("unexpected %v beyond permits", cmd.GetType())
		}
	}
	flow(5)
	expectMessages(5)
	expectSilence()
	flow(3)
	expectMessages(3)
	expectSilence()
	flow(1) // one permit releases the whole batch entry (10 messages)
	if md := expectMessages(1)[0]; md.GetNumMessagesInBatch() != 10 {
		t.Fatalf("batch of %d", md.GetNumMessagesInBatch())
	}
	produce(t, p, 1, "more")
	flow(9) // permits are now -9 + 9 = 0
	expectSilence()
	flow(1)
	expectMessages(1)
}

func TestKeepalive(t *testing.T) {
	s := startServerWith(t, func(c *Config) { c.Keepalive = 200 * time.Millisecond })
	rc := dialRaw(t, s)
	rc.recvType(pb.BaseCommand_PING)
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_PING.Enum(), Ping: &pb.CommandPing{}}, nil)
	rc.recvType(pb.BaseCommand_PONG)
	// Silence for two intervals closes the connection.
	rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := readFrame(rc.r, 1<<20, nil); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatal("silent connection not closed")
			}
			return
		}
	}
}
