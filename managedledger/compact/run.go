package compact

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/segment"
)

// readBatch bounds one read of the view or the raw log during a compaction.
const (
	readEntries = 512
	readBytes   = 8 << 20
	writeChunk  = 1 << 20
)

// Compact builds the next view of name from its current view and src up to
// p.UpTo and publishes it (see the package doc for what is kept and the
// crash-safety argument). It returns Compacted false, publishing nothing,
// when there is nothing new below p.UpTo. A failure at any step leaves the
// published view as it was; a file it leaves behind is removed by the next
// Compact or Open. ErrConflict: the record changed under it.
func (c *Compactor) Compact(ctx context.Context, name string, src Source, p Params) (Result, error) {
	started := time.Now()
	if p.Now.IsZero() {
		p.Now = started
	}
	lv, err := c.ledger(name)
	if err != nil {
		return Result{}, err
	}
	// run serialises compactions (and deletion) of the ledger; mu is held
	// only to read and swap the state, so reads go on while this runs.
	lv.run.Lock()
	defer lv.run.Unlock()
	lv.mu.Lock()
	if err := c.loadLocked(ctx, name, lv); err != nil {
		lv.mu.Unlock()
		return Result{}, err
	}
	old, version, nextGen := lv.cur, lv.version, lv.nextGen
	holding := false // old's closeMu, shared, while old is read
	if old != nil {
		old.closeMu.RLock()
		if old.closed {
			old.closeMu.RUnlock()
			lv.mu.Unlock()
			return Result{}, ErrClosed
		}
		holding = true
	}
	lv.mu.Unlock()
	release := func() {
		if holding {
			holding = false
			old.closeMu.RUnlock()
		}
	}
	defer release()
	res := Result{}
	var from int64
	if old != nil {
		from = old.info.Cleaned
		res.PreviousCleaned, res.PreviousGeneration = old.info.Cleaned, old.info.Generation
		res.PreviousViewBytes, res.PreviousViewEntryCount = old.info.Bytes, old.info.Entries
	}
	first := p.LogStart                // view entries ending below it go
	from = max(from, src.FirstIndex()) // the raw log is read from here
	res.Cleaned = from
	// With nothing new below UpTo, the view alone is compacted again when
	// it holds tombstones past delete.retention.ms: they would otherwise
	// stay until the next write, and a quiet table never drops them.
	expired := old != nil && old.info.TombstonesExpired(p.Now, p.DeleteRetention)
	if p.UpTo <= from && !expired {
		return res, nil
	}

	// Pass 1: every key's latest offset below the new cleaned point.
	latest := map[string]int64{}
	cleaned := from
	err = c.scan(ctx, old, src, from, p.UpTo, first, func(e *managedledger.Entry, recs []Record) error {
		for i := range recs {
			r := &recs[i]
			if r.Key != nil && !r.Control && !(r.Transactional && p.Aborted != nil && p.Aborted(r.ProducerID, r.Offset)) {
				latest[string(r.Key)] = r.Offset
			}
		}
		cleaned = max(cleaned, e.LastIndex()+1)
		return nil
	})
	if err != nil {
		return res, err
	}
	if cleaned <= from && !expired {
		return res, nil
	}

	// Pass 2: write the new generation.
	gen := max(nextGen, 1)
	if old != nil {
		gen = old.info.Generation + 1
	}
	dir := c.dir(name)
	if err := c.opts.FS.MkdirAll(dir); err != nil {
		return res, err
	}
	path := filepath.Join(dir, fileName(gen))
	f, err := c.opts.FS.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return res, err
	}
	published := false
	defer func() {
		if !published {
			f.Close()
			if err := c.opts.FS.Remove(path); err != nil {
				c.log.Debug("compact: removing unpublished view file", "ledger", name, "file", path, "err", err)
			}
		}
	}()
	w := &fileWriter{f: f, buf: encodeHeader(gen)}
	horizon := p.Now.UnixMilli() - p.DeleteRetention.Milliseconds()
	var index []frameRef
	var kept int64
	var oldestTombstone int64 // publish time of the first kept entry with a tombstone
	err = c.scan(ctx, old, src, from, cleaned, first, func(e *managedledger.Entry, recs []Record) error {
		res.EntriesIn++
		res.RecordsIn += int64(len(recs))
		res.BytesIn += int64(len(e.Data))
		keep := make([]bool, len(recs))
		n := 0
		for i := range recs {
			r := &recs[i]
			switch {
			case r.Control:
				keep[i] = true
			case r.Transactional && p.Aborted != nil && p.Aborted(r.ProducerID, r.Offset):
			case r.Key == nil:
			case latest[string(r.Key)] != r.Offset:
			case r.Tombstone && p.DeleteRetention >= 0 && e.PublishTime < horizon:
				res.TombstonesDropped++
			default:
				keep[i] = true
			}
			if keep[i] {
				n++
				if r.Tombstone && (oldestTombstone == 0 || e.PublishTime < oldestTombstone) {
					oldestTombstone = e.PublishTime
				}
			}
		}
		if n == 0 {
			return nil
		}
		out := *e
		if n < len(recs) {
			data, format, err := c.opts.Codec.Rewrite(e, keep)
			if err != nil {
				return fmt.Errorf("compact: rewriting entry at %d: %w", e.FirstIndex, err)
			}
			out.Data, out.Format = data, format
		}
		off := w.off + int64(len(w.buf))
		w.buf = appendFrame(w.buf, &out)
		index = append(index, frameRef{first: out.FirstIndex, last: out.LastIndex(), pos: out.Position, off: off, size: int32(w.off + int64(len(w.buf)) - off)})
		kept += int64(n)
		res.EntriesOut++
		res.BytesOut += int64(len(out.Data))
		if len(w.buf) >= writeChunk {
			return w.flush()
		}
		return nil
	})
	if err == nil {
		err = w.flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = c.opts.FS.SyncDir(dir)
	}
	if err != nil {
		return res, err
	}
	vr := viewRecord{
		Format: FormatVersion, Generation: gen, Cleaned: cleaned, Entries: int64(len(index)),
		Records: kept, Bytes: w.off, Created: p.Now.UnixMilli(), OldestTombstone: oldestTombstone,
	}
	val, err := json.Marshal(vr)
	if err != nil {
		return res, err
	}
	// Done reading old: let go of it before taking mu (Close retires
	// views under mu and waits for their readers).
	release()
	lv.mu.Lock()
	if !lv.loaded || lv.cur != old || lv.version != version {
		lv.mu.Unlock()
		return res, fmt.Errorf("%w: %s: the view was reloaded or closed", ErrConflict, name)
	}
	expect := version
	if expect == 0 {
		expect = metadata.NotExists
	}
	ver, err := c.opts.Store.Put(ctx, recordPath(name), val, expect)
	if err != nil {
		lv.loaded = false // re-read next time
		lv.mu.Unlock()
		if errors.Is(err, metadata.ErrBadVersion) || errors.Is(err, metadata.ErrExists) || errors.Is(err, metadata.ErrNotFound) {
			return res, fmt.Errorf("%w: %s: %v", ErrConflict, name, err)
		}
		// The put may or may not have happened (ErrUnavailable): the
		// record is re-read on the next call; the file stays until then,
		// and loadLocked keeps it if the record names it.
		published = true
		f.Close()
		return res, err
	}
	published = true
	nv := &view{file: f, index: index, info: Info{
		Generation: gen, Cleaned: cleaned, First: firstOf(index, cleaned), Entries: vr.Entries, Records: kept, Bytes: w.off, Created: p.Now,
		OldestTombstone: unixMilliOrZero(oldestTombstone),
	}}
	lv.version, lv.cur, lv.nextGen = ver, nv, gen+1
	lv.mu.Unlock()
	if old != nil {
		old.retire()
		oldPath := filepath.Join(dir, fileName(old.info.Generation))
		if err := c.opts.FS.Remove(oldPath); err == nil {
			_ = c.opts.FS.SyncDir(dir)
		} else {
			c.log.Warn("compact: removing the previous view file", "ledger", name, "file", oldPath, "err", err)
		}
	}
	res.Compacted, res.Generation, res.Cleaned = true, gen, cleaned
	res.RecordsOut = kept
	res.Duration = time.Since(started)
	c.log.Debug("compact: view published", "ledger", name, "generation", gen, "cleaned", cleaned,
		"entries_in", res.EntriesIn, "entries_out", res.EntriesOut, "bytes_in", res.BytesIn, "bytes_out", res.BytesOut)
	return res, nil
}

// scan calls fn for every entry of the old view (those at or above first)
// and then of src in [from, upTo) (entries starting below upTo), in
// offset order.
func (c *Compactor) scan(ctx context.Context, old *view, src Source, from, upTo, first int64, fn func(e *managedledger.Entry, recs []Record) error) error {
	if old != nil {
		for i := first; ; {
			es, err := old.read(i, readEntries, readBytes)
			if err != nil {
				return err
			}
			if len(es) == 0 {
				break
			}
			for k := range es {
				if es[k].LastIndex() < first {
					continue
				}
				recs, err := c.opts.Codec.Records(&es[k])
				if err != nil {
					return fmt.Errorf("compact: view entry at %d: %w", es[k].FirstIndex, err)
				}
				if err := fn(&es[k], recs); err != nil {
					return err
				}
			}
			i = es[len(es)-1].LastIndex() + 1
		}
	}
	for i := from; i < upTo; {
		if err := ctx.Err(); err != nil {
			return err
		}
		es, err := src.ReadFromIndex(ctx, i, readEntries, readBytes)
		if err != nil {
			return err
		}
		if len(es) == 0 {
			return fmt.Errorf("compact: raw log ends at %d, below %d", i, upTo)
		}
		stop := false
		for k := range es {
			e := &es[k]
			if stop || e.FirstIndex >= upTo {
				stop = true
				e.Release()
				continue
			}
			if e.LastIndex() >= i {
				recs, err := c.opts.Codec.Records(e)
				if err != nil {
					releaseAll(es[k:])
					return fmt.Errorf("compact: entry at %d: %w", e.FirstIndex, err)
				}
				if err := fn(e, recs); err != nil {
					releaseAll(es[k:])
					return err
				}
			}
			i = e.LastIndex() + 1
			e.Release()
		}
		if stop {
			break
		}
	}
	return nil
}

func releaseAll(es []managedledger.Entry) {
	for i := range es {
		es[i].Release()
	}
}

// fileWriter writes a view file in chunks.
type fileWriter struct {
	f   segment.File
	off int64 // bytes written before buf
	buf []byte
}

func (w *fileWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.f.WriteAt(w.buf, w.off); err != nil {
		return err
	}
	w.off += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}
