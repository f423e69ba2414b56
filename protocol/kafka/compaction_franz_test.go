package kafka

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kopernik-io/kopernik/broker"
)

// compactPartitions runs a compaction of every partition of topic now
// (force: everything visible, as Pulsar's manual compaction; else only when
// the policies say it is due, as the background pass).
func compactPartitions(t *testing.T, s *testServer, topic string, partitions int, force bool) {
	t.Helper()
	for i := range partitions {
		name, err := broker.ParseTopicName(topic, "public", "default")
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.broker.OpenPartition(context.Background(), name.Partition(i), false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Compact(context.Background(), force); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFranzChangelogCompaction is a Kafka Streams-like changelog: keys
// updated many times with tombstones on a cleanup.policy=compact topic,
// compacted by the policy-driven pass, the broker restarted, and the table
// restored from the topic with franz-go: it equals the last values, every
// restored record at the offset it was produced at, and compaction dropped
// the superseded records. A keyless record is refused with INVALID_RECORD.
func TestFranzChangelogCompaction(t *testing.T) {
	s := startDurableServer(t)
	ctx := testCtx(t)
	cl := newKgo(t, s.addr, kgo.DefaultProduceTopic("changelog"), kgo.ProducerLinger(0))
	adm := kadm.NewClient(cl)
	const partitions = 2
	if _, err := adm.CreateTopic(ctx, partitions, 1, map[string]*string{
		"cleanup.policy":            ptr("compact"),
		"segment.bytes":             ptr("4096"),
		"min.cleanable.dirty.ratio": ptr("0.1"),
		"delete.retention.ms":       ptr("86400000"),
	}, "changelog"); err != nil {
		t.Fatal(err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "changelog")
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := rcs.On("changelog", nil)
	if v := configValue(rc.Configs, "cleanup.policy"); v != "compact" {
		t.Fatalf("cleanup.policy described as %q", v)
	}
	if v := configValue(rc.Configs, "min.cleanable.dirty.ratio"); v != "0.1" {
		t.Fatalf("min.cleanable.dirty.ratio described as %q", v)
	}

	// A keyless record: INVALID_RECORD.
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("no key")}).FirstErr(); !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("keyless record to a compacted topic: %v, want INVALID_RECORD", err)
	}

	type last struct {
		value     []byte // nil: deleted
		offset    int64
		partition int32
	}
	table := map[string]last{}
	rng := rand.New(rand.NewPCG(1, 2))
	produced := 0
	produce := func(rounds int, cl *kgo.Client) {
		for round := range rounds {
			var recs []*kgo.Record
			for range 40 {
				k := fmt.Sprintf("key-%03d", rng.IntN(60))
				r := &kgo.Record{Key: []byte(k), Value: []byte(fmt.Sprintf("%s=r%d-%d", k, round, rng.Uint32())), Topic: "changelog"}
				if rng.IntN(8) == 0 {
					r.Value = nil // tombstone
				}
				recs = append(recs, r)
			}
			res := cl.ProduceSync(ctx, recs...)
			if err := res.FirstErr(); err != nil {
				t.Fatal(err)
			}
			for _, pr := range res {
				table[string(pr.Record.Key)] = last{value: pr.Record.Value, offset: pr.Record.Offset, partition: pr.Record.Partition}
			}
			produced += len(recs)
		}
	}
	// restore reads the topic from the start with a fresh client, as a
	// Streams application restores its table, and checks it.
	restore := func() int {
		t.Helper()
		cl2 := newKgo(t, s.addr, kgo.ConsumeTopics("changelog"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		defer cl2.Close()
		adm2 := kadm.NewClient(cl2)
		ends, err := adm2.ListEndOffsets(ctx, "changelog")
		if err != nil {
			t.Fatal(err)
		}
		restored := map[string]last{}
		read := 0
		maxOff := map[int32]int64{}
		caughtUp := func() bool {
			ok := true
			ends.Each(func(o kadm.ListedOffset) {
				if m, seen := maxOff[o.Partition]; o.Offset > 0 && (!seen || m < o.Offset-1) {
					ok = false
				}
			})
			return ok
		}
		for !caughtUp() {
			fs := cl2.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				t.Fatal(err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				read++
				maxOff[r.Partition] = max(maxOff[r.Partition], r.Offset)
				if r.Value == nil {
					delete(restored, string(r.Key))
				} else {
					restored[string(r.Key)] = last{value: r.Value, offset: r.Offset, partition: r.Partition}
				}
			})
		}
		for k, want := range table {
			got, ok := restored[k]
			if want.value == nil {
				if ok {
					t.Fatalf("key %s deleted, restored as %q", k, got.value)
				}
				continue
			}
			if !ok || string(got.value) != string(want.value) || got.offset != want.offset || got.partition != want.partition {
				t.Fatalf("key %s: restored %q at %d/%d, want %q at %d/%d", k, got.value, got.partition, got.offset, want.value, want.partition, want.offset)
			}
		}
		for k := range restored {
			if _, ok := table[k]; !ok {
				t.Fatalf("restored unknown key %s", k)
			}
		}
		return read
	}
	storage := func() (bytes int64) {
		for i := range partitions {
			name, _ := broker.ParseTopicName("changelog", "public", "default")
			p, err := s.broker.OpenPartition(ctx, name.Partition(i), false)
			if err != nil {
				t.Fatal(err)
			}
			bytes += p.Stats().Bytes
		}
		return bytes
	}

	produce(30, cl)
	before := storage()
	compactPartitions(t, s, "changelog", partitions, false)
	after := storage()
	if after >= before/2 {
		t.Fatalf("raw ledgers below the cleaned point not released: %d bytes before, %d after", before, after)
	}

	s.restart()
	read := restore()
	if read >= produced/2 {
		t.Fatalf("read %d of %d produced records: compaction dropped too little", read, produced)
	}
	// More updates on top of the released ledgers, a second compaction
	// (the previous view, not the raw log, holds the old keys now), and a
	// restore again.
	cl3 := newKgo(t, s.addr, kgo.ProducerLinger(0))
	produce(10, cl3)
	compactPartitions(t, s, "changelog", partitions, true)
	read2 := restore()
	t.Logf("produced %d records over %d keys; raw %d bytes, %d after the first compaction; restored from %d, then %d", produced, len(table), before, after, read, read2)
}

// TestFranzCompactionTransactions: on a compacted topic, records of
// aborted transactions are dropped by compaction (their keys keep the
// committed values), markers stay, and both isolation levels restore the
// committed table; deleting the topic removes its view.
func TestFranzCompactionTransactions(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{
		"cleanup.policy": ptr("compact"), "segment.bytes": ptr("1024"), "min.cleanable.dirty.ratio": ptr("0"),
	}, "txtable"); err != nil {
		t.Fatal(err)
	}
	// The broker-wide defaults, under Kafka's broker config names.
	brc, err := adm.DescribeBrokerConfigs(ctx)
	if err != nil || len(brc) != 1 {
		t.Fatal(brc, err)
	}
	for name, want := range map[string]string{"compression.type": "producer", "log.cleanup.policy": "delete",
		"log.cleaner.min.cleanable.ratio": "0.5", "log.cleaner.delete.retention.ms": "86400000"} {
		if got := configValue(brc[0].Configs, name); got != want {
			t.Errorf("broker config %s = %q, want %q", name, got, want)
		}
	}
	tx := newKgo(t, s.addr, kgo.TransactionalID("tx-compact"), kgo.DefaultProduceTopic("txtable"))
	committed := map[string]string{}
	for round := range 12 {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		abort := round%3 == 2
		vals := map[string]string{}
		var recs []*kgo.Record
		for k := range 8 {
			key := fmt.Sprintf("k%d", k)
			vals[key] = fmt.Sprintf("%s-round%d-%s", key, round, map[bool]string{true: "aborted", false: "committed"}[abort])
			recs = append(recs, &kgo.Record{Key: []byte(key), Value: []byte(vals[key] + string(make([]byte, 100)))})
		}
		if err := tx.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := tx.EndTransaction(ctx, kgo.TransactionEndTry(!abort)); err != nil {
			t.Fatal(err)
		}
		if !abort {
			for k, v := range vals {
				committed[k] = v
			}
		}
	}
	if err := s.broker.CompactionPass(ctx); err != nil {
		t.Fatal(err)
	}
	name, _ := broker.ParseTopicName("txtable", "public", "default")
	info, ok, err := s.compactor.Info(ctx, name.Partition(0).LedgerName())
	if err != nil || !ok || info.Cleaned == 0 {
		t.Fatalf("no view after the pass: %+v %v %v", info, ok, err)
	}
	for _, iso := range []kgo.IsolationLevel{kgo.ReadCommitted(), kgo.ReadUncommitted()} {
		cl := newKgo(t, s.addr, kgo.ConsumeTopics("txtable"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso))
		got := map[string]string{}
		aborted := 0
		checkFor(t, 10*time.Second, func() error {
			fs := cl.PollRecords(ctx, 1000)
			fs.EachRecord(func(r *kgo.Record) {
				v := string(r.Value[:len(r.Value)-100])
				if offset := r.Offset; offset < info.Cleaned && len(v) > 7 && v[len(v)-7:] == "aborted" {
					aborted++
				}
				if iso == kgo.ReadCommitted() || v[len(v)-7:] != "aborted" {
					got[string(r.Key)] = v
				}
			})
			if fmt.Sprint(got) != fmt.Sprint(committed) {
				return fmt.Errorf("table %v, want %v", got, committed)
			}
			return nil
		})
		if aborted > 0 {
			t.Fatalf("%d aborted records below the cleaned point %d", aborted, info.Cleaned)
		}
	}
	if r, err := adm.DeleteTopic(ctx, "txtable"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	if _, ok, err := s.compactor.Info(ctx, name.Partition(0).LedgerName()); ok || err != nil {
		t.Fatalf("view left after the topic was deleted: %v %v", ok, err)
	}
}

// TestKafkaGoCompactedCodecs: kafka-go's Writer (each codec) on a compacted
// topic, a full compaction (batches rewritten with gaps, in their codec),
// and kafka-go's Reader restores the last value of every key in offset
// order; a keyless message is refused with INVALID_RECORD.
func TestKafkaGoCompactedCodecs(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(newKgo(t, s.addr))
	for _, codec := range []kafkago.Compression{0, kafkago.Gzip, kafkago.Snappy, kafkago.Lz4, kafkago.Zstd} {
		topic := fmt.Sprintf("kgo-compacted-%d", codec)
		if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": ptr("compact")}, topic); err != nil {
			t.Fatal(err)
		}
		tr := &kafkago.Transport{MetadataTTL: 100 * time.Millisecond} // its own metadata cache: the topic is new
		defer tr.CloseIdleConnections()
		w := &kafkago.Writer{Addr: kafkago.TCP(s.addr), Topic: topic, RequiredAcks: kafkago.RequireAll,
			BatchTimeout: 5 * time.Millisecond, BatchSize: 25, Compression: codec, Transport: tr}
		want := map[string]string{}
		var msgs []kafkago.Message
		for i := range 200 {
			k := fmt.Sprintf("key-%d", (i*7)%10)
			want[k] = fmt.Sprintf("%s=%d", k, i)
			msgs = append(msgs, kafkago.Message{Key: []byte(k), Value: []byte(want[k])})
		}
		for i := 0; i < len(msgs); i += 25 {
			var err error
			for range 20 { // kafka-go's metadata may not know the new topic yet
				if err = w.WriteMessages(ctx, msgs[i:i+25]...); err == nil || !errors.Is(err, kafkago.UnknownTopicOrPartition) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		var we kafkago.WriteErrors
		if err := w.WriteMessages(ctx, kafkago.Message{Value: []byte("no key")}); !errors.As(err, &we) || len(we) != 1 || !errors.Is(we[0], kafkago.InvalidRecord) {
			t.Fatalf("codec %v: keyless message: %v", codec, err)
		}
		w.Close()
		compactPartitions(t, s, topic, 1, true)

		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{s.addr}, Topic: topic, Partition: 0, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
		if err := r.SetOffset(kafkago.FirstOffset); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		last := int64(-1)
		for len(got) < len(want) {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("codec %v: after %d: %v", codec, len(got), err)
			}
			if m.Offset <= last {
				t.Fatalf("codec %v: offset %d after %d", codec, m.Offset, last)
			}
			last = m.Offset
			if _, dup := got[string(m.Key)]; dup {
				t.Fatalf("codec %v: key %s twice: compaction kept a superseded record", codec, m.Key)
			}
			got[string(m.Key)] = string(m.Value)
		}
		r.Close()
		if fmt.Sprint(got) != fmt.Sprint(want) || last != 199 {
			t.Fatalf("codec %v: table %v (last offset %d), want %v", codec, got, last, want)
		}
	}
}
