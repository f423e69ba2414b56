package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// FormatVersion is the on-disk format this code writes and the newest it reads.
const FormatVersion = 1

// Sizes of the fixed parts of the format (see the package doc).
const (
	HeaderSize      = 40
	FrameHeadSize   = 8
	BodyFixedSize   = 56
	IndexHeaderSize = 24
	SlotSize        = 40
	// MaxRecordSize bounds a record body so that a corrupt length can never
	// make a reader allocate without limit.
	MaxRecordSize = 64 << 20
	// MaxProducerLen is the longest producer name a record holds.
	MaxProducerLen = 1<<16 - 1
)

const (
	logMagic     = "KPLG"
	idxMagic     = "KPIX"
	slotPoint    = 1
	slotTrailer  = 2
	maxDataBytes = MaxRecordSize - BodyFixedSize - MaxProducerLen
)

// Sentinel errors.
var (
	ErrCorrupt = errors.New("segment: corrupt data")
	// ErrNoHeader (with ErrCorrupt): the log file is shorter than its
	// header or the header is unreadable, what a crash leaves of a
	// segment made by CreateUnsynced before its first sync.
	ErrNoHeader     = errors.New("segment: no valid log header")
	ErrNewerVersion = errors.New("segment: file written by a newer format version")
	ErrClosed       = errors.New("segment: closed")
	ErrSealed       = errors.New("segment: sealed")
	ErrOutOfOrder   = errors.New("segment: record out of order")
	ErrTooLarge     = errors.New("segment: record too large")
	ErrFailed       = errors.New("segment: failed by an earlier I/O error")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Record is one entry as stored.
type Record struct {
	EntryID      int64
	FirstIndex   int64
	PublishTime  int64
	MaxEventTime int64
	SeqFirst     int64
	SeqLast      int64
	MsgCount     int32
	Format       uint8
	Producer     string
	Data         []byte

	buf *readBuf // the pooled read buffer Data points into, if any
}

// Release hands the record's read buffer back for reuse once every record
// read from it is released. Data must not be used afterwards. Optional: an
// unreleased buffer is garbage collected. Release at most once per record.
func (r *Record) Release() {
	if r.buf != nil {
		r.buf.release()
		r.buf = nil
	}
}

// Timestamp is the time used by find-by-time: event time if known, else publish time.
func (r *Record) Timestamp() int64 {
	if r.MaxEventTime > 0 {
		return r.MaxEventTime
	}
	return r.PublishTime
}

// NextIndex is the message index after the record's last message.
func (r *Record) NextIndex() int64 { return r.FirstIndex + int64(r.MsgCount) }

// EncodedSize is the number of log bytes the record takes.
func (r *Record) EncodedSize() int {
	return FrameHeadSize + BodyFixedSize + len(r.Producer) + len(r.Data)
}

// appendRecord appends r's framed encoding to b.
func appendRecord(b []byte, r *Record) []byte {
	start := len(b)
	bodyLen := BodyFixedSize + len(r.Producer) + len(r.Data)
	b = binary.LittleEndian.AppendUint32(b, uint32(bodyLen))
	b = binary.LittleEndian.AppendUint32(b, 0) // CRC, filled below
	b = binary.LittleEndian.AppendUint64(b, uint64(r.EntryID))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.FirstIndex))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.PublishTime))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.MaxEventTime))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.SeqFirst))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.SeqLast))
	b = binary.LittleEndian.AppendUint32(b, uint32(r.MsgCount))
	b = append(b, r.Format, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(r.Producer)))
	b = append(b, r.Producer...)
	b = append(b, r.Data...)
	binary.LittleEndian.PutUint32(b[start+4:], crc(b[start+FrameHeadSize:]))
	return b
}

// frameHead decodes the body length and CRC; ok is false for an impossible
// length (which includes the zeros of preallocation).
func frameHead(b []byte) (bodyLen int, sum uint32, ok bool) {
	n := binary.LittleEndian.Uint32(b)
	sum = binary.LittleEndian.Uint32(b[4:])
	if n < BodyFixedSize || n > MaxRecordSize {
		return 0, 0, false
	}
	return int(n), sum, true
}

// decodeFixed decodes the fixed body fields into r and returns the producer
// length. body must hold at least BodyFixedSize bytes.
func decodeFixed(body []byte, r *Record) (producerLen int) {
	le := binary.LittleEndian
	r.EntryID = int64(le.Uint64(body[0:]))
	r.FirstIndex = int64(le.Uint64(body[8:]))
	r.PublishTime = int64(le.Uint64(body[16:]))
	r.MaxEventTime = int64(le.Uint64(body[24:]))
	r.SeqFirst = int64(le.Uint64(body[32:]))
	r.SeqLast = int64(le.Uint64(body[40:]))
	r.MsgCount = int32(le.Uint32(body[48:]))
	r.Format = body[52]
	return int(le.Uint16(body[54:]))
}

// decodeBody decodes a whole body (CRC already checked by the caller). Data
// aliases body.
func decodeBody(body []byte, r *Record) error {
	pl := decodeFixed(body, r)
	if BodyFixedSize+pl > len(body) {
		return fmt.Errorf("%w: producer length %d beyond body %d", ErrCorrupt, pl, len(body))
	}
	if r.MsgCount < 1 {
		return fmt.Errorf("%w: message count %d", ErrCorrupt, r.MsgCount)
	}
	r.Producer = string(body[BodyFixedSize : BodyFixedSize+pl])
	r.Data = body[BodyFixedSize+pl:]
	return nil
}

// logHeader is the first HeaderSize bytes of a log file.
type logHeader struct {
	version    uint16
	ledgerID   int64
	firstIndex int64
	createdMs  int64
}

func (h logHeader) encode() []byte {
	b := make([]byte, HeaderSize)
	copy(b, logMagic)
	binary.LittleEndian.PutUint16(b[4:], h.version)
	binary.LittleEndian.PutUint64(b[8:], uint64(h.ledgerID))
	binary.LittleEndian.PutUint64(b[16:], uint64(h.firstIndex))
	binary.LittleEndian.PutUint64(b[24:], uint64(h.createdMs))
	binary.LittleEndian.PutUint32(b[32:], crc(b[:32]))
	return b
}

func decodeLogHeader(b []byte) (logHeader, error) {
	if len(b) < HeaderSize || string(b[:4]) != logMagic {
		return logHeader{}, fmt.Errorf("%w: %w: bad log header magic", ErrCorrupt, ErrNoHeader)
	}
	if crc(b[:32]) != binary.LittleEndian.Uint32(b[32:]) {
		return logHeader{}, fmt.Errorf("%w: %w: log header checksum", ErrCorrupt, ErrNoHeader)
	}
	h := logHeader{
		version:    binary.LittleEndian.Uint16(b[4:]),
		ledgerID:   int64(binary.LittleEndian.Uint64(b[8:])),
		firstIndex: int64(binary.LittleEndian.Uint64(b[16:])),
		createdMs:  int64(binary.LittleEndian.Uint64(b[24:])),
	}
	if h.version > FormatVersion {
		return logHeader{}, fmt.Errorf("%w: version %d > %d", ErrNewerVersion, h.version, FormatVersion)
	}
	return h, nil
}

func encodeIndexHeader(ledgerID int64) []byte {
	b := make([]byte, IndexHeaderSize)
	copy(b, idxMagic)
	binary.LittleEndian.PutUint16(b[4:], FormatVersion)
	binary.LittleEndian.PutUint64(b[8:], uint64(ledgerID))
	binary.LittleEndian.PutUint32(b[16:], crc(b[:16]))
	return b
}

func checkIndexHeader(b []byte, ledgerID int64) error {
	if len(b) < IndexHeaderSize || string(b[:4]) != idxMagic || crc(b[:16]) != binary.LittleEndian.Uint32(b[16:]) {
		return fmt.Errorf("%w: bad index header", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v > FormatVersion {
		return fmt.Errorf("%w: index version %d > %d", ErrNewerVersion, v, FormatVersion)
	}
	if id := int64(binary.LittleEndian.Uint64(b[8:])); id != ledgerID {
		return fmt.Errorf("%w: index of ledger %d, want %d", ErrCorrupt, id, ledgerID)
	}
	return nil
}

// Point is one sparse index point: the record of EntryID starts at Offset.
type Point struct {
	EntryID    int64
	FirstIndex int64
	// MaxTsBefore is the running maximum of the timestamps of the entries
	// before this one in the ledger (0 for the first).
	MaxTsBefore int64
	Offset      int64
}

// trailer is the seal record of an index file.
type trailer struct {
	entries   int64
	nextIndex int64
	maxTs     int64
	logSize   int64
}

func appendSlot(b []byte, kind byte, a, c, d, e int64) []byte {
	start := len(b)
	b = append(b, kind, 0, 0, 0, 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(a))
	b = binary.LittleEndian.AppendUint64(b, uint64(c))
	b = binary.LittleEndian.AppendUint64(b, uint64(d))
	b = binary.LittleEndian.AppendUint64(b, uint64(e))
	binary.LittleEndian.PutUint32(b[start+4:], crc(b[start+8:start+SlotSize]))
	return b
}

func appendPoint(b []byte, p Point) []byte {
	return appendSlot(b, slotPoint, p.EntryID, p.FirstIndex, p.MaxTsBefore, p.Offset)
}

func appendTrailer(b []byte, t trailer) []byte {
	return appendSlot(b, slotTrailer, t.entries, t.nextIndex, t.maxTs, t.logSize)
}

// decodeSlot returns the kind (0 if the slot is invalid) and its four fields.
func decodeSlot(b []byte) (kind byte, f [4]int64) {
	if len(b) < SlotSize || b[1]|b[2]|b[3] != 0 || (b[0] != slotPoint && b[0] != slotTrailer) {
		return 0, f
	}
	if crc(b[8:SlotSize]) != binary.LittleEndian.Uint32(b[4:]) {
		return 0, f
	}
	for i := range f {
		f[i] = int64(binary.LittleEndian.Uint64(b[8+8*i:]))
	}
	return b[0], f
}

// AppendRecord appends r's framed encoding (frame head with length and
// CRC32C, then the body) to b: the bytes a log file holds for r. Tiered
// storage keeps records in this same form inside its blocks.
func AppendRecord(b []byte, r *Record) []byte { return appendRecord(b, r) }

// DecodeRecord decodes the framed record at the start of b, verifying its
// length and CRC32C. The record's Producer is a copy, its Data aliases b.
// It returns the record and its encoded size.
func DecodeRecord(b []byte) (Record, int, error) { return decodeRecord(b, true) }

// DecodeVerifiedRecord is DecodeRecord without the record's own CRC check,
// for bytes whose integrity the caller has just verified as a whole (a
// block with its own CRC32C): one checksum pass instead of two.
func DecodeVerifiedRecord(b []byte) (Record, int, error) { return decodeRecord(b, false) }

func decodeRecord(b []byte, verify bool) (Record, int, error) {
	var r Record
	if len(b) < FrameHeadSize+BodyFixedSize {
		return r, 0, fmt.Errorf("%w: %d bytes are no record", ErrCorrupt, len(b))
	}
	bodyLen, sum, ok := frameHead(b)
	if !ok || FrameHeadSize+bodyLen > len(b) {
		return r, 0, fmt.Errorf("%w: bad record length", ErrCorrupt)
	}
	body := b[FrameHeadSize : FrameHeadSize+bodyLen]
	if verify && crc(body) != sum {
		return r, 0, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if err := decodeBody(body, &r); err != nil {
		return r, 0, err
	}
	return r, FrameHeadSize + bodyLen, nil
}
