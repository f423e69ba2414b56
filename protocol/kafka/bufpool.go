package kafka

import "sync"

// Large response buffers (response frames, copied and converted record
// batches) are recycled: allocating and zeroing a fresh megabyte per fetch,
// and the garbage collection that follows, cost more than reading the data.

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
