package convert

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"strconv"
	"strings"
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
	propB64        = "__kafka_b64"    // indexes of properties whose value is base64
	propNull       = "__kafka_null"   // indexes of properties whose value is null
	propB64Key     = "__kafka_b64key" // indexes of properties whose key is base64
	propTimestamp  = "__kafka_ts"     // Kafka timestamp not representable as event_time
)

var b64 = base64.StdEncoding

// decodePulsar returns the messages of one stored Pulsar payload. The
// returned messages alias b or the decompressed buffer.
func decodePulsar(b []byte) ([]Message, error) {
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
		m := pulsarMessage(md.Properties, md.PartitionKey, md.GetPartitionKeyB64Encoded(), md.OrderingKey,
			md.GetEventTime(), publish, md.GetNullValue(), payload)
		return []Message{m}, nil
	}
	n := md.GetNumMessagesInBatch()
	// Every message takes at least 4 bytes: do not trust n before that.
	if n < 1 || int64(n) > int64(len(payload))/4+1 {
		return nil, corrupt("pulsar batch claims %d messages in %d bytes", n, len(payload))
	}
	msgs := make([]Message, 0, n)
	for range n {
		if len(payload) < 4 {
			return nil, corrupt("pulsar batch truncated")
		}
		sz := int64(binary.BigEndian.Uint32(payload))
		if sz > int64(len(payload)-4) {
			return nil, corrupt("pulsar single message metadata size %d", sz)
		}
		smm := &pb.SingleMessageMetadata{}
		if err := proto.Unmarshal(payload[4:4+sz], smm); err != nil {
			return nil, corrupt("pulsar single message metadata: %v", err)
		}
		payload = payload[4+sz:]
		ps := smm.GetPayloadSize()
		if ps < 0 || int64(ps) > int64(len(payload)) {
			return nil, corrupt("pulsar payload size %d", ps)
		}
		msgs = append(msgs, pulsarMessage(smm.Properties, smm.PartitionKey, smm.GetPartitionKeyB64Encoded(), smm.OrderingKey,
			smm.GetEventTime(), publish, smm.GetNullValue(), payload[:ps:ps]))
		payload = payload[ps:]
	}
	return msgs, nil
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

func pulsarMessage(props []*pb.KeyValue, key *string, keyB64 bool, orderingKey []byte, eventTime uint64, publish int64, null bool, value []byte) Message {
	m := Message{OrderingKey: orderingKey, Value: value}
	if key != nil {
		m.Key = []byte(*key)
		if keyB64 {
			if k, err := b64.DecodeString(*key); err == nil {
				m.Key = k
			}
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

// decodeProps turns properties into headers, undoing encodeProps.
// Properties that do not parse as reserved ones are kept as headers.
func decodeProps(props []*pb.KeyValue) (hdrs []Header, ts int64, hasTS bool) {
	var b64Vals, nulls, b64Keys map[int]bool
	reserved := 0
	for _, kv := range props {
		var err error
		switch kv.GetKey() {
		case propB64:
			b64Vals, err = parseIndexes(kv.GetValue())
		case propNull:
			nulls, err = parseIndexes(kv.GetValue())
		case propB64Key:
			b64Keys, err = parseIndexes(kv.GetValue())
		case propTimestamp:
			ts, err = strconv.ParseInt(kv.GetValue(), 10, 64)
			hasTS = err == nil
		default:
			continue
		}
		if err == nil {
			reserved++
		}
	}
	if len(props) > reserved {
		hdrs = make([]Header, 0, len(props)-reserved)
	}
	i := 0
	for _, kv := range props {
		k, v := kv.GetKey(), kv.GetValue()
		if isReserved(kv) {
			continue
		}
		h := Header{Key: k, Value: []byte(v)}
		if b64Keys[i] {
			if dk, err := b64.DecodeString(k); err == nil {
				h.Key = string(dk)
			}
		}
		switch {
		case nulls[i]:
			h.Value = nil
		case b64Vals[i]:
			if dv, err := b64.DecodeString(v); err == nil {
				h.Value = dv
			}
		}
		hdrs = append(hdrs, h)
		i++
	}
	return hdrs, ts, hasTS
}

// isReserved reports whether kv is a well-formed reserved property.
func isReserved(kv *pb.KeyValue) bool {
	switch kv.GetKey() {
	case propB64, propNull, propB64Key:
		_, err := parseIndexes(kv.GetValue())
		return err == nil
	case propTimestamp:
		_, err := strconv.ParseInt(kv.GetValue(), 10, 64)
		return err == nil
	}
	return false
}

func parseIndexes(s string) (map[int]bool, error) {
	m := map[int]bool{}
	for f := range strings.SplitSeq(s, ",") {
		i, err := strconv.Atoi(f)
		if err != nil || i < 0 {
			return nil, corrupt("index list %q", s)
		}
		m[i] = true
	}
	return m, nil
}

func appendIndexes(props []*pb.KeyValue, name string, idx []int) []*pb.KeyValue {
	if len(idx) == 0 {
		return props
	}
	var sb strings.Builder
	for j, i := range idx {
		if j > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(i))
	}
	return append(props, &pb.KeyValue{Key: proto.String(name), Value: proto.String(sb.String())})
}

// encodeProps turns m's headers (and a timestamp event_time cannot hold)
// into properties: UTF-8 keys and values verbatim, in order, repeated keys
// repeated; reserved properties, appended last, mark the others.
func encodeProps(m *Message, withTS bool) []*pb.KeyValue {
	var b64Vals, nulls, b64Keys []int
	props := make([]*pb.KeyValue, 0, len(m.Headers))
	for i, h := range m.Headers {
		k := h.Key
		if !utf8.ValidString(k) || strings.HasPrefix(k, reservedPrefix) {
			k = b64.EncodeToString([]byte(k))
			b64Keys = append(b64Keys, i)
		}
		var v string
		switch {
		case h.Value == nil:
			nulls = append(nulls, i)
		case utf8.Valid(h.Value):
			v = string(h.Value)
		default:
			v = b64.EncodeToString(h.Value)
			b64Vals = append(b64Vals, i)
		}
		props = append(props, &pb.KeyValue{Key: proto.String(k), Value: proto.String(v)})
	}
	props = appendIndexes(props, propB64, b64Vals)
	props = appendIndexes(props, propNull, nulls)
	props = appendIndexes(props, propB64Key, b64Keys)
	if withTS && m.Timestamp <= 0 {
		props = append(props, &pb.KeyValue{Key: proto.String(propTimestamp), Value: proto.String(strconv.FormatInt(m.Timestamp, 10))})
	}
	if len(props) == 0 {
		return nil
	}
	return props
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
	// The batch body first: its size goes into the metadata.
	size := 0
	for i := range msgs {
		size += 4 + 64 + len(msgs[i].Key)*3 + len(msgs[i].Value)
	}
	body := make([]byte, 0, size)
	var err error
	for i := range msgs {
		m := &msgs[i]
		smm := &pb.SingleMessageMetadata{
			Properties:  encodeProps(m, !logAppend),
			PayloadSize: proto.Int32(int32(len(m.Value))),
			OrderingKey: m.OrderingKey,
		}
		if m.Key != nil {
			if utf8.Valid(m.Key) {
				smm.PartitionKey = proto.String(string(m.Key))
			} else {
				smm.PartitionKey = proto.String(b64.EncodeToString(m.Key))
				smm.PartitionKeyB64Encoded = proto.Bool(true)
			}
		}
		if !logAppend && m.Timestamp > 0 {
			smm.EventTime = proto.Uint64(uint64(m.Timestamp))
		}
		if m.Value == nil {
			smm.NullValue = proto.Bool(true)
		}
		at := len(body)
		body = append(body, 0, 0, 0, 0)
		if body, err = (proto.MarshalOptions{}).MarshalAppend(body, smm); err != nil {
			return dst, err
		}
		binary.BigEndian.PutUint32(body[at:], uint32(len(body)-at-4))
		body = append(body, m.Value...)
	}
	md := &pb.MessageMetadata{
		ProducerName:       proto.String(producer),
		SequenceId:         proto.Uint64(seq),
		PublishTime:        proto.Uint64(uint64(max(publish, 0))),
		NumMessagesInBatch: proto.Int32(int32(len(msgs))),
		UncompressedSize:   proto.Uint32(uint32(len(body))),
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, pulsarMagic)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0) // crc, metadata size
	if dst, err = (proto.MarshalOptions{}).MarshalAppend(dst, md); err != nil {
		return dst[:start], err
	}
	binary.BigEndian.PutUint32(dst[start+6:], uint32(len(dst)-start-pulsarHdrSize))
	dst = append(dst, body...)
	binary.BigEndian.PutUint32(dst[start+2:], crc32.Checksum(dst[start+6:], castagnoli))
	return dst, nil
}
