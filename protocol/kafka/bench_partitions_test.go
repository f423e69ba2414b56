package kafka

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	benchMaxPartitions = flag.Int("bench.maxpartitions", 10_000, "BenchmarkManyPartitions: largest partition count run")
	benchAddr          = flag.String("bench.addr", "", "BenchmarkManyPartitions: a running kopernik's Kafka address to use instead of an in-process broker (its memory is then its own process's; run one partition count on an empty data dir)")
	benchRoundProfile  = flag.String("bench.roundprofile", "", "BenchmarkManyPartitions: write CPU profiles of the first and of one steady round to this path + .first / .steady")
)

// profileRound runs round under a CPU profile written to
// *benchRoundProfile.<benchmark>suffix, if that flag is set.
func profileRound(b *testing.B, suffix string, round func() time.Duration) time.Duration {
	if *benchRoundProfile == "" {
		return round()
	}
	f, err := os.Create(*benchRoundProfile + "." + strings.NewReplacer("/", "-", "=", "").Replace(b.Name()) + suffix)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	defer pprof.StopCPUProfile()
	return round()
}

// BenchmarkManyPartitions creates P partitions (P/100 partitions in each of
// 100 topics; one topic below 100), then produces rounds of one acked
// 100-byte record to every partition with franz-go (acks=all, idempotent),
// against kopernik with fsync before every acknowledgement and, in the
// same run, franz-go's in-memory kfake. The first round is each
// partition's first write (its ledger is created); steady rounds (b.N of
// them) write to ledgers that exist. Reported: create-ms, first-round-ms,
// round-ms (steady, mean), max-round-ms (the slowest steady round)
// failed records and peak-rss-MiB (of the whole test process, client
// included, peak so far: run one sub-benchmark alone to read it).
//
//	go test ./protocol/kafka -run '^$' -bench ManyPartitions -benchtime 5x -bench.maxpartitions 10000
func BenchmarkManyPartitions(b *testing.B) {
	for _, p := range []int{1, 100, 1_000, 10_000, 100_000} {
		if p > *benchMaxPartitions {
			break
		}
		b.Run(fmt.Sprintf("partitions=%d/kopernik", p), func(b *testing.B) {
			if *benchAddr != "" {
				benchManyPartitions(b, *benchAddr, p)
				return
			}
			s := startDurableServer(b)
			benchManyPartitions(b, s.addr, p)
		})
		b.Run(fmt.Sprintf("partitions=%d/kfake", p), func(b *testing.B) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			benchManyPartitions(b, c.ListenAddrs()[0], p)
		})
	}
}

func benchManyPartitions(b *testing.B, addr string, partitions int) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	topics, per := 100, partitions/100
	if partitions < 100 {
		topics, per = 1, partitions
	}
	names := make([]string, topics)
	for i := range names {
		names[i] = fmt.Sprintf("many-%03d", i)
	}
	adm := kadm.NewClient(newKgo(b, addr, kgo.RequestTimeoutOverhead(time.Minute)))
	start := time.Now()
	resp, err := adm.CreateTopics(ctx, int32(per), 1, nil, names...)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range resp {
		// Against -bench.addr the topics of the benchmark's first (b.N=1)
		// run are still there.
		if r.Err != nil && !(*benchAddr != "" && errors.Is(r.Err, kerr.TopicAlreadyExists)) {
			b.Fatal(r.Err)
		}
	}
	created := time.Since(start)

	p := newKgo(b, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MaxBufferedRecords(partitions+1),
		kgo.ProduceRequestTimeout(5*time.Minute), kgo.RecordDeliveryTimeout(10*time.Minute))
	value := make([]byte, 100)
	var failed atomic.Int64
	var errMu sync.Mutex
	var firstErr error // records fail with errors of several types
	round := func() time.Duration {
		var wg sync.WaitGroup
		wg.Add(topics * per)
		t0 := time.Now()
		for _, topic := range names {
			for part := range per {
				p.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(part), Value: value}, func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Add(1)
						errMu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						errMu.Unlock()
					}
					wg.Done()
				})
			}
		}
		wg.Wait()
		return time.Since(t0)
	}
	first := profileRound(b, ".first", round)
	b.ResetTimer()
	var steady, slowest time.Duration
	for i := range b.N {
		var d time.Duration
		if i == 0 {
			d = profileRound(b, ".steady", round)
		} else {
			d = round()
		}
		steady += d
		slowest = max(slowest, d)
	}
	b.StopTimer()
	if firstErr != nil {
		b.Logf("first failure: %v", firstErr)
	}
	b.ReportMetric(float64(created.Milliseconds()), "create-ms")
	b.ReportMetric(float64(first.Milliseconds()), "first-round-ms")
	b.ReportMetric(float64(steady.Milliseconds())/float64(b.N), "round-ms")
	b.ReportMetric(float64(slowest.Milliseconds()), "max-round-ms")
	b.ReportMetric(float64(failed.Load()), "failed")
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		// The whole test process (client included), and the peak so far:
		// meaningful for the first sub-benchmark run (-bench with one name).
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-rss-MiB")
	}
}
