// Package convert turns one stored batch of one protocol into one batch of
// the other, on read: a Pulsar-format entry into a Kafka RecordBatch v2 for
// Kafka fetches, a Kafka-format entry into a Pulsar batch payload (from the
// 0x0e01 magic onward) for Pulsar consumers. Both protocol handlers import
// it; it imports only the broker's entry type and the Pulsar wire types.
//
// The mapping (docs/interop.md has the full table and what applications see):
//
//	Kafka record               Pulsar message
//	key (nil = null)           partition_key (+ partition_key_b64_encoded when
//	                           not UTF-8) and ordering_key (raw bytes); no
//	                           partition key = null key
//	value                      payload; null value <-> null_value = true
//	timestamp, CreateTime      event_time (> 0); other values in property
//	                           __kafka_ts
//	batch LogAppendTime        publish_time (messages without event time)
//	headers, in order          properties, in order, each key once (clients
//	                           hold them in a map); UTF-8 key and value are
//	                           kept verbatim; the rest are named in the
//	                           reserved properties __kafka_b64 (value is
//	                           base64), __kafka_null (value is null) and
//	                           __kafka_b64key (key is base64); a repeated
//	                           key keeps its last value, the earlier ones
//	                           under __kafka_rep.<n>.<key>, the order in
//	                           __kafka_order (props.go)
//	header pulsar.ordering_key ordering_key when it differs from the key
//
// Conversions are pure functions of the entry (and the size limit): the
// same entry always converts to the same bytes. Output is uncompressed, as
// compressing again would cost more CPU than the bytes it saves, unless it
// exceeds the reader's limit (Append* maxBytes): a compressed batch can
// inflate far beyond what the reader accepts in one frame, so such output
// is LZ4-compressed (Kafka: LZ4 frame; Pulsar: raw LZ4 block).
//
// INVARIANT: a converted batch holds exactly Entry.MsgCount messages, so
// Kafka offsets (FirstIndex + i) and Pulsar batch indexes line up.
package convert
