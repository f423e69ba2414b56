package broker

// Topic compaction: one mechanism (package managedledger/compact) behind
// Kafka's cleanup.policy=compact and Pulsar's topic compaction.
//
// A partition is compacted when its effective policies say so
// (EffectivePolicies.Compacting: cleanup.policy compact or compact,delete,
// or a Pulsar compactionThreshold > 0) by the broker's compaction pass
// (Options.CompactionInterval, default 30 s), or on demand (Compact; Pulsar's
// PUT .../compaction). A pass compacts a partition's sealed ledgers (never
// the active one, as Kafka never cleans the active segment: segment.ms and
// segment.bytes decide how soon records become compactable) that are older
// than min.compaction.lag.ms and below the last stable offset, when the
// dirty ratio (bytes written since the cleaned point / (those + the view's
// bytes)) reaches min.cleanable.dirty.ratio, or when the oldest dirty ledger
// is older than max.compaction.lag.ms, or (Pulsar) when the dirty bytes
// reach compactionThreshold. A manual compaction takes everything visible
// and below the last stable offset, the active ledger included, as Pulsar
// compacts up to the last message.
//
// Readers: ReadCompacted serves the view below its cleaned point and the raw
// log from there (Kafka fetches of a compacting topic, readCompacted Pulsar
// consumers); every other read sees the raw log, which compaction never
// changes.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/managedledger/compact"
)

// Kafka cleanup.policy values (normalised: "delete,compact" is CleanupCompactDelete).
const (
	CleanupDelete        = "delete"
	CleanupCompact       = "compact"
	CleanupCompactDelete = "compact,delete"
)

// ErrCompactionRunning: a manual compaction was asked while one runs
// (Pulsar answers 409 Conflict, hence ErrAlreadyExists).
var ErrCompactionRunning = fmt.Errorf("%w: compaction already in progress", ErrAlreadyExists)

// NormalizeCleanupPolicy returns the canonical form of a cleanup.policy
// list, or an error for a value Kafka refuses.
func NormalizeCleanupPolicy(v string) (string, error) {
	var compactOn, deleteOn bool
	for _, s := range strings.Split(v, ",") {
		switch strings.TrimSpace(strings.ToLower(s)) {
		case CleanupCompact:
			compactOn = true
		case CleanupDelete:
			deleteOn = true
		default:
			return "", fmt.Errorf("%w: cleanup.policy %q: each value must be compact or delete", ErrInvalidConfig, v)
		}
	}
	switch {
	case compactOn && deleteOn:
		return CleanupCompactDelete, nil
	case compactOn:
		return CleanupCompact, nil
	}
	return CleanupDelete, nil
}

func (p Policies) validateCompaction() []string {
	var errs []string
	if p.CleanupPolicy != nil {
		if n, err := NormalizeCleanupPolicy(*p.CleanupPolicy); err != nil || n != *p.CleanupPolicy {
			errs = append(errs, fmt.Sprintf("cleanupPolicy %q must be one of %v", *p.CleanupPolicy, []string{CleanupDelete, CleanupCompact, CleanupCompactDelete}))
		}
	}
	if r := p.MinCleanableDirtyRatio; r != nil && (*r < 0 || *r > 1 || math.IsNaN(*r)) {
		errs = append(errs, fmt.Sprintf("minCleanableDirtyRatio %v must be in [0, 1]", *r))
	}
	if d := p.MinCompactionLag; d != nil && *d < 0 {
		errs = append(errs, fmt.Sprintf("minCompactionLag %s must be >= 0", *d))
	}
	if d := p.MaxCompactionLag; d != nil && *d <= 0 {
		errs = append(errs, fmt.Sprintf("maxCompactionLag %s must be > 0", *d))
	}
	if d := p.DeleteRetention; d != nil && *d < 0 {
		errs = append(errs, fmt.Sprintf("deleteRetention %s must be >= 0", *d))
	}
	if n := p.CompactionThreshold; n != nil && *n < 0 {
		errs = append(errs, fmt.Sprintf("compactionThreshold %d must be >= 0", *n))
	}
	return errs
}

func (e EffectivePolicies) resolveCompaction(p Policies) EffectivePolicies {
	if p.CleanupPolicy != nil {
		e.CleanupPolicy = *p.CleanupPolicy
	}
	if p.MinCleanableDirtyRatio != nil {
		e.MinCleanableDirtyRatio = *p.MinCleanableDirtyRatio
	}
	if p.MinCompactionLag != nil {
		e.MinCompactionLag = *p.MinCompactionLag
	}
	if p.MaxCompactionLag != nil {
		e.MaxCompactionLag = *p.MaxCompactionLag
	}
	if p.DeleteRetention != nil {
		e.DeleteRetention = *p.DeleteRetention
	}
	if p.CompactionThreshold != nil {
		e.CompactionThreshold = *p.CompactionThreshold
	}
	return e
}

// KafkaCompacted reports whether cleanup.policy includes compact: Kafka
// readers then read the compacted view, and keyless records are refused.
func (e EffectivePolicies) KafkaCompacted() bool {
	return e.CleanupPolicy == CleanupCompact || e.CleanupPolicy == CleanupCompactDelete
}

// Compacting reports whether the background pass compacts the topic.
func (e EffectivePolicies) Compacting() bool { return e.KafkaCompacted() || e.CompactionThreshold > 0 }

// CompactionState is a compaction's state as Pulsar reports it
// (LongRunningProcessStatus).
type CompactionState string

const (
	CompactionNotRun  CompactionState = "NOT_RUN"
	CompactionRunning CompactionState = "RUNNING"
	CompactionSuccess CompactionState = "SUCCESS"
	CompactionError   CompactionState = "ERROR"
)

// CompactionStatus is a partition's last compaction.
type CompactionStatus struct {
	State     CompactionState
	LastError string
	// Cleaned is the published view's cleaned index (0: none);
	// ViewEntries and ViewBytes are that view's entries and file size.
	Cleaned                int64
	ViewEntries, ViewBytes int64
	Last                   compact.Result
	LastRun                time.Time
	// Released is the bytes of raw ledgers the last run released
	// (cleanup.policy compact only).
	Released int64
	// LastSuccess and LastFailure are when a run last published a view
	// (or found nothing to do) and last failed; LastRemoved is how many
	// records the last published view left out (Pulsar's
	// lastCompactionRemovedEventCount).
	LastSuccess, LastFailure time.Time
	LastRemoved              int64
	// Totals add up the partition's runs since it was loaded.
	Totals CompactionTotals
}

// CompactionTotals add up a partition's compaction runs since it was
// loaded (the /metrics counters; Pulsar's pulsar_compaction_*).
type CompactionTotals struct {
	// Compacted counts runs that published a view; Failed, runs that
	// failed (a run with nothing to do counts in neither).
	Compacted, Failed int64
	// RecordsRemoved: records a published run left out (superseded,
	// expired tombstones, aborted, keyless), each counted once: a run
	// reads the previous view, which no longer holds them.
	RecordsRemoved int64
	// BytesIn and BytesOut: entry bytes the published runs read (the
	// previous view and the raw log) and wrote (the new view).
	BytesIn, BytesOut int64
	// Duration sums the published runs' durations.
	Duration time.Duration
	// Released: bytes of raw ledgers released after runs (compact only).
	Released int64
}

// compaction is a partition's compaction state.
type compaction struct {
	run sync.Mutex // serialises runs
	mu  sync.Mutex
	st  CompactionStatus
}

// Compactor is the broker's view store; nil when compaction is off.
func (b *Broker) Compactor() *compact.Compactor { return b.compactor }

// CompactionStatus returns the partition's last compaction.
func (p *Partition) CompactionStatus() CompactionStatus {
	p.compaction.mu.Lock()
	st := p.compaction.st
	p.compaction.mu.Unlock()
	if st.State == "" {
		st.State = CompactionNotRun
	}
	if c := p.b.compactor; c != nil {
		if info, ok, err := c.Info(context.Background(), p.ml.Name()); err == nil && ok {
			st.Cleaned, st.ViewEntries, st.ViewBytes = info.Cleaned, info.Entries, info.Bytes
		}
	}
	return st
}

// CompactionRan reports whether a compaction ran (or was asked) since the
// partition was loaded.
func (p *Partition) CompactionRan() bool {
	p.compaction.mu.Lock()
	defer p.compaction.mu.Unlock()
	return p.compaction.st.State != ""
}

// TriggerCompaction starts a manual compaction in the background (Pulsar's
// PUT .../compaction): ErrCompactionRunning if one runs.
func (p *Partition) TriggerCompaction() error {
	if p.b.compactor == nil {
		return fmt.Errorf("%w: compaction is not enabled on this broker", ErrInvalidConfig)
	}
	if !p.compaction.run.TryLock() {
		return ErrCompactionRunning
	}
	p.setCompaction(CompactionStatus{State: CompactionRunning})
	p.b.bg.Go(func() {
		defer p.compaction.run.Unlock()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-p.b.stop:
			case <-p.done:
			case <-ctx.Done():
			}
			cancel()
		}()
		p.compactLocked(ctx, true)
	})
	return nil
}

// Compact compacts the partition now if it is due (force: whatever the
// policies say, everything visible below the last stable offset) and
// returns what was done.
func (p *Partition) Compact(ctx context.Context, force bool) (compact.Result, error) {
	if p.b.compactor == nil {
		return compact.Result{}, fmt.Errorf("%w: compaction is not enabled on this broker", ErrInvalidConfig)
	}
	p.compaction.run.Lock()
	defer p.compaction.run.Unlock()
	return p.compactLocked(ctx, force)
}

func (p *Partition) setCompaction(st CompactionStatus) {
	p.compaction.mu.Lock()
	defer p.compaction.mu.Unlock()
	prev := p.compaction.st
	st.LastSuccess, st.LastFailure, st.LastRemoved, st.Totals = prev.LastSuccess, prev.LastFailure, prev.LastRemoved, prev.Totals
	switch st.State {
	case CompactionSuccess:
		st.LastSuccess = st.LastRun
		if r := st.Last; r.Compacted {
			st.LastRemoved = r.RecordsIn - r.RecordsOut
			t := &st.Totals
			t.Compacted++
			t.RecordsRemoved += st.LastRemoved
			t.BytesIn += r.BytesIn
			t.BytesOut += r.BytesOut
			t.Duration += r.Duration
		}
		st.Totals.Released += st.Released
	case CompactionError:
		st.LastFailure = st.LastRun
		st.Totals.Failed++
	}
	p.compaction.st = st
}

// compactLocked runs one compaction; compaction.run held.
func (p *Partition) compactLocked(ctx context.Context, force bool) (compact.Result, error) {
	c := p.b.compactor
	e := p.Policies()
	now := time.Now()
	info, _, err := c.Info(ctx, p.ml.Name())
	if err != nil {
		p.setCompaction(CompactionStatus{State: CompactionError, LastError: err.Error(), LastRun: now})
		return compact.Result{}, err
	}
	upTo, due := compactionPlan(p.ml.Stats(), info, e, now, force)
	upTo = min(upTo, p.LastStableOffset())
	if !due || upTo <= info.Cleaned {
		upTo = info.Cleaned
	}
	// A view holding tombstones past delete.retention.ms is compacted
	// again even with nothing new (only the view is rewritten, upTo being
	// its cleaned point), so a table nobody writes to still drops them.
	if upTo <= info.Cleaned && !info.TombstonesExpired(now, e.DeleteRetention) {
		// Nothing to compact; durable cursors may have consumed more of
		// what the view already replaces since the last run.
		freed := p.releaseCompacted(ctx, e, info.Cleaned)
		if force || freed > 0 {
			p.setCompaction(CompactionStatus{State: CompactionSuccess, Cleaned: info.Cleaned, LastRun: now, Released: freed})
		}
		return compact.Result{Cleaned: info.Cleaned}, nil
	}
	p.setCompaction(CompactionStatus{State: CompactionRunning, Cleaned: info.Cleaned, LastRun: now})
	res, err := c.Compact(ctx, p.ml.Name(), p.ml, compact.Params{
		UpTo: upTo, Now: now, DeleteRetention: e.DeleteRetention, Aborted: p.abortedAt, LogStart: p.viewStart(e),
	})
	if err != nil {
		p.setCompaction(CompactionStatus{State: CompactionError, LastError: err.Error(), Cleaned: info.Cleaned, Last: res, LastRun: now})
		return res, err
	}
	var freed int64
	if res.Compacted {
		freed = p.releaseCompacted(ctx, e, res.Cleaned)
	}
	p.setCompaction(CompactionStatus{State: CompactionSuccess, Cleaned: res.Cleaned, Last: res, LastRun: now, Released: freed})
	if res.Compacted {
		p.b.log.Info("partition compacted", "topic", p.name.String(), "cleaned", res.Cleaned, "generation", res.Generation,
			"bytes_in", res.BytesIn, "bytes_out", res.BytesOut, "records_in", res.RecordsIn, "records_out", res.RecordsOut,
			"released_bytes", freed, "took", res.Duration)
	}
	return res, nil
}

// releaseCompacted releases, for a compact-only topic, the raw ledgers
// wholly below cleaned that every durable cursor consumed (the view
// replaces them for Kafka and readCompacted readers) and returns their
// bytes. Not in a cluster: views are files of this broker's data
// directory, and a broker taking the topic over must be able to rebuild
// the view from the raw log.
func (p *Partition) releaseCompacted(ctx context.Context, e EffectivePolicies, cleaned int64) int64 {
	if cleaned == 0 || e.CleanupPolicy != CleanupCompact || p.b.member != nil {
		return 0
	}
	freed, err := p.ml.ReleaseConsumedBefore(ctx, cleaned)
	if err != nil {
		p.b.log.Warn("releasing compacted ledgers failed", "topic", p.name.String(), "err", err)
	}
	return freed
}

// compactionPlan returns how far a compaction may go and whether it is due.
func compactionPlan(st managedledger.Stats, info compact.Info, e EffectivePolicies, now time.Time, force bool) (upTo int64, due bool) {
	if force {
		return st.NextIndex, true
	}
	upTo = st.FirstIndex
	var dirty int64
	oldest := int64(math.MaxInt64)
	minLagEdge := now.Add(-e.MinCompactionLag).UnixMilli()
	for i, l := range st.Ledgers {
		if !l.Sealed || (e.MinCompactionLag > 0 && l.MaxTimestamp > minLagEdge) {
			break
		}
		end := st.NextIndex
		if i+1 < len(st.Ledgers) {
			end = st.Ledgers[i+1].FirstIndex
		}
		upTo = end
		if end > info.Cleaned {
			dirty += l.Bytes
			oldest = min(oldest, l.MaxTimestamp)
		}
	}
	if dirty == 0 || upTo <= info.Cleaned {
		return upTo, false
	}
	if e.CompactionThreshold > 0 && dirty >= e.CompactionThreshold {
		return upTo, true
	}
	if !e.KafkaCompacted() {
		return upTo, false
	}
	if float64(dirty)/float64(dirty+info.Bytes) >= e.MinCleanableDirtyRatio {
		return upTo, true
	}
	if e.MaxCompactionLag > 0 && e.MaxCompactionLag < time.Duration(math.MaxInt64) && oldest < now.Add(-e.MaxCompactionLag).UnixMilli() {
		return upTo, true
	}
	return upTo, false
}

// abortedAt reports whether producerID's record at offset belongs to an
// aborted transaction.
func (p *Partition) abortedAt(producerID, offset int64) bool {
	return slices.ContainsFunc(p.AbortedTxns(offset, offset+1), func(a AbortedTxn) bool {
		return a.ProducerID == producerID && a.FirstIndex <= offset && offset <= a.LastIndex
	})
}

// ReadCompacted reads from index as a compacted topic's reader sees it:
// entries of the compacted view while index is below its cleaned point
// (offsets with gaps, at most maxEntries, maxBytes of data with at least
// one entry unless within), the raw log from the cleaned point on (as
// ReadFromIndex, or ReadFromIndexWithin when within). Without a view (or a
// compactor) it is the raw read.
func (p *Partition) ReadCompacted(ctx context.Context, index int64, maxEntries, maxBytes int, within bool) ([]Entry, error) {
	if c := p.b.compactor; c != nil {
		es, cleaned, err := c.Read(ctx, p.ml.Name(), index, maxEntries, maxBytes)
		if err != nil {
			return nil, mapLedgerErr(err)
		}
		if index < cleaned {
			first := p.viewStart(p.Policies()) // records below it were deleted (DeleteRecords)
			n := 0
			for _, e := range es {
				if e.LastIndex() >= first {
					es[n] = e
					n++
				}
			}
			es = es[:n]
			if within && len(es) > 0 && len(es[0].Data) > maxBytes {
				return nil, nil
			}
			if len(es) > 0 {
				return es, nil
			}
			index = max(index, cleaned) // nothing kept from index to the cleaned point
		}
	}
	if within {
		return p.ReadFromIndexWithin(ctx, index, maxEntries, maxBytes)
	}
	return p.ReadFromIndex(ctx, index, maxEntries, maxBytes)
}

// CompactionPass compacts every loaded partition that is due (the
// background loop calls it every Options.CompactionInterval).
func (b *Broker) CompactionPass(ctx context.Context) error {
	if b.compactor == nil {
		return nil
	}
	var errs []error
	for _, p := range b.Partitions() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !p.Policies().Compacting() || !p.compaction.run.TryLock() {
			continue
		}
		_, err := p.compactLocked(ctx, false)
		p.compaction.run.Unlock()
		if err != nil && !errors.Is(err, managedledger.ErrClosed) && !errors.Is(err, compact.ErrClosed) {
			errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
		}
	}
	return errors.Join(errs...)
}

// viewBelow is a durable readCompacted dispatcher's progress through the
// view's entries that lie in raw ledgers released below the raw log's
// start (compact-only topics). They are entries of the subscription's
// cursor (managedledger.Released, installReleased): a cursor standing
// before them (RewindReleased: new from the earliest message, or reset
// there) is sent each one it has not acknowledged, once per dispatcher
// (again after a reconnect), and its mark-delete position passes them in
// order as they are acknowledged.
type viewBelow struct {
	last    Position // the last one read
	started bool
	done    bool
}

// readCompactedCursor reads for a readCompacted cursor: for a durable one,
// first the view's entries in released raw ledgers it has not
// acknowledged (viewBelow); then, while its read position is below the
// view's horizon (the raw entry at the cleaned index), entries of the view
// at or after it (at their raw positions; the cursor then moves past the
// last one, skipping what compaction removed), and the raw log through the
// cursor from the horizon on.
func (p *Partition) readCompactedCursor(ctx context.Context, c *Cursor, below *viewBelow, maxEntries, maxBytes int) ([]Entry, error) {
	if cp := p.b.compactor; cp != nil && below != nil && !below.done && c.Durable() {
		firstRaw := p.horizon(p.ml.FirstIndex())
		start := p.viewStart(p.Policies())
		for !below.done {
			q := c.MarkDeletePosition()
			q.EntryID++
			if below.started && !below.last.Less(q) {
				q = Position{LedgerID: below.last.LedgerID, EntryID: below.last.EntryID + 1}
			}
			es, _, err := cp.ReadAt(ctx, p.ml.Name(), q, maxEntries, maxBytes)
			if err != nil {
				return nil, mapLedgerErr(err)
			}
			n, more := 0, false
			for _, e := range es {
				if !e.Position.Less(firstRaw) {
					break
				}
				more = true
				below.last, below.started = e.Position, true
				if e.LastIndex() >= start && !c.IsAcked(e.Position) {
					es[n] = e
					n++
				}
			}
			if n > 0 {
				return es[:n], nil
			}
			// Nothing left in the released ledgers, or only entries
			// acknowledged already: read on.
			below.done = !more
		}
	}
	if cp := p.b.compactor; cp != nil {
		from := c.ReadPosition()
		q := from
		if !c.Durable() && p.horizon(p.ml.FirstIndex()) == from {
			// At the start of the raw log: the view may hold entries of
			// ledgers released below it, after the mark-delete position.
			// (Once the view served one, the read position is below the
			// raw start and this does not apply again.)
			md := c.MarkDeletePosition()
			q = Position{LedgerID: md.LedgerID, EntryID: md.EntryID + 1}
		}
		es, cleaned, err := cp.ReadAt(ctx, p.ml.Name(), q, maxEntries, maxBytes)
		if err != nil {
			return nil, mapLedgerErr(err)
		}
		if cleaned > 0 {
			horizon := p.horizon(cleaned)
			if q.Less(horizon) {
				if len(es) > 0 {
					last := es[len(es)-1].Position
					c.Seek(Position{LedgerID: last.LedgerID, EntryID: last.EntryID + 1})
					md := c.MarkDeletePosition()
					n := 0
					for _, e := range es {
						if md.Less(e.Position) && !c.IsAcked(e.Position) {
							es[n] = e
							n++
						}
					}
					return es[:n], nil
				}
				if c.Durable() {
					// No view entry from q to the horizon: compaction
					// removed every raw entry there.
					if err := c.AckBetween(ctx, Position{LedgerID: q.LedgerID, EntryID: q.EntryID - 1}, horizon); err != nil {
						return nil, err
					}
				}
				c.Seek(horizon)
			}
		}
	}
	return c.ReadEntries(ctx, maxEntries, maxBytes)
}

// installReleased tells the partition's cursors of the view's entries in
// released raw ledgers (managedledger.Released): on a compact-only topic
// they are entries for a durable readCompacted subscription standing
// before them. The view is loaded first, so that the calls the ledger
// makes under its lock only search the view's index in memory.
func (p *Partition) installReleased(ctx context.Context) {
	cp := p.b.compactor
	if cp == nil {
		return
	}
	if _, _, err := cp.Info(ctx, p.ml.Name()); err != nil {
		p.b.log.Warn("loading the compacted view", "topic", p.name.String(), "err", err)
	}
	p.ml.SetReleased(releasedView{p: p})
}

// releasedView implements managedledger.Released with the partition's
// compacted view.
type releasedView struct{ p *Partition }

func (r releasedView) After(pos Position, minIndex int64) (Position, bool) {
	if !r.p.compactOnly.Load() {
		return Position{}, false // retention takes the view's old entries
	}
	q, _, ok, err := r.p.b.compactor.EntryAfter(context.Background(), r.p.ml.Name(), pos, minIndex)
	if err != nil {
		return pos, true // cannot tell: cursors stop at pos, never skip an entry
	}
	return q, ok
}

func (r releasedView) Before(pos Position) (Position, int64, bool) {
	if !r.p.compactOnly.Load() {
		return Position{}, 0, false
	}
	q, last, ok, err := r.p.b.compactor.EntryBefore(context.Background(), r.p.ml.Name(), pos)
	if err != nil {
		return Position{}, 0, false
	}
	return q, last, ok
}

// ackRemovedAround acknowledges on c (a durable readCompacted cursor that
// just acknowledged the entry at pos) the raw entries compaction removed
// on either side of pos: those strictly between the view entries before
// and after it (the log's start and the view's horizon where there are
// none). Nothing when pos is not below the horizon (the raw tail).
func (p *Partition) ackRemovedAround(ctx context.Context, c *Cursor, pos Position) error {
	cp := p.b.compactor
	if cp == nil {
		return nil
	}
	prev, next, hasPrev, hasNext, cleaned, err := cp.Around(ctx, p.ml.Name(), pos)
	if err != nil || cleaned == 0 {
		return mapLedgerErr(err)
	}
	horizon := p.horizon(cleaned)
	if !pos.Less(horizon) {
		return nil
	}
	if !hasPrev {
		prev = Position{LedgerID: -1, EntryID: -1} // before every ledger
	}
	if !hasNext || horizon.Less(next) {
		next = horizon
	}
	if err := c.AckBetween(ctx, prev, pos); err != nil {
		return err
	}
	return c.AckBetween(ctx, pos, next)
}

// CompactedEntryAt returns the view's entry at raw position pos when the
// view holds one there and pos is below the view's horizon (where
// readCompacted consumers are sent the view's entry, not the raw one).
func (p *Partition) CompactedEntryAt(ctx context.Context, pos Position) (Entry, bool, error) {
	cp := p.b.compactor
	if cp == nil {
		return Entry{}, false, nil
	}
	es, cleaned, err := cp.ReadAt(ctx, p.ml.Name(), pos, 1, 1)
	if err != nil || cleaned == 0 || len(es) == 0 || es[0].Position != pos || !pos.Less(p.horizon(cleaned)) {
		return Entry{}, false, mapLedgerErr(err)
	}
	return es[0], true, nil
}

// horizon is the raw position of the entry at index cleaned (the first
// one a compacted read takes from the raw log), or the next write
// position when the view covers everything.
func (p *Partition) horizon(cleaned int64) Position {
	if cleaned < p.ml.NextIndex() {
		if pos, err := p.ml.PositionOf(cleaned); err == nil {
			return pos
		}
	}
	lc := p.ml.LastConfirmed()
	return Position{LedgerID: lc.LedgerID, EntryID: lc.EntryID + 1}
}

// LastCompacted tells a compacted reader's last entry: covers is true when
// the view covers the whole log (nothing raw after its cleaned point);
// then e is the view's last entry, or ok is false if the view is empty.
// With covers false the raw last entry is the last one.
func (p *Partition) LastCompacted(ctx context.Context) (e Entry, covers, ok bool, err error) {
	cp := p.b.compactor
	if cp == nil {
		return e, false, false, nil
	}
	e, cleaned, ok, err := cp.Last(ctx, p.ml.Name())
	if err != nil || cleaned == 0 || cleaned < p.ml.NextIndex() {
		return Entry{}, false, false, mapLedgerErr(err)
	}
	return e, true, ok, nil
}

// viewStart is the first index compacted readers may read: the
// DeleteRecords point for a compact-only topic (its view outlives the raw
// ledgers it replaced), the first retained index otherwise (retention of a
// compact,delete topic takes the view's old entries with the raw ones).
func (p *Partition) viewStart(e EffectivePolicies) int64 {
	if e.CleanupPolicy == CleanupCompact {
		return p.ml.TruncatedBefore()
	}
	return p.ml.FirstIndex()
}

// LogStart is the partition's first readable offset as Kafka reports it
// (log start offset): FirstIndex, or for a compact-only topic whose view
// holds entries below it (raw ledgers released after compaction) the
// view's first index, never below the DeleteRecords point.
func (p *Partition) LogStart() int64 {
	first := p.ml.FirstIndex()
	cp := p.b.compactor
	if cp == nil || p.Policies().CleanupPolicy != CleanupCompact {
		return first
	}
	info, ok, err := cp.Info(context.Background(), p.ml.Name())
	if err != nil || !ok {
		return first
	}
	return max(p.ml.TruncatedBefore(), min(first, info.First))
}
