package managedledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/kopernik-io/kopernik/managedledger/objlog"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/segment"
)

// Cluster mode: the write path in object storage (FactoryOptions.ObjectLog).
//
// A cluster broker keeps no state another broker cannot take over. Its
// appends are acknowledged by the broker's objlog.Log (package objlog): one
// object per flush for every ledger it owns, PUT, then committed through
// etcd in a transaction that requires the ledger's ownership record to
// still hold the value it had when this broker opened the ledger (the
// fence). Only then does an entry become visible and its Wait return.
// There is no local journal, and the local segments are a cache held in
// memory: everything a reader sees is committed in the object log, or
// offloaded (tiered.go).
//
// Opening a ledger in cluster mode always rebuilds it (openCluster): the
// ledger list is read from the metadata store, offloaded ledgers are read
// through the object store, and every other ledger is rebuilt from the
// object log's committed entries, with their positions and message
// indexes unchanged. The active ledger of the previous owner is sealed at
// what it committed (nothing else of it can commit: its owner is fenced)
// and a new ledger is started, as Pulsar's new owner does.
//
// Waiters complete in entry order, from the log's callbacks only (the
// syncer never judges them: an entry's outcome is what etcd recorded). An
// entry that failed fails the ledger: a fenced one (another owner) until
// it is reopened, a storage failure until in-place recovery (recover.go)
// cuts the cache back to the committed entries, once no append of the
// ledger is in flight in the log. Entry ids after a failure are reused,
// which the log's contiguity rule expects. A ledger rolls over only while
// no append is in flight, so that a sealed ledger's length in the list is
// exactly what is committed of it.

// ObjectLogOptions makes a factory a cluster factory.
type ObjectLogOptions struct {
	// Log configures the object-log writer the factory opens (its Fence is
	// the factory's: each open ledger's fence). Objects, Meta, Cluster and
	// Writer are required.
	Log objlog.Options
	// Fence returns the condition under which this broker may commit to
	// the managed ledger name: its ownership record, by value. It is called
	// once when the ledger opens, before anything is read; an error fails
	// the open (this broker does not own the ledger).
	Fence func(ctx context.Context, ledger string) (metadata.Cond, error)
	// CollectInterval is the period of the object log's garbage collection
	// (default 1 minute; < 0: none).
	CollectInterval time.Duration
	// DrainTimeout bounds how long a close waits for the ledger's appends
	// in flight in the log (default 5s); those still in flight then fail
	// with ErrClosed, though they may still commit (an outcome the client
	// does not learn, as with a lost connection: an idempotent producer's
	// retry is deduplicated against the log).
	DrainTimeout time.Duration
}

// ObjectLog returns the factory's object-log reader (cluster mode) and
// whether it has one.
func (f *Factory) ObjectLog() (objlog.Reader, bool) {
	return f.olRead, f.olog != nil
}

// openObjectLog opens the cluster write path (NewFactory).
func (f *Factory) openObjectLog() error {
	o := f.opts.ObjectLog
	if o.Fence == nil {
		return errors.New("managedledger: ObjectLog.Fence is required")
	}
	if o.DrainTimeout <= 0 {
		f.opts.ObjectLog.DrainTimeout = 5 * time.Second
	}
	f.olFences = map[string]metadata.Cond{}
	lo := o.Log
	lo.Fence = f.fenceOf
	if lo.Logger == nil {
		lo.Logger = f.log.With("component", "objlog")
	}
	l, err := objlog.Open(lo)
	if err != nil {
		return err
	}
	f.olog = l
	f.olRead = objlog.Reader{Objects: lo.Objects, Meta: lo.Meta, Cluster: lo.Cluster}
	if o.CollectInterval == 0 {
		o.CollectInterval = time.Minute
	}
	if o.CollectInterval > 0 {
		f.wg.Add(1)
		go f.collectLoop(o.CollectInterval)
	}
	return nil
}

// fenceOf is the log's fence: the condition recorded by the open of the
// ledger. A ledger that is not open (or whose open failed) cannot commit.
func (f *Factory) fenceOf(ledger string) (metadata.Cond, bool) {
	f.olMu.Lock()
	defer f.olMu.Unlock()
	c, ok := f.olFences[ledger]
	return c, ok
}

func (f *Factory) setFence(ledger string, c *metadata.Cond) {
	f.olMu.Lock()
	defer f.olMu.Unlock()
	if c == nil {
		delete(f.olFences, ledger)
	} else {
		f.olFences[ledger] = *c
	}
}

// objlogFenced maps a log error to the managed ledger's errors: ErrFenced
// when ownership moved, ErrClosed, else ErrStorage.
func objlogError(name string, err error) error {
	switch {
	case errors.Is(err, objlog.ErrFenced):
		return fmt.Errorf("%w: %s: %w", ErrFenced, name, err)
	case errors.Is(err, objlog.ErrClosed):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	default:
		return storageError(name, err)
	}
}

// appendObjlogLocked hands the entry just written to the segment's buffer
// (rec, in ledger l) to the log; p completes from objlogDone. ml.mu held.
func (ml *ManagedLedger) appendObjlogLocked(l *ledger, rec *segment.Record, p *Pending) {
	p.info = l.seg.Written()
	ml.mu.waiters = append(ml.mu.waiters, p)
	e := objlog.Entry{Ledger: ml.name, LedgerID: l.id, EntryID: rec.EntryID, Data: appendJFrame(nil, jKindEntry, ml.name, l.id, rec)}
	if ml.olRolling != nil {
		ml.olHeld = append(ml.olHeld, e) // sent once the rollover is recorded
		return
	}
	ml.sendObjlogLocked(e, p)
}

// sendObjlogLocked hands e (p's entry) to the log. ml.mu held.
func (ml *ManagedLedger) sendObjlogLocked(e objlog.Entry, p *Pending) {
	// The log may call back at once (closed): objlogDone takes ml.mu,
	// which this goroutine holds, so such a call runs on its own.
	var returned atomic.Bool
	ml.factory.olog.Append(e, func(err error) {
		if !returned.Load() {
			go ml.objlogDone(p, err)
			return
		}
		ml.objlogDone(p, err)
	})
	returned.Store(true)
}

// Rollover in cluster mode, with appends in flight: the active ledger L
// stays as it is while its successor takes the appends that follow, which
// are held back (not sent to the log) until every append of L has an
// outcome. Then L is sealed at exactly what was committed, the list is
// stored with L sealed and its successor active (fenced), and the held
// appends go to the log. Until then the list is stored without the
// successor (listedLedgersLocked), which holds nothing committed. If an
// append of L failed, or the list cannot be stored, the successor is
// dropped and its held appends fail: the ledger is as if it had not
// rolled, failed, and recovers in place.

// startRollLocked starts such a rollover (rollLocked). ml.mu held.
func (ml *ManagedLedger) startRollLocked() error {
	if ml.olRolling != nil {
		return nil // one at a time
	}
	l := ml.activeLocked()
	if err := ml.addLedgerLocked(ml.mu.next, time.Now()); err != nil {
		ml.failLocked(err)
		return ml.mu.failed
	}
	ml.olRolling = l
	return nil
}

// listedLedgersLocked are the ledgers the stored list names: all but a
// rollover's successor while the rollover waits. ml.mu held.
func (ml *ManagedLedger) listedLedgersLocked() []*ledger {
	if r := ml.olRolling; r != nil {
		for i, l := range ml.mu.ledgers {
			if l == r {
				return ml.mu.ledgers[:i+1]
			}
		}
	}
	return ml.mu.ledgers
}

// finishRollLocked completes a waiting rollover once no append of the
// rolling ledger is in flight (objlogDone). ml.mu held; it may store the
// list (one etcd transaction) on the log's goroutine.
func (ml *ManagedLedger) finishRollLocked() {
	r := ml.olRolling
	if r == nil || (len(ml.mu.waiters) > 0 && ml.mu.waiters[0].entry.Position.LedgerID == r.id) {
		return
	}
	held := ml.olHeld
	ml.olHeld = nil
	ml.olRolling = nil
	waiting := ml.mu.waiters // the held appends, in order
	err := ml.mu.failed
	if len(waiting) != len(held) && err == nil {
		// INVARIANT: once the rolling ledger's waiters are done, the
		// waiters left are exactly the held appends.
		ml.failLocked(fmt.Errorf("managedledger: rollover of ledger %d: %d waiters for %d held appends", r.id, len(waiting), len(held)))
		err = ml.mu.failed
	}
	if err == nil && !ml.mu.closed {
		if err = r.seg.Seal(); err != nil {
			ml.failLocked(err)
		} else {
			ml.publishLocked(r, r.seg.Durable())
			r.sealed, r.closed = true, time.Now()
			if err = ml.persistLocked(context.Background()); err != nil {
				ml.failLocked(err)
			}
		}
		err = ml.mu.failed
	} else if err == nil {
		err = ErrClosed
	}
	if err == nil {
		for i, e := range held {
			ml.sendObjlogLocked(e, waiting[i])
		}
		ml.log.Debug("managedledger: rolled over with appends in flight", "sealed", r.id, "entries", r.entries)
		ml.factory.olHeldRolls.Add(1)
		ml.offloadSoonLocked()
		return
	}
	// Drop the successor: nothing of it was sent.
	if n := len(ml.mu.ledgers); n > 0 && ml.mu.ledgers[n-1] != r {
		succ := ml.mu.ledgers[n-1]
		ml.mu.ledgers = ml.mu.ledgers[:n-1]
		if succ.seg != nil {
			succ.seg.Close()
			segment.RemoveFiles(ml.segOpts, succ.id)
		}
	}
	for _, w := range waiting {
		w.olKnown, w.olErr = true, err
	}
}

// objlogDone records p's outcome and completes waiters from the oldest
// while their outcomes are known: committed ones become visible (the
// cache's buffered bytes are written first), failed ones fail the ledger.
// Outcomes may arrive out of order (a fenced flush fails before an earlier
// flush commits); completions never do.
func (ml *ManagedLedger) objlogDone(p *Pending, err error) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	p.olKnown, p.olErr = true, err
	if err != nil {
		cause := objlogError(ml.name, err)
		if !ml.mu.closed || !errors.Is(cause, ErrClosed) {
			ml.failLocked(cause)
		}
	}
	for len(ml.mu.waiters) > 0 && ml.mu.waiters[0].olKnown {
		w := ml.mu.waiters[0]
		ml.mu.waiters[0] = nil
		ml.mu.waiters = ml.mu.waiters[1:]
		fail := w.olErr
		if fail == nil {
			l := ml.ledgerLocked(w.entry.Position.LedgerID)
			if l == nil {
				fail = ErrClosed // not reachable: ledgers with waiters are not deleted
			} else if _, werr := l.seg.Write(); werr != nil {
				// Committed, so durable: the cache failed, not the log.
				ml.failLocked(werr)
			} else {
				ml.publishLocked(l, w.info)
			}
		} else {
			fail = objlogError(ml.name, fail)
		}
		if obs := ml.factory.opts.Observer; obs != nil && fail == nil {
			obs.AppendLatency(time.Since(w.start))
		}
		ml.finishLocked(w, fail)
		if len(ml.mu.waiters) == 0 || ml.mu.waiters[0].entry.Position.LedgerID != w.entry.Position.LedgerID {
			ml.finishRollLocked() // may mark the held appends failed: they complete in this loop
		}
	}
	if len(ml.mu.waiters) == 0 && ml.olDrained != nil {
		close(ml.olDrained)
		ml.olDrained = nil
	}
}

// drainObjlog waits (close) until no append of the ledger is in flight in
// the log, for at most the drain timeout. ml.mu is not held.
func (ml *ManagedLedger) drainObjlog() {
	ml.mu.Lock()
	if len(ml.mu.waiters) == 0 {
		ml.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	ml.olDrained = ch
	ml.mu.Unlock()
	t := time.NewTimer(ml.factory.opts.ObjectLog.DrainTimeout)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
		ml.log.Warn("managedledger: close: appends still in flight in the object log fail as closed")
	}
}

// objlogBusyLocked reports whether appends of the ledger are in flight in
// the log (cluster mode); ml.mu held.
func (ml *ManagedLedger) objlogBusyLocked() bool {
	return ml.factory.olog != nil && len(ml.mu.waiters) > 0
}

// openCluster rebuilds the ledger of list record rec from the object log
// and the offloaded objects (see the top of this file). ml.mu is not
// contended (the ledger is not published yet).
func (ml *ManagedLedger) openCluster(ctx context.Context, rec metadata.Record) error {
	list, err := decodeLedgerList(ml.name, rec.Value)
	if err != nil {
		return err
	}
	ml.mu.metaVersion = rec.Version
	ml.mu.nextLedgerID = list.NextLedgerID
	ml.mu.truncBefore = list.TruncateBefore
	// Ledgers to rebuild from the log, by id; replay starts after the last
	// offloaded one (the log releases what is offloaded).
	rebuild := map[int64]*ledger{}
	after := objlog.Position{LedgerID: -1, EntryID: math.MaxInt64}
	for i, lm := range list.Ledgers {
		l := &ledger{
			id: lm.ID, firstIndex: lm.FirstIndex, entries: lm.Entries, bytes: lm.Bytes, maxTs: lm.MaxTimestamp,
			created: time.UnixMilli(lm.Created), sealed: lm.Sealed,
		}
		if lm.Closed != 0 {
			l.closed = time.UnixMilli(lm.Closed)
		}
		if !lm.Sealed && i != len(list.Ledgers)-1 {
			return fmt.Errorf("%w: unsealed ledger %d is not the last", ErrCorrupt, lm.ID)
		}
		off, _, err := ml.offloadInfoOf(lm.ID, lm.Offload)
		if err != nil {
			return err
		}
		if off != nil && lm.Sealed {
			off.localDeleted = true // no local copy in a cluster: read from the objects
			l.off = off
			after = objlog.Position{LedgerID: lm.ID, EntryID: math.MaxInt64}
		} else {
			seg, err := segment.Create(ml.segOpts, lm.ID, lm.FirstIndex, l.created)
			if err != nil {
				return storageError(ml.name, fmt.Errorf("rebuild ledger %d: %w", lm.ID, err))
			}
			l.seg = seg
			rebuild[lm.ID] = l
		}
		ml.mu.ledgers = append(ml.mu.ledgers, l)
	}
	replayed := 0
	if len(rebuild) > 0 {
		snap, err := ml.factory.objlogSnapshot(ctx)
		if err != nil {
			return fmt.Errorf("managedledger: %s: reading the object log's index: %w", ml.name, err)
		}
		err = ml.factory.olRead.ReplaySnapshot(ctx, snap, ml.name, after, func(e objlog.Entry) error {
			l := rebuild[e.LedgerID]
			if l == nil {
				return nil // an offloaded ledger, or one no list names (a failed open's)
			}
			if l.sealed && e.EntryID >= l.entries {
				return nil // past a sealed ledger's end: never visible
			}
			recs, _, why := decodeJFrames(e.Data, 0)
			if why != nil || len(recs) != 1 || recs[0].name != ml.name || recs[0].ledgerID != e.LedgerID || recs[0].rec.EntryID != e.EntryID {
				return fmt.Errorf("%w: object log entry %d/%d does not decode: %v", ErrCorrupt, e.LedgerID, e.EntryID, why)
			}
			if _, err := l.seg.Append(&recs[0].rec); err != nil {
				return fmt.Errorf("%w: object log entry %d/%d: %w", ErrCorrupt, e.LedgerID, e.EntryID, err)
			}
			replayed++
			return nil
		})
		if err != nil {
			if errors.Is(err, objlog.ErrCorrupt) {
				return fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
			return fmt.Errorf("managedledger: %s: replay from the object log: %w", ml.name, err)
		}
	}
	for _, l := range ml.mu.ledgers {
		if l.seg == nil {
			continue
		}
		info, err := l.seg.Sync()
		if err != nil {
			return storageError(ml.name, err)
		}
		if l.sealed {
			if info.Entries != l.entries {
				return fmt.Errorf("%w: sealed ledger %d has %d entries in the object log, the list says %d", ErrCorrupt, l.id, info.Entries, l.entries)
			}
			if err := l.seg.Seal(); err != nil {
				return storageError(ml.name, err)
			}
			continue
		}
		l.entries, l.bytes, l.maxTs = info.Entries, info.Size, info.MaxTimestamp
	}
	dirty := true
	if n := len(ml.mu.ledgers); n == 0 {
		if err := ml.addLedgerLocked(0, time.Now()); err != nil {
			return err
		}
	} else if last := ml.mu.ledgers[n-1]; last.sealed || last.entries > 0 {
		// The previous owner's active ledger ends at what it committed.
		next := last.firstIndex
		switch {
		case last.off != nil:
			idx, err := last.off.rd.LoadIndex(ctx)
			if err != nil {
				return tieredError(err)
			}
			next = idx.NextIndex
		default:
			next = last.seg.Durable().NextIndex
		}
		if !last.sealed {
			if err := last.seg.Seal(); err != nil {
				return storageError(ml.name, err)
			}
			last.sealed, last.closed = true, time.Now()
		}
		if err := ml.addLedgerLocked(next, time.Now()); err != nil {
			return err
		}
	} else {
		dirty = false // an empty active ledger: keep appending to it
	}
	if dirty {
		// The list's compare-and-swap fences a concurrent open elsewhere.
		if err := ml.persistLocked(ctx); err != nil {
			return err
		}
	}
	active := ml.activeLocked()
	ml.mu.next = active.seg.Durable().NextIndex
	ml.mu.nextEntry = active.entries
	ml.mu.visNext = ml.mu.next
	ml.mu.lastConfirmed = ml.prevPositionLocked(ml.nextWritePosLocked())
	if lc := ml.mu.lastConfirmed; lc.EntryID >= 0 {
		if h, err := ml.headerLocked(lc); err == nil {
			ml.mu.lastPub = h.PublishTime
		}
	}
	ml.recomputeFirstLocked()
	ml.log.Info("managedledger: rebuilt from the object log", "ledgers", len(ml.mu.ledgers), "replayed", replayed, "next_index", ml.mu.next)
	return nil
}

// removeLocalFiles deletes every segment file of the ledger (cluster mode:
// a cache left by an earlier open of this process may be stale, as another
// broker may have appended since).
func (ml *ManagedLedger) removeLocalFiles() error {
	names, err := ml.factory.fs.List(ml.segOpts.Dir)
	if err != nil {
		return nil // no directory: nothing cached
	}
	for _, n := range names {
		if id, ok := segment.ParseName(n); ok {
			if err := segment.RemoveFiles(ml.segOpts, id); err != nil {
				return storageError(ml.name, err)
			}
		}
	}
	return nil
}

// decodeLedgerList parses a ledger-list record.
func decodeLedgerList(name string, b []byte) (ledgerListRecord, error) {
	var list ledgerListRecord
	if err := json.Unmarshal(b, &list); err != nil {
		return list, fmt.Errorf("%w: ledger list of %s: %v", ErrCorrupt, name, err)
	}
	if list.Format > metaFormat {
		return list, fmt.Errorf("%w: ledger list format %d is newer than %d", ErrCorrupt, list.Format, metaFormat)
	}
	return list, nil
}

// openClusterLedger is openLedger in cluster mode: the fence first, then
// the ledger rebuilt from the metadata store and the object log.
func openClusterLedger(ctx context.Context, f *Factory, ml *ManagedLedger, cfg Config) (_ *ManagedLedger, err error) {
	ml.mu.cfg = cfg
	ml.mu.changed = make(chan struct{})
	ml.mu.cursors = make(map[string]*Cursor)
	fence, err := f.opts.ObjectLog.Fence(ctx, ml.name)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFenced, ml.name, err)
	}
	// Set before the ledger is read: whatever the previous owner commits
	// from now on fails (its fence is another value), so what is read is
	// final. Cleared again if the open fails, and when the ledger closes.
	f.setFence(ml.name, &fence)
	defer func() {
		if err != nil {
			f.setFence(ml.name, nil)
		}
	}()
	if err := ml.removeLocalFiles(); err != nil {
		return nil, err
	}
	if err := f.fs.MkdirAll(ml.segOpts.Dir); err != nil {
		return nil, fmt.Errorf("managedledger: %w", err)
	}
	rec, err := ml.store.Get(ctx, ledgerPath(ml.name))
	switch {
	case errors.Is(err, metadata.ErrNotFound):
		if err := ml.createFirstLedgerLocked(ctx); err != nil { // no journal here: a durable file
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		if err := ml.openCluster(ctx, rec); err != nil {
			ml.closeSegmentsLocked()
			return nil, err
		}
	}
	if err := ml.loadCursors(ctx); err != nil {
		ml.closeSegmentsLocked()
		return nil, err
	}
	ml.startSyncer()
	ml.mu.Lock()
	ml.offloadSoonLocked() // what the previous owner sealed, and what this open did
	ml.mu.Unlock()
	return ml, nil
}

// offloadSoonLocked starts, in cluster mode with an object store for
// offloads, the offload of every sealed ledger not yet offloaded (a new
// owner reads them from there), then releases them from the object log
// (its small objects are collected once every range in them is released)
// and drops their cached copies. ml.mu held; the work runs outside it.
func (ml *ManagedLedger) offloadSoonLocked() {
	f := ml.factory
	if f.olog == nil || f.offloader == nil || ml.mu.closed {
		return
	}
	ml.bg.Add(1)
	go func() {
		defer ml.bg.Done()
		ctx, cancel := context.WithTimeout(ml.bgCtx, 5*time.Minute)
		defer cancel()
		if err := ml.Offload(ctx, Latest); err != nil {
			if !errors.Is(err, ErrClosed) {
				ml.log.Warn("managedledger: offloading sealed ledgers (cluster)", "err", err)
			}
			// What did offload is released below all the same.
		}
		ml.mu.Lock()
		upTo := int64(-1)
		for _, l := range ml.mu.ledgers[:len(ml.mu.ledgers)-1] {
			if l.off == nil || !l.off.complete {
				break
			}
			upTo = l.id
		}
		ml.mu.Unlock()
		if upTo < 0 {
			return
		}
		if err := f.olRead.Release(ctx, ml.name, objlog.Position{LedgerID: upTo, EntryID: math.MaxInt64}); err != nil && ctx.Err() == nil {
			ml.log.Warn("managedledger: releasing offloaded ledgers from the object log", "up_to_ledger", upTo, "err", err)
		}
		if err := ml.deleteOffloadedLocal(ctx); err != nil && !errors.Is(err, ErrClosed) {
			ml.log.Warn("managedledger: dropping cached copies of offloaded ledgers", "err", err)
		}
	}()
}

// collectLoop garbage-collects the object log every interval (cluster
// mode): objects all of whose ranges are released (offloaded into
// per-ledger objects), and orphans of failed or fenced flushes. Any broker
// may collect; collections racing each other delete the same things.
func (f *Factory) collectLoop(interval time.Duration) {
	defer f.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	lo := f.opts.ObjectLog.Log
	orphanAge := lo.OrphanAge
	if orphanAge <= 0 {
		orphanAge = objlog.DefaultOrphanAge
	}
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), interval)
		n, err := f.olRead.Collect(ctx, lo.Prefix, orphanAge)
		cancel()
		if err != nil {
			f.log.Warn("managedledger: object log collection", "deleted", n, "err", err)
		} else if n > 0 {
			f.log.Info("managedledger: object log collected", "objects_deleted", n)
		}
		f.olCollected.Add(int64(n))
	}
}

// putFenced is the metadata store's Put (compare-and-swap on expected) for
// the ledger's own records — its ledger list and cursors — in cluster mode
// conditioned on the ledger's fence as well, in one transaction: a broker
// that lost the ledger can no longer write them, so that a zombie's
// rollover, offload or cursor flush cannot make the new owner's
// compare-and-swaps fail. Standalone, it is Put.
func (ml *ManagedLedger) putFenced(ctx context.Context, path string, value []byte, expected int64) (int64, error) {
	f := ml.factory
	tx, ok := f.opts.Store.(metadata.Transactor)
	if f.olog == nil || !ok || expected == metadata.AnyVersion {
		return ml.store.Put(ctx, path, value, expected)
	}
	fence, ok := f.fenceOf(ml.name)
	if !ok {
		return 0, fmt.Errorf("%w: %s: not open on this broker", ErrFenced, ml.name)
	}
	own := metadata.Cond{Path: path, Version: expected}
	if expected == metadata.NotExists {
		own = metadata.Cond{Path: path, Absent: true}
	}
	if err := tx.Txn(ctx, []metadata.Cond{fence, own}, []metadata.Op{{Path: path, Value: value}}); err != nil {
		return 0, err // a *TxnFailedError is an ErrBadVersion: fenced
	}
	if expected == metadata.NotExists {
		return 1, nil
	}
	return expected + 1, nil
}

// snapshotRead is one read of the object log's index shared by the opens
// that asked for it.
type snapshotRead struct {
	done chan struct{}
	snap *objlog.Snapshot
	err  error
}

// objlogSnapshot returns an index snapshot read after this call began
// (so that it holds everything committed before the caller's fence was
// set), sharing reads between concurrent callers: a failover opens many
// ledgers at once, and each would otherwise read the whole index.
func (f *Factory) objlogSnapshot(ctx context.Context) (*objlog.Snapshot, error) {
	f.olMu.Lock()
	r := f.olNextRead
	if r == nil {
		r = &snapshotRead{done: make(chan struct{})}
		f.olNextRead = r
		if !f.olReading {
			f.startSnapshotLocked()
		}
	}
	f.olMu.Unlock()
	select {
	case <-r.done:
		return r.snap, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startSnapshotLocked starts the read of olNextRead; when it ends, a read
// requested meanwhile starts. f.olMu held.
func (f *Factory) startSnapshotLocked() {
	r := f.olNextRead
	f.olNextRead = nil
	f.olReading = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		r.snap, r.err = f.olRead.Snapshot(ctx)
		cancel()
		close(r.done)
		f.olMu.Lock()
		f.olReading = false
		if f.olNextRead != nil {
			f.startSnapshotLocked()
		}
		f.olMu.Unlock()
	}()
}
