package managedledger

import (
	"sort"
	"time"
)

// The entry cache keeps the most recently appended entries of each managed
// ledger in memory, so that readers keeping up with the producers (and
// consumers that start right after a burst) are served without reading,
// and checksumming, ledger files: Pulsar's managed-ledger cache.
//
// What is cached is a copy of the bytes the producer sent, taken at
// append (before the ledger's lock): it never went through a file, so
// serving it needs no checksum. Entries read from files are always
// checksummed.
//
// Memory: all ledgers of a factory share FactoryOptions.CacheBytes. A
// ledger appending past the budget evicts its own oldest entries; if it has
// none left, it does not cache (another ledger holds the budget until its
// entries age out). Entries older than FactoryOptions.CacheMaxAge, and
// those below the first retained entry, are dropped by the factory's
// cursor-flush pass. In-memory factories (no Dir) do not cache: their
// files are memory already.
//
// INVARIANT: ml.mu.cache.entries are the most recently appended entries
// of the managed ledger, in log order with no gap, the last one being the
// last entry appended (visible or not). Their Data is never modified.

// entryCache is a managed ledger's cached run of entries. Guarded by
// ManagedLedger.mu.
type entryCache struct {
	entries []Entry // oldest first; Data owned by the cache, read-only
	bytes   int64
}

// cacheAppendLocked caches e, just appended (position and indexes
// assigned), whose Data is the cache's own copy, evicting the ledger's
// oldest entries to stay within the factory's budget.
func (ml *ManagedLedger) cacheAppendLocked(e Entry) {
	f := ml.factory
	c := &ml.mu.cache
	n := int64(len(e.Data))
	for f.cacheUsed.Load()+n > f.cacheBudget && len(c.entries) > 0 {
		ml.cacheDropOldestLocked()
	}
	if f.cacheUsed.Load()+n > f.cacheBudget {
		return // the run is empty: skipping keeps it gap-free
	}
	e.release = nil
	c.entries = append(c.entries, e)
	c.bytes += n
	f.cacheUsed.Add(n)
}

func (ml *ManagedLedger) cacheDropOldestLocked() {
	c := &ml.mu.cache
	n := int64(len(c.entries[0].Data))
	c.entries[0] = Entry{} // let the GC have the data
	c.entries = c.entries[1:]
	c.bytes -= n
	ml.factory.cacheUsed.Add(-n)
}

// cacheClearLocked drops every cached entry (close, storage failure).
func (ml *ManagedLedger) cacheClearLocked() {
	c := &ml.mu.cache
	ml.factory.cacheUsed.Add(-c.bytes)
	*c = entryCache{}
}

// cacheTrim drops cached entries older than maxAge or below the first
// retained entry. Called periodically by the factory.
func (ml *ManagedLedger) cacheTrim(maxAge time.Duration) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	c := &ml.mu.cache
	cutoff := time.Now().Add(-maxAge).UnixMilli()
	for len(c.entries) > 0 && (c.entries[0].PublishTime < cutoff || c.entries[0].Position.Less(ml.mu.firstPos)) {
		ml.cacheDropOldestLocked()
	}
	if len(c.entries) == 0 && cap(c.entries) > 0 {
		c.entries = nil // do not keep an emptied array
	}
}

// cacheFindIndexLocked returns the position of the cached entry holding
// message index (which the caller checked is visible), if cached.
func (ml *ManagedLedger) cacheFindIndexLocked(index int64) (Position, bool) {
	es := ml.mu.cache.entries
	if len(es) == 0 || index < es[0].FirstIndex || index > es[len(es)-1].LastIndex() {
		return Position{}, false
	}
	i := sort.Search(len(es), func(i int) bool { return es[i].LastIndex() >= index })
	return es[i].Position, true
}

// cacheReadLocked returns the visible entries from start on, within
// maxEntries and maxBytes (at least one if atLeastOne), if the cache holds
// start; ok is false otherwise. The entries' Data is shared with the
// cache: read-only.
func (ml *ManagedLedger) cacheReadLocked(start Position, maxEntries, maxBytes int, atLeastOne bool) (out []Entry, ok bool) {
	es := ml.mu.cache.entries
	if len(es) == 0 || start.Less(es[0].Position) || es[len(es)-1].Position.Less(start) {
		return nil, false
	}
	i := sort.Search(len(es), func(i int) bool { return !es[i].Position.Less(start) })
	if es[i].Position != start {
		return nil, false
	}
	size := 0
	var l *ledger
	for _, e := range es[i:] {
		if len(out) >= maxEntries || (len(out) > 0 || !atLeastOne) && size+len(e.Data) > maxBytes {
			break
		}
		if l == nil || l.id != e.Position.LedgerID {
			if l = ml.ledgerLocked(e.Position.LedgerID); l == nil {
				break
			}
		}
		if e.Position.EntryID >= l.entries {
			break // not visible yet
		}
		size += len(e.Data)
		out = append(out, e)
	}
	return out, true
}
