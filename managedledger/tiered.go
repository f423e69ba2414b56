package managedledger

// Tiered storage: sealed ledgers copied to an object store (package
// offload has the object format and the reader), read back transparently,
// their local files deleted after a lag. See doc.go, "Tiered storage".

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kopernik-io/kopernik/managedledger/offload"
	"github.com/kopernik-io/kopernik/objectstore"
	"github.com/kopernik-io/kopernik/segment"
)

// ErrTieredUnavailable reports a read of an offloaded ledger that failed
// because the object store is down, slow or throttling. It is retriable:
// the same read succeeds once the store is back. Errors carrying it also
// match objectstore.ErrUnavailable.
var ErrTieredUnavailable = errors.New("managedledger: tiered storage unavailable")

// ErrNoOffloader: an offload was asked of a factory without an object store.
var ErrNoOffloader = errors.New("managedledger: tiered storage is not configured")

// ReadPriority says which copy of an offloaded ledger reads use while both
// exist (Pulsar's managedLedgerDataReadPriority).
type ReadPriority int

const (
	// TieredFirst reads the object store's copy once the offload is
	// complete (Pulsar's default, tiered-storage-first).
	TieredFirst ReadPriority = iota
	// LocalFirst reads local files until they are deleted (local-first
	// in Pulsar, "bookkeeper-first").
	LocalFirst
)

// OffloadPolicy is a managed ledger's tiered-storage policy. It has effect
// only with FactoryOptions.Offload set.
type OffloadPolicy struct {
	// Auto enables automatic offload by the two thresholds below, checked
	// by the factory's offload pass (FactoryOptions.OffloadInterval).
	Auto bool
	// ThresholdBytes: while the sealed, not yet offloaded ledgers hold
	// more than this, the oldest are offloaded (Pulsar's
	// managedLedgerOffloadThresholdInBytes). < 0: no size trigger; 0:
	// every sealed ledger.
	ThresholdBytes int64
	// ThresholdAge: sealed ledgers closed longer ago than this are
	// offloaded (managedLedgerOffloadThresholdInSeconds). < 0: no age
	// trigger.
	ThresholdAge time.Duration
	// DeletionLag is how long the local files of a verified offload stay
	// (managedLedgerOffloadDeletionLagMs; the server's default is Pulsar's
	// 4h). 0: deleted by the next offload pass.
	DeletionLag time.Duration
	// ReadPriority selects the copy reads use while both exist.
	ReadPriority ReadPriority
}

// OffloadState is Pulsar's offload status of a topic.
type OffloadState string

const (
	OffloadNotRun  OffloadState = "NOT_RUN"
	OffloadRunning OffloadState = "RUNNING"
	OffloadSuccess OffloadState = "SUCCESS"
	OffloadError   OffloadState = "ERROR"
)

// OffloadStatus is the state of the last offload run of a managed ledger.
type OffloadStatus struct {
	State OffloadState
	// Error is the reason of an ERROR.
	Error string
	// FirstUnoffloaded is the position of the first entry not offloaded
	// when the run finished (Pulsar's firstUnoffloadedMessage).
	FirstUnoffloaded Position
}

// offloadMeta is a ledger's offload context in the ledger list (Pulsar's
// LedgerInfo.offload_context): the offload id is written before the upload
// starts and marked complete only after both objects are verified.
type offloadMeta struct {
	UID          string `json:"uid"`
	Complete     bool   `json:"complete"`
	LocalDeleted bool   `json:"localDeleted,omitempty"`
	Time         int64  `json:"time,omitempty"` // unix ms, when completed
	DataBytes    int64  `json:"dataBytes,omitempty"`
}

// offloadInfo is a ledger's offload state in memory (ManagedLedger.mu).
type offloadInfo struct {
	uid          offload.UUID
	complete     bool
	localDeleted bool
	at           time.Time
	dataBytes    int64
	rd           *offload.Ledger // reader, for complete offloads
}

func (o *offloadInfo) meta() *offloadMeta {
	if o == nil {
		return nil
	}
	m := &offloadMeta{UID: o.uid.String(), Complete: o.complete, LocalDeleted: o.localDeleted, DataBytes: o.dataBytes}
	if o.complete {
		m.Time = o.at.UnixMilli()
	}
	return m
}

// offloadInfoOf restores the in-memory state from the ledger list. An
// incomplete offload found here was interrupted (a crash or a failure
// before it was cleaned up): it is dropped (nil, dirty) and its objects
// are left to the garbage collection of gcObjects.
func (ml *ManagedLedger) offloadInfoOf(id int64, m *offloadMeta) (o *offloadInfo, dirty bool, err error) {
	if m == nil {
		return nil, false, nil
	}
	uid, err := offload.ParseUUID(m.UID)
	if err != nil {
		return nil, false, fmt.Errorf("%w: ledger %d: %v", ErrCorrupt, id, err)
	}
	if !m.Complete {
		ml.log.Info("managedledger: dropping an interrupted offload", "ledger", id, "uid", m.UID)
		return nil, true, nil
	}
	o = &offloadInfo{uid: uid, complete: true, localDeleted: m.LocalDeleted, at: time.UnixMilli(m.Time), dataBytes: m.DataBytes}
	if ml.factory.offloader == nil {
		if m.LocalDeleted {
			return nil, false, fmt.Errorf("managedledger: ledger %d of %s is only in tiered storage, which is not configured", id, ml.name)
		}
		return o, false, nil // kept as recorded; reads use the local files
	}
	o.rd = ml.factory.offloadReader(ml.name, id, uid)
	return o, false, nil
}

// ---- reading either copy ----

// ledgerReader reads one ledger, local or offloaded. The lookups are
// called with ManagedLedger.mu held and never do object-store I/O (an
// offloaded ledger answers *offload.Miss instead; see withFetch); read is
// called without locks.
type ledgerReader interface {
	read(ctx context.Context, from, limit int64, maxEntries, maxBytes int, atLeastOne bool) ([]segment.Record, error)
	header(id, limit int64) (segment.Record, error)
	findIndex(index, limit int64) (segment.Record, bool, error)
	findTime(t, limit int64) (segment.Record, bool, error)
}

type localReader struct{ seg *segment.Segment }

func (r localReader) read(_ context.Context, from, limit int64, maxEntries, maxBytes int, atLeastOne bool) ([]segment.Record, error) {
	if atLeastOne {
		return r.seg.Read(from, limit, maxEntries, maxBytes)
	}
	return r.seg.ReadWithin(from, limit, maxEntries, maxBytes)
}
func (r localReader) header(id, limit int64) (segment.Record, error) { return r.seg.Header(id, limit) }
func (r localReader) findIndex(index, limit int64) (segment.Record, bool, error) {
	return r.seg.FindIndex(index, limit)
}
func (r localReader) findTime(t, limit int64) (segment.Record, bool, error) {
	return r.seg.FindTime(t, limit)
}

type tieredReader struct {
	rd *offload.Ledger
	// next are the readers of the ledgers that follow, as far as they are
	// read from the store too (at most maxAheadLedgers): read-ahead goes on
	// into them, so that a sequential read keeps its GETs in flight across
	// ledger boundaries.
	next []*offload.Ledger
}

// maxAheadLedgers bounds how many following ledgers read-ahead may enter
// (the block count and the cache bound it too; this keeps the list cheap
// to build for ledgers of a few tiny blocks).
const maxAheadLedgers = 8

func (r tieredReader) read(ctx context.Context, from, limit int64, maxEntries, maxBytes int, atLeastOne bool) ([]segment.Record, error) {
	recs, err := r.rd.Read(ctx, from, maxEntries, maxBytes, atLeastOne, r.next)
	for len(recs) > 0 && recs[len(recs)-1].EntryID >= limit {
		recs = recs[:len(recs)-1]
	}
	return recs, tieredError(err)
}
func (r tieredReader) header(id, _ int64) (segment.Record, error) {
	h, err := r.rd.Header(id)
	return h, tieredError(err)
}
func (r tieredReader) findIndex(index, _ int64) (segment.Record, bool, error) {
	h, ok, err := r.rd.FindIndex(index)
	return h, ok, tieredError(err)
}
func (r tieredReader) findTime(t, _ int64) (segment.Record, bool, error) {
	h, ok, err := r.rd.FindTime(t)
	return h, ok, tieredError(err)
}

// tieredError marks a store outage as ErrTieredUnavailable; other errors
// (a *offload.Miss, corruption) pass unchanged.
func tieredError(err error) error {
	if err != nil && objectstore.Retriable(err) && !errors.Is(err, ErrTieredUnavailable) {
		return fmt.Errorf("%w: %w", ErrTieredUnavailable, err)
	}
	return err
}

// usesTieredLocked reports whether reads of l go to the object store.
func (ml *ManagedLedger) usesTieredLocked(l *ledger) bool {
	o := l.off
	return o != nil && o.complete && o.rd != nil && (o.localDeleted || ml.mu.cfg.Offload.ReadPriority == TieredFirst)
}

// readerLocked returns the reader of l's entries, per ReadPriority.
func (ml *ManagedLedger) readerLocked(l *ledger) (ledgerReader, error) {
	if ml.usesTieredLocked(l) {
		tr := tieredReader{rd: l.off.rd}
		for i := ml.searchLocked(l.id) + 1; i < len(ml.mu.ledgers) && len(tr.next) < maxAheadLedgers && ml.usesTieredLocked(ml.mu.ledgers[i]); i++ {
			tr.next = append(tr.next, ml.mu.ledgers[i].off.rd)
		}
		return tr, nil
	}
	seg, err := ml.segLocked(l)
	if err != nil {
		return nil, err
	}
	return localReader{seg}, nil
}

// withFetch runs fn, which takes and releases ml.mu itself; when fn fails
// with an *offload.Miss it fetches what was missing (without locks: a slow
// store must never hold up appends) and runs fn again. A fetch that fails
// is the result.
func (ml *ManagedLedger) withFetch(ctx context.Context, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		var miss *offload.Miss
		if !errors.As(err, &miss) {
			return err
		}
		if attempt >= 8 { // only if the cache keeps evicting what we fetched
			return fmt.Errorf("%w: %w", ErrTieredUnavailable, err)
		}
		if err := miss.Fetch(ctx); err != nil {
			return tieredError(err)
		}
	}
}

// lookupLocked runs fn, a lookup under ml.mu, resolving each *offload.Miss
// it reports by fetching while holding the lock: for the rare lookups that
// cannot drop it (TruncateBefore moving cursors, the first retained
// position after a truncation inside an offloaded ledger). Each fetch is
// bounded so that a down store delays appends by at most that.
func (ml *ManagedLedger) lookupLocked(fn func() error) error {
	err := fn()
	for attempt := 0; attempt < 4; attempt++ {
		var miss *offload.Miss
		if !errors.As(err, &miss) {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ferr := miss.Fetch(ctx)
		cancel()
		if ferr != nil {
			return tieredError(ferr)
		}
		err = fn()
	}
	return err
}

// ---- offloading ----

// Offload copies every sealed ledger before before (all of whose entries
// precede it; Latest: every sealed ledger) that is not yet offloaded to the
// object store, oldest first (Pulsar's `topics offload`). It returns when
// done; a failed ledger stops the run with its error (the ledgers before
// it stay offloaded). Local files go once the policy's DeletionLag has
// passed (by the factory's offload pass, or DeleteOffloadedLocal).
func (ml *ManagedLedger) Offload(ctx context.Context, before Position) error {
	if ml.factory.offloader == nil {
		return ErrNoOffloader
	}
	ml.offloadMu.Lock()
	defer ml.offloadMu.Unlock()
	ml.setOffloadStatus(OffloadStatus{State: OffloadRunning})
	err := ml.offloadBefore(ctx, before)
	st := OffloadStatus{State: OffloadSuccess}
	if err != nil {
		st = OffloadStatus{State: OffloadError, Error: err.Error()}
	}
	ml.mu.Lock()
	st.FirstUnoffloaded = ml.firstUnoffloadedLocked()
	ml.mu.Unlock()
	ml.setOffloadStatus(st)
	return err
}

// OffloadStatus returns the state of the last offload run.
func (ml *ManagedLedger) OffloadStatus() OffloadStatus {
	ml.statusMu.Lock()
	defer ml.statusMu.Unlock()
	if ml.offloadStatus.State == "" {
		return OffloadStatus{State: OffloadNotRun}
	}
	return ml.offloadStatus
}

func (ml *ManagedLedger) setOffloadStatus(s OffloadStatus) {
	ml.statusMu.Lock()
	ml.offloadStatus = s
	ml.statusMu.Unlock()
}

func (ml *ManagedLedger) firstUnoffloadedLocked() Position {
	for _, l := range ml.mu.ledgers {
		if l.off == nil || !l.off.complete {
			return Position{LedgerID: l.id, EntryID: 0}
		}
	}
	return ml.nextWritePosLocked()
}

func (ml *ManagedLedger) offloadBefore(ctx context.Context, before Position) error {
	for {
		ml.mu.Lock()
		if ml.mu.closed {
			ml.mu.Unlock()
			return ErrClosed
		}
		var next *ledger
		for _, l := range ml.mu.ledgers[:len(ml.mu.ledgers)-1] {
			if l.id >= before.LedgerID || !l.sealed {
				break // (unsealed: a cluster rollover waiting for its commits)
			}
			if l.off == nil || !l.off.complete {
				next = l
				break
			}
		}
		ml.mu.Unlock()
		if next == nil {
			return nil
		}
		if err := ml.offloadLedger(ctx, next); err != nil {
			return err
		}
	}
}

// offloadLedger uploads one sealed ledger. Caller holds offloadMu.
//
// Order (crash safety): the offload id goes into the ledger list first;
// the objects are written and verified; only then is the offload marked
// complete in the list. A crash anywhere leaves either a complete, verified
// offload or an incomplete id whose objects are garbage.
func (ml *ManagedLedger) offloadLedger(ctx context.Context, l *ledger) error {
	f := ml.factory
	uid := offload.NewUUID()
	ml.mu.Lock()
	if ml.mu.closed {
		ml.mu.Unlock()
		return ErrClosed
	}
	if ml.ledgerLocked(l.id) != l || !l.sealed {
		ml.mu.Unlock()
		return nil // deleted meanwhile: nothing to do
	}
	old := l.off
	l.off = &offloadInfo{uid: uid}
	if err := ml.persistLocked(ctx); err != nil {
		l.off = old
		ml.mu.Unlock()
		return err
	}
	firstIndex, entries := l.firstIndex, l.entries
	ml.mu.Unlock()

	dataKey, indexKey := offload.Keys(f.opts.OffloadPrefix, ml.name, l.id, uid)
	abandon := func(cause error) error {
		// Best effort; what stays behind (store down) is collected by gcObjects.
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		f.offloader.Delete(dctx, dataKey)
		f.offloader.Delete(dctx, indexKey)
		cancel()
		ml.mu.Lock()
		if l.off != nil && l.off.uid == uid {
			l.off = nil
			if err := ml.persistLocked(context.Background()); err != nil {
				ml.log.Warn("managedledger: clearing a failed offload", "ledger", l.id, "err", err)
			}
		}
		ml.mu.Unlock()
		ml.log.Warn("managedledger: offload failed", "ledger", l.id, "uid", uid, "err", cause)
		return fmt.Errorf("managedledger: offload ledger %d: %w", l.id, cause)
	}

	b := offload.NewBuilder(l.id, firstIndex, uid, f.opts.OffloadBlockSize)
	for from := int64(0); from < entries; {
		recs, err := ml.readLocal(l, from, entries)
		if err != nil {
			return abandon(err)
		}
		for i := range recs {
			err = b.Add(&recs[i])
		}
		releaseRecords(recs)
		if err != nil {
			return abandon(err)
		}
		from += int64(len(recs))
	}
	data, index, idx := b.Finish()
	if err := offload.Upload(ctx, f.offloader, dataKey, indexKey, data, index); err != nil {
		return abandon(err)
	}

	rd := f.offloadReader(ml.name, l.id, uid)
	rd.SetIndex(idx)
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if ml.mu.closed || ml.ledgerLocked(l.id) != l || l.off == nil || l.off.uid != uid {
		// Closed (maybe deleted) or the ledger deleted (retention,
		// truncation) during the upload: the objects are garbage.
		f.bg.Add(1)
		go func() {
			defer f.bg.Done()
			f.deleteObjects(ml.name, []string{dataKey, indexKey})
		}()
		if ml.mu.closed {
			return ErrClosed
		}
		return nil
	}
	l.off = &offloadInfo{uid: uid, complete: true, at: time.Now(), dataBytes: int64(len(data)), rd: rd}
	if err := ml.persistLocked(ctx); err != nil {
		l.off = &offloadInfo{uid: uid}
		return err
	}
	ml.log.Info("managedledger: offloaded ledger", "ledger", l.id, "uid", uid, "entries", entries, "bytes", len(data))
	return nil
}

// readLocal reads records of sealed ledger l from its local files,
// reopening them if an idle close got in the way.
func (ml *ManagedLedger) readLocal(l *ledger, from, limit int64) ([]segment.Record, error) {
	for attempt := 0; ; attempt++ {
		ml.mu.Lock()
		if l.off != nil && l.off.localDeleted {
			ml.mu.Unlock()
			return nil, fmt.Errorf("managedledger: ledger %d has no local files", l.id)
		}
		seg, err := ml.segLocked(l)
		ml.mu.Unlock()
		if err != nil {
			return nil, err
		}
		recs, err := seg.Read(from, limit, 1<<20, 4<<20)
		if errors.Is(err, segment.ErrClosed) && attempt < 10 {
			continue
		}
		if err == nil && len(recs) == 0 {
			err = fmt.Errorf("%w: ledger %d: no entry %d", ErrCorrupt, l.id, from)
		}
		return recs, err
	}
}

// deleteOffloadedLocal deletes the local files of ledgers whose verified
// offload is older than DeletionLag. The list records the deletion first:
// a crash in between leaves files that reads never use and that
// removeOrphansLocked deletes on the next open.
func (ml *ManagedLedger) deleteOffloadedLocal(ctx context.Context) error {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if ml.mu.closed {
		return ErrClosed
	}
	lag := ml.mu.cfg.Offload.DeletionLag
	if ml.factory.olog != nil {
		lag = 0 // cluster mode: the local copy is a cache in memory
	}
	var del []*ledger
	for _, l := range ml.mu.ledgers[:len(ml.mu.ledgers)-1] {
		if o := l.off; o != nil && o.complete && o.rd != nil && !o.localDeleted && time.Since(o.at) >= lag {
			o.localDeleted = true
			del = append(del, l)
		}
	}
	if len(del) == 0 {
		return nil
	}
	if err := ml.persistLocked(ctx); err != nil {
		for _, l := range del {
			l.off.localDeleted = false
		}
		return err
	}
	for _, l := range del {
		var err error
		if l.seg != nil {
			err = l.seg.Remove() // waits for reads in progress; later ones replan onto the object store
			l.seg = nil
		} else {
			err = segment.RemoveFiles(ml.segOpts, l.id)
		}
		if err != nil {
			ml.log.Warn("managedledger: removing offloaded ledger's files", "ledger", l.id, "err", err)
		}
		ml.log.Info("managedledger: deleted local copy of offloaded ledger", "ledger", l.id)
	}
	return nil
}

// autoOffload offloads by the policy's thresholds (factory pass).
func (ml *ManagedLedger) autoOffload(ctx context.Context) error {
	ml.mu.Lock()
	pol := ml.mu.cfg.Offload
	if ml.mu.closed || !pol.Auto {
		ml.mu.Unlock()
		return nil
	}
	var local int64
	for _, l := range ml.mu.ledgers[:len(ml.mu.ledgers)-1] {
		if l.off == nil || !l.off.complete {
			local += l.bytes
		}
	}
	// Offload up to (not including) the first ledger that no trigger covers.
	before := Position{LedgerID: -1}
	now := time.Now()
	for _, l := range ml.mu.ledgers[:len(ml.mu.ledgers)-1] {
		done := l.off != nil && l.off.complete
		bySize := pol.ThresholdBytes >= 0 && local > pol.ThresholdBytes
		byAge := pol.ThresholdAge >= 0 && now.Sub(l.closed) >= pol.ThresholdAge
		if !done && !bySize && !byAge {
			break
		}
		if !done {
			local -= l.bytes
		}
		before = Position{LedgerID: l.id + 1}
	}
	ml.mu.Unlock()
	if before.LedgerID < 0 {
		return nil
	}
	return ml.Offload(ctx, before)
}

// gcObjects deletes this managed ledger's objects that no complete offload
// in the list names (interrupted or failed attempts, ledgers deleted while
// the store was down). Caller holds offloadMu, so no upload is in flight.
//
// Not in cluster mode: there the list in memory may be stale (ownership
// moved, and the new owner offloaded ledgers this instance never saw), and
// an instance cannot know that at the moment it deletes (a broker paused
// between a check and its deletes wakes as a zombie; its deletes are not
// fenced as its writes to etcd are). A zombie collecting would delete the
// new owner's offloaded ledgers: acknowledged data
// (TestClusterStaleInstanceKeepsOffloads). Orphans of interrupted offloads
// stay in the bucket until a collection that can tell their age exists
// (docs/cluster.md, Limits).
func (ml *ManagedLedger) gcObjects(ctx context.Context) error {
	f := ml.factory
	if f.olog != nil {
		return nil
	}
	prefix := f.opts.OffloadPrefix + ml.name + "/"
	objs, err := f.offloader.List(ctx, prefix)
	if err != nil {
		return err
	}
	ml.mu.Lock()
	keep := map[string]bool{}
	for _, l := range ml.mu.ledgers {
		if l.off != nil && l.off.complete {
			d, i := offload.Keys(f.opts.OffloadPrefix, ml.name, l.id, l.off.uid)
			keep[d], keep[i] = true, true
		}
	}
	ml.mu.Unlock()
	var garbage []string
	for _, o := range objs {
		base := strings.TrimPrefix(o.Key, prefix)
		if _, _, ok := offload.ParseKey(base); ok && !keep[o.Key] {
			garbage = append(garbage, o.Key)
		}
	}
	if len(garbage) > 0 {
		ml.log.Info("managedledger: deleting orphan offload objects", "count", len(garbage))
	}
	return f.deleteObjectsNow(ctx, garbage)
}

// offloadPass is the factory's periodic tiered-storage work for one
// ledger: automatic offload, then deletion of local copies past the lag,
// and orphan collection on the first pass after open.
func (ml *ManagedLedger) offloadPass(ctx context.Context) {
	if err := ml.autoOffload(ctx); err != nil && !errors.Is(err, ErrClosed) {
		ml.log.Warn("managedledger: automatic offload", "err", err)
	}
	if err := ml.deleteOffloadedLocal(ctx); err != nil && !errors.Is(err, ErrClosed) {
		ml.log.Warn("managedledger: deleting offloaded local copies", "err", err)
	}
	if !ml.gcDone.Load() {
		ml.offloadMu.Lock()
		err := ml.gcObjects(ctx)
		ml.offloadMu.Unlock()
		if err == nil {
			ml.gcDone.Store(true)
		} else if !errors.Is(err, ErrClosed) {
			ml.log.Warn("managedledger: collecting orphan offload objects", "err", err)
		}
	}
}

// DeleteOffloadedLocal deletes now the local files of offloaded ledgers
// past their DeletionLag (what the factory's pass does periodically).
func (ml *ManagedLedger) DeleteOffloadedLocal(ctx context.Context) error {
	return ml.deleteOffloadedLocal(ctx)
}

// CollectOrphanObjects deletes objects of this managed ledger that no
// complete offload names (what the first offload pass after open does).
func (ml *ManagedLedger) CollectOrphanObjects(ctx context.Context) error {
	if ml.factory.offloader == nil {
		return ErrNoOffloader
	}
	ml.offloadMu.Lock()
	defer ml.offloadMu.Unlock()
	return ml.gcObjects(ctx)
}

// ---- factory side ----

func (f *Factory) offloadReader(name string, id int64, uid offload.UUID) *offload.Ledger {
	d, i := offload.Keys(f.opts.OffloadPrefix, name, id, uid)
	return offload.NewLedger(f.offloader, f.offloadCache, d, i, f.opts.OffloadReadAhead)
}

// deleteObjects deletes objects in the background (ledgers removed by
// retention or truncation); what fails is collected by gcObjects later.
func (f *Factory) deleteObjects(name string, keys []string) {
	if len(keys) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.deleteObjectsNow(ctx, keys); err != nil {
		f.log.Warn("managedledger: deleting offloaded objects; left to orphan collection", "topic", name, "err", err)
	}
}

func (f *Factory) deleteObjectsNow(ctx context.Context, keys []string) error {
	var errs []error
	for _, k := range keys {
		if strings.HasSuffix(k, ".data") {
			f.offloadCache.Drop(k)
		}
		if err := f.offloader.Delete(ctx, k); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// offloadKeysOf returns the object names of a deleted ledger's offload.
func (f *Factory) offloadKeysOf(name string, l *ledger) []string {
	if f.offloader == nil || l.off == nil {
		return nil
	}
	d, i := offload.Keys(f.opts.OffloadPrefix, name, l.id, l.off.uid)
	return []string{d, i}
}

// deleteAllObjects deletes every offload object of managed ledger name
// (Factory.Delete). Names nest: objects of other managed ledgers under
// name/ (a deeper path) are not its own and stay.
func (f *Factory) deleteAllObjects(ctx context.Context, name string) error {
	if f.offloader == nil {
		return nil
	}
	prefix := f.opts.OffloadPrefix + name + "/"
	objs, err := f.offloader.List(ctx, prefix)
	if err != nil {
		return err
	}
	var keys []string
	for _, o := range objs {
		if _, _, ok := offload.ParseKey(strings.TrimPrefix(o.Key, prefix)); ok {
			keys = append(keys, o.Key)
		}
	}
	return f.deleteObjectsNow(ctx, keys)
}

// Offloading reports whether the factory has tiered storage.
func (f *Factory) Offloading() bool { return f.offloader != nil }
