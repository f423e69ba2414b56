package kafka

import (
	"context"
	"sync"
)

// Large response buffers (fetched record batches, response frames) are
// recycled: allocating and zeroing a fresh megabyte per fetch, and the
// garbage collection that follows, cost more than reading the data.

// maxPooledBuf bounds what the pool keeps; larger buffers go to the GC.
const maxPooledBuf = 16 << 20

var bufPool sync.Pool // of *[]byte

// getBuf returns an empty buffer with capacity >= n, recycled if possible.
func getBuf(n int) []byte {
	if v, ok := bufPool.Get().(*[]byte); ok && cap(*v) >= n {
		return (*v)[:0]
	}
	return make([]byte, 0, n)
}

// putBuf recycles b; the caller must not use b afterwards.
func putBuf(b []byte) {
	if cap(b) == 0 || cap(b) > maxPooledBuf {
		return
	}
	b = b[:0]
	bufPool.Put(&b)
}

// recycler collects buffers that a response refers to until the response
// has been encoded into its frame; then they go back to the pool.
type recycler struct{ bufs [][]byte }

type recyclerKey struct{}

func withRecycler(ctx context.Context, r *recycler) context.Context {
	return context.WithValue(ctx, recyclerKey{}, r)
}

// recycleAfterEncode hands b to the request's recycler (or leaves it to the
// GC when there is none, e.g. in tests calling handlers directly).
func recycleAfterEncode(ctx context.Context, b []byte) {
	if r, ok := ctx.Value(recyclerKey{}).(*recycler); ok && b != nil {
		r.bufs = append(r.bufs, b)
	}
}

// release returns every collected buffer to the pool.
func (r *recycler) release() {
	for _, b := range r.bufs {
		putBuf(b)
	}
	r.bufs = r.bufs[:0]
}
