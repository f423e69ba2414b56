package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/metadata"
)

type sink struct {
	mu     sync.Mutex
	got    []Delivery
	active []bool
	ch     chan struct{}
}

func newSink() *sink { return &sink{ch: make(chan struct{}, 1000)} }

func (s *sink) Deliver(ctx context.Context, d Delivery) error {
	s.mu.Lock()
	s.got = append(s.got, d)
	s.mu.Unlock()
	s.ch <- struct{}{}
	return nil
}

func (s *sink) ActiveChanged(a bool) {
	s.mu.Lock()
	s.active = append(s.active, a)
	s.mu.Unlock()
}

func (s *sink) wait(t *testing.T, n int) []Delivery {
	t.Helper()
	for range n {
		select {
		case <-s.ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("timed out waiting for %d deliveries", n)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.got...)
}

func (s *sink) none(t *testing.T) {
	t.Helper()
	select {
	case <-s.ch:
		t.Fatal("unexpected delivery")
	case <-time.After(50 * time.Millisecond):
	}
}

func testPartition(t *testing.T) *Partition {
	t.Helper()
	ctx := context.Background()
	store := metadata.NewMemory()
	f, err := managedledger.NewFactory(managedledger.FactoryOptions{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(ctx, Options{Store: store, Ledgers: f})
	if err != nil {
		t.Fatal(err)
	}
	name, _ := ParseTopicName("d", "public", "default")
	p, err := b.OpenPartition(ctx, name, true)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func appendN(t *testing.T, p *Partition, n int, msgs int32) []Position {
	t.Helper()
	var out []Position
	for i := range n {
		r, err := p.Append(context.Background(), AppendRequest{Format: FormatPulsar, MsgCount: msgs, Data: fmt.Appendf(nil, "e%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.Entry.Position)
	}
	return out
}

// attach attaches a consumer called name delivering to sink through
// Subscription.AddConsumer, as the protocol handlers do; it is closed
// when the test ends.
func attach(t *testing.T, sub *Subscription, opts DispatchOptions, name string, sink ConsumerSink) (*ConsumerHandle, error) {
	t.Helper()
	h, err := sub.AddConsumer(context.Background(), ConsumerSpec{Info: ConsumerInfo{Name: name}, Dispatch: opts}, sink)
	if err == nil {
		t.Cleanup(h.Close)
	}
	return h, err
}

func TestDispatcherPermitsAndRedelivery(t *testing.T) {
	p := testPartition(t)
	ctx := context.Background()
	sub, err := p.Subscription(ctx, "s", true, InitialEarliest)
	if err != nil {
		t.Fatal(err)
	}
	pos := appendN(t, p, 5, 2) // 5 entries of 2 messages
	s := newSink()
	h, err := attach(t, sub, DispatchOptions{Type: SubShared, PartitionIndex: -1}, "a", s)
	if err != nil {
		t.Fatal(err)
	}
	d, c := h.Dispatcher(), h.Consumer()
	s.none(t) // no permits yet
	d.Flow(c, 3)
	got := s.wait(t, 2) // 2 entries use 4 permits (3 granted: a batch may overdraw)
	s.none(t)
	if got[0].Entry.Position != pos[0] || got[1].Entry.Position != pos[1] {
		t.Fatalf("got %v %v", got[0].Entry.Position, got[1].Entry.Position)
	}
	d.Redeliver(c, []Position{pos[0]})
	d.Flow(c, 1) // -1 + 1 = 0: nothing
	s.none(t)
	d.Flow(c, 2)
	got = s.wait(t, 1)
	if r := got[2]; r.Entry.Position != pos[0] || r.RedeliveryCount != 1 {
		t.Fatalf("redelivery %v count %d", r.Entry.Position, r.RedeliveryCount)
	}
	if err := d.Ack(ctx, pos[0], pos[1]); err != nil {
		t.Fatal(err)
	}
	if md := sub.Cursor().MarkDeletePosition(); md != pos[1] {
		t.Fatalf("mark-delete %v, want %v", md, pos[1])
	}
	// A second consumer gets what the first held when it leaves.
	s2 := newSink()
	h2, err := attach(t, sub, DispatchOptions{Type: SubShared, PartitionIndex: -1}, "b", s2)
	if err != nil {
		t.Fatal(err)
	}
	c2 := h2.Consumer()
	if _, err := attach(t, sub, DispatchOptions{Type: SubExclusive}, "x", newSink()); !errors.Is(err, ErrInUse) {
		t.Fatalf("type mismatch: %v", err)
	}
	d.Flow(c, 2)
	s.wait(t, 1) // pos[2]
	h.Close()
	d.Flow(c2, 100)
	got2 := s2.wait(t, 3) // pos[2] again, then 3 and 4
	if got2[0].Entry.Position != pos[2] || got2[0].RedeliveryCount != 1 || got2[2].Entry.Position != pos[4] {
		t.Fatalf("second consumer got %v", got2)
	}
}

func TestDispatcherFailoverAndBatchAcks(t *testing.T) {
	p := testPartition(t)
	ctx := context.Background()
	sub, _ := p.Subscription(ctx, "f", true, InitialEarliest)
	pos := appendN(t, p, 2, 3)
	sa, sb := newSink(), newSink()
	opts := DispatchOptions{Type: SubFailover, PartitionIndex: -1}
	hb, err := attach(t, sub, opts, "b", sb)
	if err != nil {
		t.Fatal(err)
	}
	ha, err := attach(t, sub, opts, "a", sa)
	if err != nil {
		t.Fatal(err)
	}
	d, ca, cb := hb.Dispatcher(), ha.Consumer(), hb.Consumer()
	d.Flow(ca, 10)
	d.Flow(cb, 10)
	sa.wait(t, 2)
	sb.none(t)
	if sb.active[len(sb.active)-1] || !sa.active[len(sa.active)-1] {
		t.Fatalf("active flags a=%v b=%v", sa.active, sb.active)
	}
	// Message 1 of the first batch acknowledged (bit 1 cleared).
	if err := d.AckBatchIndex(ctx, pos[0], []uint64{0b101}); err != nil {
		t.Fatal(err)
	}
	ha.Close()
	got := sb.wait(t, 2)
	if got[0].Entry.Position != pos[0] || len(got[0].AckSet) != 1 || got[0].AckSet[0] != 0b101 {
		t.Fatalf("failover got %+v", got[0])
	}
}

// A Key_Shared consumer without permits holds back only its own keys.
func TestDispatcherKeySharedNoHeadOfLineBlocking(t *testing.T) {
	p := testPartition(t)
	ctx := context.Background()
	sub, _ := p.Subscription(ctx, "k", true, InitialEarliest)
	inspect := func(e *Entry) ([]byte, bool) { return e.Data[:2], true } // key = first two bytes
	opts := DispatchOptions{Type: SubKeyShared, PartitionIndex: -1, Inspect: inspect}
	sa, sb := newSink(), newSink()
	ha, err := attach(t, sub, opts, "a", sa)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := attach(t, sub, opts, "b", sb)
	if err != nil {
		t.Fatal(err)
	}
	d, ca, cb := ha.Dispatcher(), ha.Consumer(), hb.Consumer()
	// Find one key per consumer.
	// a, first, owns everything; b takes the lower half.
	owner := func(k string) int {
		if keySlot([]byte(k)) <= keyHashRange/2 {
			return 1
		}
		return 0
	}
	var keyA, keyB string
	for i := 0; keyA == "" || keyB == ""; i++ {
		k := fmt.Sprintf("%02d", i)
		if owner(k) == 0 && keyA == "" {
			keyA = k
		} else if owner(k) == 1 && keyB == "" {
			keyB = k
		}
	}
	for i := range 10 {
		k := keyA
		if i%2 == 1 {
			k = keyB
		}
		if _, err := p.Append(ctx, AppendRequest{Format: FormatPulsar, MsgCount: 1, Data: []byte(fmt.Sprintf("%s-%d", k, i))}); err != nil {
			t.Fatal(err)
		}
	}
	d.Flow(ca, 1)
	d.Flow(cb, 100)
	gotB := sb.wait(t, 5)
	sa.wait(t, 1) // one permit: one message of key A, then nothing
	sa.none(t)
	d.Flow(ca, 100)
	gotA := sa.wait(t, 4) // wait returns every delivery so far: all five of key A
	for i, g := range gotA {
		if want := fmt.Sprintf("%s-%d", keyA, 2*i); string(g.Entry.Data) != want {
			t.Fatalf("consumer a got %q at %d, want %q (order kept per key)", g.Entry.Data, i, want)
		}
	}
	for _, g := range gotB {
		if string(g.Entry.Data[:2]) != keyB {
			t.Fatalf("consumer b got %q", g.Entry.Data)
		}
	}
}

type slowSink struct {
	*sink
	writable bool
}

func (s *slowSink) Writable() bool { return s.writable }

// A Shared consumer whose connection is backed up is passed over.
func TestDispatcherSkipsUnwritableConsumer(t *testing.T) {
	p := testPartition(t)
	ctx := context.Background()
	sub, _ := p.Subscription(ctx, "w", true, InitialEarliest)
	appendN(t, p, 6, 1)
	slow, fast := &slowSink{sink: newSink()}, newSink()
	opts := DispatchOptions{Type: SubShared, PartitionIndex: -1}
	hs, err := attach(t, sub, opts, "slow", slow)
	if err != nil {
		t.Fatal(err)
	}
	hf, err := attach(t, sub, opts, "fast", fast)
	if err != nil {
		t.Fatal(err)
	}
	d, cs, cf := hs.Dispatcher(), hs.Consumer(), hf.Consumer()
	d.Flow(cs, 100)
	d.Flow(cf, 100)
	fast.wait(t, 6)
	slow.none(t)
}
