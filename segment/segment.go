package segment

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configures segments.
type Options struct {
	// FS defaults to OSFS.
	FS FS
	// Dir holds the segment files.
	Dir string
	// Logger receives recovery events; default slog.Default().
	Logger *slog.Logger
	// IndexInterval is the log distance between index points (default 4 KiB).
	IndexInterval int64
	// Prealloc zero-fills (and syncs) this many bytes ahead of the writer in
	// the background, once the file holds at least that much, so that
	// fdatasync after an append does not also commit a file-size change
	// (an ext4 journal commit). 0 disables it. Seal and recovery truncate
	// the slack.
	Prealloc int64
}

func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = OSFS{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.IndexInterval <= 0 {
		o.IndexInterval = 4096
	}
	return o
}

// LogName and IndexName are the file names of ledger id.
func LogName(id int64) string   { return fmt.Sprintf("%020d.log", id) }
func IndexName(id int64) string { return fmt.Sprintf("%020d.idx", id) }

// ParseName returns the ledger id of a segment file name (.log or .idx).
func ParseName(name string) (int64, bool) {
	base, ok := strings.CutSuffix(name, ".log")
	if !ok {
		base, ok = strings.CutSuffix(name, ".idx")
	}
	if !ok || len(base) != 20 {
		return 0, false
	}
	id, err := strconv.ParseInt(base, 10, 64)
	return id, err == nil && id >= 0
}

// Info summarises a segment's state at one point (written or durable).
type Info struct {
	LedgerID   int64
	FirstIndex int64
	Entries    int64
	NextIndex  int64
	// Size is the log size in bytes covering Entries (header included).
	Size         int64
	MaxTimestamp int64
	Created      time.Time
	Sealed       bool
}

// Segment is one ledger file and its index. See the package doc for the
// concurrency contract.
type Segment struct {
	opts       Options
	id         int64
	firstIndex int64
	created    time.Time
	logPath    string
	idxPath    string
	logF       File
	idxF       File

	// syncMu serialises Sync and Seal so index points are written in order.
	syncMu sync.Mutex
	// wmu serialises writes of the pending buffer to the file; it is not
	// held during fdatasync, so a write (SyncInterval) never waits for one.
	wmu   sync.Mutex
	spare []byte // the other pending buffer (wmu)
	// closeMu: reads hold it shared, Close exclusively.
	closeMu sync.RWMutex
	closed  bool

	mu struct {
		sync.Mutex
		points   []Point // append-only; published elements never change
		idxSlots int     // points already in the index file
		lastPt   int64   // offset of the last point
		// written state; bytes [fileEnd, size) are still in pending
		pending   []byte
		fileEnd   int64
		fileInfo  Info // the state as of fileEnd
		size      int64
		entries   int64
		nextIndex int64
		maxTs     int64
		// durable state
		synced Info
		// dirPending: created by CreateUnsynced and not synced since, so
		// that the header, the directory entry or the whole file may be
		// lost in a crash; the next Sync or Seal makes them durable.
		dirPending bool
		sealed     bool
		failed     error
		buf        []byte
		// preallocation: [0, allocated) exists on disk; a fill of
		// [fillStart, fillEnd) may be in flight.
		allocated int64
		filling   bool
		fillStart int64
		fillEnd   int64
	}
	fillCond *sync.Cond // on mu
}

func newSegment(opts Options, id int64) *Segment {
	s := &Segment{
		opts:    opts,
		id:      id,
		logPath: filepath.Join(opts.Dir, LogName(id)),
		idxPath: filepath.Join(opts.Dir, IndexName(id)),
	}
	s.fillCond = sync.NewCond(&s.mu)
	return s
}

// Create makes a new, empty, unsealed segment; existing files of the same id
// are replaced. The files and the directory entry are durable on return.
func Create(opts Options, id, firstIndex int64, created time.Time) (*Segment, error) {
	return create(opts, id, firstIndex, created, true)
}

// CreateUnsynced is Create without the fsyncs and without touching the
// disk: the directory and the files are created by the segment's first
// Sync or Seal (deferred.go), so a crash before then loses them. For callers whose acknowledgements are durable
// elsewhere (the managed ledger's journal), so that creating a ledger costs
// no fsync on the path of the first write; Unsynced reports the state.
func CreateUnsynced(opts Options, id, firstIndex int64, created time.Time) (*Segment, error) {
	return create(opts, id, firstIndex, created, false)
}

func create(opts Options, id, firstIndex int64, created time.Time, durable bool) (*Segment, error) {
	opts = opts.withDefaults()
	s := newSegment(opts, id)
	s.firstIndex = firstIndex
	s.created = time.UnixMilli(created.UnixMilli())
	if durable {
		if err := opts.FS.MkdirAll(opts.Dir); err != nil {
			return nil, err
		}
		var err error
		if s.logF, err = opts.FS.OpenFile(s.logPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
			return nil, err
		}
		if s.idxF, err = opts.FS.OpenFile(s.idxPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
			s.logF.Close()
			return nil, err
		}
	} else {
		// Nothing on disk until the first Sync (deferred.go).
		s.logF = newDeferredFile(opts.FS, opts.Dir, s.logPath)
		s.idxF = newDeferredFile(opts.FS, opts.Dir, s.idxPath)
	}
	hdr := logHeader{version: FormatVersion, ledgerID: id, firstIndex: firstIndex, createdMs: s.created.UnixMilli()}
	err := errors.Join(writeFull(s.logF, hdr.encode(), 0), writeFull(s.idxF, encodeIndexHeader(id), 0))
	if err == nil && durable {
		err = errors.Join(s.logF.Sync(), s.idxF.Sync(), opts.FS.SyncDir(opts.Dir))
	}
	if err != nil {
		s.logF.Close()
		s.idxF.Close()
		return nil, err
	}
	s.mu.size = HeaderSize
	s.mu.allocated = HeaderSize
	s.mu.nextIndex = firstIndex
	s.mu.dirPending = !durable
	s.resetFileStateLocked()
	return s, nil
}

// Materialize creates the files of a segment made by CreateUnsynced that
// are still deferred to its first sync, and writes what they hold, without
// an fsync; a no-op otherwise. For a segment whose appends are not
// journalled: its written data then survives a process crash (the page
// cache does), as with a file created at once.
func (s *Segment) Materialize() error {
	var err error
	for _, f := range []File{s.logF, s.idxF} {
		if d, ok := f.(*deferredFile); ok {
			if _, merr := d.materialize(); merr != nil {
				err = errors.Join(err, merr)
			}
		}
	}
	return err
}

// Unsynced reports that the segment was made by CreateUnsynced and has not
// been synced since: its file may not survive a crash.
func (s *Segment) Unsynced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.dirPending
}

func writeFull(f File, b []byte, off int64) error {
	_, err := f.WriteAt(b, off)
	return err
}

// Open opens an existing segment. An unsealed segment (sealed == false) is
// recovered: its torn tail is truncated and it accepts appends. Opening with
// sealed == true returns a read-only segment; if its seal trailer is missing
// (a crash during Seal) it is recovered and sealed again.
func Open(opts Options, id int64, sealed bool) (*Segment, error) {
	opts = opts.withDefaults()
	s := newSegment(opts, id)
	var err error
	if s.logF, err = opts.FS.OpenFile(s.logPath, os.O_RDWR, 0); err != nil {
		return nil, err
	}
	if s.idxF, err = opts.FS.OpenFile(s.idxPath, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		s.logF.Close()
		return nil, err
	}
	if err := s.open(sealed); err != nil {
		s.logF.Close()
		s.idxF.Close()
		return nil, fmt.Errorf("segment %d: %w", id, err)
	}
	return s, nil
}

func (s *Segment) open(sealed bool) error {
	logSize, err := s.logF.Size()
	if err != nil {
		return err
	}
	if logSize < HeaderSize {
		return fmt.Errorf("%w: %w: log shorter than its header", ErrCorrupt, ErrNoHeader)
	}
	hb := make([]byte, HeaderSize)
	if _, err := s.logF.ReadAt(hb, 0); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	hdr, err := decodeLogHeader(hb)
	if err != nil {
		return err
	}
	if hdr.ledgerID != s.id {
		return fmt.Errorf("%w: log of ledger %d, want %d", ErrCorrupt, hdr.ledgerID, s.id)
	}
	s.firstIndex = hdr.firstIndex
	s.created = time.UnixMilli(hdr.createdMs)

	points, tr, hasTrailer, err := s.loadIndex()
	if err != nil {
		return err
	}
	if hasTrailer && tr.logSize == logSize && tr.entries >= 0 && tr.logSize >= HeaderSize {
		s.mu.points = points
		s.mu.idxSlots = len(points)
		if len(points) > 0 {
			s.mu.lastPt = points[len(points)-1].Offset
		}
		s.mu.size, s.mu.entries, s.mu.nextIndex, s.mu.maxTs = tr.logSize, tr.entries, tr.nextIndex, tr.maxTs
		s.mu.allocated = logSize
		s.resetFileStateLocked()
		if sealed {
			s.mu.sealed = true
			s.mu.synced.Sealed = true
			return nil
		}
		// Reopened for appending (the ledger list did not record the seal):
		// drop the trailer slot.
		return s.idxF.Truncate(IndexHeaderSize + int64(len(points))*SlotSize)
	}
	if sealed {
		s.opts.Logger.Warn("segment: sealed ledger without a valid trailer; recovering", "ledger", s.id)
	}
	if err := s.recover(points, logSize); err != nil {
		return err
	}
	if sealed {
		return s.Seal()
	}
	return nil
}

// loadIndex returns the valid prefix of index points (strictly increasing)
// and the trailer if it directly follows them. A missing or bad index header
// rewrites the index file empty (it is a hint).
func (s *Segment) loadIndex() (points []Point, tr trailer, hasTrailer bool, err error) {
	size, err := s.idxF.Size()
	if err != nil {
		return nil, tr, false, err
	}
	b := make([]byte, size)
	if size > 0 {
		if _, err := s.idxF.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
			return nil, tr, false, err
		}
	}
	if err := checkIndexHeader(b, s.id); err != nil {
		if errors.Is(err, ErrNewerVersion) {
			return nil, tr, false, err
		}
		if size > 0 {
			s.opts.Logger.Warn("segment: rewriting unreadable index", "ledger", s.id, "err", err)
		}
		if err := s.idxF.Truncate(0); err != nil {
			return nil, tr, false, err
		}
		return nil, tr, false, writeFull(s.idxF, encodeIndexHeader(s.id), 0)
	}
	for off := IndexHeaderSize; off+SlotSize <= len(b); off += SlotSize {
		kind, f := decodeSlot(b[off:])
		if kind == slotTrailer {
			return points, trailer{entries: f[0], nextIndex: f[1], maxTs: f[2], logSize: f[3]}, true, nil
		}
		if kind != slotPoint {
			break
		}
		p := Point{EntryID: f[0], FirstIndex: f[1], MaxTsBefore: f[2], Offset: f[3]}
		if n := len(points); n > 0 {
			q := points[n-1]
			if p.EntryID <= q.EntryID || p.FirstIndex <= q.FirstIndex || p.Offset <= q.Offset || p.MaxTsBefore < q.MaxTsBefore {
				break
			}
		} else if p.EntryID != 0 || p.Offset != HeaderSize {
			break
		}
		points = append(points, p)
	}
	return points, tr, false, nil
}

// recover rebuilds the written state from the last index point that
// matches the log, truncates the log after the last valid record and makes
// the result (log and index) durable.
func (s *Segment) recover(points []Point, logSize int64) error {
	// Trust the last point whose record verifies; drop the ones after it.
	for len(points) > 0 {
		p := points[len(points)-1]
		rd := reader{f: s.logF, end: logSize}
		r, _, err := rd.record(p.Offset, true, 64<<10)
		if err == nil && r.EntryID == p.EntryID && r.FirstIndex == p.FirstIndex {
			break
		}
		points = points[:len(points)-1]
	}
	var (
		off       = int64(HeaderSize)
		entry     int64
		nextIndex = s.firstIndex
		maxTs     int64
		lastPt    = int64(-1)
	)
	if n := len(points); n > 0 {
		p := points[n-1]
		off, entry, nextIndex, maxTs, lastPt = p.Offset, p.EntryID, p.FirstIndex, p.MaxTsBefore, p.Offset
	}
	keep := len(points)
	rd := reader{f: s.logF, end: logSize}
	var why error
	for off < logSize {
		r, n, err := rd.record(off, true, 256<<10)
		if err == nil && (r.EntryID != entry || r.FirstIndex != nextIndex) {
			err = fmt.Errorf("%w: record %d/%d where %d/%d expected", ErrCorrupt, r.EntryID, r.FirstIndex, entry, nextIndex)
		}
		if err != nil {
			why = err
			break
		}
		if lastPt < 0 || off-lastPt >= s.opts.IndexInterval {
			points = append(points, Point{EntryID: entry, FirstIndex: nextIndex, MaxTsBefore: maxTs, Offset: off})
			lastPt = off
		}
		entry++
		nextIndex = r.NextIndex()
		maxTs = max(maxTs, r.Timestamp())
		off += n
	}
	if off < logSize {
		s.opts.Logger.Warn("segment: truncating log tail", "ledger", s.id, "offset", off, "dropped_bytes", logSize-off, "entries", entry, "reason", why)
		if err := s.logF.Truncate(off); err != nil {
			return err
		}
	}
	if err := s.logF.Sync(); err != nil {
		return err
	}
	// Rewrite the index from the first point not already in the file.
	if err := s.idxF.Truncate(IndexHeaderSize + int64(keep)*SlotSize); err != nil {
		return err
	}
	var b []byte
	for _, p := range points[keep:] {
		b = appendPoint(b, p)
	}
	if len(b) > 0 {
		if err := writeFull(s.idxF, b, IndexHeaderSize+int64(keep)*SlotSize); err != nil {
			return err
		}
	}
	if err := s.idxF.Sync(); err != nil {
		return err
	}
	s.mu.points = points
	s.mu.idxSlots = len(points)
	s.mu.lastPt = lastPt
	s.mu.size, s.mu.entries, s.mu.nextIndex, s.mu.maxTs = off, entry, nextIndex, maxTs
	s.mu.allocated = off
	s.resetFileStateLocked()
	return nil
}

// resetFileStateLocked declares everything written so far in the file and durable.
func (s *Segment) resetFileStateLocked() {
	s.mu.fileEnd = s.mu.size
	s.mu.fileInfo = s.infoLocked()
	s.mu.synced = s.mu.fileInfo
}

// ID returns the ledger id.
func (s *Segment) ID() int64 { return s.id }

func (s *Segment) infoLocked() Info {
	return Info{
		LedgerID: s.id, FirstIndex: s.firstIndex, Entries: s.mu.entries, NextIndex: s.mu.nextIndex,
		Size: s.mu.size, MaxTimestamp: s.mu.maxTs, Created: s.created, Sealed: s.mu.sealed,
	}
}

// Written returns the state including appended records not yet synced.
func (s *Segment) Written() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.infoLocked()
}

// Durable returns the state as of the last completed Sync.
func (s *Segment) Durable() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.synced
}

// Append encodes r into the pending buffer (no I/O; Write or Sync puts it
// in the file) and returns the log size after it. r.EntryID and
// r.FirstIndex must continue the segment. Callers serialise Append.
func (s *Segment) Append(r *Record) (int64, error) {
	if len(r.Producer) > MaxProducerLen || len(r.Data) > maxDataBytes {
		return 0, ErrTooLarge
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writableLocked(); err != nil {
		return 0, err
	}
	if r.EntryID != s.mu.entries || r.FirstIndex != s.mu.nextIndex || r.MsgCount < 1 {
		return 0, fmt.Errorf("%w: got %d/%d, next is %d/%d", ErrOutOfOrder, r.EntryID, r.FirstIndex, s.mu.entries, s.mu.nextIndex)
	}
	off := s.mu.size
	// INVARIANT: fileEnd + (a write in flight) + len(pending) == size.
	before := len(s.mu.pending)
	s.mu.pending = appendRecord(s.mu.pending, r)
	end := off + int64(len(s.mu.pending)-before)
	if s.mu.entries == 0 || off-s.mu.lastPt >= s.opts.IndexInterval {
		s.mu.points = append(s.mu.points, Point{EntryID: r.EntryID, FirstIndex: r.FirstIndex, MaxTsBefore: s.mu.maxTs, Offset: off})
		s.mu.lastPt = off
	}
	s.mu.size = end
	s.mu.entries++
	s.mu.nextIndex = r.NextIndex()
	s.mu.maxTs = max(s.mu.maxTs, r.Timestamp())
	return end, nil
}

// Write puts the pending records in the file (one write(2)), without
// fsync, and returns the state as of the file's end.
func (s *Segment) Write() (Info, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.writeLocked()
}

// writeLocked expects wmu held.
func (s *Segment) writeLocked() (Info, error) {
	s.mu.Lock()
	if s.mu.failed != nil {
		defer s.mu.Unlock()
		return s.mu.fileInfo, s.mu.failed
	}
	if len(s.mu.pending) == 0 {
		defer s.mu.Unlock()
		return s.mu.fileInfo, nil
	}
	buf, off, info := s.mu.pending, s.mu.fileEnd, s.infoLocked()
	s.mu.pending = s.spare[:0]
	// Never write into a region the zero-filler is writing.
	for s.mu.filling && off+int64(len(buf)) > s.mu.fillStart {
		s.fillCond.Wait()
	}
	s.mu.Unlock()

	_, err := s.logF.WriteAt(buf, off)

	s.mu.Lock()
	defer s.mu.Unlock()
	if cap(buf) <= 8<<20 {
		s.spare = buf[:0]
	} else {
		s.spare = nil // do not pin a huge buffer after one big batch
	}
	if err != nil {
		s.mu.failed = fmt.Errorf("%w: write: %w", ErrFailed, err)
		return s.mu.fileInfo, s.mu.failed
	}
	s.mu.fileEnd = off + int64(len(buf))
	s.mu.fileInfo = info
	s.maybePreallocLocked()
	return info, nil
}

func (s *Segment) writableLocked() error {
	switch {
	case s.mu.failed != nil:
		return s.mu.failed
	case s.mu.sealed:
		return ErrSealed
	}
	return nil
}

// maybePreallocLocked starts a background zero-fill of the next chunk when
// the writer is within half a chunk of the end of the allocated region.
func (s *Segment) maybePreallocLocked() {
	chunk := s.opts.Prealloc
	if s.mu.failed != nil {
		return // an abandoned or failed handle writes nothing more
	}
	// Only ledgers that already took a chunk's worth of writes get zeroed
	// slack: a broker with many quiet partitions must not hold a chunk of
	// zeros for each.
	if chunk <= 0 || s.mu.filling || s.mu.fileEnd < chunk || s.mu.fileEnd+chunk/2 < s.mu.allocated {
		return
	}
	start := max(s.mu.allocated, s.mu.fileEnd)
	s.mu.filling, s.mu.fillStart, s.mu.fillEnd = true, start, start+chunk
	go s.fill(start, start+chunk)
}

var zeros = make([]byte, 1<<20)

func (s *Segment) fill(start, end int64) {
	err := s.zeroFill(start, end)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.filling = false
	if err != nil {
		// Not fatal: appends simply grow the file. Stop preallocating.
		s.opts.Logger.Warn("segment: preallocation failed", "ledger", s.id, "err", err)
		s.opts.Prealloc = 0
	} else {
		s.mu.allocated = end
	}
	s.fillCond.Broadcast()
}

// zeroFill writes zeros to [start, end) of the log and syncs them.
func (s *Segment) zeroFill(start, end int64) error {
	var err error
	for off := start; off < end && err == nil; off += int64(len(zeros)) {
		_, err = s.logF.WriteAt(zeros[:min(int64(len(zeros)), end-off)], off)
	}
	if err == nil {
		err = s.logF.Sync()
	}
	return err
}

// Reserve zero-fills and syncs n bytes after everything written, at once
// (preallocation on demand), so that the next appends write into
// allocated blocks. A managed ledger recovering from a full disk reserves
// before it accepts appends again, to learn whether writes fit. A failed
// Reserve does not fail the segment (the zeros read as the end of the log).
func (s *Segment) Reserve(n int64) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if err := s.writableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.waitFillLocked()
	start := max(s.mu.allocated, s.mu.fileEnd)
	s.mu.filling, s.mu.fillStart, s.mu.fillEnd = true, start, start+n
	s.mu.Unlock()
	err := s.zeroFill(start, start+n)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.filling = false
	if err == nil {
		s.mu.allocated = start + n
	}
	s.fillCond.Broadcast()
	return err
}

func (s *Segment) waitFillLocked() {
	for s.mu.filling {
		s.fillCond.Wait()
	}
}

// Sync makes every record appended before the call durable, then writes the
// index points it covers, and returns the durable state. It is cheap when
// nothing is pending and a no-op on a sealed segment.
func (s *Segment) Sync() (Info, error) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	return s.syncLocked()
}

// syncLocked expects syncMu held.
func (s *Segment) syncLocked() (Info, error) {
	s.mu.Lock()
	if s.mu.failed != nil {
		defer s.mu.Unlock()
		return s.mu.synced, s.mu.failed
	}
	if s.mu.sealed || (s.mu.size == s.mu.synced.Size && !s.mu.dirPending) {
		defer s.mu.Unlock()
		return s.mu.synced, nil
	}
	dirPending := s.mu.dirPending
	s.mu.Unlock()

	// One write(2) of everything pending, then one fdatasync covering it
	// and every earlier Write.
	target, err := s.Write()
	if err != nil {
		return s.Durable(), err
	}
	err = s.logF.Sync() // the first one creates a deferred file
	if err == nil && dirPending {
		// The first sync of an unsynced segment: its directory entry too,
		// and the index file's entry with it (created now if deferred,
		// unsynced: the index is a hint).
		if d, ok := s.idxF.(*deferredFile); ok {
			_, err = d.materialize()
		}
		if err == nil {
			err = s.opts.FS.SyncDir(s.opts.Dir)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.mu.failed = fmt.Errorf("%w: sync: %w", ErrFailed, err)
		return s.mu.synced, s.mu.failed
	}
	s.mu.dirPending = false
	if target.Size <= s.mu.synced.Size {
		return s.mu.synced, nil
	}
	s.mu.synced = target
	// Index points go to the file in batches: each write grows the index
	// file, a metadata change the next log fdatasync may have to wait for.
	// Recovery rescans at most indexBatch points' worth of log.
	if len(s.mu.points)-s.mu.idxSlots < indexBatch {
		return target, nil
	}
	if err := s.writePointsLocked(target.Size); err != nil {
		s.mu.failed = fmt.Errorf("%w: index write: %w", ErrFailed, err)
		return s.mu.synced, s.mu.failed
	}
	return target, nil
}

// indexBatch is how many index points Sync accumulates before writing them.
const indexBatch = 64

// FlushIndex writes the index points of all durable records to the index
// file (no fsync: the index is a hint). Close paths call it so that the next
// recovery scans little.
func (s *Segment) FlushIndex() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.failed != nil || s.mu.sealed {
		return s.mu.failed
	}
	return s.writePointsLocked(s.mu.synced.Size)
}

// writePointsLocked appends to the index file the points of records that
// start before durableSize (their bytes are on disk). s.mu held; the write
// is small and rare (one slot per IndexInterval of log).
func (s *Segment) writePointsLocked(durableSize int64) error {
	n := s.mu.idxSlots
	for n < len(s.mu.points) && s.mu.points[n].Offset < durableSize {
		n++
	}
	if n == s.mu.idxSlots {
		return nil
	}
	var b []byte
	for _, p := range s.mu.points[s.mu.idxSlots:n] {
		b = appendPoint(b, p)
	}
	if err := writeFull(s.idxF, b, IndexHeaderSize+int64(s.mu.idxSlots)*SlotSize); err != nil {
		return err
	}
	s.mu.idxSlots = n
	return nil
}

// Seal makes everything durable, truncates preallocated slack, writes the
// trailer and fsyncs the index. Appends fail with ErrSealed afterwards.
func (s *Segment) Seal() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if _, err := s.syncLocked(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.sealed {
		return nil
	}
	s.waitFillLocked()
	fileSize, err := s.logF.Size()
	if err == nil && fileSize != s.mu.size {
		if err = s.logF.Truncate(s.mu.size); err == nil {
			err = s.logF.Sync()
		}
	}
	if err == nil {
		err = s.writePointsLocked(s.mu.size)
	}
	if err == nil {
		b := appendTrailer(nil, trailer{entries: s.mu.entries, nextIndex: s.mu.nextIndex, maxTs: s.mu.maxTs, logSize: s.mu.size})
		err = writeFull(s.idxF, b, IndexHeaderSize+int64(s.mu.idxSlots)*SlotSize)
	}
	if err == nil {
		err = s.idxF.Sync()
	}
	if err != nil {
		s.mu.failed = fmt.Errorf("%w: seal: %w", ErrFailed, err)
		return s.mu.failed
	}
	s.mu.sealed = true
	s.mu.allocated = s.mu.size
	s.resetFileStateLocked()
	return nil
}

// Abandon stops all writing through this handle and returns its durable
// state: a Sync in flight and a preallocation in flight finish first, then
// Append, Write, Sync and Seal fail with ErrFailed and no preallocation
// starts. Reads keep working until Close. A managed ledger abandons a
// failed active segment before it reopens the file with Open (which
// recovers it from what the file holds, not from this handle's memory), so
// that only one handle ever writes a file.
func (s *Segment) Abandon() Info {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.failed == nil {
		s.mu.failed = fmt.Errorf("%w: abandoned", ErrFailed)
	}
	s.waitFillLocked()
	// A file still deferred must not be created by this handle's Close
	// later: the reopened handle owns the path (and may have created it).
	for _, f := range []File{s.logF, s.idxF} {
		if d, ok := f.(*deferredFile); ok {
			d.abandon()
		}
	}
	return s.mu.synced
}

// Close closes the files after reads in progress finish. It does not sync:
// call Sync or Seal first to keep what was appended.
func (s *Segment) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.mu.Lock()
	s.waitFillLocked()
	s.mu.Unlock()
	return errors.Join(s.logF.Close(), s.idxF.Close())
}

// Remove closes the segment and deletes its files.
func (s *Segment) Remove() error {
	for _, f := range []File{s.logF, s.idxF} {
		if d, ok := f.(*deferredFile); ok {
			d.discard() // never created: Close need not create it
		}
	}
	err := s.Close()
	for _, p := range []string{s.logPath, s.idxPath} {
		if rerr := s.opts.FS.Remove(p); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return errors.Join(err, s.opts.FS.SyncDir(s.opts.Dir))
}

// RemoveFiles deletes the files of ledger id without opening them.
func RemoveFiles(opts Options, id int64) error {
	opts = opts.withDefaults()
	var err error
	for _, name := range []string{LogName(id), IndexName(id)} {
		if rerr := opts.FS.Remove(filepath.Join(opts.Dir, name)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// ---- reads ----

// reader reads records through a window buffer. Data returned by record
// aliases that buffer: unpooled buffers are never reused, and a pooled one
// (readbuf.go) is reused only after the reader and every record read from
// it have released it.
type reader struct {
	f      File
	end    int64 // never read at or beyond
	buf    []byte
	bufOff int64
	rb     *readBuf // owner of buf when pooled; the reader holds one reference
	pooled bool     // take read-ahead buffers from the pool (Read)
}

// close drops the reader's reference to its read-ahead buffer.
func (r *reader) close() {
	if r.rb != nil {
		r.rb.release()
		r.rb, r.buf = nil, nil
	}
}

// at returns [off, off+n), reading at least window bytes when it must read.
func (r *reader) at(off int64, n int, window int) ([]byte, error) {
	if off < 0 || off+int64(n) > r.end {
		return nil, fmt.Errorf("%w: record at %d+%d crosses the end %d", ErrCorrupt, off, n, r.end)
	}
	if off >= r.bufOff && off+int64(n) <= r.bufOff+int64(len(r.buf)) {
		return r.buf[off-r.bufOff : off-r.bufOff+int64(n)], nil
	}
	size := int64(max(n, window))
	size = min(size, r.end-off)
	var buf []byte
	if r.pooled {
		r.close()
		r.rb = getReadBuf(int(size))
		buf = r.rb.b
	} else {
		buf = make([]byte, size)
	}
	got, err := r.f.ReadAt(buf, off)
	if got < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: short read at %d", ErrCorrupt, off)
		}
		return nil, err
	}
	r.buf, r.bufOff = buf[:got], off
	return r.buf[:n], nil
}

// head decodes the frame head and the fixed body fields of the record at
// off into rec, without checking the CRC (which covers the whole body). It
// returns the body length, the stored CRC and the producer name's length.
func (r *reader) head(off int64, window int) (rec Record, bodyLen int, sum uint32, pl int, err error) {
	b, err := r.at(off, FrameHeadSize+BodyFixedSize, window)
	if err != nil {
		return rec, 0, 0, 0, err
	}
	bodyLen, sum, ok := frameHead(b)
	if !ok {
		return rec, 0, 0, 0, fmt.Errorf("%w: bad record length at %d", ErrCorrupt, off)
	}
	if off+int64(FrameHeadSize+bodyLen) > r.end {
		return rec, 0, 0, 0, fmt.Errorf("%w: record at %d crosses the end", ErrCorrupt, off)
	}
	pl = decodeFixed(b[FrameHeadSize:], &rec)
	if BodyFixedSize+pl > bodyLen {
		return rec, 0, 0, 0, fmt.Errorf("%w: producer length at %d", ErrCorrupt, off)
	}
	return rec, bodyLen, sum, pl, nil
}

// record decodes the record at off; withData verifies the CRC and fills
// Producer and Data. It returns the record's encoded size.
func (r *reader) record(off int64, withData bool, window int) (Record, int64, error) {
	rec, bodyLen, sum, pl, err := r.head(off, window)
	if err != nil {
		return rec, 0, err
	}
	n := int64(FrameHeadSize + bodyLen)
	if withData {
		body, err := r.at(off+FrameHeadSize, bodyLen, window)
		if err != nil {
			return rec, 0, err
		}
		if crc(body) != sum {
			return rec, 0, fmt.Errorf("%w: checksum mismatch at %d", ErrCorrupt, off)
		}
		if r.rb != nil {
			r.rb.refs.Add(1)
			rec.buf = r.rb
		}
		return rec, n, decodeBody(body, &rec)
	}
	if pl > 0 {
		p, err := r.at(off+FrameHeadSize+BodyFixedSize, pl, window)
		if err != nil {
			return rec, 0, err
		}
		rec.Producer = string(p)
	}
	return rec, n, nil
}

func (s *Segment) beginRead() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Segment) endRead() { s.closeMu.RUnlock() }

// view is a consistent snapshot for one read.
type view struct {
	points  []Point
	entries int64
	size    int64
}

func (s *Segment) view(limit int64) view {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := view{points: s.mu.points, entries: s.mu.entries, size: s.mu.size}
	v.entries = min(v.entries, limit)
	return v
}

// lookupWindow covers the forward scan from an index point: at most one
// index interval of records plus one header.
func (s *Segment) lookupWindow() int {
	return int(s.opts.IndexInterval) + FrameHeadSize + BodyFixedSize + 512
}

// scanFrom walks record headers from point i of v until stop returns true,
// returning that record and its offset. ok is false if no record before
// v.entries satisfies stop.
func (s *Segment) scanFrom(v view, i int, stop func(r *Record, runMaxBefore int64) bool) (Record, int64, bool, error) {
	if i < 0 || i >= len(v.points) {
		return Record{}, 0, false, nil
	}
	p := v.points[i]
	rd := reader{f: s.logF, end: v.size}
	off, runMax := p.Offset, p.MaxTsBefore
	for e := p.EntryID; e < v.entries; e++ {
		r, n, err := rd.record(off, false, s.lookupWindow())
		if err != nil {
			return Record{}, 0, false, err
		}
		if r.EntryID != e {
			return Record{}, 0, false, fmt.Errorf("%w: entry %d where %d expected at %d", ErrCorrupt, r.EntryID, e, off)
		}
		if stop(&r, runMax) {
			return r, off, true, nil
		}
		runMax = max(runMax, r.Timestamp())
		off += n
	}
	return Record{}, 0, false, nil
}

// Header returns entry id's record without Data. limit bounds the entries
// the caller may see (its durable count).
func (s *Segment) Header(id, limit int64) (Record, error) {
	if err := s.beginRead(); err != nil {
		return Record{}, err
	}
	defer s.endRead()
	v := s.view(limit)
	if id < 0 || id >= v.entries {
		return Record{}, fmt.Errorf("segment: entry %d not in [0, %d)", id, v.entries)
	}
	i := sort.Search(len(v.points), func(i int) bool { return v.points[i].EntryID > id }) - 1
	r, _, ok, err := s.scanFrom(v, i, func(r *Record, _ int64) bool { return r.EntryID == id })
	if err == nil && !ok {
		err = fmt.Errorf("%w: entry %d not found", ErrCorrupt, id)
	}
	return r, err
}

// FindIndex returns the header of the record holding message index; ok is
// false if no record within limit holds it.
func (s *Segment) FindIndex(index, limit int64) (Record, bool, error) {
	if err := s.beginRead(); err != nil {
		return Record{}, false, err
	}
	defer s.endRead()
	v := s.view(limit)
	i := sort.Search(len(v.points), func(i int) bool { return v.points[i].FirstIndex > index }) - 1
	r, _, ok, err := s.scanFrom(v, i, func(r *Record, _ int64) bool { return r.NextIndex() > index })
	return r, ok, err
}

// FindTime returns the header of the first record whose timestamp, maximised
// over all earlier records of the segment, is >= t.
func (s *Segment) FindTime(t, limit int64) (Record, bool, error) {
	if err := s.beginRead(); err != nil {
		return Record{}, false, err
	}
	defer s.endRead()
	v := s.view(limit)
	// Points' MaxTsBefore never decreases: the answer lies after the last
	// point whose predecessors are all older than t.
	i := max(0, sort.Search(len(v.points), func(i int) bool { return v.points[i].MaxTsBefore >= t })-1)
	r, _, ok, err := s.scanFrom(v, i, func(r *Record, runMax int64) bool { return max(runMax, r.Timestamp()) >= t })
	return r, ok, err
}

// peekSlack is read beyond a byte budget when looking at the next record's
// header, so that a record that does fit (producer name included) usually
// needs no second read.
const peekSlack = 256

// Read returns up to maxEntries records from entry from on, never reaching
// entry limit, stopping before the data would exceed maxBytes (but returning
// at least one record). Records own their Data.
func (s *Segment) Read(from, limit int64, maxEntries, maxBytes int) ([]Record, error) {
	return s.read(from, limit, maxEntries, maxBytes, true)
}

// ReadWithin is Read without the exception for the first record: it
// returns nothing if the first record's data exceeds maxBytes (without
// reading that record's data). For a caller that already has data and
// fills what is left of its budget.
func (s *Segment) ReadWithin(from, limit int64, maxEntries, maxBytes int) ([]Record, error) {
	return s.read(from, limit, maxEntries, maxBytes, false)
}

func (s *Segment) read(from, limit int64, maxEntries, maxBytes int, atLeastOne bool) ([]Record, error) {
	if err := s.beginRead(); err != nil {
		return nil, err
	}
	defer s.endRead()
	v := s.view(limit)
	if from < 0 {
		from = 0
	}
	if from >= v.entries || maxEntries <= 0 {
		return nil, nil
	}
	i := sort.Search(len(v.points), func(i int) bool { return v.points[i].EntryID > from }) - 1
	_, off, ok, err := s.scanFrom(v, i, func(r *Record, _ int64) bool { return r.EntryID == from })
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: entry %d not found", ErrCorrupt, from)
	}
	// Read ahead what the caller may take (its data and the records'
	// framing), within [8 KiB, 4 MiB]: one read(2) for a batch, and no
	// 64 KiB copy to return one small entry.
	window := min(max(min(maxBytes, maxEntries*(32<<10))+FrameHeadSize+BodyFixedSize+peekSlack, 8<<10), 4<<20)
	rd := reader{f: s.logF, end: v.size, pooled: true}
	defer rd.close()
	var out []Record
	size := 0
	for e := from; e < v.entries && len(out) < maxEntries; e++ {
		win := window
		if len(out) > 0 || !atLeastOne {
			// Look at the size first: a record that will not be
			// returned is neither read in full nor checksummed, and the
			// read-ahead never goes past what the caller may still take.
			win = min(window, maxBytes-size+FrameHeadSize+BodyFixedSize+peekSlack)
			h, bodyLen, _, pl, err := rd.head(off, win)
			if err != nil {
				return out, err
			}
			if h.EntryID != e {
				return out, fmt.Errorf("%w: entry %d where %d expected", ErrCorrupt, h.EntryID, e)
			}
			if size+bodyLen-BodyFixedSize-pl > maxBytes {
				break
			}
		}
		r, n, err := rd.record(off, true, win)
		if err != nil {
			return out, err
		}
		if r.EntryID != e {
			return out, fmt.Errorf("%w: entry %d where %d expected", ErrCorrupt, r.EntryID, e)
		}
		size += len(r.Data)
		out = append(out, r)
		off += n
	}
	return out, nil
}
