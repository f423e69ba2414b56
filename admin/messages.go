package admin

// Reading one stored entry, as Pulsar's PersistentTopicsBase serves it:
//
//	GET .../{topic}/ledger/{ledgerId}/entry/{entryId}   by message id (getMessageById)
//	GET .../{topic}/subscription/{sub}/position/{n}     peek: the n-th (from 1) unacknowledged
//	                                                   entry of the subscription (peekNthMessage)
//	GET .../{topic}/examinemessage?initialPosition=earliest|latest&messagePosition=n
//	                                                   the n-th entry from the start or the end
//	                                                   (default latest, 1; examineMessage)
//
// The body is the entry's payload after its MessageMetadata, decompressed
// (for a batch: the concatenated [size][SingleMessageMetadata][payload]
// records); the metadata travels in X-Pulsar-* headers, as Pulsar's
// generateResponseWithEntry writes them. Entries written by Kafka producers
// are converted to Pulsar's format first, as a Pulsar consumer reads them.
// Positions count entries (a batch is one), as Pulsar's do.

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/convert"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

func (s *server) messageRoutes(mux *router) {
	mux.HandleFunc("GET "+topicBase+"/{topic}/ledger/{ledger}/entry/{entry}", s.messageByID)
	mux.HandleFunc("GET "+topicBase+"/{topic}/subscription/{sub}/position/{n}", s.peekMessage)
	mux.HandleFunc("GET "+topicBase+"/{topic}/examinemessage", s.examineMessage)
}

// peekMessage answers the n-th unacknowledged entry of a subscription.
func (s *server) peekMessage(w http.ResponseWriter, r *http.Request) {
	name, err := topicOf(r)
	n, perr := strconv.ParseInt(r.PathValue("n"), 10, 64)
	if err == nil && (perr != nil || n < 1) {
		err = fmt.Errorf("%w: message position %q: want a number >= 1", errBadRequest, r.PathValue("n"))
	}
	var p *broker.Partition
	if err == nil {
		p, err = s.svc.OpenPartition(r.Context(), name, false)
	}
	var sub *broker.Subscription
	if err == nil {
		sub, err = p.Subscription(r.Context(), r.PathValue("sub"), false, broker.InitialLatest)
	}
	var e broker.Entry
	if err == nil {
		e, err = nthUnacked(r, p, sub.Cursor(), n)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer e.Release()
	s.writeEntry(w, r, p, e)
}

// nthUnacked finds the n-th (from 1) entry after the cursor's mark-delete
// position that is not individually acknowledged.
func nthUnacked(r *http.Request, p *broker.Partition, c *broker.Cursor, n int64) (broker.Entry, error) {
	from := c.MarkDeletePosition()
	from.EntryID++
	for {
		es, err := p.ReadEntries(r.Context(), from, 100, 4<<20)
		if err != nil {
			return broker.Entry{}, err
		}
		if len(es) == 0 {
			return broker.Entry{}, fmt.Errorf("%w: Could not find the message at position %d", broker.ErrOffsetOutOfRange, n)
		}
		var found *broker.Entry
		for i := range es {
			if found == nil && !c.IsAcked(es[i].Position) {
				if n--; n == 0 {
					found = &es[i]
					continue
				}
			}
			es[i].Release()
		}
		if found != nil {
			return *found, nil
		}
		last := es[len(es)-1].Position
		from = broker.Position{LedgerID: last.LedgerID, EntryID: last.EntryID + 1}
	}
}

// examineMessage answers the n-th entry from the earliest or the latest.
func (s *server) examineMessage(w http.ResponseWriter, r *http.Request) {
	name, err := topicOf(r)
	q := r.URL.Query()
	initial := q.Get("initialPosition")
	if initial == "" {
		initial = "latest"
	}
	n := int64(1)
	if v := q.Get("messagePosition"); v != "" {
		var perr error
		if n, perr = strconv.ParseInt(v, 10, 64); perr != nil || n < 1 {
			err = fmt.Errorf("%w: messagePosition %q: want a number >= 1", errBadRequest, v)
		}
	}
	if err == nil && initial != "latest" && initial != "earliest" {
		err = fmt.Errorf("%w: initialPosition %q: want earliest or latest", errBadRequest, initial)
	}
	var p *broker.Partition
	if err == nil {
		p, err = s.svc.OpenPartition(r.Context(), name, false)
	}
	var pos broker.Position
	if err == nil {
		pos, err = nthEntry(r.Context(), p, initial == "latest", n)
	}
	var es []broker.Entry
	if err == nil {
		es, err = p.ReadEntries(r.Context(), pos, 1, 1)
	}
	if err == nil && (len(es) == 0 || es[0].Position != pos) {
		err = fmt.Errorf("%w: Could not find the message at position %d", broker.ErrOffsetOutOfRange, n)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer es[0].Release()
	s.writeEntry(w, r, p, es[0])
}

// nthEntry is the position of the n-th (from 1) retained entry from the
// start, or from the end with fromEnd. A ledger's entries are numbered from
// 0; the first retained one may be past the start of its ledger (Kafka
// DeleteRecords), so the start is found by message index.
func nthEntry(ctx context.Context, p *broker.Partition, fromEnd bool, n int64) (broker.Position, error) {
	notFound := fmt.Errorf("%w: Could not find the message at position %d", broker.ErrOffsetOutOfRange, n)
	if p.FirstIndex() == p.NextIndex() {
		return broker.Position{}, notFound
	}
	if !fromEnd {
		from, err := p.PositionOf(p.FirstIndex())
		for left := n; err == nil; {
			var es []broker.Entry
			if es, err = p.ReadEntries(ctx, from, int(min(left, 100)), 4<<20); err != nil || len(es) == 0 {
				break
			}
			for i := range es {
				es[i].Release()
			}
			if left <= int64(len(es)) {
				return es[left-1].Position, nil
			}
			left -= int64(len(es))
			last := es[len(es)-1].Position
			from = broker.Position{LedgerID: last.LedgerID, EntryID: last.EntryID + 1}
		}
		if err != nil {
			return broker.Position{}, err
		}
		return broker.Position{}, notFound
	}
	ledgers := p.Stats().Ledgers
	skip := n - 1
	for i := len(ledgers) - 1; i >= 0; i-- {
		if l := ledgers[i]; skip < l.Entries {
			return broker.Position{LedgerID: l.LedgerID, EntryID: l.Entries - 1 - skip}, nil
		} else {
			skip -= l.Entries
		}
	}
	return broker.Position{}, notFound
}

func (s *server) messageByID(w http.ResponseWriter, r *http.Request) {
	name, err := topicOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ledger, err1 := strconv.ParseInt(r.PathValue("ledger"), 10, 64)
	entry, err2 := strconv.ParseInt(r.PathValue("entry"), 10, 64)
	if err1 != nil || err2 != nil || ledger < 0 || entry < 0 {
		writeReason(w, http.StatusPreconditionFailed, "Invalid message id")
		return
	}
	p, err := s.svc.OpenPartition(r.Context(), name, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	want := broker.Position{LedgerID: ledger, EntryID: entry}
	es, err := p.ReadEntries(r.Context(), want, 1, 1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(es) == 0 || es[0].Position != want {
		writeReason(w, http.StatusNotFound, fmt.Sprintf("Message id %d:%d not found", ledger, entry))
		return
	}
	defer es[0].Release()
	s.writeEntry(w, r, p, es[0])
}

// writeEntry answers e as Pulsar does: the payload as the body, the
// metadata in X-Pulsar-* headers. A Kafka batch is converted first.
func (s *server) writeEntry(w http.ResponseWriter, r *http.Request, p *broker.Partition, e broker.Entry) {
	stored := e.Data
	if e.Format != broker.FormatPulsar {
		var err error
		if stored, err = convert.AppendKafkaToPulsar(nil, &e, int(p.Policies().MaxMessageBytes)); err != nil {
			s.writeError(w, r, fmt.Errorf("entry %v not converted to Pulsar's format: %w", e.Position, err))
			return
		}
	}
	md, payload, err := parseStoredEntry(stored)
	if err == nil {
		if out, derr := decompress(md, payload); derr == nil {
			payload = out
		} // else: encrypted (compressed before encryption): as stored
	}
	if err != nil {
		writeReason(w, http.StatusInternalServerError, err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Pulsar-Message-ID", fmt.Sprintf("%d:%d", e.Position.LedgerID, e.Position.EntryID))
	h.Set("X-Pulsar-publish-time", time.UnixMilli(int64(md.GetPublishTime())).UTC().Format("2006-01-02T15:04:05.000Z"))
	if md.EventTime != nil {
		h.Set("X-Pulsar-event-time", time.UnixMilli(int64(md.GetEventTime())).UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	if md.DeliverAtTime != nil {
		h.Set("X-Pulsar-deliver-at-time", time.UnixMilli(md.GetDeliverAtTime()).UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	if md.NumMessagesInBatch != nil {
		h.Set("X-Pulsar-num-batch-message", strconv.Itoa(int(md.GetNumMessagesInBatch())))
		h.Set("X-Pulsar-batch-size", strconv.Itoa(len(payload)))
	}
	if md.GetNullValue() {
		h.Set("X-Pulsar-null-value", "true")
	}
	if md.ProducerName != nil {
		h.Set("X-Pulsar-producer-name", md.GetProducerName())
	}
	h.Set("X-Pulsar-sequence-id", strconv.FormatUint(md.GetSequenceId(), 10))
	if md.PartitionKey != nil {
		h.Set("X-Pulsar-partition-key", md.GetPartitionKey())
	}
	if md.Compression != nil {
		h.Set("X-Pulsar-compression", md.GetCompression().String())
		h.Set("X-Pulsar-uncompressed-size", strconv.Itoa(int(md.GetUncompressedSize())))
	}
	if len(md.GetProperties()) > 0 {
		props := make(map[string]string, len(md.GetProperties()))
		for _, kv := range md.GetProperties() {
			props[kv.GetKey()] = kv.GetValue()
		}
		b, _ := json.Marshal(props)
		h.Set("X-Pulsar-PROPERTY", string(b))
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(payload)
}

// parseStoredEntry splits stored Pulsar bytes ([0x0e01][crc][size][MessageMetadata][payload])
// into the metadata and the (possibly compressed) payload.
func parseStoredEntry(p []byte) (*pb.MessageMetadata, []byte, error) {
	const hdr = 2 + 4 + 4
	if len(p) < hdr || binary.BigEndian.Uint16(p) != 0x0e01 {
		return nil, nil, errors.New("stored entry without 0x0e01 magic")
	}
	n := binary.BigEndian.Uint32(p[6:])
	if uint64(n) > uint64(len(p)-hdr) {
		return nil, nil, fmt.Errorf("stored entry: metadata size %d", n)
	}
	md := &pb.MessageMetadata{}
	if err := proto.Unmarshal(p[hdr:hdr+int(n)], md); err != nil {
		return nil, nil, fmt.Errorf("stored entry: message metadata: %w", err)
	}
	return md, p[hdr+int(n):], nil
}

// decompress undoes the entry's compression.
func decompress(md *pb.MessageMetadata, p []byte) ([]byte, error) {
	size := int(md.GetUncompressedSize())
	switch md.GetCompression() {
	case pb.CompressionType_NONE:
		return p, nil
	case pb.CompressionType_LZ4:
		out := make([]byte, size)
		n, err := lz4.UncompressBlock(p, out)
		return out[:n], err
	case pb.CompressionType_ZLIB:
		zr, err := zlib.NewReader(bytes.NewReader(p))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	case pb.CompressionType_ZSTD:
		d, err := zstd.NewReader(nil)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		return d.DecodeAll(p, make([]byte, 0, size))
	case pb.CompressionType_SNAPPY:
		return s2.Decode(make([]byte, size), p)
	}
	return nil, fmt.Errorf("unknown compression %v", md.GetCompression())
}
