package convert

import (
	"encoding/binary"
	"hash/crc32"
	"math"
)

// RecordBatch v2 (KIP-98) offsets used here.
const (
	kafkaHeaderSize   = 61
	kafkaCodecMask    = 0x07
	kafkaLogAppend    = 0x08
	kafkaControl      = 0x20
	kafkaNoTimestamp  = -1
	orderingKeyHeader = "pulsar.ordering_key"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// decodeKafka returns the records of one v2 batch (of any codec). The
// returned messages alias b or the decompressed buffer.
func decodeKafka(b []byte) ([]Message, error) {
	msgs, _, err := decodeKafkaDeltas(b, false)
	return msgs, err
}

// decodeKafkaDeltas is decodeKafka that also returns, with deltas, each
// record's offset delta (a compacted batch has gaps between them).
func decodeKafkaDeltas(b []byte, deltas bool) ([]Message, []int64, error) {
	if len(b) < kafkaHeaderSize {
		return nil, nil, corrupt("kafka batch of %d bytes", len(b))
	}
	if b[16] != 2 {
		return nil, nil, corrupt("kafka batch magic %d", b[16])
	}
	length := int64(binary.BigEndian.Uint32(b[8:])) + 12
	if length < kafkaHeaderSize || length > int64(len(b)) {
		return nil, nil, corrupt("kafka batch length %d of %d bytes", length, len(b))
	}
	attrs := binary.BigEndian.Uint16(b[21:])
	if attrs&kafkaControl != 0 {
		return nil, nil, corrupt("kafka control batch")
	}
	baseTS := int64(binary.BigEndian.Uint64(b[27:]))
	maxTS := int64(binary.BigEndian.Uint64(b[35:]))
	count := int32(binary.BigEndian.Uint32(b[57:]))
	recs, err := decompressKafka(int(attrs&kafkaCodecMask), b[kafkaHeaderSize:length])
	if err != nil {
		return nil, nil, err
	}
	// Every record takes at least 7 bytes: do not trust count before that.
	if count < 1 || int64(count) > int64(len(recs))/7+1 {
		return nil, nil, corrupt("kafka batch claims %d records in %d bytes", count, len(recs))
	}
	msgs := make([]Message, 0, count)
	var offs []int64
	if deltas {
		offs = make([]int64, 0, count)
	}
	for range count {
		l, n := binary.Varint(recs)
		if n <= 0 || l < 0 || l > int64(len(recs)-n) {
			return nil, nil, corrupt("kafka record length")
		}
		m, delta, err := decodeKafkaRecord(recs[n:n+int(l)], baseTS)
		if err != nil {
			return nil, nil, err
		}
		if deltas {
			offs = append(offs, delta)
		}
		if attrs&kafkaLogAppend != 0 {
			m.Timestamp, m.LogAppend = maxTS, true
		}
		msgs = append(msgs, m)
		recs = recs[n+int(l):]
	}
	return msgs, offs, nil
}

// reader is a sticky-error reader over one Kafka record.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad = true
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes reads a varint-length byte string; length -1 is nil.
func (r *reader) bytes() []byte {
	l := r.varint()
	if l < 0 || r.bad {
		if l < -1 {
			r.bad = true
		}
		return nil
	}
	if l > int64(len(r.b)) {
		r.bad = true
		r.b = nil
		return nil
	}
	v := r.b[:l:l]
	r.b = r.b[l:]
	return v
}

func decodeKafkaRecord(rec []byte, baseTS int64) (Message, int64, error) {
	var m Message
	if len(rec) < 1 {
		return m, 0, corrupt("empty kafka record")
	}
	r := reader{b: rec[1:]} // attributes: unused
	m.Timestamp = baseTS + r.varint()
	delta := r.varint() // records are in offset order; compaction leaves gaps
	m.Key = r.bytes()
	m.Value = r.bytes()
	nh := r.varint()
	if nh < 0 || nh > int64(len(r.b)) {
		return m, 0, corrupt("kafka record header count %d", nh)
	}
	if nh > 0 {
		m.Headers = make([]Header, 0, nh)
	}
	for range nh {
		k := r.bytes()
		v := r.bytes()
		if r.bad {
			break
		}
		if string(k) == orderingKeyHeader && m.OrderingKey == nil && v != nil {
			m.OrderingKey = v
			continue
		}
		m.Headers = append(m.Headers, Header{Key: string(k), Value: v})
	}
	if r.bad || len(r.b) != 0 {
		return m, 0, corrupt("kafka record")
	}
	if m.OrderingKey == nil {
		m.OrderingKey = m.Key
	}
	return m, delta, nil
}

// appendKafka appends msgs as one uncompressed v2 batch at baseOffset. The
// batch is LogAppendTime when every message is (its max timestamp is then
// the first message's time), CreateTime otherwise.
func appendKafka(dst []byte, baseOffset int64, msgs []Message) []byte {
	return appendKafkaAt(dst, baseOffset, msgs, nil, int64(len(msgs)-1))
}

// appendKafkaAt is appendKafka with message i at offset delta deltas[i]
// (nil: i) and the batch's last offset delta lastDelta: a compacted batch
// keeps its span with gaps where records were removed.
func appendKafkaAt(dst []byte, baseOffset int64, msgs []Message, deltas []int64, lastDelta int64) []byte {
	start := len(dst)
	logAppend := len(msgs) > 0
	baseTS, maxTS := int64(kafkaNoTimestamp), int64(kafkaNoTimestamp)
	for i := range msgs {
		m := &msgs[i]
		logAppend = logAppend && m.LogAppend
		if i == 0 || m.Timestamp < baseTS {
			baseTS = m.Timestamp
		}
		if i == 0 || m.Timestamp > maxTS {
			maxTS = m.Timestamp
		}
	}
	var attrs uint16
	if logAppend {
		attrs |= kafkaLogAppend
		baseTS, maxTS = msgs[0].Timestamp, msgs[0].Timestamp
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(baseOffset))
	dst = append(dst, 0, 0, 0, 0) // length, below
	dst = append(dst, 0, 0, 0, 0) // partition leader epoch
	dst = append(dst, 2)          // magic
	dst = append(dst, 0, 0, 0, 0) // crc, below
	dst = binary.BigEndian.AppendUint16(dst, attrs)
	dst = binary.BigEndian.AppendUint32(dst, uint32(lastDelta))
	dst = binary.BigEndian.AppendUint64(dst, uint64(baseTS))
	dst = binary.BigEndian.AppendUint64(dst, uint64(maxTS))
	dst = binary.BigEndian.AppendUint64(dst, math.MaxUint64) // producer id -1
	dst = binary.BigEndian.AppendUint16(dst, math.MaxUint16) // epoch -1
	dst = binary.BigEndian.AppendUint32(dst, math.MaxUint32) // sequence -1
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(msgs)))
	for i := range msgs {
		m := &msgs[i]
		ts := m.Timestamp
		if logAppend {
			ts = baseTS
		}
		var hdrs [1]Header
		extra := hdrs[:0]
		if m.OrderingKey != nil && (m.Key == nil || string(m.OrderingKey) != string(m.Key)) {
			extra = append(extra, Header{Key: orderingKeyHeader, Value: m.OrderingKey})
		}
		delta := int64(i)
		if deltas != nil {
			delta = deltas[i]
		}
		body := 1 + varintLen(ts-baseTS) + varintLen(delta) +
			bytesLen(m.Key) + bytesLen(m.Value) + varintLen(int64(len(m.Headers)+len(extra)))
		for _, h := range m.Headers {
			body += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
		}
		for _, h := range extra {
			body += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
		}
		dst = binary.AppendVarint(dst, int64(body))
		dst = append(dst, 0) // attributes
		dst = binary.AppendVarint(dst, ts-baseTS)
		dst = binary.AppendVarint(dst, delta)
		dst = appendBytes(dst, m.Key)
		dst = appendBytes(dst, m.Value)
		dst = binary.AppendVarint(dst, int64(len(m.Headers)+len(extra)))
		for _, h := range m.Headers {
			dst = binary.AppendVarint(dst, int64(len(h.Key)))
			dst = append(dst, h.Key...)
			dst = appendBytes(dst, h.Value)
		}
		for _, h := range extra {
			dst = binary.AppendVarint(dst, int64(len(h.Key)))
			dst = append(dst, h.Key...)
			dst = appendBytes(dst, h.Value)
		}
	}
	binary.BigEndian.PutUint32(dst[start+8:], uint32(len(dst)-start-12))
	binary.BigEndian.PutUint32(dst[start+17:], crc32.Checksum(dst[start+21:], castagnoli))
	return dst
}

func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varintLen(int64(len(b))) + len(b)
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}
