package pulsar

// Wire format (Pulsar binary protocol):
//
//	frame   = [u32 totalSize][u32 commandSize][BaseCommand][payload?]
//	payload = [0x0e02][u32 size][BrokerEntryMetadata]      (optional, broker -> client)
//	          [0x0e01][u32 crc32c][u32 metadataSize][MessageMetadata][data]
//
// totalSize counts everything after itself. The CRC32C (Castagnoli) covers
// metadataSize through the end of data. Entries are stored from the 0x0e01
// magic onward exactly as the producer sent them, so the checksum a consumer
// verifies is the producer's.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

const (
	magicCRC32C        = 0x0e01
	magicBrokerEntry   = 0x0e02
	framePadding       = 10 << 10 // room for the command beside a maximal message
	minPayloadHdrBytes = 2 + 4 + 4
)

var (
	crcTable = crc32.MakeTable(crc32.Castagnoli)

	errFrameTooLarge = errors.New("pulsar: frame too large")
	errBadFrame      = errors.New("pulsar: malformed frame")
	errChecksum      = errors.New("pulsar: checksum mismatch")
)

// readFrame reads one frame body (after totalSize) into buf, reusing it when
// large enough. The size is checked against max before allocating.
func readFrame(r *bufio.Reader, max int, buf []byte) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	total := binary.BigEndian.Uint32(hdr[:])
	if total < 4 {
		return nil, fmt.Errorf("%w: total size %d", errBadFrame, total)
	}
	if uint64(total) > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes > %d", errFrameTooLarge, total, max)
	}
	if cap(buf) < int(total) {
		buf = make([]byte, total)
	}
	buf = buf[:total]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// parseFrame splits a frame body into its command and payload (which aliases body).
func parseFrame(body []byte) (*pb.BaseCommand, []byte, error) {
	if len(body) < 4 {
		return nil, nil, fmt.Errorf("%w: %d bytes", errBadFrame, len(body))
	}
	cmdSize := binary.BigEndian.Uint32(body)
	if uint64(cmdSize) > uint64(len(body)-4) {
		return nil, nil, fmt.Errorf("%w: command size %d > %d", errBadFrame, cmdSize, len(body)-4)
	}
	cmd := &pb.BaseCommand{}
	if err := proto.Unmarshal(body[4:4+cmdSize], cmd); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errBadFrame, err)
	}
	if cmd.Type == nil {
		return nil, nil, fmt.Errorf("%w: command without type", errBadFrame)
	}
	return cmd, body[4+cmdSize:], nil
}

// parsePayload validates a message payload and returns the bytes to store
// (from the 0x0e01 magic on) and the decoded MessageMetadata. A leading
// broker entry metadata section is skipped.
func parsePayload(p []byte) (stored []byte, md *pb.MessageMetadata, err error) {
	if len(p) >= 6 && binary.BigEndian.Uint16(p) == magicBrokerEntry {
		n := binary.BigEndian.Uint32(p[2:])
		if uint64(n) > uint64(len(p)-6) {
			return nil, nil, fmt.Errorf("%w: broker entry metadata size %d", errBadFrame, n)
		}
		p = p[6+n:]
	}
	md, _, err = parseStored(p)
	if err != nil {
		return nil, nil, err
	}
	if crc32.Checksum(p[6:], crcTable) != binary.BigEndian.Uint32(p[2:]) {
		return nil, nil, errChecksum
	}
	return p, md, nil
}

// parseStored decodes the MessageMetadata of stored bytes (magic onward)
// without verifying the checksum; it also returns the message data.
func parseStored(p []byte) (*pb.MessageMetadata, []byte, error) {
	if len(p) < minPayloadHdrBytes || binary.BigEndian.Uint16(p) != magicCRC32C {
		return nil, nil, fmt.Errorf("%w: payload without 0x0e01 magic", errBadFrame)
	}
	mdSize := binary.BigEndian.Uint32(p[6:])
	if uint64(mdSize) > uint64(len(p)-minPayloadHdrBytes) {
		return nil, nil, fmt.Errorf("%w: metadata size %d > %d", errBadFrame, mdSize, len(p)-minPayloadHdrBytes)
	}
	md := &pb.MessageMetadata{}
	if err := proto.Unmarshal(p[minPayloadHdrBytes:minPayloadHdrBytes+int(mdSize)], md); err != nil {
		return nil, nil, fmt.Errorf("%w: message metadata: %v", errBadFrame, err)
	}
	return md, p[minPayloadHdrBytes+int(mdSize):], nil
}

// appendFrame encodes cmd (and, for MESSAGE, the optional broker entry
// metadata and the stored bytes) as one frame appended to dst.
func appendFrame(dst []byte, cmd *pb.BaseCommand, bem *pb.BrokerEntryMetadata, stored []byte) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	var err error
	dst, err = proto.MarshalOptions{}.MarshalAppend(dst, cmd)
	if err != nil {
		return dst[:start], err
	}
	cmdSize := len(dst) - start - 8
	if bem != nil {
		dst = binary.BigEndian.AppendUint16(dst, magicBrokerEntry)
		at := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		dst, err = proto.MarshalOptions{}.MarshalAppend(dst, bem)
		if err != nil {
			return dst[:start], err
		}
		binary.BigEndian.PutUint32(dst[at:], uint32(len(dst)-at-4))
	}
	dst = append(dst, stored...)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	binary.BigEndian.PutUint32(dst[start+4:], uint32(cmdSize))
	return dst, nil
}

// encodeStored builds stored bytes (magic onward) for md and data; tests and
// the fuzz corpus use it.
func encodeStored(md *pb.MessageMetadata, data []byte) []byte {
	mdb, _ := proto.Marshal(md)
	out := make([]byte, minPayloadHdrBytes, minPayloadHdrBytes+len(mdb)+len(data))
	binary.BigEndian.PutUint16(out, magicCRC32C)
	binary.BigEndian.PutUint32(out[6:], uint32(len(mdb)))
	out = append(out, mdb...)
	out = append(out, data...)
	binary.BigEndian.PutUint32(out[2:], crc32.Checksum(out[6:], crcTable))
	return out
}
