package interop

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kopernik-io/kopernik/server"
)

// env is one broker with both handlers on loopback.
type env struct {
	kafka  string
	pulsar string
	http   string // the admin API's base URL
}

func start(t testing.TB) *env {
	t.Helper()
	cfg, err := server.Load("", nil, map[string]string{
		"data-dir": t.TempDir(), "http-addr": "127.0.0.1:0",
		"kafka-addr": "127.0.0.1:0", "pulsar-addr": "127.0.0.1:0",
		"fsync": "interval", "max-message-bytes": "5242880",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := server.Start(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		s.Close(cctx)
		cancel()
	})
	return &env{kafka: s.Addr("kafka").String(), pulsar: "pulsar://" + s.Addr("pulsar").String(),
		http: "http://" + s.Addr("http").String()}
}

func (e *env) kgo(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(e.kafka), kgo.ProducerBatchMaxBytes(8 << 20),
		kgo.FetchMaxBytes(64 << 20), kgo.FetchMaxPartitionBytes(32 << 20), kgo.FetchMaxWait(200 * time.Millisecond)}, opts...)
	c, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func (e *env) pulsarClient(t testing.TB) pulsar.Client {
	t.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: e.pulsar, OperationTimeout: 10 * time.Second,
		ConnectionTimeout: 5 * time.Second, Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func (e *env) createTopic(t testing.TB, name string, partitions int32) {
	t.Helper()
	adm := kadm.NewClient(e.kgo(t))
	resp, err := adm.CreateTopic(ctxT(t), partitions, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
}

var seq atomic.Int64

func topicName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", strings.ToLower(prefix), time.Now().UnixNano()%1e6, seq.Add(1))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// consumeKafka reads n records of topic from the start of every partition.
func consumeKafka(t testing.TB, e *env, topic string, n int) []*kgo.Record {
	t.Helper()
	c := e.kgo(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := ctxT(t)
	var out []*kgo.Record
	for len(out) < n {
		fs := c.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("%d of %d records: %v", len(out), n, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		out = append(out, fs.Records()...)
	}
	if len(out) != n {
		t.Fatalf("%d records, want %d", len(out), n)
	}
	return out
}

// receivePulsar subscribes to topic from the earliest message and
// receives n messages.
func receivePulsar(t testing.TB, c pulsar.Client, topic, sub string, n int) []pulsar.Message {
	t.Helper()
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: sub,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, ReceiverQueueSize: 2000})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	return receiveN(t, cons, n)
}

func receiveN(t testing.TB, cons pulsar.Consumer, n int) []pulsar.Message {
	t.Helper()
	ctx := ctxT(t)
	out := make([]pulsar.Message, 0, n)
	for len(out) < n {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatalf("%d of %d messages: %v", len(out), n, err)
		}
		cons.Ack(m)
		out = append(out, m)
	}
	return out
}
