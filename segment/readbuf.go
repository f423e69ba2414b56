package segment

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// readBuf is a read-ahead buffer that records returned by Read point into.
// It returns to a pool when the reader and every record read from it have
// released it; reading megabytes per fetch into fresh buffers otherwise
// costs more in allocation, zeroing and GC than the read itself.
type readBuf struct {
	b    []byte
	refs atomic.Int32
}

// Pooled read buffers come in power-of-two size classes from
// 1<<minReadClass to 1<<maxReadClass bytes, one pool per class, so that a
// request for a slightly larger window than the last one does not throw a
// pooled buffer away and allocate (and zero) a new one. Larger buffers are
// left to the GC.
const (
	minReadClass = 16 // 64 KiB
	maxReadClass = 23 // 8 MiB
)

var readBufPools [maxReadClass - minReadClass + 1]sync.Pool // of *readBuf

// readClass returns the size class for n bytes, or -1 if n is too large to pool.
func readClass(n int) int {
	c := max(bits.Len(uint(max(n, 1)-1)), minReadClass)
	if c > maxReadClass {
		return -1
	}
	return c - minReadClass
}

// getReadBuf returns a buffer of n bytes holding one reference.
func getReadBuf(n int) *readBuf {
	c := readClass(n)
	if c < 0 {
		rb := &readBuf{b: make([]byte, n)}
		rb.refs.Store(1)
		return rb
	}
	rb, ok := readBufPools[c].Get().(*readBuf)
	if !ok {
		rb = &readBuf{b: make([]byte, 1<<(c+minReadClass))}
	}
	rb.b = rb.b[:n]
	rb.refs.Store(1)
	return rb
}

// release drops one reference; the last one returns the buffer to its pool.
func (rb *readBuf) release() {
	if rb.refs.Add(-1) != 0 {
		return
	}
	if c := readClass(cap(rb.b)); c >= 0 && cap(rb.b) == 1<<(c+minReadClass) {
		readBufPools[c].Put(rb)
	}
}
