package managedledger

import (
	"context"
	"math"
)

// ReleaseConsumedBefore deletes the sealed ledgers, oldest first, whose
// entries all lie below index and that every durable cursor has consumed
// (ApplyRetention's rule with no time or size left), and returns how many
// bytes went. It is how a compacted topic (package managedledger/compact)
// frees the raw ledgers its view replaced: FirstIndex moves up, the
// DeleteRecords point (TruncatedBefore) does not, cursors are untouched.
// The active ledger never goes.
func (ml *ManagedLedger) ReleaseConsumedBefore(ctx context.Context, index int64) (int64, error) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if ml.mu.closed {
		return 0, ErrClosed
	}
	slowest := Latest
	for _, c := range ml.mu.cursors {
		if md := c.MarkDeletePosition(); md.Less(slowest) {
			slowest = md
		}
	}
	n, freed := 0, int64(0)
	for i, l := range ml.mu.ledgers[:len(ml.mu.ledgers)-1] {
		if ml.mu.ledgers[i+1].firstIndex > index {
			break // holds index or more
		}
		if l.entries > 0 && slowest.Less(Position{LedgerID: l.id, EntryID: l.entries - 1}) {
			break // not consumed
		}
		n++
		freed += l.bytes
	}
	if n == 0 {
		return 0, nil
	}
	del := append([]*ledger(nil), ml.mu.ledgers[:n]...)
	ml.mu.ledgers = ml.mu.ledgers[n:]
	ml.recomputeFirstLocked()
	if err := ml.persistLocked(ctx); err != nil {
		return 0, err
	}
	ml.removeLedgersLocked(del)
	return freed, nil
}

// TruncatedBefore is the DeleteRecords point (TruncateBefore's largest
// index): nothing below it may be read, whatever FirstIndex says.
func (ml *ManagedLedger) TruncatedBefore() int64 {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.mu.truncBefore
}

// Released tells a managed ledger's cursors of the entries that outlive the
// ledgers that held them: a compacted view's entries in raw ledgers
// ReleaseConsumedBefore deleted (package managedledger/compact). For its
// cursors they are entries like the retained ones, at their old positions:
// a cursor standing before some of them (Cursor.RewindReleased) records
// their acknowledgements one by one, and its mark-delete position passes
// each only once it and everything before it are acknowledged, then enters
// the retained log. Cursors whose mark-delete position is at or after them
// (every cursor that consumed the ledgers before they were released) never
// see them.
//
// Both methods are called with the ledger's lock held: they must be quick
// and must not call back into the ledger.
type Released interface {
	// After returns the position of the first entry after pos whose last
	// message index is at least minIndex (older ones were deleted:
	// TruncateBefore), ok false if there is none. An implementation that
	// cannot tell (an error) answers pos itself with ok true: cursors then
	// stop at pos (entries may come again, none is skipped).
	After(pos Position, minIndex int64) (next Position, ok bool)
	// Before returns the position and last message index of the last
	// entry before pos, ok false if there is none.
	Before(pos Position) (prev Position, lastIndex int64, ok bool)
}

// SetReleased installs r (nil: none); call it right after Open, before
// the cursors are used (cursors whose mark-delete position lies in released
// ledgers are left as loaded until then).
func (ml *ManagedLedger) SetReleased(r Released) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	ml.mu.released = r
}

// releasedBoundLocked is the position before which released entries lie:
// the first retained ledger's first entry.
func (ml *ManagedLedger) releasedBoundLocked() Position {
	if len(ml.mu.ledgers) == 0 {
		return Position{LedgerID: math.MinInt64}
	}
	return Position{LedgerID: ml.mu.ledgers[0].id, EntryID: 0}
}

// releasedAfterLocked returns the first released entry after p that is not
// deleted (Released.After); p itself when that cannot be told.
func (ml *ManagedLedger) releasedAfterLocked(p Position) (Position, bool) {
	r, bound := ml.mu.released, ml.releasedBoundLocked()
	if r == nil || !p.Less(bound) {
		return Position{}, false
	}
	q, ok := r.After(p, ml.mu.truncBefore)
	if !ok || !q.Less(bound) {
		return Position{}, false
	}
	return q, true
}

// releasedBeforeLocked returns the last released entry before p that is not
// deleted (Released.Before).
func (ml *ManagedLedger) releasedBeforeLocked(p Position) (Position, bool) {
	r, bound := ml.mu.released, ml.releasedBoundLocked()
	if r == nil {
		return Position{}, false
	}
	if bound.Less(p) {
		p = bound
	}
	q, last, ok := r.Before(p)
	if !ok || last < ml.mu.truncBefore || !q.Less(bound) {
		return Position{}, false
	}
	return q, true
}
