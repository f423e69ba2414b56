package kafka

import (
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
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
