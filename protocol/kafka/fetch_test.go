package kafka

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

// Pulsar-format entries are not converted yet: a Kafka consumer gets an
// empty batch spanning their offsets and moves on, offsets stay exact.
func TestFetchSkipsPulsarEntries(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	c := dialRaw(t, s.addr)
	createTopicRaw(t, c, "mixed", 1)
	part, err := s.broker.OpenPartition(ctx, broker.TopicName{Domain: "persistent", Tenant: "public", Namespace: "default", Local: "mixed-partition-0"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.do(produceReq("mixed", 0, makeBatch(-1, -1, -1, 1000, "a", "b"))).(*kmsg.ProduceResponse); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(r.Topics[0].Partitions[0].ErrorCode))
	}
	if _, err := part.Append(ctx, broker.AppendRequest{Format: broker.FormatPulsar, MsgCount: 3, Data: []byte("pulsar entry")}); err != nil {
		t.Fatal(err)
	}
	if r := c.do(produceReq("mixed", 0, makeBatch(-1, -1, -1, 2000, "c"))).(*kmsg.ProduceResponse); r.Topics[0].Partitions[0].BaseOffset != 5 {
		t.Fatalf("offset after pulsar entry: %+v", r.Topics[0].Partitions[0])
	}
	cl := newKgo(t, s.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"mixed": {0: kgo.NewOffset().AtStart()}}))
	var got []*kgo.Record
	for len(got) < 3 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got = append(got, fs.Records()...)
	}
	if string(got[0].Value) != "a" || got[1].Offset != 1 || string(got[2].Value) != "c" || got[2].Offset != 5 {
		t.Fatalf("records: %v %v %v", got[0], got[1], got[2])
	}
}

func fetchReq(sessionID, epoch int32, maxBytes int32, parts map[int32]int64) *kmsg.FetchRequest {
	f := kmsg.NewPtrFetchRequest()
	f.Version = 12
	f.SessionID, f.SessionEpoch = sessionID, epoch
	f.MaxBytes = maxBytes
	if len(parts) > 0 {
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = "sess"
		for p := range int32(2) {
			if off, ok := parts[p]; ok {
				fp := kmsg.NewFetchRequestTopicPartition()
				fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p, off, 1<<20
				ft.Partitions = append(ft.Partitions, fp)
			}
		}
		f.Topics = append(f.Topics, ft)
	}
	return f
}

func TestFetchSessionsAndLimits(t *testing.T) {
	s := startServer(t)
	c := dialRaw(t, s.addr)
	createTopicRaw(t, c, "sess", 2)

	r := c.do(fetchReq(0, 0, 1<<20, map[int32]int64{0: 0, 1: 0})).(*kmsg.FetchResponse)
	if r.ErrorCode != 0 || r.SessionID == 0 || len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 2 {
		t.Fatalf("new session: %+v", r)
	}
	id := r.SessionID

	big := makeBatch(-1, -1, -1, 1000, string(make([]byte, 5000)))
	c.do(produceReq("sess", 0, big))
	// Incremental, nothing re-sent: only partition 0 changed.
	r = c.do(fetchReq(id, 1, 100, nil)).(*kmsg.FetchResponse)
	if r.ErrorCode != 0 || len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		t.Fatalf("incremental: %+v", r)
	}
	p0 := r.Topics[0].Partitions[0]
	// The batch exceeds max bytes (100) but is the first: returned whole.
	if p0.Partition != 0 || p0.HighWatermark != 1 || len(p0.RecordBatches) != len(big) {
		t.Fatalf("partition 0: hw %d, %d bytes", p0.HighWatermark, len(p0.RecordBatches))
	}
	// Nothing changed: an empty incremental answer (after max wait 0).
	r = c.do(fetchReq(id, 2, 1<<20, map[int32]int64{0: 1})).(*kmsg.FetchResponse)
	if r.ErrorCode != 0 || len(r.Topics) != 0 {
		t.Fatalf("unchanged: %+v", r)
	}
	// Wrong epoch, unknown session.
	if r = c.do(fetchReq(id, 7, 1<<20, nil)).(*kmsg.FetchResponse); r.ErrorCode != kerr.InvalidFetchSessionEpoch.Code {
		t.Fatalf("bad epoch: %d", r.ErrorCode)
	}
	if r = c.do(fetchReq(id+1, 1, 1<<20, nil)).(*kmsg.FetchResponse); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("bad id: %d", r.ErrorCode)
	}
	// Out of range offsets are reported per partition.
	r = c.do(fetchReq(0, -1, 1<<20, map[int32]int64{1: 42})).(*kmsg.FetchResponse)
	if r.SessionID != 0 || r.Topics[0].Partitions[0].ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("out of range: %+v", r)
	}
}

// TestFetchSplicedBatches: large batches are written from storage's read
// buffers, small and converted ones are copied; a fetch mixing them
// returns every batch intact at its offset, in every served version, and
// responses pipelined behind it stay in order.
func TestFetchSplicedBatches(t *testing.T) {
	onEachStorage(t, func(t *testing.T, s *testServer, durable bool) {
		ctx := testCtx(t)
		c := dialRaw(t, s.addr)
		createTopicRaw(t, c, "splice", 1)
		part, err := s.broker.OpenPartition(ctx, broker.TopicName{Domain: "persistent", Tenant: "public", Namespace: "default", Local: "splice-partition-0"}, false)
		if err != nil {
			t.Fatal(err)
		}
		big := func(b byte) string { return string(bytes.Repeat([]byte{b}, minSpliceBytes+100)) }
		produce := func(values ...string) {
			t.Helper()
			if r := c.do(produceReq("splice", 0, makeBatch(-1, -1, -1, 1000, values...))).(*kmsg.ProduceResponse); r.Topics[0].Partitions[0].ErrorCode != 0 {
				t.Fatal(kerr.ErrorForCode(r.Topics[0].Partitions[0].ErrorCode))
			}
		}
		produce(big('a'), "b") // offsets 0-1, spliced
		produce("c")           // 2, copied
		produce(big('d'))      // 3, spliced
		if _, err := part.Append(ctx, broker.AppendRequest{Format: broker.FormatPulsar, MsgCount: 2, Data: []byte("not a pulsar frame")}); err != nil {
			t.Fatal(err)
		} // 4-5: an empty batch in its place
		produce(big('e'), big('f')) // 6-7, spliced
		produce("g")                // 8, copied
		want := map[int64]string{0: big('a'), 1: "b", 2: "c", 3: big('d'), 6: big('e'), 7: big('f'), 8: "g"}

		// Served from the entry cache; on files, again after a
		// restart, read from the ledger files.
		fetchAll := func(t *testing.T, c *rawConn) {
			for version := int16(4); version <= 12; version++ {
				f := kmsg.NewPtrFetchRequest()
				f.Version = version
				f.MaxBytes = 1 << 20
				f.SessionEpoch = -1
				ft := kmsg.NewFetchRequestTopic()
				ft.Topic = "splice"
				fp := kmsg.NewFetchRequestTopicPartition()
				fp.PartitionMaxBytes = 1 << 20
				ft.Partitions = append(ft.Partitions, fp)
				f.Topics = append(f.Topics, ft)
				m := kmsg.NewPtrMetadataRequest()
				m.Version = 9
				c1, c2, c3 := c.send(f), c.send(m), c.send(f)
				for _, corr := range []int32{c1, c3} {
					if corr == c3 {
						c.recv(m, c2)
					}
					r := c.recv(f, corr).(*kmsg.FetchResponse)
					p := r.Topics[0].Partitions[0]
					if p.ErrorCode != 0 || p.HighWatermark != 9 {
						t.Fatalf("v%d: partition %+v", version, p)
					}
					got := map[int64]string{}
					for _, rec := range decodeRecords(t, p.RecordBatches) {
						got[rec.Offset] = string(rec.Value)
					}
					if len(got) != len(want) {
						t.Fatalf("v%d: %d records, want %d", version, len(got), len(want))
					}
					for off, v := range want {
						if got[off] != v {
							t.Fatalf("v%d: offset %d: %d bytes, want %d", version, off, len(got[off]), len(v))
						}
					}
				}
			}
		}
		fetchAll(t, c)
		if durable {
			s.restart()
			fetchAll(t, dialRaw(t, s.addr))
		}
	})
}

// decodeRecords parses uncompressed v2 record batches, checking each
// batch's CRC.
func decodeRecords(t *testing.T, b []byte) []kgo.Record {
	t.Helper()
	var out []kgo.Record
	for len(b) > 0 {
		var batch kmsg.RecordBatch
		if err := batch.ReadFrom(b); err != nil {
			t.Fatal(err)
		}
		if crc := int32(crc32.Checksum(b[21:12+batch.Length], castagnoli)); crc != batch.CRC {
			t.Fatalf("batch at offset %d: CRC mismatch", batch.FirstOffset)
		}
		recs := batch.Records
		for range batch.NumRecords {
			var r kmsg.Record
			if err := r.ReadFrom(recs); err != nil {
				t.Fatal(err)
			}
			var lenBuf [binary.MaxVarintLen64]byte
			recs = recs[binary.PutVarint(lenBuf[:], int64(r.Length))+int(r.Length):]
			out = append(out, kgo.Record{Offset: batch.FirstOffset + int64(r.OffsetDelta), Value: r.Value})
		}
		b = b[12+batch.Length:]
	}
	return out
}

// TestFetchBudgetAcrossPartitions: only the first non-empty partition may
// exceed the limits, with its first batch (KIP-74); a later partition whose
// next batch does not fit what is left returns nothing (and its high
// watermark), from the entry cache and from files alike.
func TestFetchBudgetAcrossPartitions(t *testing.T) {
	onEachStorage(t, func(t *testing.T, s *testServer, durable bool) {
		c := dialRaw(t, s.addr)
		createTopicRaw(t, c, "budget", 2)
		for p := range int32(2) {
			for i := range 2 {
				b := makeBatch(-1, -1, -1, 1000, string(bytes.Repeat([]byte{byte('a' + i)}, 30000)))
				if r := c.do(produceReq("budget", p, b)).(*kmsg.ProduceResponse); r.Topics[0].Partitions[0].ErrorCode != 0 {
					t.Fatal(kerr.ErrorForCode(r.Topics[0].Partitions[0].ErrorCode))
				}
			}
		}
		fetch := func(maxBytes int32) []int {
			f := kmsg.NewPtrFetchRequest()
			f.Version = 12
			f.SessionEpoch = -1
			f.MaxBytes = maxBytes
			ft := kmsg.NewFetchRequestTopic()
			ft.Topic = "budget"
			for p := range int32(2) {
				fp := kmsg.NewFetchRequestTopicPartition()
				fp.Partition, fp.PartitionMaxBytes = p, 1<<20
				ft.Partitions = append(ft.Partitions, fp)
			}
			f.Topics = append(f.Topics, ft)
			r := c.do(f).(*kmsg.FetchResponse)
			var got []int
			for _, p := range r.Topics[0].Partitions {
				if p.ErrorCode != 0 || p.HighWatermark != 2 {
					t.Fatalf("partition %d: %+v", p.Partition, p)
				}
				got = append(got, len(decodeRecords(t, p.RecordBatches)))
			}
			return got
		}
		cases := []struct {
			maxBytes int32
			want     []int
		}{
			{1, []int{1, 0}},       // the first batch of the first partition only
			{45000, []int{1, 0}},   // the second batch of either does not fit
			{70000, []int{2, 0}},   // both of partition 0, nothing left for 1
			{100000, []int{2, 1}},  // one of partition 1 fits after them
			{1 << 20, []int{2, 2}}, // everything
		}
		// Durable: first from the entry cache, then from the files.
		for _, from := range []string{"cache", "files"} {
			if from == "files" {
				if !durable {
					break
				}
				s.restart() // an empty cache: reads go to the files
				c = dialRaw(t, s.addr)
			}
			for _, tc := range cases {
				if got := fetch(tc.maxBytes); !slices.Equal(got, tc.want) {
					t.Fatalf("max bytes %d from %s: records per partition %v, want %v", tc.maxBytes, from, got, tc.want)
				}
			}
		}
	})
}

// onEachStorage runs body against a server on in-memory files and one on
// ledger files (durable: reads come from files and the entry cache, and it
// can restart).
func onEachStorage(t *testing.T, body func(t *testing.T, s *testServer, durable bool)) {
	t.Run("memory", func(t *testing.T) { body(t, startServer(t), false) })
	t.Run("files", func(t *testing.T) { body(t, startDurableServer(t), true) })
}
