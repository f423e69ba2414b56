package pulsar

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// rawConn speaks the protocol directly, for what the Go client cannot do.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func dialRaw(t testing.TB, s *server) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	rc := &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_CONNECT.Enum(), Connect: &pb.CommandConnect{
		ClientVersion: proto.String("raw"), ProtocolVersion: proto.Int32(20)}}, nil)
	if cmd, _ := rc.recv(); cmd.GetType() != pb.BaseCommand_CONNECTED {
		t.Fatalf("got %v, want CONNECTED", cmd.GetType())
	}
	return rc
}

func (rc *rawConn) send(cmd *pb.BaseCommand, stored []byte) {
	rc.t.Helper()
	f, err := appendFrame(nil, cmd, nil, stored)
	if err != nil {
		rc.t.Fatal(err)
	}
	if _, err := rc.nc.Write(f); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawConn) recv() (*pb.BaseCommand, []byte) {
	rc.t.Helper()
	rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	body, err := readFrame(rc.r, 10<<20, nil)
	if err != nil {
		rc.t.Fatal(err)
	}
	cmd, payload, err := parseFrame(body)
	if err != nil {
		rc.t.Fatal(err)
	}
	return cmd, payload
}

// recvType skips PINGs and other noise until a command of type t arrives.
func (rc *rawConn) recvType(t pb.BaseCommand_Type) *pb.BaseCommand {
	rc.t.Helper()
	for {
		cmd, _ := rc.recv()
		if cmd.GetType() == t {
			return cmd
		}
	}
}

func TestGarbageFrameClosesOnlyThatConnection(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	topic := newTopic("garbage")
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	produce(t, p, 3, "before")

	cases := map[string][]byte{
		"random":          []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"huge length":     {0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 1},
		"cmd too long":    {0, 0, 0, 8, 0, 0, 0, 100, 1, 2, 3, 4},
		"not protobuf":    {0, 0, 0, 8, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff},
		"truncated frame": {0, 0, 0, 50, 0, 0, 0, 2, 8},
	}
	for name, junk := range cases {
		nc, err := net.Dial("tcp", s.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(junk)
		if name == "truncated frame" {
			nc.(*net.TCPConn).CloseWrite()
		}
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s: connection still answers", name)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("%s: connection not closed", name)
		}
		nc.Close()
	}
	// A connected raw client sending a SEND with a bad checksum gets a
	// SEND_ERROR, not a crash.
	rc := dialRaw(t, s)
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{
		Topic: proto.String(topic), ProducerId: proto.Uint64(1), RequestId: proto.Uint64(1)}}, nil)
	rc.recvType(pb.BaseCommand_PRODUCER_SUCCESS)
	stored := encodeStored(&pb.MessageMetadata{ProducerName: proto.String("x"), SequenceId: proto.Uint64(0), PublishTime: proto.Uint64(1)}, []byte("hi"))
	binary.BigEndian.PutUint32(stored[2:], 12345)
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_SEND.Enum(), Send: &pb.CommandSend{ProducerId: proto.Uint64(1), SequenceId: proto.Uint64(0)}}, stored)
	if e := rc.recvType(pb.BaseCommand_SEND_ERROR); e.GetSendError().GetError() != pb.ServerError_ChecksumError {
		t.Fatalf("bad checksum: %v", e)
	}

	produce(t, p, 3, "after")
	got := payloads(receive(t, cons, 6, true))
	if got[0] != "before-0" || got[5] != "after-2" {
		t.Fatalf("got %v", got)
	}
}

func TestFencingRaw(t *testing.T) {
	s := startServer(t)
	topic := newTopic("fencing")
	a, b := dialRaw(t, s), dialRaw(t, s)
	a.send(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{
		Topic: proto.String(topic), ProducerId: proto.Uint64(7), RequestId: proto.Uint64(1),
		ProducerAccessMode: pb.ProducerAccessMode_Exclusive.Enum()}}, nil)
	ok := a.recvType(pb.BaseCommand_PRODUCER_SUCCESS).GetProducerSuccess()
	b.send(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{
		Topic: proto.String(topic), ProducerId: proto.Uint64(1), RequestId: proto.Uint64(2),
		ProducerAccessMode: pb.ProducerAccessMode_ExclusiveWithFencing.Enum()}}, nil)
	ok2 := b.recvType(pb.BaseCommand_PRODUCER_SUCCESS).GetProducerSuccess()
	if ok2.GetTopicEpoch() <= ok.GetTopicEpoch() {
		t.Fatalf("topic epoch %d after %d", ok2.GetTopicEpoch(), ok.GetTopicEpoch())
	}
	if cp := a.recvType(pb.BaseCommand_CLOSE_PRODUCER); cp.GetCloseProducer().GetProducerId() != 7 {
		t.Fatalf("fenced producer: %v", cp)
	}
	// The fenced producer reconnecting with its old epoch is refused.
	a.send(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{
		Topic: proto.String(topic), ProducerId: proto.Uint64(8), RequestId: proto.Uint64(3),
		ProducerAccessMode: pb.ProducerAccessMode_Exclusive.Enum(), TopicEpoch: proto.Uint64(ok.GetTopicEpoch())}}, nil)
	if e := a.recvType(pb.BaseCommand_ERROR); e.GetError().GetError() != pb.ServerError_ProducerFenced {
		t.Fatalf("stale epoch: %v", e)
	}
}

// TestRestartMidStream stops the handler and opens a new broker and handler
// on the same metadata store and ledger factory (the in-memory engine; the
// durable engine is not in this tree yet) at the same address, while a
// producer and a consumer keep going. No acknowledged message may be lost.
func TestRestartMidStream(t *testing.T) {
	s := startDurableServer(t)
	c := s.client(t)
	topic := newTopic("restart")
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: "restarter", SendTimeout: 20 * time.Second})
	const n = 200
	acked := make(chan string, n)
	go func() {
		for i := range n {
			payload := []byte{byte(i >> 8), byte(i)}
			p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: payload},
				func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
					if err == nil {
						acked <- string(payload)
					} else {
						acked <- ""
					}
				})
			if i == n/2 {
				p.Flush()
				s.restart()
			}
			time.Sleep(time.Millisecond)
		}
		p.Flush()
	}()
	received := map[string]int{}
	ctx := ctxT(t)
	var sent []string
	for len(sent) < n {
		select {
		case v := <-acked:
			if v != "" {
				sent = append(sent, v)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d sends acknowledged", len(sent), n)
		}
		if len(sent) == n {
			break
		}
	}
	for len(received) < len(sent) {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatalf("received %d distinct of %d: %v", len(received), len(sent), err)
		}
		cons.Ack(m)
		received[string(m.Payload())]++
	}
	for _, v := range sent {
		if received[v] == 0 {
			t.Fatalf("acknowledged message %x lost", v)
		}
	}
	keys := make([]string, 0, len(received))
	for k := range received {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) != n {
		t.Fatalf("received %d distinct messages, want %d", len(keys), n)
	}
}

// An unserved request (here END_TXN_ON_PARTITION, broker-to-broker in
// Pulsar, field 58 of BaseCommand, which our .proto does not declare) gets
// an ERROR with its request id instead of silence.
func TestUnservedRequestGetsError(t *testing.T) {
	s := startServer(t)
	rc := dialRaw(t, s)
	body := protowire.AppendTag(nil, 1, protowire.VarintType)
	body = protowire.AppendVarint(body, 77)
	cmd := &pb.BaseCommand{Type: pb.BaseCommand_END_TXN_ON_PARTITION.Enum()}
	raw := protowire.AppendTag(nil, 58, protowire.BytesType)
	raw = protowire.AppendBytes(raw, body)
	cmd.ProtoReflect().SetUnknown(raw)
	rc.send(cmd, nil)
	e := rc.recvType(pb.BaseCommand_ERROR)
	if e.GetError().GetRequestId() != 77 || e.GetError().GetError() != pb.ServerError_NotAllowedError {
		t.Fatalf("got %v", e)
	}
}

// A WaitForExclusive producer whose connection goes away while waiting
// leaves nothing behind.
func TestWaitForExclusiveAbandoned(t *testing.T) {
	s := startServer(t)
	topic := newTopic("waitgone")
	producerCmd := func(id, req uint64, mode pb.ProducerAccessMode) *pb.BaseCommand {
		return &pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{
			Topic: proto.String(topic), ProducerId: proto.Uint64(id), RequestId: proto.Uint64(req),
			ProducerAccessMode: mode.Enum()}}
	}
	a, b := dialRaw(t, s), dialRaw(t, s)
	a.send(producerCmd(1, 1, pb.ProducerAccessMode_Exclusive), nil)
	a.recvType(pb.BaseCommand_PRODUCER_SUCCESS)
	b.send(producerCmd(1, 1, pb.ProducerAccessMode_WaitForExclusive), nil)
	if ps := b.recvType(pb.BaseCommand_PRODUCER_SUCCESS).GetProducerSuccess(); ps.GetProducerReady() {
		t.Fatal("waiting producer reported ready")
	}
	b.nc.Close()
	time.Sleep(50 * time.Millisecond)
	a.send(&pb.BaseCommand{Type: pb.BaseCommand_CLOSE_PRODUCER.Enum(), CloseProducer: &pb.CommandCloseProducer{
		ProducerId: proto.Uint64(1), RequestId: proto.Uint64(2)}}, nil)
	a.recvType(pb.BaseCommand_SUCCESS)
	c := dialRaw(t, s)
	c.send(producerCmd(1, 1, pb.ProducerAccessMode_Exclusive), nil)
	if cmd := c.recvType(pb.BaseCommand_PRODUCER_SUCCESS); !cmd.GetProducerSuccess().GetProducerReady() {
		t.Fatalf("exclusive producer after the waiter left: %v", cmd)
	}
}

// A second PRODUCER or SUBSCRIBE for an id this connection already serves
// (the Go client's reconnectToBroker on a live connection) succeeds with the
// existing producer or consumer, as in Pulsar (pulsar-client-go's
// TestConsumerWithBackoffPolicy, TestProducerWithBackoffPolicy).
func TestDuplicateIDReconnect(t *testing.T) {
	s := startServer(t)
	topic := newTopic("dupid")
	a := dialRaw(t, s)
	for req := uint64(1); req <= 2; req++ {
		a.send(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{
			Topic: proto.String(topic), ProducerId: proto.Uint64(7), RequestId: proto.Uint64(req), ProducerName: proto.String("p")}}, nil)
		if ps := a.recvType(pb.BaseCommand_PRODUCER_SUCCESS).GetProducerSuccess(); ps.GetRequestId() != req || ps.GetProducerName() != "p" {
			t.Fatalf("producer %d: %v", req, ps)
		}
	}
	for req := uint64(3); req <= 4; req++ {
		a.send(&pb.BaseCommand{Type: pb.BaseCommand_SUBSCRIBE.Enum(), Subscribe: &pb.CommandSubscribe{
			Topic: proto.String(topic), Subscription: proto.String("s"), SubType: pb.CommandSubscribe_Exclusive.Enum(),
			ConsumerId: proto.Uint64(9), RequestId: proto.Uint64(req)}}, nil)
		if ok := a.recvType(pb.BaseCommand_SUCCESS).GetSuccess(); ok.GetRequestId() != req {
			t.Fatalf("subscribe %d: %v", req, ok)
		}
	}
}

// SEEK disconnects the subscription's consumers before it is answered, as
// Pulsar does: the Go client then holds its next request for the consumer
// until it re-subscribed (pulsar-client-go's TestReaderWithSeekByID, latest
// and inclusive: the client seeks during creation, then the test seeks).
func TestSeekClosesBeforeSuccess(t *testing.T) {
	s := startServer(t)
	topic := newTopic("seekorder")
	a := dialRaw(t, s)
	a.send(&pb.BaseCommand{Type: pb.BaseCommand_SUBSCRIBE.Enum(), Subscribe: &pb.CommandSubscribe{
		Topic: proto.String(topic), Subscription: proto.String("s"), SubType: pb.CommandSubscribe_Exclusive.Enum(),
		ConsumerId: proto.Uint64(1), RequestId: proto.Uint64(1)}}, nil)
	a.recvType(pb.BaseCommand_SUCCESS)
	a.send(&pb.BaseCommand{Type: pb.BaseCommand_SEEK.Enum(), Seek: &pb.CommandSeek{
		ConsumerId: proto.Uint64(1), RequestId: proto.Uint64(2), MessagePublishTime: proto.Uint64(0)}}, nil)
	for want := []pb.BaseCommand_Type{pb.BaseCommand_CLOSE_CONSUMER, pb.BaseCommand_SUCCESS}; len(want) > 0; {
		cmd, _ := a.recv()
		if cmd.GetType() == pb.BaseCommand_PING {
			continue
		}
		if cmd.GetType() != want[0] {
			t.Fatalf("got %v, want %v", cmd.GetType(), want[0])
		}
		want = want[1:]
	}
}
