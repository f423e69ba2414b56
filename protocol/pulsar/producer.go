package pulsar

// PRODUCER, SEND, CLOSE_PRODUCER.
//
// A producer's SENDs are appended in order by one goroutine per producer and
// their receipts are written in that order (the client matches receipts to
// its pending queue strictly in order). Deduplication is the broker's:
// a retried batch gets its original message id, an older one (-1,-1).
// Chunks carry the message's sequence id in every chunk, so only the last
// chunk takes part in deduplication; every chunk gets its own receipt.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// sendQueue bounds the SENDs buffered per producer; beyond it the
// connection's reader blocks (backpressure on the producer's connection).
// Memory per producer is bounded by sendQueue frames of max-message-size.
const sendQueue = 256

type sendReq struct {
	cmd    *pb.CommandSend
	stored []byte
	md     *pb.MessageMetadata
	err    error // payload rejected before append (checksum, malformed)
}

type producer struct {
	c    *conn
	id   uint64
	name string
	part *broker.Partition
	reg  *broker.ProducerHandle // its attachment to the partition
	// counters count its appends for the statistics (admin stats, metrics).
	counters broker.ProducerCounters

	// Backlog quota verdict (quota.go); used by run only.
	quotaCheckedAt time.Time
	quotaOver      bool

	sends chan sendReq
	done  chan struct{}

	// sendMu orders begin's appends against a failed SEND and against
	// stop: once a SEND failed on storage or the producer stopped (halted
	// set), no later SEND of this producer is appended. The client
	// resends everything from the failed one on a new connection; a
	// queued SEND appended meanwhile would land behind the resend's
	// start and turn the rest of it into "duplicates" acknowledged
	// without being stored. Pulsar closes the producer the same way on a
	// persistence failure.
	sendMu    sync.Mutex
	halted    bool
	stopOnce  sync.Once
	fenceOnce sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
}

func (c *conn) handleProducer(ctx context.Context, cmd *pb.CommandProducer) error {
	reqID, pid := cmd.GetRequestId(), cmd.GetProducerId()
	name, err := c.h.topicName(cmd.GetTopic())
	if err != nil {
		return c.sendError(reqID, err)
	}
	if err := c.authorizeTopic(ctx, name, auth.NeedProduce); err != nil {
		return c.sendError(reqID, err)
	}
	if cmd.GetInitialSubscriptionName() != "" {
		// The producer would create a subscription: that is consuming.
		if err := c.authorizeTopic(ctx, name, auth.NeedConsume); err != nil {
			return c.sendError(reqID, err)
		}
	}
	c.mu.Lock()
	old := c.mu.producers[pid]
	c.mu.Unlock()
	if old != nil {
		// A client reconnecting a producer that this connection still
		// serves: as Pulsar does, the existing producer stands.
		ps := &pb.CommandProducerSuccess{
			RequestId: proto.Uint64(reqID), ProducerName: proto.String(old.name),
			LastSequenceId: proto.Int64(old.part.ResumeProducer(old.name)), ProducerReady: proto.Bool(true),
		}
		if old.reg != nil && cmd.GetProducerAccessMode() != pb.ProducerAccessMode_Shared {
			ps.TopicEpoch = proto.Uint64(old.reg.Epoch)
		}
		return c.send(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER_SUCCESS.Enum(), ProducerSuccess: ps})
	}
	part, err := c.h.env.Broker.OpenPartition(ctx, name, true)
	if err != nil {
		return c.sendError(reqID, err)
	}
	if terminated(part) {
		return c.sendError(reqID, fmt.Errorf("%w: %s", errTopicTerminated, name))
	}
	if overQuota(ctx, part) {
		return c.sendError(reqID, fmt.Errorf("%w on %s", errBacklogQuota, name))
	}
	if cmd.GetEncrypted() {
		// Payloads pass through untouched; encryption is end to end.
		c.log.Debug("encrypted producer", "topic", name.String())
	}
	var schemaVersion []byte
	if s := cmd.GetSchema(); s != nil && s.GetType() != pb.Schema_None {
		if schemaVersion, err = c.h.getOrCreateSchema(ctx, name, s); err != nil {
			return c.sendError(reqID, err)
		}
	}
	if subName := cmd.GetInitialSubscriptionName(); subName != "" {
		// Created with the producer so that nothing it sends is missed.
		if _, err := part.Subscription(ctx, subName, true, broker.InitialEarliest); err != nil {
			return c.sendError(reqID, err)
		}
	}
	pname := cmd.GetProducerName()
	if pname == "" {
		pname = broker.GenerateProducerName("kopernik")
	}
	topicEpoch := int64(-1)
	if cmd.TopicEpoch != nil && cmd.GetTopicEpoch() <= math.MaxInt64 {
		topicEpoch = int64(cmd.GetTopicEpoch())
	}
	access := broker.ProducerAccess(cmd.GetProducerAccessMode())
	p := &producer{c: c, id: pid, name: pname, part: part,
		sends: make(chan sendReq, sendQueue), done: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())

	register := func(rctx context.Context) error {
		queued := func() {
			// Tell the client to keep waiting past its request timeout.
			c.send(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER_SUCCESS.Enum(), ProducerSuccess: &pb.CommandProducerSuccess{
				RequestId: proto.Uint64(reqID), ProducerName: proto.String(pname), ProducerReady: proto.Bool(false),
			}})
		}
		reg, err := part.AddProducer(rctx, broker.ProducerSpec{
			Info: broker.ProducerInfo{
				Name: pname, Protocol: "pulsar", Address: c.nc.RemoteAddr().String(),
				AccessMode: accessModeName(cmd.GetProducerAccessMode()), ClientVersion: c.clientVer,
				Metadata: keyValues(cmd.GetMetadata()), Counters: &p.counters,
			},
			Access: access, TopicEpoch: topicEpoch, OnFenced: p.fenced, Queued: queued,
		})
		if err != nil {
			return c.sendError(reqID, err)
		}
		p.reg = reg
		c.mu.Lock()
		select {
		case <-c.closed:
			// The connection ended while we waited; cleanup has run or
			// will not see this producer.
			c.mu.Unlock()
			p.stop()
			return net.ErrClosed
		default:
		}
		c.mu.producers[pid] = p
		c.mu.Unlock()
		go p.run()
		ps := &pb.CommandProducerSuccess{
			RequestId: proto.Uint64(reqID), ProducerName: proto.String(pname),
			LastSequenceId: proto.Int64(part.ResumeProducer(pname)), SchemaVersion: schemaVersion,
			ProducerReady: proto.Bool(true),
		}
		if access != broker.AccessShared {
			ps.TopicEpoch = proto.Uint64(reg.Epoch)
		}
		return c.send(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER_SUCCESS.Enum(), ProducerSuccess: ps})
	}
	if access == broker.AccessWaitForExclusive {
		// Waiting must not stall the connection: wait on the side, until
		// access is granted or the connection closes.
		wctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-c.closed
			cancel()
		}()
		go func() {
			if err := register(wctx); err != nil {
				c.close()
			}
			if wctx.Err() != nil {
				c.mu.Lock()
				if c.mu.producers[pid] == p {
					delete(c.mu.producers, pid)
				}
				c.mu.Unlock()
				p.stop()
			}
		}()
		return nil
	}
	return register(ctx)
}

// fenced is called when an ExclusiveWithFencing producer took over (or
// the partition closed): the client is told with CLOSE_PRODUCER, once.
func (p *producer) fenced() {
	p.fenceOnce.Do(p.closeByBroker)
}

func (p *producer) closeByBroker() {
	p.c.mu.Lock()
	if p.c.mu.producers[p.id] == p {
		delete(p.c.mu.producers, p.id)
	}
	p.c.mu.Unlock()
	p.stop()
	p.c.send(&pb.BaseCommand{Type: pb.BaseCommand_CLOSE_PRODUCER.Enum(), CloseProducer: &pb.CommandCloseProducer{
		ProducerId: proto.Uint64(p.id), RequestId: proto.Uint64(0),
	}})
}

// stop ends the producer: pending sends are dropped (their clients resend)
// and it is unregistered. Idempotent.
func (p *producer) stop() {
	p.stopOnce.Do(func() {
		p.cancel()
		// No append after this, before the name is free to register again.
		p.sendMu.Lock()
		p.halted = true
		p.sendMu.Unlock()
		if p.reg != nil {
			p.reg.Close()
		}
	})
}

// accessModeName is Pulsar's ProducerAccessMode name, as stats report it.
func accessModeName(m pb.ProducerAccessMode) string {
	switch m {
	case pb.ProducerAccessMode_Exclusive:
		return "Exclusive"
	case pb.ProducerAccessMode_WaitForExclusive:
		return "WaitForExclusive"
	case pb.ProducerAccessMode_ExclusiveWithFencing:
		return "ExclusiveWithFencing"
	}
	return "Shared"
}

// keyValues turns wire metadata into a map (nil when empty).
func keyValues(kvs []*pb.KeyValue) map[string]string {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue()
	}
	return m
}

func (c *conn) handleSend(cmd *pb.CommandSend, payload []byte) error {
	c.mu.Lock()
	p := c.mu.producers[cmd.GetProducerId()]
	c.mu.Unlock()
	if p == nil {
		// Pulsar closes the connection on a SEND for an unknown producer
		// (e.g. fenced): the client reconnects and re-creates it.
		return fmt.Errorf("SEND for unknown producer %d", cmd.GetProducerId())
	}
	req := sendReq{cmd: cmd}
	req.stored, req.md, req.err = parsePayload(payload)
	c.inflight.Add(1)
	select {
	case p.sends <- req:
		return nil
	case <-p.ctx.Done():
		c.inflight.Done()
		return nil
	case <-c.closed:
		c.inflight.Done()
		return net.ErrClosed
	}
}

// run appends SENDs in arrival order without waiting for durability and
// hands them to deliver, which waits for each in the same order and sends
// the receipts: many batches of one producer share group commits.
func (p *producer) run() {
	pending := make(chan pendingSend, sendQueue)
	defer close(pending)
	go p.deliver(pending)
	for {
		select {
		case <-p.ctx.Done():
			p.abandon()
			return
		case req := <-p.sends:
			if !p.holdForQuota() {
				p.c.inflight.Done()
				p.abandon()
				return
			}
			pending <- p.begin(req)
		}
	}
}

// deliver sends the receipts of pending in order. Every pendingSend is
// accounted in c.inflight exactly once, also when the connection is gone.
func (p *producer) deliver(pending <-chan pendingSend) {
	broken := false
	for ps := range pending {
		if !broken {
			if f := p.finish(ps); f != nil && p.c.enqueue(p.ctx, f) != nil {
				broken = true
			}
		}
		p.c.inflight.Done()
	}
}

// abandon releases the in-flight count of SENDs left in the queue.
func (p *producer) abandon() {
	for {
		select {
		case <-p.sends:
			p.c.inflight.Done()
		default:
			return
		}
	}
}

// pendingSend is a SEND that has its place in the log (or has failed).
type pendingSend struct {
	seq, highest uint64
	msgs         int32
	size         int
	append       *broker.PendingAppend
	err          error
}

// begin orders one SEND into the log.
func (p *producer) begin(req sendReq) pendingSend {
	cmd := req.cmd
	ps := pendingSend{seq: cmd.GetSequenceId()}
	// Clients number every message; a batch's SEND carries the first
	// sequence id and, from the Java client, highest_sequence_id. Without
	// the latter the batch counts as its first id, as in Pulsar: the ids
	// of a batch need not be contiguous (the Go client's key-based batches
	// interleave them across keys), so num_messages says nothing about them.
	ps.highest = max(cmd.GetHighestSequenceId(), ps.seq)
	if req.err != nil {
		ps.err = req.err
		return ps
	}
	md := req.md
	ps.msgs = max(md.GetNumMessagesInBatch(), 1)
	ps.size = len(req.stored)
	eventTime := int64(md.GetEventTime())
	if eventTime <= 0 {
		eventTime = int64(md.GetPublishTime())
	}
	ar := broker.AppendRequest{
		Format: broker.FormatPulsar, MsgCount: ps.msgs, MaxEventTime: eventTime, Data: req.stored,
		// Pulsar limits the payload; the metadata rides on the frame padding.
		Overhead: minPayloadHdrBytes + int(binary.BigEndian.Uint32(req.stored[6:])),
		Producer: p.name, SeqFirst: int64(ps.seq), SeqLast: int64(ps.highest),
	}
	if md.GetNumChunksFromMsg() > 1 && md.GetChunkId() < md.GetNumChunksFromMsg()-1 {
		ar.Producer = "" // every chunk repeats the sequence id: deduplicate on the last one only
	}
	var tc *broker.TxnCoordinator
	var tx broker.PulsarTxn
	switch {
	case cmd.TxnidLeastBits != nil || cmd.GetTxnidMostBits() != 0:
		var err error
		if tc, tx, err = p.c.pulsarTxn(p.ctx, cmd.GetTxnidMostBits(), cmd.GetTxnidLeastBits()); err != nil {
			ps.err = err
			return ps
		}
		ar.Transactional, ar.ProducerID = true, tx.ProducerID
		if md.GetNumChunksFromMsg() > 1 {
			// A chunk has no Kafka batch form: stored as the Pulsar
			// payload it is, marked with the transaction in its
			// MessageMetadata (see txnChunk).
			ar.Data = txnChunk(req.stored, tx.ProducerID)
			ar.Overhead = minPayloadHdrBytes + int(binary.BigEndian.Uint32(ar.Data[6:]))
			break
		}
		// Stored as a Kafka transactional batch of the transaction's
		// producer id (see txnBatch).
		if ar.Data, err = txnBatch(req.stored, ps.msgs, tx.ProducerID, tx.Epoch); err != nil {
			ps.err = err
			return ps
		}
		// The limit stays on the payload: the batch's headers and
		// records' framing (properties as headers) do not count.
		payload := len(req.stored) - ar.Overhead
		ar.Format, ar.Overhead = broker.FormatKafka, max(len(ar.Data)-payload, 0)
	case hasTxnMetadata(md):
		// Outside a transaction the field would make the broker take the
		// message for a transaction's (recovery reads it from the bytes).
		ps.err = fmt.Errorf("%w: a transaction id in the metadata of a SEND outside a transaction", errNotAllowed)
		return ps
	}
	p.sendMu.Lock()
	if p.halted {
		ps.err = fmt.Errorf("%w: producer %s stopped or an earlier send failed; resend from it", broker.ErrStorage, p.name)
	} else if tc != nil {
		ps.append, ps.err = tc.AppendAsync(p.part, tx.Epoch, ar)
		if errors.Is(ps.err, broker.ErrProducerFenced) {
			// The transaction's epoch moved on: it was aborted on timeout.
			ps.err = fmt.Errorf("%w: %w", broker.ErrInvalidTxnState, ps.err)
		}
	} else {
		ps.append, ps.err = p.part.AppendAsync(ar)
		// Refused by a failed ledger: SENDs behind it must not be
		// appended either, not even once the ledger has recovered.
		p.halted = errors.Is(ps.err, broker.ErrStorage)
	}
	p.sendMu.Unlock()
	return ps
}

// finish waits for a SEND to be durable and returns its receipt or error
// frame (nil: nothing to send).
func (p *producer) finish(ps pendingSend) []byte {
	seq, highest := ps.seq, ps.highest
	sendErr := func(err error) []byte {
		code := serverError(err)
		f, _ := appendFrame(nil, &pb.BaseCommand{Type: pb.BaseCommand_SEND_ERROR.Enum(), SendError: &pb.CommandSendError{
			ProducerId: proto.Uint64(p.id), SequenceId: proto.Uint64(seq), Error: code.Enum(), Message: proto.String(broker.Reason(err)),
		}}, nil, nil)
		return f
	}
	var res broker.AppendResult
	err := ps.err
	if err == nil {
		res, err = ps.append.Wait(p.ctx)
	}
	mid := &pb.MessageIdData{}
	switch {
	case errors.Is(err, broker.ErrDuplicate):
		// An old duplicate: acknowledged without a position, as Pulsar does.
		mid.LedgerId, mid.EntryId = proto.Uint64(math.MaxUint64), proto.Uint64(math.MaxUint64)
	case err != nil:
		if p.ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, broker.ErrClosed) {
			// The partition closed (topic deleted, broker closing): close
			// the producer; the client re-creates it and resends.
			go p.fenced()
			return nil
		}
		if errors.Is(err, broker.ErrStorage) {
			// Later sends may be lost with it: append none of them (a
			// message refused on its own, too large or corrupt, is
			// not such a failure).
			p.sendMu.Lock()
			p.halted = true
			p.sendMu.Unlock()
		}
		return sendErr(err)
	default:
		if !res.Duplicate {
			p.counters.Add(int64(ps.msgs), int64(ps.size))
		}
		mid.LedgerId = proto.Uint64(uint64(res.Entry.Position.LedgerID))
		mid.EntryId = proto.Uint64(uint64(res.Entry.Position.EntryID))
	}
	f, _ := appendFrame(nil, &pb.BaseCommand{Type: pb.BaseCommand_SEND_RECEIPT.Enum(), SendReceipt: &pb.CommandSendReceipt{
		ProducerId: proto.Uint64(p.id), SequenceId: proto.Uint64(seq), HighestSequenceId: proto.Uint64(highest), MessageId: mid,
	}}, nil, nil)
	return f
}

func (c *conn) handleCloseProducer(cmd *pb.CommandCloseProducer) error {
	c.mu.Lock()
	p := c.mu.producers[cmd.GetProducerId()]
	delete(c.mu.producers, cmd.GetProducerId())
	c.mu.Unlock()
	if p != nil {
		// Let queued sends finish first? The client waits for its pending
		// receipts before closing, so the queue is normally empty here.
		p.stop()
	}
	return c.sendSuccess(cmd.GetRequestId())
}
