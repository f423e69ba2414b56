package kafka

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinTimer records how long each JoinGroup round trip of a kgo client
// took (kgo's end-to-end broker hook).
type joinTimer struct {
	mu    sync.Mutex
	joins []time.Duration
}

func (j *joinTimer) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if key != int16(kmsg.JoinGroup) || e2e.Err() != nil {
		return
	}
	j.mu.Lock()
	j.joins = append(j.joins, e2e.DurationE2E())
	j.mu.Unlock()
}

func (j *joinTimer) longest() (time.Duration, int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var d time.Duration
	for _, x := range j.joins {
		d = max(d, x)
	}
	return d, len(j.joins)
}

// TestGroupLoneConsumerInitialDelay: a lone consumer's first JoinGroup
// waits group.initial.rebalance.delay.ms once. The member that opens the
// rebalance is not a newly added member extending the delay (Kafka's
// InitialDelayedJoin), so the join that carries the member id completes
// after one delay, well before a second one would have passed.
func TestGroupLoneConsumerInitialDelay(t *testing.T) {
	const delay = time.Second
	s := startServer(t, func(c *Config) { c.GroupInitialRebalanceDelay = delay })
	ctx := testCtx(t)
	if _, err := kadm.NewClient(newKgo(t, s.addr)).CreateTopic(ctx, 1, 1, nil, "lone"); err != nil {
		t.Fatal(err)
	}
	produceN(t, ctx, s.addr, "lone", 0, 1)
	var timer joinTimer
	c := newKgo(t, s.addr, kgo.ConsumerGroup("lone-group"), kgo.ConsumeTopics("lone"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(&timer))
	for got := 0; got == 0; {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
		got = len(fs.Records())
	}
	longest, n := timer.longest()
	t.Logf("%d JoinGroup round trips, longest %v (delay %v)", n, longest, delay)
	// The server holds the join at least the delay; a second delay (the
	// old behaviour) would make it at least 2*delay. Loopback adds
	// milliseconds, not a second.
	if longest < delay || longest >= 2*delay {
		t.Fatalf("first join took %v, want within [%v, %v)", longest, delay, 2*delay)
	}
}

// TestMetadataAutoCreateLeaderNotAvailable: the Metadata request that
// auto-creates a topic answers LEADER_NOT_AVAILABLE for it, without
// partitions; the next one lists them (Kafka's behaviour, which kafka-go's
// own tests rely on). Producers of every client still produce to a new
// topic: they retry.
func TestMetadataAutoCreateLeaderNotAvailable(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	c := dialRaw(t, s.addr)
	for _, v := range []int16{0, 4, 9, 11} {
		topic := fmt.Sprintf("autocreate-v%d", v)
		md := func() kmsg.MetadataResponseTopic {
			req := kmsg.NewPtrMetadataRequest()
			req.Version, req.AllowAutoTopicCreation = v, true
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(topic)
			req.Topics = append(req.Topics, rt)
			resp := c.do(req).(*kmsg.MetadataResponse)
			if len(resp.Topics) != 1 {
				t.Fatalf("v%d: %d topics", v, len(resp.Topics))
			}
			return resp.Topics[0]
		}
		first := md()
		if first.ErrorCode != kerr.LeaderNotAvailable.Code || len(first.Partitions) != 0 {
			t.Fatalf("v%d creating request: error %d, %d partitions; want LEADER_NOT_AVAILABLE, none", v, first.ErrorCode, len(first.Partitions))
		}
		next := md()
		if next.ErrorCode != 0 || len(next.Partitions) != 1 || next.Partitions[0].Leader != 0 {
			t.Fatalf("v%d next request: %+v", v, next)
		}
	}

	// Producers to topics that do not exist yet.
	kp := newKgo(t, s.addr, kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("auto-franz"))
	if err := kp.ProduceSync(ctx, &kgo.Record{Value: []byte("franz")}).FirstErr(); err != nil {
		t.Fatalf("franz-go: %v", err)
	}

	sp, err := sarama.NewSyncProducer([]string{s.addr}, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if _, off, err := sp.SendMessage(&sarama.ProducerMessage{Topic: "auto-sarama", Value: sarama.StringEncoder("sarama")}); err != nil || off != 0 {
		t.Fatalf("sarama: offset %d, %v", off, err)
	}

	w := &kafkago.Writer{Addr: kafkago.TCP(s.addr), Topic: "auto-kafkago", AllowAutoTopicCreation: true,
		RequiredAcks: kafkago.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	// As against Kafka, the writer's first write to a topic it creates may
	// fail with LEADER_NOT_AVAILABLE (kafka-go's own writer tests retry
	// it); a retry succeeds.
	for i := 0; ; i++ {
		err := w.WriteMessages(ctx, kafkago.Message{Value: []byte("kafka-go")})
		if err == nil {
			break
		}
		if !errors.Is(err, kafkago.LeaderNotAvailable) || i == 20 {
			t.Fatalf("kafka-go writer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// kafka-go's Conn tests: DialLeader on a new topic (its lookup retries
	// LEADER_NOT_AVAILABLE), then write on that connection.
	conn, err := (&kafkago.Dialer{}).DialLeader(ctx, "tcp", s.addr, "auto-kafkago-conn", 0)
	if err != nil {
		t.Fatalf("kafka-go DialLeader: %v", err)
	}
	defer conn.Close()
	if _, err := conn.WriteMessages(kafkago.Message{Value: []byte("conn")}); err != nil {
		t.Fatalf("kafka-go conn write: %v", err)
	}

	for _, topic := range []string{"auto-franz", "auto-sarama", "auto-kafkago", "auto-kafkago-conn"} {
		o, err := kadm.NewClient(newKgo(t, s.addr)).ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := o.Lookup(topic, 0); !ok || e.Err != nil || e.Offset != 1 {
			t.Fatalf("%s end offset: %+v", topic, e)
		}
	}
}
