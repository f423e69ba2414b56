package router

import (
	"sync/atomic"

	"github.com/apache/pulsar-client-go/pulsar"
)

var roundRobin atomic.Uint32

// PulsarRouter is a pulsar-client-go MessageRouter: keyed messages go to
// KafkaPartition(key), unkeyed ones round-robin. Use it on topics that
// Kafka producers write too, so that each key stays on one partition.
func PulsarRouter(msg *pulsar.ProducerMessage, tm pulsar.TopicMetadata) int {
	n := int(tm.NumPartitions())
	if msg.Key == "" {
		return int(roundRobin.Add(1)) % max(n, 1)
	}
	return KafkaPartition([]byte(msg.Key), n)
}
