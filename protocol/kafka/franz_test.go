package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
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
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": ptr("3600000")}, "adm"); err != nil {
		t.Fatal(err)
	}
	tds, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := tds["adm"]; !ok || len(d.Partitions) != 3 || d.ID == (kadm.TopicID{}) {
		t.Fatalf("list: %+v", tds)
	}
}

func ptr[T any](v T) *T { return &v }
