// Package compact builds and serves the compacted view of a managed ledger:
// the latest record per key below a cleaned point, with the offsets (message
// indexes) of every kept record unchanged. It is the one compaction
// mechanism behind Kafka's cleanup.policy=compact and Pulsar's topic
// compaction: a Kafka fetch or a readCompacted Pulsar reader reads the view
// below View.Cleaned and the raw log from there on.
//
// # What a compaction keeps
//
// Compact(name, src, params) reads the current view (if any) and the raw log
// from the view's cleaned point up to Params.UpTo (the caller picks UpTo:
// the end of the sealed ledgers old enough under min.compaction.lag.ms). A
// first pass maps every key to the offset of its latest record in
// [0, UpTo); the second pass keeps, in offset order:
//
//   - a keyed record whose offset is its key's latest, unless it is a
//     tombstone (null value) whose entry was published more than
//     Params.DeleteRetention before Params.Now (Kafka delete.retention.ms);
//   - control records (transaction markers), always;
//   - nothing of a transaction Params.Aborted reports as aborted, and no
//     keyless record (Kafka refuses them on a compacted topic; the cleaner
//     drops them).
//
// An entry whose records are all kept is copied byte for byte; an entry
// with some kept is rewritten by the Codec (same format and codec, offsets
// unchanged, so a gap is left where records went); an entry with none kept
// disappears (a gap). Entries keep their FirstIndex and their span
// (MsgCount = last offset - first offset + 1 of the original entry), so a
// Kafka batch keeps its base offset and last offset delta.
//
// # Files
//
// A view of managed ledger N lives in <Options.Dir>/<N>/<generation
// %020d>.cpv, one file per generation. All integers little endian. A
// 24-byte header: magic "KPCV", format version u16 (1; newer is refused),
// reserved u16, generation u64, CRC32C (Castagnoli) of bytes [0,16) u32,
// reserved u32. Frames follow back to back: body length u32, CRC32C of the
// body u32, then the body: first index i64, message span i32, format u8,
// reserved 3 bytes, publish time i64, max event time i64, data.
//
// # Publication (crash safety)
//
// The metadata record /compacted-ledgers/<N> (JSON {format, generation,
// cleaned, entries, bytes, records, created}) names the current
// generation. A compaction writes the new generation's file completely,
// fdatasyncs it and its directory, and only then compare-and-swaps the
// record (on the version it read); after that it removes the old file. A
// crash before the swap leaves the old record (the new file is an orphan),
// after it the new one (the old file is the orphan); Open removes every
// file the record does not name and verifies the named file frame by
// frame against the record's entry count and size. So a compaction
// interrupted at any point leaves either the old or the new view, never a
// mix, and never touches the raw log. A named file that is missing or
// fails verification (a restored or replaced data directory) is not
// served: reads fall back to the raw log, which holds everything, and the
// next compaction writes a new generation over the record.
//
// INVARIANT: every entry of a view lies below its Cleaned index, entries are
// in strictly increasing offset order, and every kept record has the offset
// it had in the raw log.
package compact
