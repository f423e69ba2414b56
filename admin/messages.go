package admin

// Reading one stored entry: GET /admin/v2/persistent/{t}/{ns}/{topic}/ledger/{ledgerId}/entry/{entryId}
// (Pulsar's PersistentTopicsBase.getMessageById). The body is the entry's
// payload after its MessageMetadata, decompressed (for a batch: the
// concatenated [size][SingleMessageMetadata][payload] records); the metadata
// travels in X-Pulsar-* headers, as Pulsar's generateResponseWithEntry
// writes them. Entries written by another protocol (Kafka record batches)
// answer 412: they have no Pulsar metadata until conversion on read exists.

import (
	"bytes"
	"compress/zlib"
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
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

func (s *server) messageRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+topicBase+"/{topic}/ledger/{ledger}/entry/{entry}", s.messageByID)
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
	e := es[0]
	if e.Format != broker.FormatPulsar {
		writeReason(w, http.StatusPreconditionFailed, "Message is not in Pulsar format")
		return
	}
	md, payload, err := parseStoredEntry(e.Data)
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
	h.Set("X-Pulsar-Message-ID", fmt.Sprintf("%d:%d", ledger, entry))
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
