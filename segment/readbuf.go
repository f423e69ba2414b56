package segment

import (
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

// maxPooledRead bounds the buffers kept for reuse.
const maxPooledRead = 8 << 20

var readBufPool sync.Pool // of *readBuf

// getReadBuf returns a buffer of n bytes holding one reference.
func getReadBuf(n int) *readBuf {
	rb, ok := readBufPool.Get().(*readBuf)
	if !ok || cap(rb.b) < n {
		rb = &readBuf{b: make([]byte, n)}
	}
	rb.b = rb.b[:n]
	rb.refs.Store(1)
	return rb
}

func (rb *readBuf) release() {
	if rb.refs.Add(-1) == 0 && cap(rb.b) <= maxPooledRead {
		readBufPool.Put(rb)
	}
}
