package offload

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"

	"github.com/kopernik-io/kopernik/segment"
)

// Version is the object format this code writes and the newest it reads.
const Version = 1

// Sizes of the fixed parts of the format (see the package doc).
const (
	DataHeaderSize  = 64
	BlockHeaderSize = 32
	IndexHeaderSize = 96
	IndexEntrySize  = 40
	// DefaultBlockSize: 4 MiB. Against versitygw on this project's machine
	// a GET costs ~3.5 ms before its first byte, so 1 MiB blocks read at
	// ~220-300 MB/s; 4 MiB blocks with read-ahead keep the server busy
	// (docs/storage.md). Larger GETs were measured too: fetching two
	// blocks in one 8 MiB GET made catch-up reads slower, the reader then
	// waiting for 8 MiB before it can use the first 4.
	DefaultBlockSize = 4 << 20
)

const (
	dataMagic  = "KPOD"
	blockMagic = "KPOB"
	indexMagic = "KPOI"
)

var (
	// ErrCorrupt: an object fails its magic, length or checksum checks.
	ErrCorrupt = errors.New("offload: corrupt object")
	// ErrNewerVersion: an object written by a newer format version.
	ErrNewerVersion = errors.New("offload: object written by a newer format version")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// UUID is an offload id: 16 random bytes.
type UUID [16]byte

// NewUUID returns a random (version 4) UUID.
func NewUUID() UUID {
	var u UUID
	if _, err := rand.Read(u[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

func (u UUID) String() string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ParseUUID parses the String form.
func ParseUUID(s string) (UUID, error) {
	var u UUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("offload: bad uuid %q", s)
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("offload: bad uuid %q", s)
	}
	return u, nil
}

// Keys returns the data and index object names of one offload attempt.
func Keys(prefix, name string, ledgerID int64, id UUID) (data, index string) {
	base := fmt.Sprintf("%s%s/%020d-%s", prefix, name, ledgerID, id)
	return base + ".data", base + ".index"
}

// ParseKey splits an object name made by Keys (after prefix and "<name>/")
// into the ledger id and the UUID; ok is false for any other name.
func ParseKey(base string) (ledgerID int64, id UUID, ok bool) {
	var rest string
	switch {
	case len(base) == 20+1+36+5 && base[len(base)-5:] == ".data":
		rest = base[:len(base)-5]
	case len(base) == 20+1+36+6 && base[len(base)-6:] == ".index":
		rest = base[:len(base)-6]
	default:
		return 0, id, false
	}
	if rest[20] != '-' {
		return 0, id, false
	}
	for _, c := range rest[:20] {
		if c < '0' || c > '9' {
			return 0, id, false
		}
		ledgerID = ledgerID*10 + int64(c-'0')
	}
	id, err := ParseUUID(rest[21:])
	return ledgerID, id, err == nil && ledgerID >= 0
}

// BlockInfo is one index entry.
type BlockInfo struct {
	FirstEntry  int64
	FirstIndex  int64
	MaxTsBefore int64
	Offset      int64
	Length      int64
}

// Index is a decoded index object.
type Index struct {
	LedgerID     int64
	FirstIndex   int64
	Entries      int64
	NextIndex    int64
	MaxTimestamp int64
	DataSize     int64
	DataCRC      uint32
	ID           UUID
	Blocks       []BlockInfo
}

// Builder encodes one ledger's records into a data object and an index
// object. Records must come in entry order from entry 0.
type Builder struct {
	ledgerID   int64
	firstIndex int64
	blockSize  int
	id         UUID

	data    []byte
	idx     Index
	block   []byte // current block payload
	bFirst  int64  // current block's first entry
	bIndex  int64  // and its first message index
	bTsPrev int64  // running max timestamp before the current block
	bCount  int
	runMax  int64
}

// NewBuilder starts the objects of ledger ledgerID (first message index
// firstIndex) for offload id. blockSize <= 0 means DefaultBlockSize.
func NewBuilder(ledgerID, firstIndex int64, id UUID, blockSize int) *Builder {
	if blockSize <= 0 {
		blockSize = DefaultBlockSize
	}
	b := &Builder{ledgerID: ledgerID, firstIndex: firstIndex, blockSize: blockSize, id: id}
	b.data = make([]byte, DataHeaderSize, DataHeaderSize+blockSize)
	b.idx = Index{LedgerID: ledgerID, FirstIndex: firstIndex, NextIndex: firstIndex, ID: id}
	return b
}

// Add appends the next record.
func (b *Builder) Add(r *segment.Record) error {
	if r.EntryID != b.idx.Entries {
		return fmt.Errorf("offload: entry %d added where %d expected", r.EntryID, b.idx.Entries)
	}
	if r.FirstIndex != b.idx.NextIndex {
		return fmt.Errorf("offload: entry %d has index %d where %d expected", r.EntryID, r.FirstIndex, b.idx.NextIndex)
	}
	if b.bCount > 0 && len(b.block)+r.EncodedSize() > b.blockSize {
		b.cut()
	}
	if b.bCount == 0 {
		b.bFirst, b.bIndex, b.bTsPrev = r.EntryID, r.FirstIndex, b.runMax
	}
	b.block = segment.AppendRecord(b.block, r)
	b.bCount++
	b.idx.Entries++
	b.idx.NextIndex = r.NextIndex()
	b.runMax = max(b.runMax, r.Timestamp())
	return nil
}

func (b *Builder) cut() {
	le := binary.LittleEndian
	off := int64(len(b.data))
	var h [BlockHeaderSize]byte
	copy(h[0:], blockMagic)
	le.PutUint32(h[4:], uint32(len(b.block)))
	le.PutUint64(h[8:], uint64(b.bFirst))
	le.PutUint32(h[16:], uint32(b.bCount))
	le.PutUint32(h[20:], crc(b.block))
	le.PutUint32(h[24:], crc(h[:24]))
	b.data = append(b.data, h[:]...)
	b.data = append(b.data, b.block...)
	b.idx.Blocks = append(b.idx.Blocks, BlockInfo{
		FirstEntry: b.bFirst, FirstIndex: b.bIndex, MaxTsBefore: b.bTsPrev,
		Offset: off, Length: int64(BlockHeaderSize + len(b.block)),
	})
	b.block, b.bCount = b.block[:0], 0
}

// Finish returns the data object, the index object and the decoded index.
func (b *Builder) Finish() (data, index []byte, idx Index) {
	if b.bCount > 0 {
		b.cut()
	}
	le := binary.LittleEndian
	h := b.data[:DataHeaderSize]
	copy(h[0:], dataMagic)
	le.PutUint16(h[4:], Version)
	le.PutUint64(h[8:], uint64(b.ledgerID))
	le.PutUint64(h[16:], uint64(b.firstIndex))
	le.PutUint64(h[24:], uint64(b.idx.Entries))
	le.PutUint64(h[32:], uint64(len(b.idx.Blocks)))
	le.PutUint32(h[40:], uint32(b.blockSize))
	copy(h[44:60], b.id[:])
	le.PutUint32(h[60:], crc(h[:60]))

	b.idx.MaxTimestamp = b.runMax
	b.idx.DataSize = int64(len(b.data))
	b.idx.DataCRC = crc(b.data)
	return b.data, EncodeIndex(&b.idx), b.idx
}

// EncodeIndex encodes an index object.
func EncodeIndex(idx *Index) []byte {
	le := binary.LittleEndian
	out := make([]byte, IndexHeaderSize, IndexHeaderSize+len(idx.Blocks)*IndexEntrySize+4)
	copy(out[0:], indexMagic)
	le.PutUint16(out[4:], Version)
	le.PutUint64(out[8:], uint64(idx.LedgerID))
	le.PutUint64(out[16:], uint64(idx.FirstIndex))
	le.PutUint64(out[24:], uint64(idx.Entries))
	le.PutUint64(out[32:], uint64(idx.NextIndex))
	le.PutUint64(out[40:], uint64(idx.MaxTimestamp))
	le.PutUint64(out[48:], uint64(idx.DataSize))
	le.PutUint32(out[56:], idx.DataCRC)
	le.PutUint32(out[60:], uint32(len(idx.Blocks)))
	copy(out[64:80], idx.ID[:])
	for _, bl := range idx.Blocks {
		var e [IndexEntrySize]byte
		le.PutUint64(e[0:], uint64(bl.FirstEntry))
		le.PutUint64(e[8:], uint64(bl.FirstIndex))
		le.PutUint64(e[16:], uint64(bl.MaxTsBefore))
		le.PutUint64(e[24:], uint64(bl.Offset))
		le.PutUint32(e[32:], uint32(bl.Length))
		out = append(out, e[:]...)
	}
	return le.AppendUint32(out, crc(out))
}

// DecodeIndex decodes and checks an index object.
func DecodeIndex(b []byte) (Index, error) {
	var idx Index
	le := binary.LittleEndian
	if len(b) < IndexHeaderSize+4 || string(b[0:4]) != indexMagic {
		return idx, fmt.Errorf("%w: not an index object", ErrCorrupt)
	}
	if v := le.Uint16(b[4:]); v > Version {
		return idx, fmt.Errorf("%w: version %d", ErrNewerVersion, v)
	}
	if crc(b[:len(b)-4]) != le.Uint32(b[len(b)-4:]) {
		return idx, fmt.Errorf("%w: index checksum mismatch", ErrCorrupt)
	}
	n := int(le.Uint32(b[60:]))
	if len(b) != IndexHeaderSize+n*IndexEntrySize+4 {
		return idx, fmt.Errorf("%w: index of %d bytes for %d blocks", ErrCorrupt, len(b), n)
	}
	idx = Index{
		LedgerID: int64(le.Uint64(b[8:])), FirstIndex: int64(le.Uint64(b[16:])), Entries: int64(le.Uint64(b[24:])),
		NextIndex: int64(le.Uint64(b[32:])), MaxTimestamp: int64(le.Uint64(b[40:])), DataSize: int64(le.Uint64(b[48:])),
		DataCRC: le.Uint32(b[56:]),
	}
	copy(idx.ID[:], b[64:80])
	idx.Blocks = make([]BlockInfo, n)
	prevEnd := int64(DataHeaderSize)
	for i := range idx.Blocks {
		e := b[IndexHeaderSize+i*IndexEntrySize:]
		bl := BlockInfo{
			FirstEntry: int64(le.Uint64(e[0:])), FirstIndex: int64(le.Uint64(e[8:])), MaxTsBefore: int64(le.Uint64(e[16:])),
			Offset: int64(le.Uint64(e[24:])), Length: int64(le.Uint32(e[32:])),
		}
		if bl.Offset != prevEnd || bl.Length < BlockHeaderSize || bl.Offset+bl.Length > idx.DataSize {
			return idx, fmt.Errorf("%w: block %d at %d+%d does not follow %d within %d", ErrCorrupt, i, bl.Offset, bl.Length, prevEnd, idx.DataSize)
		}
		if i > 0 && bl.FirstEntry <= idx.Blocks[i-1].FirstEntry {
			return idx, fmt.Errorf("%w: block %d entries out of order", ErrCorrupt, i)
		}
		prevEnd = bl.Offset + bl.Length
		idx.Blocks[i] = bl
	}
	if n > 0 && prevEnd != idx.DataSize {
		return idx, fmt.Errorf("%w: blocks end at %d, data object has %d bytes", ErrCorrupt, prevEnd, idx.DataSize)
	}
	return idx, nil
}

// DecodeBlock checks one block (header and payload, as the index locates
// it) and decodes its records; their Data alias b.
func DecodeBlock(b []byte, bl BlockInfo) ([]segment.Record, error) {
	le := binary.LittleEndian
	if int64(len(b)) != bl.Length || len(b) < BlockHeaderSize || string(b[0:4]) != blockMagic {
		return nil, fmt.Errorf("%w: no block at %d", ErrCorrupt, bl.Offset)
	}
	if crc(b[:24]) != le.Uint32(b[24:]) {
		return nil, fmt.Errorf("%w: block header checksum at %d", ErrCorrupt, bl.Offset)
	}
	payload := b[BlockHeaderSize:]
	if int(le.Uint32(b[4:])) != len(payload) || int64(le.Uint64(b[8:])) != bl.FirstEntry {
		return nil, fmt.Errorf("%w: block at %d disagrees with the index", ErrCorrupt, bl.Offset)
	}
	if crc(payload) != le.Uint32(b[20:]) {
		return nil, fmt.Errorf("%w: block payload checksum at %d", ErrCorrupt, bl.Offset)
	}
	n := int(le.Uint32(b[16:]))
	out := make([]segment.Record, 0, n)
	want := bl.FirstEntry
	for len(payload) > 0 {
		r, size, err := segment.DecodeVerifiedRecord(payload) // the payload CRC covered it
		if err != nil {
			return nil, fmt.Errorf("%w: block at %d: %w", ErrCorrupt, bl.Offset, err)
		}
		if r.EntryID != want {
			return nil, fmt.Errorf("%w: block at %d: entry %d where %d expected", ErrCorrupt, bl.Offset, r.EntryID, want)
		}
		out = append(out, r)
		payload = payload[size:]
		want++
	}
	if len(out) != n {
		return nil, fmt.Errorf("%w: block at %d holds %d entries, header says %d", ErrCorrupt, bl.Offset, len(out), n)
	}
	return out, nil
}

// blockOfEntry returns the block holding entry id.
func (idx *Index) blockOfEntry(id int64) int {
	return sort.Search(len(idx.Blocks), func(i int) bool { return idx.Blocks[i].FirstEntry > id }) - 1
}

// blockOfIndex returns the block holding message index.
func (idx *Index) blockOfIndex(index int64) int {
	return sort.Search(len(idx.Blocks), func(i int) bool { return idx.Blocks[i].FirstIndex > index }) - 1
}

// blockOfTime returns the block to scan for the first entry whose running
// max timestamp reaches t: after the last block all of whose predecessors
// are older than t.
func (idx *Index) blockOfTime(t int64) int {
	return max(0, sort.Search(len(idx.Blocks), func(i int) bool { return idx.Blocks[i].MaxTsBefore >= t })-1)
}
