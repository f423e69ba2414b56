package managedledger

import (
	"sync"

	"errors"
	"fmt"
	"github.com/kopernik-io/kopernik/segment"
	"math"
	"time"
)

// Format tags how an entry's bytes are encoded. Storage never parses them.
type Format uint8

const (
	FormatUnknown Format = 0
	// FormatKafka: one Kafka RecordBatch (magic 2), byte-for-byte as produced.
	FormatKafka Format = 1
	// FormatPulsar: a Pulsar payload frame from the 0x0e01 magic onward
	// ([magic][crc32c][metaSize][MessageMetadata][payload]) as sent.
	FormatPulsar Format = 2
)

func (f Format) String() string {
	switch f {
	case FormatKafka:
		return "kafka"
	case FormatPulsar:
		return "pulsar"
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// Position addresses one entry: (ledger, entry within ledger).
type Position struct {
	LedgerID int64
	EntryID  int64
}

var (
	// Earliest sorts before every entry.
	Earliest = Position{LedgerID: -1, EntryID: -1}
	// Latest sorts after every entry.
	Latest = Position{LedgerID: math.MaxInt64, EntryID: math.MaxInt64}
)

// Compare returns -1, 0 or +1.
func (p Position) Compare(q Position) int {
	switch {
	case p.LedgerID < q.LedgerID:
		return -1
	case p.LedgerID > q.LedgerID:
		return 1
	case p.EntryID < q.EntryID:
		return -1
	case p.EntryID > q.EntryID:
		return 1
	}
	return 0
}

// Less reports p < q.
func (p Position) Less(q Position) bool { return p.Compare(q) < 0 }

func (p Position) String() string { return fmt.Sprintf("%d:%d", p.LedgerID, p.EntryID) }

// Entry is one produced batch with the facts storage keeps about it.
type Entry struct {
	Position Position // set by Append
	Format   Format
	// MsgCount is the number of messages in the batch (>= 1).
	MsgCount int32
	// FirstIndex is the message index of the first message (set by Append).
	// Indexes are continuous per managed ledger from 0: the Kafka offset.
	FirstIndex int64
	// PublishTime is unix milliseconds, set by Append, never decreasing.
	PublishTime int64
	// MaxEventTime is the largest event/create time in the batch, unix ms; 0 unknown.
	MaxEventTime int64
	// Producer and SeqFirst/SeqLast optionally identify the producer and the
	// sequence numbers of the batch, so that deduplication state can be
	// rebuilt from the log after a restart. Empty Producer: none.
	Producer string
	SeqFirst int64
	SeqLast  int64
	// Data is the batch exactly as produced. Append does not retain the
	// caller's slice after it returns. A read result's Data is read-only:
	// it may be shared with other readers (the entry cache, cache.go) and
	// with other entries of the same read buffer; it stays valid until
	// Release.
	Data []byte

	release *entryRelease // shared by copies of the entry: releases once
}

type entryRelease struct {
	once sync.Once
	rec  segment.Record
}

// Release lets storage reuse the memory behind Data: call it when neither
// this entry's Data nor any copy of the entry is used again. It is
// optional (unreleased memory is garbage collected) and idempotent across
// copies of the entry; a no-op for entries served from the entry cache. A
// hot read path (Kafka fetch) releases once it has written Data out, to
// avoid allocating and zeroing a buffer per read.
func (e *Entry) Release() {
	if e.release != nil {
		e.release.once.Do(e.release.rec.Release)
	}
}

// LastIndex is the message index of the entry's last message.
func (e *Entry) LastIndex() int64 { return e.FirstIndex + int64(e.MsgCount) - 1 }

// Timestamp is the time used by find-by-time: event time if known, else publish time.
func (e *Entry) Timestamp() int64 {
	if e.MaxEventTime > 0 {
		return e.MaxEventTime
	}
	return e.PublishTime
}

// SyncMode selects when appends become durable.
type SyncMode int

const (
	// SyncAlways: Append returns after the entry is fsynced (group commit).
	SyncAlways SyncMode = iota
	// SyncInterval: Append returns after write(2); a background fsync runs every Interval.
	SyncInterval
)

// Config tunes one managed ledger. Zero values mean the defaults noted.
type Config struct {
	// ReleasedEntries says that ledgers before the first one are removed
	// only by compaction's release (a compact-only topic: no retention),
	// so their entries still exist in the compacted view (Released): a
	// cursor standing in them at open stays there. Otherwise removed
	// ledgers are gone and such a cursor is moved to just before the first
	// retained entry, as every cursor of a log that retention shortened.
	ReleasedEntries bool
	// MaxLedgerBytes rolls the current ledger over once it holds this much (default 128 MiB;
	// Kafka segment.bytes).
	MaxLedgerBytes int64
	// MaxLedgerAge rolls over a ledger this old that holds entries (default 4h; Kafka segment.ms).
	MaxLedgerAge time.Duration
	// Sync is the durability policy (default SyncAlways).
	Sync SyncMode
	// SyncInterval is the fsync period for SyncInterval (default 1s).
	SyncInterval time.Duration
	// RetentionTime keeps consumed data this long (Kafka retention.ms, Pulsar
	// retentionTimeInMinutes). 0: delete consumed ledgers at once; < 0: forever.
	RetentionTime time.Duration
	// RetentionBytes keeps at most this much consumed data (Kafka retention.bytes,
	// Pulsar retentionSizeInMB). < 0: unlimited; 0 with RetentionTime: time alone decides.
	RetentionBytes int64
	// Offload is the tiered-storage policy (tiered.go).
	Offload OffloadPolicy
}

// InitialPosition says where a new durable cursor starts.
type InitialPosition int

const (
	// InitialLatest starts after the last entry.
	InitialLatest InitialPosition = iota
	// InitialEarliest starts at the first retained entry.
	InitialEarliest
)

// Stats summarises a managed ledger.
type Stats struct {
	Entries    int64
	Messages   int64 // NextIndex - FirstIndex
	Bytes      int64 // stored bytes of retained ledgers
	LocalBytes int64 // of which on local disk (not offloaded and deleted locally)
	Ledgers    []LedgerInfo
	FirstIndex int64
	NextIndex  int64
}

// LedgerInfo describes one ledger (segment).
type LedgerInfo struct {
	LedgerID   int64
	Entries    int64
	Bytes      int64
	FirstIndex int64
	Created    time.Time
	Sealed     bool
	// MaxTimestamp is the largest entry timestamp (event time, else
	// publish time; unix ms) of a sealed ledger; 0 for the active one.
	MaxTimestamp int64
	// Offloaded: a verified copy is in the object store (OffloadID names
	// it); LocalDeleted: the local files are gone, reads use that copy.
	Offloaded    bool
	OffloadID    string
	LocalDeleted bool
}

// Sentinel errors.
var (
	ErrClosed          = errors.New("managedledger: closed")
	ErrFenced          = errors.New("managedledger: fenced")
	ErrIndexOutOfRange = errors.New("managedledger: message index out of range")
	ErrNoCursor        = errors.New("managedledger: no such cursor")
	ErrInvalidEntry    = errors.New("managedledger: invalid entry")
	ErrCorrupt         = errors.New("managedledger: corrupt data")
)
