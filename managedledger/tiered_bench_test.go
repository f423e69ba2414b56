package managedledger

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/objectstore"
	"github.com/kopernik-io/kopernik/objectstore/s3test"
)

// dropPageCache evicts the files under dir from the page cache
// (fdatasync, then posix_fadvise DONTNEED), so that a read goes to the disk.
func dropPageCache(b *testing.B, dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		syscall.Fdatasync(int(f.Fd()))
		const fadvDontNeed = 4
		if _, _, e := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0); e != 0 {
			b.Fatalf("fadvise %s: %v", p, e)
		}
		return nil
	})
}

// BenchmarkCatchUpRead is a consumer catching up from the start of a
// topic: sequential ReadEntries of 1 MiB batches over 64 MiB of 16 KiB
// entries in 8 MiB ledgers, from local files (the page cache warm, as
// for a recent backlog) or from a real S3 server on loopback (versitygw
// on the same disk) after the local copies were deleted. Every iteration
// starts with a fresh factory, so the tiered read never hits a warm block
// cache: each block is a ranged GET (default 4 MiB blocks, read-ahead of
// offload.DefaultReadAhead blocks).
// The -cold variants first evict the files that will be read (the ledger
// files, or the S3 server's object files) from the page cache.
//
//	go test ./managedledger -run '^$' -bench CatchUpRead -benchtime 5x
func BenchmarkCatchUpRead(b *testing.B) {
	const (
		total     = 64 << 20
		entrySize = 16 << 10
	)
	for _, mode := range []string{"local", "tiered", "local-cold", "tiered-cold"} {
		b.Run(mode, func(b *testing.B) {
			srv := s3test.Start(b)
			st, err := objectstore.NewS3(context.Background(), objectstore.S3Options{
				Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey,
			})
			if err != nil {
				b.Fatal(err)
			}
			store := metadata.NewMemory()
			dir := benchDir(b)
			opts := FactoryOptions{Dir: dir, Store: store, Logger: quietLogger(), RetentionInterval: -1,
				OffloadInterval: -1, Offload: st, CacheBytes: -1}
			open := func() (*Factory, *ManagedLedger) {
				f, err := NewFactory(opts)
				if err != nil {
					b.Fatal(err)
				}
				ml, err := f.Open(context.Background(), "bench/catchup", Config{MaxLedgerBytes: 8 << 20})
				if err != nil {
					b.Fatal(err)
				}
				return f, ml
			}
			f, ml := open()
			appendParallel(b, ml, total/entrySize, 4, entrySize)
			if err := ml.rollIfOld(); err != nil {
				b.Fatal(err)
			}
			offloadRate := 0.0
			tiered := strings.HasPrefix(mode, "tiered")
			if tiered {
				t0 := time.Now()
				if err := ml.Offload(context.Background(), Latest); err != nil {
					b.Fatal(err)
				}
				offloadRate = float64(ml.Stats().Bytes) / (1 << 20) / time.Since(t0).Seconds()
				if err := ml.DeleteOffloadedLocal(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			f.Close()
			peak := int64(0) // the block cache's memory, read-ahead in flight included
			b.SetBytes(total)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				f, ml := open()
				if strings.HasSuffix(mode, "-cold") {
					// Out of the page cache: the local files, or the S3
					// server's object files.
					dropPageCache(b, dir)
					dropPageCache(b, srv.Root)
				}
				b.StartTimer()
				n, from := 0, Earliest
				for {
					es, err := ml.ReadEntries(context.Background(), from, 1000, 1<<20)
					if err != nil {
						b.Fatal(err)
					}
					if len(es) == 0 {
						break
					}
					for i := range es {
						n += len(es[i].Data)
						es[i].Release()
					}
					last := es[len(es)-1].Position
					from = Position{LedgerID: last.LedgerID, EntryID: last.EntryID + 1}
				}
				b.StopTimer()
				if n < total {
					b.Fatalf("read %d bytes of %d", n, total)
				}
				if f.offloadCache != nil {
					peak = max(peak, f.offloadCache.Peak())
				}
				f.Close()
				b.StartTimer()
			}
			if offloadRate > 0 {
				b.ReportMetric(offloadRate, "offload-MiB/s")
				b.ReportMetric(float64(peak)/(1<<20), "peak-cache-MiB")
			}
		})
	}
}
