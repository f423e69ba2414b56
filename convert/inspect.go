package convert

import (
	"fmt"

	"github.com/kopernik-io/kopernik/broker"
)

// Inspected is one message of a stored entry as each protocol's clients
// see it: the Kafka record a fetch returns and the Pulsar message a
// consumer receives, after the same conversion the read paths apply.
type Inspected struct {
	// Offset is the message index (the Kafka offset).
	Offset int64
	// Kafka is the record as a Kafka fetch returns it.
	Kafka Message
	// Pulsar is the message as a Pulsar consumer receives it.
	Pulsar PulsarMessage
}

// PulsarMessage is a message in Pulsar's words.
type PulsarMessage struct {
	// LedgerID, EntryID and BatchIndex make the MessageId.
	LedgerID, EntryID int64
	BatchIndex        int32
	// Key is the partition key as sent (base64 text when KeyB64).
	Key         string
	HasKey      bool
	KeyB64      bool
	OrderingKey []byte
	// Properties are the message's properties in wire order (reserved
	// __kafka_* ones included: they are what a Pulsar client sees).
	Properties   []Header
	EventTime    int64 // unix ms, 0: none
	PublishTime  int64 // unix ms
	ProducerName string
	SequenceID   uint64
	NullValue    bool
	Payload      []byte
}

// Inspect returns the messages of one entry in both views. Entries of
// either format are converted as the read paths convert them (maxBytes as
// AppendKafkaToPulsar's); the result aliases e.Data or fresh buffers.
func Inspect(e *broker.Entry, maxBytes int) ([]Inspected, error) {
	var kafka []Message
	var pulsarBytes []byte
	var err error
	if e.Format == broker.FormatPulsar {
		pulsarBytes = e.Data
		kafka, err = decodePulsar(e.Data)
	} else {
		if kafka, err = decodeKafka(e.Data); err == nil {
			pulsarBytes, err = AppendKafkaToPulsar(nil, e, maxBytes)
		}
	}
	if err != nil {
		return nil, err
	}
	out := make([]Inspected, 0, len(kafka))
	md, err := walkPulsar(pulsarBytes, func(int32) {}, func(s single, value []byte, publish int64) {
		pm := PulsarMessage{
			LedgerID: e.Position.LedgerID, EntryID: e.Position.EntryID, BatchIndex: int32(len(out)),
			Key: string(s.key), HasKey: s.key != nil, KeyB64: s.keyB64, OrderingKey: s.orderingKey,
			EventTime: int64(s.eventTime), PublishTime: publish, NullValue: s.null, Payload: value,
		}
		for _, kv := range s.props {
			pm.Properties = append(pm.Properties, Header{Key: string(kv.k), Value: kv.v})
		}
		out = append(out, Inspected{Offset: e.FirstIndex + int64(len(out)), Pulsar: pm})
	})
	if err != nil {
		return nil, err
	}
	if len(out) != len(kafka) {
		return nil, fmt.Errorf("%w: %d Kafka records but %d Pulsar messages", ErrCorrupt, len(kafka), len(out))
	}
	batched := md.NumMessagesInBatch != nil
	for i := range out {
		out[i].Kafka = kafka[i]
		out[i].Pulsar.ProducerName, out[i].Pulsar.SequenceID = md.GetProducerName(), md.GetSequenceId()
		if !batched {
			out[i].Pulsar.BatchIndex = -1
		}
	}
	return out, nil
}

// KafkaBatch encodes msgs as one uncompressed Kafka RecordBatch v2 with
// base offset 0 and CreateTime timestamps, as a Kafka producer sends it
// (the broker assigns the offsets on append).
func KafkaBatch(msgs []Message) []byte { return appendKafka(nil, 0, msgs) }
