// Package managedledger is a topic-partition's log: an ordered list of ledgers
// (segments) holding entries, continuous message indexes, and cursors.
//
// Vocabulary (from Pulsar): an entry is one produced batch; its Position is
// (ledgerId, entryId); every message has an index, continuous from 0 per
// managed ledger, which is also its Kafka offset. A cursor is a consumer's
// durable (named, persisted) or non-durable (reader) state: a mark-delete
// position (everything at or before it is acknowledged) plus individually
// acknowledged entries and batch-index acknowledgements after it, and the
// redelivery counts of unacknowledged entries.
//
// # Storage
//
// Each ledger is one segment (package segment) in
// <FactoryOptions.Dir>/<managed ledger name>/<ledgerId %020d>.log and .idx.
// With an empty Dir the same engine runs over an in-memory file system.
// Ledger ids start at 0 per managed ledger and only grow, also across a
// delete and re-create of the same name: Factory.Delete leaves the next id
// at /managed-ledger-ids/<name> (decimal) and creation starts there.
//
// The ledger list lives in the metadata store at /managed-ledgers/<name> as
// JSON: {format, nextLedgerId, truncateBefore, ledgers: [{id, firstIndex,
// entries, bytes, maxTs, created, closed, sealed}]}. Every write is a
// compare-and-swap on the version this instance last wrote; losing it means
// another owner took over: ErrFenced. The last ledger is the active one
// (unsealed); its counts in the list are stale and recovered from its file.
//
// Durable cursors live at /managed-ledgers/<name>/cursors/<escaped name>
// as JSON {name, markDelete, acked: [[ledger, firstEntry, lastEntry]...],
// batchAcks: [{pos, ackSet}], redeliveries: [[ledger, entry, count]...],
// props}. redeliveries was added later: a record without it has every
// count 0, and an older binary ignores it (and drops it on its next write:
// counts start over, nothing else is lost). Cursor names may hold any bytes:
// everything outside [A-Za-z0-9_-] is escaped as %XX.
//
// # Durability and visibility (the contract)
//
// Append assigns position, indexes and publish time in call order under the
// ledger's lock and encodes the entry into the active segment's buffer.
// Under SyncAlways (the default) with a Dir the entry also goes into the
// factory's shared journal (see Journal below), whose group commit makes it
// durable; with FactoryOptions.PerLedgerSync (or in memory) the ledger's
// own flusher goroutine writes the whole buffer with one write(2) and one
// fdatasync of the segment and then completes every waiter it covers
// (group commit per ledger). Both wait up to half an fsync for a batch to
// fill to the size of the previous one. Append MUST NOT return, and the entry
// MUST NOT become visible to readers (ReadEntries, ReadFromIndex,
// LastConfirmed, NextIndex, Changed), before it is on stable storage. Under
// SyncInterval an entry is written (write(2)) and visible when Append
// returns and fsynced within SyncInterval.
//
// # Journal
//
// One write-ahead journal per Factory (BookKeeper's journal) in
// <FactoryOptions.Dir>/journal/, over the same segment.FS as the segments.
// All SyncAlways appends of all ledgers go into it: records submitted
// while the previous write+fdatasync runs go out in one write(2) and one
// fdatasync, and only then do their completions run (in submission
// order, on a completer goroutine, while the next group is already being
// synced). A completion writes the ledger's pending segment bytes (one
// write(2), no fsync) and then publishes the entry: an entry is visible,
// and Append returns, only once the journal fsync covering it completed
// and its bytes are in the segment file for readers.
//
// Files are <slot %020d>.jnl. All integers little endian. A file starts
// with a 32-byte header: magic "KPJN", format version u16 (1; newer is
// refused), reserved u16, sequence u64 (only growing: journal order is
// sequence order, whatever the slot), created unix ms u64, CRC32C
// (Castagnoli) of bytes [0, 24) u32, reserved u32. The header is written
// and synced (and, for a new file, the directory) before any record goes
// in. Frames follow back to back:
//
//	0   4    body length L (72 <= L <= segment.MaxRecordSize + 128 KiB)
//	4   4    CRC32C of the body
//	8   4    low 32 bits of the file's sequence
//	--- body ---
//	0   1    kind: 1 entry, 2 cut
//	1   1    entry format tag
//	2   2    ledger name length N (>= 1)
//	4   4    message count
//	8   8    ledger id
//	16  8    entry id (cut: the first cancelled entry id)
//	24  8    first message index
//	32  8    publish time, unix ms
//	40  8    max event time, unix ms
//	48  8    producer sequence first
//	56  8    producer sequence last
//	64  2    producer name length P
//	66  6    reserved, zero
//	72  N    managed ledger name
//	72+N P   producer name
//	...      data (the rest)
//
// A frame of zeros (the zero-filled tail written ahead of the writer, in
// the background, like segment preallocation), a torn frame, a frame of
// another sequence (left from an earlier use of a reused file), a CRC
// mismatch or an invalid field ends a file; at open the file is truncated
// there (and synced). A file reaching FactoryOptions.JournalFileBytes
// (default 64 MiB) is left for the next one after the group that filled
// it. The next file reuses a spare if there is one: released files are
// not deleted but retired (header zeroed and synced: a file without a
// valid header is removed at open, it holds nothing needed) and kept, up
// to two, so that the journal writes into allocated blocks instead of
// zero-filling new ones; beyond two they are deleted.
//
// Checkpoint: per factory, every CheckpointInterval (default 10s) and
// whenever CheckpointBytes (default 64 MiB) were journalled since, each
// open ledger fdatasyncs its active segment if it holds unsynced data and
// then releases its journal records up to the last entry that was visible
// before that sync and is covered by it (entries past the visible ones
// are never released: after an in-place recovery their ids are reused).
// Sealing (rollover) and Close sync the segment too; Close releases. The
// journal deletes files oldest first once every ledger name with a record
// in the file has released up to that file's highest position of the
// name; only a prefix of files goes (retired or deleted), so that a cut
// record always outlives the records it cancels. A clean Factory.Close
// leaves no journal files.
//
// Deferred files: for journalled appends (SyncAlways) a new ledger's
// files are created by its first sync, not by its creation
// (segment.CreateUnsynced keeps the bytes in memory until then), so that
// a partition's first write costs no mkdir(2)/open(2) on the
// acknowledgement path (10,000 partitions' first round: 4.6 s -> 1.3-2.7
// s). The journal is what makes it safe: a record is released only after
// a sync that covered it succeeded, so until then the entry is in the
// journal and recovery recreates a file that never existed. (An earlier
// round that wrote no frame aliased the journal's two buffers and tore
// later groups; TestRandomIOFaults lost entries with deferral on until
// that was fixed, TestJournalBarrierThenConcurrentAppends.)
//
// Open files: every ledger and journal file goes through a segment.LimitFS
// bounded by FactoryOptions.MaxOpenFiles (default 3/4 of RLIMIT_NOFILE):
// idle descriptors are closed, clean ones first (index files, sealed
// ledgers), a dirty one only after an fdatasync, and reopened on use.
//
// Replay: opening the factory reads every journal file in order, keeps
// each ledger's records, and replays them at once by opening (and
// closing) every ledger they name whose ledger list exists (records of
// deleted ledgers are released). Opening a ledger recovers its active
// segment from the file (torn tail truncated), then appends the journal's
// entries of that ledger id from the segment's durable entry count on
// (after applying cuts), checking that they continue its entry ids and
// message indexes, fsyncs, and releases; only then does it accept
// appends. A journal run that starts after the segment's end (entries
// missing between the two) is ErrCorrupt. Records of sealed ledgers or
// below the segment's end are already durable there and skipped.
//
// Failures: a failed journal write or fsync fails the journal: every
// pending record and every later append fails with ErrStorage (and
// ErrDiskFull for ENOSPC/EDQUOT), which fails the ledgers that had
// appends in flight. The journal retries recovery every
// StorageRetryInterval (and on a ledger's Open): it truncates its file
// back to the last synced group and syncs (nothing that failed can be
// replayed later), starts a new file and zero-fills 64 KiB ahead to learn
// that writes fit. A ledger recovers in place (below) only once the
// journal is healthy: it waits for its completions in flight, cuts its
// segment back to the visible entries, gives back from the journal any
// acknowledged entries its segment file lost (a failed segment fsync at a
// checkpoint drops dirty pages), and then writes and syncs a cut record
// (ledger, first failed entry id) before accepting appends, so that
// entries that failed but reached the journal never come back on a later
// replay. A failed segment write at completion fails that ledger (its
// entry is not acknowledged, and the cut cancels its journal record).
//
// # Disk full and I/O errors
//
// A failed write, fsync, seal or ledger creation fails the ledger
// (ErrStorage; also ErrDiskFull for ENOSPC/EDQUOT): appends in flight and
// new appends fail, reads of visible entries keep working. This is an
// ordinary, recoverable condition: the ledger's syncer retries recovery
// after FactoryOptions.StorageRetryInterval (default 1s, backing off to 5x)
// until it succeeds (recover.go). Recovery happens in place, on the syncer
// goroutine (so never concurrently with a group fsync, another recovery or
// Close): the failed segment handle is abandoned (no more writes or
// preallocation through it), the active ledger's log is cut back to the
// visible entries, reopened with segment.Open — which re-reads and verifies
// the file rather than trusting the page cache after a failed fsync,
// truncates a torn tail and fsyncs — and 64 KiB are reserved (zero-filled
// and fsynced) to learn that writes fit again; only then is the ledger list
// rewritten and are appends accepted, at the next index after the last
// visible entry. Acknowledged entries are visible ones, so they are never
// lost; an append that failed is never in the log after recovery (a client
// may retry it without creating a duplicate); indexes stay continuous. A
// failed background preallocation does not fail the ledger (appends just
// grow the file). A fenced ledger is not retried. The factory's Failed and
// StorageCounts report failed ledgers and transitions (health, metrics).
//
// # Rollover, truncation, retention
//
// The active ledger is sealed and a new one started when it holds
// MaxLedgerBytes or is older than MaxLedgerAge (checked on append and by
// the factory's periodic pass). TruncateBefore (Kafka DeleteRecords)
// deletes whole ledgers below the index and hides the rest logically.
// ApplyRetention deletes sealed ledgers, oldest first, that every durable
// cursor has consumed and that are beyond RetentionTime or RetentionBytes.
// ReleaseConsumedBefore deletes the consumed sealed ledgers below an index
// whatever their age (a compacted topic's view replaced them); FirstIndex
// moves, TruncatedBefore (the TruncateBefore point, which may then lie
// below FirstIndex) does not.
//
// # Entry cache
//
// Recently appended entries are also kept in memory (a copy taken at
// append, within FactoryOptions.CacheBytes shared by all ledgers, for at
// most CacheMaxAge), and reads starting at a cached entry are served from
// it without reading or checksumming files; see cache.go. Visibility is
// unchanged: a cached entry is returned only once visible.
//
// # Tiered storage
//
// With FactoryOptions.Offload (an objectstore.Store), sealed ledgers are
// copied to the object store (Offload, or automatically by the factory's
// offload pass under Config.Offload) in the format of package offload: one
// data object of checksummed blocks and one index object per ledger.
// A ledger's entry in the list gains "offload": {uid, complete,
// localDeleted, time, dataBytes} (Pulsar's offload_context). The order
// is the crash-safety argument: the uid is recorded before the upload
// starts; complete is set only after both objects are written and verified
// (offload.Upload); localDeleted is recorded before the local files are
// removed, which happens only DeletionLag after completion. An incomplete
// uid found on open was interrupted: it is dropped, and the orphan pass
// (the first offload pass after open, or CollectOrphanObjects) deletes
// every object of the ledger's prefix that no complete offload names.
// Ledgers deleted by retention or truncation take their objects with them
// (in the background; failures are left to the orphan pass), and
// Factory.Delete deletes all of a managed ledger's objects.
//
// Reads are transparent: every read path (ReadEntries, ReadFromIndex[Within],
// PositionOf, FindByTime, cursors) reads a complete offload's copy when the
// local files are gone or ReadPriority is TieredFirst, with ranged GETs of
// whole blocks through a shared, bounded block cache with read-ahead. The
// lookups that run under ManagedLedger.mu never do object-store I/O: they
// answer *offload.Miss, and withFetch fetches without the lock and retries,
// so a slow or down store never holds up appends. A read that needs the
// store while it is down fails with ErrTieredUnavailable (retriable; never
// an empty result that would let a reader move past the data); entries
// read before the failure are returned first.
//
// # Cursor persistence
//
// Acknowledgements change memory only; the factory persists dirty cursors
// every CursorFlushInterval (default 100ms), Flush and Close persist at
// once. A crash can therefore redeliver the acknowledgements of the last
// interval (at-least-once), never lose data. Readers are never persisted.
//
// A cursor's mark-delete position may lie in ledgers ReleaseConsumedBefore
// deleted, before entries a compacted view still holds there (Released,
// installed by the owner with SetReleased): it is persisted as any other,
// and a cursor loaded there is left as it was until the owner tells which
// released entries exist.
//
// INVARIANT: for every cursor, markDelete < readPosition (in (ledger, entry)
// order) unless Seek put the read position elsewhere.
// INVARIANT: entries are visible to readers only once durable under the
// ledger's sync policy; Append returns only then.
// INVARIANT: indexes are continuous: an entry's FirstIndex is the previous
// entry's FirstIndex + MsgCount, across ledgers and restarts.
package managedledger

// Lock order: Factory.mu, then ManagedLedger.mu, then Cursor.mu; segment
// locks are leaves. The journal's mu is a leaf too (appends take it under
// ManagedLedger.mu); its completions take ManagedLedger.mu, so nothing may
// wait for a journal completion while holding ManagedLedger.mu, and
// journal.delMu is taken before journal.mu. Cursor.flushMu is taken before Cursor.mu and never with
// ManagedLedger.mu held. A function named ...Locked expects the locks its
// doc names to be held (ManagedLedger.mu unless it says more).
// Released (release.go) is called with ManagedLedger.mu and Cursor.mu held,
// only for positions before the first retained ledger: its implementation
// (the compactor's view index) never waits for a managed ledger.
