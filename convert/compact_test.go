package convert

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/kopernik-io/kopernik/managedledger"
)

// TestCompactionRewriteKeepsCodec: a compacted Kafka batch keeps its codec
// (the topic's compression.type, applied on write), base offset, span and
// producer fields; kept records keep their offsets; the CRC is valid.
func TestCompactionRewriteKeepsCodec(t *testing.T) {
	for _, codec := range []int{kafkaNone, kafkaGzip, kafkaSnappy, kafkaLz4, kafkaZstd} {
		msgs := make([]Message, 5)
		for i := range msgs {
			msgs[i] = Message{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("value %d of codec %d", i, codec)), Timestamp: 1000 + int64(i)}
		}
		msgs[3].Value = nil
		plain := appendKafka(nil, 0, msgs)
		body, err := compressKafkaCodec(codec, plain[kafkaHeaderSize:])
		if err != nil {
			t.Fatal(err)
		}
		b := append(append([]byte{}, plain[:kafkaHeaderSize]...), body...)
		binary.BigEndian.PutUint16(b[21:], binary.BigEndian.Uint16(b[21:])|uint16(codec))
		binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
		binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
		e := &managedledger.Entry{Format: managedledger.FormatKafka, FirstIndex: 100, MsgCount: 5, Data: b}

		recs, err := CompactionCodec{}.Records(e)
		if err != nil || len(recs) != 5 || recs[4].Offset != 104 || !recs[3].Tombstone || recs[2].Tombstone || string(recs[1].Key) != "k1" {
			t.Fatalf("codec %d: records %+v, %v", codec, recs, err)
		}
		out, format, err := CompactionCodec{}.Rewrite(e, []bool{false, true, false, true, true})
		if err != nil || format != managedledger.FormatKafka {
			t.Fatalf("codec %d: rewrite %v %v", codec, format, err)
		}
		if got := int(binary.BigEndian.Uint16(out[21:]) & kafkaCodecMask); got != codec {
			t.Fatalf("codec %d: rewritten with codec %d", codec, got)
		}
		if crc32.Checksum(out[21:], castagnoli) != binary.BigEndian.Uint32(out[17:]) || int(binary.BigEndian.Uint32(out[8:]))+12 != len(out) {
			t.Fatalf("codec %d: bad CRC or length", codec)
		}
		if last := binary.BigEndian.Uint32(out[23:]); last != 4 {
			t.Fatalf("codec %d: last offset delta %d", codec, last)
		}
		ne := &managedledger.Entry{Format: managedledger.FormatKafka, FirstIndex: 100, MsgCount: 5, Data: out}
		recs, err = CompactionCodec{}.Records(ne)
		if err != nil || len(recs) != 3 || recs[0].Offset != 101 || recs[1].Offset != 103 || !recs[1].Tombstone || recs[2].Offset != 104 {
			t.Fatalf("codec %d: rewritten records %+v, %v", codec, recs, err)
		}
		if KafkaRecordCount(ne) != 3 {
			t.Fatalf("codec %d: record count %d", codec, KafkaRecordCount(ne))
		}
		// Pulsar readers get the kept records as one batch.
		if _, err := AppendKafkaToPulsar(nil, ne, 0); err != nil {
			t.Fatalf("codec %d: to Pulsar: %v", codec, err)
		}
	}
}
