// Package segment stores one ledger (a segment of a managed ledger) as one
// append-only file of checksummed records plus a sparse index file.
//
// # Files
//
// A ledger with id N lives in the directory given by Options.Dir as
//
//	<N as %020d>.log   the records
//	<N as %020d>.idx   the sparse index (a rebuildable hint, plus the seal trailer)
//
// # Log file
//
// All integers are little endian. The file starts with a 40-byte header:
//
//	off size field
//	0   4    magic "KPLG"
//	4   2    format version (FormatVersion)
//	6   2    reserved, zero
//	8   8    ledger id
//	16  8    first message index of the ledger
//	24  8    created, unix milliseconds
//	32  4    CRC32C (Castagnoli) of bytes [0, 32)
//	36  4    reserved, zero
//
// Records follow back to back. Each record is an 8-byte frame head and a body:
//
//	0   4    body length L (56 <= L <= MaxRecordSize)
//	4   4    CRC32C (Castagnoli) of the body
//	--- body (L bytes) ---
//	0   8    entry id (0, 1, 2, ... within the ledger)
//	8   8    first message index
//	16  8    publish time, unix ms
//	24  8    max event time, unix ms (0: unknown)
//	32  8    producer sequence first
//	40  8    producer sequence last
//	48  4    message count (>= 1)
//	52  1    format tag
//	53  1    reserved, zero
//	54  2    producer name length P
//	56  P    producer name
//	56+P     data (L - 56 - P bytes)
//
// The CRC covers every entry field and the payload. A frame head of zeros (the
// zero-filled, preallocated tail of the active file) ends the log, as does any
// record that fails its length or CRC check or whose entry id or message index
// does not continue the previous record's.
//
// # Index file
//
// A 24-byte header (magic "KPIX", version u16, reserved u16, ledger id u64,
// CRC32C of bytes [0,16) u32, reserved u32) and then 40-byte slots:
//
//	0   1    kind: 1 index point, 2 seal trailer
//	1   3    reserved, zero
//	4   4    CRC32C of bytes [8, 40)
//	8   8    point: entry id            trailer: entry count
//	16  8    point: first message index trailer: next message index
//	24  8    point: running max of entry timestamps BEFORE this entry (0 for the first)
//	         trailer: max timestamp of the ledger
//	32  8    point: log file offset of the record   trailer: log file size
//
// A point is recorded for the first record and for every record starting at
// least IndexInterval bytes (default 4 KiB) after the previous point, so a
// lookup by entry id, message index or time is a binary search over the
// points (all kept in memory) followed by a forward scan of at most about
// IndexInterval bytes of record headers. Points are written to the index
// file only after the log bytes they cover are fsynced, in batches of 64
// (and all at Seal and FlushIndex), so every intact point in the file
// refers to durable log data; recovery still verifies the point it starts
// from against the log. The index file is fsynced on Seal, which appends
// the trailer.
//
// # Cut size and sealing
//
// The segment does not decide when to cut: the managed ledger rolls over to a
// new ledger by size (Config.MaxLedgerBytes, default 128 MiB) or age. Seal
// makes everything durable, truncates preallocated slack and appends the
// trailer; a sealed segment is read-only.
//
// # Recovery
//
// Opening an unsealed segment loads the valid index points, takes the last
// one that matches the log, scans forward verifying every record, truncates
// the file after the last valid record (a torn write, bad CRC, or zeros),
// rebuilds the index points of the scanned tail and continues appending with
// the next entry id and message index. Records acknowledged after an fsync
// are a prefix of the file and are never cut. Recovery does not rescan
// before its starting point: damage there (media corruption, not a crash)
// is reported by reads as ErrCorrupt, never returned as data.
//
// # Preallocation
//
// With Options.Prealloc the active file is zero-filled (and synced) ahead of
// the writer in the background, so that group fsyncs write into allocated
// blocks and need no journal commit for a size change; the zeros read as
// the end of the log.
//
// # Versioning
//
// FormatVersion is a ratchet: files with a newer version are refused with
// ErrNewerVersion, so an older binary never misreads newer data.
//
// # Concurrency
//
// Append and Seal are called by one writer at a time (the managed ledger
// serialises them under its ordering lock). Append only encodes the record
// into a pending buffer; Write puts the buffer in the file with one write(2)
// and Sync does that plus one fdatasync, so a group of appends costs one
// write and one sync. Sync and Write may run concurrently with Append (that
// is the point of group commit). Reads may run concurrently with
// everything and only ever see records the caller says are visible; Close
// and Remove wait for reads in progress.
package segment
