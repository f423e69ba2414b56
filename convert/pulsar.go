package convert

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// Pulsar payload framing: [0x0e01][u32 crc32c][u32 metaSize][MessageMetadata][payload].
const (
	pulsarMagic     = 0x0e01
	pulsarHdrSize   = 2 + 4 + 4
	fieldEncryption = 13 // MessageMetadata.encryption_keys (not in our pb)
)

// Reserved Pulsar property names. Every name starts with reservedPrefix;
// a Kafka header key with that prefix is stored base64-encoded, so user
// headers never collide with them.
const (
	reservedPrefix = "__kafka_"
	propB64        = "__kafka_b64"    // properties whose value is base64
	propNull       = "__kafka_null"   // properties whose value is null
	propB64Key     = "__kafka_b64key" // properties whose key is base64
	propTimestamp  = "__kafka_ts"     // Kafka timestamp not representable as event_time
	propOrder      = "__kafka_order"  // the headers' keys in order, when a key repeats
	// repPrefix names the earlier values of a repeated header key:
	// "__kafka_rep.<n>.<key>" holds the n-th (0-based) value of key, the
	// last value being under key itself (props.go).
	repPrefix = "__kafka_rep."
)

var b64 = base64.StdEncoding

// decodePulsar returns the messages of one stored Pulsar payload. The
// returned messages alias b or the decompressed buffer.
func decodePulsar(b []byte) ([]Message, error) {
	var msgs []Message
	_, err := walkPulsar(b, func(n int32) { msgs = make([]Message, 0, n) }, func(s single, value []byte, publish int64) {
		msgs = append(msgs, pulsarMessage(s.props, s.key, s.keyB64, s.orderingKey, s.eventTime, publish, s.null, value))
	})
	return msgs, err
}

// walkPulsar parses one stored Pulsar payload and calls each once per
// message, in order, with its metadata (a non-batched message's is taken
// from the MessageMetadata) and its payload, both aliasing b or the
// decompressed buffer; start is called first with the message count. It
// returns the entry's MessageMetadata.
func walkPulsar(b []byte, start func(n int32), each func(s single, value []byte, publish int64)) (*pb.MessageMetadata, error) {
	if len(b) < pulsarHdrSize || binary.BigEndian.Uint16(b) != pulsarMagic {
		return nil, corrupt("pulsar payload without magic")
	}
	mdSize := int64(binary.BigEndian.Uint32(b[6:]))
	if mdSize > int64(len(b)-pulsarHdrSize) {
		return nil, corrupt("pulsar metadata size %d", mdSize)
	}
	md := &pb.MessageMetadata{}
	if err := proto.Unmarshal(b[pulsarHdrSize:pulsarHdrSize+mdSize], md); err != nil {
		return nil, corrupt("pulsar metadata: %v", err)
	}
	if md.GetNumChunksFromMsg() > 1 {
		return nil, ErrUnsupported // one message spread over entries
	}
	if hasField(md.ProtoReflect().GetUnknown(), fieldEncryption) {
		return nil, ErrUnsupported // the broker has no keys
	}
	payload, err := decompressPulsar(md.GetCompression(), md.GetUncompressedSize(), b[pulsarHdrSize+mdSize:])
	if err != nil {
		return nil, err
	}
	publish := int64(md.GetPublishTime())
	if md.NumMessagesInBatch == nil {
		s := single{
			props: make([]rawKV, len(md.Properties)), keyB64: md.GetPartitionKeyB64Encoded(),
			orderingKey: md.OrderingKey, eventTime: md.GetEventTime(), null: md.GetNullValue(),
		}
		for i, kv := range md.Properties {
			s.props[i] = rawKV{[]byte(kv.GetKey()), []byte(kv.GetValue())}
		}
		if md.PartitionKey != nil {
			s.key = []byte(*md.PartitionKey)
		}
		start(1)
		each(s, payload, publish)
		return md, nil
	}
	n := md.GetNumMessagesInBatch()
	// Every message takes at least 4 bytes: do not trust n before that.
	if n < 1 || int64(n) > int64(len(payload))/4+1 {
		return nil, corrupt("pulsar batch claims %d messages in %d bytes", n, len(payload))
	}
	start(n)
	for range n {
		if len(payload) < 4 {
			return nil, corrupt("pulsar batch truncated")
		}
		sz := int64(binary.BigEndian.Uint32(payload))
		if sz > int64(len(payload)-4) {
			return nil, corrupt("pulsar single message metadata size %d", sz)
		}
		var smm single
		if err := smm.decode(payload[4 : 4+sz]); err != nil {
			return nil, err
		}
		payload = payload[4+sz:]
		ps := smm.payloadSize
		if ps < 0 || ps > int64(len(payload)) {
			return nil, corrupt("pulsar payload size %d", ps)
		}
		each(smm, payload[:ps:ps], publish)
		payload = payload[ps:]
	}
	return md, nil
}

// hasField reports whether the protobuf bytes b hold field num.
func hasField(b []byte, num protowire.Number) bool {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return false
		}
		if n == num {
			return true
		}
		b = b[l:]
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			return false
		}
		b = b[l:]
	}
	return false
}

// rawKV is a property as found on the wire.
type rawKV struct{ k, v []byte }

// single is the part of a SingleMessageMetadata the conversion reads.
type single struct {
	props       []rawKV
	key         []byte // nil: none
	keyB64      bool
	payloadSize int64
	eventTime   uint64
	orderingKey []byte
	null        bool
}

// SingleMessageMetadata field numbers (PulsarApi.proto).
const (
	smmProperties  = 1
	smmPartKey     = 2
	smmPayloadSize = 3
	smmEventTime   = 5
	smmKeyB64      = 6
	smmOrderingKey = 7
	smmNullValue   = 9
)

// decode reads a SingleMessageMetadata by hand: it runs once per message,
// and generated unmarshalling allocates a struct per field.
func (s *single) decode(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return corrupt("single message metadata tag")
		}
		b = b[n:]
		switch {
		case typ == protowire.BytesType && (num == smmProperties || num == smmPartKey || num == smmOrderingKey):
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return corrupt("single message metadata field %d", num)
			}
			b = b[n:]
			if v == nil {
				v = []byte{}
			}
			switch num {
			case smmProperties:
				kv, err := decodeKV(v)
				if err != nil {
					return err
				}
				s.props = append(s.props, kv)
			case smmPartKey:
				s.key = v
			case smmOrderingKey:
				s.orderingKey = v
			}
		case typ == protowire.VarintType && (num == smmPayloadSize || num == smmEventTime || num == smmKeyB64 || num == smmNullValue):
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return corrupt("single message metadata field %d", num)
			}
			b = b[n:]
			switch num {
			case smmPayloadSize:
				s.payloadSize = int64(int32(v))
			case smmEventTime:
				s.eventTime = v
			case smmKeyB64:
				s.keyB64 = v != 0
			case smmNullValue:
				s.null = v != 0
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return corrupt("single message metadata field %d", num)
			}
			b = b[n:]
		}
	}
	return nil
}

func decodeKV(b []byte) (rawKV, error) {
	kv := rawKV{k: []byte{}, v: []byte{}}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return kv, corrupt("key value tag")
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == 1 || num == 2) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return kv, corrupt("key value field")
			}
			b = b[n:]
			if v == nil {
				v = []byte{}
			}
			if num == 1 {
				kv.k = v
			} else {
				kv.v = v
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return kv, corrupt("key value field")
		}
		b = b[n:]
	}
	return kv, nil
}

// b64decode decodes base64 (empty stays empty, not nil).
func b64decode(b []byte) ([]byte, error) {
	return b64.AppendDecode(make([]byte, 0, b64.DecodedLen(len(b))), b)
}

func pulsarMessage(props []rawKV, key []byte, keyB64 bool, orderingKey []byte, eventTime uint64, publish int64, null bool, value []byte) Message {
	m := Message{OrderingKey: orderingKey, Value: value, Key: key}
	if key != nil && keyB64 {
		if k, err := b64decode(key); err == nil {
			m.Key = k
		}
	}
	if null {
		m.Value = nil
	} else if m.Value == nil {
		m.Value = []byte{}
	}
	var ts int64
	var hasTS bool
	m.Headers, ts, hasTS = decodeProps(props)
	switch {
	case eventTime > 0:
		m.Timestamp = int64(eventTime)
	case hasTS:
		m.Timestamp = ts
	default:
		m.Timestamp, m.LogAppend = publish, true
	}
	return m
}

// appendSingle appends m's SingleMessageMetadata, encoded by hand (see
// single.decode), in field-number order as protobuf encoders write it.
func appendSingle(dst []byte, m *Message, logAppend bool) []byte {
	dst = appendProps(dst, m, !logAppend)
	if m.Key != nil {
		dst = protowire.AppendTag(dst, smmPartKey, protowire.BytesType)
		if utf8.Valid(m.Key) {
			dst = protowire.AppendBytes(dst, m.Key)
		} else {
			dst = protowire.AppendVarint(dst, uint64(b64.EncodedLen(len(m.Key))))
			dst = b64.AppendEncode(dst, m.Key)
		}
	}
	dst = protowire.AppendTag(dst, smmPayloadSize, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(int64(int32(len(m.Value)))))
	if !logAppend && m.Timestamp > 0 {
		dst = protowire.AppendTag(dst, smmEventTime, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(m.Timestamp))
	}
	if m.Key != nil && !utf8.Valid(m.Key) {
		dst = protowire.AppendTag(dst, smmKeyB64, protowire.VarintType)
		dst = protowire.AppendVarint(dst, 1)
	}
	if m.OrderingKey != nil {
		dst = protowire.AppendTag(dst, smmOrderingKey, protowire.BytesType)
		dst = protowire.AppendBytes(dst, m.OrderingKey)
	}
	if m.Value == nil {
		dst = protowire.AppendTag(dst, smmNullValue, protowire.VarintType)
		dst = protowire.AppendVarint(dst, 1)
	}
	return dst
}

// appendPulsar appends msgs as one uncompressed Pulsar batch payload, from
// the magic onward, with a valid CRC32C. publish is the batch's publish
// time unless every message is LogAppend at a positive time (then the
// messages carry no event time and that time is the publish time).
func appendPulsar(dst []byte, msgs []Message, producer string, seq uint64, publish int64) ([]byte, error) {
	logAppend := len(msgs) > 0 && msgs[0].Timestamp > 0
	for i := range msgs {
		logAppend = logAppend && msgs[i].LogAppend
	}
	if logAppend {
		publish = msgs[0].Timestamp
	}
	// The per-message metadata first, into a scratch buffer: the batch size
	// goes into the MessageMetadata, and values are then copied only once.
	ends := make([]int, len(msgs))
	smms := make([]byte, 0, 48*len(msgs))
	size := 0
	for i := range msgs {
		smms = appendSingle(smms, &msgs[i], logAppend)
		ends[i] = len(smms)
		size += 4 + len(msgs[i].Value)
	}
	size += len(smms)
	md := &pb.MessageMetadata{
		ProducerName:       proto.String(producer),
		SequenceId:         proto.Uint64(seq),
		PublishTime:        proto.Uint64(uint64(max(publish, 0))),
		NumMessagesInBatch: proto.Int32(int32(len(msgs))),
		UncompressedSize:   proto.Uint32(uint32(size)),
	}
	start := len(dst)
	dst = slices.Grow(dst, pulsarHdrSize+64+len(producer)+size)
	dst = binary.BigEndian.AppendUint16(dst, pulsarMagic)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0) // crc, metadata size
	var err error
	if dst, err = (proto.MarshalOptions{}).MarshalAppend(dst, md); err != nil {
		return dst[:start], err
	}
	binary.BigEndian.PutUint32(dst[start+6:], uint32(len(dst)-start-pulsarHdrSize))
	from := 0
	for i := range msgs {
		dst = binary.BigEndian.AppendUint32(dst, uint32(ends[i]-from))
		dst = append(dst, smms[from:ends[i]]...)
		dst = append(dst, msgs[i].Value...)
		from = ends[i]
	}
	binary.BigEndian.PutUint32(dst[start+2:], crc32.Checksum(dst[start+6:], castagnoli))
	return dst, nil
}
