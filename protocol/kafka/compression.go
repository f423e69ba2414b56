package kafka

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// maxDecompressed bounds what one batch may inflate to when the handler
// must look inside it (ListOffsets by timestamp): a small compressed batch
// must not make the broker allocate gigabytes.
const maxDecompressed = 64 << 20

// Kafka's codec ids (record batch attributes, bits 0-2).
const (
	codecNone   = 0
	codecGzip   = 1
	codecSnappy = 2
	codecLz4    = 3
	codecZstd   = 4
)

// decompressRecords returns the uncompressed records section of a batch
// whose compressed payload is src: for reading inside a batch (ListOffsets
// by timestamp) and for recompressing it (recompress.go).
func decompressRecords(codec int16, src []byte) ([]byte, error) {
	var r io.Reader
	switch codec {
	case codecNone:
		return src, nil
	case codecGzip:
		zr, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %w", errCorruptBatch, err)
		}
		r = zr
	case codecSnappy:
		return decodeSnappy(src)
	case codecLz4:
		r = lz4.NewReader(bytes.NewReader(src))
	case codecZstd:
		zr, err := zstd.NewReader(bytes.NewReader(src), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxDecompressed))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %w", errCorruptBatch, err)
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("%w: codec %d", errCorruptBatch, codec)
	}
	out, err := io.ReadAll(io.LimitReader(r, maxDecompressed+1))
	if err != nil {
		return nil, fmt.Errorf("%w: codec %d: %w", errCorruptBatch, codec, err)
	}
	if len(out) > maxDecompressed {
		return nil, fmt.Errorf("%w: batch inflates beyond %d bytes", errCorruptBatch, maxDecompressed)
	}
	return out, nil
}

// xerialMagic starts the Java client's framed snappy ("xerial") format;
// other clients send a raw snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// decodeSnappy decodes raw or xerial-framed snappy, checking the declared
// sizes against maxDecompressed before allocating.
func decodeSnappy(src []byte) ([]byte, error) {
	total := 0
	if bytes.HasPrefix(src, xerialMagic) {
		// [magic 8][version 4][compat 4] then [int32 size][block]...
		for pos := 16; pos+4 <= len(src); {
			n := int(binary.BigEndian.Uint32(src[pos:]))
			pos += 4
			if n < 0 || pos+n > len(src) {
				return nil, fmt.Errorf("%w: snappy framing", errCorruptBatch)
			}
			l, err := s2.DecodedLen(src[pos : pos+n])
			if err != nil {
				return nil, fmt.Errorf("%w: snappy: %w", errCorruptBatch, err)
			}
			total += l
			pos += n
		}
	} else {
		l, err := s2.DecodedLen(src)
		if err != nil {
			return nil, fmt.Errorf("%w: snappy: %w", errCorruptBatch, err)
		}
		total = l
	}
	if total > maxDecompressed {
		return nil, fmt.Errorf("%w: batch inflates beyond %d bytes", errCorruptBatch, maxDecompressed)
	}
	out, err := xerial.Decode(src)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %w", errCorruptBatch, err)
	}
	return out, nil
}
