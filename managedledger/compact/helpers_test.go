package compact_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// rec is one record a test produces or reads back.
type rec struct {
	key   []byte // nil: keyless
	value []byte // nil: tombstone
}

// kafkaBatch encodes recs as one Kafka v2 batch (base offset 0, as
// producers send it), gzip-compressed if gz. control makes it a
// transaction marker batch (commit) of producer pid; txn marks its
// records transactional for producer pid.
func kafkaBatch(recs []rec, gz, txn, control bool, pid int64) []byte {
	var plain []byte
	for i, r := range recs {
		var body []byte
		body = append(body, 0)
		body = binary.AppendVarint(body, 0)
		body = binary.AppendVarint(body, int64(i))
		body = appendBytes(body, r.key)
		body = appendBytes(body, r.value)
		body = binary.AppendVarint(body, 0)
		plain = binary.AppendVarint(plain, int64(len(body)))
		plain = append(plain, body...)
	}
	records := plain
	var attrs uint16
	if gz {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(plain)
		w.Close()
		records, attrs = buf.Bytes(), 1
	}
	if txn || control {
		attrs |= 0x10
	}
	if control {
		attrs |= 0x20
	}
	if !txn && !control {
		pid = -1
	}
	b := binary.BigEndian.AppendUint64(nil, 0)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, attrs)
	b = binary.BigEndian.AppendUint32(b, uint32(len(recs)-1))
	b = binary.BigEndian.AppendUint64(b, 1000)
	b = binary.BigEndian.AppendUint64(b, 1000)
	b = binary.BigEndian.AppendUint64(b, uint64(pid))
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(recs)))
	b = append(b, records...)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

func appendBytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	b = binary.AppendVarint(b, int64(len(v)))
	return append(b, v...)
}

// readBatch decodes a Kafka v2 batch stored at firstIndex: offset -> record.
// It checks the CRC, the record count and that offsets lie within the
// batch's span.
func readBatch(t testing.TB, data []byte, firstIndex int64, span int32) (map[int64]rec, bool) {
	t.Helper()
	if crc32.Checksum(data[21:], castagnoli) != binary.BigEndian.Uint32(data[17:]) {
		t.Fatalf("batch at %d: bad CRC", firstIndex)
	}
	if int64(binary.BigEndian.Uint32(data[8:]))+12 != int64(len(data)) {
		t.Fatalf("batch at %d: length field %d, %d bytes", firstIndex, binary.BigEndian.Uint32(data[8:]), len(data))
	}
	attrs := binary.BigEndian.Uint16(data[21:])
	if last := int32(binary.BigEndian.Uint32(data[23:])); last != span-1 {
		t.Fatalf("batch at %d: last offset delta %d, span %d", firstIndex, last, span)
	}
	recs := data[61:]
	if attrs&7 == 1 {
		zr, err := gzip.NewReader(bytes.NewReader(recs))
		if err != nil {
			t.Fatal(err)
		}
		if recs, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	count := int(binary.BigEndian.Uint32(data[57:]))
	out := map[int64]rec{}
	for range count {
		l, n := binary.Varint(recs)
		body := recs[n : n+int(l)]
		recs = recs[n+int(l):]
		body = body[1:]
		_, n = binary.Varint(body) // ts delta
		body = body[n:]
		delta, n := binary.Varint(body)
		body = body[n:]
		var r rec
		r.key, body = readBytes(body)
		r.value, _ = readBytes(body)
		if delta < 0 || delta >= int64(span) {
			t.Fatalf("batch at %d: offset delta %d outside span %d", firstIndex, delta, span)
		}
		out[firstIndex+delta] = r
	}
	if len(recs) != 0 {
		t.Fatalf("batch at %d: %d bytes after %d records", firstIndex, len(recs), count)
	}
	return out, attrs&0x20 != 0
}

func readBytes(b []byte) ([]byte, []byte) {
	l, n := binary.Varint(b)
	b = b[n:]
	if l < 0 {
		return nil, b
	}
	return append([]byte{}, b[:l]...), b[l:]
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newLedger opens an in-memory managed ledger on store.
func newLedger(t testing.TB, store metadata.Store, name string) *managedledger.ManagedLedger {
	t.Helper()
	f, err := managedledger.NewFactory(managedledger.FactoryOptions{Store: store, Logger: quietLogger(), RetentionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	ml, err := f.Open(context.Background(), name, managedledger.Config{MaxLedgerBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return ml
}

// flakyStore fails Put at the powerFS's failing step: before applying it,
// or after (an ambiguous failure, as etcd's timeout).
type flakyStore struct {
	metadata.Store
	fs    *powerFS
	after bool
}

func (s *flakyStore) Put(ctx context.Context, path string, value []byte, expected int64) (int64, error) {
	s.fs.mu.Lock()
	err := s.fs.stepLocked()
	s.fs.mu.Unlock()
	if err == nil {
		return s.Store.Put(ctx, path, value, expected)
	}
	if !s.after {
		return 0, err
	}
	if _, perr := s.Store.Put(ctx, path, value, expected); perr != nil {
		return 0, perr
	}
	return 0, fmt.Errorf("%w: %v", metadata.ErrUnavailable, err)
}

var _ fs.PathError

// pulsarBatch encodes recs as one stored Pulsar batch payload (from the
// 0x0e01 magic on): keys as partition keys, nil values as null_value.
func pulsarBatch(t testing.TB, recs []rec) []byte {
	t.Helper()
	var payload []byte
	for _, r := range recs {
		smm := &pb.SingleMessageMetadata{PayloadSize: proto.Int32(int32(len(r.value)))}
		if r.key != nil {
			smm.PartitionKey = proto.String(string(r.key))
		}
		if r.value == nil {
			smm.NullValue = proto.Bool(true)
		}
		b, err := proto.Marshal(smm)
		if err != nil {
			t.Fatal(err)
		}
		payload = binary.BigEndian.AppendUint32(payload, uint32(len(b)))
		payload = append(payload, b...)
		payload = append(payload, r.value...)
	}
	md, err := proto.Marshal(&pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(0),
		PublishTime: proto.Uint64(1000), NumMessagesInBatch: proto.Int32(int32(len(recs)))})
	if err != nil {
		t.Fatal(err)
	}
	out := binary.BigEndian.AppendUint16(nil, 0x0e01)
	out = append(out, 0, 0, 0, 0)
	out = binary.BigEndian.AppendUint32(out, uint32(len(md)))
	out = append(out, md...)
	out = append(out, payload...)
	binary.BigEndian.PutUint32(out[2:], crc32.Checksum(out[6:], castagnoli))
	return out
}
