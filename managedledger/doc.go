// Package managedledger is a topic-partition's log: an ordered list of ledgers
// (segments) holding entries, continuous message indexes, and cursors.
//
// Vocabulary (from Pulsar): an entry is one produced batch; its Position is
// (ledgerId, entryId); every message has an index, continuous from 0 per
// managed ledger, which is also its Kafka offset. A cursor is a consumer's
// durable (named, persisted) or non-durable (reader) state: a mark-delete
// position (everything at or before it is acknowledged) plus individually
// acknowledged entries and batch-index acknowledgements after it.
//
// INVARIANT: for every cursor, markDelete <= readPosition <= lastConfirmed+1.
// INVARIANT: entries are visible to readers only once durable under the
// ledger's sync policy; Append returns only then.
package managedledger

// Lock order: Factory.mu, then ManagedLedger.mu, then Cursor.mu. A function
// named ...Locked expects the locks its doc names to be held.
