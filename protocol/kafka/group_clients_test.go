package kafka

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
)

// committedTotal sums a group's committed offsets on a topic.
func committedTotal(t *testing.T, adm *kadm.Client, group, topic string) int64 {
	t.Helper()
	offs, err := adm.FetchOffsetsForTopics(testCtx(t), group, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.At > 0 {
			total += o.At
		}
	})
	return total
}

type saramaHandler struct{ got *seen }

func (saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	// Synchronous commits of what was consumed, once the claim's buffer is
	// drained (a commit waits behind the connection's fetch long poll) and
	// before the claim ends: nothing is consumed twice after a rebalance.
	for msg := range claim.Messages() {
		h.got.add(string(msg.Value))
		sess.MarkMessage(msg, "")
		if len(claim.Messages()) == 0 {
			sess.Commit()
		}
	}
	sess.Commit()
	return nil
}

func TestGroupSarama(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "sg"); err != nil {
		t.Fatal(err)
	}
	produceN(t, ctx, s.addr, "sg", 0, 60)
	// Not saramaConfig(): its idempotent-producer settings (one open
	// request per connection) serialise commits behind fetches.
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Group.Heartbeat.Interval = 100 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRoundRobin()}

	var got seen
	run := func(ctx context.Context, wg *sync.WaitGroup) {
		defer wg.Done()
		cg, err := sarama.NewConsumerGroup([]string{s.addr}, "sgroup", cfg)
		if err != nil {
			t.Error(err)
			return
		}
		defer cg.Close()
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{"sg"}, saramaHandler{&got}); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
				t.Error(err)
				return
			}
		}
	}
	c1, cancel1 := context.WithCancel(ctx)
	c2, cancel2 := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go run(c1, &wg)
	time.Sleep(200 * time.Millisecond)
	go run(c2, &wg)
	checkFor(t, 15*time.Second, func() error {
		if n := got.count(); n < 60 {
			return fmt.Errorf("consumed %d of 60", n)
		}
		return nil
	})
	cancel1()
	produceN(t, ctx, s.addr, "sg", 60, 30)
	checkFor(t, 15*time.Second, func() error {
		if n := got.count(); n < 90 {
			return fmt.Errorf("consumed %d of 90", n)
		}
		return nil
	})
	cancel2()
	wg.Wait()
	if missing, dups := got.check(90); missing != 0 || dups != 0 {
		t.Fatalf("missing %d, consumed twice %d", missing, dups)
	}
	if total := committedTotal(t, adm, "sgroup", "sg"); total != 90 {
		t.Fatalf("committed %d, want 90", total)
	}
}

func TestGroupKafkaGoReader(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "kg"); err != nil {
		t.Fatal(err)
	}
	produceN(t, ctx, s.addr, "kg", 0, 40)
	newReader := func() *kafkago.Reader {
		return kafkago.NewReader(kafkago.ReaderConfig{
			Brokers: []string{s.addr}, GroupID: "kgroup", Topic: "kg",
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond,
			StartOffset: kafkago.FirstOffset, HeartbeatInterval: 200 * time.Millisecond,
			SessionTimeout: 6 * time.Second, RebalanceTimeout: 5 * time.Second,
			JoinGroupBackoff: 100 * time.Millisecond,
		})
	}
	var got seen
	read := func(r *kafkago.Reader, n int) {
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		for i := range n {
			m, err := r.ReadMessage(rctx) // commits synchronously (CommitInterval 0)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			got.add(string(m.Value))
		}
	}
	r1 := newReader()
	read(r1, 25)
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	r2 := newReader()
	defer r2.Close()
	read(r2, 15)
	if missing, dups := got.check(40); missing != 0 || dups != 0 {
		t.Fatalf("missing %d, consumed twice %d", missing, dups)
	}
	checkFor(t, 5*time.Second, func() error {
		if total := committedTotal(t, adm, "kgroup", "kg"); total != 40 {
			return fmt.Errorf("committed %d, want 40", total)
		}
		return nil
	})
}

// TestGroupKcat runs librdkafka's balanced consumer (kcat -G); skipped
// when kcat is not on PATH.
func TestGroupKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not on PATH")
	}
	s := startServer(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "kc"); err != nil {
		t.Fatal(err)
	}
	consume := func(assignor string) []string {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, kcat, "-b", s.addr, "-G", "kcgroup", "-X", "auto.offset.reset=earliest",
			"-X", "enable.auto.commit=true", "-X", "auto.commit.interval.ms=100",
			"-X", "partition.assignment.strategy="+assignor, "-e", "-q", "-f", "%s\n", "kc")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kcat: %v\n%s", err, stderr.String())
		}
		lines := strings.Fields(string(out))
		sort.Slice(lines, func(i, j int) bool { a, _ := strconv.Atoi(lines[i]); b, _ := strconv.Atoi(lines[j]); return a < b })
		return lines
	}
	produceN(t, ctx, s.addr, "kc", 0, 20)
	if got := consume("range"); len(got) != 20 || got[0] != "0" || got[19] != "19" {
		t.Fatalf("first run: %v", got)
	}
	if total := committedTotal(t, adm, "kcgroup", "kc"); total != 20 {
		t.Fatalf("committed %d after the first run", total)
	}
	produceN(t, ctx, s.addr, "kc", 20, 5)
	if got := consume("cooperative-sticky"); len(got) != 5 || got[0] != "20" {
		t.Fatalf("second run resumed at the wrong place: %v", got)
	}
}
