package server

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/segment"
	"github.com/kopernik-io/kopernik/verify"
)

var (
	faultsDuration = flag.Duration("verify.faults-duration", 8*time.Second, "TestVerifyUnderIOFaults: how long the workload runs under faults")
	// Small ledgers make rollovers (and their failures) frequent; a long
	// run wants bigger ones: sealed ledgers keep their files open for a
	// minute, and 64 KiB ledgers at full speed reach the process's
	// open-file limit within minutes.
	faultsSegmentBytes = flag.String("verify.faults-segment-bytes", "65536", "TestVerifyUnderIOFaults: segment-bytes of the broker")
)

// TestVerifyUnderIOFaults runs the verify workload (idempotent Kafka and
// Pulsar producers, Kafka group and assign consumers, Pulsar subscriptions,
// then a final read of everything by both protocols) against a broker whose
// ledger file system fails writes (ENOSPC) and fsyncs (EIO) of random
// partitions, or of all of them, at random moments, with 64 KiB ledgers so
// that rollovers fail too. Clients retry; the ledgers recover by
// themselves. The checker must find no anomaly: nothing acknowledged lost,
// no duplicate, no skipped or reordered offset, one value per offset.
func TestVerifyUnderIOFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("workload under injected I/O faults")
	}
	ffs := &segment.FaultFS{FS: segment.OSFS{}}
	s := startStorageServer(t, t.TempDir(), ffs, "segment-bytes", *faultsSegmentBytes)

	seed := rand.Uint64()
	t.Logf("fault seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	const topic, partitions = "faults", 3
	faults := 0
	stopFaults := make(chan struct{})
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		for {
			select {
			case <-stopFaults:
				return
			case <-time.After(time.Duration(100+rng.IntN(400)) * time.Millisecond):
			}
			target := "" // every file
			if rng.IntN(3) > 0 {
				target = fmt.Sprintf("%s-partition-%d/", topic, rng.IntN(partitions))
			}
			if rng.IntN(2) == 0 {
				ffs.FailWrites(target, syscall.ENOSPC)
			} else {
				ffs.FailSyncs(target, syscall.EIO)
			}
			faults++
			select {
			case <-stopFaults:
			case <-time.After(time.Duration(20+rng.IntN(300)) * time.Millisecond):
			}
			ffs.FailWrites(target, nil)
			ffs.FailSyncs(target, nil)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 3**faultsDuration+5*time.Minute)
	defer cancel()
	h, err := verify.Run(ctx, verify.Config{
		KafkaAddr: s.Addr("kafka").String(), PulsarAddr: s.Addr("pulsar").String(),
		Topic: topic, Partitions: partitions, Duration: *faultsDuration, ValueBytes: 2000,
		KafkaProducers: 2, PulsarProducers: 2, Consumers: 1,
		FinalTimeout: 2*time.Minute + 2**faultsDuration, // the final readers read it all, twice
		Log:          slog.New(slog.DiscardHandler),
		BeforeFinal: func(ctx context.Context) error {
			close(stopFaults)
			<-faultsDone
			// Every ledger recovers by itself once the faults stop.
			for {
				resp, err := http.Get("http://" + s.Addr("http").String() + "/admin/v2/brokers/health")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return nil
					}
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("broker not healthy after the faults stopped: %w", ctx.Err())
				case <-time.After(50 * time.Millisecond):
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := verify.Check(h, verify.Options{Examples: 10})
	var text bytes.Buffer
	r.WriteText(&text)
	t.Logf("%d faults injected; failures %s, recoveries %s\n%s", faults,
		metricValue(t, s, "kopernik_storage_failures_total"), metricValue(t, s, "kopernik_storage_recoveries_total"), text.String())
	if !r.Valid {
		lost := map[string]bool{}
		for _, a := range r.Anomalies {
			for _, ex := range a.Examples {
				lost[strings.Fields(ex)[0]] = true
			}
		}
		for _, w := range h.Writes {
			if lost[w.Value] {
				t.Logf("lost write: %+v", w)
			}
		}
	}
	// A live Pulsar session may receive a message after later ones: on a
	// reconnect pulsar-client-go drops its receiver queue while a later
	// message of the old connection may still reach the application, and
	// the broker redelivers from the mark-delete position. The checker
	// counts those as late redeliveries; a message the session never
	// receives is a skip, and fails the test like every other anomaly.
	valid := r.Valid
	if !valid || r.Acked == 0 || r.FinalRead != r.Acked {
		t.Fatalf("anomalies under I/O faults (seed %d): acked %d, read back %d", seed, r.Acked, r.FinalRead)
	}
}
