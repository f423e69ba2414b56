package offload

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kopernik-io/kopernik/objectstore"
	"github.com/kopernik-io/kopernik/segment"
)

// Cache holds decoded blocks of offloaded ledgers, at most a byte budget
// (least recently used first out), shared by every reader of a factory.
// It also deduplicates concurrent fetches of a block and runs read-ahead.
type Cache struct {
	ctx    context.Context // ends read-ahead at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		max      int64
		used     int64
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
	key  blockKey
	recs []segment.Record
	size int64
}

type fetchCall struct {
	done chan struct{}
	recs []segment.Record
	err  error
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
	c.cancel()
	c.wg.Wait()
}

// Used returns the bytes cached now.
func (c *Cache) Used() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.used
}

func (c *Cache) get(k blockKey) ([]segment.Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.mu.blocks[k]; ok {
		c.mu.lru.MoveToFront(e)
		return e.Value.(*cachedBlock).recs, true
	}
	return nil, false
}

// putLocked caches a block, evicting the least recently used ones. The
// newest block always stays, even one larger than the budget: a lookup
// that fetched it (Miss.Fetch) must find it when it tries again. So the
// cache holds at most max(budget, largest block).
func (c *Cache) putLocked(k blockKey, recs []segment.Record, size int64) {
	if _, ok := c.mu.blocks[k]; ok {
		return
	}
	c.mu.blocks[k] = c.mu.lru.PushFront(&cachedBlock{key: k, recs: recs, size: size})
	c.mu.used += size
	for c.mu.used > c.mu.max && c.mu.lru.Len() > 1 {
		e := c.mu.lru.Back()
		b := e.Value.(*cachedBlock)
		c.mu.lru.Remove(e)
		delete(c.mu.blocks, b.key)
		c.mu.used -= b.size
	}
}

// Drop forgets every cached block of the data object (its ledger was
// deleted).
func (c *Cache) Drop(dataKey string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.mu.blocks {
		if k.data == dataKey {
			c.mu.lru.Remove(e)
			delete(c.mu.blocks, k)
			c.mu.used -= e.Value.(*cachedBlock).size
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

	mu  sync.Mutex
	idx *Index // nil until loaded
}

// NewLedger returns a reader of the objects dataKey and indexKey.
// readAhead blocks after the one a Read needs are fetched in the background
// (< 0: none; 0: 3, which keeps about four GETs in flight in a sequential
// read: what a local S3 server needed to reach its GET throughput).
func NewLedger(store objectstore.Store, cache *Cache, dataKey, indexKey string, readAhead int) *Ledger {
	if readAhead == 0 {
		readAhead = 3
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

// LoadIndex reads the index object unless it is in memory.
func (l *Ledger) LoadIndex(ctx context.Context) (*Index, error) {
	if idx := l.index(); idx != nil {
		return idx, nil
	}
	b, err := l.store.Get(ctx, l.indexKey, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("offload: index %s: %w", l.indexKey, err)
	}
	idx, err := DecodeIndex(b)
	if err != nil {
		return nil, fmt.Errorf("offload: index %s: %w", l.indexKey, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.idx == nil {
		l.idx = &idx
	}
	return l.idx, nil
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
// concurrent fetches of the same block).
func (l *Ledger) block(ctx context.Context, idx *Index, i int) ([]segment.Record, error) {
	k := blockKey{l.dataKey, i}
	c := l.cache
	c.mu.Lock()
	if e, ok := c.mu.blocks[k]; ok {
		c.mu.lru.MoveToFront(e)
		c.mu.Unlock()
		return e.Value.(*cachedBlock).recs, nil
	}
	if call, ok := c.mu.inflight[k]; ok {
		c.mu.Unlock()
		select {
		case <-call.done:
			return call.recs, call.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	call := &fetchCall{done: make(chan struct{})}
	c.mu.inflight[k] = call
	c.mu.Unlock()

	bl := idx.Blocks[i]
	b, err := l.store.Get(ctx, l.dataKey, bl.Offset, bl.Length)
	if err != nil {
		call.err = fmt.Errorf("offload: %s block %d: %w", l.dataKey, i, err)
	} else if call.recs, err = DecodeBlock(b, bl); err != nil {
		call.err = fmt.Errorf("offload: %s block %d: %w", l.dataKey, i, err)
	}
	c.mu.Lock()
	delete(c.mu.inflight, k)
	if call.err == nil {
		c.putLocked(k, call.recs, bl.Length)
	}
	c.mu.Unlock()
	close(call.done)
	return call.recs, call.err
}

// prefetch starts background fetches of the blocks after i.
func (l *Ledger) prefetch(idx *Index, i int) {
	for j := i + 1; j <= i+l.readAhead && j < len(idx.Blocks); j++ {
		k := blockKey{l.dataKey, j}
		c := l.cache
		c.mu.Lock()
		_, cached := c.mu.blocks[k]
		_, busy := c.mu.inflight[k]
		c.mu.Unlock()
		if cached || busy || c.ctx.Err() != nil {
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
			defer cancel()
			l.block(ctx, idx, j) // an error is seen again by the read that needs the block
		}()
	}
}

// Warm starts, in the background, loading the index and the first blocks
// (as many as the read-ahead): a sequential reader about to reach this
// ledger from the previous one then finds them cached, and the read-ahead
// pipeline does not drain at every ledger boundary.
func (l *Ledger) Warm() {
	c := l.cache
	if c.ctx.Err() != nil || l.readAhead == 0 {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
		defer cancel()
		if idx, err := l.LoadIndex(ctx); err == nil {
			if len(idx.Blocks) > 0 {
				l.block(ctx, idx, 0)
			}
			l.prefetch(idx, 0)
		}
	}()
}

// NearEnd reports whether entry id lies in the last blocks of the ledger,
// those after which a sequential read's read-ahead would run off its end
// (then the caller warms the next ledger).
func (l *Ledger) NearEnd(id int64) bool {
	idx := l.index()
	return idx != nil && idx.blockOfEntry(id) >= len(idx.Blocks)-1-l.readAhead
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
// cache: read-only. It fetches what it needs (ranged GETs of whole blocks)
// and reads ahead. An error after some records returns those records and
// the error.
func (l *Ledger) Read(ctx context.Context, from int64, maxEntries, maxBytes int, atLeastOne bool) ([]segment.Record, error) {
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
		recs, err := l.block(ctx, idx, i)
		if err != nil {
			return out, err
		}
		l.prefetch(idx, i)
		for k := range recs {
			r := recs[k]
			if r.EntryID < from {
				continue
			}
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
