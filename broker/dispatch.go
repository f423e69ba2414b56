package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// SubscriptionType selects how a Dispatcher spreads entries over consumers
// (Pulsar's subscription types; protocol-neutral).
type SubscriptionType int

const (
	// SubExclusive: one consumer; a second one is refused with ErrInUse.
	SubExclusive SubscriptionType = iota
	// SubShared: entries round-robin over consumers with permits.
	SubShared
	// SubFailover: one active consumer (by priority, then name; for a
	// partition, partition index modulo consumer count), others stand by.
	SubFailover
	// SubKeyShared: entries go to the consumer owning the key's hash range
	// (ranges auto-split evenly over consumers in join order).
	SubKeyShared
)

func (t SubscriptionType) String() string {
	switch t {
	case SubExclusive:
		return "Exclusive"
	case SubShared:
		return "Shared"
	case SubFailover:
		return "Failover"
	case SubKeyShared:
		return "Key_Shared"
	}
	return fmt.Sprintf("SubscriptionType(%d)", int(t))
}

// Delivery is one entry handed to a consumer.
type Delivery struct {
	Entry Entry
	// RedeliveryCount counts negative acks / consumer losses / expired
	// share locks of this entry: the cursor's count (Cursor.Redelivered),
	// persisted with it, so it survives dispatchers and broker restarts.
	RedeliveryCount uint32
	// AckSet is the entry's batch-index ack set (bit i set = message i
	// still unacknowledged); nil when no message of the batch is acked.
	AckSet []uint64
}

// ConsumerSink is the protocol side of one live consumer.
type ConsumerSink interface {
	// Deliver hands one entry to the consumer's connection. It may block
	// (bounded connection buffer: backpressure) until ctx is done. An error
	// means the consumer is gone; the entry stays pending and is replayed
	// when the consumer is removed.
	Deliver(ctx context.Context, d Delivery) error
	// ActiveChanged tells a Failover consumer whether it is the active one.
	// It must not block for long and must not call back into the Dispatcher.
	ActiveChanged(active bool)
}

// WritableSink is optionally implemented by a ConsumerSink: a consumer
// whose connection is backed up (Writable false) is passed over by Shared
// and Key_Shared dispatch, so that one slow client does not stall the
// others. It is called with the dispatcher's lock held and must not block.
type WritableSink interface {
	Writable() bool
}

// DispatchConsumer is one consumer registered with a Dispatcher.
type DispatchConsumer struct {
	Name     string
	Priority int
	Sink     ConsumerSink

	// guarded by Dispatcher.mu
	permits int64
	active  bool
	joined  int64

	// disp is the dispatcher c was added to (statistics).
	disp atomic.Pointer[Dispatcher]
	// Statistics: what was delivered to this consumer.
	msgOut, bytesOut atomic.Int64
	outRate          rateMeter
}

// ConsumerStats is one dispatch consumer's statistics (admin stats, metrics).
type ConsumerStats struct {
	// Permits are the messages the consumer may still be sent (FLOW).
	Permits int64
	// Unacked counts the messages delivered to it and not yet acknowledged.
	Unacked int64
	// MsgOut and BytesOut count what was delivered to it (bytes as stored).
	MsgOut, BytesOut int64
	// MsgRateOut and ByteRateOut are per-second rates over the last window
	// of at least 5 s (0 until one has passed).
	MsgRateOut, ByteRateOut float64
}

// Stats returns c's statistics; zero permits and unacked when it is not
// registered with a dispatcher.
func (c *DispatchConsumer) Stats() ConsumerStats {
	st := ConsumerStats{MsgOut: c.msgOut.Load(), BytesOut: c.bytesOut.Load()}
	st.MsgRateOut, st.ByteRateOut = c.outRate.rates(time.Now(), st.MsgOut, st.BytesOut)
	if d := c.disp.Load(); d != nil {
		d.mu.Lock()
		if slices.Contains(d.mu.consumers, c) {
			st.Permits = max(c.permits, 0)
			for _, pe := range d.mu.pending {
				if pe.c == c {
					st.Unacked += int64(pe.msgs)
				}
			}
		}
		d.mu.Unlock()
	}
	return st
}

// pendingEntry is a delivered, unacknowledged entry's consumer and size.
type pendingEntry struct {
	c    *DispatchConsumer
	msgs int32
}

// DispatchOptions configures a Dispatcher.
type DispatchOptions struct {
	Partition *Partition
	// Cursor is the subscription's cursor (durable) or a reader's.
	Cursor *Cursor
	Type   SubscriptionType
	// PartitionIndex is the partition's index (-1 non-partitioned), used by Failover.
	PartitionIndex int
	// Inspect returns an entry's routing key (Key_Shared) and whether the
	// entry can be delivered at all (false: skipped, e.g. a format the
	// protocol cannot convert yet).
	Inspect func(e *Entry) (key []byte, ok bool)
	// DeliverAt, if set, returns when an entry may be delivered (unix ms;
	// 0 or past: now). Only Shared and Key_Shared subscriptions delay
	// entries, as in Pulsar; a delayed entry does not hold back later ones.
	DeliverAt func(e *Entry) int64
	// OnPartitionClosed, if set, is called (from its own goroutine) when
	// the partition closes under the dispatcher (topic deleted, broker
	// closing); the dispatcher has stopped delivering. Protocols
	// disconnect the consumers so that they re-subscribe.
	OnPartitionClosed func()
	// Subscription is the durable subscription dispatched (set by
	// Subscription.AddConsumer; nil for a reader): it counts deliveries.
	Subscription *Subscription
	// MaxReadBytes bounds one read (default 4 MiB).
	MaxReadBytes int
	// ReadCompacted reads the partition's compacted view while the cursor
	// is below its cleaned point, then the raw log (Pulsar readCompacted;
	// compaction.go).
	ReadCompacted bool
	Logger        *slog.Logger
}

// Dispatcher delivers a cursor's entries to the consumers of one
// subscription within their permits (permits count messages: an entry costs
// its MsgCount). It tracks which consumer holds each delivered, unacknowledged
// entry and replays entries on negative acknowledgement or consumer loss.
//
// One goroutine per Dispatcher reads and delivers; Deliver calls happen
// outside d.mu, in log order per consumer.
//
// Lock order: Subscription.dispMu, then Dispatcher.mu, then the cursor's
// locks. ConsumerSink.Deliver is called with no dispatcher lock held;
// ActiveChanged may be called with Subscription.dispMu held and must not
// block. Close waits for the goroutine, whose blocking calls all end with
// its context, so Close may be called with Subscription.dispMu held.
type Dispatcher struct {
	opts DispatchOptions
	wake chan struct{}
	stop chan struct{}
	done chan struct{}

	mu struct {
		sync.Mutex
		closed    bool
		consumers []*DispatchConsumer
		// keyRanges: Key_Shared hash ranges, sorted by upper bound.
		keyRanges []keyRange
		joins     int64
		rr        int
		// pending maps delivered, not fully acknowledged entries to their consumer.
		pending map[Position]pendingEntry
		// replay holds entries to read again before the cursor (sorted on use).
		replay map[Position]struct{}
		// keyHash is the key hash of Key_Shared entries delivered or to
		// replay: a key with an entry waiting in replay is not delivered
		// from newer reads (per-key order).
		keyHash map[Position]int
		// replayStuck: the last replay round placed nothing (Key_Shared
		// consumers without permits); read new entries until something changes.
		replayStuck bool
		// delayed holds entries not to deliver before a time (unix ms).
		delayed map[Position]int64
		// epoch changes on Reset so that in-flight reads are dropped.
		epoch int64
		// avgMsgs is a running average of messages per entry, to size reads
		// so that one read roughly fills the available permits.
		avgMsgs float64
		// below: a durable readCompacted subscription's progress through
		// the view's entries in released raw ledgers (compaction.go).
		below viewBelow
	}
}

// NewDispatcher starts a dispatcher; Close stops it.
func NewDispatcher(opts DispatchOptions) *Dispatcher {
	if opts.MaxReadBytes <= 0 {
		opts.MaxReadBytes = 4 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Inspect == nil {
		opts.Inspect = func(*Entry) ([]byte, bool) { return nil, true }
	}
	d := &Dispatcher{opts: opts, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	d.mu.pending = make(map[Position]pendingEntry)
	d.mu.replay = make(map[Position]struct{})
	d.mu.keyHash = make(map[Position]int)
	d.mu.delayed = make(map[Position]int64)
	go d.run()
	return d
}

// Type is the dispatcher's subscription type.
func (d *Dispatcher) Type() SubscriptionType { return d.opts.Type }

// Cursor is the dispatcher's cursor.
func (d *Dispatcher) Cursor() *Cursor { return d.opts.Cursor }

func (d *Dispatcher) kick() {
	d.mu.Lock()
	d.mu.replayStuck = false
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

type activeNote struct {
	c      *DispatchConsumer
	active bool
}

func notify(notes []activeNote) {
	for _, n := range notes {
		n.c.Sink.ActiveChanged(n.active)
	}
}

// AddConsumer registers c. Exclusive subscriptions refuse a second consumer
// with ErrInUse.
func (d *Dispatcher) AddConsumer(c *DispatchConsumer) error {
	d.mu.Lock()
	if d.mu.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	if d.opts.Type == SubExclusive && len(d.mu.consumers) > 0 {
		d.mu.Unlock()
		return fmt.Errorf("%w: exclusive subscription already has a consumer", ErrInUse)
	}
	d.mu.joins++
	c.joined = d.mu.joins
	c.permits = 0
	c.disp.Store(d)
	d.mu.consumers = append(d.mu.consumers, c)
	if d.opts.Type == SubKeyShared {
		d.mu.keyRanges = addKeyRange(d.mu.keyRanges, c)
	}
	notes := d.electLocked()
	d.mu.Unlock()
	notify(notes)
	d.kick()
	return nil
}

// RemoveConsumer unregisters c; its unacknowledged entries are replayed to
// the others. It reports how many consumers remain.
func (d *Dispatcher) RemoveConsumer(c *DispatchConsumer) int {
	d.mu.Lock()
	i := slices.Index(d.mu.consumers, c)
	if i < 0 {
		n := len(d.mu.consumers)
		d.mu.Unlock()
		return n
	}
	d.mu.consumers = slices.Delete(d.mu.consumers, i, i+1)
	d.mu.keyRanges = removeKeyRange(d.mu.keyRanges, c)
	var lost []Position
	for pos, owner := range d.mu.pending {
		if owner.c == c {
			delete(d.mu.pending, pos)
			d.mu.replay[pos] = struct{}{}
			lost = append(lost, pos)
		}
	}
	// Counted on the cursor before anyone can be handed the entry again
	// (the next dispatch round needs d.mu).
	d.opts.Cursor.Redelivered(lost...)
	notes := d.electLocked()
	n := len(d.mu.consumers)
	d.mu.Unlock()
	notify(notes)
	d.kick()
	return n
}

// electLocked picks the active consumer for Exclusive/Failover and returns
// the notifications to send (outside the lock). Changing the active
// consumer replays what the previous one had not acknowledged.
func (d *Dispatcher) electLocked() []activeNote {
	if d.opts.Type != SubFailover && d.opts.Type != SubExclusive {
		return nil
	}
	var want *DispatchConsumer
	if n := len(d.mu.consumers); n > 0 {
		sorted := slices.Clone(d.mu.consumers)
		sort.SliceStable(sorted, func(i, j int) bool {
			if sorted[i].Priority != sorted[j].Priority {
				return sorted[i].Priority < sorted[j].Priority
			}
			return sorted[i].Name < sorted[j].Name
		})
		k := 0
		if d.opts.PartitionIndex >= 0 {
			k = d.opts.PartitionIndex % n
		}
		want = sorted[k]
	}
	var notes []activeNote
	changed := false
	for _, c := range d.mu.consumers {
		active := c == want
		if active != c.active {
			changed = true
		}
		c.active = active
	}
	if changed {
		for pos, owner := range d.mu.pending {
			if owner.c != want {
				delete(d.mu.pending, pos)
				d.mu.replay[pos] = struct{}{}
			}
		}
	}
	if d.opts.Type == SubFailover {
		// Every consumer learns its state on each change (also new joiners).
		for _, c := range d.mu.consumers {
			notes = append(notes, activeNote{c, c.active})
		}
	}
	return notes
}

// Flow grants c n more permits (messages).
func (d *Dispatcher) Flow(c *DispatchConsumer, n int64) {
	d.mu.Lock()
	c.permits += n
	d.mu.Unlock()
	d.kick()
}

// Ack acknowledges whole entries individually.
func (d *Dispatcher) Ack(ctx context.Context, positions ...Position) error {
	d.mu.Lock()
	for _, p := range positions {
		delete(d.mu.pending, p)
		delete(d.mu.replay, p)
		delete(d.mu.keyHash, p)
		delete(d.mu.delayed, p)
	}
	d.mu.Unlock()
	d.kick()
	if err := d.opts.Cursor.Delete(ctx, positions...); err != nil {
		return err
	}
	return d.ackRemoved(ctx, positions...)
}

// ackRemoved acknowledges, for a durable readCompacted subscription, the
// raw entries compaction removed around each acknowledged entry (it is
// never sent them), so that they neither stay in its backlog nor hold the
// raw ledgers back from release.
func (d *Dispatcher) ackRemoved(ctx context.Context, positions ...Position) error {
	if !d.opts.ReadCompacted || !d.opts.Cursor.Durable() {
		return nil
	}
	for _, p := range positions {
		if err := d.opts.Partition.ackRemovedAround(ctx, d.opts.Cursor, p); err != nil {
			return err
		}
	}
	return nil
}

// AckBatchIndex records a batch-index ack set for pos (bit set = still unacked).
func (d *Dispatcher) AckBatchIndex(ctx context.Context, pos Position, ackSet []uint64) error {
	if err := d.opts.Cursor.AckBatch(ctx, pos, ackSet); err != nil {
		return err
	}
	if d.opts.Cursor.IsAcked(pos) {
		d.mu.Lock()
		delete(d.mu.pending, pos)
		delete(d.mu.replay, pos)
		delete(d.mu.keyHash, pos)
		d.mu.Unlock()
		d.kick()
		return d.ackRemoved(ctx, pos)
	}
	return nil
}

// AckCumulative acknowledges everything up to and including pos.
func (d *Dispatcher) AckCumulative(ctx context.Context, pos Position) error {
	d.mu.Lock()
	for p := range d.mu.pending {
		if !pos.Less(p) {
			delete(d.mu.pending, p)
		}
	}
	for p := range d.mu.replay {
		if !pos.Less(p) {
			delete(d.mu.replay, p)
		}
	}
	for p := range d.mu.keyHash {
		if !pos.Less(p) {
			delete(d.mu.keyHash, p)
		}
	}
	for p := range d.mu.delayed {
		if !pos.Less(p) {
			delete(d.mu.delayed, p)
		}
	}
	d.mu.Unlock()
	d.kick()
	return d.opts.Cursor.MarkDelete(ctx, pos)
}

// Redeliver replays the given entries held by c (negative ack); with no
// positions, everything c holds unacknowledged.
func (d *Dispatcher) Redeliver(c *DispatchConsumer, positions []Position) {
	d.mu.Lock()
	if len(positions) == 0 {
		for pos, owner := range d.mu.pending {
			if owner.c == c {
				positions = append(positions, pos)
			}
		}
	}
	var back []Position
	for _, pos := range positions {
		if owner, ok := d.mu.pending[pos]; ok && (owner.c == c || c == nil) {
			delete(d.mu.pending, pos)
			d.mu.replay[pos] = struct{}{}
			back = append(back, pos)
		}
	}
	d.opts.Cursor.Redelivered(back...)
	d.mu.Unlock()
	d.kick()
}

// Return puts back entries c holds but never handed to its client (a share
// consumer's read-ahead): they are replayed to any consumer without counting
// a redelivery.
func (d *Dispatcher) Return(c *DispatchConsumer, positions []Position) {
	d.mu.Lock()
	for _, pos := range positions {
		if owner, ok := d.mu.pending[pos]; ok && owner.c == c {
			delete(d.mu.pending, pos)
			d.mu.replay[pos] = struct{}{}
		}
	}
	d.mu.Unlock()
	d.kick()
}

// Unflow withdraws c's remaining permits (a consumer that stopped asking).
func (d *Dispatcher) Unflow(c *DispatchConsumer) {
	d.mu.Lock()
	c.permits = min(c.permits, 0)
	d.mu.Unlock()
}

// Reset moves the cursor (seek): mark-delete just before pos, every
// acknowledgement after it dropped; pending and replay state is cleared.
// Protocols then disconnect the consumers so that they restart cleanly.
func (d *Dispatcher) Reset(ctx context.Context, pos Position) error {
	d.mu.Lock()
	d.mu.epoch++
	d.mu.below = viewBelow{}
	clear(d.mu.pending)
	clear(d.mu.replay)
	clear(d.mu.keyHash)
	clear(d.mu.delayed)
	for _, c := range d.mu.consumers {
		c.permits = 0
	}
	err := d.opts.Cursor.ResetTo(ctx, pos)
	if err == nil && d.opts.ReadCompacted && d.opts.Cursor.Durable() {
		// Reset into the released ledgers (or to the earliest message):
		// from the view's first entry there at or after pos.
		d.opts.Cursor.RewindReleased(pos)
	}
	d.mu.Unlock()
	d.kick()
	return err
}

// Consumers returns the registered consumers.
func (d *Dispatcher) Consumers() []*DispatchConsumer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.mu.consumers)
}

// Close stops the dispatcher goroutine and waits for it.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	if d.mu.closed {
		d.mu.Unlock()
		<-d.done
		return
	}
	d.mu.closed = true
	d.mu.Unlock()
	close(d.stop)
	<-d.done
}

// readRetryDelay is how soon a dispatcher retries a failed read.
const readRetryDelay = 500 * time.Millisecond

func (d *Dispatcher) run() {
	defer close(d.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-d.stop:
			cancel()
		case <-d.done:
		}
	}()
	for {
		changed := d.opts.Partition.Changed()
		txnChanged := d.opts.Partition.TxnChanged()
		progressed, err := d.dispatchOnce(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, ErrClosed) {
				d.partitionClosed()
				return
			}
			d.opts.Logger.Warn("dispatch read failed", "topic", d.opts.Partition.Name().String(), "err", err)
		}
		if progressed {
			continue
		}
		var due <-chan time.Time
		var timer *time.Timer
		if next := d.nextDelayed(); next > 0 {
			timer = time.NewTimer(time.Until(time.UnixMilli(next)))
			due = timer.C
		}
		if err != nil && timer == nil {
			// A failed read (tiered storage down, a storage failure) is
			// retried on a timer: nothing else may wake the dispatcher
			// (no new entries, no new permits), and the consumer must get
			// the entries once the storage is back.
			timer = time.NewTimer(readRetryDelay)
			due = timer.C
		}
		select {
		case <-d.stop:
			return
		case <-due:
		case <-d.wake:
		case <-txnChanged:
		case <-changed:
			select {
			case <-d.stop:
				return
			default:
			}
			// Changed is also closed when the ledger closes: without
			// permits nothing would read and notice, so probe.
			if _, err := d.opts.Partition.ReadEntries(ctx, Latest, 1, 1); errors.Is(err, ErrClosed) {
				d.partitionClosed()
				return
			}
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// nextDelayed returns the earliest delivery time of a delayed entry (0: none).
func (d *Dispatcher) nextDelayed() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var next int64
	for _, at := range d.mu.delayed {
		if next == 0 || at < next {
			next = at
		}
	}
	return next
}

// PartitionClosedSink is optionally implemented by a ConsumerSink: it is
// told (from its own goroutine) that the partition closed under the
// dispatcher (topic deleted, unloaded, broker closing) and delivery
// stopped; the protocol disconnects the consumer so that it re-attaches.
// Whichever handler created a shared dispatcher, every consumer learns it.
type PartitionClosedSink interface {
	PartitionClosed()
}

func (d *Dispatcher) partitionClosed() {
	if d.opts.OnPartitionClosed != nil {
		go d.opts.OnPartitionClosed()
	}
	for _, c := range d.Consumers() {
		if pc, ok := c.Sink.(PartitionClosedSink); ok {
			go pc.PartitionClosed()
		}
	}
}

type assignment struct {
	c *DispatchConsumer
	d Delivery
}

// dispatchOnce reads and delivers one round. It reports whether it made
// progress (read or replayed something), so the caller loops without waiting.
func (d *Dispatcher) dispatchOnce(ctx context.Context) (bool, error) {
	d.mu.Lock()
	if len(d.mu.delayed) > 0 {
		now := time.Now().UnixMilli()
		for pos, at := range d.mu.delayed {
			if at <= now {
				delete(d.mu.delayed, pos)
				d.mu.replay[pos] = struct{}{}
				d.mu.replayStuck = false
			}
		}
	}
	var permits int64
	for _, c := range d.mu.consumers {
		if c.permits > 0 && (c.active || (d.opts.Type != SubExclusive && d.opts.Type != SubFailover)) {
			permits += c.permits
		}
	}
	if permits <= 0 || d.mu.closed {
		d.mu.Unlock()
		return false, nil
	}
	epoch := d.mu.epoch
	avg := max(d.mu.avgMsgs, 1)
	var replay []Position
	var blocked map[int]bool // Key_Shared hashes waiting in replay
	if !d.mu.replayStuck {
		for p := range d.mu.replay {
			replay = append(replay, p)
		}
	} else {
		blocked = make(map[int]bool)
		for p := range d.mu.replay {
			if h, ok := d.mu.keyHash[p]; ok {
				blocked[h] = true
			}
		}
	}
	d.mu.Unlock()

	var entries []Entry
	fromReplay := len(replay) > 0
	if fromReplay {
		sort.Slice(replay, func(i, j int) bool { return replay[i].Less(replay[j]) })
		if len(replay) > 100 {
			replay = replay[:100]
		}
		var firstRaw Position
		if d.opts.ReadCompacted {
			firstRaw = d.opts.Partition.horizon(d.opts.Partition.FirstIndex())
		}
		for _, pos := range replay {
			// A view entry in a released raw ledger is acknowledged on
			// the cursor like any other (managedledger.Released).
			released := d.opts.ReadCompacted && pos.Less(firstRaw)
			if d.opts.Cursor.IsAcked(pos) {
				continue
			}
			if d.opts.ReadCompacted {
				// Below the view's horizon the view's entry is what the
				// subscription was sent.
				e, ok, err := d.opts.Partition.CompactedEntryAt(ctx, pos)
				if err != nil {
					return false, err
				}
				if ok {
					entries = append(entries, e)
					continue
				}
				if released {
					continue
				}
			}
			es, err := d.opts.Partition.ReadEntries(ctx, pos, 1, d.opts.MaxReadBytes)
			if err != nil {
				return false, err
			}
			if len(es) == 1 && es[0].Position == pos {
				entries = append(entries, es[0])
			}
		}
		d.mu.Lock()
		for _, pos := range replay {
			delete(d.mu.replay, pos)
		}
		d.mu.Unlock()
	} else {
		n := int(min(max(float64(permits)/avg, 1), 100))
		read := d.opts.Cursor.ReadEntries
		if d.opts.ReadCompacted {
			read = func(ctx context.Context, n, maxBytes int) ([]Entry, error) {
				d.mu.Lock()
				below := d.mu.below
				d.mu.Unlock()
				es, err := d.opts.Partition.readCompactedCursor(ctx, d.opts.Cursor, &below, n, maxBytes)
				d.mu.Lock()
				if d.mu.epoch == epoch {
					d.mu.below = below
				}
				d.mu.Unlock()
				return es, err
			}
		}
		es, err := read(ctx, n, d.opts.MaxReadBytes)
		if err != nil {
			return false, err
		}
		entries = es
		if len(entries) == 0 {
			// ReadEntries returns nothing both when caught up and when every
			// entry read was already acknowledged; tell them apart.
			return d.opts.Cursor.ReadPosition().Compare(d.nextAfterLast()) < 0, nil
		}
	}

	d.mu.Lock()
	if d.mu.epoch != epoch || d.mu.closed {
		d.mu.Unlock()
		return true, nil
	}
	var out []assignment
	delay := d.opts.Type == SubShared || d.opts.Type == SubKeyShared
	now := time.Now().UnixMilli()
	var skipped []Position // transaction markers and aborted records
	held := false
	for i := range entries {
		e := entries[i]
		// Transactions (txnlog.go): markers and aborted records are never
		// delivered and acknowledged at once; an entry at or after the
		// last stable offset waits in replay until its transaction ends
		// (Pulsar's max-read-position), and so does everything after it.
		switch d.opts.Partition.TxnState(&e) {
		case TxnMarkerEntry, TxnAbortedEntry:
			skipped = append(skipped, e.Position)
			continue
		case TxnUnstable:
			d.mu.replay[e.Position] = struct{}{}
			held = true
			continue
		}
		key, ok := d.opts.Inspect(&e)
		if !ok {
			// Undeliverable (a corrupt entry the handler cannot convert;
			// the handler logs it): it stays unacknowledged, in the backlog.
			continue
		}
		if delay && d.opts.DeliverAt != nil {
			if at := d.opts.DeliverAt(&e); at > now {
				d.mu.delayed[e.Position] = at
				continue
			}
		}
		h := -1
		if d.opts.Type == SubKeyShared {
			h = keySlot(key)
			d.mu.keyHash[e.Position] = h
		}
		var c *DispatchConsumer
		if !blocked[h] {
			c = d.pickLocked(h)
		}
		if c == nil {
			d.mu.replay[e.Position] = struct{}{}
			continue
		}
		c.permits -= int64(max(e.MsgCount, 1))
		d.mu.avgMsgs = 0.9*d.mu.avgMsgs + 0.1*float64(max(e.MsgCount, 1))
		d.mu.pending[e.Position] = pendingEntry{c: c, msgs: max(e.MsgCount, 1)}
		out = append(out, assignment{c: c, d: Delivery{Entry: e, RedeliveryCount: d.opts.Cursor.RedeliveryCount(e.Position)}})
	}
	// Held at the LSO with nothing to deliver: nothing to do until a
	// marker moves it (TxnChanged wakes the loop).
	waitForTxn := held && len(out) == 0
	if waitForTxn {
		d.mu.replayStuck = false
	}
	d.mu.Unlock()
	if len(skipped) > 0 {
		if err := d.opts.Cursor.Delete(ctx, skipped...); err != nil {
			return false, err
		}
	}
	if waitForTxn {
		return false, nil
	}
	if len(skipped) > 0 && len(out) == 0 {
		return true, nil
	}
	if len(out) == 0 && fromReplay {
		// Everything went back to replay: the consumers it belongs to have
		// no permits. Wait for a FLOW or an ack instead of spinning; under
		// Key_Shared, other keys may proceed: read new entries meanwhile.
		if d.opts.Type != SubKeyShared {
			return false, nil
		}
		d.mu.Lock()
		d.mu.replayStuck = d.mu.epoch == epoch
		d.mu.Unlock()
		return true, nil
	}

	for _, a := range out {
		a.d.AckSet = d.opts.Cursor.BatchAckSet(a.d.Entry.Position)
		if len(a.d.AckSet) == 0 {
			a.d.AckSet = nil
		}
		if err := a.c.Sink.Deliver(ctx, a.d); err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			continue
		}
		d.delivered(a.c, &a.d.Entry)
	}
	return true, nil
}

// delivered counts an entry handed to c: for c, its subscription (none for
// a reader) and its partition.
func (d *Dispatcher) delivered(c *DispatchConsumer, e *Entry) {
	msgs, bytes := int64(max(e.MsgCount, 1)), int64(len(e.Data))
	c.msgOut.Add(msgs)
	c.bytesOut.Add(bytes)
	if d.opts.Subscription != nil {
		d.opts.Subscription.AddDelivered(msgs, bytes)
	}
	d.opts.Partition.AddOut(msgs, bytes)
}

func (d *Dispatcher) nextAfterLast() Position {
	lc := d.opts.Partition.LastConfirmed()
	return Position{LedgerID: lc.LedgerID, EntryID: lc.EntryID + 1}
}

// pickLocked chooses the consumer for an entry with the given key hash
// (Key_Shared; -1 otherwise), or nil when the right consumer has no permits.
func (d *Dispatcher) pickLocked(h int) *DispatchConsumer {
	cs := d.mu.consumers
	if len(cs) == 0 {
		return nil
	}
	switch d.opts.Type {
	case SubExclusive, SubFailover:
		for _, c := range cs {
			if c.active && c.permits > 0 {
				return c
			}
		}
		return nil
	case SubKeyShared:
		// Auto-split hash ranges (keyshared.go).
		c := keyOwner(d.mu.keyRanges, h)
		if c != nil && c.permits > 0 && writable(c) {
			return c
		}
		return nil
	default: // Shared: round robin over writable consumers with permits
		for range cs {
			d.mu.rr = (d.mu.rr + 1) % len(cs)
			if c := cs[d.mu.rr]; c.permits > 0 && writable(c) {
				return c
			}
		}
		return nil
	}
}

func writable(c *DispatchConsumer) bool {
	w, ok := c.Sink.(WritableSink)
	return !ok || w.Writable()
}

// attach adds c to the subscription's dispatcher, creating it with opts if
// the subscription has none live (opts.Cursor and opts.Subscription are set
// here). A consumer asking for another type than the live one gets
// ErrInUse. Both protocol handlers attach through AddConsumer, so a Pulsar Shared
// consumer and a Kafka share member of the same name share one dispatcher.
func (s *Subscription) attach(opts DispatchOptions, c *DispatchConsumer) (*Dispatcher, error) {
	s.dispMu.Lock()
	defer s.dispMu.Unlock()
	d := s.disp
	if d == nil {
		opts.Cursor, opts.Subscription = s.Cursor(), s
		// Whatever an earlier dispatcher delivered without acknowledgement
		// is due again: start from the mark-delete position (individually
		// acknowledged entries are skipped by the cursor).
		// Redelivery counts are the cursor's (persisted with it), so they
		// carry over from earlier dispatchers and broker restarts.
		if opts.ReadCompacted {
			// The view's entries in released raw ledgers are sent to it
			// and acknowledged one by one (compaction.go).
			opts.Cursor.RewindReleased(Earliest)
		}
		opts.Cursor.Rewind()
		d = NewDispatcher(opts)
		s.disp = d
	} else if d.opts.Type != opts.Type {
		return nil, fmt.Errorf("%w: subscription %s is %s, not %s", ErrInUse, s.Name(), d.opts.Type, opts.Type)
	}
	if err := d.AddConsumer(c); err != nil {
		if len(d.Consumers()) == 0 {
			s.disp = nil
			d.Close()
		}
		return nil, err
	}
	return d, nil
}

// detach removes c from d; the dispatcher stops when its last consumer leaves.
func (s *Subscription) detach(d *Dispatcher, c *DispatchConsumer) {
	s.dispMu.Lock()
	defer s.dispMu.Unlock()
	if d.RemoveConsumer(c) == 0 && s.disp == d {
		s.disp = nil
		d.Close()
	}
}

// Dispatcher returns the subscription's live dispatcher, if any.
func (s *Subscription) Dispatcher() *Dispatcher {
	s.dispMu.Lock()
	defer s.dispMu.Unlock()
	return s.disp
}
