// Package offload is tiered storage's object format and reader: a sealed
// ledger (a segment) copied to an object store as one data object and one
// index object, read back with ranged GETs through a bounded block cache
// with read-ahead. Package managedledger decides what to offload and when,
// records it in the ledger list and deletes local copies; this package
// knows bytes.
//
// The model is Pulsar's tiered storage (BlobStoreManagedLedgerOffloader,
// BlockAwareSegmentInputStreamImpl, OffloadIndexBlock): a data object of a
// header block and blocks of entries, and an index object mapping entry
// ids to blocks. The code is this project's own.
//
// # Object names
//
// One offload attempt of ledger N of managed ledger <name> gets a random
// UUID (the offload id) and writes
//
//	<prefix><name>/<N as %020d>-<uuid>.data    the entries
//	<prefix><name>/<N as %020d>-<uuid>.index   where they are
//
// The managed ledger records the UUID in its ledger list before the first
// byte is uploaded and marks the offload complete only after both objects
// are written and verified (Head: sizes and, where the store reports MD5
// ETags, digests), so objects of an interrupted attempt are recognisable
// (their UUID is not a complete offload in the list) and are deleted, and
// a half-written object is never read. Object names never repeat: ledger
// ids only grow per name and every attempt has a new UUID.
//
// # Data object
//
// All integers little endian; CRCs are CRC32C (Castagnoli). A 64-byte
// header block:
//
//	off size field
//	0   4    magic "KPOD"
//	4   2    format version (Version)
//	6   2    reserved, zero
//	8   8    ledger id
//	16  8    first message index
//	24  8    entry count
//	32  8    block count
//	40  4    target block size
//	44  16   offload UUID
//	60  4    CRC32C of bytes [0, 60)
//
// Blocks follow back to back. Each block is a 32-byte block header and a
// payload of whole records:
//
//	0   4    magic "KPOB"
//	4   4    payload length L
//	8   8    first entry id
//	16  4    entry count
//	20  4    CRC32C of the payload
//	24  4    CRC32C of bytes [0, 24)
//	28  4    reserved, zero
//	--- payload (L bytes) ---
//	records framed exactly as in a segment log file (package segment:
//	length, CRC32C of the body, entry id, message index, times, producer
//	sequence, count, format, producer name, data)
//
// A block is cut once it holds BlockSize bytes (default 4 MiB; one record
// larger than that gets a block of its own), so a read of one entry costs
// one ranged GET of about a block, and a sequential read a GET per block.
//
// # Index object
//
// A 96-byte header:
//
//	0   4    magic "KPOI"
//	4   2    format version
//	6   2    reserved, zero
//	8   8    ledger id
//	16  8    first message index
//	24  8    entry count
//	32  8    next message index (after the ledger's last message)
//	40  8    max timestamp (event time, else publish time) of the ledger
//	48  8    data object size
//	56  4    CRC32C of the whole data object
//	60  4    block count B
//	64  16   offload UUID
//	80  16   reserved, zero
//
// then B 40-byte block entries:
//
//	0   8    first entry id of the block
//	8   8    first message index of the block
//	16  8    running max of entry timestamps BEFORE the block (0 for the first)
//	24  8    offset of the block header in the data object
//	32  4    block length (header included)
//	36  4    reserved, zero
//
// and a 4-byte CRC32C of everything before it. The index is small (40
// bytes per block, ~40 KiB per GiB of data) and is kept in memory by a
// reader; lookups by entry id, message index or time are a binary search
// over it and a scan of one block.
//
// # Versioning
//
// Version is a ratchet as in package segment: objects of a newer version
// are refused with ErrNewerVersion.
package offload
