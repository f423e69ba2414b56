package managedledger

import (
	"context"
	"fmt"
	"maps"
	"math/bits"
	"sort"
	"sync"
)

// Cursor is a subscription's position in a managed ledger. Durable cursors
// are named and persisted (batched: see Flush); non-durable ones (readers)
// live in memory only. Safe for concurrent use.
//
// Acknowledgement state: MarkDeletePosition (everything at or before it is
// acknowledged), individually acknowledged entries after it, and batch-index
// ack sets for partly acknowledged entries (bit i set = message i of the
// batch still unacknowledged, Pulsar's convention).
type Cursor struct {
	ml      *ManagedLedger
	name    string
	durable bool

	mu struct {
		sync.Mutex
		markDelete Position
		read       Position // next entry to read
		acked      map[Position]struct{}
		batchAcks  map[Position][]uint64
		props      map[string]string
		dirty      bool
	}
}

// OpenCursor returns the durable cursor called name, creating it at start if
// it does not exist.
func (ml *ManagedLedger) OpenCursor(ctx context.Context, name string, start InitialPosition) (*Cursor, error) {
	if name == "" {
		return nil, fmt.Errorf("managedledger: empty cursor name")
	}
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if ml.mu.closed {
		return nil, ErrClosed
	}
	if c, ok := ml.mu.cursors[name]; ok {
		return c, nil
	}
	var md Position
	if start == InitialEarliest {
		md = Position{LedgerID: 0, EntryID: ml.mu.base - 1}
	} else {
		md = Position{LedgerID: 0, EntryID: ml.mu.base + int64(len(ml.mu.entries)) - 1}
	}
	c := ml.newCursorLocked(name, true, md)
	ml.mu.cursors[name] = c
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
	c.mu.markDelete = md
	c.mu.read = ml.nextPositionLocked(md)
	c.mu.acked = make(map[Position]struct{})
	c.mu.batchAcks = make(map[Position][]uint64)
	c.mu.props = make(map[string]string)
	return c
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
	defer ml.mu.Unlock()
	if _, ok := ml.mu.cursors[name]; !ok {
		return fmt.Errorf("%w: %s", ErrNoCursor, name)
	}
	delete(ml.mu.cursors, name)
	return nil
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
	if pos.Less(c.mu.markDelete) || pos == c.mu.markDelete {
		return nil
	}
	c.mu.markDelete = pos
	c.compactLocked()
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
		}
	}
	c.compactLocked()
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
		c.mu.acked[pos] = struct{}{}
		c.compactLocked()
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

// ResetTo sets the mark-delete position to just before pos, drops every
// acknowledgement after it, and moves the read position to pos (seek,
// reset-cursor).
func (c *Cursor) ResetTo(ctx context.Context, pos Position) error {
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.ml.indexOfPositionLocked(pos)
	var md Position
	if i == 0 {
		md = Position{LedgerID: 0, EntryID: c.ml.mu.base - 1}
	} else {
		md = c.ml.mu.entries[i-1].Position
	}
	c.mu.markDelete = md
	c.mu.acked = make(map[Position]struct{})
	c.mu.batchAcks = make(map[Position][]uint64)
	c.mu.read = c.ml.nextPositionLocked(md)
	c.mu.dirty = true
	return nil
}

// SetNextIndex positions the cursor so that message index next is the first
// unacknowledged message (a Kafka offset commit): entries wholly before next
// are acknowledged, a batch holding next gets a batch-index ack set. Moving
// forward keeps individual acks beyond; moving backward drops them.
func (c *Cursor) SetNextIndex(ctx context.Context, next int64) error {
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	ml := c.ml
	if next < ml.mu.first || next > ml.mu.next {
		return fmt.Errorf("%w: %d not in [%d, %d]", ErrIndexOutOfRange, next, ml.mu.first, ml.mu.next)
	}
	i := sort.Search(len(ml.mu.entries), func(i int) bool { return ml.mu.entries[i].LastIndex() >= next })
	var md Position
	if i == 0 {
		md = Position{LedgerID: 0, EntryID: ml.mu.base - 1}
	} else {
		md = ml.mu.entries[i-1].Position
	}
	forward := c.mu.markDelete.Less(md)
	c.mu.markDelete = md
	if !forward {
		c.mu.acked = make(map[Position]struct{})
		c.mu.batchAcks = make(map[Position][]uint64)
	}
	if i < len(ml.mu.entries) && ml.mu.entries[i].FirstIndex < next {
		e := ml.mu.entries[i]
		set := make([]uint64, (e.MsgCount+63)/64)
		for k := next - e.FirstIndex; k < int64(e.MsgCount); k++ {
			set[k/64] |= 1 << (k % 64)
		}
		c.mu.batchAcks[e.Position] = set
	}
	if c.mu.read.Less(ml.nextPositionLocked(md)) || !forward {
		c.mu.read = ml.nextPositionLocked(md)
	}
	c.compactLocked()
	c.mu.dirty = true
	return nil
}

// NextIndex returns the first unacknowledged message index after the
// mark-delete position (what a Kafka OffsetFetch returns).
func (c *Cursor) NextIndex() int64 {
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	ml := c.ml
	i := ml.indexOfPositionLocked(ml.nextPositionLocked(c.mu.markDelete))
	if i >= len(ml.mu.entries) {
		return ml.mu.next
	}
	e := ml.mu.entries[i]
	if set, ok := c.mu.batchAcks[e.Position]; ok {
		for k := int64(0); k < int64(e.MsgCount); k++ {
			if set[k/64]&(1<<(k%64)) != 0 {
				return e.FirstIndex + k
			}
		}
	}
	return e.FirstIndex
}

// Backlog counts unacknowledged messages after the mark-delete position.
func (c *Cursor) Backlog() int64 {
	c.ml.mu.Lock()
	defer c.ml.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	ml := c.ml
	var n int64
	for i := ml.indexOfPositionLocked(ml.nextPositionLocked(c.mu.markDelete)); i < len(ml.mu.entries); i++ {
		e := &ml.mu.entries[i]
		if _, ok := c.mu.acked[e.Position]; ok {
			continue
		}
		if set, ok := c.mu.batchAcks[e.Position]; ok {
			for _, w := range set {
				n += int64(bits.OnesCount64(w))
			}
			continue
		}
		n += int64(e.MsgCount)
	}
	return n
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

// Flush persists the cursor's state now (normally batched in the background).
func (c *Cursor) Flush(ctx context.Context) error { return nil }

// compactLocked advances markDelete over individually acknowledged entries
// that follow it. Both ml.mu and c.mu are held.
func (c *Cursor) compactLocked() {
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
	for {
		next := c.ml.nextPositionLocked(c.mu.markDelete)
		if _, ok := c.mu.acked[next]; !ok {
			break
		}
		delete(c.mu.acked, next)
		c.mu.markDelete = next
	}
	if c.mu.read.Less(c.ml.nextPositionLocked(c.mu.markDelete)) {
		c.mu.read = c.ml.nextPositionLocked(c.mu.markDelete)
	}
	c.mu.dirty = true
}
