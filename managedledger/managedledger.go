package managedledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kopernik-io/kopernik/managedledger/objlog"
	"github.com/kopernik-io/kopernik/managedledger/offload"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/segment"
)

// metaFormat is the version of the ledger-list record; newer is refused.
const metaFormat = 1

// ledgerListRecord is the JSON stored at /managed-ledgers/<name>.
type ledgerListRecord struct {
	Format         int          `json:"format"`
	NextLedgerID   int64        `json:"nextLedgerId"`
	TruncateBefore int64        `json:"truncateBefore"`
	Ledgers        []ledgerMeta `json:"ledgers"`
}

// ledgerMeta describes one ledger. Entries, Bytes and MaxTimestamp are final
// for sealed ledgers; the active (last, unsealed) ledger's are recovered
// from its file.
type ledgerMeta struct {
	ID           int64 `json:"id"`
	FirstIndex   int64 `json:"firstIndex"`
	Entries      int64 `json:"entries"`
	Bytes        int64 `json:"bytes"`
	MaxTimestamp int64 `json:"maxTs"`
	Created      int64 `json:"created"`          // unix ms
	Closed       int64 `json:"closed,omitempty"` // unix ms, when sealed
	Sealed       bool  `json:"sealed"`
	// Unsynced: the active ledger's file was created without an fsync
	// (journal mode) and none of its journal records has been released,
	// so a crash may have lost the file or its header and the journal
	// holds every acknowledged entry of it: recovery recreates the file
	// and replays them. The mark is cleared (confirmSyncedLocked) after
	// the file's first sync and before any release; a file lost without
	// the mark is an error, not an empty ledger.
	Unsynced bool `json:"unsynced,omitempty"`
	// Offload is the ledger's tiered-storage state (tiered.go); nil: never offloaded.
	Offload *offloadMeta `json:"offload,omitempty"`
}

// ledger is one segment as the managed ledger sees it. Fields are guarded by
// ManagedLedger.mu; entries/bytes/maxTs count only visible entries.
type ledger struct {
	id         int64
	firstIndex int64
	entries    int64
	bytes      int64
	maxTs      int64
	created    time.Time
	closed     time.Time
	sealed     bool
	seg        *segment.Segment // nil until first use for sealed ledgers
	// metaUnsynced is the Unsynced mark the stored ledger list holds.
	metaUnsynced bool
	lastUsed     time.Time    // sealed ledgers: last segLocked, for closing idle files
	off          *offloadInfo // tiered storage (tiered.go); nil: not offloaded
}

// ManagedLedger is one topic-partition's log. Safe for concurrent use.
//
// Appends are written under mu in call order (that assigns positions,
// indexes and publish times); under SyncAlways one flusher goroutine then
// fdatasyncs everything written so far and publishes it (group commit).
//
// INVARIANT: the last element of mu.ledgers is the active, unsealed ledger;
// all others are sealed and fully visible.
// INVARIANT: first <= visNext <= next; lastConfirmed is the last visible entry.
type ManagedLedger struct {
	name    string
	factory *Factory
	memory  bool // FactoryOptions.Dir == "": no disk behind the files
	log     *slog.Logger
	store   metadata.Store
	segOpts segment.Options
	// journal is the factory's shared journal; nil: per-ledger fsyncs
	// (FactoryOptions.PerLedgerSync, or in memory).
	journal  *journal
	kick     chan struct{}
	stopSync chan struct{}
	syncDone chan struct{}
	// syncerOnce starts the syncer goroutine when something needs it
	// (startSyncer): at open unless every append is journalled (then it
	// would only wait: 100,000 idle goroutines were 375 MB of stacks), on
	// a storage failure, a configuration that stops journalling, or close.
	syncerOnce sync.Once
	// bg tracks this ledger's own background work (cluster offloads);
	// close cancels bgCtx and waits for it, so that no work of a closed
	// instance touches the files or the list of the instance that opens
	// the name next on this broker (they share the directory).
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
	// testAfterTake, if set (tests), runs on the syncer after it took a
	// round's waiters and before it syncs them: appends made then are
	// covered by that sync while their waiters wait for the next round.
	testAfterTake func()
	// failures counts storage failures (Failures); changed under mu, read
	// without it on every producer's append.
	failures atomic.Int64
	// failKick tells the syncer that the ledger failed, so that it starts
	// retrying recovery (recover.go).
	failKick chan struct{}
	// recoverAttempts counts failed recovery attempts of the current
	// failure (syncer goroutine only).
	recoverAttempts int

	// offloadMu serialises offload runs and orphan collection (tiered.go);
	// taken before mu, never while holding it.
	offloadMu sync.Mutex
	// gcDone: orphan objects were collected since open.
	gcDone        atomic.Bool
	statusMu      sync.Mutex // guards offloadStatus; a leaf
	offloadStatus OffloadStatus

	mu struct {
		sync.Mutex
		closed   bool
		failed   error     // storage failure: appends fail until recovered (recover.go)
		failedAt time.Time // when failed was set
		cfg      Config

		ledgers      []*ledger
		nextLedgerID int64
		metaVersion  int64

		truncBefore int64    // logical first index (TruncateBefore)
		first       int64    // first retained message index
		firstPos    Position // entry holding first, or the next write position

		// write side (assigned, maybe not yet durable)
		next      int64 // next message index
		nextEntry int64 // next entry id in the active ledger
		lastPub   int64

		// read side (visible)
		visNext       int64
		lastConfirmed Position
		waiters       []*Pending
		changed       chan struct{}

		cursors map[string]*Cursor
		// released, if set, tells cursors of entries that outlive the
		// ledgers released below the log (release.go).
		released Released

		cache entryCache // cache.go
	}
	// olDrained (cluster mode, under mu) is closed once no append is in
	// flight in the object log; set by a close that waits for that.
	olDrained chan struct{}
	// olRolling (cluster mode, under mu) is the ledger a rollover is
	// sealing once its appends in flight are committed; olHeld are the
	// appends to its successor, held back until then (clusterlog.go).
	olRolling *ledger
	olHeld    []objlog.Entry
}

// ErrStorage reports a failed write or fsync; the ledger refuses appends
// until it is recovered (by itself, see recover.go, or by a reopen), which
// keeps every acknowledged entry and drops the unacknowledged ones.
var ErrStorage = errors.New("managedledger: storage failure")

// ErrDiskFull is an ErrStorage whose cause is a full disk or an exhausted
// quota (ENOSPC, EDQUOT); errors carrying it match ErrStorage too.
var ErrDiskFull = errors.New("managedledger: disk full")

func openLedger(ctx context.Context, f *Factory, name string, cfg Config) (*ManagedLedger, error) {
	ml := &ManagedLedger{
		name: name, factory: f, log: f.log.With("ledger", name), store: f.opts.Store, memory: f.opts.Dir == "",
		segOpts: f.segOptions(name),
		kick:    make(chan struct{}, 1), stopSync: make(chan struct{}), syncDone: make(chan struct{}),
		failKick: make(chan struct{}, 1),
	}
	ml.bgCtx, ml.bgCancel = context.WithCancel(context.Background())
	if !ml.memory {
		ml.journal = f.journal
	}
	if f.olog != nil {
		return openClusterLedger(ctx, f, ml, cfg)
	}
	if ml.journal != nil {
		// Reopening a ledger is a recovery attempt for a failed journal
		// too (the only one without automatic retries).
		if err := ml.journal.recoverNow(); err != nil {
			return nil, err
		}
	}
	ml.mu.cfg = cfg
	ml.mu.changed = make(chan struct{})
	ml.mu.cursors = make(map[string]*Cursor)
	// The ledger's directory is made with its first file (segment.Create,
	// or a deferred file's first sync): a mkdir per partition at open cost
	// the first write to 10,000 partitions seconds.

	rec, err := ml.store.Get(ctx, ledgerPath(name))
	switch {
	case errors.Is(err, metadata.ErrNotFound):
		if recs := f.takeReplay(name); len(recs) > 0 && ml.journal != nil {
			// A deleted incarnation's records; this one's ids are higher.
			ml.journal.release(name, maxJPos(recs))
		}
		if err := ml.createFirstLedgerLocked(ctx); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		if err := ml.recoverLocked(ctx, rec); err != nil {
			ml.closeSegmentsLocked()
			return nil, err
		}
	}
	ml.removeOrphansLocked()
	if err := ml.loadCursors(ctx); err != nil {
		ml.closeSegmentsLocked()
		return nil, err
	}
	if ml.journal == nil || ml.mu.cfg.Sync != SyncAlways {
		ml.startSyncer()
	}
	return ml, nil
}

// startSyncer starts the syncer goroutine unless it runs already. Its
// work: group commits and periodic syncs of appends that are not
// journalled, completing waiters with a failure and retrying recovery
// after one, and the final round at close. Journalled appends complete on
// the journal's completer and the checkpoint syncs their files, so a
// ledger whose appends are all journalled starts it only when it fails or
// closes.
func (ml *ManagedLedger) startSyncer() {
	ml.syncerOnce.Do(func() { go ml.syncer() })
}

// recoverLocked rebuilds the in-memory state from the ledger list and the
// active ledger's file (whose torn tail the segment truncates).
func (ml *ManagedLedger) recoverLocked(ctx context.Context, rec metadata.Record) error {
	var list ledgerListRecord
	if err := json.Unmarshal(rec.Value, &list); err != nil {
		return fmt.Errorf("%w: ledger list of %s: %v", ErrCorrupt, ml.name, err)
	}
	if list.Format > metaFormat {
		return fmt.Errorf("%w: ledger list format %d is newer than %d", ErrCorrupt, list.Format, metaFormat)
	}
	ml.mu.metaVersion = rec.Version
	ml.mu.nextLedgerID = list.NextLedgerID
	ml.mu.truncBefore = list.TruncateBefore
	dirty := false        // an interrupted offload was dropped: rewrite the list
	var release *Position // journal records replayed into the active ledger
	for i, lm := range list.Ledgers {
		l := &ledger{
			id: lm.ID, firstIndex: lm.FirstIndex, entries: lm.Entries, bytes: lm.Bytes, maxTs: lm.MaxTimestamp,
			created: time.UnixMilli(lm.Created), sealed: lm.Sealed, metaUnsynced: lm.Unsynced,
		}
		if lm.Closed != 0 {
			l.closed = time.UnixMilli(lm.Closed)
		}
		off, d, err := ml.offloadInfoOf(lm.ID, lm.Offload)
		if err != nil {
			return err
		}
		l.off, dirty = off, dirty || d
		if !lm.Sealed {
			if i != len(list.Ledgers)-1 {
				return fmt.Errorf("%w: unsealed ledger %d is not the last", ErrCorrupt, lm.ID)
			}
			seg, err := segment.Open(ml.segOpts, lm.ID, false)
			if err != nil && lm.Unsynced && ml.journal != nil &&
				(errors.Is(err, fs.ErrNotExist) || errors.Is(err, segment.ErrNoHeader)) {
				// Created without an fsync and lost (or torn) in a crash
				// before its first sync: nothing of it was released from
				// the journal, which replays every entry into the new file
				// (from entry 0, or replay fails as corrupt).
				ml.log.Info("managedledger: recreating an active ledger file lost before its first sync", "ledger", lm.ID, "err", err)
				seg, err = segment.CreateUnsynced(ml.segOpts, lm.ID, lm.FirstIndex, time.UnixMilli(lm.Created))
			}
			if err != nil {
				if errors.Is(err, segment.ErrCorrupt) || errors.Is(err, segment.ErrNewerVersion) {
					return fmt.Errorf("managedledger: recover ledger %d: %w", lm.ID, err)
				}
				return storageError(ml.name, fmt.Errorf("recover ledger %d: %w", lm.ID, err))
			}
			l.seg = seg
			replayed, err := ml.replayJournal(seg, ml.factory.takeReplay(ml.name))
			if err != nil {
				return err
			}
			if replayed != nil {
				// Released once the list is stored (below), without the
				// Unsynced mark if the replay synced the file.
				release = replayed
				dirty = dirty || (lm.Unsynced && !seg.Unsynced())
			}
			d := seg.Durable()
			if d.FirstIndex != lm.FirstIndex {
				return fmt.Errorf("%w: ledger %d starts at index %d, list says %d", ErrCorrupt, lm.ID, d.FirstIndex, lm.FirstIndex)
			}
			l.entries, l.bytes, l.maxTs = d.Entries, d.Size, d.MaxTimestamp
			ml.log.Info("managedledger: recovered active ledger", "ledger", lm.ID, "entries", d.Entries, "next_index", d.NextIndex)
		}
		ml.mu.ledgers = append(ml.mu.ledgers, l)
	}
	if n := len(ml.mu.ledgers); n == 0 || ml.mu.ledgers[n-1].sealed {
		// No active ledger (never written by this code, but cheap to heal).
		next := int64(0)
		if n > 0 {
			last := ml.mu.ledgers[n-1]
			if last.off != nil && last.off.localDeleted {
				idx, err := last.off.rd.LoadIndex(ctx)
				if err != nil {
					return tieredError(err)
				}
				next = idx.NextIndex
			} else {
				seg, err := ml.segLocked(last)
				if err != nil {
					return err
				}
				next = seg.Durable().NextIndex
			}
		}
		if err := ml.addLedgerLocked(next, time.Now()); err != nil {
			return err
		}
		dirty = true
	}
	if dirty {
		if err := ml.persistLocked(ctx); err != nil {
			return err
		}
	}
	if release != nil {
		ml.journal.release(ml.name, *release)
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
	return nil
}

// removeOrphansLocked deletes segment files that no ledger in the list
// owns: leftovers of a crash between creating a file and recording it, or
// between unlisting a ledger and deleting its files.
func (ml *ManagedLedger) removeOrphansLocked() {
	names, err := ml.factory.fs.List(ml.segOpts.Dir)
	if err != nil {
		return
	}
	owned := make(map[int64]bool, len(ml.mu.ledgers))
	for _, l := range ml.mu.ledgers {
		owned[l.id] = true
		if l.off != nil && l.off.localDeleted {
			owned[l.id] = false // a crash between recording the deletion and doing it
		}
	}
	lastID := ml.activeLocked().id
	orphans := map[int64]bool{}
	for _, n := range names {
		if id, ok := segment.ParseName(n); ok && !owned[id] {
			orphans[id] = true
		}
	}
	for id := range orphans {
		// Never reuse an id that has files: the next rollover would
		// truncate them.
		ml.mu.nextLedgerID = max(ml.mu.nextLedgerID, id+1)
		// Newer than the list: a crash between creating the file and
		// recording it leaves it without records. Records mean the list is
		// older than the data (a restored store?): keep the file.
		if id > lastID {
			name := segment.LogName(id)
			if f, err := ml.factory.fs.OpenFile(filepath.Join(ml.segOpts.Dir, name), os.O_RDONLY, 0); err == nil {
				size, _ := f.Size()
				f.Close()
				if size > segment.HeaderSize && !ml.hasZeroTail(name, size) {
					ml.log.Error("managedledger: unlisted ledger file holds data; keeping it", "file", name, "bytes", size)
					continue
				}
			}
		}
		ml.log.Info("managedledger: removing orphan segment files", "ledger", id)
		if err := segment.RemoveFiles(ml.segOpts, id); err != nil {
			ml.log.Warn("managedledger: removing orphan", "ledger", id, "err", err)
		}
	}
}

// hasZeroTail reports whether the log file name holds nothing after its
// header but zeros (preallocation), i.e. no records.
func (ml *ManagedLedger) hasZeroTail(name string, size int64) bool {
	f, err := ml.factory.fs.OpenFile(filepath.Join(ml.segOpts.Dir, name), os.O_RDONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, segment.FrameHeadSize)
	if n, _ := f.ReadAt(b, segment.HeaderSize); n < len(b) {
		return size <= segment.HeaderSize
	}
	return bytes.Equal(b, make([]byte, len(b)))
}

// persistLocked writes the ledger list with compare-and-swap on the version
// this instance last wrote; a mismatch means another owner: ErrFenced.
func (ml *ManagedLedger) persistLocked(ctx context.Context) error {
	list := ledgerListRecord{Format: metaFormat, NextLedgerID: ml.mu.nextLedgerID, TruncateBefore: ml.mu.truncBefore}
	ledgers := ml.listedLedgersLocked() // cluster mode: not a rollover's successor yet
	for _, l := range ledgers {
		lm := ledgerMeta{
			ID: l.id, FirstIndex: l.firstIndex, Entries: l.entries, Bytes: l.bytes, MaxTimestamp: l.maxTs,
			Created: l.created.UnixMilli(), Sealed: l.sealed,
		}
		if l.sealed {
			lm.Closed = l.closed.UnixMilli()
		} else if l.seg != nil {
			lm.Unsynced = l.seg.Unsynced()
		}
		lm.Offload = l.off.meta()
		list.Ledgers = append(list.Ledgers, lm)
	}
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	v, err := ml.putFenced(ctx, ledgerPath(ml.name), b, ml.mu.metaVersion)
	if err != nil {
		if errors.Is(err, metadata.ErrBadVersion) || errors.Is(err, metadata.ErrExists) {
			return fmt.Errorf("%w: %s: %w", ErrFenced, ml.name, err)
		}
		return fmt.Errorf("managedledger: persist ledger list: %w", err)
	}
	ml.mu.metaVersion = v
	for i, l := range ledgers {
		l.metaUnsynced = list.Ledgers[i].Unsynced
	}
	return nil
}

func (ml *ManagedLedger) addLedgerLocked(firstIndex int64, now time.Time) error {
	id := ml.mu.nextLedgerID
	seg, err := ml.createSegment(id, firstIndex, now)
	if err != nil {
		return fmt.Errorf("%w: create ledger %d: %w", ErrStorage, id, err)
	}
	ml.mu.ledgers = append(ml.mu.ledgers, &ledger{id: id, firstIndex: firstIndex, created: seg.Durable().Created, seg: seg})
	ml.mu.nextLedgerID = id + 1
	ml.mu.nextEntry = 0
	return nil
}

// createFirstLedgerLocked starts a managed ledger that has no ledger list
// yet: its first ledger's file, then the list that records it.
func (ml *ManagedLedger) createFirstLedgerLocked(ctx context.Context) error {
	first := firstLedgerID(ctx, ml.store, ml.name)
	seg, err := ml.createSegment(first, 0, time.Now())
	if err != nil {
		return storageError(ml.name, fmt.Errorf("create ledger: %w", err))
	}
	ml.mu.ledgers = []*ledger{{id: first, created: seg.Durable().Created, seg: seg}}
	ml.mu.nextLedgerID = first + 1
	ml.mu.metaVersion = metadata.NotExists
	if err := ml.persistLocked(ctx); err != nil {
		seg.Close()
		return err
	}
	ml.mu.lastConfirmed = Position{LedgerID: 0, EntryID: -1}
	ml.recomputeFirstLocked()
	return nil
}

// createSegment makes a new active ledger's file. With the journal it
// costs no fsync (segment.CreateUnsynced): every acknowledged entry is in
// the journal until a checkpoint has synced the file, and recovery
// recreates a file a crash lost (recoverLocked). Without the journal the
// file is the acknowledgement's durability, so it is created durable.
//
// For journalled appends (SyncAlways) the files are not even created
// here: CreateUnsynced keeps the ledger's bytes in memory until its first
// sync (the checkpoint's, off the acknowledgement path), so a partition's
// first write costs no mkdir(2)/open(2). Other appends are not in the
// journal, so their files are created at once (Materialize) and what they
// wrote survives a process crash in the page cache, as without the
// journal. Deferral is safe only because the journal keeps a record until
// a sync covering it succeeded (TestRandomIOFaults, TestJournalModel).
func (ml *ManagedLedger) createSegment(id, firstIndex int64, now time.Time) (*segment.Segment, error) {
	if ml.journal == nil {
		return segment.Create(ml.segOpts, id, firstIndex, now)
	}
	seg, err := segment.CreateUnsynced(ml.segOpts, id, firstIndex, now)
	if err == nil && ml.mu.cfg.Sync != SyncAlways {
		if err = seg.Materialize(); err != nil {
			seg.Close()
			return nil, err
		}
	}
	return seg, err
}

func (ml *ManagedLedger) activeLocked() *ledger { return ml.mu.ledgers[len(ml.mu.ledgers)-1] }

// segLocked returns l's segment, opening a sealed one on first use.
func (ml *ManagedLedger) segLocked(l *ledger) (*segment.Segment, error) {
	l.lastUsed = time.Now()
	if l.seg == nil {
		if ml.mu.closed {
			// The files may be another instance's by now (cluster mode
			// rebuilds them on the next open).
			return nil, ErrClosed
		}
		seg, err := segment.Open(ml.segOpts, l.id, true)
		if err != nil {
			return nil, fmt.Errorf("managedledger: open ledger %d: %w", l.id, err)
		}
		if d := seg.Durable(); d.Entries != l.entries {
			// Never read around it: a reader would skip the missing
			// entries' indexes without a word (a closed instance once
			// recovered a file a new one was rebuilding, and reads then
			// jumped over a whole ledger).
			seg.Close()
			ml.log.Error("managedledger: sealed ledger entry count differs from the list", "ledger", l.id, "file", d.Entries, "list", l.entries)
			return nil, fmt.Errorf("%w: %s: sealed ledger %d has %d entries in its file, the list says %d", ErrCorrupt, ml.name, l.id, d.Entries, l.entries)
		}
		l.seg = seg
	}
	return l.seg, nil
}

func (ml *ManagedLedger) closeSegmentsLocked() {
	for _, l := range ml.mu.ledgers {
		if l.seg != nil {
			l.seg.Close()
			l.seg = nil
		}
	}
}

// Name returns the ledger's name.
func (ml *ManagedLedger) Name() string { return ml.name }

// SetConfig replaces the configuration; rollover and retention use it from now on.
func (ml *ManagedLedger) SetConfig(cfg Config) {
	ml.mu.Lock()
	was := ml.mu.cfg.Sync
	ml.mu.cfg = cfg.withDefaults()
	if ml.journal == nil || ml.mu.cfg.Sync != SyncAlways {
		ml.startSyncer()
	}
	var seg *segment.Segment
	if was == SyncAlways && ml.mu.cfg.Sync != SyncAlways && len(ml.mu.ledgers) > 0 {
		seg = ml.activeLocked().seg // appends stop being journalled
	}
	ml.mu.Unlock()
	if seg != nil {
		// Create the active file if it still waits for its first sync
		// (createSegment): unjournalled appends must reach the page cache.
		if err := seg.Materialize(); err != nil {
			ml.log.Warn("managedledger: creating the active ledger file", "err", err)
		}
	}
}

// Pending is an append in flight.
type Pending struct {
	entry Entry
	err   error
	done  chan struct{}
	start time.Time // when appended; set only with an Observer
	// info is the active segment's state right after this entry (journal
	// mode): what becomes visible when the journal completes it.
	info segment.Info
	// olKnown, olErr: the object log's outcome (cluster mode), recorded
	// until the waiters before p are complete.
	olKnown bool
	olErr   error
}

// Assigned returns the entry as the append numbered it (Position,
// FirstIndex, PublishTime) without waiting; it is durable only once Wait
// returns it without error.
func (p *Pending) Assigned() Entry { return p.entry }

// Wait blocks until the entry is durable (or failed) and returns it with
// Position, FirstIndex and PublishTime set. If ctx ends first, Wait returns
// ctx.Err() and the append may still complete.
func (p *Pending) Wait(ctx context.Context) (Entry, error) {
	select {
	case <-p.done:
		return p.entry, p.err
	case <-ctx.Done():
		return Entry{}, ctx.Err()
	}
}

// Durable reports, without waiting, that the entry is durable (Wait
// would return it without an error).
func (p *Pending) Durable() bool {
	select {
	case <-p.done:
		return p.err == nil
	default:
		return false
	}
}

// AppendAsync assigns e its position, message indexes and publish time in
// call order and encodes it into the active ledger's write buffer; under
// SyncAlways the flusher writes and fsyncs the whole buffer at once (group
// commit), under SyncInterval it is written (write(2)) before returning. The caller may hold its own
// lock across AppendAsync (to make check-then-append atomic) and wait
// outside it. Under SyncAlways the entry becomes visible, and Wait returns,
// once a group fsync covers it; under SyncInterval at once.
func (ml *ManagedLedger) AppendAsync(e Entry) (*Pending, error) {
	return ml.appendAsync(e, -1)
}

// ErrFailedSince is AppendAsyncAfter's answer when a storage failure
// happened since the count the caller saw.
var ErrFailedSince = errors.New("managedledger: a storage failure happened since")

// Failures counts the storage failures of the ledger so far. Each one
// fails every append in flight (their Wait returns an error, possibly
// shortly after the count moved) and nothing appended before it but not
// yet durable survives it.
func (ml *ManagedLedger) Failures() int64 { return ml.failures.Load() }

// AppendAsyncAfter is AppendAsync, refused with ErrFailedSince unless the
// ledger's failure count is still failures: atomically, so that a caller
// keeping per-producer state (deduplication) never appends behind a
// failure it has not accounted for.
func (ml *ManagedLedger) AppendAsyncAfter(e Entry, failures int64) (*Pending, error) {
	return ml.appendAsync(e, failures)
}

// appendAsync is AppendAsync; failures >= 0 is AppendAsyncAfter's check.
func (ml *ManagedLedger) appendAsync(e Entry, failures int64) (*Pending, error) {
	if e.MsgCount < 1 {
		return nil, fmt.Errorf("%w: message count %d", ErrInvalidEntry, e.MsgCount)
	}
	if len(e.Producer) > segment.MaxProducerLen {
		return nil, fmt.Errorf("%w: producer name of %d bytes", ErrInvalidEntry, len(e.Producer))
	}
	caching := ml.factory.cacheBudget > 0
	var cached []byte
	if caching {
		cached = bytes.Clone(e.Data) // before taking the lock appends serialise on
	}
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if ml.mu.closed {
		return nil, ErrClosed
	}
	if ml.mu.failed != nil {
		return nil, ml.mu.failed
	}
	if failures >= 0 && failures != ml.failures.Load() {
		return nil, ErrFailedSince
	}
	if err := ml.maybeRollLocked(); err != nil {
		return nil, err
	}
	l := ml.activeLocked()
	now := max(time.Now().UnixMilli(), ml.mu.lastPub)
	rec := segment.Record{
		EntryID: ml.mu.nextEntry, FirstIndex: ml.mu.next, PublishTime: now, MaxEventTime: e.MaxEventTime,
		SeqFirst: e.SeqFirst, SeqLast: e.SeqLast, MsgCount: e.MsgCount, Format: uint8(e.Format),
		Producer: e.Producer, Data: e.Data,
	}
	if _, err := l.seg.Append(&rec); err != nil {
		if errors.Is(err, segment.ErrTooLarge) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidEntry, err)
		}
		ml.failLocked(err)
		return nil, ml.mu.failed
	}
	ml.mu.lastPub = now
	ml.mu.nextEntry++
	ml.mu.next += int64(e.MsgCount)
	e.Position = Position{LedgerID: l.id, EntryID: rec.EntryID}
	e.FirstIndex = rec.FirstIndex
	e.PublishTime = now
	if caching { // every entry, so that the cached run has no gap
		ce := e
		ce.Data = cached
		ml.cacheAppendLocked(ce)
	}
	e.Data = nil
	p := &Pending{entry: e, done: make(chan struct{})}
	if ml.factory.olog != nil {
		if ml.factory.opts.Observer != nil {
			p.start = time.Now()
		}
		ml.appendObjlogLocked(l, &rec, p) // acknowledged once committed
		return p, nil
	}
	if ml.mu.cfg.Sync == SyncInterval || ml.memory {
		// Durable enough under this policy once in the file (write(2)); in
		// memory mode there is nothing more durable to wait for.
		info, err := l.seg.Write()
		if err != nil {
			ml.failLocked(err)
			return nil, ml.mu.failed
		}
		ml.publishLocked(l, info)
		close(p.done)
		return p, nil
	}
	if ml.factory.opts.Observer != nil {
		p.start = time.Now()
	}
	if ml.journal != nil {
		// Journal mode: the shared journal's group fsync makes the entry
		// durable; the segment gets it by write(2) on completion and is
		// fsynced by the checkpoint.
		p.info = l.seg.Written()
		if err := ml.journal.append(ml.name, l.id, &rec, func(err error) { ml.journalDone(p, err) }); err != nil {
			ml.failLocked(err)
			return nil, ml.mu.failed
		}
		ml.mu.waiters = append(ml.mu.waiters, p)
		return p, nil
	}
	ml.mu.waiters = append(ml.mu.waiters, p)
	select {
	case ml.kick <- struct{}{}:
	default:
	}
	return p, nil
}

// journalDone completes p once the journal group holding it is durable
// (err nil) or failed. It runs on the journal's completer, in submission
// order, so p is the ledger's oldest waiter unless a rollover, the
// syncer (after a failure) or close completed it already. The entry is
// written to the segment (one write(2) of everything pending, outside mu)
// before it becomes visible: readers read the segment file.
func (ml *ManagedLedger) journalDone(p *Pending, err error) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if len(ml.mu.waiters) == 0 || ml.mu.waiters[0] != p {
		return
	}
	fail := err
	switch {
	case err != nil:
		ml.failLocked(err)
		fail = ml.mu.failed
	case ml.mu.failed != nil:
		fail = ml.mu.failed
	case ml.ledgerLocked(p.entry.Position.LedgerID) == nil:
		fail = ErrClosed // not reachable: the active ledger is never deleted
	default:
		l := ml.ledgerLocked(p.entry.Position.LedgerID)
		seg := l.seg
		ml.mu.Unlock()
		_, werr := seg.Write()
		ml.mu.Lock()
		if len(ml.mu.waiters) == 0 || ml.mu.waiters[0] != p {
			return // completed meanwhile (close)
		}
		if werr != nil {
			ml.failLocked(werr)
			fail = ml.mu.failed
		} else if ml.mu.failed != nil {
			fail = ml.mu.failed
		} else {
			ml.publishLocked(l, p.info)
		}
	}
	ml.mu.waiters[0] = nil
	ml.mu.waiters = ml.mu.waiters[1:]
	if obs := ml.factory.opts.Observer; obs != nil && fail == nil {
		obs.AppendLatency(time.Since(p.start))
	}
	ml.finishLocked(p, fail)
}

// replayJournal appends to seg (the active ledger's segment, just
// recovered from its file) the journal's entries of it that the file
// lacks, and syncs: acknowledged entries whose segment data was not yet
// fsynced. recs are the managed ledger's journal records.
func (ml *ManagedLedger) replayJournal(seg *segment.Segment, recs []jrec) (*Position, error) {
	if len(recs) == 0 || ml.journal == nil {
		return nil, nil
	}
	d := seg.Durable()
	tail, err := journalTail(recs, d.LedgerID, d.Entries)
	if err != nil {
		return nil, err
	}
	for i := range tail {
		if _, err := seg.Append(&tail[i]); err != nil {
			return nil, fmt.Errorf("%w: replaying journal entry %d into ledger %d: %w", ErrCorrupt, tail[i].EntryID, d.LedgerID, err)
		}
	}
	if len(tail) > 0 {
		if _, err := seg.Sync(); err != nil {
			return nil, storageError(ml.name, fmt.Errorf("sync after journal replay: %w", err))
		}
		ml.factory.replayed.Add(int64(len(tail)))
		ml.log.Info("managedledger: replayed journal entries into the active ledger",
			"ledger", d.LedgerID, "from_entry", d.Entries, "entries", len(tail))
	}
	// Everything of this name up to the durable end is in segments now;
	// the caller releases it once the ledger list is stored.
	d = seg.Durable()
	return &Position{LedgerID: d.LedgerID, EntryID: d.Entries - 1}, nil
}

// confirmSyncedLocked stores the ledger list without l's Unsynced mark
// once l's file has been synced, so that the mark never outlives a
// release of l's journal records: callers call it after a successful Sync
// and release only if it returns nil. Once per ledger; ml.mu held.
func (ml *ManagedLedger) confirmSyncedLocked(ctx context.Context, l *ledger) error {
	if !l.metaUnsynced {
		return nil
	}
	if l.seg.Unsynced() {
		return fmt.Errorf("managedledger: ledger %d not synced", l.id)
	}
	// Bounded: this holds ml.mu, so appends wait for it, and with the
	// metadata store down a put runs to its own deadline (30 s with etcd).
	// A failure costs nothing but keeping the journal records a while.
	ctx, cancel := context.WithTimeout(ctx, confirmSyncedTimeout)
	defer cancel()
	return ml.persistLocked(ctx)
}

// confirmSyncedTimeout bounds confirmSyncedLocked's store write.
const confirmSyncedTimeout = time.Second

// checkpoint (the factory's, journal mode) fdatasyncs the active segment
// if it holds unsynced data and releases the journal records of visible
// entries it covers. Only visible ones: an entry id past them may be
// reused after an in-place recovery, and releasing it would let the
// journal drop the new, acknowledged entry before its segment has it.
//
// After a ledger's first sync the release waits for the ledger list to be
// stored without the ledger's Unsynced mark (confirmSyncedLocked): then
// checkpoint returns that step as confirm instead of doing it, and the
// factory runs the confirms of all ledgers concurrently so that the
// metadata store groups them (bolt: one commit for many; with the syncing
// workers alone a checkpoint after 100,000 first writes stored four
// ledger lists per commit and took most of an hour).
func (ml *ManagedLedger) checkpoint() (confirm func()) {
	ml.mu.Lock()
	if ml.mu.closed || ml.mu.failed != nil || ml.journal == nil {
		ml.mu.Unlock()
		return nil
	}
	l := ml.activeLocked()
	seg, vis := l.seg, l.entries
	ml.mu.Unlock()
	info, err := seg.Sync()
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if err != nil {
		if !ml.mu.closed && l.seg == seg {
			ml.failLocked(err)
		}
		return nil
	}
	if ml.mu.closed {
		return nil // the close releases what it synced
	}
	release := Position{LedgerID: l.id, EntryID: min(vis, info.Entries) - 1}
	if !l.metaUnsynced {
		ml.journal.release(ml.name, release)
		return nil
	}
	return func() {
		ml.mu.Lock()
		if ml.mu.closed || ml.mu.failed != nil {
			// Closed: the close releases what it synced. Failed: keep the
			// records for the recovery, as a checkpoint of a failed
			// ledger does.
			ml.mu.Unlock()
			return
		}
		err := ml.confirmSyncedLocked(context.Background(), l)
		ml.mu.Unlock()
		if err != nil {
			ml.log.Warn("managedledger: journal records kept: ledger list not updated after the first sync", "ledger", l.id, "err", err)
			return
		}
		ml.journal.release(ml.name, release)
	}
}

// Append appends e and returns once it is durable.
func (ml *ManagedLedger) Append(ctx context.Context, e Entry) (Entry, error) {
	p, err := ml.AppendAsync(e)
	if err != nil {
		return Entry{}, err
	}
	return p.Wait(ctx)
}

// failLocked records a storage failure: after a failed write or fsync the
// file's tail is unknown (the page cache may have dropped the dirty pages),
// so only recovery from the file can continue. The syncer retries that
// (recover.go).
//
// The waiters are completed by the syncer, not here: a group fsync may be
// in flight that covers some of them (written before it began, though they
// joined the next round), and once it succeeds they are durable and must
// succeed. The syncer judges each waiter when no fsync is in flight
// (finishLocked).
func (ml *ManagedLedger) failLocked(err error) {
	if ml.mu.failed == nil {
		ml.failures.Add(1)
		ml.mu.failed = storageError(ml.name, err)
		ml.mu.failedAt = time.Now()
		ml.factory.storageFailures.Add(1)
		if errors.Is(err, ErrFenced) {
			// Cluster mode: another broker owns the ledger now.
			ml.log.Warn("managedledger: fenced: ownership moved; appends refused until reopened", "err", err)
		} else {
			ml.log.Error("managedledger: storage failure; appends refused until recovered",
				"err", err, "disk_full", errors.Is(ml.mu.failed, ErrDiskFull))
		}
		ml.startSyncer()
		select {
		case ml.failKick <- struct{}{}:
		default:
		}
	}
	ml.cacheClearLocked() // cached entries past the durable ones never become visible
	select {
	case ml.kick <- struct{}{}: // the syncer completes the waiters
	default:
	}
}

// finishLocked completes a waiter with err, unless its entry is visible
// already: then it is durable (a group fsync covered it, written before
// that sync began though its waiter joined the next round) and recovery
// keeps it, so it must succeed. Failing it would make its producer resend
// a stored batch, and the log would hold it twice. Called by the syncer
// with no fsync in flight, or when nothing can sync any more (close).
func (ml *ManagedLedger) finishLocked(w *Pending, err error) {
	if err != nil {
		if l := ml.ledgerLocked(w.entry.Position.LedgerID); l != nil && w.entry.Position.EntryID < l.entries {
			err = nil
		}
	}
	w.err = err
	close(w.done)
}

// publishLocked makes l's entries up to info visible and wakes readers.
func (ml *ManagedLedger) publishLocked(l *ledger, info segment.Info) {
	if info.Entries <= l.entries {
		return
	}
	l.entries, l.bytes, l.maxTs = info.Entries, info.Size, info.MaxTimestamp
	ml.mu.visNext = max(ml.mu.visNext, info.NextIndex)
	if lc := (Position{LedgerID: l.id, EntryID: l.entries - 1}); ml.mu.lastConfirmed.Less(lc) {
		ml.mu.lastConfirmed = lc
	}
	close(ml.mu.changed)
	ml.mu.changed = make(chan struct{})
}

// syncer is the group-commit flusher: every kick it takes all waiters,
// fdatasyncs once, and completes them; appends arriving meanwhile are
// written concurrently and covered by the next round. It also runs the
// periodic sync of SyncInterval.
func (ml *ManagedLedger) syncer() {
	defer close(ml.syncDone)
	timer := time.NewTimer(ml.config().SyncInterval)
	defer timer.Stop()
	var g groupState
	var rs retryState
	defer rs.stop()
	for {
		select {
		case <-ml.kick:
			ml.syncWaiters(&g)
		case <-timer.C:
			ml.syncActive()
			timer.Reset(ml.config().SyncInterval)
		case <-ml.failKick:
			rs.failed(ml.factory.opts.StorageRetryInterval)
		case <-rs.c():
			rs.done(ml.recoverStorage())
		case <-ml.stopSync:
			g.lastBatch = 0
			ml.syncWaiters(&g)
			return
		}
	}
}

func (ml *ManagedLedger) config() Config {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.mu.cfg
}

// groupState is the flusher's memory of its last round, used to size the
// next one. Only the syncer goroutine touches it.
type groupState struct {
	lastBatch int
	lastSync  time.Duration
}

// gather waits briefly for the batch to fill up to the size of the last
// one. Without it, the first appender to come back after a sync would get a
// sync of its own and the rest would wait for the next: batches alternate
// 1, N-1, 1, N-1 and durable throughput halves. The wait is bounded by half
// the last fsync time (at most 1ms), so a lone appender never waits.
func (ml *ManagedLedger) gather(g *groupState) {
	ml.mu.Lock()
	n := len(ml.mu.waiters)
	ml.mu.Unlock()
	if n == 0 || n >= g.lastBatch {
		return
	}
	wait := min(max(g.lastSync/2, 50*time.Microsecond), time.Millisecond)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ml.kick:
		case <-timer.C:
			return
		case <-ml.stopSync:
			return
		}
		ml.mu.Lock()
		n = len(ml.mu.waiters)
		ml.mu.Unlock()
		if n >= g.lastBatch {
			return
		}
	}
}

func (ml *ManagedLedger) syncWaiters(g *groupState) {
	if ml.factory.olog != nil {
		return // cluster mode: the object log completes the waiters
	}
	for {
		ml.gather(g)
		ml.mu.Lock()
		ws := ml.mu.waiters
		ml.mu.waiters = nil
		if len(ws) == 0 {
			ml.mu.Unlock()
			return
		}
		if ml.mu.failed != nil {
			// Failed while these waited. No fsync is in flight now (this
			// goroutine's are done, and a rollover's runs under mu): what
			// is visible is durable, the rest is lost.
			for _, w := range ws {
				ml.finishLocked(w, ml.mu.failed)
			}
			ml.mu.Unlock()
			continue
		}
		l := ml.activeLocked()
		seg := l.seg
		ml.mu.Unlock()
		if ml.testAfterTake != nil {
			ml.testAfterTake()
		}

		// Every waiter taken above was written to l before we took it
		// (writes happen under mu), so this sync covers them all. If a
		// rollover sealed l meanwhile, Sync returns the sealed state.
		t0 := time.Now()
		info, err := seg.Sync()
		g.lastSync, g.lastBatch = time.Since(t0), len(ws)
		if obs := ml.factory.opts.Observer; obs != nil && err == nil {
			obs.SyncLatency(g.lastSync)
			now := time.Now()
			for _, w := range ws {
				obs.AppendLatency(now.Sub(w.start))
			}
		}

		ml.mu.Lock()
		if err != nil {
			ml.failLocked(err)
			err = ml.mu.failed
		} else {
			ml.publishLocked(l, info)
		}
		for _, w := range ws {
			ml.finishLocked(w, err)
		}
		ml.mu.Unlock()
	}
}

// syncActive is the periodic sync (SyncInterval): data already visible
// becomes durable and its index points reach the index file.
func (ml *ManagedLedger) syncActive() {
	ml.mu.Lock()
	if ml.mu.closed || ml.mu.failed != nil {
		ml.mu.Unlock()
		return
	}
	if ml.factory.olog != nil {
		// Cluster mode: only commits to the object log publish entries.
		ml.mu.Unlock()
		return
	}
	if ml.journal != nil && ml.mu.cfg.Sync == SyncAlways {
		// Journal mode: the factory's checkpoint syncs the segment; a
		// per-ledger periodic fsync is what the journal is there to avoid.
		ml.mu.Unlock()
		return
	}
	l := ml.activeLocked()
	seg := l.seg
	ml.mu.Unlock()
	info, err := seg.Sync()
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if err != nil {
		ml.failLocked(err)
		return
	}
	ml.publishLocked(l, info)
}

// maybeRollLocked rolls over to a new ledger when the active one is full or old.
func (ml *ManagedLedger) maybeRollLocked() error {
	l := ml.activeLocked()
	w := l.seg.Written()
	if w.Entries == 0 || (w.Size < ml.mu.cfg.MaxLedgerBytes && time.Since(l.created) < ml.mu.cfg.MaxLedgerAge) {
		return nil
	}
	return ml.rollLocked()
}

// rollLocked seals the active ledger (syncing everything written, which
// completes all waiters), creates the next ledger and records both.
// Crash safety: the new file exists before the list names it (an unlisted
// file is an orphan, removed on open), and a sealed file still listed as
// active is simply reopened for appends.
func (ml *ManagedLedger) rollLocked() error {
	if ml.objlogBusyLocked() {
		// Cluster mode: a sealed ledger's length must be what is
		// committed of it (clusterlog.go).
		return ml.startRollLocked()
	}
	l := ml.activeLocked()
	if err := l.seg.Seal(); err != nil {
		ml.failLocked(err)
		return ml.mu.failed
	}
	ml.publishLocked(l, l.seg.Durable())
	for _, w := range ml.mu.waiters {
		ml.finishLocked(w, nil) // the seal made them durable
	}
	ml.mu.waiters = nil
	now := time.Now()
	l.sealed, l.closed = true, now
	if err := ml.addLedgerLocked(ml.mu.next, now); err != nil {
		ml.failLocked(err)
		return ml.mu.failed
	}
	if err := ml.persistLocked(context.Background()); err != nil {
		ml.failLocked(err)
		return ml.mu.failed
	}
	ml.log.Debug("managedledger: rolled over", "sealed", l.id, "entries", l.entries, "bytes", l.bytes)
	ml.offloadSoonLocked()
	return nil
}

// closeIdleSegments closes sealed ledgers' files unused for maxIdle, so a
// broker with many topics holds neither file descriptors nor index points
// for cold data; the next read reopens them. A read already planned on a
// closed segment gets segment.ErrClosed and ReadEntries plans again.
func (ml *ManagedLedger) closeIdleSegments(maxIdle time.Duration) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if ml.mu.closed {
		return
	}
	now := time.Now()
	for _, l := range ml.mu.ledgers[:len(ml.mu.ledgers)-1] {
		if l.seg != nil && now.Sub(l.lastUsed) >= maxIdle {
			l.seg.Close()
			l.seg = nil
		}
	}
}

// rollIfOld seals an idle active ledger past MaxLedgerAge so that retention
// can delete it.
func (ml *ManagedLedger) rollIfOld() error {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if ml.mu.closed || ml.mu.failed != nil {
		return nil
	}
	return ml.maybeRollLocked()
}

// Changed returns a channel closed when new entries become visible (or the
// ledger closes). Take a new channel after each wake-up.
func (ml *ManagedLedger) Changed() <-chan struct{} {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.mu.changed
}

// LastConfirmed is the position of the last visible entry; (ledger, -1) when empty.
func (ml *ManagedLedger) LastConfirmed() Position {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.mu.lastConfirmed
}

// FirstIndex is the lowest retained message index (Kafka log start offset).
func (ml *ManagedLedger) FirstIndex() int64 {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.mu.first
}

// NextIndex is the index after the last visible message: the index the next
// appended message gets once every append in flight is durable (Kafka high
// watermark).
func (ml *ManagedLedger) NextIndex() int64 {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.mu.visNext
}

// MaxTimestamp is the largest entry timestamp (event time, else publish
// time) among retained ledgers' visible entries; 0 when there are none. With
// FindByTime it finds the entry holding it (Kafka ListOffsets max timestamp).
func (ml *ManagedLedger) MaxTimestamp() int64 {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	var m int64
	for _, l := range ml.mu.ledgers {
		if l.entries > 0 {
			m = max(m, l.maxTs)
		}
	}
	return m
}

// ---- position arithmetic (ml.mu held) ----

func (ml *ManagedLedger) searchLocked(id int64) int {
	return sort.Search(len(ml.mu.ledgers), func(i int) bool { return ml.mu.ledgers[i].id >= id })
}

func (ml *ManagedLedger) ledgerLocked(id int64) *ledger {
	if i := ml.searchLocked(id); i < len(ml.mu.ledgers) && ml.mu.ledgers[i].id == id {
		return ml.mu.ledgers[i]
	}
	return nil
}

// nextWritePosLocked is where the next entry to become visible will be.
func (ml *ManagedLedger) nextWritePosLocked() Position {
	a := ml.activeLocked()
	return Position{LedgerID: a.id, EntryID: a.entries}
}

// visibleLocked reports whether an entry exists and is visible at p.
func (ml *ManagedLedger) visibleLocked(p Position) bool {
	l := ml.ledgerLocked(p.LedgerID)
	return l != nil && p.EntryID >= 0 && p.EntryID < l.entries && !p.Less(ml.mu.firstPos)
}

// entryAtOrAfterLocked returns the first visible, retained entry at or after p.
func (ml *ManagedLedger) entryAtOrAfterLocked(p Position) (Position, bool) {
	if p.Less(ml.mu.firstPos) {
		p = ml.mu.firstPos
	}
	for i := ml.searchLocked(p.LedgerID); i < len(ml.mu.ledgers); i++ {
		l := ml.mu.ledgers[i]
		e := int64(0)
		if l.id == p.LedgerID {
			e = max(p.EntryID, 0)
		}
		if e < l.entries {
			return Position{LedgerID: l.id, EntryID: e}, true
		}
	}
	return Position{}, false
}

// nextPositionLocked returns the position of the entry after p, which may
// not exist yet (then the next write position). It steps from the last
// entry of one ledger to the first of the next.
func (ml *ManagedLedger) nextPositionLocked(p Position) Position {
	if p.EntryID == math.MaxInt64 {
		return p
	}
	q := Position{LedgerID: p.LedgerID, EntryID: p.EntryID + 1}
	if pos, ok := ml.entryAtOrAfterLocked(q); ok {
		return pos
	}
	if w := ml.nextWritePosLocked(); !w.Less(q) {
		return w
	}
	return q
}

// prevPositionLocked returns the position of the entry before p (an entry
// position or the next write position): (ledger, -1) before the first.
func (ml *ManagedLedger) prevPositionLocked(p Position) Position {
	i := ml.searchLocked(p.LedgerID)
	if i < len(ml.mu.ledgers) && ml.mu.ledgers[i].id == p.LedgerID && p.EntryID > 0 {
		return Position{LedgerID: p.LedgerID, EntryID: min(p.EntryID, ml.mu.ledgers[i].entries) - 1}
	}
	for j := i - 1; j >= 0; j-- {
		if l := ml.mu.ledgers[j]; l.entries > 0 {
			return Position{LedgerID: l.id, EntryID: l.entries - 1}
		}
	}
	if i < len(ml.mu.ledgers) {
		return Position{LedgerID: ml.mu.ledgers[i].id, EntryID: -1}
	}
	return Position{LedgerID: p.LedgerID, EntryID: -1}
}

// ledgerOfIndexLocked returns the ledger holding message index (which must
// be visible).
func (ml *ManagedLedger) ledgerOfIndexLocked(index int64) *ledger {
	i := sort.Search(len(ml.mu.ledgers), func(i int) bool { return ml.mu.ledgers[i].firstIndex > index }) - 1
	return ml.mu.ledgers[max(i, 0)]
}

// headerAtIndexLocked returns the header of the visible entry holding index.
func (ml *ManagedLedger) headerAtIndexLocked(index int64) (segment.Record, Position, error) {
	l := ml.ledgerOfIndexLocked(index)
	rd, err := ml.readerLocked(l)
	if err != nil {
		return segment.Record{}, Position{}, err
	}
	h, ok, err := rd.findIndex(index, l.entries)
	if err == nil && !ok {
		err = fmt.Errorf("%w: index %d not in ledger %d", ErrCorrupt, index, l.id)
	}
	if err != nil {
		return segment.Record{}, Position{}, err
	}
	return h, Position{LedgerID: l.id, EntryID: h.EntryID}, nil
}

// headerLocked returns the header (no data) of the visible entry at p.
func (ml *ManagedLedger) headerLocked(p Position) (segment.Record, error) {
	l := ml.ledgerLocked(p.LedgerID)
	if l == nil || p.EntryID < 0 || p.EntryID >= l.entries {
		return segment.Record{}, fmt.Errorf("managedledger: no entry at %v", p)
	}
	rd, err := ml.readerLocked(l)
	if err != nil {
		return segment.Record{}, err
	}
	return rd.header(p.EntryID, l.entries)
}

// lookupError keeps the errors of a lookup that are not corruption (an
// *offload.Miss to fetch, a store outage) and marks the rest ErrCorrupt.
func lookupError(err error) error {
	var miss *offload.Miss
	if errors.As(err, &miss) || errors.Is(err, ErrTieredUnavailable) || errors.Is(err, ErrCorrupt) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrCorrupt, err)
}

// recomputeFirstLocked derives first and firstPos after the ledger list or
// the truncation point changed.
func (ml *ManagedLedger) recomputeFirstLocked() {
	ml.mu.first = max(ml.mu.truncBefore, ml.mu.ledgers[0].firstIndex)
	ml.mu.first = min(ml.mu.first, ml.mu.visNext)
	ml.mu.firstPos = Earliest
	if ml.mu.first < ml.mu.visNext {
		// The first entry of a ledger holds its first index: no lookup
		// (which, for an offloaded ledger, could mean a fetch).
		if l := ml.ledgerOfIndexLocked(ml.mu.first); l.firstIndex == ml.mu.first && l.entries > 0 {
			ml.mu.firstPos = Position{LedgerID: l.id, EntryID: 0}
			return
		}
		var pos Position
		err := ml.lookupLocked(func() (err error) {
			_, pos, err = ml.headerAtIndexLocked(ml.mu.first)
			return err
		})
		if err == nil {
			ml.mu.firstPos = pos
			return
		} else {
			ml.log.Error("managedledger: locating first index", "index", ml.mu.first, "err", err)
		}
		ml.mu.firstPos = Position{LedgerID: ml.mu.ledgers[0].id, EntryID: 0}
		return
	}
	ml.mu.firstPos = ml.nextWritePosLocked()
}

// ---- reads ----

// ReadEntries returns up to maxEntries visible entries starting at the first
// entry at or after from, stopping before maxBytes would be exceeded (but
// always returning at least one entry if any exists). Empty result: nothing yet.
func (ml *ManagedLedger) ReadEntries(ctx context.Context, from Position, maxEntries, maxBytes int) ([]Entry, error) {
	return ml.readEntries(ctx, from, maxEntries, maxBytes, true)
}

// readEntries is ReadEntries; without atLeastOne, the first entry is
// returned only if it fits maxBytes too.
func (ml *ManagedLedger) readEntries(ctx context.Context, from Position, maxEntries, maxBytes int, atLeastOne bool) ([]Entry, error) {
	for attempt := 0; ; attempt++ {
		out, err := ml.readOnce(ctx, from, maxEntries, maxBytes, atLeastOne)
		// A ledger deleted by retention, or its idle file closed, under a
		// reader: plan again.
		if errors.Is(err, segment.ErrClosed) && attempt < 10 {
			continue
		}
		return out, err
	}
}

type readPart struct {
	rd          ledgerReader
	id          int64
	from, limit int64
}

func (ml *ManagedLedger) readOnce(ctx context.Context, from Position, maxEntries, maxBytes int, atLeastOne bool) ([]Entry, error) {
	if maxEntries <= 0 {
		return nil, nil
	}
	ml.mu.Lock()
	if ml.mu.closed {
		ml.mu.Unlock()
		return nil, ErrClosed
	}
	start, ok := ml.entryAtOrAfterLocked(from)
	if !ok {
		ml.mu.Unlock()
		return nil, nil
	}
	if out, ok := ml.cacheReadLocked(start, maxEntries, maxBytes, atLeastOne); ok {
		ml.mu.Unlock()
		return out, nil
	}
	var parts []readPart
	budget := int64(maxEntries)
	for i := ml.searchLocked(start.LedgerID); i < len(ml.mu.ledgers) && budget > 0; i++ {
		l := ml.mu.ledgers[i]
		first := int64(0)
		if l.id == start.LedgerID {
			first = start.EntryID
		}
		if first >= l.entries {
			continue
		}
		rd, err := ml.readerLocked(l)
		if err != nil {
			ml.mu.Unlock()
			return nil, err
		}
		parts = append(parts, readPart{rd: rd, id: l.id, from: first, limit: l.entries})
		budget -= l.entries - first
	}
	ml.mu.Unlock()

	// The parts are consecutive in log order; a part is left only once it
	// is read to its end. Stopping anywhere inside a part (budget spent,
	// an entry that does not fit, a short read) ends the whole read:
	// INVARIANT: the result is a gapless run from start, never an entry
	// whose predecessor was not returned.
	var out []Entry
	size := 0
	for _, p := range parts {
		// size == maxBytes goes on: entries without data still fit.
		if len(out) >= maxEntries || (len(out) > 0 && size > maxBytes) {
			break
		}
		first, budget := true, max(maxBytes-size, 1)
		if len(out) > 0 || !atLeastOne {
			// Only what still fits: a record that would be dropped
			// below is not read.
			first, budget = false, max(maxBytes-size, 0)
		}
		recs, err := p.rd.read(ctx, p.from, p.limit, maxEntries-len(out), budget, first)
		if err != nil {
			releaseRecords(recs)
			// What was read before a failure is a gapless run and is
			// returned; the failure shows on the next read. A store that
			// is down is never an empty answer that lets a reader skip.
			if len(out) > 0 && (errors.Is(err, segment.ErrClosed) || errors.Is(err, ErrTieredUnavailable)) {
				return out, nil
			}
			if !errors.Is(err, segment.ErrClosed) && !errors.Is(err, ErrTieredUnavailable) {
				err = fmt.Errorf("%w: ledger %d: %w", ErrCorrupt, p.id, err)
			}
			return out, err
		}
		want := p.from
		for i := range recs {
			r := &recs[i]
			if r.EntryID != want {
				releaseRecords(recs[i:])
				releaseEntries(out)
				return nil, fmt.Errorf("%w: ledger %d: entry %d read where %d expected", ErrCorrupt, p.id, r.EntryID, want)
			}
			if (len(out) > 0 || !atLeastOne) && size+len(r.Data) > maxBytes {
				releaseRecords(recs[i:])
				return out, nil
			}
			size += len(r.Data)
			out = append(out, entryOf(p.id, r))
			want++
		}
		if want < p.limit {
			break // this ledger was not read to its end: the next one must wait
		}
	}
	return out, nil
}

// releaseRecords gives back the read buffers of records not returned.
func releaseRecords(recs []segment.Record) {
	for i := range recs {
		recs[i].Release()
	}
}

// releaseEntries gives back the read buffers of entries not returned.
func releaseEntries(es []Entry) {
	for i := range es {
		es[i].Release()
	}
}

func entryOf(ledgerID int64, r *segment.Record) Entry {
	e := Entry{
		Position: Position{LedgerID: ledgerID, EntryID: r.EntryID}, Format: Format(r.Format),
		MsgCount: r.MsgCount, FirstIndex: r.FirstIndex, PublishTime: r.PublishTime, MaxEventTime: r.MaxEventTime,
		Producer: r.Producer, SeqFirst: r.SeqFirst, SeqLast: r.SeqLast, Data: r.Data,
	}
	if r.Data != nil {
		e.release = &entryRelease{rec: *r}
	}
	return e
}

// ReadFromIndex returns entries starting with the one containing message
// index. index == NextIndex returns nothing; index outside
// [FirstIndex, NextIndex] is ErrIndexOutOfRange.
func (ml *ManagedLedger) ReadFromIndex(ctx context.Context, index int64, maxEntries, maxBytes int) ([]Entry, error) {
	return ml.readFromIndex(ctx, index, maxEntries, maxBytes, true)
}

// ReadFromIndexWithin is ReadFromIndex without the exception for the first
// entry: it returns nothing if that entry's data exceeds maxBytes, and
// does not read its data to find out. For a reader that already has data
// and fills what is left of its budget (a Kafka fetch's later partitions).
func (ml *ManagedLedger) ReadFromIndexWithin(ctx context.Context, index int64, maxEntries, maxBytes int) ([]Entry, error) {
	return ml.readFromIndex(ctx, index, maxEntries, maxBytes, false)
}

func (ml *ManagedLedger) readFromIndex(ctx context.Context, index int64, maxEntries, maxBytes int, atLeastOne bool) ([]Entry, error) {
	var pos Position
	atEnd := false
	err := ml.withFetch(ctx, func() error {
		ml.mu.Lock()
		defer ml.mu.Unlock()
		if ml.mu.closed {
			return ErrClosed
		}
		if index < ml.mu.first || index > ml.mu.visNext {
			return fmt.Errorf("%w: %d not in [%d, %d]", ErrIndexOutOfRange, index, ml.mu.first, ml.mu.visNext)
		}
		if index == ml.mu.visNext {
			atEnd = true
			return nil
		}
		var ok bool
		if pos, ok = ml.cacheFindIndexLocked(index); ok {
			return nil
		}
		var err error
		_, pos, err = ml.headerAtIndexLocked(index)
		return err
	})
	if err != nil || atEnd {
		return nil, err
	}
	out, err := ml.readEntries(ctx, pos, maxEntries, maxBytes, atLeastOne)
	// The ledger holding index may have been deleted (retention,
	// TruncateBefore) between finding it and reading: the read then starts
	// at a later entry, and returning that would skip messages.
	if len(out) > 0 && (index < out[0].FirstIndex || index > out[0].LastIndex()) {
		releaseEntries(out)
		return nil, fmt.Errorf("%w: %d no longer retained", ErrIndexOutOfRange, index)
	}
	return out, err
}

// PositionOf returns the position of the entry holding message index.
func (ml *ManagedLedger) PositionOf(index int64) (Position, error) {
	var pos Position
	err := ml.withFetch(context.Background(), func() error {
		ml.mu.Lock()
		defer ml.mu.Unlock()
		if index < ml.mu.first || index >= ml.mu.visNext {
			return fmt.Errorf("%w: %d not in [%d, %d)", ErrIndexOutOfRange, index, ml.mu.first, ml.mu.visNext)
		}
		var err error
		_, pos, err = ml.headerAtIndexLocked(index)
		return err
	})
	return pos, err
}

// FindByTime returns the metadata (no Data) of the first entry whose
// timestamp (event time, else publish time), maximised over all earlier
// entries, is >= t. found is false when no entry qualifies.
func (ml *ManagedLedger) FindByTime(ctx context.Context, t int64) (e Entry, found bool, err error) {
	err = ml.withFetch(ctx, func() error {
		var err error
		e, found, err = ml.findByTime(t)
		return err
	})
	return e, found, err
}

func (ml *ManagedLedger) findByTime(t int64) (e Entry, found bool, err error) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if ml.mu.closed {
		return Entry{}, false, ErrClosed
	}
	var runMax int64
	for _, l := range ml.mu.ledgers {
		if l.entries == 0 {
			continue
		}
		if max(runMax, l.maxTs) < t {
			runMax = max(runMax, l.maxTs)
			continue
		}
		// Every earlier ledger is older than t, so the answer is the first
		// entry of this ledger whose in-ledger running max reaches t.
		rd, err := ml.readerLocked(l)
		if err != nil {
			return Entry{}, false, err
		}
		h, ok, err := rd.findTime(t, l.entries)
		if err != nil {
			return Entry{}, false, lookupError(err)
		}
		if !ok {
			return Entry{}, false, nil
		}
		e := entryOf(l.id, &h)
		if e.LastIndex() < ml.mu.first { // logically truncated: the first retained entry qualifies too
			if ml.mu.first >= ml.mu.visNext {
				return Entry{}, false, nil
			}
			h, pos, err := ml.headerAtIndexLocked(ml.mu.first)
			if err != nil {
				return Entry{}, false, err
			}
			e = entryOf(pos.LedgerID, &h)
		}
		return e, true, nil
	}
	return Entry{}, false, nil
}

// ---- truncation and retention ----

// TruncateBefore makes index the first retained message index (Kafka
// DeleteRecords): ledgers wholly below it are deleted, the rest of the
// first ledger is hidden. Durable cursors behind it move forward. It never
// moves backwards.
func (ml *ManagedLedger) TruncateBefore(ctx context.Context, index int64) error {
	return ml.withFetch(ctx, func() error { return ml.truncateBefore(ctx, index) })
}

func (ml *ManagedLedger) truncateBefore(ctx context.Context, index int64) error {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if ml.mu.closed {
		return ErrClosed
	}
	if index > ml.mu.visNext {
		return fmt.Errorf("%w: %d beyond %d", ErrIndexOutOfRange, index, ml.mu.visNext)
	}
	if index <= ml.mu.first {
		if index > ml.mu.truncBefore {
			// Below the first retained index (ledgers released under a
			// compacted view): only the logical point moves.
			ml.mu.truncBefore = index
			return ml.persistLocked(ctx)
		}
		return nil
	}
	// Cursors move onto the entry holding index: have its header at hand
	// (an offloaded ledger's block may need a fetch, done without the lock).
	if index < ml.mu.visNext {
		if _, _, err := ml.headerAtIndexLocked(index); err != nil {
			return err
		}
	}
	// Move cursors first, while the entries below index are still addressable.
	for _, c := range ml.mu.cursors {
		c.mu.Lock()
		if c.nextIndexLocked() < index {
			if err := ml.lookupLocked(func() error { return c.setNextIndexLocked(index) }); err != nil {
				ml.log.Warn("managedledger: moving cursor past truncation", "group", c.name, "err", err)
			}
		}
		c.mu.Unlock()
	}
	ml.mu.truncBefore = index
	var del []*ledger
	for len(ml.mu.ledgers) > 1 && ml.mu.ledgers[1].firstIndex <= index {
		del = append(del, ml.mu.ledgers[0])
		ml.mu.ledgers = ml.mu.ledgers[1:]
	}
	ml.recomputeFirstLocked()
	if err := ml.persistLocked(ctx); err != nil {
		return err
	}
	ml.removeLedgersLocked(del)
	return nil
}

func (ml *ManagedLedger) removeLedgersLocked(del []*ledger) {
	var objects []string
	for _, l := range del {
		objects = append(objects, ml.factory.offloadKeysOf(ml.name, l)...)
		var err error
		if l.off != nil && l.off.localDeleted {
			// only in the object store
		} else if l.seg != nil {
			err = l.seg.Remove()
			l.seg = nil
		} else {
			err = segment.RemoveFiles(ml.segOpts, l.id)
		}
		if err != nil {
			ml.log.Warn("managedledger: removing ledger files", "ledger", l.id, "err", err)
		}
		ml.log.Info("managedledger: deleted ledger", "ledger", l.id, "entries", l.entries, "bytes", l.bytes)
	}
	if len(objects) > 0 {
		// Outside the lock and the caller's time: a down store leaves them
		// to orphan collection (gcObjects), never fails the deletion.
		ml.factory.bg.Add(1)
		go func() {
			defer ml.factory.bg.Done()
			ml.factory.deleteObjects(ml.name, objects)
		}()
	}
}

// ApplyRetention deletes consumed ledgers beyond the retention policy
// (Pulsar semantics). A sealed ledger is deleted only if every entry in it
// is at or before the slowest durable cursor's mark-delete position (no
// durable cursor: everything counts as consumed) and it is older than
// RetentionTime (age since sealing) or the ledger's total size exceeds
// RetentionBytes. Ledgers go oldest first; the active ledger never goes.
func (ml *ManagedLedger) ApplyRetention(ctx context.Context) error {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if ml.mu.closed {
		return ErrClosed
	}
	slowest := Latest
	for _, c := range ml.mu.cursors {
		if md := c.MarkDeletePosition(); md.Less(slowest) {
			slowest = md
		}
	}
	cfg := ml.mu.cfg
	var total int64
	for _, l := range ml.mu.ledgers {
		total += l.bytes
	}
	now := time.Now()
	n, removed := 0, int64(0)
	for _, l := range ml.mu.ledgers[:len(ml.mu.ledgers)-1] {
		if !l.sealed {
			break // a cluster rollover waiting for its commits
		}
		if l.entries > 0 && slowest.Less(Position{LedgerID: l.id, EntryID: l.entries - 1}) {
			break // not consumed
		}
		expired := cfg.RetentionTime >= 0 && now.Sub(l.closed) >= cfg.RetentionTime
		overSize := cfg.RetentionBytes > 0 && total-removed > cfg.RetentionBytes
		if !expired && !overSize {
			break
		}
		n++
		removed += l.bytes
	}
	if n == 0 {
		return nil
	}
	del := append([]*ledger(nil), ml.mu.ledgers[:n]...)
	ml.mu.ledgers = ml.mu.ledgers[n:]
	ml.recomputeFirstLocked()
	if err := ml.persistLocked(ctx); err != nil {
		return err
	}
	ml.removeLedgersLocked(del)
	return nil
}

// Stats summarises the ledger.
func (ml *ManagedLedger) Stats() Stats {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	s := Stats{Messages: ml.mu.visNext - ml.mu.first, FirstIndex: ml.mu.first, NextIndex: ml.mu.visNext}
	for _, l := range ml.mu.ledgers {
		s.Entries += l.entries
		s.Bytes += l.bytes
		li := LedgerInfo{
			LedgerID: l.id, Entries: l.entries, Bytes: l.bytes, FirstIndex: l.firstIndex, Created: l.created, Sealed: l.sealed,
		}
		if l.sealed {
			li.MaxTimestamp = l.maxTs
		}
		if l.off != nil && l.off.complete {
			li.Offloaded, li.OffloadID, li.LocalDeleted = true, l.off.uid.String(), l.off.localDeleted
		}
		if !li.LocalDeleted {
			s.LocalBytes += l.bytes
		}
		s.Ledgers = append(s.Ledgers, li)
	}
	return s
}

// Close closes the ledger: appends in flight are synced, cursors flushed,
// files closed; pending waiters of Changed wake up. The factory forgets it,
// so a later Factory.Open reopens it.
func (ml *ManagedLedger) Close() error {
	f := ml.factory
	f.mu.Lock()
	if f.mu.ledgers[ml.name] != ml {
		f.mu.Unlock()
		return ml.close() // already forgotten (deleted, factory closed)
	}
	delete(f.mu.ledgers, ml.name)
	release := f.holdClosingLocked(ml.name)
	f.mu.Unlock()
	defer release() // only then may Open recover the files again
	return ml.close()
}

// close: stop appends, drain the flusher, sync the active ledger (its index
// points reach the index file), flush cursors, close files.
func (ml *ManagedLedger) close() error {
	ml.mu.Lock()
	if ml.mu.closed {
		ml.mu.Unlock()
		return nil
	}
	ml.mu.closed = true
	ml.mu.Unlock()
	ml.startSyncer() // its last round completes what still waits
	close(ml.stopSync)
	<-ml.syncDone
	ml.bgCancel()
	ml.bg.Wait()
	if ml.factory.olog != nil {
		ml.drainObjlog()
		defer ml.factory.setFence(ml.name, nil)
	}

	var errs []error
	ml.mu.Lock()
	if ml.mu.failed == nil && ml.factory.olog == nil {
		l := ml.activeLocked()
		if info, err := l.seg.Sync(); err != nil {
			errs = append(errs, err)
		} else {
			ml.publishLocked(l, info)
			errs = append(errs, l.seg.FlushIndex())
			if ml.journal != nil {
				// Everything visible is in the segment file now. If the
				// list cannot drop the Unsynced mark, the journal keeps
				// the records and the next open replays them.
				if err := ml.confirmSyncedLocked(context.Background(), l); err != nil {
					errs = append(errs, err)
				} else {
					ml.journal.release(ml.name, Position{LedgerID: l.id, EntryID: l.entries - 1})
				}
			}
		}
	}
	for _, w := range ml.mu.waiters {
		ml.finishLocked(w, ErrClosed)
	}
	ml.mu.waiters = nil
	close(ml.mu.changed)
	ml.cacheClearLocked()
	ml.mu.Unlock()

	errs = append(errs, ml.flushCursors(context.Background()))

	ml.mu.Lock()
	ml.closeSegmentsLocked()
	ml.mu.Unlock()
	return errors.Join(errs...)
}
