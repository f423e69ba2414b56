package metadata

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// BenchmarkBoltPut measures durable writes: one writer at a time (each
// pays a commit) and parallel writers (sharing commits through Batch).
func BenchmarkBoltPut(b *testing.B) {
	value := make([]byte, 256)
	for _, parallel := range []bool{false, true} {
		b.Run(fmt.Sprintf("parallel=%v", parallel), func(b *testing.B) {
			s, err := OpenBolt(filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.SetBytes(int64(len(value)))
			b.ReportAllocs()
			var n atomic.Int64
			put := func() {
				k := n.Add(1)
				if _, err := s.Put(ctx(), fmt.Sprintf("/bench/k%d", k%1024), value, AnyVersion); err != nil {
					b.Error(err)
				}
			}
			if !parallel {
				for b.Loop() {
					put()
				}
				return
			}
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					put()
				}
			})
		})
	}
}
