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

	"github.com/kopernik-io/kopernik/broker"
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

// TestOffsetCommitOutsideLog: a committed offset beyond the log end or
// before the log start is stored as given and OffsetFetch answers exactly
// it (kadm and kafka-go), also after a restart; the subscription's
// mark-delete stays inside the log. A group consumer then gets
// OFFSET_OUT_OF_RANGE and resets per its auto.offset.reset. Moving the
// subscription some other way makes its position the answer again.
func TestOffsetCommitOutsideLog(t *testing.T) {
	s := startDurableServer(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(newKgo(t, s.addr))
	for _, topic := range []string{"outside-high", "outside-low"} {
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
		produceN(t, ctx, s.addr, topic, 0, 10)
	}
	// outside-low starts at 5.
	dr, err := adm.DeleteRecords(ctx, kadm.Offsets{"outside-low": {0: {Topic: "outside-low", Partition: 0, At: 5}}})
	if err != nil || dr.Error() != nil {
		t.Fatalf("delete records: %v %v", err, dr.Error())
	}
	commit(t, adm, "g-high", "outside-high", 1000, "far")
	commit(t, adm, "g-low", "outside-low", 2, "")
	cursorAt := func(topic, group string) int64 {
		t.Helper()
		name, _ := broker.ParseTopicName(topic+"-partition-0", "public", "default")
		p, err := s.broker.OpenPartition(ctx, name, false)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := p.Subscription(ctx, group, false, broker.InitialLatest)
		if err != nil {
			t.Fatal(err)
		}
		return sub.Cursor().NextIndex()
	}
	if at := cursorAt("outside-high", "g-high"); at != 10 {
		t.Fatalf("g-high's subscription at %d, want the log end 10", at)
	}
	if at := cursorAt("outside-low", "g-low"); at != 5 {
		t.Fatalf("g-low's subscription at %d, want the log start 5", at)
	}
	want := func(when string, group, topic string, off int64) {
		t.Helper()
		o, _ := fetchCommitted(t, adm, group, topic)
		if o.At != off {
			t.Fatalf("%s: kadm fetched %s %d, want %d", when, group, o.At, off)
		}
	}
	want("after commit", "g-high", "outside-high", 1000)
	want("after commit", "g-low", "outside-low", 2)
	if o, _ := fetchCommitted(t, adm, "g-high", "outside-high"); o.Metadata != "far" {
		t.Fatalf("metadata %q", o.Metadata)
	}

	// kafka-go: a simple commit outside the log, fetched back, deleted.
	kc := &kafkago.Client{Addr: kafkago.TCP(s.addr), Timeout: 10 * time.Second}
	cr, err := kc.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{GroupID: "g-kafkago", GenerationID: -1,
		Topics: map[string][]kafkago.OffsetCommit{"outside-high": {{Partition: 0, Offset: 500}}}})
	if err != nil || cr.Topics["outside-high"][0].Error != nil {
		t.Fatalf("kafka-go commit: %v %+v", err, cr)
	}
	kgoFetch := func() int64 {
		t.Helper()
		fr, err := kc.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: "g-kafkago", Topics: map[string][]int{"outside-high": {0}}})
		if err != nil || fr.Error != nil || len(fr.Topics["outside-high"]) != 1 {
			t.Fatalf("kafka-go fetch: %v %+v", err, fr)
		}
		return fr.Topics["outside-high"][0].CommittedOffset
	}
	if off := kgoFetch(); off != 500 {
		t.Fatalf("kafka-go fetched %d, want 500", off)
	}
	del, err := kc.OffsetDelete(ctx, &kafkago.OffsetDeleteRequest{GroupID: "g-kafkago", Topics: map[string][]int{"outside-high": {0}}})
	if err != nil || del.Error != nil || del.Topics["outside-high"][0].Error != nil {
		t.Fatalf("kafka-go offset delete: %v %+v", err, del)
	}
	if off := kgoFetch(); off != -1 {
		t.Fatalf("kafka-go fetched %d after OffsetDelete, want -1", off)
	}

	// Persisted: a restart answers the same.
	s.restart()
	want("after restart", "g-high", "outside-high", 1000)
	want("after restart", "g-low", "outside-low", 2)

	// A group consumer resumes at 1000: out of range, it resets to the
	// start (auto.offset.reset=earliest) and reads the partition.
	c := newKgo(t, s.addr, kgo.ConsumerGroup("g-high"), kgo.ConsumeTopics("outside-high"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	var first int64 = -1
	for first < 0 {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
		if rs := fs.Records(); len(rs) > 0 {
			first = rs[0].Offset
		}
	}
	if first != 0 {
		t.Fatalf("consumer reset to %d, want 0 (earliest)", first)
	}
	c.Close()

	// A commit inside the log is the cursor's position again; so is
	// moving the subscription through the broker (a Pulsar ack, an admin
	// reset) after an outside commit.
	commit(t, adm, "g-low", "outside-low", 7, "")
	want("after an inside commit", "g-low", "outside-low", 7)
	commit(t, adm, "g-low", "outside-low", 1, "")
	name, _ := broker.ParseTopicName("outside-low-partition-0", "public", "default")
	p, err := s.broker.OpenPartition(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := p.Subscription(ctx, "g-low", false, broker.InitialLatest)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Cursor().SetNextIndex(ctx, 8); err != nil {
		t.Fatal(err)
	}
	want("after the subscription moved", "g-low", "outside-low", 8)
}
