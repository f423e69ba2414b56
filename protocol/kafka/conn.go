package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Framing: every request and response is [int32 size][payload]. A request
// payload is a header (api key, api version, correlation id, client id and,
// for flexible versions, tagged fields) and the body; a response is the
// correlation id (plus an empty tag buffer for flexible versions, except
// ApiVersions, whose response header is always v0 so that a client can read
// it before knowing what the broker speaks) and the body.
//
// Ordering: one goroutine reads and decodes frames ahead (pipelining, at
// most readAheadFrames requests and readAheadBytes bytes queued, so a
// client cannot make the broker buffer without bound); the
// connection's serving goroutine handles requests one at a time in arrival
// order and writes each response before starting the next request. Kafka
// brokers do the same, and clients rely on it: an idempotent producer's
// in-flight batches must be appended in the order they were sent.

// minHeaderSize is api key + api version + correlation id + client id length.
const minHeaderSize = 2 + 2 + 4 + 2

// Read-ahead bounds per connection. One frame larger than readAheadBytes is
// still read (up to max-request-bytes), but only when nothing else is queued.
const (
	readAheadFrames = 16
	readAheadBytes  = 16 << 20
)

// budget counts the bytes of frames read but not yet served.
type budget struct {
	mu     sync.Mutex
	cond   *sync.Cond
	used   int
	closed bool
}

func newBudget() *budget {
	b := &budget{}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// acquire waits until n more bytes fit (or nothing is queued); false once closed.
func (b *budget) acquire(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for !b.closed && b.used > 0 && b.used+n > readAheadBytes {
		b.cond.Wait()
	}
	b.used += n
	return !b.closed
}

// busy reports whether requests read are still being served.
func (b *budget) busy() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used > 0
}

func (b *budget) release(n int) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	b.cond.Broadcast()
}

func (b *budget) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cond.Broadcast()
}

// request is one decoded request, or the reason the connection must close.
type request struct {
	key, version int16
	corr         int32
	clientID     string
	req          kmsg.Request // nil for an unsupported ApiVersions version
	err          error
	size         int  // frame bytes held against the read-ahead budget
	raw          bool // a bare SASL token after SaslHandshake v0 (sasl.go)
}

// conn is one client connection.
type conn struct {
	h   *Handler
	nc  net.Conn
	log *slog.Logger

	// advHost and advPort are the advertised address of the listener the
	// connection came in on (set before serve, then read-only).
	advHost string
	advPort int32

	sasl *saslState // nil with authentication off (sasl.go)

	stop     chan struct{} // closed by stopReading
	stopOnce sync.Once
	budget   *budget

	producers connProducers // attached Kafka producers (producers.go)
}

func newConn(h *Handler, nc net.Conn) *conn {
	c := &conn{h: h, nc: nc, log: h.log.With("conn", nc.RemoteAddr().String()), stop: make(chan struct{}), budget: newBudget()}
	c.sasl = newSASLState(c)
	return c
}

// stopReading makes the reader stop after the frame it is reading; queued
// requests are still served. Used by Handler.Close.
func (c *conn) stopReading() {
	c.stopOnce.Do(func() { close(c.stop) })
	c.nc.SetReadDeadline(time.Now())
}

// serve runs the connection until the client leaves, a request is
// malformed, or the handler closes.
func (c *conn) serve(ctx context.Context) {
	defer c.nc.Close()
	defer c.sasl.stop()
	defer releaseConnShareSessions(c) // group_share.go
	defer c.closeProducers()          // producers.go
	c.h.m.connections.Inc()
	defer c.h.m.connections.Dec()
	reqs := make(chan *request, readAheadFrames)
	go c.readLoop(ctx, reqs)
	defer func() {
		// Unblock and drain the reader, whatever made us stop.
		c.budget.close()
		c.nc.Close()
		for range reqs {
		}
	}()
	defer func() {
		// Last resort: handlers and decoding recover on their own; this
		// catches the rest (response encoding, ...) so that one
		// connection's bug never takes the broker down.
		if p := recover(); p != nil {
			c.log.ErrorContext(ctx, "kafka: panic serving connection", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	var out []byte
	var iov net.Buffers
	for r := range reqs {
		if r.err != nil {
			c.log.WarnContext(ctx, "kafka: closing connection on malformed request", "err", r.err, "api_key", r.key, "api_version", r.version)
			c.h.m.closed.WithLabelValues("malformed").Inc()
			bw.Flush()
			return
		}
		start := time.Now()
		resp, err := c.handle(ctx, r)
		c.budget.release(r.size)
		api := kmsg.NameForKey(r.key)
		c.h.m.requests.WithLabelValues(api).Inc()
		c.h.m.duration.WithLabelValues(api).Observe(time.Since(start).Seconds())
		c.h.m.countErrors(api, resp)
		if err != nil {
			c.log.WarnContext(ctx, "kafka: closing connection", "err", err, "api", api, "api_version", r.version, "client_id", r.clientID)
			c.h.m.closed.WithLabelValues("error").Inc()
			bw.Flush()
			return
		}
		if resp != nil {
			if out == nil {
				out = getBuf(0)
			}
			c.nc.SetWriteDeadline(time.Now().Add(c.h.cfg.IdleTimeout))
			var err error
			if v, ok := resp.(vectoredResponse); ok && !r.raw {
				var splices []splice
				out, splices = appendResponseVectored(out[:0], r, v)
				iov, err = c.writeVectored(bw, iov, out, splices)
				v.release() // after the write: nothing refers to the spliced buffers
			} else {
				out = appendResponse(out[:0], r, resp)
				_, err = bw.Write(out)
			}
			if err != nil {
				c.log.DebugContext(ctx, "kafka: write failed", "err", err)
				return
			}
			if cap(out) > 1<<20 {
				putBuf(out) // do not pin a large response's buffer to an idle connection
				out = nil
			}
		}
		if c.sasl.failed() { // the answer to a failed authentication is the last one
			bw.Flush()
			return
		}
		if len(reqs) == 0 {
			if err := bw.Flush(); err != nil {
				c.log.DebugContext(ctx, "kafka: write failed", "err", err)
				return
			}
		}
	}
	bw.Flush()
}

// handle runs one request's handler, turning a panic into a connection
// error so that one bad request cannot take the broker down.
func (c *conn) handle(ctx context.Context, r *request) (resp kmsg.Response, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.ErrorContext(ctx, "kafka: panic serving request", "panic", p, "api", kmsg.NameForKey(r.key), "stack", string(debug.Stack()))
			resp, err = nil, fmt.Errorf("kafka: panic serving %s: %v", kmsg.NameForKey(r.key), p)
		}
	}()
	if r.req == nil { // ApiVersions at a version we do not speak (KIP-511)
		return unsupportedApiVersions(c.h.auth != nil), nil
	}
	if err := c.sasl.gate(r.key); err != nil {
		return nil, err
	}
	return apis[r.key].handle(c.sasl.context(context.WithValue(ctx, clientIDKey{}, r.clientID)), c, r.req)
}

type clientIDKey struct{}

// clientIDFrom returns the client id of the request being served (the
// request header's client_id; "" if none).
func clientIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(clientIDKey{}).(string)
	return id
}

// readLoop reads and decodes frames until EOF, an error, or stopReading.
func (c *conn) readLoop(ctx context.Context, out chan<- *request) {
	defer close(out)
	defer func() {
		if p := recover(); p != nil {
			c.log.ErrorContext(ctx, "kafka: panic decoding request", "panic", p, "stack", string(debug.Stack()))
			out <- &request{err: fmt.Errorf("panic decoding request: %v", p)}
		}
	}()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	rawLeft := 0 // bare SASL tokens expected next (SaslHandshake v0)
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.h.cfg.IdleTimeout))
		select {
		case <-c.stop:
			return
		default:
		}
		// Wait for the next frame without consuming anything, so that an
		// idle deadline can be extended safely: a connection whose
		// requests are still being served (a long poll) is not idle.
		if _, err := br.Peek(1); errors.Is(err, os.ErrDeadlineExceeded) && c.budget.busy() {
			select {
			case <-c.stop:
				return
			default:
				continue
			}
		}
		var size int
		buf, err := readFrame(br, c.h.cfg.MaxRequestBytes, func(n int) bool {
			size = n
			return c.budget.acquire(n)
		})
		if err != nil {
			switch {
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			case errors.Is(err, os.ErrDeadlineExceeded):
				select {
				case <-c.stop:
				default:
					c.log.InfoContext(ctx, "kafka: closing idle connection", "idle_timeout", c.h.cfg.IdleTimeout)
					c.h.m.closed.WithLabelValues("idle").Inc()
				}
			case errors.Is(err, errFrame):
				out <- &request{err: err}
			default:
				c.log.DebugContext(ctx, "kafka: read failed", "err", err)
			}
			return
		}
		var r *request
		if rawLeft > 0 {
			rawLeft--
			r = rawSASLRequest(buf)
		} else {
			r = decodeRequest(buf)
			rawLeft = c.sasl.rawFramesAfter(r)
		}
		r.size = size
		out <- r
		if r.err != nil {
			return
		}
	}
}

var errFrame = errors.New("kafka: bad frame")

// readFrame reads one size-prefixed frame, refusing sizes outside
// [minHeaderSize, max] before allocating anything. reserve (optional) is
// called with the size before allocation; false aborts with net.ErrClosed.
func readFrame(r io.Reader, max int, reserve func(n int) bool) ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(r, sz[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(sz[:]))
	if n < minHeaderSize || int64(n) > int64(max) {
		return nil, fmt.Errorf("%w: size %d outside [%d, %d]", errFrame, n, minHeaderSize, max)
	}
	if reserve != nil && !reserve(int(n)) {
		return nil, net.ErrClosed
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: truncated: %w", errFrame, err)
	}
	return buf, nil
}

// decodeRequest parses a frame's payload. The returned request has err set
// if the connection must close: unknown key, unserved version, bad bytes.
func decodeRequest(buf []byte) *request {
	r := &request{}
	if len(buf) < minHeaderSize {
		r.err = fmt.Errorf("%w: %d byte header", errFrame, len(buf))
		return r
	}
	r.key = int16(binary.BigEndian.Uint16(buf))
	r.version = int16(binary.BigEndian.Uint16(buf[2:]))
	r.corr = int32(binary.BigEndian.Uint32(buf[4:]))
	a, ok := apis[r.key]
	if !ok {
		r.err = fmt.Errorf("%w: unsupported api key %d", errFrame, r.key)
		return r
	}
	if r.version < a.min || r.version > a.max {
		if r.key == apiVersionsKey && r.version > a.max {
			// KIP-511: answer with v0 and the versions we do speak. The
			// rest of the request is in a format we may not know: skip it.
			r.version = 0
			return r
		}
		r.err = fmt.Errorf("%w: %s version %d not in served range %d..%d", errFrame, kmsg.NameForKey(r.key), r.version, a.min, a.max)
		return r
	}
	rest := buf[8:]
	idLen := int(int16(binary.BigEndian.Uint16(rest)))
	rest = rest[2:]
	if idLen > 0 {
		if idLen > len(rest) {
			r.err = fmt.Errorf("%w: client id length %d", errFrame, idLen)
			return r
		}
		r.clientID = string(rest[:idLen])
		rest = rest[idLen:]
	}
	req := kmsg.RequestForKey(r.key)
	req.SetVersion(r.version)
	if req.IsFlexible() {
		var err error
		if rest, err = skipTags(rest); err != nil {
			r.err = err
			return r
		}
	}
	if err := req.ReadFrom(rest); err != nil {
		r.err = fmt.Errorf("%w: decoding %s v%d: %w", errFrame, kmsg.NameForKey(r.key), r.version, err)
		return r
	}
	r.req = req
	return r
}

// skipTags skips a header's tagged fields (KIP-482); none are used.
func skipTags(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: bad tag count", errFrame)
	}
	b = b[k:]
	for range n {
		if _, k = binary.Uvarint(b); k <= 0 {
			return nil, fmt.Errorf("%w: bad tag", errFrame)
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || size > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: bad tag size", errFrame)
		}
		b = b[k+int(size):]
	}
	return b, nil
}

// appendResponse appends resp's frame to dst.
func appendResponse(dst []byte, r *request, resp kmsg.Response) []byte {
	if r.raw {
		return appendRawSASL(dst, resp)
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.corr))
	if resp.IsFlexible() && r.key != apiVersionsKey {
		dst = append(dst, 0) // empty header tag buffer
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// vectoredResponse is a response whose encoding refers to large buffers it
// does not copy (Fetch: record batches in storage's memory). The
// connection writes the frame and the splices with one writev and then
// calls release, once; the buffers must stay unchanged until then.
type vectoredResponse interface {
	kmsg.Response
	appendVectored(dst []byte, vectored bool) ([]byte, []splice)
	release()
}

// appendResponseVectored is appendResponse for a vectoredResponse: dst
// gets the frame without the splices, whose offsets are into dst.
func appendResponseVectored(dst []byte, r *request, resp vectoredResponse) ([]byte, []splice) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.corr))
	if resp.IsFlexible() && r.key != apiVersionsKey {
		dst = append(dst, 0) // empty header tag buffer
	}
	dst, splices := resp.appendVectored(dst, true)
	size := len(dst) - start - 4
	for _, s := range splices {
		size += len(s.b)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(size))
	return dst, splices
}

// writeVectored writes frame with splices inserted: on a TCP connection
// with one writev (after flushing what bw holds), elsewhere (TLS) through
// bw. iov is scratch space, returned for reuse. When it returns, nothing
// refers to frame or the splices any more.
func (c *conn) writeVectored(bw *bufio.Writer, iov net.Buffers, frame []byte, splices []splice) (net.Buffers, error) {
	iov = iov[:0]
	at := 0
	for _, s := range splices {
		if s.at > at {
			iov = append(iov, frame[at:s.at])
		}
		iov = append(iov, s.b)
		at = s.at
	}
	if at < len(frame) {
		iov = append(iov, frame[at:])
	}
	all := iov
	defer clear(all) // drop references to the buffers
	if _, ok := c.nc.(*net.TCPConn); !ok {
		for _, b := range iov {
			if _, err := bw.Write(b); err != nil {
				return all[:0], err
			}
		}
		return all[:0], nil
	}
	if err := bw.Flush(); err != nil {
		return all[:0], err
	}
	_, err := iov.WriteTo(c.nc) // consumes iov, not all
	return all[:0], err
}

// unsupportedApiVersions is the KIP-511 answer: v0, UNSUPPORTED_VERSION,
// and our ranges so the client can pick.
func unsupportedApiVersions(withAuth bool) kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = apiVersionsKeys(withAuth)
	return resp
}
