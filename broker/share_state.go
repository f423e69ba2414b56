package broker

// Share consumers: Kafka share groups (KIP-932) on a Shared subscription.
//
// A Kafka share group named G on topic T IS the Pulsar subscription G on
// T's partitions, dispatched Shared. A share member's session on one
// partition is a ShareConsumer: one more consumer (a ConsumerSink) of the
// subscription's Shared dispatcher, beside any Pulsar Shared consumers.
// There is no second copy of the share-partition state:
//
//   - acknowledged / archived records are the cursor's acknowledgements
//     (mark-delete, individual acks, batch-index acks), persisted by the
//     cursor as for Pulsar acks;
//   - acquired records are the dispatcher's pending entries of this
//     consumer (an entry held by one consumer is delivered to no other);
//   - delivery counts are the cursor's redelivery counts plus one,
//     persisted with the cursor's acknowledgements (Pulsar keeps them in
//     memory only; here a restart does not reset a delivery count limit);
//   - available records are the backlog and the dispatcher's replay set.
//
// The dispatcher hands whole entries (produced batches) to one consumer;
// the share consumer holds the entry's records the cursor has not
// acknowledged and hands them to its client per record: whole entries by
// default (Kafka's batch-optimized acquisition), or exactly up to the
// requested number of records (strict), the rest of the entry staying held
// for the next Acquire. Records of one entry are never split between
// consumers (see docs/consumer-groups.md). Acknowledgement is
// per record: accepted and rejected records are batch-index acks on the
// cursor at once; when no record of an entry is still acquired, the entry
// is acknowledged if nothing was released, else redelivered (to either
// protocol's consumers) with its acknowledged records masked out.
//
// Delivery count limit: an entry whose delivery count reached
// DeliveryLimit is archived (acknowledged) when released or when its lock
// times out instead of being redelivered, and an entry arriving with more
// deliveries than the limit (Pulsar consumers negatively acknowledged it)
// is archived on arrival. Pulsar's client-side dead-letter policy with
// MaxDeliveries equal to the limit agrees: the application sees a message
// at most that many times.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// ErrInvalidRecordState: a share acknowledgement of a record that the
// consumer does not hold acquired (Kafka INVALID_RECORD_STATE).
var ErrInvalidRecordState = errors.New("broker: record not acquired by this share consumer")

// AckType is a share acknowledgement type, with Kafka's numbering
// (ShareAcknowledge/ShareFetch AcknowledgeTypes).
type AckType int8

const (
	// AckGap marks an offset that holds no record (a gap); it is accepted
	// if acquired and ignored otherwise.
	AckGap AckType = 0
	// AckAccept acknowledges the record (cursor ack).
	AckAccept AckType = 1
	// AckRelease makes the record available again (redelivery).
	AckRelease AckType = 2
	// AckReject archives the record: acknowledged, never redelivered.
	AckReject AckType = 3
	// AckRenew extends the record's acquisition lock (Kafka 4.2).
	AckRenew AckType = 4
)

// Share defaults, as Kafka's group.share.* settings.
const (
	// DefaultShareLockDuration is group.share.record.lock.duration.ms.
	DefaultShareLockDuration = 30 * time.Second
	// DefaultShareDeliveryLimit is group.share.delivery.count.limit.
	DefaultShareDeliveryLimit = 5
	// DefaultShareMaxLocks is group.share.partition.max.record.locks.
	DefaultShareMaxLocks = 2000
)

// ShareOptions configures a ShareConsumer.
type ShareOptions struct {
	// Name names the consumer in statistics (the Kafka member id).
	Name string
	// LockDuration is how long acquired records stay locked to the
	// consumer before they are released (default 30 s,
	// group.share.record.lock.duration.ms).
	LockDuration time.Duration
	// DeliveryLimit is the most deliveries of a record (default 5,
	// group.share.delivery.count.limit).
	DeliveryLimit int
	// MaxLocks bounds the records the consumer holds acquired at once
	// (default 2000, group.share.partition.max.record.locks).
	MaxLocks int
	// PartitionIndex is the partition's index (-1 non-partitioned).
	PartitionIndex int
	// Inspect: see DispatchOptions.Inspect (used if the consumer creates
	// the dispatcher).
	Inspect func(e *Entry) (key []byte, ok bool)
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// ReadyHold bounds how long an entry delivered to the consumer waits
	// for an Acquire before it goes back to the subscription's other
	// consumers, uncounted (default min(LockDuration, 2 s)).
	ReadyHold time.Duration
	// NoExpiryLoop disables the background lock expiry (tests call
	// ExpireLocks themselves).
	NoExpiryLoop bool
}

// Record states of a held entry's records.
const (
	recNotOurs  int8 = iota // acknowledged before delivery: not acquired
	recHeld                 // delivered to the consumer, not yet handed to its client
	recAcquired             // handed to the client: locked to this consumer
	recAccepted             // acknowledged (accept)
	recReleased             // to redeliver
	recRejected             // archived (reject)
)

// shareEntry is one entry the dispatcher delivered to a ShareConsumer.
type shareEntry struct {
	entry         Entry
	deliveryCount int
	// deadline is when held records not handed out yet go back (ReadyHold
	// after the delivery or the last partial hand-out).
	deadline time.Time
	state    []int8      // per message of the entry
	locks    []time.Time // per message: when its acquisition lock ends
	handed   bool        // some record was returned by Acquire
}

// count counts the entry's records in state st.
func (se *shareEntry) count(st int8) int {
	n := 0
	for _, s := range se.state {
		if s == st {
			n++
		}
	}
	return n
}

func (se *shareEntry) acquired() int { return se.count(recAcquired) }

// AcquiredEntry is an entry handed to a share consumer by Acquire.
type AcquiredEntry struct {
	Entry Entry
	// DeliveryCount counts this delivery (1 on the first).
	DeliveryCount int
	// Ranges are the acquired offset ranges [first, last] within the
	// entry; records outside them were acknowledged before and are not
	// the consumer's.
	Ranges [][2]int64
}

// ShareConsumer is one share session on one subscription partition: a
// consumer of the subscription's Shared dispatcher that holds what it is
// delivered as acquired records until they are acknowledged, released, or
// their lock times out. Methods are safe for concurrent use.
type ShareConsumer struct {
	sub  *Subscription
	disp *Dispatcher
	dc   *DispatchConsumer
	opts ShareOptions
	h    *ConsumerHandle
	stop chan struct{}
	done chan struct{}

	mu struct {
		sync.Mutex
		closed bool
		// held are the delivered, undecided entries by position.
		held map[Position]*shareEntry
		// ready are held entries not yet handed out, in delivery order.
		ready []Position
		// wake is closed when an entry arrives (replaced after).
		wake chan struct{}
		// archived counts records archived by the delivery limit.
		archived int64
		// gone: the partition closed under the dispatcher.
		gone bool
	}
}

// AttachShare adds a share consumer to the subscription's Shared
// dispatcher (created if none is live; ErrInUse if the subscription is
// live with another type): a Kafka-side sink attached through
// Subscription.AddConsumer, as a Pulsar consumer is.
func (s *Subscription) AttachShare(ctx context.Context, opts ShareOptions) (*ShareConsumer, error) {
	if opts.LockDuration <= 0 {
		opts.LockDuration = DefaultShareLockDuration
	}
	if opts.DeliveryLimit <= 0 {
		opts.DeliveryLimit = DefaultShareDeliveryLimit
	}
	if opts.MaxLocks <= 0 {
		opts.MaxLocks = DefaultShareMaxLocks
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReadyHold <= 0 {
		opts.ReadyHold = min(opts.LockDuration, 2*time.Second)
	}
	sc := &ShareConsumer{sub: s, opts: opts, stop: make(chan struct{}), done: make(chan struct{})}
	sc.mu.held = make(map[Position]*shareEntry)
	sc.mu.wake = make(chan struct{})
	// Held like a Pulsar consumer (DeleteSubscription without force is
	// refused) and listed in the subscription's statistics. Nothing is
	// delivered before the first Acquire gives permits, so the fields set
	// after AddConsumer are set before any Deliver.
	h, err := s.AddConsumer(ctx, ConsumerSpec{
		Info:     ConsumerInfo{Name: opts.Name, Protocol: "kafka", Type: SubShared.String()},
		Dispatch: DispatchOptions{Type: SubShared, PartitionIndex: opts.PartitionIndex, Inspect: opts.Inspect},
	}, sc)
	if err != nil {
		return nil, err
	}
	sc.h, sc.disp, sc.dc = h, h.Dispatcher(), h.Consumer()
	if opts.NoExpiryLoop {
		close(sc.done)
	} else {
		go sc.expiryLoop()
	}
	return sc, nil
}

// Subscription is the subscription the consumer is attached to.
func (sc *ShareConsumer) Subscription() *Subscription { return sc.sub }

// DispatchConsumer is the consumer's dispatcher registration (statistics).
func (sc *ShareConsumer) DispatchConsumer() *DispatchConsumer { return sc.dc }

// Deliver implements ConsumerSink: the entry becomes acquired by this
// consumer (or is archived at once past the delivery limit).
func (sc *ShareConsumer) Deliver(ctx context.Context, d Delivery) error {
	n := int(max(d.Entry.MsgCount, 1))
	se := &shareEntry{entry: d.Entry, deliveryCount: int(d.RedeliveryCount) + 1, state: make([]int8, n), locks: make([]time.Time, n)}
	for i := range se.state {
		if d.AckSet == nil || (i/64 < len(d.AckSet) && d.AckSet[i/64]&(1<<(uint(i)%64)) != 0) {
			se.state[i] = recHeld
		}
	}
	if se.deliveryCount > sc.opts.DeliveryLimit {
		sc.mu.Lock()
		sc.mu.archived += int64(se.count(recHeld))
		sc.mu.Unlock()
		return sc.disp.Ack(ctx, d.Entry.Position)
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.mu.closed {
		return ErrClosed
	}
	se.deadline = sc.opts.Now().Add(sc.opts.ReadyHold)
	sc.mu.held[d.Entry.Position] = se
	sc.mu.ready = append(sc.mu.ready, d.Entry.Position)
	close(sc.mu.wake)
	sc.mu.wake = make(chan struct{})
	return nil
}

// PartitionClosed implements PartitionClosedSink: the partition closed
// (topic deleted or unloaded), so Acquire fails with ErrClosed from now
// on; the protocol closes the consumer and attaches again.
func (sc *ShareConsumer) PartitionClosed() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if !sc.mu.gone {
		sc.mu.gone = true
		close(sc.mu.wake)
		sc.mu.wake = make(chan struct{})
	}
}

// ActiveChanged implements ConsumerSink (Shared: never called).
func (sc *ShareConsumer) ActiveChanged(bool) {}

// lockedLocked counts the records the consumer's client holds acquired
// (handed out by Acquire, not yet decided).
func (sc *ShareConsumer) lockedLocked() int {
	n := 0
	for _, se := range sc.mu.held {
		n += se.acquired()
	}
	return n
}

// Ready returns a channel closed when the next entry is delivered to the
// consumer (take it before an Acquire that finds nothing, then wait on it).
func (sc *ShareConsumer) Ready() <-chan struct{} {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.mu.wake
}

// LockDuration is the consumer's acquisition lock duration.
func (sc *ShareConsumer) LockDuration() time.Duration { return sc.opts.LockDuration }

// Locked is how many records the consumer's client holds acquired.
func (sc *ShareConsumer) Locked() int {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.lockedLocked()
}

// Archived counts the records archived because they reached the delivery
// limit (on arrival, release or lock timeout).
func (sc *ShareConsumer) Archived() int64 {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.mu.archived
}

// Acquire returns acquired records in offset order, waiting up to wait for
// the first; their locks run from now for LockDuration. Without strict it
// returns whole entries up to about maxRecords records (the last entry
// may pass it: Kafka's batch-optimized mode); with strict exactly at most
// maxRecords records and never more than the consumer's MaxLocks in all,
// an entry's other records staying held for the next Acquire (Kafka's
// record-limit mode). The returned entries are whole; their Ranges say
// which records were acquired.
func (sc *ShareConsumer) Acquire(ctx context.Context, maxRecords int, wait time.Duration, strict bool) ([]AcquiredEntry, error) {
	if maxRecords <= 0 {
		maxRecords = 1
	}
	sc.mu.Lock()
	if sc.mu.closed || sc.mu.gone {
		sc.mu.Unlock()
		return nil, ErrClosed
	}
	readyRecs := 0
	for _, pos := range sc.mu.ready {
		if se := sc.mu.held[pos]; se != nil {
			readyRecs += se.count(recHeld)
		}
	}
	// Held records not handed out yet count against this Acquire; the
	// lock limit counts what the client holds.
	want := min(maxRecords, sc.opts.MaxLocks-sc.lockedLocked()) - readyRecs
	sc.mu.Unlock()
	if want > 0 && sc.dc.Stats().Permits < int64(want) {
		sc.disp.Flow(sc.dc, int64(want)-sc.dc.Stats().Permits)
	}
	var timer <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timer = t.C
	}
	for {
		sc.mu.Lock()
		if sc.mu.closed || sc.mu.gone {
			sc.mu.Unlock()
			return nil, ErrClosed
		}
		if len(sc.mu.ready) > 0 || timer == nil {
			n := maxRecords
			if strict {
				n = min(n, sc.opts.MaxLocks-sc.lockedLocked())
			}
			out := sc.takeLocked(n, strict)
			sc.mu.Unlock()
			return out, nil
		}
		wake := sc.mu.wake
		sc.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer:
			timer = nil
		case <-wake:
		}
	}
}

// takeLocked hands out held records of ready entries, up to maxRecords
// (strict: exactly; else whole entries while fewer were taken).
func (sc *ShareConsumer) takeLocked(maxRecords int, strict bool) []AcquiredEntry {
	var out []AcquiredEntry
	n := 0
	now := sc.opts.Now()
	for len(sc.mu.ready) > 0 && n < maxRecords {
		pos := sc.mu.ready[0]
		se := sc.mu.held[pos]
		if se == nil || se.count(recHeld) == 0 {
			sc.mu.ready = sc.mu.ready[1:]
			continue
		}
		se.handed = true
		ae := AcquiredEntry{Entry: se.entry, DeliveryCount: se.deliveryCount}
		for i, s := range se.state {
			if s != recHeld {
				continue
			}
			if strict && n == maxRecords {
				break
			}
			se.state[i] = recAcquired
			se.locks[i] = now.Add(sc.opts.LockDuration)
			off := se.entry.FirstIndex + int64(i)
			if k := len(ae.Ranges); k > 0 && ae.Ranges[k-1][1] == off-1 {
				ae.Ranges[k-1][1] = off
			} else {
				ae.Ranges = append(ae.Ranges, [2]int64{off, off})
			}
			n++
		}
		if se.count(recHeld) == 0 {
			sc.mu.ready = sc.mu.ready[1:]
		} else {
			// The rest waits for the next Acquire, at the front.
			se.deadline = now.Add(sc.opts.ReadyHold)
		}
		out = append(out, ae)
	}
	// In offset order: redelivered entries come back after newer ones,
	// and Kafka clients expect a partition's batches in offset order (a
	// record behind an earlier batch may be taken for a gap).
	sort.Slice(out, func(i, j int) bool { return out[i].Entry.FirstIndex < out[j].Entry.FirstIndex })
	return out
}

// Acknowledge applies acknowledgements to the offsets first..last: types
// has one type for all of them or one per offset (Kafka's
// AcknowledgementBatch). Accepted and rejected records are acknowledged on
// the cursor before it returns. An offset the consumer does not hold
// acquired fails the batch with ErrInvalidRecordState (gaps excepted),
// after the valid ones were applied.
func (sc *ShareConsumer) Acknowledge(ctx context.Context, first, last int64, types []AckType) error {
	if last < first || len(types) == 0 || (len(types) != 1 && int64(len(types)) != last-first+1) {
		return fmt.Errorf("%w: acknowledgement batch %d..%d with %d types", ErrInvalidRecordState, first, last, len(types))
	}
	sc.mu.Lock()
	if sc.mu.closed {
		sc.mu.Unlock()
		return ErrClosed
	}
	now := sc.opts.Now()
	var bad error
	touched := map[Position]*shareEntry{}
	for _, se := range sc.mu.held {
		lo, hi := se.entry.FirstIndex, se.entry.FirstIndex+int64(len(se.state))-1
		if hi < first || lo > last {
			continue
		}
		for off := max(lo, first); off <= min(hi, last); off++ {
			t := types[0]
			if len(types) > 1 {
				t = types[off-first]
			}
			i := off - lo
			if se.state[i] != recAcquired {
				if t != AckGap && bad == nil {
					bad = fmt.Errorf("%w: offset %d", ErrInvalidRecordState, off)
				}
				continue
			}
			switch t {
			case AckGap, AckAccept:
				se.state[i] = recAccepted
			case AckRelease:
				se.state[i] = recReleased
			case AckReject:
				se.state[i] = recRejected
			case AckRenew:
				se.locks[i] = now.Add(sc.opts.LockDuration)
				continue
			default:
				if bad == nil {
					bad = fmt.Errorf("%w: acknowledge type %d", ErrInvalidRecordState, t)
				}
				continue
			}
			touched[se.entry.Position] = se
		}
	}
	// Offsets in no held entry are not ours.
	if bad == nil && len(touched) == 0 {
		allGaps := true
		for _, t := range types {
			if t != AckGap && t != AckRenew {
				allGaps = false
			}
		}
		if !allGaps && !sc.coveredLocked(first, last) {
			bad = fmt.Errorf("%w: offsets %d..%d", ErrInvalidRecordState, first, last)
		}
	}
	acts := sc.settleLocked(touched)
	sc.mu.Unlock()
	if err := sc.apply(ctx, acts); err != nil {
		return err
	}
	return bad
}

func (sc *ShareConsumer) coveredLocked(first, last int64) bool {
	for _, se := range sc.mu.held {
		lo, hi := se.entry.FirstIndex, se.entry.FirstIndex+int64(len(se.state))-1
		if hi >= first && lo <= last {
			return true
		}
	}
	return false
}

// shareAction is what settling an entry asks of the dispatcher.
type shareAction struct {
	pos      Position
	ackSet   []uint64 // batch-index acks to record first (nil: none)
	ackAll   bool     // acknowledge the whole entry
	release  bool     // redeliver
	archived int      // records archived by the delivery limit
}

// settleLocked turns the state of touched entries into cursor and
// dispatcher actions; decided entries leave held.
func (sc *ShareConsumer) settleLocked(touched map[Position]*shareEntry) []shareAction {
	var acts []shareAction
	for pos, se := range touched {
		a := shareAction{pos: pos}
		acked, released, acquired := 0, 0, 0
		for _, s := range se.state {
			switch s {
			case recAccepted, recRejected:
				acked++
			case recReleased:
				released++
			case recAcquired, recHeld:
				acquired++ // undecided
			}
		}
		if acquired > 0 || released > 0 {
			if acked > 0 {
				a.ackSet = ackSetOf(se.state)
			}
		}
		if acquired == 0 {
			delete(sc.mu.held, pos)
			switch {
			case released == 0:
				a.ackAll, a.ackSet = true, nil
			case se.deliveryCount >= sc.opts.DeliveryLimit:
				a.ackAll, a.ackSet, a.archived = true, nil, released
				sc.mu.archived += int64(released)
			default:
				a.release = true
			}
		}
		if a.ackSet != nil || a.ackAll || a.release {
			acts = append(acts, a)
		}
	}
	sort.Slice(acts, func(i, j int) bool { return acts[i].pos.Less(acts[j].pos) })
	return acts
}

// ackSetOf is the cursor ack set of an entry's state: bit i set for each
// record still unacknowledged.
func ackSetOf(state []int8) []uint64 {
	set := make([]uint64, (len(state)+63)/64)
	for i, s := range state {
		if s == recHeld || s == recAcquired || s == recReleased {
			set[i/64] |= 1 << (uint(i) % 64)
		}
	}
	return set
}

func (sc *ShareConsumer) apply(ctx context.Context, acts []shareAction) error {
	var release []Position
	var ackAll []Position
	for _, a := range acts {
		if a.ackSet != nil {
			if err := sc.disp.AckBatchIndex(ctx, a.pos, a.ackSet); err != nil {
				return err
			}
		}
		if a.ackAll {
			ackAll = append(ackAll, a.pos)
		}
		if a.release {
			release = append(release, a.pos)
		}
	}
	if len(ackAll) > 0 {
		if err := sc.disp.Ack(ctx, ackAll...); err != nil {
			return err
		}
	}
	if len(release) > 0 {
		sc.disp.Redeliver(sc.dc, release)
	}
	return nil
}

// ExpireLocks releases the records whose acquisition lock has timed out
// (archiving those at the delivery limit). The background loop calls it;
// tests with NoExpiryLoop call it after moving their clock.
func (sc *ShareConsumer) ExpireLocks(ctx context.Context) error {
	sc.mu.Lock()
	if sc.mu.closed {
		sc.mu.Unlock()
		return nil
	}
	now := sc.opts.Now()
	touched := map[Position]*shareEntry{}
	var unhanded []Position
	for pos, se := range sc.mu.held {
		heldOver := se.count(recHeld) > 0 && !now.Before(se.deadline)
		if heldOver && !se.handed {
			// Read ahead for a client that did not ask again in time:
			// back to the others, not a delivery.
			delete(sc.mu.held, pos)
			unhanded = append(unhanded, pos)
			continue
		}
		for i, s := range se.state {
			// The rest of a partly handed entry goes back with it (the
			// entry is redelivered as a whole).
			if (s == recAcquired && !now.Before(se.locks[i])) || (s == recHeld && heldOver) {
				se.state[i] = recReleased
				touched[pos] = se
			}
		}
	}
	if len(touched) > 0 || len(unhanded) > 0 {
		ready := sc.mu.ready[:0]
		for _, pos := range sc.mu.ready {
			if se := sc.mu.held[pos]; se != nil && se.count(recHeld) > 0 {
				ready = append(ready, pos)
			}
		}
		sc.mu.ready = ready
	}
	acts := sc.settleLocked(touched)
	sc.mu.Unlock()
	if len(unhanded) > 0 {
		sc.disp.Unflow(sc.dc)
		sc.disp.Return(sc.dc, unhanded)
	}
	return sc.apply(ctx, acts)
}

func (sc *ShareConsumer) expiryLoop() {
	defer close(sc.done)
	period := min(max(sc.opts.LockDuration/10, 10*time.Millisecond), time.Second)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-sc.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			sc.ExpireLocks(ctx)
			cancel()
		}
	}
}

// Close ends the session: records at the delivery limit are archived, the
// other acquired records are released (redelivered to the subscription's
// other consumers, either protocol), and the consumer leaves the
// dispatcher. Idempotent.
func (sc *ShareConsumer) Close(ctx context.Context) error {
	sc.mu.Lock()
	if sc.mu.closed {
		sc.mu.Unlock()
		<-sc.done
		return nil
	}
	sc.mu.closed = true
	var archive, unhanded []Position
	for pos, se := range sc.mu.held {
		if !se.handed {
			unhanded = append(unhanded, pos)
			continue
		}
		if se.deliveryCount < sc.opts.DeliveryLimit {
			continue
		}
		n := 0
		for _, s := range se.state {
			if s == recHeld || s == recAcquired || s == recReleased {
				n++
			}
		}
		if n > 0 {
			archive = append(archive, pos)
			sc.mu.archived += int64(n)
		}
	}
	sc.mu.held = map[Position]*shareEntry{}
	sc.mu.ready = nil
	close(sc.mu.wake)
	sc.mu.wake = make(chan struct{})
	sc.mu.Unlock()
	if !sc.opts.NoExpiryLoop {
		close(sc.stop)
	}
	<-sc.done
	sc.disp.Return(sc.dc, unhanded) // never reached the client: uncounted
	var err error
	if len(archive) > 0 {
		err = sc.disp.Ack(ctx, archive...)
	}
	// Whatever is still pending to it is replayed to the others.
	sc.h.Close()
	return err
}
