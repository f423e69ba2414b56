package pulsar

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/kopernik-io/kopernik/broker"
)

// TestReadCompactedRandomAcks drives a durable readCompacted Failover
// subscription of a compact-only topic with random operations: keyed
// messages produced in rounds (some keys only early, so that after a
// release only the view holds them), compactions (each releasing the raw
// ledgers every subscription consumed), the subscription created from the
// earliest message after some rounds (so that it starts among the view's
// entries in released ledgers), random receives with random out-of-order
// acknowledgements (batch-index ones for some seeds, so that batches
// received raw and rewritten by a compaction before their acknowledgement
// are acknowledged in part), reconnects, and broker restarts. The checker:
//   - after every reconnect, each message received and not acknowledged
//     before it comes again, or a newer value of its key does, unless a
//     newer value of its key was acknowledged (nothing skipped);
//   - once everything is acknowledged, every key's latest value was
//     received, and a reconnect receives nothing.
//
// Two seeds by default (KOPERNIK_SEEDS=n runs n); the seed is printed on
// failure; KOPERNIK_SEED reruns one.
func TestReadCompactedRandomAcks(t *testing.T) {
	n := 2
	if s := os.Getenv("KOPERNIK_SEEDS"); s != "" { // a longer soak
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	base := uint64(time.Now().UnixNano())
	var seeds []uint64
	for i := range n {
		seeds = append(seeds, base+uint64(i))
	}
	if s := os.Getenv("KOPERNIK_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seeds = []uint64{seed}
	}
	s := startDurableServer(t)
	for _, seed := range seeds {
		if !t.Run(fmt.Sprint(seed), func(t *testing.T) { runReadCompactedModel(t, s, seed) }) {
			t.Fatalf("failing seed %d (rerun with KOPERNIK_SEED=%d)", seed, seed)
		}
	}
}

// sent is one produced message: its key and its sequence in the topic.
type sent struct {
	key string
	seq int
}

func runReadCompactedModel(t *testing.T, s *server, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := s.client(t)
	topic := "persistent://public/default/" + newTopic("rc-model")
	name, err := broker.ParseTopicName(topic, "public", "default")
	if err != nil {
		t.Fatal(err)
	}
	compactOnly, segment := broker.CleanupCompact, int64(1024+rng.IntN(2048))
	if err := s.broker.CreateTopic(ctx, name, 0, broker.Policies{CleanupPolicy: &compactOnly, SegmentBytes: &segment}); err != nil {
		t.Fatal(err)
	}
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: uint(1 + rng.IntN(6)), BatchingMaxPublishDelay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	parse := func(m pulsar.Message) sent {
		var v sent
		if _, err := fmt.Sscanf(string(m.Payload()), "%s %d", &v.key, &v.seq); err != nil {
			t.Fatalf("payload %q: %v", m.Payload(), err)
		}
		return v
	}
	latest := map[string]int{} // key -> seq of its latest value
	seq := 0
	produce := func(n, keys int) {
		for range n {
			k := fmt.Sprintf("k%02d", rng.IntN(keys))
			latest[k] = seq
			p.SendAsync(ctx, &pulsar.ProducerMessage{Key: k, Payload: fmt.Appendf(nil, "%s %d %s", k, seq, make([]byte, rng.IntN(40)))},
				func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
					if err != nil {
						t.Error(err)
					}
				})
			seq++
		}
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	compactNow := func() {
		part, err := s.broker.OpenPartition(ctx, name, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := part.Compact(ctx, rng.IntN(2) == 0); err != nil {
			t.Fatal(err)
		}
	}
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "table", Type: pulsar.Failover, ReadCompacted: true,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, AckWithResponse: true,
		EnableBatchIndexAcknowledgment: rng.IntN(2) == 0}
	var cons pulsar.Consumer
	defer func() {
		if cons != nil {
			cons.Close()
		}
	}()
	pending := map[string]int{} // key -> lowest seq received, not acknowledged before a reconnect
	var held []pulsar.Message   // received, not acknowledged yet
	got := map[string]int{}     // key -> highest seq received
	acked := map[string]int{}   // key -> highest seq acknowledged
	var log []string            // what happened, printed on failure
	receiveSome := func(max int, wait time.Duration) {
		for range max {
			rctx, cancel := context.WithTimeout(ctx, wait)
			m, err := cons.Receive(rctx)
			cancel()
			if err != nil {
				return
			}
			v := parse(m)
			if lo, ok := pending[v.key]; ok && v.seq >= lo {
				delete(pending, v.key)
			}
			got[v.key] = max2(got[v.key], v.seq)
			held = append(held, m)
		}
	}
	ackSome := func(all bool) {
		rng.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
		keep := held[:0]
		for _, m := range held {
			if all || rng.IntN(2) == 0 {
				if err := cons.Ack(m); err != nil {
					t.Fatal(err)
				}
				v := parse(m)
				acked[v.key] = max2(acked[v.key], v.seq)
				continue
			}
			keep = append(keep, m)
		}
		held = keep
	}
	reconnect := func(restart bool) {
		for _, m := range held {
			v := parse(m)
			if a, ok := acked[v.key]; ok && a > v.seq {
				continue // a newer value was consumed: compaction may drop this one
			}
			if lo, ok := pending[v.key]; !ok || v.seq < lo {
				pending[v.key] = v.seq
			}
		}
		held = nil
		cons.Close()
		cons = nil
		if restart {
			s.restart()
		}
		var err error
		if cons, err = c.Subscribe(opts); err != nil {
			t.Fatal(err)
		}
		// Everything pending comes again (or a newer value of its key).
		for deadline := time.Now().Add(10 * time.Second); len(pending) > 0; {
			if time.Now().After(deadline) {
				t.Fatalf("seed %d: after reconnecting, never sent again (key: lowest unacknowledged seq): %v\n%v", seed, pending, log)
			}
			receiveSome(50, 200*time.Millisecond)
		}
	}
	subscribeAt := 1 + rng.IntN(3)
	rounds := 6 + rng.IntN(4)
	for round := range rounds {
		keys := 40
		if round > 0 && rng.IntN(2) == 0 {
			keys = 8 // only hot keys: the others stay only in the view
		}
		n := 20 + rng.IntN(80)
		produce(n, keys)
		log = append(log, fmt.Sprintf("round %d: produced %d over %d keys", round, n, keys))
		if rng.IntN(3) > 0 {
			compactNow()
			part, _ := s.broker.OpenPartition(ctx, name, false)
			log = append(log, fmt.Sprintf("  compacted: first index %d", part.Stats().FirstIndex))
		}
		if round == subscribeAt {
			if cons, err = c.Subscribe(opts); err != nil {
				t.Fatal(err)
			}
			log = append(log, "  subscribed")
		}
		if cons == nil {
			continue
		}
		for step := range 1 + rng.IntN(3) {
			receiveSome(5+rng.IntN(60), 100*time.Millisecond)
			ackSome(false)
			restart := rng.IntN(6) == 0
			log = append(log, fmt.Sprintf("  step %d: %d held, %d pending; reconnect (restart %v)", step, len(held), len(pending), restart))
			reconnect(restart)
			if rng.IntN(3) == 0 {
				compactNow()
			}
		}
	}
	if cons == nil {
		if cons, err = c.Subscribe(opts); err != nil {
			t.Fatal(err)
		}
	}
	// Drain, acknowledging everything.
	for {
		n := len(held)
		receiveSome(100, time.Second)
		ackSome(true)
		if n == 0 && len(held) == 0 {
			break
		}
	}
	for k, s := range latest {
		if got[k] < s {
			t.Fatalf("seed %d: key %s: latest value %d never received (highest received %d)\n%v", seed, k, s, got[k], log)
		}
	}
	cons.Close()
	if cons, err = c.Subscribe(opts); err != nil {
		t.Fatal(err)
	}
	rctx, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel2()
	if m, err := cons.Receive(rctx); err == nil {
		t.Fatalf("seed %d: everything acknowledged, yet sent %q again\n%v", seed, m.Payload(), log)
	}
}

func max2(a, b int) int {
	if a > b {
		return a
	}
	return b
}
