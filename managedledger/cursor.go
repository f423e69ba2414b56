package managedledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"slices"
	"sort"
	"sync"

	"github.com/kopernik-io/kopernik/managedledger/offload"
	"github.com/kopernik-io/kopernik/metadata"
)

// Cursor is a subscription's position in a managed ledger. Durable cursors
// are named and persisted (batched: see Flush); non-durable ones (readers)
// live in memory only. Safe for concurrent use.
//
// Acknowledgement state: MarkDeletePosition (everything at or before it is
// acknowledged), individually acknowledged entries after it, and batch-index
// ack sets for partly acknowledged entries (bit i set = message i of the
// batch still unacknowledged, Pulsar's convention), and the redelivery
// counts of unacknowledged entries (how often an entry was delivered and
// given back: negative acks, lost consumers, expired share locks). The
// counts are part of the acknowledgement state, persisted with it, so a
// delivery count limit (Kafka share groups, Pulsar max redeliveries) holds
// across restarts; an entry's count goes when the entry is acknowledged.
//
// Persistence: changes mark the cursor dirty; the factory writes dirty
// cursors every CursorFlushInterval (one metadata Put each), Flush and
// Close write at once. After a crash a cursor is restored as of its last
// write, so acknowledgements of the last interval may be redelivered
// (at-least-once), never lost data.
//
// INVARIANT: markDelete < every position in acked, batchAcks and redeliveries.
// INVARIANT: no position is in both acked and redeliveries.
// INVARIANT: the entry after markDelete is not in acked (compaction).
//
// Released entries (Released, release.go) count as entries for a cursor
// whose mark-delete position lies before them: it may stand in released
// ledgers, their acknowledgements are kept in acked, and it advances over
// them in order before entering the retained log.
type Cursor struct {
	ml      *ManagedLedger
	name    string
	durable bool
	path    string

	// flushMu serialises persistence so an older snapshot never overwrites
	// a newer one; it guards version and forgotten.
	flushMu   sync.Mutex
	version   int64 // metadata version of the last write; 0: never written
	forgotten bool  // deleted: never write again

	mu struct {
		sync.Mutex
		markDelete Position
		read       Position // next entry to read
		acked      map[Position]struct{}
		batchAcks  map[Position][]uint64
		// redeliveries counts how often each unacknowledged entry was
		// given back for redelivery (see Redelivered).
		redeliveries map[Position]uint32
		props        map[string]string
		dirty        bool
	}
}

// cursorRecord is the JSON persisted for a durable cursor.
type cursorRecord struct {
	Name       string           `json:"name"`
	MarkDelete Position         `json:"markDelete"`
	Acked      [][3]int64       `json:"acked,omitempty"` // [ledger, first entry, last entry]
	BatchAcks  []batchAckRecord `json:"batchAcks,omitempty"`
	// Redeliveries are [ledger, entry, count]: redelivery counts of
	// unacknowledged entries (added in a later version; older records
	// have none, which reads as all zero).
	Redeliveries [][3]int64        `json:"redeliveries,omitempty"`
	Props        map[string]string `json:"props,omitempty"`
}

type batchAckRecord struct {
	Position Position `json:"pos"`
	AckSet   []uint64 `json:"ackSet"`
}

// OpenCursor returns the durable cursor called name, creating it at start if
// it does not exist. A new cursor is persisted before OpenCursor returns, so
// it holds retention across restarts. Any non-empty name is allowed.
func (ml *ManagedLedger) OpenCursor(ctx context.Context, name string, start InitialPosition) (*Cursor, error) {
	if name == "" {
		return nil, fmt.Errorf("managedledger: empty cursor name")
	}
	ml.mu.Lock()
	if ml.mu.closed {
		ml.mu.Unlock()
		return nil, ErrClosed
	}
	if c, ok := ml.mu.cursors[name]; ok {
		ml.mu.Unlock()
		return c, nil
	}
	var md Position
	if start == InitialEarliest {
		md = ml.prevPositionLocked(ml.mu.firstPos)
	} else {
		md = ml.prevPositionLocked(ml.nextWritePosLocked())
	}
	c := ml.newCursorLocked(name, true, md)
	ml.mu.cursors[name] = c
	ml.mu.Unlock()
	if err := c.Flush(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// NewReader returns a non-durable cursor whose first read returns the first
// entry after markDelete (use Earliest / LastConfirmed()).
func (ml *ManagedLedger) NewReader(markDelete Position) *Cursor {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.newCursorLocked("", false, markDelete)
}

func (ml *ManagedLedger) newCursorLocked(name string, durable bool, md Position) *Cursor {
	c := &Cursor{ml: ml, name: name, durable: durable}
	if durable {
		c.path = cursorsPath(ml.name) + "/" + escapeCursorName(name)
	}
	c.mu.markDelete = md
	c.mu.read = ml.nextPositionLocked(md)
	c.mu.acked = make(map[Position]struct{})
	c.mu.batchAcks = make(map[Position][]uint64)
	c.mu.redeliveries = make(map[Position]uint32)
	c.mu.props = make(map[string]string)
	c.mu.dirty = durable
	return c
}

// loadCursors restores the durable cursors persisted for this ledger.
func (ml *ManagedLedger) loadCursors(ctx context.Context) error {
	keys, err := ml.store.Children(ctx, cursorsPath(ml.name))
	if err != nil {
		if errors.Is(err, metadata.ErrNotFound) {
			return nil
		}
		return err
	}
	ml.mu.Lock()
	defer ml.mu.Unlock()
	for _, key := range keys {
		name, err := unescapeCursorName(key)
		if err != nil {
			ml.log.Warn("managedledger: skipping cursor record", "key", key, "err", err)
			continue
		}
		rec, err := ml.store.Get(ctx, cursorsPath(ml.name)+"/"+key)
		if errors.Is(err, metadata.ErrNotFound) {
			continue // only children below it (not ours)
		}
		if err != nil {
			return err
		}
		var st cursorRecord
		if err := json.Unmarshal(rec.Value, &st); err != nil {
			return fmt.Errorf("%w: cursor %q: %v", ErrCorrupt, name, err)
		}
		c := ml.newCursorLocked(name, true, st.MarkDelete)
		for _, r := range st.Acked {
			for e := r[1]; e <= r[2]; e++ {
				c.mu.acked[Position{LedgerID: r[0], EntryID: e}] = struct{}{}
			}
		}
		for _, b := range st.BatchAcks {
			c.mu.batchAcks[b.Position] = b.AckSet
		}
		for _, r := range st.Redeliveries {
			p := Position{LedgerID: r[0], EntryID: r[1]}
			if _, ok := c.mu.acked[p]; !ok && r[2] > 0 && c.mu.markDelete.Less(p) {
				c.mu.redeliveries[p] = uint32(min(r[2], int64(^uint32(0))))
			}
		}
		if st.Props != nil {
			c.mu.props = st.Props
		}
		c.version = rec.Version
		c.mu.dirty = false
		if !ml.mu.cfg.ReleasedEntries || len(ml.mu.ledgers) == 0 || c.mu.markDelete.LedgerID >= ml.mu.ledgers[0].id {
			// Not among released entries (Released, known only later):
			// for those the first acknowledgement compacts the state.
			c.compactLocked(true)
		}
		c.mu.dirty = false
		ml.mu.cursors[name] = c
	}
	return nil
}

// Cursor returns the durable cursor called name.
func (ml *ManagedLedger) Cursor(name string) (*Cursor, bool) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	c, ok := ml.mu.cursors[name]
	return c, ok
}

// Cursors returns the durable cursors sorted by name.
func (ml *ManagedLedger) Cursors() []*Cursor {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	out := make([]*Cursor, 0, len(ml.mu.cursors))
	for _, c := range ml.mu.cursors {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// DeleteCursor removes a durable cursor and its persisted state.
func (ml *ManagedLedger) DeleteCursor(ctx context.Context, name string) error {
	ml.mu.Lock()
	c, ok := ml.mu.cursors[name]
	delete(ml.mu.cursors, name)
	ml.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoCursor, name)
	}
	c.forget()
	err := ml.store.Delete(ctx, c.path, metadata.AnyVersion)
	if err != nil && !errors.Is(err, metadata.ErrNotFound) {
		return err
	}
	return nil
}

// flushCursors persists every dirty durable cursor.
func (ml *ManagedLedger) flushCursors(ctx context.Context) error {
	var errs []error
	for _, c := range ml.Cursors() {
		if err := c.flush(ctx); err != nil {
			ml.log.Warn("managedledger: persisting cursor", "group", c.name, "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// forget stops all future persistence of c.
func (c *Cursor) forget() {
	c.flushMu.Lock()
	c.forgotten = true
	c.flushMu.Unlock()
}

// Name is the cursor's name ("" for readers).
func (c *Cursor) Name() string { return c.name }

// Durable reports whether the cursor is persisted.
func (c *Cursor) Durable() bool { return c.durable }

// MarkDeletePosition returns the position up to which everything is acknowledged.
func (c *Cursor) MarkDeletePosition() Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.markDelete
}

// ReadPosition returns the position of the next entry ReadEntries returns.
func (c *Cursor) ReadPosition() Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.read
}

// Seek moves the read position to pos without changing acknowledgements.
func (c *Cursor) Seek(pos Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.read = pos
}

// Rewind moves the read position back to the first entry after mark-delete.
func (c *Cursor) Rewind() {
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.read = c.ml.nextPositionLocked(c.mu.markDelete)
}

// ReadEntries reads from the read position, skipping entries already
// acknowledged individually, and advances the read position past what it returns.
func (c *Cursor) ReadEntries(ctx context.Context, maxEntries, maxBytes int) ([]Entry, error) {
	c.mu.Lock()
	from := c.mu.read
	c.mu.Unlock()
	entries, err := c.ml.ReadEntries(ctx, from, maxEntries, maxBytes)
	if err != nil || len(entries) == 0 {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.read != from { // moved concurrently (seek); the caller reads again
		return nil, nil
	}
	last := entries[len(entries)-1].Position
	c.mu.read = Position{LedgerID: last.LedgerID, EntryID: last.EntryID + 1}
	out := entries[:0]
	for _, e := range entries {
		if _, ok := c.mu.acked[e.Position]; ok || !c.mu.markDelete.Less(e.Position) {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// MarkDelete acknowledges everything up to and including pos (cumulative
// ack). It never moves the mark-delete position backwards.
func (c *Cursor) MarkDelete(ctx context.Context, pos Position) error {
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.mu.markDelete.Less(pos) {
		return nil
	}
	c.mu.markDelete = pos
	c.compactLocked(true)
	return nil
}

// Delete acknowledges the given entries individually; the mark-delete
// position advances over any contiguous acknowledged prefix.
func (c *Cursor) Delete(ctx context.Context, positions ...Position) error {
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range positions {
		if c.mu.markDelete.Less(p) {
			c.mu.acked[p] = struct{}{}
			delete(c.mu.batchAcks, p)
			delete(c.mu.redeliveries, p)
		}
	}
	c.compactLocked(false)
	return nil
}

// AckBetween acknowledges every entry strictly between after and before
// (for a readCompacted subscription: raw entries compaction removed, which
// it is never sent). When after is at or before the mark-delete position
// the mark-delete position moves to the entry before `before`, whatever
// the number of entries; otherwise each entry is acknowledged on its own,
// at a cost (under the ledger's lock) and a memory proportional to their
// number until the hole before them is acknowledged.
func (c *Cursor) AckBetween(ctx context.Context, after, before Position) error {
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	ml := c.ml
	first := c.nextLocked(after)
	if !c.nextLocked(c.mu.markDelete).Less(first) {
		// Nothing unacknowledged before the range: one step.
		if end := c.prevLocked(before); c.mu.markDelete.Less(end) {
			c.mu.markDelete = end
			c.compactLocked(true)
		}
		return nil
	}
	w := ml.nextWritePosLocked()
	for p := first; p.Less(before) && p.Less(w); {
		c.mu.acked[p] = struct{}{}
		delete(c.mu.batchAcks, p)
		delete(c.mu.redeliveries, p)
		q := c.nextLocked(p)
		if !p.Less(q) {
			break // the released entries cannot be told (Released.After)
		}
		p = q
	}
	c.compactLocked(false)
	return nil
}

// AckBatch records batch-index acknowledgements for the entry at pos: ackSet
// has bit i set for each message i still unacknowledged. The ack set is
// intersected with any earlier one; when no bit remains the entry counts as
// acknowledged.
func (c *Cursor) AckBatch(ctx context.Context, pos Position, ackSet []uint64) error {
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.mu.markDelete.Less(pos) {
		return nil
	}
	if _, ok := c.mu.acked[pos]; ok {
		return nil
	}
	merged := append([]uint64(nil), ackSet...)
	if prev, ok := c.mu.batchAcks[pos]; ok {
		for i := range merged {
			if i < len(prev) {
				merged[i] &= prev[i]
			}
		}
	}
	remaining := 0
	for _, w := range merged {
		remaining += bits.OnesCount64(w)
	}
	if remaining == 0 {
		delete(c.mu.batchAcks, pos)
		delete(c.mu.redeliveries, pos)
		c.mu.acked[pos] = struct{}{}
		c.compactLocked(false)
	} else {
		c.mu.batchAcks[pos] = merged
		c.mu.dirty = true
	}
	return nil
}

// BatchAckSet returns the ack set recorded for pos (nil if none).
func (c *Cursor) BatchAckSet(pos Position) []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]uint64(nil), c.mu.batchAcks[pos]...)
}

// IsAcked reports whether the whole entry at pos is acknowledged.
func (c *Cursor) IsAcked(pos Position) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.mu.markDelete.Less(pos) {
		return true
	}
	_, ok := c.mu.acked[pos]
	return ok
}

// ResetTo sets the mark-delete position to just before pos (the first
// retained entry at or after pos), drops every acknowledgement after it,
// and moves the read position there (seek, reset-cursor).
func (c *Cursor) ResetTo(ctx context.Context, pos Position) error {
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	ml := c.ml
	target, ok := ml.entryAtOrAfterLocked(pos)
	if !ok {
		target = ml.nextWritePosLocked()
	}
	c.mu.markDelete = ml.prevPositionLocked(target)
	clear(c.mu.acked)
	clear(c.mu.batchAcks)
	clear(c.mu.redeliveries)
	c.mu.read = ml.nextPositionLocked(c.mu.markDelete)
	c.mu.dirty = true
	return nil
}

// SetNextIndex positions the cursor so that message index next is the first
// unacknowledged message (a Kafka offset commit): entries wholly before next
// are acknowledged, a batch holding next gets a batch-index ack set. Moving
// forward (or staying) keeps individual acks beyond; moving backward drops
// them.
func (c *Cursor) SetNextIndex(ctx context.Context, next int64) error {
	return c.ml.withFetch(ctx, func() error {
		c.ml.mu.Lock()
		defer c.ml.mu.Unlock()
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.setNextIndexLocked(next)
	})
}

// setNextIndexLocked expects ml.mu and c.mu held.
func (c *Cursor) setNextIndexLocked(next int64) error {
	ml := c.ml
	if next < ml.mu.first || next > ml.mu.visNext {
		return fmt.Errorf("%w: %d not in [%d, %d]", ErrIndexOutOfRange, next, ml.mu.first, ml.mu.visNext)
	}
	target := ml.nextWritePosLocked()
	var partial *Position
	var partialSet []uint64
	if next < ml.mu.visNext {
		h, pos, err := ml.headerAtIndexLocked(next)
		if err != nil {
			return err
		}
		target = pos
		if h.FirstIndex < next {
			partialSet = make([]uint64, (h.MsgCount+63)/64)
			for k := next - h.FirstIndex; k < int64(h.MsgCount); k++ {
				partialSet[k/64] |= 1 << (k % 64)
			}
			partial = &pos
		}
	}
	md := ml.prevPositionLocked(target)
	forward := !md.Less(c.mu.markDelete)
	c.mu.markDelete = md
	if !forward {
		clear(c.mu.acked)
		clear(c.mu.batchAcks)
		clear(c.mu.redeliveries)
	}
	delete(c.mu.batchAcks, target)
	delete(c.mu.acked, target)
	if partial != nil {
		c.mu.batchAcks[*partial] = partialSet
	}
	if first := ml.nextPositionLocked(md); !forward || c.mu.read.Less(first) {
		c.mu.read = first
	}
	c.compactLocked(true)
	return nil
}

// NextIndex returns the first unacknowledged message index after the
// mark-delete position (what a Kafka OffsetFetch returns).
func (c *Cursor) NextIndex() int64 {
	var next int64
	err := c.ml.withFetch(context.Background(), func() error {
		c.ml.mu.Lock()
		defer c.ml.mu.Unlock()
		c.mu.Lock()
		defer c.mu.Unlock()
		var err error
		next, err = c.nextIndexErrLocked()
		return err
	})
	if err != nil {
		c.ml.log.Warn("managedledger: cursor next index", "group", c.name, "err", err)
	}
	return next
}

// nextIndexLocked is nextIndexErrLocked for callers that cannot drop the
// locks: a miss of an offloaded block is fetched under them (lookupLocked).
func (c *Cursor) nextIndexLocked() int64 {
	var next int64
	err := c.ml.lookupLocked(func() (err error) {
		next, err = c.nextIndexErrLocked()
		return err
	})
	if err != nil {
		c.ml.log.Warn("managedledger: cursor next index", "group", c.name, "err", err)
	}
	return next
}

// nextIndexErrLocked expects ml.mu and c.mu held. On an error it returns
// the first retained index with it.
func (c *Cursor) nextIndexErrLocked() (int64, error) {
	ml := c.ml
	pos, ok := ml.entryAtOrAfterLocked(ml.nextPositionLocked(c.mu.markDelete))
	if !ok {
		return ml.mu.visNext, nil
	}
	h, err := ml.headerLocked(pos)
	if err != nil {
		return ml.mu.first, err
	}
	if set, ok := c.mu.batchAcks[pos]; ok {
		for k := int64(0); k < int64(h.MsgCount) && k/64 < int64(len(set)); k++ {
			if set[k/64]&(1<<(k%64)) != 0 {
				return max(h.FirstIndex+k, ml.mu.first), nil
			}
		}
	}
	return max(h.FirstIndex, ml.mu.first), nil
}

// Backlog counts unacknowledged messages after the mark-delete position.
// Cost: one index lookup per individually acknowledged entry.
func (c *Cursor) Backlog() int64 {
	var n int64
	c.ml.withFetch(context.Background(), func() error {
		c.ml.mu.Lock()
		defer c.ml.mu.Unlock()
		c.mu.Lock()
		defer c.mu.Unlock()
		var err error
		n, err = c.backlogLocked()
		return err
	})
	return n
}

// backlogLocked expects ml.mu and c.mu held; an error is an *offload.Miss
// to fetch (with an estimate), others give the estimate alone.
func (c *Cursor) backlogLocked() (int64, error) {
	ml := c.ml
	start, ok := ml.entryAtOrAfterLocked(ml.nextPositionLocked(c.mu.markDelete))
	if !ok {
		return 0, nil
	}
	h, err := ml.headerLocked(start)
	if err != nil {
		return ml.mu.visNext - ml.mu.first, missOnly(err)
	}
	n := ml.mu.visNext - h.FirstIndex
	// Messages of the start entry hidden by TruncateBefore do not count,
	// unless a batch ack already counts them as acknowledged.
	if cut := ml.mu.first - h.FirstIndex; cut > 0 {
		if set, ok := c.mu.batchAcks[start]; ok {
			for k := int64(0); k < cut && k/64 < int64(len(set)); k++ {
				if set[k/64]&(1<<(k%64)) != 0 {
					n--
				}
			}
		} else {
			n -= cut
		}
	}
	var missed error
	count := func(p Position) int64 {
		if p.Less(start) || !ml.visibleLocked(p) {
			return 0
		}
		h, err := ml.headerLocked(p)
		if err != nil {
			if missed == nil {
				missed = missOnly(err)
			}
			return 0
		}
		return int64(h.MsgCount)
	}
	for p := range c.mu.acked {
		n -= count(p)
	}
	for p, set := range c.mu.batchAcks {
		unacked := int64(0)
		for _, w := range set {
			unacked += int64(bits.OnesCount64(w))
		}
		if total := count(p); total > 0 {
			n -= total - min(unacked, total)
		}
	}
	return max(n, 0), missed
}

// Redelivered counts one more redelivery of each entry at positions (a
// negative ack, a lost consumer, an expired lock: the entry goes back to
// be delivered again). Acknowledged entries are ignored. The counts are
// persisted with the cursor (batched, as acknowledgements are) and dropped
// when an entry is acknowledged or the cursor is reset.
func (c *Cursor) Redelivered(positions ...Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range positions {
		if !c.mu.markDelete.Less(p) {
			continue
		}
		if _, ok := c.mu.acked[p]; ok {
			continue
		}
		if n := c.mu.redeliveries[p]; n < ^uint32(0) {
			c.mu.redeliveries[p] = n + 1
			c.mu.dirty = true
		}
	}
}

// RedeliveryCount returns how often the entry at pos was redelivered
// (Redelivered); 0 for an entry never given back or acknowledged.
func (c *Cursor) RedeliveryCount(pos Position) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.redeliveries[pos]
}

// Properties returns a copy of the cursor's properties (e.g. Kafka commit metadata).
func (c *Cursor) Properties() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.mu.props)
}

// SetProperties replaces the cursor's properties.
func (c *Cursor) SetProperties(props map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.props = maps.Clone(props)
	c.mu.dirty = true
}

// Flush persists the cursor's state now (normally batched in the
// background). A no-op for readers and clean cursors.
func (c *Cursor) Flush(ctx context.Context) error { return c.flush(ctx) }

func (c *Cursor) flush(ctx context.Context) error {
	if !c.durable {
		return nil
	}
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	if c.forgotten {
		return nil
	}
	c.mu.Lock()
	if !c.mu.dirty {
		c.mu.Unlock()
		return nil
	}
	st := c.snapshotLocked()
	c.mu.dirty = false
	c.mu.Unlock()

	b, err := json.Marshal(st)
	if err == nil {
		expected := c.version
		if expected == 0 {
			expected = metadata.AnyVersion
		}
		var v int64
		if v, err = c.ml.putFenced(ctx, c.path, b, expected); err == nil {
			c.version = v
			return nil
		}
		if errors.Is(err, metadata.ErrBadVersion) || errors.Is(err, metadata.ErrNotFound) {
			err = fmt.Errorf("%w: cursor %q: %w", ErrFenced, c.name, err)
		}
	}
	c.mu.Lock()
	c.mu.dirty = true
	c.mu.Unlock()
	return err
}

// maxAckRangesToPersist bounds a cursor record (Pulsar's
// managedLedgerMaxUnackedRangesToPersist): ranges beyond it are not
// persisted, so after a crash those entries are redelivered.
const maxAckRangesToPersist = 10000

// snapshotLocked encodes the state; individual acks become ranges.
func (c *Cursor) snapshotLocked() cursorRecord {
	st := cursorRecord{Name: c.name, MarkDelete: c.mu.markDelete, Props: maps.Clone(c.mu.props)}
	acked := slices.SortedFunc(maps.Keys(c.mu.acked), Position.Compare)
	for _, p := range acked {
		if n := len(st.Acked); n > 0 && st.Acked[n-1][0] == p.LedgerID && st.Acked[n-1][2] == p.EntryID-1 {
			st.Acked[n-1][2] = p.EntryID
			continue
		}
		if len(st.Acked) == maxAckRangesToPersist {
			c.ml.log.Warn("managedledger: too many acknowledgement holes to persist; the rest will be redelivered after a restart", "group", c.name)
			break
		}
		st.Acked = append(st.Acked, [3]int64{p.LedgerID, p.EntryID, p.EntryID})
	}
	for _, p := range slices.SortedFunc(maps.Keys(c.mu.batchAcks), Position.Compare) {
		st.BatchAcks = append(st.BatchAcks, batchAckRecord{Position: p, AckSet: c.mu.batchAcks[p]})
	}
	for _, p := range slices.SortedFunc(maps.Keys(c.mu.redeliveries), Position.Compare) {
		if len(st.Redeliveries) == maxAckRangesToPersist {
			// Beyond the bound an entry's count restarts at 0 after a
			// restart: more deliveries, never a lost entry.
			c.ml.log.Warn("managedledger: too many redelivered entries to persist their counts", "group", c.name)
			break
		}
		st.Redeliveries = append(st.Redeliveries, [3]int64{p.LedgerID, p.EntryID, int64(c.mu.redeliveries[p])})
	}
	return st
}

// compactLocked advances markDelete over individually acknowledged entries
// that follow it (stepping across ledger boundaries), drops state at or
// before it, and keeps the read position after it. Both ml.mu and c.mu are
// held. mdMoved says the caller moved markDelete itself.
func (c *Cursor) compactLocked(mdMoved bool) {
	ml := c.ml
	for len(c.mu.acked) > 0 {
		next := c.nextLocked(c.mu.markDelete)
		if _, ok := c.mu.acked[next]; !ok {
			break
		}
		delete(c.mu.acked, next)
		c.mu.markDelete = next
		mdMoved = true
	}
	if mdMoved {
		for p := range c.mu.acked {
			if !c.mu.markDelete.Less(p) {
				delete(c.mu.acked, p)
			}
		}
		for p := range c.mu.batchAcks {
			if !c.mu.markDelete.Less(p) {
				delete(c.mu.batchAcks, p)
			}
		}
		for p := range c.mu.redeliveries {
			if !c.mu.markDelete.Less(p) {
				delete(c.mu.redeliveries, p)
			}
		}
	}
	if first := ml.nextPositionLocked(c.mu.markDelete); c.mu.read.Less(first) {
		c.mu.read = first
	}
	c.mu.dirty = true
}

// nextLocked is the position of the entry after p for this cursor: the next
// released entry (Released) while there is one after p, else the retained
// log's (nextPositionLocked); p itself when the released entries cannot
// be told (the caller stops there). ml.mu held.
func (c *Cursor) nextLocked(p Position) Position {
	if q, ok := c.ml.releasedAfterLocked(p); ok {
		return q
	}
	return c.ml.nextPositionLocked(p)
}

// prevLocked is the position of the entry before p for this cursor
// (prevPositionLocked, where released entries count): the last released
// entry before p when nothing retained precedes p, or just before p when p
// lies among the released entries and none precedes it. ml.mu held.
func (c *Cursor) prevLocked(p Position) Position {
	ml := c.ml
	q := ml.prevPositionLocked(p)
	if ml.mu.released == nil {
		return q
	}
	among := p.Less(ml.releasedBoundLocked())
	if !among && !q.Less(ml.mu.firstPos) {
		return q // a retained entry
	}
	if b, ok := ml.releasedBeforeLocked(p); ok {
		return b
	}
	if among {
		return Position{LedgerID: p.LedgerID, EntryID: p.EntryID - 1}
	}
	return q
}

// RewindReleased moves a cursor that has consumed nothing of the retained
// log cumulatively (its mark-delete position just before the first
// retained entry: new from the earliest entry, or reset there) back to just
// before the first released entry (Released) at or after from (Earliest:
// the first), so that those entries count as unacknowledged until it
// acknowledges them: for a subscription that is sent them (a durable
// readCompacted one). Individual acknowledgements of retained entries are
// kept. It reports whether the cursor moved.
func (c *Cursor) RewindReleased(from Position) bool {
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	ml := c.ml
	md := c.mu.markDelete
	if md.Less(ml.releasedBoundLocked()) && (len(ml.mu.ledgers) == 0 || md.LedgerID < ml.mu.ledgers[0].id) {
		return false // already among them
	}
	if ml.nextPositionLocked(md) != ml.mu.firstPos {
		return false
	}
	after := Position{LedgerID: from.LedgerID, EntryID: from.EntryID - 1}
	if from.EntryID == math.MinInt64 || from.Less(Earliest) {
		after = Position{LedgerID: math.MinInt64, EntryID: math.MinInt64}
	}
	q, ok := ml.releasedAfterLocked(after)
	if !ok || !after.Less(q) {
		return false // none, or they cannot be told
	}
	c.mu.markDelete = Position{LedgerID: q.LedgerID, EntryID: q.EntryID - 1}
	c.mu.dirty = true
	return true
}

// missOnly returns err if it is an *offload.Miss (worth a fetch and a
// retry), else nil.
func missOnly(err error) error {
	var miss *offload.Miss
	if errors.As(err, &miss) {
		return err
	}
	return nil
}
