package objlog

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// BenchmarkObjlogAppend measures the cluster write path against a real S3
// server (versitygw on loopback, POSIX backend) and etcd: 100 ledgers,
// each keeping `inflight` appends of 1 KiB outstanding, at several flush
// intervals, with one flush or several storing objects at once (commits
// stay in order). It reports acknowledged MB/s, objects per second and the
// append-to-acknowledgement latency p50/p99.
//
//	go test ./managedledger/objlog -run '^$' -bench ObjlogAppend -benchtime 20000x
func BenchmarkObjlogAppend(b *testing.B) {
	for _, c := range []struct {
		flush            time.Duration
		inflight, flying int
	}{
		{time.Millisecond, 1, 4}, {5 * time.Millisecond, 1, 4},
		{time.Millisecond, 16, 1}, {time.Millisecond, 16, 4},
		{5 * time.Millisecond, 16, 1}, {5 * time.Millisecond, 16, 4},
		{20 * time.Millisecond, 16, 4},
	} {
		b.Run(fmt.Sprintf("flush=%v/appends=%d/flushes=%d", c.flush, c.inflight, c.flying), func(b *testing.B) {
			benchAppend(b, c.flush, c.inflight, c.flying)
		})
	}
}

func benchAppend(b *testing.B, flush time.Duration, inflight, flying int) {
	e := newEnv(b, false)
	const ledgers = 100
	names := make([]string, ledgers)
	for i := range names {
		names[i] = fmt.Sprintf("persistent://public/default/bench-partition-%d", i)
		e.own(names[i])
	}
	l := e.open(Options{FlushInterval: flush, MaxInflight: flying})
	defer l.Close()
	data := make([]byte, 1024)
	hist := hdrhistogram.New(1, 60_000_000, 3) // microseconds
	var histMu sync.Mutex
	per := (b.N + ledgers - 1) / ledgers
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem := make(chan struct{}, inflight)
			var mine sync.WaitGroup
			for i := 0; i < per; i++ {
				sem <- struct{}{}
				mine.Add(1)
				sent := time.Now()
				l.Append(Entry{Ledger: name, EntryID: int64(i), Data: data}, func(err error) {
					if err != nil {
						b.Error(err)
					}
					histMu.Lock()
					hist.RecordValue(time.Since(sent).Microseconds())
					histMu.Unlock()
					<-sem
					mine.Done()
				})
			}
			mine.Wait()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	objects, _ := e.objs.List(b.Context(), "wal/")
	total := float64(per * ledgers * len(data))
	b.ReportMetric(total/elapsed.Seconds()/1e6, "MB/s-acked")
	b.ReportMetric(float64(hist.ValueAtQuantile(50))/1000, "p50-ms")
	b.ReportMetric(float64(hist.ValueAtQuantile(99))/1000, "p99-ms")
	b.ReportMetric(float64(len(objects))/elapsed.Seconds(), "objects/s")
}
