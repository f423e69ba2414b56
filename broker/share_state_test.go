package broker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

var (
	shareSeed   = flag.Uint64("share.seed", 0, "TestShareAcquisitionModel: run one round with this seed")
	shareRounds = flag.Int("share.rounds", 6, "TestShareAcquisitionModel: rounds (random seeds)")
)

// shareModel is the trivially correct model of one subscription shared by
// a share consumer (side "A", Kafka) and a dispatch consumer (side "B",
// Pulsar): who holds each record, which records were acknowledged, and
// how often each was delivered.
type shareModel struct {
	t     *testing.T
	limit int

	mu         sync.Mutex
	holder     map[int64]string // offset -> "A" / "B"
	acked      map[int64]bool
	deliveries map[int64]int
	failures   []string
	// B's view: entries delivered to it and not yet settled.
	bHeld map[Position]Delivery
}

func (m *shareModel) failf(format string, args ...any) {
	m.failures = append(m.failures, fmt.Sprintf(format, args...))
}

// take records that side got the records offs with the given delivery count.
func (m *shareModel) takeLocked(side string, offs []int64, count int) {
	for _, off := range offs {
		if m.acked[off] {
			m.failf("%s got acknowledged record %d", side, off)
		}
		if h := m.holder[off]; h != "" {
			m.failf("%s got record %d held by %s", side, off, h)
		}
		m.holder[off] = side
		m.deliveries[off]++
		if count < m.deliveries[off] {
			m.failf("%s got record %d with delivery count %d after %d deliveries", side, off, count, m.deliveries[off])
		}
		if side == "A" && count > m.limit {
			m.failf("A got record %d with delivery count %d past the limit %d", off, count, m.limit)
		}
	}
}

// bSink is side B: a Pulsar-like consumer. Like a Pulsar client with a
// dead-letter policy of `limit` deliveries, it acknowledges (dead-letters)
// an entry delivered more often than that.
type bSink struct {
	m    *shareModel
	d    func() *Dispatcher
	recs func(d Delivery) []int64
}

func (s *bSink) Deliver(ctx context.Context, d Delivery) error {
	s.m.mu.Lock()
	offs := s.recs(d)
	if int(d.RedeliveryCount) >= s.m.limit {
		for _, off := range offs {
			if s.m.acked[off] {
				s.m.failf("B got acknowledged record %d", off)
			}
			s.m.acked[off] = true
		}
		s.m.mu.Unlock()
		return s.d().Ack(ctx, d.Entry.Position)
	}
	s.m.takeLocked("B", offs, int(d.RedeliveryCount)+1)
	s.m.bHeld[d.Entry.Position] = d
	s.m.mu.Unlock()
	return nil
}

func (s *bSink) ActiveChanged(bool) {}

// TestShareAcquisitionModel drives a share consumer and a Pulsar-style
// consumer of one Shared subscription with random acquire / accept /
// release / reject / lock timeout / nack / ack / close operations and
// checks against the model that no record is held by two consumers at
// once, an acknowledged record is never delivered again, the delivery
// count limit archives, and in the end every record was acknowledged.
func TestShareAcquisitionModel(t *testing.T) {
	for _, seed := range modelSeeds(*shareSeed, *shareRounds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runShareModel(t, seed) })
	}
}

func runShareModel(t *testing.T, seed uint64) {
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	ctx := context.Background()
	p := testPartition(t)
	sub, err := p.Subscription(ctx, "g", true, InitialEarliest)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 3
	m := &shareModel{t: t, limit: limit, holder: map[int64]string{}, acked: map[int64]bool{},
		deliveries: map[int64]int{}, bHeld: map[Position]Delivery{}}

	var clockMu sync.Mutex
	clock := time.Unix(1_000_000, 0)
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	const lock = time.Minute

	// Every entry's offsets, by position.
	entryOf := map[Position]Entry{}
	var total int64
	produce := func(n int) {
		for range n {
			msgs := int32(1 + rng.IntN(3))
			r, err := p.Append(ctx, AppendRequest{Format: FormatPulsar, MsgCount: msgs, Data: []byte("x")})
			if err != nil {
				t.Fatal(err)
			}
			m.mu.Lock()
			entryOf[r.Entry.Position] = r.Entry
			m.mu.Unlock()
			total += int64(msgs)
		}
	}
	recs := func(d Delivery) []int64 {
		var out []int64
		for i := range int(max(d.Entry.MsgCount, 1)) {
			if d.AckSet == nil || d.AckSet[i/64]&(1<<(uint(i)%64)) != 0 {
				out = append(out, d.Entry.FirstIndex+int64(i))
			}
		}
		return out
	}

	newA := func() *ShareConsumer {
		a, err := sub.AttachShare(context.Background(), ShareOptions{Name: "A", LockDuration: lock, DeliveryLimit: limit, MaxLocks: 8, PartitionIndex: -1, Now: now, NoExpiryLoop: true})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := newA()
	var archived int64 // by closed share consumers
	var bd *Dispatcher
	bs := &bSink{m: m, d: func() *Dispatcher { return bd }, recs: recs}
	bh, err := attach(t, sub, DispatchOptions{Type: SubShared, PartitionIndex: -1}, "B", bs)
	if err != nil {
		t.Fatal(err)
	}
	bd, bc := bh.Dispatcher(), bh.Consumer()
	// aHeld: A's acquired records (model view), offset -> entry position.
	aHeld := map[int64]bool{}

	releaseA := func(offs []int64) {
		for _, off := range offs {
			delete(m.holder, off)
			delete(aHeld, off)
		}
	}
	acquireA := func(wait time.Duration) {
		maxRecs, strict := 1+rng.IntN(6), rng.IntN(2) == 0
		got, err := a.Acquire(ctx, maxRecs, wait, strict)
		if err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if strict {
			// Exactly the limits: the records asked for, the session's locks.
			n := 0
			for _, ae := range got {
				for _, r := range ae.Ranges {
					n += int(r[1] - r[0] + 1)
				}
			}
			if n > maxRecs {
				m.failf("strict Acquire(%d) returned %d records", maxRecs, n)
			}
			// (A batch-optimized Acquire may have passed the limit before.)
			if held := len(aHeld) + n; n > 0 && held > 8 {
				m.failf("strict Acquire: %d records locked, max locks 8", held)
			}
		}
		for i := 1; i < len(got); i++ {
			if got[i].Entry.FirstIndex <= got[i-1].Entry.FirstIndex {
				m.failf("Acquire out of offset order: %d after %d", got[i].Entry.FirstIndex, got[i-1].Entry.FirstIndex)
			}
		}
		for _, ae := range got {
			var offs []int64
			for _, r := range ae.Ranges {
				for off := r[0]; off <= r[1]; off++ {
					offs = append(offs, off)
				}
			}
			m.takeLocked("A", offs, ae.DeliveryCount)
			for _, off := range offs {
				aHeld[off] = true
			}
		}
	}
	ackA := func(typ AckType) {
		m.mu.Lock()
		var offs []int64
		for off := range aHeld {
			offs = append(offs, off)
		}
		if len(offs) == 0 {
			m.mu.Unlock()
			return
		}
		off := offs[rng.IntN(len(offs))]
		switch typ {
		case AckAccept, AckReject:
			m.acked[off] = true
			delete(aHeld, off)
			delete(m.holder, off)
		case AckRelease:
			releaseA([]int64{off})
		}
		m.mu.Unlock()
		if err := a.Acknowledge(ctx, off, off, []AckType{typ}); err != nil {
			t.Fatalf("acknowledge %d: %v", off, err)
		}
	}
	bFlow := func() { bd.Flow(bc, int64(1+rng.IntN(3))) }
	bSettle := func(ack bool) {
		m.mu.Lock()
		var ps []Position
		for pos := range m.bHeld {
			ps = append(ps, pos)
		}
		if len(ps) == 0 {
			m.mu.Unlock()
			return
		}
		pos := ps[rng.IntN(len(ps))]
		d := m.bHeld[pos]
		delete(m.bHeld, pos)
		for _, off := range recs(d) {
			delete(m.holder, off)
			if ack {
				m.acked[off] = true
			}
		}
		m.mu.Unlock()
		if ack {
			if err := bd.Ack(ctx, pos); err != nil {
				t.Fatal(err)
			}
		} else {
			bd.Redeliver(bc, []Position{pos})
		}
	}
	expire := func() {
		clockMu.Lock()
		clock = clock.Add(lock + time.Second)
		clockMu.Unlock()
		m.mu.Lock()
		var offs []int64
		for off := range aHeld {
			offs = append(offs, off)
		}
		releaseA(offs)
		m.mu.Unlock()
		if err := a.ExpireLocks(ctx); err != nil {
			t.Fatal(err)
		}
	}
	closeA := func() {
		m.mu.Lock()
		var offs []int64
		for off := range aHeld {
			offs = append(offs, off)
		}
		releaseA(offs)
		m.mu.Unlock()
		if err := a.Close(ctx); err != nil {
			t.Fatal(err)
		}
		archived += a.Archived()
		a = newA()
	}

	produce(20)
	for range 300 {
		switch k := rng.IntN(100); {
		case k < 5:
			produce(1 + rng.IntN(3))
		case k < 30:
			acquireA(0)
		case k < 45:
			ackA(AckAccept)
		case k < 55:
			ackA(AckRelease)
		case k < 60:
			ackA(AckReject)
		case k < 63:
			expire()
		case k < 65:
			closeA()
		case k < 80:
			bFlow()
		case k < 90:
			bSettle(true)
		default:
			bSettle(false)
		}
		// Let the dispatcher catch up now and then.
		if rng.IntN(4) == 0 {
			time.Sleep(time.Millisecond)
		}
	}

	// Drain: both sides accept everything until the backlog is empty.
	deadline := time.Now().Add(20 * time.Second)
	for sub.Cursor().Backlog() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("backlog %d left after drain", sub.Cursor().Backlog())
		}
		acquireA(5 * time.Millisecond)
		m.mu.Lock()
		var offs []int64
		for off := range aHeld {
			offs = append(offs, off)
		}
		for _, off := range offs {
			m.acked[off] = true
			delete(aHeld, off)
			delete(m.holder, off)
		}
		m.mu.Unlock()
		for _, off := range offs {
			if err := a.Acknowledge(ctx, off, off, []AckType{AckAccept}); err != nil {
				t.Fatal(err)
			}
		}
		for {
			m.mu.Lock()
			n := len(m.bHeld)
			m.mu.Unlock()
			if n == 0 {
				break
			}
			bSettle(true)
		}
		bFlow()
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	bh.Close()

	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range m.failures {
		t.Error(f)
	}
	// Every record was acknowledged by a consumer or archived by A.
	if got := int64(len(m.acked)) + archived + a.Archived(); got < total {
		t.Errorf("%d records acknowledged or archived, want %d", got, total)
	}
	if bl := sub.Cursor().Backlog(); bl != 0 {
		t.Errorf("backlog %d", bl)
	}
}

// TestShareConsumerBasics: acquisition ranges, partial acknowledgement of a
// batch, invalid record state, release to a Pulsar consumer with the
// acknowledged records masked out, and the delivery limit.
func TestShareConsumerBasics(t *testing.T) {
	ctx := context.Background()
	p := testPartition(t)
	sub, err := p.Subscription(ctx, "g", true, InitialEarliest)
	if err != nil {
		t.Fatal(err)
	}
	pos := appendN(t, p, 2, 4) // offsets 0-3, 4-7
	a, err := sub.AttachShare(context.Background(), ShareOptions{Name: "A", DeliveryLimit: 2, PartitionIndex: -1})
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Acquire(ctx, 4, time.Second, false)
	if err != nil || len(got) != 1 || got[0].Entry.Position != pos[0] || got[0].DeliveryCount != 1 ||
		fmt.Sprint(got[0].Ranges) != "[[0 3]]" {
		t.Fatalf("acquire: %+v %v", got, err)
	}
	if err := a.Acknowledge(ctx, 4, 4, []AckType{AckAccept}); !errors.Is(err, ErrInvalidRecordState) {
		t.Fatalf("ack of a record not acquired: %v", err)
	}
	// Accept 0 and 2, release 1 and 3.
	if err := a.Acknowledge(ctx, 0, 3, []AckType{AckAccept, AckRelease, AckAccept, AckRelease}); err != nil {
		t.Fatal(err)
	}
	if n := a.Locked(); n != 4 { // entry 2 (pos[1]) was delivered meanwhile, or will be
		if n != 0 {
			t.Logf("locked %d", n)
		}
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s := newSink()
	h, err := attach(t, sub, DispatchOptions{Type: SubShared, PartitionIndex: -1}, "b", s)
	if err != nil {
		t.Fatal(err)
	}
	d, c := h.Dispatcher(), h.Consumer()
	d.Flow(c, 100)
	ds := s.wait(t, 2)
	if ds[0].Entry.Position != pos[0] || ds[0].RedeliveryCount != 1 || len(ds[0].AckSet) != 1 || ds[0].AckSet[0] != 0b1010 {
		t.Fatalf("redelivery of the released records: %+v", ds[0])
	}
	d.Redeliver(c, []Position{pos[0]})
	h.Close()
	// Delivery count 3 > limit 2: archived on arrival.
	a, err = sub.AttachShare(context.Background(), ShareOptions{Name: "A2", DeliveryLimit: 2, PartitionIndex: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	got, err = a.Acquire(ctx, 10, time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, ae := range got {
		if ae.Entry.Position == pos[0] {
			t.Fatalf("entry past the delivery limit acquired: %+v", ae)
		}
	}
	if a.Archived() != 2 {
		t.Fatalf("archived %d, want 2", a.Archived())
	}
}
