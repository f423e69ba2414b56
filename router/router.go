// Package router lets Pulsar producers place keyed messages on the partition
// a Kafka producer would choose, so that one key lives on one partition
// whichever protocol wrote it.
//
// Partitions are chosen by the client on both sides: Kafka's default
// partitioner hashes the key with murmur2, pulsar-client-go with its own
// hash (Java: murmur3 or JavaStringHash). The broker cannot move a message
// after the client picked its partition, so the fix belongs in the Pulsar
// client: pass KafkaPartition to pulsar-client-go's ProducerOptions.MessageRouter:
//
//	pulsar.ProducerOptions{Topic: t, MessageRouter: router.PulsarRouter}
//
// Kafka producers need nothing: keyed records already use murmur2.
package router

// KafkaPartition is the partition Kafka's default partitioner (and franz-go's,
// sarama's hash partitioner with murmur2, librdkafka's murmur2_random) gives a
// non-null key among n partitions: toPositive(murmur2(key)) % n.
func KafkaPartition(key []byte, n int) int {
	if n <= 0 {
		return 0
	}
	return int(murmur2(key)&0x7fffffff) % n
}

// murmur2 is Kafka's 32-bit murmur2 (org.apache.kafka.common.utils.Utils.murmur2).
func murmur2(data []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	h := uint32(seed) ^ uint32(len(data))
	for len(data) >= 4 {
		k := uint32(data[0]) | uint32(data[1])<<8 | uint32(data[2])<<16 | uint32(data[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		data = data[4:]
	}
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
