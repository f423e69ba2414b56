package kafka

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Kafka's compression.type values and their codec ids; "producer" keeps a
// batch as produced.
var compressionCodecs = map[string]int16{
	"uncompressed": codecNone, "gzip": codecGzip, "snappy": codecSnappy, "lz4": codecLz4, "zstd": codecZstd,
}

// recompress returns the produced batch (validated, header bh) in the
// codec compression.type asks for, as Kafka's broker does on append when
// the topic's compression.type is not "producer" and differs from the
// batch's: the records section is decompressed and compressed again, the
// attributes' codec bits, the batch length and the CRC rewritten. Offsets,
// timestamps, producer id/epoch/sequence and every record stay as they
// were. A batch already in the asked codec is returned as it is.
func recompress(batch []byte, bh batchHeader, compressionType string) ([]byte, error) {
	target, ok := compressionCodecs[compressionType]
	if !ok { // "producer" (or unset)
		return batch, nil
	}
	codec := bh.attributes & attrCodecMask
	if codec == target || bh.attributes&attrControl != 0 {
		return batch, nil
	}
	plain, err := decompressRecords(codec, batch[batchHeaderSize:bh.length])
	if err != nil {
		return nil, err
	}
	body, err := compressRecords(target, plain)
	if err != nil {
		return nil, fmt.Errorf("kafka: recompressing to %s: %w", compressionType, err)
	}
	out := make([]byte, 0, batchHeaderSize+len(body))
	out = append(out, batch[:batchHeaderSize]...)
	out = append(out, body...)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint16(out[21:], uint16(bh.attributes&^attrCodecMask|target))
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], castagnoli))
	return out, nil
}

var zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
})

// compressRecords compresses a records section in codec, in the framing
// Kafka's clients read: gzip, xerial-framed snappy (what the Java client
// writes; every client reads it), the LZ4 frame format, zstd frames.
func compressRecords(codec int16, plain []byte) ([]byte, error) {
	switch codec {
	case codecNone:
		return plain, nil
	case codecGzip:
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		if _, err := w.Write(plain); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case codecSnappy:
		return xerial.Encode(nil, plain), nil
	case codecLz4:
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		if _, err := w.Write(plain); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case codecZstd:
		enc, err := zstdEncoder()
		if err != nil {
			return nil, err
		}
		return enc.EncodeAll(plain, nil), nil
	}
	return nil, fmt.Errorf("codec %d", codec)
}
