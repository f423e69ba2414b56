package kafka

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// RecordBatch v2 layout (KIP-98), the only format stored from Kafka:
//
//	0  baseOffset int64       rewritten on fetch (not under the CRC)
//	8  batchLength int32      bytes after this field
//	12 partitionLeaderEpoch   rewritten on fetch (not under the CRC)
//	16 magic int8             2
//	17 crc uint32             CRC-32C of attributes..end
//	21 attributes int16       bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control
//	23 lastOffsetDelta int32
//	27 baseTimestamp int64
//	35 maxTimestamp int64
//	43 producerId int64
//	51 producerEpoch int16
//	53 baseSequence int32
//	57 recordCount int32
//	61 records...
const (
	batchHeaderSize   = 61
	attrCodecMask     = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// batchHeader is what the handler needs from a RecordBatch header.
type batchHeader struct {
	length          int32 // whole batch, including baseOffset and batchLength
	magic           int8
	attributes      int16
	lastOffsetDelta int32
	baseTimestamp   int64
	maxTimestamp    int64
	producerID      int64
	producerEpoch   int16
	baseSequence    int32
	recordCount     int32
}

// parseBatchHeader reads the header of the batch at the start of b without
// validating it beyond its length.
func parseBatchHeader(b []byte) (batchHeader, error) {
	var h batchHeader
	if len(b) < 17 {
		return h, fmt.Errorf("%w: %d bytes", errCorruptBatch, len(b))
	}
	h.length = int32(binary.BigEndian.Uint32(b[8:])) + 12
	h.magic = int8(b[16])
	if h.magic != 2 {
		return h, fmt.Errorf("%w: magic %d", errUnsupportedMagic, h.magic)
	}
	if len(b) < batchHeaderSize || h.length < batchHeaderSize {
		return h, fmt.Errorf("%w: %d byte batch", errCorruptBatch, h.length)
	}
	h.attributes = int16(binary.BigEndian.Uint16(b[21:]))
	h.lastOffsetDelta = int32(binary.BigEndian.Uint32(b[23:]))
	h.baseTimestamp = int64(binary.BigEndian.Uint64(b[27:]))
	h.maxTimestamp = int64(binary.BigEndian.Uint64(b[35:]))
	h.producerID = int64(binary.BigEndian.Uint64(b[43:]))
	h.producerEpoch = int16(binary.BigEndian.Uint16(b[51:]))
	h.baseSequence = int32(binary.BigEndian.Uint32(b[53:]))
	h.recordCount = int32(binary.BigEndian.Uint32(b[57:]))
	return h, nil
}

// validateProduced checks that records is exactly one well-formed v2 batch,
// as Kafka requires of Produce v3+, and returns its header. Compressed
// batches are not decompressed: they are stored as produced.
func validateProduced(records []byte) (batchHeader, error) {
	h, err := parseBatchHeader(records)
	if err != nil {
		return h, err
	}
	if int(h.length) != len(records) {
		return h, fmt.Errorf("%w: batch length %d, %d bytes sent (exactly one batch per partition)", errCorruptBatch, h.length, len(records))
	}
	if crc := binary.BigEndian.Uint32(records[17:]); crc != crc32.Checksum(records[21:], castagnoli) {
		return h, fmt.Errorf("%w: CRC mismatch", errCorruptBatch)
	}
	if h.recordCount < 1 || h.lastOffsetDelta != h.recordCount-1 {
		return h, fmt.Errorf("%w: %d records with last offset delta %d", errInvalidRecord, h.recordCount, h.lastOffsetDelta)
	}
	if h.attributes&attrCodecMask > 4 {
		return h, fmt.Errorf("%w: unknown compression codec %d", errCorruptBatch, h.attributes&attrCodecMask)
	}
	if h.attributes&attrControl != 0 {
		return h, fmt.Errorf("%w: producers may not send control batches", errInvalidRecord)
	}
	if h.attributes&attrTransactional != 0 && h.producerID < 0 {
		return h, fmt.Errorf("%w: a transactional batch without a producer id", errInvalidRecord)
	}
	if h.attributes&attrLogAppendTime != 0 {
		return h, fmt.Errorf("%w: producers may not set log-append time", errInvalidTimestamp)
	}
	return h, nil
}
