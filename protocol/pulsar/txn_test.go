package pulsar

import (
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// TestTxnCommandErrors: raw transaction commands with bad ids, states and
// timeouts get their error codes on the same connection, which keeps
// working; nothing is stored for a refused transactional SEND, nor for a
// plain SEND whose metadata carries a transaction id.
func TestTxnCommandErrors(t *testing.T) {
	s := startServer(t)
	topic := newTopic("txn-errors")
	rc := dialRaw(t, s)
	req := uint64(100)
	next := func() *uint64 { req++; return proto.Uint64(req) }

	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_TC_CLIENT_CONNECT_REQUEST.Enum(), TcClientConnectRequest: &pb.CommandTcClientConnectRequest{
		RequestId: next(), TcId: proto.Uint64(1)}}, nil)
	if r := rc.recvType(pb.BaseCommand_TC_CLIENT_CONNECT_RESPONSE).GetTcClientConnectResponse(); r.GetError() != pb.ServerError_TransactionCoordinatorNotFound {
		t.Fatalf("tc 1: %v", r)
	}
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_TC_CLIENT_CONNECT_REQUEST.Enum(), TcClientConnectRequest: &pb.CommandTcClientConnectRequest{
		RequestId: next(), TcId: proto.Uint64(0)}}, nil)
	if r := rc.recvType(pb.BaseCommand_TC_CLIENT_CONNECT_RESPONSE).GetTcClientConnectResponse(); r.Error != nil {
		t.Fatalf("tc 0: %v", r)
	}
	// A timeout above the maximum (15 min).
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_NEW_TXN.Enum(), NewTxn: &pb.CommandNewTxn{
		RequestId: next(), TxnTtlSeconds: proto.Uint64(uint64(time.Hour.Milliseconds()))}}, nil)
	if r := rc.recvType(pb.BaseCommand_NEW_TXN_RESPONSE).GetNewTxnResponse(); r.GetError() != pb.ServerError_NotAllowedError {
		t.Fatalf("1 h timeout: %v", r)
	}
	// Unknown transaction ids.
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_END_TXN.Enum(), EndTxn: &pb.CommandEndTxn{
		RequestId: next(), TxnidMostBits: proto.Uint64(0), TxnidLeastBits: proto.Uint64(987654)}}, nil)
	if r := rc.recvType(pb.BaseCommand_END_TXN_RESPONSE).GetEndTxnResponse(); r.GetError() != pb.ServerError_TransactionNotFound {
		t.Fatalf("end unknown: %v", r)
	}
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_ADD_PARTITION_TO_TXN.Enum(), AddPartitionToTxn: &pb.CommandAddPartitionToTxn{
		RequestId: next(), TxnidMostBits: proto.Uint64(0), TxnidLeastBits: proto.Uint64(987654), Partitions: []string{topic}}}, nil)
	if r := rc.recvType(pb.BaseCommand_ADD_PARTITION_TO_TXN_RESPONSE).GetAddPartitionToTxnResponse(); r.GetError() != pb.ServerError_TransactionNotFound {
		t.Fatalf("add to unknown: %v", r)
	}

	// A real transaction; a SEND to a partition not added to it, and
	// one with an unknown id, are refused.
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_NEW_TXN.Enum(), NewTxn: &pb.CommandNewTxn{
		RequestId: next(), TxnTtlSeconds: proto.Uint64(60000)}}, nil)
	nt := rc.recvType(pb.BaseCommand_NEW_TXN_RESPONSE).GetNewTxnResponse()
	if nt.Error != nil || nt.GetTxnidLeastBits() == 0 {
		t.Fatalf("new txn: %v", nt)
	}
	least := nt.GetTxnidLeastBits()
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{
		Topic: proto.String(topic), ProducerId: proto.Uint64(1), RequestId: next()}}, nil)
	rc.recvType(pb.BaseCommand_PRODUCER_SUCCESS)
	send := func(seq, least uint64) *pb.CommandSendError {
		t.Helper()
		stored := encodeStored(&pb.MessageMetadata{ProducerName: proto.String("x"), SequenceId: proto.Uint64(seq), PublishTime: proto.Uint64(1)}, []byte("txn"))
		rc.send(&pb.BaseCommand{Type: pb.BaseCommand_SEND.Enum(), Send: &pb.CommandSend{ProducerId: proto.Uint64(1), SequenceId: proto.Uint64(seq),
			TxnidMostBits: proto.Uint64(0), TxnidLeastBits: proto.Uint64(least)}}, stored)
		for {
			cmd, _ := rc.recv()
			switch cmd.GetType() {
			case pb.BaseCommand_SEND_ERROR:
				return cmd.GetSendError()
			case pb.BaseCommand_SEND_RECEIPT:
				return nil
			}
		}
	}
	if e := send(0, least); e.GetError() != pb.ServerError_InvalidTxnStatus {
		t.Fatalf("send to a partition not in the transaction: %v", e)
	}
	if e := send(1, 987654); e.GetError() != pb.ServerError_TransactionNotFound {
		t.Fatalf("send with an unknown transaction: %v", e)
	}
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_ADD_PARTITION_TO_TXN.Enum(), AddPartitionToTxn: &pb.CommandAddPartitionToTxn{
		RequestId: next(), TxnidMostBits: proto.Uint64(0), TxnidLeastBits: proto.Uint64(least), Partitions: []string{topic}}}, nil)
	if r := rc.recvType(pb.BaseCommand_ADD_PARTITION_TO_TXN_RESPONSE).GetAddPartitionToTxnResponse(); r.Error != nil {
		t.Fatalf("add: %v", r)
	}
	if e := send(2, least); e != nil {
		t.Fatalf("send in the transaction: %v", e)
	}
	end := func(action pb.TxnAction) *pb.CommandEndTxnResponse {
		rc.send(&pb.BaseCommand{Type: pb.BaseCommand_END_TXN.Enum(), EndTxn: &pb.CommandEndTxn{
			RequestId: next(), TxnidMostBits: proto.Uint64(0), TxnidLeastBits: proto.Uint64(least), TxnAction: action.Enum()}}, nil)
		return rc.recvType(pb.BaseCommand_END_TXN_RESPONSE).GetEndTxnResponse()
	}
	if r := end(pb.TxnAction_ABORT); r.Error != nil {
		t.Fatalf("abort: %v", r)
	}
	// Ended: gone, as in Pulsar.
	if r := end(pb.TxnAction_COMMIT); r.GetError() != pb.ServerError_TransactionNotFound {
		t.Fatalf("commit after abort: %v", r)
	}
	if e := send(3, least); e.GetError() != pb.ServerError_TransactionNotFound {
		t.Fatalf("send after abort: %v", e)
	}
	// Outside a transaction, a transaction id in the metadata (what marks
	// a stored transactional chunk) is refused.
	md := &pb.MessageMetadata{ProducerName: proto.String("x"), SequenceId: proto.Uint64(4), PublishTime: proto.Uint64(1)}
	md.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, mdFieldTxnLeast, protowire.VarintType), least))
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_SEND.Enum(), Send: &pb.CommandSend{ProducerId: proto.Uint64(1), SequenceId: proto.Uint64(4)}},
		encodeStored(md, []byte("forged")))
	if e := rc.recvType(pb.BaseCommand_SEND_ERROR).GetSendError(); e.GetError() != pb.ServerError_NotAllowedError {
		t.Fatalf("plain send with a transaction id in its metadata: %v", e)
	}

	// Nothing of it was delivered; a plain message is.
	c := s.client(t)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	produce(t, p, 1, "plain")
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	if got := payloads(receive(t, cons, 1, true)); got[0] != "plain-0" {
		t.Fatalf("got %v", got)
	}
	expectNone(t, cons, 200*time.Millisecond)
}
