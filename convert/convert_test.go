package convert

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// checkKafkaBatch checks framing a Kafka client verifies: length, magic,
// CRC, base offset, record count, and kmsg's own decoding.
func checkKafkaBatch(t testing.TB, b []byte, first int64, n int) {
	t.Helper()
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	if int(rb.Length)+12 != len(b) || rb.Magic != 2 || rb.FirstOffset != first || int(rb.NumRecords) != n || int(rb.LastOffsetDelta) != n-1 {
		t.Fatalf("batch header %+v (len %d), want first %d, %d records", rb, len(b), first, n)
	}
	if uint32(rb.CRC) != crc32.Checksum(b[21:], castagnoli) {
		t.Fatal("kafka crc mismatch")
	}
	recs, err := decompressKafka(int(rb.Attributes&kafkaCodecMask), rb.Records)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		l, k := binary.Varint(recs)
		var r kmsg.Record
		if err := r.ReadFrom(recs[:k+int(l)]); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if int(r.OffsetDelta) != i {
			t.Fatalf("record %d: offset delta %d", i, r.OffsetDelta)
		}
		recs = recs[k+int(l):]
	}
	if len(recs) != 0 {
		t.Fatalf("%d bytes after the records", len(recs))
	}
}

func TestKafkaPulsarKafka(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range kafkaCodecs {
		for _, n := range []int{1, 7, 1000} {
			msgs := randKafka(r, n)
			e := kafkaEntry(t, msgs, c.id, 42)
			p, err := KafkaToPulsar(e)
			if err != nil {
				t.Fatalf("%s/%d: %v", c.name, n, err)
			}
			pe := &broker.Entry{Format: broker.FormatPulsar, MsgCount: e.MsgCount, FirstIndex: 42, PublishTime: e.PublishTime, Data: p}
			got, err := decodePulsar(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != n {
				t.Fatalf("%d messages", len(got))
			}
			k, err := PulsarToKafka(pe)
			if err != nil {
				t.Fatal(err)
			}
			checkKafkaBatch(t, k, 42, n)
			back, err := decodeKafka(k)
			if err != nil {
				t.Fatal(err)
			}
			equalMsgs(t, msgs, back)
		}
	}
}

func TestPulsarKafkaPulsar(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range pulsarCodecs {
		for _, n := range []int{1, 7, 1000} {
			for _, single := range []bool{false, true} {
				if single && n > 1 {
					continue
				}
				msgs := randPulsar(r, n)
				e := pulsarEntry(t, msgs, c, single, 9)
				want, err := decodePulsar(e.Data)
				if err != nil {
					t.Fatal(err)
				}
				equalMsgs(t, msgs, want)
				k, err := PulsarToKafka(e)
				if err != nil {
					t.Fatalf("%s/%d: %v", c, n, err)
				}
				checkKafkaBatch(t, k, 9, n)
				ke := &broker.Entry{Format: broker.FormatKafka, MsgCount: e.MsgCount, FirstIndex: 9, PublishTime: 1_700_000_000_123, Data: k}
				p, err := KafkaToPulsar(ke)
				if err != nil {
					t.Fatal(err)
				}
				back, err := decodePulsar(p)
				if err != nil {
					t.Fatal(err)
				}
				equalMsgs(t, msgs, back)
			}
		}
	}
}

func TestLargeValues(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	big[17] = 0xff                                         // not UTF-8
	msgs := []Message{{Key: []byte("k"), OrderingKey: []byte("k"), Value: big, Timestamp: 1_700_000_000_000}}
	for _, c := range kafkaCodecs {
		e := kafkaEntry(t, msgs, c.id, 0)
		p, err := KafkaToPulsar(e)
		if err != nil {
			t.Fatal(c.name, err)
		}
		k, err := PulsarToKafka(&broker.Entry{Format: broker.FormatPulsar, MsgCount: 1, Data: p})
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeKafka(k)
		if err != nil {
			t.Fatal(err)
		}
		equalMsgs(t, msgs, back)
	}
	for _, c := range pulsarCodecs {
		e := pulsarEntry(t, msgs, c, false, 0)
		k, err := PulsarToKafka(e)
		if err != nil {
			t.Fatal(c, err)
		}
		back, err := decodeKafka(k)
		if err != nil {
			t.Fatal(err)
		}
		equalMsgs(t, msgs, back)
	}
}

// TestPulsarView pins what a Pulsar application sees of Kafka records.
func TestPulsarView(t *testing.T) {
	msgs := []Message{
		{Key: []byte("user-1"), Value: []byte("v"), Timestamp: 1_700_000_000_001,
			Headers: []Header{{"h", []byte("text")}, {"h", []byte("again")}, {"bin", []byte{0xff, 0}}, {"nil", nil}, {"__kafka_b64", []byte("x")},
				{"h", []byte{0xfe}}, {"a,b#c", nil}}},
		{Key: []byte{0xff, 0x00}, Value: nil, Timestamp: 0},
		{Key: nil, Value: []byte{}, Timestamp: 5},
	}
	e := kafkaEntry(t, msgs, kafkaNone, 100)
	p, err := KafkaToPulsar(e)
	if err != nil {
		t.Fatal(err)
	}
	md, body := splitPulsar(t, p)
	if md.GetNumMessagesInBatch() != 3 || md.GetProducerName() != KafkaProducerName || md.GetPublishTime() != uint64(e.PublishTime) || md.Compression != nil {
		t.Fatalf("metadata %v", md)
	}
	var smms []*pb.SingleMessageMetadata
	var payloads [][]byte
	for range 3 {
		n := binary.BigEndian.Uint32(body)
		smm := &pb.SingleMessageMetadata{}
		if err := proto_Unmarshal(body[4:4+n], smm); err != nil {
			t.Fatal(err)
		}
		body = body[4+n:]
		payloads = append(payloads, body[:smm.GetPayloadSize()])
		body = body[smm.GetPayloadSize():]
		smms = append(smms, smm)
	}
	s := smms[0]
	if s.GetPartitionKey() != "user-1" || s.GetPartitionKeyB64Encoded() || string(s.OrderingKey) != "user-1" || s.GetEventTime() != 1_700_000_000_001 || string(payloads[0]) != "v" {
		t.Fatalf("message 0: %v", s)
	}
	var props []string
	for _, kv := range s.Properties {
		props = append(props, kv.GetKey()+"="+kv.GetValue())
	}
	// h repeats: its last value under h, the earlier ones under derived
	// keys, the header order listed (what a properties map cannot keep).
	want := "__kafka_rep.0.h=text __kafka_rep.1.h=again bin=/wA= nil= X19rYWZrYV9iNjQ==x h=/g== a,b#c= " +
		"__kafka_b64=bin,h __kafka_null=nil,a%2Cb%23c __kafka_b64key=X19rYWZrYV9iNjQ%3D " +
		"__kafka_order=h,h,bin,nil,X19rYWZrYV9iNjQ%3D,h,a%2Cb%23c"
	if got := strings.Join(props, " "); got != want {
		t.Fatalf("properties\n got %s\nwant %s", got, want)
	}
	s = smms[1]
	if s.GetPartitionKey() != "/wA=" || !s.GetPartitionKeyB64Encoded() || !s.GetNullValue() || s.EventTime != nil || len(payloads[1]) != 0 {
		t.Fatalf("message 1: %v", s)
	}
	if len(s.Properties) != 1 || s.Properties[0].GetKey() != "__kafka_ts" || s.Properties[0].GetValue() != "0" {
		t.Fatalf("message 1 properties: %v", s.Properties)
	}
	s = smms[2]
	if s.PartitionKey != nil || s.OrderingKey != nil || s.GetNullValue() || len(payloads[2]) != 0 || s.GetEventTime() != 5 {
		t.Fatalf("message 2: %v", s)
	}
}

// TestKafkaView pins what a Kafka application sees of Pulsar messages.
func TestKafkaView(t *testing.T) {
	msgs := []Message{
		{Key: []byte("k"), OrderingKey: []byte("other"), Value: []byte("v"), Timestamp: 1_700_000_000_777, LogAppend: true,
			Headers: []Header{{"p", []byte("1")}}},
		{Value: []byte("w"), Timestamp: 1_700_000_000_777, LogAppend: true},
	}
	e := pulsarEntry(t, msgs, pb.CompressionType_NONE, false, 10)
	k, err := PulsarToKafka(e)
	if err != nil {
		t.Fatal(err)
	}
	if attrs := binary.BigEndian.Uint16(k[21:]); attrs != kafkaLogAppend {
		t.Fatalf("attributes %#x, want log-append time", attrs)
	}
	if ts := int64(binary.BigEndian.Uint64(k[35:])); ts != 1_700_000_000_777 {
		t.Fatalf("max timestamp %d", ts)
	}
	recs := k[kafkaHeaderSize:]
	l, n := binary.Varint(recs)
	var r kmsg.Record
	if err := r.ReadFrom(recs[:n+int(l)]); err != nil {
		t.Fatal(err)
	}
	if string(r.Key) != "k" || string(r.Value) != "v" || len(r.Headers) != 2 || r.Headers[0].Key != "p" || r.Headers[1].Key != orderingKeyHeader || string(r.Headers[1].Value) != "other" {
		t.Fatalf("record 0: %+v", r)
	}
	recs = recs[n+int(l):]
	l, n = binary.Varint(recs)
	if err := r.ReadFrom(recs[:n+int(l)]); err != nil {
		t.Fatal(err)
	}
	if r.Key != nil || string(r.Value) != "w" || len(r.Headers) != 0 || r.OffsetDelta != 1 {
		t.Fatalf("record 1: %+v", r)
	}
}

func TestErrors(t *testing.T) {
	if _, err := PulsarToKafka(&broker.Entry{Data: []byte{1, 2, 3}, MsgCount: 1}); err == nil {
		t.Fatal("garbage converted")
	}
	if _, err := KafkaToPulsar(&broker.Entry{Data: make([]byte, 70), MsgCount: 1}); err == nil {
		t.Fatal("garbage converted")
	}
	// Message count disagreeing with the entry.
	e := kafkaEntry(t, randKafka(rand.New(rand.NewPCG(1, 1)), 3), kafkaNone, 0)
	e.MsgCount = 2
	if _, err := KafkaToPulsar(e); err == nil {
		t.Fatal("count mismatch converted")
	}
	// Chunked Pulsar messages have no faithful conversion.
	md := &pb.MessageMetadata{ProducerName: proto_String("p"), SequenceId: proto_Uint64(1), PublishTime: proto_Uint64(1), NumChunksFromMsg: proto_Int32(2)}
	if _, err := PulsarToKafka(&broker.Entry{Data: encodePulsarStored(md, []byte("x")), MsgCount: 1}); err != ErrUnsupported {
		t.Fatalf("chunk: %v", err)
	}
	// Encrypted ones neither (encryption_keys, field 13, is not in our pb).
	md.NumChunksFromMsg = nil
	mdb, _ := proto_Marshal(md)
	mdb = append(mdb, 13<<3|2, 2, 0x0a, 0x00) // one EncryptionKeys{key: ""}
	stored := encodePulsarStored(&pb.MessageMetadata{}, nil)[:pulsarHdrSize]
	binary.BigEndian.PutUint32(stored[6:], uint32(len(mdb)))
	stored = append(append(stored, mdb...), 'x')
	if _, err := PulsarToKafka(&broker.Entry{Data: stored, MsgCount: 1}); err != ErrUnsupported {
		t.Fatalf("encrypted: %v", err)
	}
}

// TestLimitCompresses: a conversion larger than the reader's limit comes
// LZ4-compressed, and still decodes to the same messages.
func TestLimitCompresses(t *testing.T) {
	zeros := make([]byte, 300<<10)
	var msgs []Message
	for i := range 20 {
		k := []byte{byte(i)}
		msgs = append(msgs, Message{Key: k, OrderingKey: k, Value: zeros, Timestamp: 1_700_000_000_000 + int64(i)})
	}
	ke := kafkaEntry(t, msgs, kafkaZstd, 5)
	p, err := AppendKafkaToPulsar([]byte("prefix"), ke, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if string(p[:6]) != "prefix" || len(p) > 1<<20 {
		t.Fatalf("%d bytes", len(p))
	}
	p = p[6:]
	md, _ := splitPulsar(t, p)
	if md.GetCompression() != pb.CompressionType_LZ4 || md.GetUncompressedSize() < 6_000_000 {
		t.Fatalf("metadata %v", md)
	}
	got, err := decodePulsar(p)
	if err != nil {
		t.Fatal(err)
	}
	equalMsgs(t, msgs, got)

	pe := pulsarEntry(t, msgs, pb.CompressionType_ZSTD, false, 5)
	k, err := AppendPulsarToKafka(nil, pe, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	checkKafkaBatch(t, k, 5, len(msgs))
	if attrs := binary.BigEndian.Uint16(k[21:]); attrs&kafkaCodecMask != kafkaLz4 || len(k) > 1<<20 {
		t.Fatalf("attributes %#x, %d bytes", attrs, len(k))
	}
	back, err := decodeKafka(k)
	if err != nil {
		t.Fatal(err)
	}
	equalMsgs(t, msgs, back)

	// Incompressible data stays as it is.
	r := rand.New(rand.NewPCG(1, 1))
	noise := make([]byte, 2<<20)
	for i := range noise {
		noise[i] = byte(r.UintN(256))
	}
	big := []Message{{Value: noise, Timestamp: 1}}
	if k, err = AppendPulsarToKafka(nil, pulsarEntry(t, big, pb.CompressionType_NONE, false, 0), 1<<20); err != nil || binary.BigEndian.Uint16(k[21:])&kafkaCodecMask != 0 {
		t.Fatalf("incompressible: %v", err)
	}
}

func TestKafkaHeaderOK(t *testing.T) {
	e := kafkaEntry(t, randKafka(rand.New(rand.NewPCG(2, 2)), 2), kafkaGzip, 0)
	if !KafkaHeaderOK(e) {
		t.Fatal("real batch rejected")
	}
	for _, d := range [][]byte{[]byte("kafka batch"), e.Data[:60], e.Data[:len(e.Data)-1]} {
		if KafkaHeaderOK(&broker.Entry{Data: d}) {
			t.Fatalf("%d bytes accepted", len(d))
		}
	}
}
