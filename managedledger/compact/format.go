package compact

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/kopernik-io/kopernik/managedledger"
)

// FormatVersion is the view file format this package writes; a newer one is
// refused.
const FormatVersion = 1

const (
	headerSize    = 24
	frameHeadSize = 8
	bodyFixedSize = 48
	// maxBodySize bounds a frame body: an entry is at most a segment record.
	maxBodySize = 64 << 20
)

var (
	magic      = [4]byte{'K', 'P', 'C', 'V'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

func fileName(gen int64) string { return fmt.Sprintf("%020d.cpv", gen) }

func encodeHeader(gen int64) []byte {
	b := make([]byte, headerSize)
	copy(b, magic[:])
	binary.LittleEndian.PutUint16(b[4:], FormatVersion)
	binary.LittleEndian.PutUint64(b[8:], uint64(gen))
	binary.LittleEndian.PutUint32(b[16:], crc(b[:16]))
	return b
}

func checkHeader(b []byte, gen int64) error {
	if len(b) < headerSize || [4]byte(b[:4]) != magic || binary.LittleEndian.Uint32(b[16:]) != crc(b[:16]) {
		return fmt.Errorf("%w: bad view file header", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v > FormatVersion {
		return fmt.Errorf("%w: view format %d", ErrNewerVersion, v)
	}
	if g := int64(binary.LittleEndian.Uint64(b[8:])); g != gen {
		return fmt.Errorf("%w: view file of generation %d, want %d", ErrCorrupt, g, gen)
	}
	return nil
}

// appendFrame appends e's frame to b.
func appendFrame(b []byte, e *managedledger.Entry) []byte {
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, uint32(bodyFixedSize+len(e.Data)))
	b = binary.LittleEndian.AppendUint32(b, 0) // CRC, below
	body := len(b)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.FirstIndex))
	b = binary.LittleEndian.AppendUint64(b, uint64(e.Position.LedgerID))
	b = binary.LittleEndian.AppendUint64(b, uint64(e.Position.EntryID))
	b = binary.LittleEndian.AppendUint64(b, uint64(e.PublishTime))
	b = binary.LittleEndian.AppendUint64(b, uint64(e.MaxEventTime))
	b = binary.LittleEndian.AppendUint32(b, uint32(e.MsgCount))
	b = append(b, byte(e.Format), 0, 0, 0)
	b = append(b, e.Data...)
	binary.LittleEndian.PutUint32(b[start+4:], crc(b[body:]))
	return b
}

// decodeBody decodes a frame body (its CRC already checked). Data aliases body.
func decodeBody(body []byte) (managedledger.Entry, error) {
	if len(body) < bodyFixedSize {
		return managedledger.Entry{}, fmt.Errorf("%w: short frame", ErrCorrupt)
	}
	le := binary.LittleEndian
	e := managedledger.Entry{
		FirstIndex:   int64(le.Uint64(body)),
		Position:     managedledger.Position{LedgerID: int64(le.Uint64(body[8:])), EntryID: int64(le.Uint64(body[16:]))},
		PublishTime:  int64(le.Uint64(body[24:])),
		MaxEventTime: int64(le.Uint64(body[32:])),
		MsgCount:     int32(le.Uint32(body[40:])),
		Format:       managedledger.Format(body[44]),
		Data:         body[bodyFixedSize:],
	}
	if e.MsgCount < 1 || e.FirstIndex < 0 {
		return managedledger.Entry{}, fmt.Errorf("%w: frame at index %d spans %d", ErrCorrupt, e.FirstIndex, e.MsgCount)
	}
	return e, nil
}
