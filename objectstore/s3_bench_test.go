package objectstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// BenchmarkS3Get measures ranged GETs of one block size from a real S3
// server on loopback, sequentially and with 4 in flight: the ceiling of
// tiered-storage reads on this machine.
func BenchmarkS3Get(b *testing.B) {
	for _, size := range []int{256 << 10, 1 << 20, 4 << 20} {
		for _, par := range []int{1, 4} {
			b.Run(fmt.Sprintf("%dKiB-x%d", size>>10, par), func(b *testing.B) {
				srv := s3testStart(b)
				st := newStore(b, srv, 3)
				ctx := context.Background()
				data := make([]byte, 16*size)
				if err := st.Put(ctx, "obj", data); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size))
				b.ResetTimer()
				var wg sync.WaitGroup
				next := make(chan int)
				for range par {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range next {
							if _, err := st.Get(ctx, "obj", int64(i%16*size), int64(size)); err != nil {
								b.Error(err)
							}
						}
					}()
				}
				for i := range b.N {
					next <- i
				}
				close(next)
				wg.Wait()
			})
		}
	}
}
