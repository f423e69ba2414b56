package pulsar

// Pulsar transactions: the transaction coordinator commands, served by the
// broker's TxnCoordinator (the one Kafka transactions use; see
// broker/pulsartxn.go and docs/transactions.md).
//
// Clients find the coordinator as Pulsar's: the partitioned metadata of
// persistent://pulsar/system/transaction_coordinator_assign (one partition:
// coordinator 0), a lookup of its partition 0 (this broker), then
// TC_CLIENT_CONNECT with tc_id 0. A transaction id is (0, producer id of
// the coordinator record).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/convert"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// tcAssignTopic is the topic whose partitions name the transaction
// coordinators; it stores nothing.
const tcAssignTopic = "persistent://pulsar/system/transaction_coordinator_assign"

// isTCAssign reports whether a client's topic string is the coordinator
// assign topic or one of its partitions.
func isTCAssign(topic string) bool {
	return topic == tcAssignTopic || strings.HasPrefix(topic, tcAssignTopic+broker.PartitionSuffix)
}

// errTxnCoordinator: a tc_id other than 0.
var errTxnCoordinator = errors.New("pulsar: no such transaction coordinator")

// defaultTxnTimeout applies to a NEW_TXN without a timeout.
const defaultTxnTimeout = time.Minute

// txnService is what the broker offers for transactions; a Service
// without it has no coordinator (TransactionCoordinatorNotFound).
type txnService interface {
	Transactions(ctx context.Context) (*broker.TxnCoordinator, error)
}

func (h *Handler) transactions(ctx context.Context) (*broker.TxnCoordinator, error) {
	ts, ok := h.env.Broker.(txnService)
	if !ok {
		return nil, fmt.Errorf("%w: transactions are not served", errTxnCoordinator)
	}
	return ts.Transactions(ctx)
}

func (c *conn) coordinator(ctx context.Context, tcID uint64) (*broker.TxnCoordinator, error) {
	if tcID != 0 {
		return nil, fmt.Errorf("%w: %d (only 0)", errTxnCoordinator, tcID)
	}
	return c.h.transactions(ctx)
}

// txnError is the wire code of a coordinator or transactional send/ack
// error, or nil for success.
func txnError(err error) (*pb.ServerError, *string) {
	if err == nil {
		return nil, nil
	}
	return serverError(err).Enum(), proto.String(broker.Reason(err))
}

func (c *conn) handleTcClientConnect(ctx context.Context, cmd *pb.CommandTcClientConnectRequest) error {
	_, err := c.coordinator(ctx, cmd.GetTcId())
	code, msg := txnError(err)
	return c.send(&pb.BaseCommand{Type: pb.BaseCommand_TC_CLIENT_CONNECT_RESPONSE.Enum(), TcClientConnectResponse: &pb.CommandTcClientConnectResponse{
		RequestId: proto.Uint64(cmd.GetRequestId()), Error: code, Message: msg,
	}})
}

func (c *conn) handleNewTxn(ctx context.Context, cmd *pb.CommandNewTxn) error {
	resp := &pb.CommandNewTxnResponse{RequestId: proto.Uint64(cmd.GetRequestId())}
	tc, err := c.coordinator(ctx, cmd.GetTcId())
	if err == nil {
		// txn_ttl_seconds carries milliseconds (every client sends
		// TimeUnit.MILLISECONDS / Duration.Milliseconds there).
		timeout := time.Duration(cmd.GetTxnTtlSeconds()) * time.Millisecond
		if timeout == 0 {
			timeout = defaultTxnTimeout
		}
		var pid int64
		if pid, err = tc.NewPulsarTxn(ctx, timeout); err == nil {
			resp.TxnidMostBits, resp.TxnidLeastBits = proto.Uint64(0), proto.Uint64(uint64(pid))
		}
	}
	resp.Error, resp.Message = txnError(err)
	return c.send(&pb.BaseCommand{Type: pb.BaseCommand_NEW_TXN_RESPONSE.Enum(), NewTxnResponse: resp})
}

// pulsarTxn resolves a wire transaction id.
func (c *conn) pulsarTxn(ctx context.Context, most, least uint64) (*broker.TxnCoordinator, broker.PulsarTxn, error) {
	tc, err := c.coordinator(ctx, most)
	if err != nil {
		return nil, broker.PulsarTxn{}, err
	}
	tx, err := tc.LookupPulsarTxn(int64(least))
	return tc, tx, err
}

func (c *conn) handleAddPartitionToTxn(ctx context.Context, cmd *pb.CommandAddPartitionToTxn) error {
	resp := &pb.CommandAddPartitionToTxnResponse{RequestId: proto.Uint64(cmd.GetRequestId()),
		TxnidMostBits: proto.Uint64(cmd.GetTxnidMostBits()), TxnidLeastBits: proto.Uint64(cmd.GetTxnidLeastBits())}
	tc, tx, err := c.pulsarTxn(ctx, cmd.GetTxnidMostBits(), cmd.GetTxnidLeastBits())
	var names []broker.TopicName
	var sent []string
	for _, s := range cmd.GetPartitions() {
		if err != nil {
			break
		}
		var n broker.TopicName
		if n, err = c.h.topicName(s); err == nil {
			err = c.authorizeTopic(ctx, n, auth.NeedProduce)
		}
		names, sent = append(names, n), append(sent, s)
	}
	if err == nil {
		err = tc.AddPulsarPartitions(ctx, tx, names, sent)
	}
	resp.Error, resp.Message = txnError(err)
	return c.send(&pb.BaseCommand{Type: pb.BaseCommand_ADD_PARTITION_TO_TXN_RESPONSE.Enum(), AddPartitionToTxnResponse: resp})
}

func (c *conn) handleAddSubscriptionToTxn(ctx context.Context, cmd *pb.CommandAddSubscriptionToTxn) error {
	resp := &pb.CommandAddSubscriptionToTxnResponse{RequestId: proto.Uint64(cmd.GetRequestId()),
		TxnidMostBits: proto.Uint64(cmd.GetTxnidMostBits()), TxnidLeastBits: proto.Uint64(cmd.GetTxnidLeastBits())}
	tc, tx, err := c.pulsarTxn(ctx, cmd.GetTxnidMostBits(), cmd.GetTxnidLeastBits())
	for _, s := range cmd.GetSubscription() {
		if err != nil {
			break
		}
		var n broker.TopicName
		if n, err = c.h.topicName(s.GetTopic()); err == nil {
			err = c.authorizeTopic(ctx, n, auth.NeedConsume)
		}
		if err == nil {
			// The acks themselves (ACK with the transaction id) are what
			// commit applies; registering the subscription with none
			// checks the transaction is open and lists it (admin
			// transactionMetadata's ackedPartitions).
			err = tc.CommitAcks(ctx, tx.ID, tx.ProducerID, tx.Epoch, s.GetSubscription(), n, s.GetTopic(), nil, nil)
		}
	}
	resp.Error, resp.Message = txnError(err)
	return c.send(&pb.BaseCommand{Type: pb.BaseCommand_ADD_SUBSCRIPTION_TO_TXN_RESPONSE.Enum(), AddSubscriptionToTxnResponse: resp})
}

func (c *conn) handleEndTxn(ctx context.Context, cmd *pb.CommandEndTxn) error {
	resp := &pb.CommandEndTxnResponse{RequestId: proto.Uint64(cmd.GetRequestId()),
		TxnidMostBits: proto.Uint64(cmd.GetTxnidMostBits()), TxnidLeastBits: proto.Uint64(cmd.GetTxnidLeastBits())}
	tc, tx, err := c.pulsarTxn(ctx, cmd.GetTxnidMostBits(), cmd.GetTxnidLeastBits())
	if err == nil {
		switch cmd.GetTxnAction() {
		case pb.TxnAction_COMMIT, pb.TxnAction_ABORT:
			err = tc.EndPulsarTxn(ctx, tx, cmd.GetTxnAction() == pb.TxnAction_COMMIT)
		default:
			err = fmt.Errorf("%w: transaction action %v", errNotAllowed, cmd.GetTxnAction())
		}
	}
	resp.Error, resp.Message = txnError(err)
	return c.send(&pb.BaseCommand{Type: pb.BaseCommand_END_TXN_RESPONSE.Enum(), EndTxnResponse: resp})
}

// Kafka RecordBatch v2 header offsets patched for a transactional batch.
const (
	kbCRC        = 17
	kbAttributes = 21
	kbProducerID = 43
	kbEpoch      = 51
	kbCRCFrom    = 21
	kbHeaderLen  = 61
	kbTxnAttr    = 0x10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// txnBatch turns a Pulsar SEND's stored bytes into the Kafka
// transactional batch of producer pid/epoch that stores it: a
// transaction's entries must be Kafka batches with the transactional
// attribute and its producer id, since the aborted index, recovery and
// Kafka read_committed consumers work from exactly those bytes. Pulsar
// consumers get them converted back (properties as headers round-trip).
func txnBatch(stored []byte, msgs int32, pid int64, epoch int16) ([]byte, error) {
	b, err := convert.PulsarToKafka(&broker.Entry{Format: broker.FormatPulsar, MsgCount: msgs, Data: stored})
	if err != nil {
		return nil, err
	}
	if len(b) < kbHeaderLen {
		return nil, fmt.Errorf("%w: converted batch of %d bytes", errNotAllowed, len(b))
	}
	attrs := binary.BigEndian.Uint16(b[kbAttributes:])
	binary.BigEndian.PutUint16(b[kbAttributes:], attrs|kbTxnAttr)
	binary.BigEndian.PutUint64(b[kbProducerID:], uint64(pid))
	binary.BigEndian.PutUint16(b[kbEpoch:], uint16(epoch))
	binary.BigEndian.PutUint32(b[kbCRC:], crc32.Checksum(b[kbCRCFrom:], castagnoli))
	return b, nil
}

// MessageMetadata fields of a transaction id (Pulsar's txnid_least_bits,
// txnid_most_bits; not in our pb, so unknown fields when a client sets them).
const (
	mdFieldTxnLeast = 22
	mdFieldTxnMost  = 23
)

// txnChunk returns a transactional chunk's stored payload: the client's,
// with the transaction id (0, pid) appended to its MessageMetadata (as
// Pulsar's own clients set it; appended fields override earlier ones) and
// the checksum recomputed. The broker reads the id back from these bytes
// (broker.pulsarTxnProducer) to tell a transaction's chunks from others on
// recovery and dispatch, since a chunk cannot be the Kafka transactional
// batch the transaction's other messages are stored as; consumers receive
// it as any chunk, which Pulsar brokers deliver with the id in it too.
func txnChunk(stored []byte, pid int64) []byte {
	size := binary.BigEndian.Uint32(stored[6:])
	var extra []byte
	extra = protowire.AppendTag(extra, mdFieldTxnLeast, protowire.VarintType)
	extra = protowire.AppendVarint(extra, uint64(pid))
	extra = protowire.AppendTag(extra, mdFieldTxnMost, protowire.VarintType)
	extra = protowire.AppendVarint(extra, 0)
	end := 10 + int(size)
	out := make([]byte, 0, len(stored)+len(extra))
	out = append(out, stored[:6]...)
	out = binary.BigEndian.AppendUint32(out, size+uint32(len(extra)))
	out = append(out, stored[10:end]...)
	out = append(out, extra...)
	out = append(out, stored[end:]...)
	binary.BigEndian.PutUint32(out[2:], crc32.Checksum(out[6:], castagnoli))
	return out
}

// hasTxnMetadata reports whether a SEND's MessageMetadata carries a
// transaction id.
func hasTxnMetadata(md *pb.MessageMetadata) bool {
	b := md.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		if num == mdFieldTxnLeast || num == mdFieldTxnMost {
			return true
		}
		b = b[n:]
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return false
		}
		b = b[n:]
	}
	return false
}

// txnAck records an ACK made in a transaction: nothing changes on the
// subscription until the transaction commits (then the coordinator applies
// the acks to the cursor); an abort drops them and the messages stay
// unacknowledged, redelivered like any other. Batch-index acks in a
// transaction are refused: the coordinator keeps whole entries only.
func (c *conn) txnAck(ctx context.Context, cs *consumer, cmd *pb.CommandAck, beyond func(broker.Position) bool) error {
	if cs.sub == nil {
		return fmt.Errorf("%w: transactional ack on a non-durable subscription", errNotAllowed)
	}
	tc, tx, err := c.pulsarTxn(ctx, cmd.GetTxnidMostBits(), cmd.GetTxnidLeastBits())
	if err != nil {
		return err
	}
	var positions []broker.Position
	var upTo *broker.Position
	for _, m := range cmd.GetMessageId() {
		if len(m.GetAckSet()) > 0 {
			return fmt.Errorf("%w: batch-index acknowledgement in a transaction", errNotAllowed)
		}
		pos := wirePosition(m)
		if beyond(pos) {
			continue
		}
		if cmd.GetAckType() == pb.CommandAck_Cumulative {
			if upTo == nil || upTo.Less(pos) {
				upTo = &pos
			}
		} else {
			positions = append(positions, pos)
		}
	}
	if len(positions) == 0 && upTo == nil {
		return nil
	}
	return tc.CommitAcks(ctx, tx.ID, tx.ProducerID, tx.Epoch, cs.sub.Name(), cs.part.Name(), "", positions, upTo)
}
