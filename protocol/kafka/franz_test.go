package kafka

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kopernik-io/kopernik/broker"
)

func newKgo(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestFranzProduceConsumeCodecs(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	acks := map[string]kgo.Acks{"none": kgo.NoAck(), "leader": kgo.LeaderAck(), "all": kgo.AllISRAcks()}
	for cname, codec := range codecs {
		for aname, ack := range acks {
			topic := "codec-" + cname + "-" + aname
			opts := []kgo.Opt{kgo.ProducerBatchCompression(codec), kgo.RequiredAcks(ack), kgo.AllowAutoTopicCreation()}
			if aname != "all" {
				opts = append(opts, kgo.DisableIdempotentWrite())
			}
			p := newKgo(t, s.addr, opts...)
			const n = 50
			for i := range n {
				p.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("value-%d-%s", i, cname))}, nil)
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			c := newKgo(t, s.addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			var got int
			for got < n {
				fs := c.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatalf("%s: %v", topic, err)
				}
				fs.EachRecord(func(r *kgo.Record) {
					if want := fmt.Sprintf("value-%d-%s", r.Offset, cname); string(r.Value) != want {
						t.Errorf("%s: offset %d: got %q want %q", topic, r.Offset, r.Value, want)
					}
					got++
				})
			}
			c.Close()
			p.Close()
		}
	}
}

func TestFranzAdmin(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	cl := newKgo(t, s.addr)
	adm := kadm.NewClient(cl)

	// Create, list, describe.
	if _, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": ptr("3600000")}, "adm"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "adm"); err == nil {
		t.Fatal("duplicate create succeeded")
	}
	if r, _ := adm.CreateTopic(ctx, 1, 3, nil, "rf3"); r.Err == nil {
		t.Fatal("replication factor 3 accepted")
	}
	if r, _ := adm.CreateTopic(ctx, 1, 1, map[string]*string{"no.such.config": ptr("1")}, "badcfg"); r.Err == nil || !strings.Contains(r.ErrMessage, "no.such.config") {
		t.Fatalf("unknown config: %+v", r)
	}
	if r, err := adm.ValidateCreateTopics(ctx, 2, 1, nil, "dry"); err != nil || r["dry"].Err != nil {
		t.Fatalf("validate only: %v %+v", err, r)
	}
	tds, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := tds["adm"]
	if !ok || len(d.Partitions) != 3 || d.ID == (kadm.TopicID{}) {
		t.Fatalf("list: %+v", tds)
	}
	if _, ok := tds["dry"]; ok {
		t.Fatal("validate-only created a topic")
	}

	// Configs: describe, incremental alter, alter, errors.
	rcs, err := adm.DescribeTopicConfigs(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := rcs[0].Configs[0], rcs[0].Err; err != nil || configValue(rcs[0].Configs, "retention.ms") != "3600000" {
		t.Fatalf("describe: %v %+v", err, v)
	}
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: ptr("2000")}}, "adm"); err != nil {
		t.Fatal(err)
	}
	r, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "bogus", Value: ptr("1")}}, "adm")
	if err != nil || r[0].Err == nil {
		t.Fatalf("bogus alter: %v %+v", err, r)
	}
	rcs, _ = adm.DescribeTopicConfigs(ctx, "adm")
	if got := configValue(rcs[0].Configs, "max.message.bytes"); got != "2000" {
		t.Fatalf("max.message.bytes = %q", got)
	}
	// The new limit applies: a 3000-byte batch is refused.
	p := newKgo(t, s.addr, kgo.DefaultProduceTopic("adm"), kgo.RecordRetries(1), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := p.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: randBytes(3000)}).FirstErr(); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("oversize produce: %v", err)
	}
	if _, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "retention.bytes", Value: ptr("1048576")}}, "adm"); err != nil {
		t.Fatal(err)
	}
	rcs, _ = adm.DescribeTopicConfigs(ctx, "adm")
	if got := configValue(rcs[0].Configs, "max.message.bytes"); got != "1048576" {
		t.Fatalf("non-incremental alter kept max.message.bytes = %q", got)
	}
	if got := configValue(rcs[0].Configs, "retention.bytes"); got != "1048576" {
		t.Fatalf("retention.bytes = %q", got)
	}

	// Partitions grow, never shrink.
	if _, err := adm.UpdatePartitions(ctx, 5, "adm"); err != nil {
		t.Fatal(err)
	}
	if r, _ := adm.UpdatePartitions(ctx, 2, "adm"); r["adm"].Err == nil {
		t.Fatal("shrink accepted")
	}
	tds, _ = adm.ListTopics(ctx, "adm")
	if n := len(tds["adm"].Partitions); n != 5 {
		t.Fatalf("partitions = %d", n)
	}

	// Delete records, list offsets (a new client sees the new partitions).
	p = newKgo(t, s.addr, kgo.DefaultProduceTopic("adm"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 10 {
		if err := p.ProduceSync(ctx, &kgo.Record{Partition: 4, Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	dr, err := adm.DeleteRecords(ctx, kadm.Offsets{"adm": {4: {Topic: "adm", Partition: 4, At: 6}}})
	if err != nil {
		t.Fatal(err)
	}
	if lw := dr["adm"][4].LowWatermark; lw != 6 {
		t.Fatalf("low watermark %d: %v", lw, dr["adm"][4].Err)
	}
	so, err := adm.ListStartOffsets(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	eo, _ := adm.ListEndOffsets(ctx, "adm")
	if o, _ := so.Lookup("adm", 4); o.Offset != 6 {
		t.Fatalf("start offset %+v", o)
	}
	if o, _ := eo.Lookup("adm", 4); o.Offset != 10 {
		t.Fatalf("end offset %+v", o)
	}

	// Cluster and broker.
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil || meta.Cluster != s.broker.ClusterID() || len(meta.Brokers) != 1 {
		t.Fatalf("metadata: %v %+v", err, meta)
	}
	dc, err := adm.DescribeBrokerConfigs(ctx)
	if err != nil || len(dc) != 1 || len(dc[0].Configs) == 0 {
		t.Fatalf("broker configs: %v %+v", err, dc)
	}

	// Delete.
	if r, err := adm.DeleteTopic(ctx, "adm"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err, r.ErrMessage)
	}
	// kgo caches metadata answers for MetadataMinAge.
	checkFor(t, 2*time.Second, func() error {
		tds, _ = adm.ListTopics(ctx)
		if _, ok := tds["adm"]; ok {
			return errors.New("topic still listed after delete")
		}
		return nil
	})
	if r, _ := adm.DeleteTopic(ctx, "adm"); !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("second delete: %v", r.Err)
	}
}

func configValue(cs []kadm.Config, name string) string {
	for _, c := range cs {
		if c.Key == name && c.Value != nil {
			return *c.Value
		}
	}
	return ""
}

func ptr[T any](v T) *T { return &v }

// randBytes is incompressible data (clients compress by default).
func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestFranzConsumeStartPositions(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "pos"); err != nil {
		t.Fatal(err)
	}
	p := newKgo(t, s.addr, kgo.DefaultProduceTopic("pos"), kgo.ProducerLinger(0))
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	// Three batches of four records, timestamps 1s apart, so that lookups
	// land inside batches.
	for b := range 3 {
		var rs []*kgo.Record
		for i := range 4 {
			n := b*4 + i
			rs = append(rs, &kgo.Record{Value: []byte(fmt.Sprint(n)), Timestamp: base.Add(time.Duration(n) * time.Second)})
		}
		if err := p.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consume := func(off kgo.Offset, n int) []string {
		c := newKgo(t, s.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"pos": {0: off}}))
		defer c.Close()
		var got []string
		for len(got) < n {
			fs := c.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				t.Fatal(err)
			}
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		return got
	}
	if got := consume(kgo.NewOffset().AtStart(), 12); got[0] != "0" || got[11] != "11" {
		t.Fatalf("earliest: %v", got)
	}
	if got := consume(kgo.NewOffset().AfterMilli(base.Add(5*time.Second).UnixMilli()), 7); got[0] != "5" {
		t.Fatalf("by timestamp: %v", got)
	}
	// Latest: only what is produced after the consumer started.
	c := newKgo(t, s.addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"pos": {0: kgo.NewOffset().AtEnd()}}))
	// One empty poll lets the consumer resolve "latest" (ListOffsets)
	// before anything new is produced.
	pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	c.PollFetches(pctx)
	cancel()
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("new")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fs := c.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	if rs := fs.Records(); len(rs) != 1 || string(rs[0].Value) != "new" || rs[0].Offset != 12 {
		t.Fatalf("latest: %+v", rs)
	}

	// ListOffsets by timestamp directly: a time inside the second batch.
	lo, err := adm.ListOffsetsAfterMilli(ctx, base.Add(6*time.Second).UnixMilli(), "pos")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lo.Lookup("pos", 0); o.Offset != 6 || o.Timestamp != base.Add(6*time.Second).UnixMilli() {
		t.Fatalf("list offsets by time: %+v", o)
	}
	lo, _ = adm.ListOffsetsAfterMilli(ctx, time.Now().Add(time.Hour).UnixMilli(), "pos")
	if o, _ := lo.Lookup("pos", 0); o.Offset != -1 && o.Offset != 13 {
		t.Fatalf("list offsets after the end: %+v", o)
	}
}

// ListOffsets by timestamp looks inside compressed batches too.
func TestFranzListOffsetsByTimeCompressed(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(newKgo(t, s.addr))
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	codecs := map[string]kgo.CompressionCodec{
		"gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	for name, codec := range codecs {
		topic := "ts-" + name
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
		p := newKgo(t, s.addr, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(codec))
		var rs []*kgo.Record
		for i := range 10 {
			rs = append(rs, &kgo.Record{Value: []byte(strings.Repeat("compressible ", 20)), Timestamp: base.Add(time.Duration(i) * time.Second)})
		}
		if err := p.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		part, err := s.broker.OpenPartition(ctx, broker.TopicName{Domain: "persistent", Tenant: "public", Namespace: "default", Local: topic + "-partition-0"}, false)
		if err != nil {
			t.Fatal(err)
		}
		es, _ := part.ReadFromIndex(ctx, 0, 1, 1<<20)
		if len(es) != 1 || binary.BigEndian.Uint16(es[0].Data[21:])&7 == 0 {
			t.Fatalf("%s: batch not compressed", name)
		}
		lo, err := adm.ListOffsetsAfterMilli(ctx, base.Add(5*time.Second).UnixMilli(), topic)
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := lo.Lookup(topic, 0); o.Offset != 5 {
			t.Fatalf("%s: %+v", name, o)
		}
	}
}

// TestFranzListMaxTimestamp: ListOffsets v7's max timestamp (-3) answers
// the first record holding the partition's largest timestamp, inside a
// compressed batch and with later batches holding smaller timestamps.
func TestFranzListMaxTimestamp(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(newKgo(t, s.addr))
	const topic = "maxts"
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	lo, err := adm.ListMaxTimestampOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lo.Lookup(topic, 0); o.Offset != -1 {
		t.Fatalf("empty partition: %+v", o)
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	p := newKgo(t, s.addr, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	offsets := []int{3, 1, 9, 2, 9} // seconds after base; the first 9 is at offset 2
	var rs []*kgo.Record
	for _, sec := range offsets[:3] {
		rs = append(rs, &kgo.Record{Value: []byte("v"), Timestamp: base.Add(time.Duration(sec) * time.Second)})
	}
	if err := p.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, sec := range offsets[3:] {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("v"), Timestamp: base.Add(time.Duration(sec) * time.Second)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	lo, err = adm.ListMaxTimestampOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := lo.Lookup(topic, 0)
	if o.Offset != 2 || o.Timestamp != base.Add(9*time.Second).UnixMilli() {
		t.Fatalf("max timestamp: %+v (want offset 2 at %d)", o, base.Add(9*time.Second).UnixMilli())
	}
}
