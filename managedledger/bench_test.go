package managedledger

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/metadata"
)

// benchDir is a directory on the same file system as the data would live:
// b.TempDir() unless it is tmpfs, then a directory under /work.
func benchDir(b *testing.B) string {
	dir := b.TempDir()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err == nil && st.Type == 0x01021994 { // TMPFS_MAGIC
		d, err := os.MkdirTemp("/work", "mlbench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return dir
}

func benchLedger(b *testing.B, cfg Config, prealloc int64) *ManagedLedger {
	f, err := NewFactory(FactoryOptions{
		Dir: benchDir(b), Store: metadata.NewMemory(), Logger: quietLogger(), RetentionInterval: -1, Prealloc: prealloc,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	ml, err := f.Open(context.Background(), "bench/t", cfg)
	if err != nil {
		b.Fatal(err)
	}
	return ml
}

// appendParallel appends n entries of size bytes from g goroutines.
func appendParallel(b *testing.B, ml *ManagedLedger, n, g, size int) {
	data := make([]byte, size)
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if _, err := ml.Append(context.Background(), Entry{Format: FormatKafka, MsgCount: 1, Data: data}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkAppend: durable append throughput (MB/s = payload bytes).
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		for _, mode := range []SyncMode{SyncAlways, SyncInterval} {
			for _, g := range []int{1, 16} {
				name := fmt.Sprintf("size=%dKiB/sync=%s/appenders=%d", size>>10, map[SyncMode]string{SyncAlways: "always", SyncInterval: "interval"}[mode], g)
				b.Run(name, func(b *testing.B) {
					ml := benchLedger(b, Config{Sync: mode}, benchPrealloc)
					b.SetBytes(int64(size))
					b.ReportAllocs()
					b.ResetTimer()
					appendParallel(b, ml, b.N, g, size)
				})
			}
		}
	}
}

// BenchmarkSequentialRead: reading 16 KiB entries in order, 64 per call.
func BenchmarkSequentialRead(b *testing.B) {
	const size = 16 << 10
	ml := benchLedger(b, Config{Sync: SyncInterval}, 0)
	const n = 4096 // 64 MiB
	appendParallel(b, ml, n, 4, size)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	read := 0
	from := Earliest
	for read < b.N {
		es, err := ml.ReadEntries(context.Background(), from, min(64, b.N-read), 4<<20)
		if err != nil {
			b.Fatal(err)
		}
		if len(es) == 0 {
			from = Earliest
			continue
		}
		read += len(es)
		last := es[len(es)-1].Position
		from = Position{LedgerID: last.LedgerID, EntryID: last.EntryID + 1}
	}
}

// baselineAppendSync appends total bytes in 256 KiB writes, each followed
// by fdatasync, to a new file in dir: what the disk gives a growing append log.
func baselineAppendSync(b *testing.B, dir string, total int) {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("baseline-%d", time.Now().UnixNano())))
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 256<<10)
	for w := 0; w < total; w += len(buf) {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineAppendFsync: plain 256 KiB append + fdatasync loop.
func BenchmarkBaselineAppendFsync(b *testing.B) {
	dir := benchDir(b)
	b.SetBytes(256 << 10)
	b.ResetTimer()
	baselineAppendSync(b, dir, b.N*(256<<10))
}

// BenchmarkVersusBaseline measures, per iteration, 64 MiB through the
// baseline loop and 64 MiB through SyncAlways appends of 16 KiB from 16
// appenders on the same file system, and reports both rates and the ratio
// (target >= 0.70).
func BenchmarkVersusBaseline(b *testing.B) {
	const total = 64 << 20
	dir := benchDir(b)
	ml := benchLedger(b, Config{Sync: SyncAlways}, benchPrealloc)
	var base, eng time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		baselineAppendSync(b, dir, total)
		base += time.Since(t0)
		t0 = time.Now()
		appendParallel(b, ml, total/(16<<10), 16, 16<<10)
		eng += time.Since(t0)
	}
	mb := float64(b.N) * total / 1e6
	b.ReportMetric(mb/base.Seconds(), "baseline-MB/s")
	b.ReportMetric(mb/eng.Seconds(), "engine-MB/s")
	b.ReportMetric(base.Seconds()/eng.Seconds(), "ratio")
}

// benchPrealloc is the Prealloc the append benchmarks use
// (KOPERNIK_BENCH_PREALLOC bytes, -1 off; default 0 = the factory default).
var benchPrealloc = func() int64 {
	var n int64
	fmt.Sscan(os.Getenv("KOPERNIK_BENCH_PREALLOC"), &n)
	return n
}()

// BenchmarkReadFromIndexRandom: one entry at a random message index of a
// 64 MiB log in 8 MiB ledgers (Kafka fetch at an arbitrary offset): ledger
// by binary search, then the sparse index, then a short scan.
func BenchmarkReadFromIndexRandom(b *testing.B) {
	ml := benchLedger(b, Config{Sync: SyncInterval, MaxLedgerBytes: 8 << 20}, 0)
	appendParallel(b, ml, 64<<10, 4, 1<<10)
	n := ml.NextIndex()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		idx := int64(uint64(i)*2654435761) % n
		es, err := ml.ReadFromIndex(context.Background(), idx, 1, 1)
		if err != nil || len(es) != 1 || es[0].FirstIndex != idx {
			b.Fatalf("index %d: %v %v", idx, es, err)
		}
	}
}

// benchLedgerCounts are BenchmarkManyLedgers' ledger counts
// (KOPERNIK_BENCH_LEDGERS, comma-separated; default 1,100,10000).
var benchLedgerCounts = func() []int {
	s := os.Getenv("KOPERNIK_BENCH_LEDGERS")
	if s == "" {
		return []int{1, 100, 10000}
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}()

// benchCheckpoint is BenchmarkManyLedgers' CheckpointInterval
// (KOPERNIK_BENCH_CHECKPOINT, a Go duration; default the factory's).
var benchCheckpoint = func() time.Duration {
	d, _ := time.ParseDuration(os.Getenv("KOPERNIK_BENCH_CHECKPOINT"))
	return d
}()

// BenchmarkManyLedgers: rounds of one acknowledged (SyncAlways) 100-byte
// append to each of n ledgers, all in flight at once from one goroutine
// (a broker serving one produce request for n partitions), through the
// shared journal and through per-ledger fsyncs. One op is one round;
// also reported: the first round (the first write to every ledger),
// p99 of the rounds, and the time to open (create) the n ledgers.
// Files go through the factory's descriptor bound (MaxOpenFiles, default
// 3/4 of RLIMIT_NOFILE): beyond it, idle ones are closed and reopened.
func BenchmarkManyLedgers(b *testing.B) {
	for _, n := range benchLedgerCounts {
		for _, path := range syncPaths {
			b.Run(fmt.Sprintf("ledgers=%d/%s", n, path.name), func(b *testing.B) {
				f, err := NewFactory(FactoryOptions{
					Dir: benchDir(b), Store: metadata.NewMemory(), Logger: quietLogger(), RetentionInterval: -1,
					PerLedgerSync: path.perLedger, Prealloc: benchPrealloc, CheckpointInterval: benchCheckpoint,
				})
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				ctx := context.Background()
				t0 := time.Now()
				mls := make([]*ManagedLedger, n)
				for i := range mls {
					if mls[i], err = f.Open(ctx, fmt.Sprintf("bench/t-%d/p-%d", i/100, i%100), Config{}); err != nil {
						b.Fatal(err)
					}
				}
				open := time.Since(t0)
				data := make([]byte, 100)
				ps := make([]*Pending, n)
				round := func() time.Duration {
					t0 := time.Now()
					for i, ml := range mls {
						p, err := ml.AppendAsync(Entry{Format: FormatKafka, MsgCount: 1, Data: data})
						if err != nil {
							b.Fatal(err)
						}
						ps[i] = p
					}
					for _, p := range ps {
						if _, err := p.Wait(ctx); err != nil {
							b.Fatal(err)
						}
					}
					return time.Since(t0)
				}
				first := round()
				var rounds []time.Duration
				for b.Loop() {
					rounds = append(rounds, round())
				}
				sort.Slice(rounds, func(i, j int) bool { return rounds[i] < rounds[j] })
				b.ReportMetric(float64(first.Microseconds())/1e3, "first-round-ms")
				b.ReportMetric(float64(rounds[len(rounds)*99/100].Microseconds())/1e3, "p99-round-ms")
				b.ReportMetric(float64(open.Microseconds())/1e3, "open-ms")
				b.ReportMetric(float64(n), "appends/op")
			})
		}
	}
}
