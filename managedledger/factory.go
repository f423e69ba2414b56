package managedledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kopernik-io/kopernik/managedledger/objlog"
	"github.com/kopernik-io/kopernik/managedledger/offload"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/objectstore"
	"github.com/kopernik-io/kopernik/segment"
)

// FactoryOptions configures a Factory.
type FactoryOptions struct {
	// Dir holds ledger files; empty keeps everything in memory (same engine
	// over an in-memory file system; nothing survives the process).
	Dir string
	// Store holds ledger lists and cursor snapshots.
	Store metadata.Store
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// FS overrides file access (tests inject failures). Default: the OS file
	// system, or an in-memory one when Dir is empty.
	FS segment.FS
	// MaxOpenFiles bounds the file descriptors of ledger and journal files
	// (segment.LimitFS: idle files are closed, least recently used and
	// clean first, and reopened on use). 0: three quarters of the
	// process's RLIMIT_NOFILE when files are on the OS file system (Go
	// raises the soft limit to the hard one at start), unbounded on a
	// custom FS; < 0: unbounded.
	MaxOpenFiles int
	// RetentionInterval is the period of the background pass that rolls
	// over ledgers older than MaxLedgerAge, applies retention and closes
	// sealed ledgers' files unused for a minute (default 30s; < 0 disables it).
	RetentionInterval time.Duration
	// CursorFlushInterval is the period of the background persistence of
	// changed durable cursors (default 100ms). Acks never wait for it.
	CursorFlushInterval time.Duration
	// IndexInterval is the log distance between sparse index points
	// (default 4 KiB).
	IndexInterval int64
	// Prealloc zero-fills this many bytes ahead of the active ledger's
	// writer in the background, once that ledger has taken as much, so
	// that group fsyncs write into allocated blocks (default 8 MiB with a
	// Dir, off in memory; < 0 disables). Measured ~10-30% more durable
	// throughput and lower latency on this project's machine: see
	// docs/benchmarks.md. Costs up to Prealloc of disk per busy ledger.
	Prealloc int64
	// CacheBytes is the memory all ledgers share for caching recently
	// appended entries, so that reads keeping up with writes need no file
	// read or checksum (Pulsar's managedLedgerCacheSizeMB; see cache.go).
	// Default 64 MiB with a Dir; an in-memory factory does not cache;
	// < 0 disables. The cache lives on the Go heap, which the collector
	// lets grow to about twice the live data: a cache of N bytes costs up
	// to ~2N of memory, and in the Kafka benchmark a 256 MiB cache made the
	// consumer's allocations fault in fresh pages (slower than 64 MiB; see
	// docs/benchmarks.md).
	CacheBytes int64
	// CacheMaxAge drops cached entries appended longer ago than this
	// (Pulsar's managedLedgerCacheEvictionTimeThresholdMillis, whose
	// default is 1s; default here 10s).
	CacheMaxAge time.Duration
	// StorageRetryInterval is how soon a ledger that failed on a write or
	// fsync (a full disk, an I/O error) tries to recover by itself; failed
	// attempts back off to five times this (default 1s, so 1-5s; < 0: no
	// automatic recovery, only a reopen recovers). See recover.go.
	StorageRetryInterval time.Duration

	// Offload enables tiered storage (tiered.go): sealed ledgers can be
	// copied to this object store and read from it; nil: off.
	Offload objectstore.Store
	// OffloadPrefix starts every object name (default none); see package
	// offload for the names.
	OffloadPrefix string
	// OffloadInterval is the period of the background pass that offloads
	// by each ledger's OffloadPolicy, deletes local copies past the
	// deletion lag and collects orphan objects (default 10s; < 0: no pass).
	OffloadInterval time.Duration
	// OffloadBlockSize is the target size of an offloaded block, the unit
	// of a ranged GET (default 4 MiB; see offload.DefaultBlockSize).
	OffloadBlockSize int
	// OffloadCacheBytes bounds the memory of decoded offloaded blocks all
	// ledgers share: cached blocks and GETs in flight, read-ahead included
	// (default 64 MiB; see offload.Cache).
	OffloadCacheBytes int64
	// OffloadReadAhead is how many blocks past the one a read needs are
	// fetched in the background, into the following offloaded ledgers too
	// (default offload.DefaultReadAhead; < 0: none). The cache bounds it:
	// read-ahead holds at most half of OffloadCacheBytes.
	OffloadReadAhead int
	// Observer, if set, receives storage latencies (metrics).
	Observer Observer

	// PerLedgerSync turns the shared journal off: every ledger then
	// fdatasyncs its own segment file before acknowledging (one fsync
	// stream per ledger; the design before the journal, kept for
	// comparison). Default false: with a Dir, SyncAlways appends are
	// acknowledged by the journal's group commit (journal.go, doc.go).
	PerLedgerSync bool
	// JournalFileBytes is the size at which the journal starts a new file
	// (default 64 MiB); old files are deleted once released.
	JournalFileBytes int64
	// CheckpointInterval is the period of the checkpoint that fdatasyncs
	// segments holding journalled entries and releases their journal
	// records (default 10s, BookKeeper's flushInterval is 60s; < 0: only
	// when the journal grows past CheckpointBytes, and at close). A
	// checkpoint costs one fdatasync per ledger that appended since the
	// last: with thousands of busy ledgers a short interval costs
	// acknowledgement latency (docs/benchmarks.md).
	CheckpointInterval time.Duration
	// CheckpointBytes starts a checkpoint early once this much was
	// journalled since the last (default 64 MiB): it bounds the journal's
	// disk use and the replay after a crash.
	CheckpointBytes int64

	// ObjectLog, if set, makes this a cluster factory (clusterlog.go):
	// appends are acknowledged once committed to the object log, the
	// ledger data on this broker is an in-memory cache (Dir holds none;
	// no journal), and every open rebuilds its ledger from the object log
	// and the offloaded objects.
	ObjectLog *ObjectLogOptions
}

// Observer receives storage latencies, for metrics. Its methods are called
// on the write path (the group-commit flusher): they must be cheap and must
// not block or call back into the ledger.
type Observer interface {
	// AppendLatency is one durable append's time from AppendAsync to
	// durable (what an acknowledged producer waited for storage), under
	// SyncAlways; Pulsar's pulsar_storage_write_latency.
	AppendLatency(time.Duration)
	// SyncLatency is one group fsync's time (write of the pending bytes
	// included), however many appends it made durable.
	SyncLatency(time.Duration)
}

// Factory opens managed ledgers that share a data directory and a metadata store.
//
// Background work: one goroutine persists dirty cursors (and trims entry
// caches) every CursorFlushInterval, one applies retention every RetentionInterval, and
// every open managed ledger runs one flusher (group commit).
type Factory struct {
	opts FactoryOptions
	log  *slog.Logger
	fs   segment.FS
	// limit is fs when MaxOpenFiles bounds the descriptors, else nil.
	limit *segment.LimitFS
	root  string

	stop chan struct{}
	wg   sync.WaitGroup

	// Entry cache budget (bytes, 0: off) and use across all ledgers.
	cacheBudget int64
	cacheUsed   atomic.Int64

	// Storage failures and recoveries of all ledgers, since start.
	storageFailures, storageRecoveries atomic.Int64

	// journal is the shared write-ahead journal (nil: PerLedgerSync or
	// in memory); ckKick starts a checkpoint early (journal grew).
	journal *journal
	ckKick  chan struct{}
	// replayed counts entries replayed from the journal into segments
	// (tests: that crash tests exercise replay at all).
	replayed atomic.Int64

	// bg tracks object deletions in the background (Close waits for them).
	bg           sync.WaitGroup
	offloader    objectstore.Store // FactoryOptions.Offload
	offloadCache *offload.Cache    // nil without offloader

	// Cluster mode (clusterlog.go): the object log, its reader, and the
	// fence each open ledger commits under (olMu is a leaf lock).
	olog     *objlog.Log
	olRead   objlog.Reader
	olMu     sync.Mutex
	olFences map[string]metadata.Cond
	// olNextRead is the index read the next opens wait for; olReading:
	// one is under way (objlogSnapshot). Guarded by olMu.
	olNextRead *snapshotRead
	olReading  bool
	// olCollected counts objects the object log's collection deleted.
	olCollected atomic.Int64
	// olHeldRolls counts rollovers done with appends in flight (tests).
	olHeldRolls atomic.Int64

	mu struct {
		sync.Mutex
		closed  bool
		ledgers map[string]*ManagedLedger
		// replay holds the journal records found at start, by ledger
		// name, until the ledger's open consumes them.
		replay map[string][]jrec
		// closing holds the names of ledgers being closed or deleted; the
		// channel closes when that is done. Open waits for it, so that a
		// ledger is never open twice and recovery never runs on files
		// another instance is still writing or removing.
		closing map[string]chan struct{}
	}
}

// NewFactory returns a factory; it creates Dir if needed and starts the
// background loops (stopped by Close).
func NewFactory(opts FactoryOptions) (*Factory, error) {
	if opts.Store == nil {
		return nil, fmt.Errorf("managedledger: factory needs a metadata store")
	}
	if opts.RetentionInterval == 0 {
		opts.RetentionInterval = 30 * time.Second
	}
	if opts.StorageRetryInterval == 0 {
		opts.StorageRetryInterval = time.Second
	}
	if opts.CursorFlushInterval <= 0 {
		opts.CursorFlushInterval = 100 * time.Millisecond
	}
	f := &Factory{opts: opts, log: opts.Logger, fs: opts.FS, root: opts.Dir, stop: make(chan struct{})}
	if f.log == nil {
		f.log = slog.Default()
	}
	if opts.ObjectLog != nil {
		f.opts.Prealloc = -1 // the segments are a cache
		if f.fs == nil {
			f.fs = segment.NewMemFS() // the object log holds the data
		}
	}
	if f.fs == nil {
		if opts.Dir == "" {
			f.fs = segment.NewMemFS()
		} else {
			f.fs = segment.OSFS{}
			if f.opts.MaxOpenFiles == 0 {
				f.opts.MaxOpenFiles = defaultMaxOpenFiles()
			}
		}
	}
	if f.opts.MaxOpenFiles > 0 {
		f.limit = segment.NewLimitFS(f.fs, f.opts.MaxOpenFiles)
		f.fs = f.limit
	}
	if f.root == "" {
		f.root = "/memory"
		f.opts.Prealloc = 0 // no disk to be kind to
	}
	switch {
	case f.opts.Prealloc == 0 && opts.Dir != "":
		f.opts.Prealloc = 8 << 20
	case f.opts.Prealloc < 0:
		f.opts.Prealloc = 0
	}
	switch {
	case opts.Dir == "" || opts.CacheBytes < 0:
		f.cacheBudget = 0
	case opts.CacheBytes == 0:
		f.cacheBudget = 64 << 20
	default:
		f.cacheBudget = opts.CacheBytes
	}
	if f.opts.CacheMaxAge <= 0 {
		f.opts.CacheMaxAge = 10 * time.Second
	}
	if err := f.fs.MkdirAll(f.root); err != nil {
		return nil, fmt.Errorf("managedledger: %w", err)
	}
	f.mu.ledgers = make(map[string]*ManagedLedger)
	f.mu.closing = make(map[string]chan struct{})
	if opts.ObjectLog != nil {
		if err := f.openObjectLog(); err != nil {
			return nil, err
		}
	} else if opts.Dir != "" && !opts.PerLedgerSync {
		if err := f.openJournal(); err != nil {
			return nil, err
		}
	}
	if opts.Offload != nil {
		f.offloader = opts.Offload
		f.offloadCache = offload.NewCache(opts.OffloadCacheBytes)
		if f.opts.OffloadInterval == 0 {
			f.opts.OffloadInterval = 10 * time.Second
		}
		if f.opts.OffloadInterval > 0 {
			// One ledger at a time (an upload holds one ledger's objects in
			// memory); appends never wait for it: a pass holds a ledger's
			// lock only between I/O.
			ctx, cancel := context.WithCancel(context.Background())
			f.wg.Add(2)
			go func() {
				defer f.wg.Done()
				<-f.stop
				cancel()
			}()
			go f.every(f.opts.OffloadInterval, func(ml *ManagedLedger) {
				if ctx.Err() == nil {
					ml.offloadPass(ctx)
				}
			})
		}
	}
	f.wg.Add(1)
	go f.every(opts.CursorFlushInterval, func(ml *ManagedLedger) {
		ml.flushCursors(context.Background())
		ml.cacheTrim(f.opts.CacheMaxAge)
	})
	if opts.RetentionInterval > 0 {
		f.wg.Add(1)
		go f.every(opts.RetentionInterval, func(ml *ManagedLedger) {
			if err := ml.rollIfOld(); err != nil {
				f.log.Warn("managedledger: age rollover failed", "ledger", ml.name, "err", err)
			}
			if err := ml.ApplyRetention(context.Background()); err != nil && !errors.Is(err, ErrClosed) {
				f.log.Warn("managedledger: retention failed", "ledger", ml.name, "err", err)
			}
			ml.closeIdleSegments(max(time.Minute, 2*opts.RetentionInterval))
		})
	}
	return f, nil
}

func (f *Factory) every(d time.Duration, fn func(*ManagedLedger)) {
	defer f.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
			for _, ml := range f.open() {
				fn(ml)
			}
		}
	}
}

func (f *Factory) open() []*ManagedLedger {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*ManagedLedger, 0, len(f.mu.ledgers))
	for _, ml := range f.mu.ledgers {
		out = append(out, ml)
	}
	return out
}

// OpenFiles returns the descriptor budget's counters (MaxOpenFiles); ok is
// false when files are unbounded.
func (f *Factory) OpenFiles() (st segment.LimitStats, ok bool) {
	if f.limit == nil {
		return segment.LimitStats{}, false
	}
	return f.limit.Stats(), true
}

// StorageCounts returns how many storage failures and recoveries ledgers
// went through since the factory started (metrics).
func (f *Factory) StorageCounts() (failures, recoveries int64) {
	return f.storageFailures.Load(), f.storageRecoveries.Load()
}

// ValidateName checks a managed ledger name: '/'-separated non-empty
// segments of [A-Za-z0-9._=-], e.g. "public/default/persistent/t-partition-0".
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("managedledger: empty name")
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("managedledger: invalid name %q", name)
		}
		for _, r := range seg {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
				r == '.' || r == '_' || r == '-' || r == '='
			if !ok {
				return fmt.Errorf("managedledger: invalid character %q in name %q", r, name)
			}
		}
	}
	return nil
}

// Open returns the managed ledger called name, creating it if absent, and
// recovering it (torn tail truncated, cursors restored) if it exists.
// Opening an already open ledger returns the same instance.
func (f *Factory) Open(ctx context.Context, name string, cfg Config) (*ManagedLedger, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	f.mu.Lock()
	for {
		if f.mu.closed {
			f.mu.Unlock()
			return nil, ErrClosed
		}
		if ml, ok := f.mu.ledgers[name]; ok {
			f.mu.Unlock()
			return ml, nil
		}
		done, ok := f.mu.closing[name]
		if !ok {
			break
		}
		f.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		f.mu.Lock()
	}
	// The name is busy while it opens (a second Open of it waits, as for
	// a close), but f.mu is not held across the open: recovery reads
	// files and the metadata store, and one slow ledger must not stall
	// the opens, closes and deletes of all others (with thousands of
	// partitions, first writes arrive for many ledgers at once).
	release := f.holdClosingLocked(name)
	f.mu.Unlock()
	defer release()
	ml, err := openLedger(ctx, f, name, cfg.withDefaults())
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if f.mu.closed {
		// Close ran meanwhile and did not see this ledger: close it here.
		f.mu.Unlock()
		return nil, errors.Join(ErrClosed, ml.close())
	}
	f.mu.ledgers[name] = ml
	f.mu.Unlock()
	return ml, nil
}

func (f *Factory) segOptions(name string) segment.Options {
	prealloc := f.opts.Prealloc
	if !f.opts.PerLedgerSync {
		// With the journal a segment is fdatasynced only by checkpoints,
		// seals and closes, not per acknowledgement: zeros ahead of it
		// would only double its disk writes. The journal preallocates.
		prealloc = 0
	}
	return segment.Options{
		FS: f.fs, Dir: filepath.Join(f.root, filepath.FromSlash(name)), Logger: f.log.With("ledger", name),
		IndexInterval: f.opts.IndexInterval, Prealloc: prealloc,
	}
}

// Delete closes and removes the managed ledger, its data and cursors.
func (f *Factory) Delete(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	f.mu.Lock()
	for {
		done, busy := f.mu.closing[name]
		if !busy {
			break
		}
		f.mu.Unlock()
		<-done // a close of the same ledger in progress
		f.mu.Lock()
	}
	ml, ok := f.mu.ledgers[name]
	delete(f.mu.ledgers, name)
	release := f.holdClosingLocked(name)
	f.mu.Unlock()
	defer release()
	var errs []error
	if ok {
		errs = append(errs, ml.close())
		for _, c := range ml.Cursors() {
			c.forget()
		}
		// An offload run in flight sees the ledger closed and stops; wait
		// for it so that it neither rewrites the list nor uploads after
		// the objects are deleted below.
		ml.offloadMu.Lock()
		defer ml.offloadMu.Unlock()
	}
	store := f.opts.Store
	// Remember where ledger ids stopped, so a managed ledger re-created under
	// this name never reuses an id: Pulsar clients drop messages whose ids
	// they have seen before.
	if rec, err := store.Get(ctx, ledgerPath(name)); err == nil {
		var list ledgerListRecord
		if json.Unmarshal(rec.Value, &list) == nil {
			next := strconv.AppendInt(nil, list.NextLedgerID, 10)
			if _, err := store.Put(ctx, retiredIDPath(name), next, metadata.AnyVersion); err != nil {
				errs = append(errs, err)
			}
			if f.olog != nil {
				// Cluster mode: its object log entries are collected (a
				// re-created ledger of the name uses higher ids).
				if err := f.olRead.Release(ctx, name, objlog.Position{LedgerID: list.NextLedgerID - 1, EntryID: math.MaxInt64}); err != nil {
					f.log.Warn("managedledger: object log entries of a deleted ledger not released", "ledger", name, "err", err)
				}
			}
		}
	}
	// Files: every segment file in the ledger's directory. Subdirectories
	// belong to other managed ledgers (names nest) and stay.
	opts := f.segOptions(name)
	names, err := f.fs.List(opts.Dir)
	if err == nil {
		for _, n := range names {
			if id, ok := segment.ParseName(n); ok {
				errs = append(errs, segment.RemoveFiles(opts, id))
			}
		}
		errs = append(errs, f.fs.SyncDir(opts.Dir))
	}
	// Objects: a deleted topic's offloaded ledgers, and any orphans. The
	// deletion does not fail on them (the rest is gone already): what a
	// down store keeps is collected when a managed ledger of this name is
	// opened again (gcObjects), or is left in the bucket, as logged.
	if err := f.deleteAllObjects(ctx, name); err != nil {
		f.log.Warn("managedledger: offloaded objects of a deleted ledger left in the object store", "topic", name, "err", err)
	}
	cursors, err := store.Children(ctx, cursorsPath(name))
	if err != nil && !errors.Is(err, metadata.ErrNotFound) {
		errs = append(errs, err)
	}
	for _, c := range cursors {
		if err := store.Delete(ctx, cursorsPath(name)+"/"+c, metadata.AnyVersion); err != nil && !errors.Is(err, metadata.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if err := store.Delete(ctx, ledgerPath(name), metadata.AnyVersion); err != nil && !errors.Is(err, metadata.ErrNotFound) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Close stops the background loops, then closes every open managed ledger:
// pending appends are synced, cursors flushed, files closed. Later calls
// return ErrClosed.
func (f *Factory) Close() error {
	f.mu.Lock()
	if f.mu.closed {
		f.mu.Unlock()
		return nil
	}
	f.mu.closed = true
	all := f.mu.ledgers
	f.mu.ledgers = map[string]*ManagedLedger{}
	busy := make([]chan struct{}, 0, len(f.mu.closing))
	for _, done := range f.mu.closing {
		busy = append(busy, done)
	}
	f.mu.Unlock()
	close(f.stop)
	f.wg.Wait()
	var errs []error
	for _, ml := range all {
		errs = append(errs, ml.close())
	}
	// Opens, closes and deletes in flight finish before the journal
	// closes (an open that completes now sees closed and closes its
	// ledger itself). New ones fail with ErrClosed.
	for _, done := range busy {
		<-done
	}
	if f.journal != nil {
		// After the ledgers: their closes sync their segments and release
		// their records, so that a clean shutdown leaves no journal.
		errs = append(errs, f.journal.close())
	}
	if f.olog != nil {
		errs = append(errs, f.olog.Close()) // after the ledgers drained theirs
	}
	f.bg.Wait() // object deletions started before or by the closes
	if f.offloadCache != nil {
		f.offloadCache.Close()
	}
	return errors.Join(errs...)
}

// holdClosingLocked marks name as being closed or deleted until the
// returned func is called. f.mu is held.
func (f *Factory) holdClosingLocked(name string) (release func()) {
	done := make(chan struct{})
	f.mu.closing[name] = done
	return func() {
		f.mu.Lock()
		delete(f.mu.closing, name)
		f.mu.Unlock()
		close(done)
	}
}

func (c Config) withDefaults() Config {
	if c.MaxLedgerBytes <= 0 {
		c.MaxLedgerBytes = 128 << 20
	}
	if c.MaxLedgerAge <= 0 {
		c.MaxLedgerAge = 4 * time.Hour
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = time.Second
	}
	return c
}

// Metadata layout.
func ledgerPath(name string) string  { return "/managed-ledgers/" + name }
func cursorsPath(name string) string { return ledgerPath(name) + "/cursors" }

// retiredIDPath holds the next ledger id of a deleted managed ledger.
func retiredIDPath(name string) string { return "/managed-ledger-ids/" + name }

// firstLedgerID is the id of a new managed ledger's first ledger: 0, or
// where a deleted managed ledger of the same name stopped.
func firstLedgerID(ctx context.Context, store metadata.Store, name string) int64 {
	rec, err := store.Get(ctx, retiredIDPath(name))
	if err != nil {
		return 0
	}
	id, err := strconv.ParseInt(string(rec.Value), 10, 64)
	if err != nil || id < 0 {
		return 0
	}
	return id
}

// escapeCursorName maps any cursor name to one valid path segment:
// [A-Za-z0-9_-] stay, every other byte becomes %XX (so "." and ".." too).
func escapeCursorName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func unescapeCursorName(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("managedledger: bad cursor key %q", s)
		}
		var v byte
		for _, h := range []byte(s[i+1 : i+3]) {
			v <<= 4
			switch {
			case h >= '0' && h <= '9':
				v |= h - '0'
			case h >= 'A' && h <= 'F':
				v |= h - 'A' + 10
			default:
				return "", fmt.Errorf("managedledger: bad cursor key %q", s)
			}
		}
		b.WriteByte(v)
		i += 2
	}
	return b.String(), nil
}

// openJournal opens the shared journal in <root>/journal, replays what it
// holds into the ledgers it names and starts the checkpoint loop.
func (f *Factory) openJournal() error {
	if f.opts.JournalFileBytes <= 0 {
		f.opts.JournalFileBytes = 64 << 20
	}
	if f.opts.CheckpointInterval == 0 {
		f.opts.CheckpointInterval = 10 * time.Second
	}
	if f.opts.CheckpointBytes <= 0 {
		f.opts.CheckpointBytes = 64 << 20
	}
	f.ckKick = make(chan struct{}, 1)
	j, replay, err := openJournal(journalOptions{
		FS: f.fs, Dir: filepath.Join(f.root, "journal"), Log: f.log, MaxFileBytes: f.opts.JournalFileBytes,
		Prealloc: min(f.opts.Prealloc, f.opts.JournalFileBytes), RetryInterval: f.opts.StorageRetryInterval,
		GrowBytes: f.opts.CheckpointBytes, Observer: f.opts.Observer,
		Grown: func() {
			select {
			case f.ckKick <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		return err
	}
	f.journal = j
	f.mu.replay = replay
	// Replay now rather than at each ledger's first open: records of a
	// ledger nobody opens would pin their journal files for ever.
	ctx := context.Background()
	for name, recs := range replay {
		if _, err := f.opts.Store.Get(ctx, ledgerPath(name)); errors.Is(err, metadata.ErrNotFound) {
			// Deleted (a re-created ledger of the name uses higher ids).
			f.mu.Lock()
			delete(f.mu.replay, name)
			f.mu.Unlock()
			j.release(name, maxJPos(recs))
			continue
		}
		ml, err := f.Open(ctx, name, Config{})
		if err != nil {
			f.log.Error("managedledger: replaying the journal into a ledger failed; its records stay", "ledger", name, "err", err)
			continue
		}
		if err := ml.Close(); err != nil {
			f.log.Warn("managedledger: closing a ledger after journal replay", "ledger", name, "err", err)
		}
	}
	j.deleteReleased()
	f.wg.Add(1)
	go f.checkpointLoop()
	return nil
}

func maxJPos(recs []jrec) Position {
	m := Earliest
	for i := range recs {
		if p := recs[i].pos(); m.Less(p) {
			m = p
		}
	}
	return m
}

// takeReplay hands ledger name's journal records found at start to its
// open (once).
func (f *Factory) takeReplay(name string) []jrec {
	f.mu.Lock()
	defer f.mu.Unlock()
	recs := f.mu.replay[name]
	delete(f.mu.replay, name)
	return recs
}

func (f *Factory) checkpointLoop() {
	defer f.wg.Done()
	var tick <-chan time.Time // nil: only when the journal grew
	if f.opts.CheckpointInterval > 0 {
		t := time.NewTicker(f.opts.CheckpointInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-f.stop:
			return
		case <-tick:
		case <-f.ckKick:
		}
		f.checkpoint()
	}
}

// checkpointWorkers fdatasync segments concurrently: the kernel groups
// concurrent syncs (MACHINE-FACTS: 4 writers ~3x one).
const checkpointWorkers = 4

// checkpointConfirms bounds the concurrent ledger-list writes after first
// syncs (bolt groups up to 1,000 writes in a commit; etcd pipelines them).
const checkpointConfirms = 256

// checkpoint makes every open ledger's journalled entries durable in its
// segment file and releases them from the journal, then deletes the
// journal files that hold nothing else.
func (f *Factory) checkpoint() {
	if f.journal == nil {
		return
	}
	ls := f.open()
	work := make(chan *ManagedLedger)
	var wg sync.WaitGroup
	var confirmsMu sync.Mutex
	var confirms []func()
	for range min(checkpointWorkers, len(ls)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ml := range work {
				if c := ml.checkpoint(); c != nil {
					confirmsMu.Lock()
					confirms = append(confirms, c)
					confirmsMu.Unlock()
				}
			}
		}()
	}
	for _, ml := range ls {
		work <- ml
	}
	close(work)
	wg.Wait()
	// The ledger lists after first syncs, many at once: the metadata store
	// batches concurrent writes.
	sem := make(chan struct{}, checkpointConfirms)
	for _, c := range confirms {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c()
		}()
	}
	wg.Wait()
	f.journal.deleteReleased()
}
