package router

import (
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKafkaPartitionMatchesKafkaClients checks murmur2 against Kafka's own
// test vectors (UtilsTest.testMurmur2) and KafkaPartition against franz-go's
// default key partitioner on random keys of every tail length.
func TestKafkaPartitionMatchesKafkaClients(t *testing.T) {
	for key, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := int32(murmur2([]byte(key))); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", key, got, want)
		}
	}
	franz := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		key := make([]byte, i%37)
		for j := range key {
			key[j] = byte(r.Uint32())
		}
		n := 1 + i%17
		want := franz.Partition(&kgo.Record{Key: key}, n)
		if got := KafkaPartition(key, n); got != want {
			t.Fatalf("key %x, %d partitions: got %d, franz-go %d", key, n, got, want)
		}
	}
	if got := KafkaPartition([]byte("x"), 0); got != 0 {
		t.Fatalf("zero partitions: %d", got)
	}
}
