package convert

import (
	"errors"
	"fmt"
)

// Message is one record in the protocol-neutral form both directions go
// through.
type Message struct {
	Key         []byte // nil: no key
	OrderingKey []byte // nil: none (Pulsar orders by Key then)
	Value       []byte // nil: null value (Kafka tombstone)
	// Timestamp is the record's time (unix ms). LogAppend says it is the
	// broker's / publisher's time rather than the producer's event time.
	Timestamp int64
	LogAppend bool
	Headers   []Header
}

// Header is one Kafka header or Pulsar property. Keys may repeat.
type Header struct {
	Key   string
	Value []byte // nil: null (Kafka only)
}

// MaxBatchBytes bounds what a batch may inflate to when decompressed: a
// small compressed batch must not make the broker allocate gigabytes.
var MaxBatchBytes = 128 << 20

var (
	// ErrCorrupt is returned for a batch that cannot be decoded.
	ErrCorrupt = errors.New("convert: corrupt batch")
	// ErrUnsupported is returned for a batch that decodes but has no
	// faithful conversion (encrypted or chunked Pulsar messages).
	ErrUnsupported = errors.New("convert: unsupported batch")
)

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}
