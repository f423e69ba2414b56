package server

import (
	"context"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/segment"
	"github.com/kopernik-io/kopernik/verify"
)

// TestVerifyCompacted runs the verify workload on a compacted topic (keyed
// records of both protocols' producers, the broker's compaction pass every
// 200 ms while Kafka groups, Kafka readers and Pulsar subscriptions
// consume, then a manual compaction of every partition through the admin
// API and the final readers: Kafka, and Pulsar readCompacted). The
// compacted checker must find no key's latest value lost, no kept offset
// changed, no skip over a kept record.
func TestVerifyCompacted(t *testing.T) {
	s := startStorageServer(t, t.TempDir(), segment.OSFS{}, "compaction-interval", "200ms")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := verify.Run(ctx, verify.Config{
		KafkaAddr: s.Addr("kafka").String(), PulsarAddr: s.Addr("pulsar").String(), HTTPAddr: s.Addr("http").String(),
		Topic: "compacted", Partitions: 2, Duration: 4 * time.Second, Rate: 1500, ValueBytes: 256,
		KafkaProducers: 1, PulsarProducers: 1, Compacted: true, Keys: 40,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := verify.Check(h, verify.Options{Compacted: true})
	perSession := map[string]int{}
	for _, e := range h.Events {
		perSession[e.Session] += len(e.Records)
	}
	t.Logf("records read per session: %v", perSession)
	if !r.Valid {
		t.Fatalf("anomalies: %+v", r.Anomalies)
	}
	// The final readers got the compacted view: one value per key and
	// partition (Kafka and Pulsar readers read the same values).
	if r.FinalRead == 0 || r.FinalRead > 2*40 {
		t.Fatalf("final readers read %d values of %d keys x 2 partitions: %+v", r.FinalRead, 40, r)
	}
	t.Logf("writes %d, acked %d, read %d (final %d), superseded %d", r.Writes, r.Acked, r.AckedRead, r.FinalRead, r.Superseded)
}
