package convert

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// Test codecs: Kafka ids, plus xerial-framed snappy as the Java client sends it.
var kafkaCodecs = []struct {
	name string
	id   int
}{{"none", kafkaNone}, {"gzip", kafkaGzip}, {"snappy", kafkaSnappy}, {"xerial", -kafkaSnappy}, {"lz4", kafkaLz4}, {"zstd", kafkaZstd}}

var pulsarCodecs = []pb.CompressionType{pb.CompressionType_NONE, pb.CompressionType_LZ4, pb.CompressionType_ZLIB, pb.CompressionType_ZSTD, pb.CompressionType_SNAPPY}

// kafkaEntry builds a stored Kafka entry (base offset 0, as produced) of
// msgs compressed with codec (negative snappy: xerial framing).
func kafkaEntry(t testing.TB, msgs []Message, codec int, first int64) *broker.Entry {
	b := appendKafka(nil, 0, msgs)
	recs := b[kafkaHeaderSize:]
	var comp []byte
	switch codec {
	case kafkaNone:
		comp = recs
	case kafkaGzip:
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(recs)
		w.Close()
		comp = buf.Bytes()
	case kafkaSnappy:
		comp = s2.EncodeSnappy(nil, recs)
	case -kafkaSnappy:
		comp = xerial.Encode(nil, recs)
		codec = kafkaSnappy
	case kafkaLz4:
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		w.Write(recs)
		w.Close()
		comp = buf.Bytes()
	case kafkaZstd:
		e, _ := zstd.NewWriter(nil)
		comp = e.EncodeAll(recs, nil)
	default:
		t.Fatalf("codec %d", codec)
	}
	out := append(append([]byte(nil), b[:kafkaHeaderSize]...), comp...)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	attrs := binary.BigEndian.Uint16(out[21:])
	binary.BigEndian.PutUint16(out[21:], attrs|uint16(codec))
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], castagnoli))
	return &broker.Entry{Format: broker.FormatKafka, MsgCount: int32(len(msgs)), FirstIndex: first, PublishTime: 1_700_000_000_000, Data: out}
}

// pulsarEntry builds a stored Pulsar entry: a batch of msgs (or, single,
// one non-batched message) compressed with codec.
func pulsarEntry(t testing.TB, msgs []Message, codec pb.CompressionType, single bool, first int64) *broker.Entry {
	publish := int64(1_700_000_000_123)
	for _, m := range msgs {
		if m.LogAppend {
			publish = m.Timestamp
		}
	}
	stored, err := appendPulsar(nil, msgs, "p", 7, publish)
	if err != nil {
		t.Fatal(err)
	}
	md, body := splitPulsar(t, stored)
	if single {
		if len(msgs) != 1 {
			t.Fatal("single needs one message")
		}
		sz := binary.BigEndian.Uint32(body)
		smm := &pb.SingleMessageMetadata{}
		if err := proto.Unmarshal(body[4:4+sz], smm); err != nil {
			t.Fatal(err)
		}
		md.NumMessagesInBatch = nil
		md.Properties, md.PartitionKey, md.PartitionKeyB64Encoded = smm.Properties, smm.PartitionKey, smm.PartitionKeyB64Encoded
		md.OrderingKey, md.EventTime, md.NullValue = smm.OrderingKey, smm.EventTime, smm.NullValue
		body = body[4+sz:]
	}
	md.UncompressedSize = proto.Uint32(uint32(len(body)))
	var comp []byte
	switch codec {
	case pb.CompressionType_NONE:
		comp = body
	case pb.CompressionType_LZ4:
		comp = make([]byte, lz4.CompressBlockBound(len(body)))
		n, err := lz4.CompressBlock(body, comp, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 && len(body) > 0 {
			t.Fatal("lz4: incompressible")
		}
		comp = comp[:n]
	case pb.CompressionType_ZLIB:
		var buf bytes.Buffer
		w := zlib.NewWriter(&buf)
		w.Write(body)
		w.Close()
		comp = buf.Bytes()
	case pb.CompressionType_ZSTD:
		e, _ := zstd.NewWriter(nil)
		comp = e.EncodeAll(body, nil)
	case pb.CompressionType_SNAPPY:
		comp = s2.EncodeSnappy(nil, body)
	}
	if codec != pb.CompressionType_NONE {
		md.Compression = codec.Enum()
	}
	return &broker.Entry{Format: broker.FormatPulsar, MsgCount: int32(len(msgs)), FirstIndex: first, PublishTime: publish + 5, Data: encodePulsarStored(md, comp)}
}

func splitPulsar(t testing.TB, b []byte) (*pb.MessageMetadata, []byte) {
	if binary.BigEndian.Uint16(b) != pulsarMagic {
		t.Fatal("no magic")
	}
	if crc := binary.BigEndian.Uint32(b[2:]); crc != crc32.Checksum(b[6:], castagnoli) {
		t.Fatal("pulsar crc mismatch")
	}
	n := binary.BigEndian.Uint32(b[6:])
	md := &pb.MessageMetadata{}
	if err := proto.Unmarshal(b[10:10+n], md); err != nil {
		t.Fatal(err)
	}
	return md, b[10+n:]
}

func encodePulsarStored(md *pb.MessageMetadata, data []byte) []byte {
	mdb, _ := proto.Marshal(md)
	out := make([]byte, pulsarHdrSize, pulsarHdrSize+len(mdb)+len(data))
	binary.BigEndian.PutUint16(out, pulsarMagic)
	binary.BigEndian.PutUint32(out[6:], uint32(len(mdb)))
	out = append(out, mdb...)
	out = append(out, data...)
	binary.BigEndian.PutUint32(out[2:], crc32.Checksum(out[6:], castagnoli))
	return out
}

// randBytes returns nil, empty, UTF-8 or binary bytes.
func randBytes(r *rand.Rand, maxLen int, allowNil bool) []byte {
	switch r.IntN(5) {
	case 0:
		if allowNil {
			return nil
		}
		return []byte{}
	case 1:
		return []byte{}
	case 2:
		return []byte(fmt.Sprintf("text-%d-é✓", r.IntN(1000)))
	default:
		b := make([]byte, r.IntN(maxLen+1))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return b
	}
}

var headerKeys = []string{"a", "b", "a", "trace-id", "__kafka_b64", "__kafka_x", "\xff\xfe", "", "é"}

// randKafka returns n messages as a Kafka producer could send them.
func randKafka(r *rand.Rand, n int) []Message {
	msgs := make([]Message, n)
	for i := range msgs {
		m := &msgs[i]
		m.Key = randBytes(r, 20, true)
		m.OrderingKey = m.Key
		m.Value = randBytes(r, 200, true)
		m.Timestamp = 1_700_000_000_000 + int64(r.IntN(100000))
		if r.IntN(20) == 0 {
			m.Timestamp = []int64{0, -1, 1}[r.IntN(3)]
		}
		for range r.IntN(5) {
			m.Headers = append(m.Headers, Header{Key: headerKeys[r.IntN(len(headerKeys))], Value: randBytes(r, 20, true)})
		}
	}
	return msgs
}

// randPulsar returns n messages as a Pulsar producer could send them:
// string properties, no null header values, event time on all or none.
func randPulsar(r *rand.Rand, n int) []Message {
	eventTime := r.IntN(2) == 0
	msgs := make([]Message, n)
	for i := range msgs {
		m := &msgs[i]
		if r.IntN(3) > 0 {
			m.Key = randBytes(r, 20, false)
		}
		if r.IntN(4) == 0 {
			m.OrderingKey = randBytes(r, 10, false)
		}
		m.Value = randBytes(r, 200, r.IntN(2) == 0)
		if eventTime {
			m.Timestamp = 1_700_000_000_000 + int64(r.IntN(100000))
		} else {
			m.Timestamp, m.LogAppend = 1_700_000_000_777, true
		}
		for range r.IntN(5) {
			k := headerKeys[r.IntN(len(headerKeys))]
			m.Headers = append(m.Headers, Header{Key: k, Value: randBytes(r, 20, false)})
		}
	}
	return msgs
}

// norm puts messages in the form compared after a round trip: empty
// header lists are nil and a missing ordering key is the key (Pulsar
// orders by the key then).
func norm(msgs []Message) []Message {
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		if len(m.Headers) == 0 {
			m.Headers = nil
		}
		if m.OrderingKey == nil {
			m.OrderingKey = m.Key
		}
		out[i] = m
	}
	return out
}

func equalMsgs(t testing.TB, want, got []Message) {
	t.Helper()
	want, got = norm(want), norm(got)
	if len(want) != len(got) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(want[i], got[i]) {
			t.Fatalf("message %d:\n got %#v\nwant %#v", i, got[i], want[i])
		}
	}
}
