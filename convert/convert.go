package convert

import (
	"encoding/binary"
	"fmt"

	"github.com/kopernik-io/kopernik/broker"
)

// KafkaProducerName is the Pulsar producer_name of messages converted from
// Kafka entries stored without a producer identity.
const KafkaProducerName = "kafka"

// PulsarToKafka converts a Pulsar-format entry into one uncompressed Kafka
// RecordBatch v2 with base offset e.FirstIndex: one record per message, at
// consecutive offsets.
func PulsarToKafka(e *broker.Entry) ([]byte, error) {
	return AppendPulsarToKafka(nil, e, 0)
}

// AppendPulsarToKafka is PulsarToKafka appending to dst. A batch larger
// than maxBytes (> 0) is LZ4-compressed if that makes it smaller: compressed
// entries may inflate far beyond what readers expect of one batch. On error
// dst is returned unchanged.
func AppendPulsarToKafka(dst []byte, e *broker.Entry, maxBytes int) ([]byte, error) {
	msgs, err := decodePulsar(e.Data)
	if err != nil {
		return dst, err
	}
	if len(msgs) != int(max(e.MsgCount, 1)) {
		return dst, fmt.Errorf("%w: entry of %d messages holds %d", ErrCorrupt, e.MsgCount, len(msgs))
	}
	start := len(dst)
	dst = appendKafka(dst, e.FirstIndex, msgs)
	if maxBytes > 0 && len(dst)-start > maxBytes {
		dst = compressKafka(dst, start)
	}
	return dst, nil
}

// KafkaToPulsar converts a Kafka-format entry (a v2 batch of any codec)
// into one uncompressed Pulsar batch payload, from the 0x0e01 magic onward:
// num_messages_in_batch = the record count, one SingleMessageMetadata per
// record. producer_name is the entry's producer (KafkaProducerName if none),
// sequence_id its first index, publish_time its broker publish time.
func KafkaToPulsar(e *broker.Entry) ([]byte, error) {
	return AppendKafkaToPulsar(nil, e, 0)
}

// AppendKafkaToPulsar is KafkaToPulsar appending to dst. A payload larger
// than maxBytes (> 0) is LZ4-compressed if that makes it smaller: Pulsar
// clients drop the connection on a frame beyond their max message size, and
// a compressed Kafka batch may inflate far beyond it. On error dst is
// returned unchanged.
func AppendKafkaToPulsar(dst []byte, e *broker.Entry, maxBytes int) ([]byte, error) {
	out, _, err := appendKafkaToPulsar(dst, e, maxBytes, false)
	return out, err
}

// AppendKafkaToPulsarSpan is AppendKafkaToPulsar keeping a compacted
// batch's span (managedledger/compact: MsgCount offsets, fewer records, a
// gap where records went): the Pulsar batch then has MsgCount messages,
// each kept record at its own batch index (its offset - FirstIndex), an
// empty placeholder in every gap, and present is the batch's ack set (bit
// i set: message i is there; Pulsar clients skip messages whose bit is
// clear, as for a batch partly acknowledged). A client that numbers a
// batch's messages from the entry's broker-entry-metadata index (its last
// index) then gets each kept message's exact index and the message id of
// the raw record. present is nil for a batch without gaps.
func AppendKafkaToPulsarSpan(dst []byte, e *broker.Entry, maxBytes int) (out []byte, present []uint64, err error) {
	return appendKafkaToPulsar(dst, e, maxBytes, true)
}

func appendKafkaToPulsar(dst []byte, e *broker.Entry, maxBytes int, span bool) ([]byte, []uint64, error) {
	msgs, deltas, err := decodeKafkaDeltas(e.Data, span)
	if err != nil {
		return dst, nil, err
	}
	// A compacted batch (managedledger/compact) keeps its span of MsgCount
	// offsets and fewer records: they become a batch of those records, or
	// (span) of MsgCount messages with placeholders in the gaps.
	compacted := len(msgs) < int(e.MsgCount) && int64(int32(binary.BigEndian.Uint32(e.Data[23:])))+1 == int64(e.MsgCount)
	if len(msgs) != int(max(e.MsgCount, 1)) && !compacted {
		return dst, nil, fmt.Errorf("%w: entry of %d messages holds %d", ErrCorrupt, e.MsgCount, len(msgs))
	}
	var present []uint64
	if compacted && span {
		full := make([]Message, e.MsgCount)
		present = make([]uint64, (e.MsgCount+63)/64)
		prev := int64(-1)
		for i, d := range deltas {
			if d <= prev || d >= int64(e.MsgCount) {
				return dst, nil, fmt.Errorf("%w: compacted batch record offset delta %d after %d (span %d)", ErrCorrupt, d, prev, e.MsgCount)
			}
			full[d] = msgs[i]
			present[d/64] |= 1 << (d % 64)
			prev = d
		}
		for i := range full {
			if present[i/64]&(1<<(i%64)) == 0 {
				// Skipped by the client; its times keep the batch's
				// publish-time derivation (appendPulsar) as it was.
				full[i] = Message{Value: []byte{}, Timestamp: msgs[0].Timestamp, LogAppend: msgs[0].LogAppend}
			}
		}
		msgs = full
	}
	producer := e.Producer
	if producer == "" {
		producer = KafkaProducerName
	}
	start := len(dst)
	dst, err = appendPulsar(dst, msgs, producer, uint64(max(e.FirstIndex, 0)), e.PublishTime)
	if err == nil && maxBytes > 0 && len(dst)-start > maxBytes {
		dst, err = compressPulsar(dst, start)
	}
	return dst, present, err
}

// KafkaKey returns the key of the first record of a Kafka-format entry (nil
// if none or undecodable): the routing key of the whole entry for Pulsar
// Key_Shared subscriptions, which dispatch entries, not records.
func KafkaKey(e *broker.Entry) []byte {
	msgs, err := decodeKafka(e.Data)
	if err != nil || len(msgs) == 0 {
		return nil
	}
	return msgs[0].Key
}

// KafkaHeaderOK reports whether a Kafka-format entry starts with a
// plausible v2 batch header (magic 2, length within the data): a cheap
// check before committing a reader to an entry that will not convert.
func KafkaHeaderOK(e *broker.Entry) bool {
	b := e.Data
	if len(b) < kafkaHeaderSize || b[16] != 2 {
		return false
	}
	l := int64(binary.BigEndian.Uint32(b[8:])) + 12
	return l >= kafkaHeaderSize && l <= int64(len(b))
}
