package offload

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/kopernik-io/kopernik/objectstore"
	"github.com/kopernik-io/kopernik/segment"
)

// Cache holds decoded blocks of offloaded ledgers, at most a byte budget
// (least recently used first out), shared by every reader of a factory.
// It also deduplicates concurrent fetches of a block and runs read-ahead.
//
// Memory: the budget covers the blocks cached and the fetches in flight
// (their buffers are allocated when the GET answers, so a fetch counts
// from its start). Starting a fetch evicts until both fit. Read-ahead
// (fetches no reader waits for, and blocks fetched so but not read yet)
// may use at most half of the budget, so that it never pushes out what
// readers are using, and stops there. Only fetches a reader waits for
// can take the total past the budget: one block per concurrent reader,
// a cost the readers would pay without a cache too.
type Cache struct {
	ctx    context.Context // ends read-ahead at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		max      int64
		used     int64     // bytes of the cached blocks
		fetching int64     // bytes of the fetches in flight
		ahead    int64     // read-ahead bytes: in flight, or cached and not read yet
		peak     int64     // high-water mark of used + fetching
		lru      list.List // of *cachedBlock, most recent at the front
		blocks   map[blockKey]*list.Element
		inflight map[blockKey]*fetchCall
	}
}

type blockKey struct {
	data  string
	block int
}

type cachedBlock struct {
	key   blockKey
	recs  []segment.Record
	size  int64
	ahead bool // fetched by read-ahead, not read since: counted in mu.ahead
}

type fetchCall struct {
	done  chan struct{}
	recs  []segment.Record
	err   error
	size  int64
	ahead bool // no reader waits for it yet: counted in mu.ahead
}

// NewCache returns a cache of at most maxBytes (<= 0: 64 MiB).
func NewCache(maxBytes int64) *Cache {
	if maxBytes <= 0 {
		maxBytes = 64 << 20
	}
	c := &Cache{}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.max = maxBytes
	c.mu.blocks = make(map[blockKey]*list.Element)
	c.mu.inflight = make(map[blockKey]*fetchCall)
	return c
}

// Close stops read-ahead in flight and waits for it.
func (c *Cache) Close() {
	// Under mu: read-ahead checks c.ctx and calls c.wg.Add under mu, so
	// none starts once Wait may have begun.
	c.mu.Lock()
	c.cancel()
	c.mu.Unlock()
	c.wg.Wait()
}

// goAhead runs fn in the background unless the cache is closed, reporting
// whether it did.
func (c *Cache) goAhead(fn func(ctx context.Context)) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.goAheadLocked(fn)
}

func (c *Cache) goAheadLocked(fn func(ctx context.Context)) bool {
	if c.ctx.Err() != nil {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
		defer cancel()
		fn(ctx)
	}()
	return true
}

// Used returns the bytes cached now.
func (c *Cache) Used() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.used
}

// Peak returns the most memory the cache has held: cached blocks plus
// fetches in flight, at the worst moment since NewCache.
func (c *Cache) Peak() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.peak
}

// useLocked returns a cached block and marks it recently used (and, if
// read-ahead fetched it, no longer ahead: a reader has it now).
func (c *Cache) useLocked(k blockKey) ([]segment.Record, bool) {
	e, ok := c.mu.blocks[k]
	if !ok {
		return nil, false
	}
	c.mu.lru.MoveToFront(e)
	b := e.Value.(*cachedBlock)
	if b.ahead {
		b.ahead = false
		c.mu.ahead -= b.size
	}
	return b.recs, true
}

func (c *Cache) get(k blockKey) ([]segment.Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.useLocked(k)
}

// evictLocked drops least recently used blocks until the cached blocks
// and the fetches in flight fit the budget, keeping the newest block: a
// lookup that fetched it (Miss.Fetch) must find it when it tries again.
func (c *Cache) evictLocked() {
	for c.mu.used+c.mu.fetching > c.mu.max && c.mu.lru.Len() > 1 {
		c.removeLocked(c.mu.lru.Back())
	}
	c.mu.peak = max(c.mu.peak, c.mu.used+c.mu.fetching)
}

func (c *Cache) removeLocked(e *list.Element) {
	b := e.Value.(*cachedBlock)
	c.mu.lru.Remove(e)
	delete(c.mu.blocks, b.key)
	c.mu.used -= b.size
	if b.ahead {
		c.mu.ahead -= b.size
	}
}

// startLocked registers a fetch of k (size bytes) and makes room for it.
func (c *Cache) startLocked(k blockKey, size int64, ahead bool) *fetchCall {
	call := &fetchCall{done: make(chan struct{}), size: size, ahead: ahead}
	c.mu.inflight[k] = call
	c.mu.fetching += size
	if ahead {
		c.mu.ahead += size
	}
	c.evictLocked()
	return call
}

// finish ends a fetch started by startLocked, caching what it got.
func (c *Cache) finish(k blockKey, call *fetchCall) {
	c.mu.Lock()
	delete(c.mu.inflight, k)
	c.mu.fetching -= call.size
	switch {
	case call.err != nil:
		if call.ahead {
			c.mu.ahead -= call.size
		}
	case c.mu.blocks[k] != nil: // cannot happen: fetches are deduplicated
	default:
		c.mu.blocks[k] = c.mu.lru.PushFront(&cachedBlock{key: k, recs: call.recs, size: call.size, ahead: call.ahead})
		c.mu.used += call.size
		c.evictLocked()
	}
	c.mu.Unlock()
	close(call.done)
}

// Drop forgets every cached block of the data object (its ledger was
// deleted).
func (c *Cache) Drop(dataKey string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.mu.blocks {
		if k.data == dataKey {
			c.removeLocked(e)
		}
	}
}

// Ledger reads one offloaded ledger. Safe for concurrent use.
//
// Lookups by entry id, message index or time (Header, FindIndex,
// FindTime) never do I/O: callers hold their ledger's lock around them,
// and a slow store must never block appends. When what they need is not
// in memory they return a *Miss, whose Fetch (called without locks) loads
// it; the caller then tries again. Read does its I/O itself.
type Ledger struct {
	store     objectstore.Store
	cache     *Cache
	dataKey   string
	indexKey  string
	readAhead int

	mu      sync.Mutex
	idx     *Index     // nil until loaded
	loading *indexCall // the index GET in flight, if any
}

type indexCall struct {
	done chan struct{}
	err  error
}

// DefaultReadAhead is the read-ahead of NewLedger's readAhead 0, in
// blocks: with 4 MiB blocks, 16 MiB, so that about five GETs are in
// flight in a sequential read. A local S3 server on two cores answers a
// GET ~3.5 ms after the request and streams ~450-490 MB/s per request, so
// one GET at a time leaves most of the time waiting; five keep it busy
// across ledger boundaries too (docs/storage.md has the measurements).
const DefaultReadAhead = 4

// NewLedger returns a reader of the objects dataKey and indexKey.
// readAhead blocks after the one a Read needs are fetched in the
// background, continuing into the ledgers the caller passes as following
// this one (< 0: none; 0: DefaultReadAhead). The cache bounds it further:
// read-ahead never holds more than half of the cache's budget.
func NewLedger(store objectstore.Store, cache *Cache, dataKey, indexKey string, readAhead int) *Ledger {
	if readAhead == 0 {
		readAhead = DefaultReadAhead
	}
	return &Ledger{store: store, cache: cache, dataKey: dataKey, indexKey: indexKey, readAhead: max(readAhead, 0)}
}

// SetIndex installs an index known without reading it (the one just
// uploaded and verified).
func (l *Ledger) SetIndex(idx Index) {
	l.mu.Lock()
	l.idx = &idx
	l.mu.Unlock()
}

// DataKey is the data object's name.
func (l *Ledger) DataKey() string { return l.dataKey }

func (l *Ledger) index() *Index {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.idx
}

// LoadIndex reads the index object unless it is in memory. Concurrent
// calls share one GET; one whose GET failed because its own context ended
// does not fail the others, which try again.
func (l *Ledger) LoadIndex(ctx context.Context) (*Index, error) {
	for {
		l.mu.Lock()
		if l.idx != nil {
			l.mu.Unlock()
			return l.idx, nil
		}
		if call := l.loading; call != nil {
			l.mu.Unlock()
			select {
			case <-call.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if call.err != nil && !errors.Is(call.err, context.Canceled) && !errors.Is(call.err, context.DeadlineExceeded) {
				return nil, call.err
			}
			continue
		}
		call := &indexCall{done: make(chan struct{})}
		l.loading = call
		l.mu.Unlock()

		var idx Index
		b, err := l.store.Get(ctx, l.indexKey, 0, -1)
		if err == nil {
			idx, err = DecodeIndex(b)
		}
		l.mu.Lock()
		l.loading = nil
		switch {
		case l.idx != nil: // installed meanwhile (SetIndex): use it
			err = nil
		case err != nil:
			call.err = fmt.Errorf("offload: index %s: %w", l.indexKey, err)
		default:
			l.idx = &idx
		}
		got := l.idx
		l.mu.Unlock()
		close(call.done)
		return got, call.err
	}
}

// Miss reports that a lookup needs the index or a block that is not in
// memory; Fetch loads it.
type Miss struct {
	l     *Ledger
	block int // -1: the index
}

func (m *Miss) Error() string {
	if m.block < 0 {
		return "offload: index of " + m.l.dataKey + " not loaded"
	}
	return fmt.Sprintf("offload: block %d of %s not cached", m.block, m.l.dataKey)
}

// Fetch loads what the lookup missed.
func (m *Miss) Fetch(ctx context.Context) error {
	idx, err := m.l.LoadIndex(ctx)
	if err != nil || m.block < 0 {
		return err
	}
	_, err = m.l.block(ctx, idx, m.block)
	return err
}

// cachedBlock returns block i from the cache or a *Miss.
func (l *Ledger) cachedBlock(i int) ([]segment.Record, error) {
	if recs, ok := l.cache.get(blockKey{l.dataKey, i}); ok {
		return recs, nil
	}
	return nil, &Miss{l: l, block: i}
}

// block returns block i, from the cache or the store (deduplicated with
// concurrent fetches of the same block, read-ahead's included).
func (l *Ledger) block(ctx context.Context, idx *Index, i int) ([]segment.Record, error) {
	k := blockKey{l.dataKey, i}
	c := l.cache
	c.mu.Lock()
	if recs, ok := c.useLocked(k); ok {
		c.mu.Unlock()
		return recs, nil
	}
	if call, ok := c.mu.inflight[k]; ok {
		if call.ahead { // a reader waits for it now
			call.ahead = false
			c.mu.ahead -= call.size
		}
		c.mu.Unlock()
		select {
		case <-call.done:
			return call.recs, call.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	call := c.startLocked(k, idx.Blocks[i].Length, false)
	c.mu.Unlock()
	l.fetch(ctx, idx, i, call)
	return call.recs, call.err
}

// fetch GETs and decodes block i into call, then finishes it.
func (l *Ledger) fetch(ctx context.Context, idx *Index, i int, call *fetchCall) {
	bl := idx.Blocks[i]
	b, err := l.store.Get(ctx, l.dataKey, bl.Offset, bl.Length)
	if err != nil {
		call.err = fmt.Errorf("offload: %s block %d: %w", l.dataKey, i, err)
	} else if call.recs, err = DecodeBlock(b, bl); err != nil {
		call.err = fmt.Errorf("offload: %s block %d: %w", l.dataKey, i, err)
	}
	l.cache.finish(blockKey{l.dataKey, i}, call)
}

// startAhead starts a background fetch of block i unless it is cached or
// in flight. It reports false when read-ahead must stop here: the cache
// is closing or read-ahead holds its share of the budget.
func (l *Ledger) startAhead(idx *Index, i int) bool {
	k := blockKey{l.dataKey, i}
	c := l.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return false
	}
	if _, ok := c.mu.blocks[k]; ok {
		return true
	}
	if _, ok := c.mu.inflight[k]; ok {
		return true
	}
	size := idx.Blocks[i].Length
	if c.mu.ahead+size > c.mu.max/2 {
		return false
	}
	call := c.startLocked(k, size, true)
	return c.goAheadLocked(func(ctx context.Context) {
		l.fetch(ctx, idx, i, call) // an error is seen again by the read that needs the block
	})
}

// readAhead starts fetching up to n blocks from block from of l on in log
// order: the rest of l, then each ledger of next from its first block.
// The index of a following ledger that is not in memory is loaded in the
// background, which then goes on from there.
func readAhead(l *Ledger, next []*Ledger, from, n int) {
	for n > 0 {
		idx := l.index()
		if idx == nil {
			l.cache.goAhead(func(ctx context.Context) {
				if _, err := l.LoadIndex(ctx); err == nil {
					readAhead(l, next, from, n)
				}
			})
			return
		}
		for ; from < len(idx.Blocks) && n > 0; from++ {
			if !l.startAhead(idx, from) {
				return
			}
			n--
		}
		if len(next) == 0 {
			return
		}
		l, next, from = next[0], next[1:], 0
	}
}

func header(r segment.Record) segment.Record {
	r.Data = nil
	return r
}

// lookup scans from block i (cached only) until stop accepts a record.
func (l *Ledger) lookup(i int, stop func(r *segment.Record, runMax int64) bool) (segment.Record, bool, error) {
	idx := l.index()
	if idx == nil {
		return segment.Record{}, false, &Miss{l: l, block: -1}
	}
	if i < 0 || i >= len(idx.Blocks) {
		return segment.Record{}, false, nil
	}
	runMax := idx.Blocks[i].MaxTsBefore
	for ; i < len(idx.Blocks); i++ {
		recs, err := l.cachedBlock(i)
		if err != nil {
			return segment.Record{}, false, err
		}
		for k := range recs {
			if stop(&recs[k], runMax) {
				return header(recs[k]), true, nil
			}
			runMax = max(runMax, recs[k].Timestamp())
		}
	}
	return segment.Record{}, false, nil
}

// Header returns entry id's record without Data, or a *Miss.
func (l *Ledger) Header(id int64) (segment.Record, error) {
	idx := l.index()
	if idx == nil {
		return segment.Record{}, &Miss{l: l, block: -1}
	}
	if id < 0 || id >= idx.Entries {
		return segment.Record{}, fmt.Errorf("offload: entry %d not in [0, %d)", id, idx.Entries)
	}
	r, ok, err := l.lookup(idx.blockOfEntry(id), func(r *segment.Record, _ int64) bool { return r.EntryID >= id })
	if err == nil && (!ok || r.EntryID != id) {
		err = fmt.Errorf("%w: entry %d not found in %s", ErrCorrupt, id, l.dataKey)
	}
	return r, err
}

// FindIndex returns the header of the record holding message index, ok
// false if none does, or a *Miss.
func (l *Ledger) FindIndex(index int64) (segment.Record, bool, error) {
	idx := l.index()
	if idx == nil {
		return segment.Record{}, false, &Miss{l: l, block: -1}
	}
	if index < idx.FirstIndex || index >= idx.NextIndex {
		return segment.Record{}, false, nil
	}
	return l.lookup(idx.blockOfIndex(index), func(r *segment.Record, _ int64) bool { return r.NextIndex() > index })
}

// FindTime returns the header of the first record whose timestamp,
// maximised over all earlier records of the ledger, is >= t, or a *Miss.
func (l *Ledger) FindTime(t int64) (segment.Record, bool, error) {
	idx := l.index()
	if idx == nil {
		return segment.Record{}, false, &Miss{l: l, block: -1}
	}
	if len(idx.Blocks) == 0 {
		return segment.Record{}, false, nil
	}
	return l.lookup(idx.blockOfTime(t), func(r *segment.Record, runMax int64) bool { return max(runMax, r.Timestamp()) >= t })
}

// Read returns up to maxEntries records from entry from on, stopping
// before their data would exceed maxBytes; with atLeastOne the first
// record is returned whatever its size. Records' Data are shared with the
// cache (decoded once per block fetched): read-only. It fetches what it
// needs (ranged GETs of whole blocks) and reads ahead, past its end into
// next: the ledgers that follow this one in log order, which a sequential
// reader reaches next. An error after some records returns those records
// and the error.
func (l *Ledger) Read(ctx context.Context, from int64, maxEntries, maxBytes int, atLeastOne bool, next []*Ledger) ([]segment.Record, error) {
	idx, err := l.LoadIndex(ctx)
	if err != nil {
		return nil, err
	}
	from = max(from, 0)
	if from >= idx.Entries || maxEntries <= 0 {
		return nil, nil
	}
	var out []segment.Record
	size := 0
	for i := idx.blockOfEntry(from); i < len(idx.Blocks) && len(out) < maxEntries; i++ {
		if l.readAhead > 0 {
			// Before waiting for block i, so that its GET and the next
			// ones are in flight together.
			readAhead(l, next, i+1, l.readAhead)
		}
		recs, err := l.block(ctx, idx, i)
		if err != nil {
			return out, err
		}
		k := 0
		if i == idx.blockOfEntry(from) {
			k = sort.Search(len(recs), func(k int) bool { return recs[k].EntryID >= from })
		}
		for ; k < len(recs); k++ {
			r := recs[k]
			if len(out) >= maxEntries {
				return out, nil
			}
			if (len(out) > 0 || !atLeastOne) && size+len(r.Data) > maxBytes {
				return out, nil
			}
			size += len(r.Data)
			out = append(out, r)
		}
	}
	return out, nil
}
