package managedledger

import "context"

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
