package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestConsumerOffsetsListed: an all-topics Metadata lists Kafka's internal
// __consumer_offsets (as franz-go's regex consumers expect), flagged
// internal and with a topic ID stable across requests.
func TestConsumerOffsetsListed(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	cl := newKgo(t, s.addr)
	var ids [][16]byte
	for range 2 {
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = nil
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, rt := range resp.Topics {
			if rt.Topic != nil && *rt.Topic == "__consumer_offsets" {
				found = true
				if !rt.IsInternal || len(rt.Partitions) != 1 || rt.ErrorCode != 0 {
					t.Fatalf("internal topic: %+v", rt)
				}
				ids = append(ids, rt.TopicID)
			}
		}
		if !found {
			t.Fatal("__consumer_offsets not listed")
		}
	}
	if ids[0] != ids[1] || ids[0] == [16]byte{} {
		t.Fatalf("topic ids %x %x", ids[0], ids[1])
	}
}
