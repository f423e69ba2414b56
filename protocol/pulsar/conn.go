package pulsar

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// serverVersion is announced in CONNECTED.
const serverVersion = "kopernik"

// protocolVersion is the highest protocol version served.
const protocolVersion = 20

var connSeq atomic.Uint64

// conn is one client connection.
type conn struct {
	h   *Handler
	nc  net.Conn
	log *slog.Logger

	out       chan []byte
	budget    byteBudget // bytes queued in out
	closed    chan struct{}
	closeOnce sync.Once
	lastRecv  atomic.Int64 // unix nanos of the last frame received

	// Graceful shutdown: draining stops the reader; inflight counts SENDs
	// not yet answered, so that their receipts go out before the close.
	draining     atomic.Bool
	drainByNanos atomic.Int64
	inflight     sync.WaitGroup

	// Set by CONNECT, then read-only.
	connected bool
	entryMeta bool           // client supports broker entry metadata
	clientVer string         // CONNECT's client_version, for statistics
	principal auth.Principal // who CONNECT authenticated (auth.go); zero with auth off

	mu struct {
		sync.Mutex
		producers map[uint64]*producer
		consumers map[uint64]*consumer
		// readerSeeks remembers where a reader (non-durable consumer) was
		// sought by time: the Go client re-subscribes with its old start id
		// after such a seek, so the re-subscription starts here instead.
		readerSeeks map[uint64]broker.Position
	}
}

func newConn(h *Handler, nc net.Conn) *conn {
	c := &conn{h: h, nc: nc,
		log:    h.log.With("conn", fmt.Sprintf("%d/%s", connSeq.Add(1), nc.RemoteAddr())),
		out:    make(chan []byte, outFrames),
		closed: make(chan struct{}),
	}
	c.budget.max = h.cfg.ConnectionBufferBytes
	c.budget.wake = make(chan struct{})
	c.mu.producers = make(map[uint64]*producer)
	c.mu.consumers = make(map[uint64]*consumer)
	c.mu.readerSeeks = make(map[uint64]broker.Position)
	return c
}

// outFrames bounds the frames queued per connection (bytes are bounded by
// the byte budget).
const outFrames = 4096

// byteBudget counts queued bytes; acquire blocks while the budget is spent.
type byteBudget struct {
	mu   sync.Mutex
	used int
	max  int
	wake chan struct{} // closed and replaced on every release
}

func (b *byteBudget) acquire(ctx context.Context, n int, closed <-chan struct{}) error {
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.max {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-closed:
			return net.ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *byteBudget) release(n int) {
	b.mu.Lock()
	b.used -= n
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}

// close closes the network connection; serve then cleans up.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.nc.Close()
	})
}

func (c *conn) serve() {
	defer c.cleanup()
	defer c.close()
	defer func() {
		// Defence in depth: a handler bug triggered by one client's bytes
		// ends that connection, not the broker.
		if r := recover(); r != nil {
			c.log.Error("panic serving connection", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	go c.writeLoop()
	go c.keepalive()
	r := bufio.NewReaderSize(c.nc, 64<<10)
	maxFrame := c.h.cfg.MaxMessageSize + framePadding
	var buf []byte
	for {
		body, err := readFrame(r, maxFrame, buf)
		if err != nil {
			if c.draining.Load() {
				c.drain()
				return
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.log.Info("closing connection", "err", err)
			}
			return
		}
		c.lastRecv.Store(time.Now().UnixNano())
		cmd, payload, err := parseFrame(body)
		if err != nil {
			c.log.Info("closing connection on bad frame", "err", err)
			return
		}
		// SEND keeps the payload beyond this iteration: give it its own
		// buffer; otherwise reuse the read buffer.
		if cmd.GetType() == pb.BaseCommand_SEND {
			buf = nil
		} else {
			buf = body
		}
		if err := c.handle(cmd, payload); err != nil {
			c.log.Info("closing connection", "command", cmd.GetType().String(), "err", err)
			return
		}
	}
}

// shutdown starts a graceful close: the reader stops taking commands, the
// receipts of SENDs already read are written, then the connection closes.
// deadline bounds the wait.
func (c *conn) shutdown(deadline time.Time) {
	c.drainByNanos.Store(deadline.UnixNano())
	c.draining.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

// drain waits (until the shutdown deadline) for in-flight SENDs to be
// answered and the outgoing queue to be written.
func (c *conn) drain() {
	deadline := time.Unix(0, c.drainByNanos.Load())
	done := make(chan struct{})
	go func() {
		c.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-c.closed:
		return
	case <-time.After(time.Until(deadline)):
		return
	}
	for time.Now().Before(deadline) {
		c.budget.mu.Lock()
		empty := c.budget.used == 0
		c.budget.mu.Unlock()
		if empty {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// writeLoop writes queued frames, flushing when the queue runs dry.
func (c *conn) writeLoop() {
	w := bufio.NewWriterSize(c.nc, 64<<10)
	for {
		var f []byte
		select {
		case f = <-c.out:
		case <-c.closed:
			return
		}
		_, err := w.Write(f)
		c.budget.release(len(f))
		if err != nil {
			c.close()
			return
		}
	drain:
		for {
			select {
			case f = <-c.out:
				_, err := w.Write(f)
				c.budget.release(len(f))
				if err != nil {
					c.close()
					return
				}
			default:
				break drain
			}
		}
		if err := w.Flush(); err != nil {
			c.close()
			return
		}
	}
}

// keepalive pings a client silent for a whole interval and drops it when
// the next interval brings nothing either (not even the PONG).
func (c *conn) keepalive() {
	iv := c.h.cfg.Keepalive
	t := time.NewTicker(iv)
	defer t.Stop()
	lastTick := time.Now().UnixNano()
	pinged := false
	for {
		select {
		case <-c.closed:
			return
		case <-t.C:
		}
		heard := c.lastRecv.Load() > lastTick
		lastTick = time.Now().UnixNano()
		switch {
		case heard:
			pinged = false
		case pinged:
			c.log.Info("closing silent connection", "keepalive", iv)
			c.close()
			return
		default:
			pinged = true
			c.send(&pb.BaseCommand{Type: pb.BaseCommand_PING.Enum(), Ping: &pb.CommandPing{}})
		}
	}
}

// enqueue queues a frame, blocking while the queue is full (backpressure)
// until ctx ends or the connection closes.
func (c *conn) enqueue(ctx context.Context, f []byte) error {
	if err := c.budget.acquire(ctx, len(f), c.closed); err != nil {
		return err
	}
	select {
	case c.out <- f:
		return nil
	case <-c.closed:
		c.budget.release(len(f))
		return net.ErrClosed
	case <-ctx.Done():
		c.budget.release(len(f))
		return ctx.Err()
	}
}

// send queues a command frame (no payload).
func (c *conn) send(cmd *pb.BaseCommand) error {
	f, err := appendFrame(nil, cmd, nil, nil)
	if err != nil {
		return err
	}
	return c.enqueue(context.Background(), f)
}

func (c *conn) sendError(reqID uint64, err error) error {
	return c.send(&pb.BaseCommand{Type: pb.BaseCommand_ERROR.Enum(), Error: &pb.CommandError{
		RequestId: proto.Uint64(reqID), Error: serverError(err).Enum(), Message: proto.String(broker.Reason(err)),
	}})
}

func (c *conn) sendSuccess(reqID uint64) error {
	return c.send(&pb.BaseCommand{Type: pb.BaseCommand_SUCCESS.Enum(), Success: &pb.CommandSuccess{RequestId: proto.Uint64(reqID)}})
}

// cleanup releases producers and consumers after the connection ended.
func (c *conn) cleanup() {
	c.mu.Lock()
	producers := c.mu.producers
	consumers := c.mu.consumers
	c.mu.producers = map[uint64]*producer{}
	c.mu.consumers = map[uint64]*consumer{}
	c.mu.Unlock()
	for _, p := range producers {
		p.stop()
	}
	for _, cs := range consumers {
		cs.stop()
	}
}

// handle serves one command. An error closes the connection.
func (c *conn) handle(cmd *pb.BaseCommand, payload []byte) error {
	t := cmd.GetType()
	c.h.metrics.commands.WithLabelValues(t.String()).Inc()
	if !c.connected && t != pb.BaseCommand_CONNECT {
		return fmt.Errorf("%s before CONNECT", t)
	}
	// BaseCommand field N holds the body of command type N. A command
	// without its body is malformed (PING and PONG bodies are empty).
	if t != pb.BaseCommand_PING && t != pb.BaseCommand_PONG {
		if fd := cmd.ProtoReflect().Descriptor().Fields().ByNumber(protoreflect.FieldNumber(t)); fd != nil && !cmd.ProtoReflect().Has(fd) {
			return fmt.Errorf("%w: %s without its body", errBadFrame, t)
		}
	}
	ctx := context.Background()
	switch t {
	case pb.BaseCommand_CONNECT:
		return c.handleConnect(cmd.GetConnect())
	case pb.BaseCommand_PING:
		return c.send(&pb.BaseCommand{Type: pb.BaseCommand_PONG.Enum(), Pong: &pb.CommandPong{}})
	case pb.BaseCommand_PONG:
		return nil
	case pb.BaseCommand_PARTITIONED_METADATA:
		return c.handlePartitionedMetadata(ctx, cmd.GetPartitionMetadata())
	case pb.BaseCommand_LOOKUP:
		return c.handleLookup(ctx, cmd.GetLookupTopic())
	case pb.BaseCommand_PRODUCER:
		return c.handleProducer(ctx, cmd.GetProducer())
	case pb.BaseCommand_SEND:
		return c.handleSend(cmd.GetSend(), payload)
	case pb.BaseCommand_CLOSE_PRODUCER:
		return c.handleCloseProducer(cmd.GetCloseProducer())
	case pb.BaseCommand_SUBSCRIBE:
		return c.handleSubscribe(ctx, cmd.GetSubscribe())
	case pb.BaseCommand_FLOW:
		return c.handleFlow(cmd.GetFlow())
	case pb.BaseCommand_ACK:
		return c.handleAck(ctx, cmd.GetAck())
	case pb.BaseCommand_REDELIVER_UNACKNOWLEDGED_MESSAGES:
		return c.handleRedeliver(cmd.GetRedeliverUnacknowledgedMessages())
	case pb.BaseCommand_SEEK:
		return c.handleSeek(ctx, cmd.GetSeek())
	case pb.BaseCommand_GET_LAST_MESSAGE_ID:
		return c.handleGetLastMessageID(ctx, cmd.GetGetLastMessageId())
	case pb.BaseCommand_UNSUBSCRIBE:
		return c.handleUnsubscribe(ctx, cmd.GetUnsubscribe())
	case pb.BaseCommand_CLOSE_CONSUMER:
		return c.handleCloseConsumer(cmd.GetCloseConsumer())
	case pb.BaseCommand_GET_TOPICS_OF_NAMESPACE:
		return c.handleGetTopicsOfNamespace(ctx, cmd.GetGetTopicsOfNamespace())
	case pb.BaseCommand_GET_SCHEMA:
		return c.handleGetSchema(ctx, cmd.GetGetSchema())
	case pb.BaseCommand_TC_CLIENT_CONNECT_REQUEST:
		return c.handleTcClientConnect(ctx, cmd.GetTcClientConnectRequest())
	case pb.BaseCommand_NEW_TXN:
		return c.handleNewTxn(ctx, cmd.GetNewTxn())
	case pb.BaseCommand_ADD_PARTITION_TO_TXN:
		return c.handleAddPartitionToTxn(ctx, cmd.GetAddPartitionToTxn())
	case pb.BaseCommand_ADD_SUBSCRIPTION_TO_TXN:
		return c.handleAddSubscriptionToTxn(ctx, cmd.GetAddSubscriptionToTxn())
	case pb.BaseCommand_END_TXN:
		return c.handleEndTxn(ctx, cmd.GetEndTxn())
	case pb.BaseCommand_GET_OR_CREATE_SCHEMA:
		return c.handleGetOrCreateSchema(ctx, cmd.GetGetOrCreateSchema())
	}
	// Unserved command. Request-style commands (consumer stats,
	// transactions, topic watchers, ...) carry request_id as field 1 of
	// their body: answer ERROR so that the client fails fast instead of
	// timing out. Others are ignored.
	if reqID, ok := unknownRequestID(cmd, t); ok {
		return c.sendError(reqID, fmt.Errorf("%w: command %s is not supported", errNotAllowed, t))
	}
	c.log.Warn("ignoring unsupported command", "command", t.String())
	return nil
}

// unknownRequestID finds field 1 (a varint) of the undecoded body of
// command type t, which is BaseCommand field t.
func unknownRequestID(cmd *pb.BaseCommand, t pb.BaseCommand_Type) (uint64, bool) {
	if t == pb.BaseCommand_AUTH_RESPONSE || t == pb.BaseCommand_AUTH_CHALLENGE {
		return 0, false
	}
	raw := cmd.ProtoReflect().GetUnknown()
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return 0, false
		}
		raw = raw[n:]
		if num == protowire.Number(t) && typ == protowire.BytesType {
			body, m := protowire.ConsumeBytes(raw)
			if m < 0 {
				return 0, false
			}
			for len(body) > 0 {
				fnum, ftyp, k := protowire.ConsumeTag(body)
				if k < 0 {
					return 0, false
				}
				body = body[k:]
				if fnum == 1 && ftyp == protowire.VarintType {
					v, k := protowire.ConsumeVarint(body)
					return v, k >= 0
				}
				k = protowire.ConsumeFieldValue(fnum, ftyp, body)
				if k < 0 {
					return 0, false
				}
				body = body[k:]
			}
			return 0, false
		}
		n = protowire.ConsumeFieldValue(num, typ, raw)
		if n < 0 {
			return 0, false
		}
		raw = raw[n:]
	}
	return 0, false
}

func (c *conn) handleConnect(cmd *pb.CommandConnect) error {
	if c.connected {
		return errors.New("duplicate CONNECT")
	}
	if err := c.authenticate(cmd); err != nil {
		return err
	}
	c.connected = true
	c.entryMeta = cmd.GetFeatureFlags().GetSupportsBrokerEntryMetadata()
	c.clientVer = cmd.GetClientVersion()
	pv := min(cmd.GetProtocolVersion(), protocolVersion)
	return c.send(&pb.BaseCommand{Type: pb.BaseCommand_CONNECTED.Enum(), Connected: &pb.CommandConnected{
		ServerVersion:   proto.String(serverVersion),
		ProtocolVersion: proto.Int32(pv),
		MaxMessageSize:  proto.Int32(int32(c.h.cfg.MaxMessageSize)),
		FeatureFlags:    &pb.FeatureFlags{SupportsBrokerEntryMetadata: proto.Bool(true)},
	}})
}

func (c *conn) handlePartitionedMetadata(ctx context.Context, cmd *pb.CommandPartitionedTopicMetadata) error {
	reqID := cmd.GetRequestId()
	fail := func(err error) error {
		return c.send(&pb.BaseCommand{Type: pb.BaseCommand_PARTITIONED_METADATA_RESPONSE.Enum(),
			PartitionMetadataResponse: &pb.CommandPartitionedTopicMetadataResponse{
				RequestId: proto.Uint64(reqID), Response: pb.CommandPartitionedTopicMetadataResponse_Failed.Enum(),
				Error: serverError(err).Enum(), Message: proto.String(broker.Reason(err)),
			}})
	}
	if isTCAssign(cmd.GetTopic()) {
		// One transaction coordinator (0), when it can start.
		if _, err := c.h.transactions(ctx); err != nil {
			return fail(err)
		}
		return c.send(&pb.BaseCommand{Type: pb.BaseCommand_PARTITIONED_METADATA_RESPONSE.Enum(),
			PartitionMetadataResponse: &pb.CommandPartitionedTopicMetadataResponse{
				RequestId: proto.Uint64(reqID), Partitions: proto.Uint32(1),
				Response: pb.CommandPartitionedTopicMetadataResponse_Success.Enum(),
			}})
	}
	name, err := c.h.topicName(cmd.GetTopic())
	if err != nil {
		return fail(err)
	}
	if err := c.authorizeTopic(ctx, name, auth.NeedLookup); err != nil {
		return fail(err)
	}
	md, err := c.h.env.Broker.LookupTopic(ctx, name, true)
	partitions := 0
	switch {
	case errors.Is(err, broker.ErrTopicNotFound):
		// Not there and not auto-created: Pulsar answers 0 partitions and
		// lets PRODUCER/SUBSCRIBE fail with TopicNotFound.
	case err != nil:
		return fail(err)
	case md.Name == name:
		partitions = md.Partitions
	}
	return c.send(&pb.BaseCommand{Type: pb.BaseCommand_PARTITIONED_METADATA_RESPONSE.Enum(),
		PartitionMetadataResponse: &pb.CommandPartitionedTopicMetadataResponse{
			RequestId: proto.Uint64(reqID), Partitions: proto.Uint32(uint32(partitions)),
			Response: pb.CommandPartitionedTopicMetadataResponse_Success.Enum(),
		}})
}

func (c *conn) handleLookup(ctx context.Context, cmd *pb.CommandLookupTopic) error {
	reqID := cmd.GetRequestId()
	name, err := c.h.topicName(cmd.GetTopic())
	if err == nil {
		err = c.authorizeTopic(ctx, name, auth.NeedLookup)
	}
	if err != nil {
		return c.send(&pb.BaseCommand{Type: pb.BaseCommand_LOOKUP_RESPONSE.Enum(), LookupTopicResponse: &pb.CommandLookupTopicResponse{
			RequestId: proto.Uint64(reqID), Response: pb.CommandLookupTopicResponse_Failed.Enum(),
			Error: serverError(err).Enum(), Message: proto.String(broker.Reason(err)),
		}})
	}
	if cl := c.h.env.Broker.Cluster(); cl != nil && !isTCAssign(cmd.GetTopic()) {
		// Cluster: the owner serves the topic (assigned now if nobody
		// does); the client connects there, as Pulsar's authoritative
		// lookup answer tells it to.
		owner, err := cl.Owner(ctx, name)
		if err != nil || owner.Pulsar == "" {
			if err == nil {
				err = fmt.Errorf("%w: owner %s of %s has no Pulsar listener", broker.ErrNotOwner, owner.Name, name)
			}
			return c.send(&pb.BaseCommand{Type: pb.BaseCommand_LOOKUP_RESPONSE.Enum(), LookupTopicResponse: &pb.CommandLookupTopicResponse{
				RequestId: proto.Uint64(reqID), Response: pb.CommandLookupTopicResponse_Failed.Enum(),
				Error: pb.ServerError_ServiceNotReady.Enum(), Message: proto.String(broker.Reason(err)),
			}})
		}
		if owner.NodeID != cl.Self().NodeID {
			return c.send(&pb.BaseCommand{Type: pb.BaseCommand_LOOKUP_RESPONSE.Enum(), LookupTopicResponse: &pb.CommandLookupTopicResponse{
				RequestId: proto.Uint64(reqID), Response: pb.CommandLookupTopicResponse_Connect.Enum(),
				BrokerServiceUrl: proto.String("pulsar://" + owner.Pulsar), Authoritative: proto.Bool(true),
			}})
		}
	}
	// This broker owns the topic (standalone: every topic).
	return c.send(&pb.BaseCommand{Type: pb.BaseCommand_LOOKUP_RESPONSE.Enum(), LookupTopicResponse: &pb.CommandLookupTopicResponse{
		RequestId: proto.Uint64(reqID), Response: pb.CommandLookupTopicResponse_Connect.Enum(),
		BrokerServiceUrl: proto.String(c.h.advertisedURL()), BrokerServiceUrlTls: c.h.advertisedTLSURL(), Authoritative: proto.Bool(true),
	}})
}
