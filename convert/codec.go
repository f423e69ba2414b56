package convert

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// Kafka codec ids (batch attributes, bits 0-2).
const (
	kafkaNone   = 0
	kafkaGzip   = 1
	kafkaSnappy = 2
	kafkaLz4    = 3
	kafkaZstd   = 4
)

var zstdDec = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(uint64(MaxBatchBytes)))
})

// readAllBounded reads r to the end, failing beyond MaxBatchBytes.
func readAllBounded(r io.Reader) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, int64(MaxBatchBytes)+1))
	if err != nil {
		return nil, corrupt("decompress: %v", err)
	}
	if len(out) > MaxBatchBytes {
		return nil, corrupt("batch inflates beyond %d bytes", MaxBatchBytes)
	}
	return out, nil
}

// decompressKafka returns the records section of a batch whose (possibly
// compressed) records are src.
func decompressKafka(codec int, src []byte) ([]byte, error) {
	switch codec {
	case kafkaNone:
		return src, nil
	case kafkaGzip:
		zr, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, corrupt("gzip: %v", err)
		}
		return readAllBounded(zr)
	case kafkaSnappy:
		// Raw snappy block, or the Java client's xerial framing of blocks
		// ([magic 8][version 4][compat 4] then [int32 size][block]...).
		// Declared sizes are checked before anything is allocated.
		total := 0
		if bytes.HasPrefix(src, xerialMagic) {
			for pos := 16; pos < len(src); {
				if pos+4 > len(src) {
					return nil, corrupt("snappy framing")
				}
				n := int(binary.BigEndian.Uint32(src[pos:]))
				pos += 4
				if n < 0 || n > len(src)-pos {
					return nil, corrupt("snappy framing")
				}
				l, err := s2.DecodedLen(src[pos : pos+n])
				if err != nil {
					return nil, corrupt("snappy: %v", err)
				}
				total += l
				pos += n
			}
		} else {
			l, err := s2.DecodedLen(src)
			if err != nil {
				return nil, corrupt("snappy: %v", err)
			}
			total = l
		}
		if total > MaxBatchBytes {
			return nil, corrupt("batch inflates beyond %d bytes", MaxBatchBytes)
		}
		out, err := xerial.Decode(src)
		if err != nil {
			return nil, corrupt("snappy: %v", err)
		}
		return out, nil
	case kafkaLz4:
		return readAllBounded(lz4.NewReader(bytes.NewReader(src)))
	case kafkaZstd:
		d, err := zstdDec()
		if err != nil {
			return nil, err
		}
		out, err := d.DecodeAll(src, nil)
		if err != nil {
			return nil, corrupt("zstd: %v", err)
		}
		if len(out) > MaxBatchBytes {
			return nil, corrupt("batch inflates beyond %d bytes", MaxBatchBytes)
		}
		return out, nil
	}
	return nil, corrupt("kafka codec %d", codec)
}

var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// decompressPulsar inflates a Pulsar payload whose uncompressed size is
// known from its metadata.
func decompressPulsar(codec pb.CompressionType, size uint32, src []byte) ([]byte, error) {
	if codec == pb.CompressionType_NONE {
		return src, nil
	}
	if int64(size) > int64(MaxBatchBytes) {
		return nil, corrupt("pulsar payload inflates to %d bytes", size)
	}
	var out []byte
	switch codec {
	case pb.CompressionType_LZ4:
		// A raw LZ4 block (no frame); its size comes from the metadata.
		out = make([]byte, size)
		n, err := lz4.UncompressBlock(src, out)
		if err != nil {
			return nil, corrupt("lz4: %v", err)
		}
		out = out[:n]
	case pb.CompressionType_ZLIB:
		zr, err := zlib.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, corrupt("zlib: %v", err)
		}
		if out, err = readAllBounded(zr); err != nil {
			return nil, err
		}
	case pb.CompressionType_ZSTD:
		d, err := zstdDec()
		if err != nil {
			return nil, err
		}
		if out, err = d.DecodeAll(src, make([]byte, 0, size)); err != nil {
			return nil, corrupt("zstd: %v", err)
		}
	case pb.CompressionType_SNAPPY:
		n, err := s2.DecodedLen(src)
		if err != nil || n > MaxBatchBytes {
			return nil, corrupt("snappy: %d bytes, %v", n, err)
		}
		if out, err = s2.Decode(nil, src); err != nil {
			return nil, corrupt("snappy: %v", err)
		}
	default:
		return nil, corrupt("pulsar codec %d", codec)
	}
	if len(out) != int(size) {
		return nil, corrupt("pulsar payload inflated to %d bytes, metadata says %d", len(out), size)
	}
	return out, nil
}

// compressKafka LZ4-compresses (frame format, as Kafka requires) the
// records of the uncompressed batch at b[start:], if that makes it smaller.
func compressKafka(b []byte, start int) []byte {
	recs := b[start+kafkaHeaderSize:]
	var buf bytes.Buffer
	buf.Grow(len(recs) / 2)
	w := lz4.NewWriter(&buf)
	if _, err := w.Write(recs); err != nil || w.Close() != nil || buf.Len() >= len(recs) {
		return b
	}
	b = append(b[:start+kafkaHeaderSize], buf.Bytes()...)
	binary.BigEndian.PutUint32(b[start+8:], uint32(len(b)-start-12))
	attrs := binary.BigEndian.Uint16(b[start+21:])
	binary.BigEndian.PutUint16(b[start+21:], attrs|kafkaLz4)
	binary.BigEndian.PutUint32(b[start+17:], crc32.Checksum(b[start+21:], castagnoli))
	return b
}

// compressPulsar LZ4-compresses (one raw block, as Pulsar clients expect)
// the uncompressed payload at b[start:], if that makes it smaller.
func compressPulsar(b []byte, start int) ([]byte, error) {
	mdEnd := start + pulsarHdrSize + int(binary.BigEndian.Uint32(b[start+6:]))
	md := &pb.MessageMetadata{}
	if err := proto.Unmarshal(b[start+pulsarHdrSize:mdEnd], md); err != nil {
		return b, err
	}
	body := b[mdEnd:]
	comp := make([]byte, lz4.CompressBlockBound(len(body)))
	n, err := lz4.CompressBlock(body, comp, nil)
	if err != nil || n == 0 || n >= len(body) {
		return b, nil // incompressible: keep it as it is
	}
	md.Compression = pb.CompressionType_LZ4.Enum()
	md.UncompressedSize = proto.Uint32(uint32(len(body)))
	b = binary.BigEndian.AppendUint16(b[:start], pulsarMagic)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	if b, err = (proto.MarshalOptions{}).MarshalAppend(b, md); err != nil {
		return b[:start], err
	}
	binary.BigEndian.PutUint32(b[start+6:], uint32(len(b)-start-pulsarHdrSize))
	b = append(b, comp[:n]...)
	binary.BigEndian.PutUint32(b[start+2:], crc32.Checksum(b[start+6:], castagnoli))
	return b, nil
}
