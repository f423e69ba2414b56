package segment

import (
	"sync"
	"sync/atomic"
)

// readBuf is a read-ahead buffer that records returned by Read point into.
// It returns to the free list when the reader and every record read from
// it have released it; reading megabytes per fetch into fresh buffers
// otherwise costs more in allocation, zeroing and GC than the read itself.
//
// INVARIANT: a buffer is on the free list only while refs is 0, and no
// Record's Data points into it (every holder released it).
type readBuf struct {
	b    []byte
	refs atomic.Int32
}

// Free read buffers are kept on a bounded list rather than in a sync.Pool:
// a pool is emptied by every other garbage collection, and a consumer
// reading a megabyte per fetch makes collections frequent, so a pooled
// megabyte was found gone (and allocated and zeroed again) on about half
// of the fetches.
const (
	// maxPooledRead is the largest buffer kept; larger ones go to the GC.
	maxPooledRead = 8 << 20
	// maxFreeReadBytes and maxFreeReadBufs bound the memory kept on the
	// free list and its length.
	maxFreeReadBytes = 32 << 20
	maxFreeReadBufs  = 64
	// readBufAlign rounds allocations up, so that windows of slightly
	// different sizes can reuse each other's buffers.
	readBufAlign = 64 << 10
)

var readBufs struct {
	sync.Mutex
	free  []*readBuf // unordered
	bytes int        // total capacity on free
}

// getReadBuf returns a buffer of n bytes holding one reference: the
// smallest free one that is large enough, or a new one.
func getReadBuf(n int) *readBuf {
	readBufs.Lock()
	best := -1
	for i, rb := range readBufs.free {
		if cap(rb.b) >= n && (best < 0 || cap(rb.b) < cap(readBufs.free[best].b)) {
			best = i
		}
	}
	var rb *readBuf
	if best >= 0 {
		rb = readBufs.free[best]
		last := len(readBufs.free) - 1
		readBufs.free[best] = readBufs.free[last]
		readBufs.free[last] = nil
		readBufs.free = readBufs.free[:last]
		readBufs.bytes -= cap(rb.b)
	}
	readBufs.Unlock()
	if rb == nil {
		size := n
		if n <= maxPooledRead {
			size = (n + readBufAlign - 1) / readBufAlign * readBufAlign
		}
		rb = &readBuf{b: make([]byte, size)}
	}
	rb.b = rb.b[:n]
	rb.refs.Store(1)
	return rb
}

// release drops one reference; the last one puts the buffer on the free
// list, making room by dropping free buffers no larger than it if needed.
func (rb *readBuf) release() {
	if n := rb.refs.Add(-1); n != 0 {
		if n < 0 {
			panic("segment: read buffer released more often than referenced")
		}
		return
	}
	c := cap(rb.b)
	if c > maxPooledRead {
		return
	}
	readBufs.Lock()
	defer readBufs.Unlock()
	for readBufs.bytes+c > maxFreeReadBytes || len(readBufs.free) >= maxFreeReadBufs {
		small := -1
		for i, f := range readBufs.free {
			if cap(f.b) <= c && (small < 0 || cap(f.b) < cap(readBufs.free[small].b)) {
				small = i
			}
		}
		if small < 0 {
			return // the list is full of buffers at least as large: drop rb
		}
		readBufs.bytes -= cap(readBufs.free[small].b)
		last := len(readBufs.free) - 1
		readBufs.free[small] = readBufs.free[last]
		readBufs.free[last] = nil
		readBufs.free = readBufs.free[:last]
	}
	readBufs.free = append(readBufs.free, rb)
	readBufs.bytes += c
}
