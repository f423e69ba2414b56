package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// storedCodecs fetches partition 0 of topic raw and returns the codec of
// every batch as stored.
func storedCodecs(ctx context.Context, t *testing.T, cl *kgo.Client, topic string) []int16 {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MaxBytes, req.Version = 0, 10<<20, 11
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 10 << 20
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		t.Fatal(err)
	}
	var codecs []int16
	for b := p.RecordBatches; len(b) >= batchHeaderSize; {
		bh, err := parseBatchHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		codecs = append(codecs, bh.attributes&attrCodecMask)
		b = b[bh.length:]
	}
	return codecs
}

// TestCompressionTypeRecompresses: a topic's compression.type is applied
// to what producers send, as Kafka's broker does: every codec to every
// other, with the records, keys, headers and offsets unchanged for
// consumers; "producer" keeps batches as produced; a bad value is
// INVALID_CONFIG.
func TestCompressionTypeRecompresses(t *testing.T) {
	s := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(s.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	codecs := map[string]kgo.CompressionCodec{
		"uncompressed": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	ids := map[string]int16{"uncompressed": codecNone, "gzip": codecGzip, "snappy": codecSnappy, "lz4": codecLz4, "zstd": codecZstd}
	for topicType := range codecs {
		for producerType, producerCodec := range codecs {
			topic := fmt.Sprintf("ct-%s-from-%s", topicType, producerType)
			cfg := map[string]*string{"compression.type": kmsg.StringPtr(topicType)}
			if _, err := adm.CreateTopic(ctx, 1, 1, cfg, topic); err != nil {
				t.Fatal(err)
			}
			pcl, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.ProducerBatchCompression(producerCodec), kgo.DefaultProduceTopic(topic))
			if err != nil {
				t.Fatal(err)
			}
			var rs []*kgo.Record
			for i := range 20 {
				rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprint("k", i)), Value: []byte(fmt.Sprintf("value %d %0100d", i, i)),
					Headers: []kgo.RecordHeader{{Key: "h", Value: []byte(fmt.Sprint(i))}}})
			}
			if err := pcl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				t.Fatalf("%s: %v", topic, err)
			}
			pcl.Close()
			for _, c := range storedCodecs(ctx, t, admin, topic) {
				if c != ids[topicType] {
					t.Fatalf("%s: a batch is stored with codec %d, want %d", topic, c, ids[topicType])
				}
			}
			ccl, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			for got < 20 {
				fs := ccl.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatalf("%s: %v", topic, err)
				}
				fs.EachRecord(func(r *kgo.Record) {
					if r.Offset != int64(got) || string(r.Value) != fmt.Sprintf("value %d %0100d", got, got) ||
						string(r.Key) != fmt.Sprint("k", got) || len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprint(got) {
						t.Fatalf("%s: record %d is offset %d key %q value %q headers %v", topic, got, r.Offset, r.Key, r.Value, r.Headers)
					}
					got++
				})
			}
			ccl.Close()
		}
	}

	// "producer" keeps what was produced; the config reads back.
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "ct-producer"); err != nil {
		t.Fatal(err)
	}
	pcl, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.DefaultProduceTopic("ct-producer"))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	if err := pcl.ProduceSync(ctx, &kgo.Record{Value: []byte("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if c := storedCodecs(ctx, t, admin, "ct-producer"); len(c) != 1 || c[0] != codecZstd {
		t.Fatalf("compression.type producer stored codecs %v, want the producer's zstd", c)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, "ct-zstd-from-gzip", "ct-producer")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ct-zstd-from-gzip": "zstd", "ct-producer": "producer"}
	for _, r := range rc {
		for _, c := range r.Configs {
			if c.Key == "compression.type" && (c.Value == nil || *c.Value != want[r.Name]) {
				t.Fatalf("%s compression.type = %v, want %s", r.Name, c.Value, want[r.Name])
			}
		}
	}
	alter, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "compression.type", Value: kmsg.StringPtr("brotli")}}, "ct-producer")
	if err != nil {
		t.Fatal(err)
	}
	if err := alter[0].Err; !errors.Is(err, kerr.InvalidConfig) {
		t.Fatalf("compression.type brotli: %v, want INVALID_CONFIG", err)
	}
}
