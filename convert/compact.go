package convert

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/managedledger/compact"
)

// Kafka batch attribute bits used by compaction.
const kafkaTransactional = 0x10

// CompactionCodec is compaction's view of stored entries (compact.Codec):
// Kafka batches of any codec, control batches (transaction markers), and
// Pulsar payloads (batched or not). A Kafka batch is rewritten in place
// (same codec, base offset, offset deltas, producer fields; record count,
// length and CRC updated); a Pulsar entry with records removed is rewritten
// as a Kafka batch (offset deltas can leave gaps, Pulsar batch indexes
// cannot), which both protocols read.
type CompactionCodec struct{}

var _ compact.Codec = CompactionCodec{}

// Records implements compact.Codec.
func (CompactionCodec) Records(e *managedledger.Entry) ([]compact.Record, error) {
	if e.Format == managedledger.FormatPulsar {
		msgs, err := decodePulsar(e.Data)
		if err != nil {
			return nil, err
		}
		out := make([]compact.Record, len(msgs))
		for i := range msgs {
			out[i] = compact.Record{Offset: e.FirstIndex + int64(i), Key: msgs[i].Key, Tombstone: msgs[i].Value == nil}
		}
		return out, nil
	}
	var out []compact.Record
	err := walkKafkaRecords(e.Data, func(h kafkaBatchInfo, delta int64, key []byte, null bool, _ []byte) {
		out = append(out, compact.Record{
			Offset: e.FirstIndex + delta, Key: key, Tombstone: null, Control: h.control,
			Transactional: h.transactional, ProducerID: h.producerID,
		})
	})
	return out, err
}

// Rewrite implements compact.Codec.
func (CompactionCodec) Rewrite(e *managedledger.Entry, keep []bool) ([]byte, managedledger.Format, error) {
	if e.Format == managedledger.FormatPulsar {
		msgs, err := decodePulsar(e.Data)
		if err != nil {
			return nil, 0, err
		}
		if len(msgs) != len(keep) {
			return nil, 0, corrupt("pulsar entry of %d messages, %d marks", len(msgs), len(keep))
		}
		var kept []Message
		var deltas []int64
		for i := range msgs {
			if keep[i] {
				kept = append(kept, msgs[i])
				deltas = append(deltas, int64(i))
			}
		}
		return appendKafkaAt(nil, e.FirstIndex, kept, deltas, int64(len(msgs)-1)), managedledger.FormatKafka, nil
	}
	b := e.Data
	var h kafkaBatchInfo
	var plain []byte
	i := 0
	n := 0
	err := walkKafkaRecords(b, func(bh kafkaBatchInfo, _ int64, _ []byte, _ bool, raw []byte) {
		h = bh
		if i < len(keep) && keep[i] {
			plain = append(plain, raw...)
			n++
		}
		i++
	})
	if err != nil {
		return nil, 0, err
	}
	if i != len(keep) {
		return nil, 0, corrupt("kafka batch of %d records, %d marks", i, len(keep))
	}
	body, err := compressKafkaCodec(h.codec, plain)
	if err != nil {
		return nil, 0, err
	}
	out := make([]byte, 0, kafkaHeaderSize+len(body))
	out = append(out, b[:kafkaHeaderSize]...)
	out = append(out, body...)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[57:], uint32(n))
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], castagnoli))
	return out, managedledger.FormatKafka, nil
}

type kafkaBatchInfo struct {
	codec         int
	control       bool
	transactional bool
	producerID    int64
}

// walkKafkaRecords calls fn for every record of the v2 batch b with its
// offset delta, key (nil: none), whether its value is null, and its raw
// bytes (length varint included), which alias b or the decompressed
// records.
func walkKafkaRecords(b []byte, fn func(h kafkaBatchInfo, delta int64, key []byte, null bool, raw []byte)) error {
	if len(b) < kafkaHeaderSize || b[16] != 2 {
		return corrupt("kafka batch")
	}
	length := int64(binary.BigEndian.Uint32(b[8:])) + 12
	if length < kafkaHeaderSize || length > int64(len(b)) {
		return corrupt("kafka batch length %d of %d bytes", length, len(b))
	}
	attrs := binary.BigEndian.Uint16(b[21:])
	h := kafkaBatchInfo{
		codec: int(attrs & kafkaCodecMask), control: attrs&kafkaControl != 0,
		transactional: attrs&kafkaTransactional != 0, producerID: int64(binary.BigEndian.Uint64(b[43:])),
	}
	count := int64(int32(binary.BigEndian.Uint32(b[57:])))
	recs, err := decompressKafka(h.codec, b[kafkaHeaderSize:length])
	if err != nil {
		return err
	}
	if count < 0 || count > int64(len(recs))/7+1 {
		return corrupt("kafka batch claims %d records in %d bytes", count, len(recs))
	}
	for range count {
		l, n := binary.Varint(recs)
		if n <= 0 || l < 1 || l > int64(len(recs)-n) {
			return corrupt("kafka record length")
		}
		raw := recs[:n+int(l)]
		r := reader{b: recs[n+1 : n+int(l)]} // attributes skipped
		r.varint()                           // timestamp delta
		delta := r.varint()
		key := r.bytes()
		vl, vn := binary.Varint(r.b)
		if r.bad || vn <= 0 {
			return corrupt("kafka record")
		}
		fn(h, delta, key, vl < 0, raw)
		recs = recs[n+int(l):]
	}
	return nil
}

// Compressors are reused: a gzip writer's state is about a megabyte.
var (
	gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}
	lz4Writers  = sync.Pool{New: func() any { return lz4.NewWriter(nil) }}
)

var zstdEnc = sync.OnceValues(func() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
})

// compressKafkaCodec compresses a records section with a Kafka codec, in
// the framing Kafka clients read (gzip, xerial snappy, LZ4 frames, zstd).
func compressKafkaCodec(codec int, plain []byte) ([]byte, error) {
	var buf bytes.Buffer
	switch codec {
	case kafkaNone:
		return plain, nil
	case kafkaSnappy:
		return xerial.Encode(nil, plain), nil
	case kafkaZstd:
		enc, err := zstdEnc()
		if err != nil {
			return nil, err
		}
		return enc.EncodeAll(plain, nil), nil
	case kafkaGzip:
		w := gzipWriters.Get().(*gzip.Writer)
		defer gzipWriters.Put(w)
		w.Reset(&buf)
		if _, err := w.Write(plain); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case kafkaLz4:
		w := lz4Writers.Get().(*lz4.Writer)
		defer lz4Writers.Put(w)
		w.Reset(&buf)
		if _, err := w.Write(plain); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	default:
		return nil, corrupt("kafka codec %d", codec)
	}
	return buf.Bytes(), nil
}

// KafkaRecordCount is the number of records a stored Kafka batch holds (its
// records count field): MsgCount for a batch as produced, fewer for one
// compaction rewrote (its span keeps MsgCount offsets). 0 if e is no
// Kafka batch.
func KafkaRecordCount(e *managedledger.Entry) int32 {
	if e.Format != managedledger.FormatKafka || len(e.Data) < kafkaHeaderSize {
		return 0
	}
	return int32(binary.BigEndian.Uint32(e.Data[57:]))
}

// KafkaLastBatchIndex is the batch index of the last message a Pulsar
// reader gets for a Kafka-format entry converted by
// AppendKafkaToPulsarSpan: the last record's offset delta (below MsgCount-1
// when compaction removed the batch's last records); 0 for an entry that
// does not decode.
func KafkaLastBatchIndex(e *managedledger.Entry) int32 {
	msgs, deltas, err := decodeKafkaDeltas(e.Data, true)
	if err != nil || len(msgs) == 0 {
		return 0
	}
	return int32(deltas[len(deltas)-1])
}

// CompactedDeltas returns the offset deltas of the records of a
// Kafka-format entry compaction rewrote with gaps (fewer records than its
// MsgCount span), nil for any other entry. Batch index i of the raw entry
// is the record with delta i.
func CompactedDeltas(e *managedledger.Entry) []int64 {
	if KafkaRecordCount(e) >= e.MsgCount {
		return nil
	}
	msgs, deltas, err := decodeKafkaDeltas(e.Data, true)
	if err != nil || len(msgs) == 0 {
		return nil
	}
	return deltas
}
