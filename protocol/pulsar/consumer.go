package pulsar

// SUBSCRIBE, FLOW, MESSAGE, ACK, REDELIVER_UNACKNOWLEDGED_MESSAGES, SEEK,
// GET_LAST_MESSAGE_ID, UNSUBSCRIBE, CLOSE_CONSUMER.
//
// Durable subscriptions share one broker.Dispatcher per subscription across
// connections; readers (non-durable) get their own dispatcher over a
// non-durable cursor. Permits count messages; the broker charges an entry's
// message count. After a SEEK the consumers of the subscription get
// CLOSE_CONSUMER (after the SUCCESS): the Go client then re-subscribes from
// the new position and would never dispatch again otherwise.

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/convert"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

type consumer struct {
	c       *conn
	id      uint64
	topic   broker.TopicName
	part    *broker.Partition
	sub     *broker.Subscription // nil for a non-durable subscription (reader)
	disp    *broker.Dispatcher
	dc      *broker.DispatchConsumer
	subType broker.SubscriptionType
	// handle is the subscription's attachment (durable subscriptions).
	handle *broker.ConsumerHandle
	// detach releases a reader's hold on the partition.
	detach func()
	// readCompacted: the consumer reads the compacted view first.
	readCompacted bool
	// sentMu guards sent: for a durable readCompacted consumer, how each
	// entry it was sent and has not wholly acknowledged numbered its
	// messages: the offset deltas of the kept records of a batch
	// compaction rewrote (batch index k is raw message deltas[k]), nil
	// for the raw numbering. Its batch-index acknowledgements are mapped
	// back with it (rawAckSet), whatever the view holds by then.
	sentMu sync.Mutex
	sent   map[broker.Position][]int64

	// ready is set by the first FLOW: the Go client registers a consumer
	// only after SUBSCRIBE's SUCCESS arrives, so notifications sent
	// earlier would find no consumer; its first FLOW comes after that.
	ready atomic.Bool
	// attached is set once handle (or a reader's disp and detach) is set:
	// a PartitionClosed from the dispatcher before then is left to
	// handleSubscribe, which checks the partition after attaching.
	attached atomic.Bool
	active   atomic.Bool
	stopOnce sync.Once

	// Active-consumer notifications are sent from goroutines (never
	// blocking the dispatcher); notifySeq orders them so that a stale one
	// never arrives after a newer one (it is dropped instead).
	notifySeq  atomic.Uint64
	notifyMu   sync.Mutex
	notifySent uint64 // guarded by notifyMu
}

var subTypes = map[pb.CommandSubscribe_SubType]broker.SubscriptionType{
	pb.CommandSubscribe_Exclusive:  broker.SubExclusive,
	pb.CommandSubscribe_Shared:     broker.SubShared,
	pb.CommandSubscribe_Failover:   broker.SubFailover,
	pb.CommandSubscribe_Key_Shared: broker.SubKeyShared,
}

// wirePosition converts a MessageIdData to a position; the client's
// earliest (-1,-1, sent as uint64 max) and latest (MaxInt64) come out as
// broker.Earliest and broker.Latest.
func wirePosition(m *pb.MessageIdData) broker.Position {
	return broker.Position{LedgerID: int64(m.GetLedgerId()), EntryID: int64(m.GetEntryId())}
}

func wireID(p broker.Position) *pb.MessageIdData {
	return &pb.MessageIdData{LedgerId: proto.Uint64(uint64(p.LedgerID)), EntryId: proto.Uint64(uint64(p.EntryID))}
}

func (c *conn) handleSubscribe(ctx context.Context, cmd *pb.CommandSubscribe) error {
	reqID, cid := cmd.GetRequestId(), cmd.GetConsumerId()
	name, err := c.h.topicName(cmd.GetTopic())
	if err != nil {
		return c.sendError(reqID, err)
	}
	// Readers (non-durable) read the topic as much as subscribers do.
	if err := c.authorizeTopic(ctx, name, auth.NeedConsume); err != nil {
		return c.sendError(reqID, err)
	}
	typ, ok := subTypes[cmd.GetSubType()]
	if !ok {
		return c.sendError(reqID, fmt.Errorf("%w: subscription type %v", errNotAllowed, cmd.GetSubType()))
	}
	if cmd.GetReadCompacted() && cmd.GetDurable() && typ != broker.SubExclusive && typ != broker.SubFailover {
		// As Pulsar: the compacted view skips entries, which only a
		// single active consumer can acknowledge past.
		return c.sendError(reqID, fmt.Errorf("%w: readCompacted needs an Exclusive or Failover subscription", errNotAllowed))
	}
	c.mu.Lock()
	_, dup := c.mu.consumers[cid]
	c.mu.Unlock()
	if dup {
		// A client reconnecting a consumer that this connection still
		// serves: as Pulsar does, the existing consumer stands.
		return c.sendSuccess(reqID)
	}
	part, err := c.h.env.Broker.OpenPartition(ctx, name, cmd.GetForceTopicCreation())
	if err != nil {
		return c.sendError(reqID, err)
	}
	cs := &consumer{c: c, id: cid, topic: name, part: part, subType: typ}
	opts := broker.DispatchOptions{
		Partition: part, Type: typ, PartitionIndex: name.PartitionIndex(),
		Inspect: inspector(typ), DeliverAt: deliverAt, Logger: c.log,
		ReadCompacted: cmd.GetReadCompacted(),
	}
	cs.readCompacted = cmd.GetReadCompacted()
	if cmd.GetDurable() {
		create := c.h.cfg.AutoCreateSubscriptions && part.Policies().AutoSubscriptionCreation
		initial := broker.InitialLatest
		if cmd.GetInitialPosition() == pb.CommandSubscribe_Earliest {
			initial = broker.InitialEarliest
		}
		sub, err := part.Subscription(ctx, cmd.GetSubscription(), create, initial)
		if err != nil {
			return c.sendError(reqID, err)
		}
		// Nothing is delivered to the consumer before its first FLOW, which
		// this connection reads after SUBSCRIBE returns: the fields set
		// below are set before any Deliver.
		h, err := sub.AddConsumer(ctx, broker.ConsumerSpec{
			Info: broker.ConsumerInfo{
				Name: cmd.GetConsumerName(), Protocol: "pulsar", Address: c.nc.RemoteAddr().String(),
				Type: typ.String(), ClientVersion: c.clientVer, Metadata: keyValues(cmd.GetMetadata()),
			},
			Priority: int(cmd.GetPriorityLevel()),
			Dispatch: opts,
		}, cs)
		if err != nil {
			return c.sendError(reqID, err)
		}
		cs.sub, cs.handle, cs.disp, cs.dc = sub, h, h.Dispatcher(), h.Consumer()
	} else {
		start := readerStart(part, cmd)
		c.mu.Lock()
		if pos, ok := c.mu.readerSeeks[cid]; ok {
			delete(c.mu.readerSeeks, cid)
			start = broker.Position{LedgerID: pos.LedgerID, EntryID: pos.EntryID - 1}
		}
		c.mu.Unlock()
		// A reader has no subscription: its own dispatcher over a
		// non-durable cursor.
		opts.Cursor = part.NewReader(start)
		opts.Type = broker.SubExclusive
		cs.dc = &broker.DispatchConsumer{Name: cmd.GetConsumerName(), Priority: int(cmd.GetPriorityLevel()), Sink: cs}
		cs.disp = broker.NewDispatcher(opts)
		if err := cs.disp.AddConsumer(cs.dc); err != nil {
			cs.disp.Close()
			return c.sendError(reqID, err)
		}
		cs.detach = part.Attach()
	}
	cs.attached.Store(true)
	c.mu.Lock()
	c.mu.consumers[cid] = cs
	c.mu.Unlock()
	err = c.sendSuccess(reqID)
	select {
	case <-part.Done():
		// The partition closed while the consumer attached (a topic
		// deleted or unloaded meanwhile): its dispatcher may have stopped
		// before it knew this consumer, and nobody else would tell the
		// client to re-subscribe.
		cs.closeByBroker()
	default:
	}
	return err
}

// readerStart is the mark-delete position of a reader's cursor: the entry
// holding start_message_id is delivered again (the client drops messages up
// to the start id itself, or keeps the start id when inclusive).
func readerStart(part *broker.Partition, cmd *pb.CommandSubscribe) broker.Position {
	m := cmd.GetStartMessageId()
	if m == nil {
		if cmd.GetInitialPosition() == pb.CommandSubscribe_Earliest {
			return broker.Earliest
		}
		return part.LastConfirmed()
	}
	pos := wirePosition(m)
	switch {
	case pos.LedgerID < 0: // earliest: (-1,-1) sent as uint64 max
		return broker.Earliest
	case pos.LedgerID == math.MaxInt64:
		return part.LastConfirmed()
	}
	return broker.Position{LedgerID: pos.LedgerID, EntryID: pos.EntryID - 1}
}

// inspector tells the dispatcher which entries it can deliver and, for
// Key_Shared, their key (ordering key, else partition key).
func inspector(typ broker.SubscriptionType) func(*broker.Entry) ([]byte, bool) {
	return func(e *broker.Entry) ([]byte, bool) {
		if e.Format != broker.FormatPulsar {
			// Kafka batches: converted on delivery; routed by the first
			// key. Garbage is skipped (it stays unacknowledged).
			if !convert.KafkaHeaderOK(e) {
				return nil, false
			}
			if typ != broker.SubKeyShared {
				return nil, true
			}
			return convert.KafkaKey(e), true
		}
		if typ != broker.SubKeyShared {
			return nil, true
		}
		md, _, err := parseStored(e.Data)
		if err != nil {
			return nil, true
		}
		if k := md.GetOrderingKey(); len(k) > 0 {
			return k, true
		}
		return []byte(md.GetPartitionKey()), true
	}
}

// deliverAt reads a message's deliver_at_time (delayed delivery; the
// dispatcher asks only for Shared and Key_Shared subscriptions).
func deliverAt(e *broker.Entry) int64 {
	if e.Format != broker.FormatPulsar {
		return 0
	}
	md, _, err := parseStored(e.Data)
	if err != nil {
		return 0
	}
	return md.GetDeliverAtTime()
}

// Deliver implements broker.ConsumerSink: one MESSAGE frame per entry.
func (cs *consumer) Deliver(ctx context.Context, d broker.Delivery) error {
	mid := wireID(d.Entry.Position)
	msg := &pb.CommandMessage{ConsumerId: proto.Uint64(cs.id), MessageId: mid}
	if d.RedeliveryCount > 0 {
		msg.RedeliveryCount = proto.Uint32(d.RedeliveryCount)
	}
	if len(d.AckSet) > 0 {
		msg.AckSet = make([]int64, len(d.AckSet))
		for i, w := range d.AckSet {
			msg.AckSet[i] = int64(w)
		}
	}
	var err error
	var bem *pb.BrokerEntryMetadata
	if cs.c.entryMeta {
		bem = &pb.BrokerEntryMetadata{
			BrokerTimestamp: proto.Uint64(uint64(d.Entry.PublishTime)),
			Index:           proto.Uint64(uint64(d.Entry.LastIndex())),
		}
	}
	stored := d.Entry.Data
	if d.Entry.Format != broker.FormatPulsar {
		// A Kafka batch: one Pulsar batch of MsgCount messages.
		// Compressed beyond the max message size: clients drop bigger frames.
		var present []uint64
		if cs.readCompacted && cs.sub == nil {
			// A compacted reader gets a batch compaction rewrote with
			// gaps at its full span, the gaps marked acknowledged in the
			// ack set: each kept message keeps its raw batch index and
			// exact Message.Index(). Not for durable subscriptions: the
			// Go client, without batch-index acks, acknowledges a batch
			// only once every message of it was acknowledged, and it
			// never counts the skipped ones (docs/compaction.md).
			stored, present, err = convert.AppendKafkaToPulsarSpan(nil, &d.Entry, cs.c.h.cfg.MaxMessageSize)
		} else {
			stored, err = convert.AppendKafkaToPulsar(nil, &d.Entry, cs.c.h.cfg.MaxMessageSize)
		}
		if err != nil {
			cs.c.log.Warn("Kafka entry not converted", "topic", cs.part.Name().String(), "position", d.Entry.Position, "err", err)
			return fmt.Errorf("pulsar: entry %v not converted: %w", d.Entry.Position, err)
		}
		if present != nil {
			msg.AckSet = andAckSets(msg.AckSet, present)
		} else if cs.readCompacted {
			deltas := convert.CompactedDeltas(&d.Entry)
			if deltas != nil && len(d.AckSet) > 0 {
				// The cursor's ack set numbers the raw batch; this
				// batch holds only the kept messages.
				msg.AckSet = keptAckSet(d.AckSet, deltas)
			}
			cs.noteSent(d.Entry.Position, deltas)
		}
	} else if cs.readCompacted {
		cs.noteSent(d.Entry.Position, nil)
	}
	f, err := appendFrame(make([]byte, 0, len(stored)+128), &pb.BaseCommand{Type: pb.BaseCommand_MESSAGE.Enum(), Message: msg}, bem, stored)
	if err != nil {
		return err
	}
	if err := cs.c.enqueue(ctx, f); err != nil {
		return err
	}
	return nil
}

// andAckSets returns the wire ack set of messages unacknowledged in
// cursor (nil: all of them) and present in present (bit set: deliver).
func andAckSets(cursor []int64, present []uint64) []int64 {
	out := make([]int64, len(present))
	for i, w := range present {
		if cursor != nil {
			if i >= len(cursor) {
				w = 0
			} else {
				w &= uint64(cursor[i])
			}
		}
		out[i] = int64(w)
	}
	return out
}

// Writable implements broker.WritableSink: the connection's outgoing
// queue is not full.
func (cs *consumer) Writable() bool {
	b := &cs.c.budget
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used < b.max
}

// ActiveChanged implements broker.ConsumerSink.
func (cs *consumer) ActiveChanged(active bool) {
	cs.active.Store(active)
	if cs.ready.Load() && cs.subType == broker.SubFailover {
		cs.notifyActive(active)
	}
}

func (cs *consumer) notifyActive(active bool) {
	seq := cs.notifySeq.Add(1)
	f, _ := appendFrame(nil, &pb.BaseCommand{Type: pb.BaseCommand_ACTIVE_CONSUMER_CHANGE.Enum(),
		ActiveConsumerChange: &pb.CommandActiveConsumerChange{ConsumerId: proto.Uint64(cs.id), IsActive: proto.Bool(active)}}, nil, nil)
	// Never block here: the dispatcher registry may be locked.
	go func() {
		cs.notifyMu.Lock()
		defer cs.notifyMu.Unlock()
		if seq < cs.notifySent {
			return
		}
		cs.notifySent = seq
		cs.c.enqueue(context.Background(), f)
	}()
}

// stop detaches the consumer from its dispatcher and partition. Idempotent.
func (cs *consumer) stop() {
	cs.stopOnce.Do(func() {
		if cs.handle != nil {
			cs.handle.Close()
			return
		}
		cs.disp.RemoveConsumer(cs.dc)
		cs.disp.Close()
		cs.detach()
	})
}

// PartitionClosed implements broker.PartitionClosedSink: the partition
// closed (topic deleted, broker closing), so the client is told to
// re-subscribe (to a new partition if any), whichever handler's consumer
// created the shared dispatcher.
func (cs *consumer) PartitionClosed() {
	if cs.attached.Load() {
		cs.closeByBroker()
	}
}

// closeByBroker removes the consumer and tells the client (CLOSE_CONSUMER),
// which then re-subscribes.
func (cs *consumer) closeByBroker() {
	cs.c.mu.Lock()
	registered := cs.c.mu.consumers[cs.id] == cs
	if registered {
		delete(cs.c.mu.consumers, cs.id)
	}
	cs.c.mu.Unlock()
	cs.stop()
	if !registered {
		return // closed already (by the client or an earlier call)
	}
	cs.c.send(&pb.BaseCommand{Type: pb.BaseCommand_CLOSE_CONSUMER.Enum(), CloseConsumer: &pb.CommandCloseConsumer{
		ConsumerId: proto.Uint64(cs.id), RequestId: proto.Uint64(0),
	}})
}

func (c *conn) consumer(id uint64) *consumer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.consumers[id]
}

func (c *conn) handleFlow(cmd *pb.CommandFlow) error {
	if cs := c.consumer(cmd.GetConsumerId()); cs != nil {
		if !cs.ready.Swap(true) && cs.subType == broker.SubFailover {
			cs.notifyActive(cs.active.Load())
		}
		cs.disp.Flow(cs.dc, int64(cmd.GetMessagePermits()))
	}
	return nil
}

func ackSetWords(s []int64) []uint64 {
	out := make([]uint64, len(s))
	for i, w := range s {
		out[i] = uint64(w)
	}
	return out
}

// keptAckSet turns a raw batch's ack set (bit i set: message i
// unacknowledged) into that of the batch of its kept records, the k-th of
// which has offset delta deltas[k] (as wire words).
func keptAckSet(raw []uint64, deltas []int64) []int64 {
	out := make([]int64, (len(deltas)+63)/64)
	for k, d := range deltas {
		if d/64 < int64(len(raw)) && raw[d/64]&(1<<(d%64)) != 0 {
			out[k/64] |= 1 << (k % 64)
		}
	}
	return out
}

// noteSent records how a durable readCompacted consumer's delivery of
// pos numbers its messages (sent).
func (cs *consumer) noteSent(pos broker.Position, deltas []int64) {
	if cs.sub == nil {
		return
	}
	cs.sentMu.Lock()
	defer cs.sentMu.Unlock()
	if cs.sent == nil {
		cs.sent = make(map[broker.Position][]int64)
	}
	cs.sent[pos] = deltas
}

// forgetSent drops what sent knows of entries the cursor holds wholly
// acknowledged among positions (and, with upTo set, of every entry up to
// it: a cumulative acknowledgement).
func (cs *consumer) forgetSent(positions []broker.Position, upTo *broker.Position) {
	if cs.sub == nil || !cs.readCompacted {
		return
	}
	cur := cs.disp.Cursor()
	cs.sentMu.Lock()
	defer cs.sentMu.Unlock()
	for _, p := range positions {
		if _, ok := cs.sent[p]; ok && cur.IsAcked(p) {
			delete(cs.sent, p)
		}
	}
	if upTo != nil {
		for p := range cs.sent {
			if !upTo.Less(p) {
				delete(cs.sent, p)
			}
		}
	}
}

// rawAckSet turns the ack set a durable readCompacted consumer sent for
// pos into the raw batch's, which the cursor keeps. When it was sent the
// view's entry there, a batch of the records compaction kept numbered
// consecutively, kept record k is raw message deltas[k] and removed
// messages count as acknowledged; when it was sent the raw entry (before a
// compaction rewrote it) the set is the raw one already. ok is false when
// the consumer does not know what it was sent and the view rewrote the
// entry (an acknowledgement sent after a reconnect for a message received
// before): the acknowledgement is dropped, so the messages come again
// rather than risk taking unacknowledged ones as acknowledged.
func (cs *consumer) rawAckSet(ctx context.Context, pos broker.Position, set []uint64) ([]uint64, bool) {
	if !cs.readCompacted || cs.sub == nil {
		return set, true
	}
	cs.sentMu.Lock()
	deltas, known := cs.sent[pos]
	cs.sentMu.Unlock()
	e, ok, err := cs.part.CompactedEntryAt(ctx, pos)
	if err != nil || !ok {
		return set, true
	}
	kept := convert.CompactedDeltas(&e)
	if kept == nil {
		return set, true // the view's entry is the raw one
	}
	if !known {
		return nil, false
	}
	raw := set
	if deltas != nil {
		raw = make([]uint64, (e.MsgCount+63)/64)
		for k, d := range deltas {
			if k/64 < len(set) && set[k/64]&(1<<(k%64)) != 0 {
				raw[d/64] |= 1 << (d % 64)
			}
		}
	}
	// Messages compaction removed since count as acknowledged: nobody is
	// sent them again.
	out := make([]uint64, (e.MsgCount+63)/64)
	for _, d := range kept {
		if d/64 < int64(len(raw)) && raw[d/64]&(1<<(d%64)) != 0 {
			out[d/64] |= 1 << (d % 64)
		}
	}
	return out, true
}

func (c *conn) handleAck(ctx context.Context, cmd *pb.CommandAck) error {
	cs := c.consumer(cmd.GetConsumerId())
	var err error
	var last broker.Position
	if cs != nil {
		last = cs.part.LastConfirmed()
	}
	// Acknowledgements of entries that do not exist yet are ignored: they
	// would only pile up in the cursor.
	beyond := func(pos broker.Position) bool { return last.Less(pos) }
	if cs == nil {
		err = fmt.Errorf("%w: %d", errConsumerNotFound, cmd.GetConsumerId())
	} else if cmd.TxnidLeastBits != nil || cmd.GetTxnidMostBits() != 0 {
		err = c.txnAck(ctx, cs, cmd, beyond)
	} else if cmd.GetAckType() == pb.CommandAck_Cumulative {
		for _, m := range cmd.GetMessageId() {
			pos := wirePosition(m)
			if beyond(pos) {
				continue
			}
			if len(m.GetAckSet()) > 0 {
				// Everything before the entry, and part of the entry.
				before := broker.Position{LedgerID: pos.LedgerID, EntryID: pos.EntryID - 1}
				if err = cs.disp.AckCumulative(ctx, before); err == nil {
					if set, ok := cs.rawAckSet(ctx, pos, ackSetWords(m.GetAckSet())); ok {
						err = cs.disp.AckBatchIndex(ctx, pos, set)
					}
				}
				cs.forgetSent([]broker.Position{pos}, &before)
			} else {
				err = cs.disp.AckCumulative(ctx, pos)
				cs.forgetSent(nil, &pos)
			}
		}
	} else {
		var whole []broker.Position
		for _, m := range cmd.GetMessageId() {
			pos := wirePosition(m)
			if beyond(pos) {
				continue
			}
			if len(m.GetAckSet()) > 0 {
				if set, ok := cs.rawAckSet(ctx, pos, ackSetWords(m.GetAckSet())); ok {
					if e := cs.disp.AckBatchIndex(ctx, pos, set); e != nil {
						err = e
					}
					cs.forgetSent([]broker.Position{pos}, nil)
				}
			} else {
				whole = append(whole, pos)
			}
		}
		if len(whole) > 0 {
			if e := cs.disp.Ack(ctx, whole...); e != nil {
				err = e
			}
			cs.forgetSent(whole, nil)
		}
	}
	if cmd.RequestId == nil {
		return nil
	}
	resp := &pb.CommandAckResponse{ConsumerId: proto.Uint64(cmd.GetConsumerId()), RequestId: proto.Uint64(cmd.GetRequestId())}
	if err != nil {
		resp.Error, resp.Message = serverError(err).Enum(), proto.String(err.Error())
	}
	return c.send(&pb.BaseCommand{Type: pb.BaseCommand_ACK_RESPONSE.Enum(), AckResponse: resp})
}

func (c *conn) handleRedeliver(cmd *pb.CommandRedeliverUnacknowledgedMessages) error {
	cs := c.consumer(cmd.GetConsumerId())
	if cs == nil {
		return nil
	}
	var positions []broker.Position
	for _, m := range cmd.GetMessageIds() {
		positions = append(positions, wirePosition(m))
	}
	cs.disp.Redeliver(cs.dc, positions)
	return nil
}

func (c *conn) handleSeek(ctx context.Context, cmd *pb.CommandSeek) error {
	reqID := cmd.GetRequestId()
	cs := c.consumer(cmd.GetConsumerId())
	if cs == nil {
		return c.sendError(reqID, fmt.Errorf("%w: %d", errConsumerNotFound, cmd.GetConsumerId()))
	}
	var pos broker.Position
	switch {
	case cmd.MessageId != nil:
		pos = wirePosition(cmd.MessageId)
		if pos.LedgerID < 0 {
			pos = broker.Earliest
		}
	case cmd.MessagePublishTime != nil:
		e, found, err := cs.part.FindByTime(ctx, int64(cmd.GetMessagePublishTime()))
		if err != nil {
			return c.sendError(reqID, err)
		}
		if found {
			pos = e.Position
		} else {
			pos = broker.Latest
		}
	default:
		return c.sendError(reqID, fmt.Errorf("%w: SEEK without message id or time", errNotAllowed))
	}
	if err := cs.disp.Reset(ctx, pos); err != nil {
		return c.sendError(reqID, err)
	}
	if cs.sub == nil && cmd.MessageId == nil {
		if pos == broker.Latest {
			lc := cs.part.LastConfirmed()
			pos = broker.Position{LedgerID: lc.LedgerID, EntryID: lc.EntryID + 1}
		}
		c.mu.Lock()
		c.mu.readerSeeks[cs.id] = pos
		c.mu.Unlock()
	}
	// As Pulsar does: the consumers are disconnected (CLOSE_CONSUMER)
	// before the SEEK is answered, so that a client sees the close first
	// and queues its next request for the consumer until it re-subscribed.
	for _, dc := range cs.disp.Consumers() {
		if other, ok := dc.Sink.(*consumer); ok {
			other.closeByBroker()
		}
	}
	return c.sendSuccess(reqID)
}

func (c *conn) handleGetLastMessageID(ctx context.Context, cmd *pb.CommandGetLastMessageId) error {
	reqID := cmd.GetRequestId()
	cs := c.consumer(cmd.GetConsumerId())
	if cs == nil {
		return c.sendError(reqID, fmt.Errorf("%w: %d", errConsumerNotFound, cmd.GetConsumerId()))
	}
	lc := cs.part.LastConfirmed()
	last := wireID(lc)
	var es []broker.Entry
	if cs.readCompacted {
		// The last message a compacted reader gets: the view's last entry
		// when nothing raw follows the view (compaction may have removed
		// the raw last entry, or rewritten it with fewer messages).
		e, covers, ok, err := cs.part.LastCompacted(ctx)
		if err != nil {
			return c.sendError(reqID, err)
		}
		switch {
		case covers && ok:
			lc, last, es = e.Position, wireID(e.Position), []broker.Entry{e}
		case covers:
			lc = broker.Position{LedgerID: lc.LedgerID, EntryID: -1}
			last = wireID(lc)
		}
	}
	if lc.EntryID >= 0 {
		if es == nil {
			var err error
			if es, err = cs.part.ReadEntries(ctx, lc, 1, 1); err != nil {
				return c.sendError(reqID, err)
			}
		}
		if len(es) == 1 && es[0].Position == lc && es[0].Format == broker.FormatPulsar {
			if md, _, err := parseStored(es[0].Data); err == nil && md.NumMessagesInBatch != nil {
				last.BatchIndex = proto.Int32(md.GetNumMessagesInBatch() - 1)
			}
		} else if len(es) == 1 && es[0].Position == lc {
			// Kafka batches are delivered as batches of their records
			// (MsgCount of them, fewer in a compacted batch; a compacted
			// reader gets them at their own batch indexes, see Deliver).
			if cs.readCompacted && cs.sub == nil {
				last.BatchIndex = proto.Int32(convert.KafkaLastBatchIndex(&es[0]))
			} else {
				last.BatchIndex = proto.Int32(max(convert.KafkaRecordCount(&es[0]), 1) - 1)
			}
		}
	}
	if idx := cs.topic.PartitionIndex(); idx >= 0 {
		last.Partition = proto.Int32(int32(idx))
	}
	resp := &pb.CommandGetLastMessageIdResponse{RequestId: proto.Uint64(reqID), LastMessageId: last,
		ConsumerMarkDeletePosition: wireID(cs.disp.Cursor().MarkDeletePosition())}
	return c.send(&pb.BaseCommand{Type: pb.BaseCommand_GET_LAST_MESSAGE_ID_RESPONSE.Enum(), GetLastMessageIdResponse: resp})
}

func (c *conn) handleUnsubscribe(ctx context.Context, cmd *pb.CommandUnsubscribe) error {
	reqID := cmd.GetRequestId()
	cs := c.consumer(cmd.GetConsumerId())
	if cs == nil {
		return c.sendError(reqID, fmt.Errorf("%w: %d", errConsumerNotFound, cmd.GetConsumerId()))
	}
	if cs.sub != nil {
		others := 0
		for _, dc := range cs.disp.Consumers() {
			if dc != cs.dc {
				others++
				if cmd.GetForce() {
					if o, ok := dc.Sink.(*consumer); ok {
						o.closeByBroker()
					}
				}
			}
		}
		if others > 0 && !cmd.GetForce() {
			return c.sendError(reqID, fmt.Errorf("%w: subscription %s has other consumers", broker.ErrInUse, cs.sub.Name()))
		}
	}
	c.mu.Lock()
	delete(c.mu.consumers, cs.id)
	c.mu.Unlock()
	cs.stop()
	if cs.sub != nil {
		if err := cs.part.DeleteSubscription(ctx, cs.sub.Name(), cmd.GetForce()); err != nil {
			return c.sendError(reqID, err)
		}
	}
	return c.sendSuccess(reqID)
}

func (c *conn) handleCloseConsumer(cmd *pb.CommandCloseConsumer) error {
	c.mu.Lock()
	cs := c.mu.consumers[cmd.GetConsumerId()]
	delete(c.mu.consumers, cmd.GetConsumerId())
	c.mu.Unlock()
	if cs != nil {
		cs.stop()
	}
	return c.sendSuccess(cmd.GetRequestId())
}
