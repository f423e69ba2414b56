package managedledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kopernik-io/kopernik/segment"
)

// The shared write-ahead journal (BookKeeper's journal): one group-commit
// stream that every managed ledger of a Factory appends to under
// SyncAlways, so that an acknowledgement costs one share of one write and
// one fdatasync however many ledgers appended in that window. The format
// and the checkpoint/replay protocol are documented in doc.go ("Journal").
//
// Threads: submitters (appends, under their ledger's lock) encode frames
// into mu.buf; the writer goroutine takes the whole buffer, writes it with
// one write(2), fdatasyncs and hands the group to the completer goroutine,
// which runs the completions in submission order while the writer already
// syncs the next group. Completions must not submit and wait (they run on
// the completer).

const (
	journalMagic      = "KPJN"
	journalVersion    = 1
	journalHeaderSize = 32
	jFrameHead        = 12
	jBodyFixed        = 72
	jKindEntry        = 1
	jKindCut          = 2
	// jMaxBody bounds a frame body: the largest segment record plus the
	// longest ledger name and producer name.
	jMaxBody = segment.MaxRecordSize + 2<<16
	// journalSpareFiles is how many released files are kept for reuse
	// (their blocks are allocated: no zero-filling for the next ones).
	journalSpareFiles = 2
	// journalSuffix ends journal file names: <slot %020d>.jnl.
	journalSuffix = ".jnl"
)

var jcrc = crc32.MakeTable(crc32.Castagnoli)

// jrec is one decoded journal frame.
type jrec struct {
	kind     uint8
	name     string
	ledgerID int64
	// rec is the entry (kind jKindEntry); for a cut, rec.EntryID is the
	// first cancelled entry id.
	rec segment.Record
}

// pos is the position the frame accounts for in release bookkeeping.
func (r *jrec) pos() Position {
	if r.kind == jKindCut {
		return Position{LedgerID: r.ledgerID, EntryID: r.rec.EntryID - 1}
	}
	return Position{LedgerID: r.ledgerID, EntryID: r.rec.EntryID}
}

// appendJFrame appends the framed encoding of one record to b.
func appendJFrame(b []byte, kind uint8, name string, ledgerID int64, r *segment.Record) []byte {
	start := len(b)
	le := binary.LittleEndian
	b = le.AppendUint32(b, uint32(jBodyFixed+len(name)+len(r.Producer)+len(r.Data)))
	b = le.AppendUint32(b, 0) // CRC, below
	b = le.AppendUint32(b, 0) // file sequence, stamped by the writer
	b = append(b, kind, r.Format)
	b = le.AppendUint16(b, uint16(len(name)))
	b = le.AppendUint32(b, uint32(r.MsgCount))
	b = le.AppendUint64(b, uint64(ledgerID))
	b = le.AppendUint64(b, uint64(r.EntryID))
	b = le.AppendUint64(b, uint64(r.FirstIndex))
	b = le.AppendUint64(b, uint64(r.PublishTime))
	b = le.AppendUint64(b, uint64(r.MaxEventTime))
	b = le.AppendUint64(b, uint64(r.SeqFirst))
	b = le.AppendUint64(b, uint64(r.SeqLast))
	b = le.AppendUint16(b, uint16(len(r.Producer)))
	b = le.AppendUint16(b, 0)
	b = le.AppendUint32(b, 0)
	b = append(b, name...)
	b = append(b, r.Producer...)
	b = append(b, r.Data...)
	le.PutUint32(b[start+4:], crc32.Checksum(b[start+jFrameHead:], jcrc))
	return b
}

// stampFrames writes the low 32 bits of the sequence of the file they go
// to into every frame of buf (outside the CRC): frames left from an
// earlier use of a reused file carry another sequence and end the log.
func stampFrames(buf []byte, seq int64) {
	le := binary.LittleEndian
	for off := 0; off+jFrameHead <= len(buf); off += jFrameHead + int(le.Uint32(buf[off:])) {
		le.PutUint32(buf[off+8:], uint32(seq))
	}
}

// decodeJFrames decodes the frames of b (the bytes after the header of
// file seq) and returns them with the length of the valid prefix; decoding
// stops at the first frame that is zeros (preallocation), torn, stamped
// with another file sequence (left from an earlier use of the file), or
// fails its CRC or a field check. Data aliases b.
func decodeJFrames(b []byte, seq int64) (out []jrec, valid int, why error) {
	le := binary.LittleEndian
	off := 0
	for {
		if len(b)-off < jFrameHead {
			if len(b) > off {
				why = errors.New("torn frame head")
			}
			return out, off, why
		}
		n := int(le.Uint32(b[off:]))
		sum := le.Uint32(b[off+4:])
		if n == 0 && sum == 0 {
			return out, off, nil // zeros: the end
		}
		if st := le.Uint32(b[off+8:]); st != uint32(seq) {
			return out, off, fmt.Errorf("frame of file sequence %d (an earlier use of the file)", st)
		}
		if n < jBodyFixed || n > jMaxBody {
			return out, off, fmt.Errorf("impossible frame length %d", n)
		}
		if len(b)-off-jFrameHead < n {
			return out, off, errors.New("torn frame body")
		}
		body := b[off+jFrameHead : off+jFrameHead+n]
		if crc32.Checksum(body, jcrc) != sum {
			return out, off, errors.New("frame CRC mismatch")
		}
		var r jrec
		r.kind, r.rec.Format = body[0], body[1]
		nl := int(le.Uint16(body[2:]))
		r.rec.MsgCount = int32(le.Uint32(body[4:]))
		r.ledgerID = int64(le.Uint64(body[8:]))
		r.rec.EntryID = int64(le.Uint64(body[16:]))
		r.rec.FirstIndex = int64(le.Uint64(body[24:]))
		r.rec.PublishTime = int64(le.Uint64(body[32:]))
		r.rec.MaxEventTime = int64(le.Uint64(body[40:]))
		r.rec.SeqFirst = int64(le.Uint64(body[48:]))
		r.rec.SeqLast = int64(le.Uint64(body[56:]))
		pl := int(le.Uint16(body[64:]))
		if jBodyFixed+nl+pl > n || nl == 0 || (r.kind != jKindEntry && r.kind != jKindCut) ||
			(r.kind == jKindEntry && r.rec.MsgCount < 1) || r.ledgerID < 0 || r.rec.EntryID < 0 {
			return out, off, errors.New("invalid frame fields")
		}
		r.name = string(body[jBodyFixed : jBodyFixed+nl])
		r.rec.Producer = string(body[jBodyFixed+nl : jBodyFixed+nl+pl])
		if d := body[jBodyFixed+nl+pl:]; len(d) > 0 {
			r.rec.Data = d
		}
		out = append(out, r)
		off += jFrameHead + n
	}
}

func journalFileName(slot int64) string { return fmt.Sprintf("%020d%s", slot, journalSuffix) }

func parseJournalName(name string) (int64, bool) {
	base, ok := strings.CutSuffix(name, journalSuffix)
	if !ok || len(base) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseInt(base, 10, 64)
	return seq, err == nil && seq >= 0
}

func appendJournalHeader(b []byte, seq int64, created time.Time) []byte {
	le := binary.LittleEndian
	start := len(b)
	b = append(b, journalMagic...)
	b = le.AppendUint16(b, journalVersion)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint64(b, uint64(seq))
	b = le.AppendUint64(b, uint64(created.UnixMilli()))
	b = le.AppendUint32(b, crc32.Checksum(b[start:start+24], jcrc))
	b = le.AppendUint32(b, 0)
	return b
}

// errJournalNewer: a journal file of a newer format (refused, like segments).
var errJournalNewer = errors.New("managedledger: journal file written by a newer format version")

// checkJournalHeader verifies a file header and returns the file's
// sequence; ok false: not a valid header (a file whose creation was cut
// short: it never held an acknowledged record).
func checkJournalHeader(b []byte) (seq int64, ok bool, err error) {
	le := binary.LittleEndian
	if len(b) < journalHeaderSize || string(b[:4]) != journalMagic || crc32.Checksum(b[:24], jcrc) != le.Uint32(b[24:]) {
		return 0, false, nil
	}
	if v := le.Uint16(b[4:]); v > journalVersion {
		return 0, false, fmt.Errorf("%w: version %d", errJournalNewer, v)
	}
	return int64(le.Uint64(b[8:])), true, nil
}

// journalOptions configures a journal.
type journalOptions struct {
	FS  segment.FS
	Dir string
	Log *slog.Logger
	// MaxFileBytes: a file that reached it is closed and the next group
	// goes to a new one.
	MaxFileBytes int64
	// Prealloc zero-fills this much ahead of the writer, so that most
	// group fdatasyncs overwrite allocated blocks (no size change to commit).
	Prealloc int64
	// RetryInterval: how soon a failed journal tries to recover (< 0: never).
	RetryInterval time.Duration
	// Grown, if set, is called (without locks, on the writer) when the
	// bytes written since the last Checkpointed call pass GrowBytes.
	Grown     func()
	GrowBytes int64
	Observer  Observer
}

// jwait is one submission's completion.
type jwait struct {
	name string // "" for a barrier
	pos  Position
	done func(error)
}

type jgroup struct {
	waits []jwait
	err   error
}

// jfile is one journal file and what it holds, for deletion.
type jfile struct {
	seq  int64
	slot int64 // the file name
	// maxPos is, per ledger name, the highest position of a frame in the
	// file. The file may go once every name's released position reaches it.
	maxPos map[string]Position
}

// journal is the shared write-ahead journal of a Factory. Safe for
// concurrent use.
type journal struct {
	opts   journalOptions
	log    *slog.Logger
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{} // writer exited
	groups chan jgroup
	cdone  chan struct{} // completer exited
	// recoverReq asks the writer for a recovery attempt now (a ledger
	// reopen while the journal is failed).
	recoverReq chan chan error
	delMu      sync.Mutex // file deletions and scans

	// writer-goroutine state
	w struct {
		f         segment.File
		seq       int64
		nextSlot  int64
		size      int64 // bytes written and synced
		lastBatch int
		lastSync  time.Duration
		grown     int64
		spare     []byte
	}

	// fl is the background zero-filler's state (see Prealloc): [0,
	// allocated) of the current file exists on disk; a fill of
	// [start, end) may be in flight, and the writer never writes into it.
	fl struct {
		sync.Mutex
		cond      *sync.Cond
		allocated int64
		filling   bool
		start     int64
	}

	mu struct {
		sync.Mutex
		buf      []byte
		waits    []jwait
		failed   error
		closed   bool
		files    []*jfile // oldest first; the last one is being written
		spare    []int64  // slots of released files kept for reuse
		released map[string]Position
	}
}

// openJournal opens (creating if needed) the journal in opts.Dir, reads
// every file (truncating a torn tail), starts a new file for writing and
// returns the records found, by ledger name, in journal order.
func openJournal(opts journalOptions) (*journal, map[string][]jrec, error) {
	j := &journal{
		opts: opts, log: opts.Log, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		groups: make(chan jgroup, 64), cdone: make(chan struct{}), recoverReq: make(chan chan error),
	}
	j.mu.released = make(map[string]Position)
	j.fl.cond = sync.NewCond(&j.fl.Mutex)
	if err := opts.FS.MkdirAll(opts.Dir); err != nil {
		return nil, nil, fmt.Errorf("managedledger: journal: %w", err)
	}
	names, err := opts.FS.List(opts.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("managedledger: journal: %w", err)
	}
	type found struct {
		jf   *jfile
		recs []jrec
	}
	var files []found
	next := int64(0)
	for _, n := range names {
		slot, ok := parseJournalName(n)
		if !ok {
			continue
		}
		j.w.nextSlot = max(j.w.nextSlot, slot+1)
		seq, recs, keep, err := j.readFile(slot, true)
		if err != nil {
			return nil, nil, err
		}
		if keep {
			files = append(files, found{&jfile{seq: seq, slot: slot, maxPos: map[string]Position{}}, recs})
			next = max(next, seq+1)
		}
	}
	// Journal order is sequence order (a reused file keeps its name).
	sort.Slice(files, func(a, b int) bool { return files[a].jf.seq < files[b].jf.seq })
	replay := map[string][]jrec{}
	for _, fd := range files {
		jf, recs := fd.jf, fd.recs
		for _, r := range recs {
			replay[r.name] = append(replay[r.name], r)
			if p, ok := jf.maxPos[r.name]; !ok || p.Less(r.pos()) {
				jf.maxPos[r.name] = r.pos()
			}
		}
		j.mu.files = append(j.mu.files, jf)
	}
	if err := j.newFile(next); err != nil {
		return nil, nil, storageError("journal", err)
	}
	go j.writer()
	go j.completer()
	return j, replay, nil
}

// readFile reads the journal file in slot. With repair, a torn or
// corrupt tail is truncated (and synced) and a file without a valid header
// is removed (keep false). Data of the records aliases one buffer per file.
func (j *journal) readFile(slot int64, repair bool) (seq int64, recs []jrec, keep bool, err error) {
	path := filepath.Join(j.opts.Dir, journalFileName(slot))
	flag := os.O_RDONLY
	if repair {
		flag = os.O_RDWR
	}
	f, err := j.opts.FS.OpenFile(path, flag, 0)
	if err != nil {
		return 0, nil, false, storageError("journal", err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return 0, nil, false, storageError("journal", err)
	}
	b := make([]byte, size)
	if n, err := f.ReadAt(b, 0); int64(n) < size {
		return 0, nil, false, storageError("journal", fmt.Errorf("read %s: %d of %d bytes: %w", path, n, size, err))
	}
	seq, ok, err := checkJournalHeader(b)
	if err != nil {
		return 0, nil, false, err
	}
	if !ok {
		if repair {
			// A retired spare (released, header zeroed), or a creation
			// whose header never made it: no record in it is needed.
			j.log.Info("managedledger: removing journal file without a valid header", "file", path, "bytes", size)
			f.Close()
			if err := j.opts.FS.Remove(path); err != nil {
				return 0, nil, false, storageError("journal", err)
			}
			j.opts.FS.SyncDir(j.opts.Dir)
		}
		return 0, nil, false, nil
	}
	recs, valid, why := decodeJFrames(b[journalHeaderSize:], seq)
	end := int64(journalHeaderSize + valid)
	if why != nil && repair {
		j.log.Warn("managedledger: truncating journal tail", "file", path, "offset", end, "dropped_bytes", size-end, "reason", why)
		if err := f.Truncate(end); err != nil {
			return 0, nil, false, storageError("journal", err)
		}
		if err := f.Sync(); err != nil {
			return 0, nil, false, storageError("journal", err)
		}
	}
	return seq, recs, true, nil
}

// newFile starts journal file seq, in a spare (released, kept) file if
// there is one, else in a new one (header synced, directory entry
// synced), and makes it the one the writer appends to. A reused file
// keeps its old frames after the header; they carry an older sequence
// and end the log. Writer goroutine (or before it starts).
func (j *journal) newFile(seq int64) error {
	j.mu.Lock()
	slot, reuse := j.w.nextSlot, false
	if n := len(j.mu.spare); n > 0 {
		slot, reuse = j.mu.spare[0], true
		j.mu.spare = j.mu.spare[1:]
	}
	j.mu.Unlock()
	if !reuse {
		j.w.nextSlot++
	}
	path := filepath.Join(j.opts.Dir, journalFileName(slot))
	flag := os.O_RDWR | os.O_CREATE | os.O_TRUNC
	if reuse {
		flag = os.O_RDWR
	}
	f, err := j.opts.FS.OpenFile(path, flag, 0o644)
	if err != nil {
		return err
	}
	size := int64(journalHeaderSize)
	if reuse {
		if n, err := f.Size(); err == nil {
			size = max(size, n)
		}
	}
	hdr := appendJournalHeader(nil, seq, time.Now())
	if err := writeAll(f, hdr, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := j.opts.FS.SyncDir(j.opts.Dir); err != nil {
		f.Close()
		return err
	}
	j.waitFill()
	if j.w.f != nil {
		j.w.f.Close()
	}
	j.w.f, j.w.seq, j.w.size = f, seq, journalHeaderSize
	j.fl.Lock()
	j.fl.allocated = size // a reused file's blocks exist
	j.fl.Unlock()
	j.mu.Lock()
	j.mu.files = append(j.mu.files, &jfile{seq: seq, slot: slot, maxPos: map[string]Position{}})
	j.mu.Unlock()
	return nil
}

func writeAll(f segment.File, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := f.WriteAt(b, off)
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// append submits one entry of ledger (name, ledgerID); done runs on the
// completer once the group holding it is durable (nil) or failed. An
// error return means it was not submitted (done never runs).
func (j *journal) append(name string, ledgerID int64, r *segment.Record, done func(error)) error {
	return j.submit(jKindEntry, name, ledgerID, r, done)
}

// cut durably cancels every journal record of ledger (name, ledgerID)
// with entry id >= from (appends that failed; see recoverStorage).
func (j *journal) cut(name string, ledgerID, from int64) error {
	ch := make(chan error, 1)
	if err := j.submit(jKindCut, name, ledgerID, &segment.Record{EntryID: from}, func(err error) { ch <- err }); err != nil {
		return err
	}
	return <-ch
}

func (j *journal) submit(kind uint8, name string, ledgerID int64, r *segment.Record, done func(error)) error {
	j.mu.Lock()
	switch {
	case j.mu.closed:
		j.mu.Unlock()
		return ErrClosed
	case j.mu.failed != nil:
		err := j.mu.failed
		j.mu.Unlock()
		return err
	}
	j.mu.buf = appendJFrame(j.mu.buf, kind, name, ledgerID, r)
	pos := Position{LedgerID: ledgerID, EntryID: r.EntryID}
	if kind == jKindCut {
		pos.EntryID--
	}
	j.mu.waits = append(j.mu.waits, jwait{name: name, pos: pos, done: done})
	j.mu.Unlock()
	select {
	case j.kick <- struct{}{}:
	default:
	}
	return nil
}

// barrier returns once every completion submitted before it has run.
func (j *journal) barrier() {
	ch := make(chan struct{})
	j.mu.Lock()
	if j.mu.closed {
		j.mu.Unlock()
		return
	}
	j.mu.waits = append(j.mu.waits, jwait{done: func(error) { close(ch) }})
	j.mu.Unlock()
	select {
	case j.kick <- struct{}{}:
	default:
	}
	<-ch
}

// err is the journal's failure, nil when healthy.
func (j *journal) err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.mu.failed
}

// release records that every entry of ledger name at or before upTo is
// durable elsewhere (in its segment file) and deletes the journal files
// that hold nothing else. Positions of one name only grow (ledger ids and,
// within a ledger, entry ids that were ever acknowledged), so the maximum
// is kept.
func (j *journal) release(name string, upTo Position) {
	j.mu.Lock()
	if p, ok := j.mu.released[name]; !ok || p.Less(upTo) {
		j.mu.released[name] = upTo
	}
	j.mu.Unlock()
}

// deleteReleased removes, oldest first, files other than the one being
// written whose every record is released. Only a prefix goes: a cut
// record must outlive the records it cancels.
func (j *journal) deleteReleased() {
	j.delMu.Lock()
	defer j.delMu.Unlock()
	for {
		j.mu.Lock()
		if len(j.mu.files) < 2 || !j.releasedLocked(j.mu.files[0]) {
			j.mu.Unlock()
			return
		}
		jf := j.mu.files[0]
		spare := len(j.mu.spare) < journalSpareFiles
		j.mu.Unlock()
		path := filepath.Join(j.opts.Dir, journalFileName(jf.slot))
		if spare && j.retire(path) == nil {
			// Kept for reuse, as good as deleted: its header is gone
			// (a file without one is removed at open), and its frames
			// end the log once the file is reused.
			j.mu.Lock()
			j.mu.files = j.mu.files[1:]
			j.mu.spare = append(j.mu.spare, jf.slot)
			j.mu.Unlock()
			continue
		}
		err := j.opts.FS.Remove(path)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			err = j.opts.FS.SyncDir(j.opts.Dir)
		}
		if err != nil {
			j.log.Warn("managedledger: removing released journal file", "file", path, "err", err)
			return
		}
		j.mu.Lock()
		j.mu.files = j.mu.files[1:]
		j.mu.Unlock()
	}
}

// retire overwrites the header of a released file with zeros and syncs:
// the file no longer counts as journal, but its blocks stay allocated.
func (j *journal) retire(path string) error {
	f, err := j.opts.FS.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = writeAll(f, make([]byte, journalHeaderSize), 0)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func (j *journal) releasedLocked(jf *jfile) bool {
	for name, p := range jf.maxPos {
		if r, ok := j.mu.released[name]; !ok || r.Less(p) {
			return false
		}
	}
	return true
}

// fileCount is the number of journal files kept (tests, metrics).
func (j *journal) fileCount() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.mu.files)
}

// scan reads the records of ledger name back from the files still kept,
// in journal order (in-place recovery of a ledger whose segment lost
// acknowledged entries).
func (j *journal) scan(name string) ([]jrec, error) {
	j.delMu.Lock()
	defer j.delMu.Unlock()
	j.mu.Lock()
	slots := make([]int64, len(j.mu.files))
	for i, jf := range j.mu.files {
		slots[i] = jf.slot
	}
	j.mu.Unlock()
	var out []jrec
	for _, slot := range slots {
		_, recs, _, err := j.readFile(slot, false)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if r.name == name {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// close writes and completes what was submitted, stops the goroutines and
// closes the file. When every record is released it removes all files, so
// that the next start has nothing to replay.
func (j *journal) close() error {
	j.mu.Lock()
	if j.mu.closed {
		j.mu.Unlock()
		return nil
	}
	j.mu.closed = true
	j.mu.Unlock()
	close(j.stop)
	<-j.done
	<-j.cdone
	j.waitFill()
	var err error
	if j.w.f != nil {
		err = j.w.f.Close()
		j.w.f = nil
	}
	j.delMu.Lock()
	defer j.delMu.Unlock()
	j.mu.Lock()
	all := j.mu.failed == nil
	for _, jf := range j.mu.files {
		all = all && j.releasedLocked(jf)
	}
	var slots []int64
	if all {
		for _, jf := range j.mu.files {
			slots = append(slots, jf.slot)
		}
	}
	// Spares hold only released records: never worth replaying.
	slots = append(slots, j.mu.spare...)
	j.mu.spare = nil
	j.mu.Unlock()
	for _, slot := range slots {
		if rerr := j.opts.FS.Remove(filepath.Join(j.opts.Dir, journalFileName(slot))); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	if len(slots) > 0 {
		err = errors.Join(err, j.opts.FS.SyncDir(j.opts.Dir))
	}
	return err
}

// writer is the group-commit loop.
func (j *journal) writer() {
	defer close(j.done)
	defer close(j.groups)
	var rs retryState
	defer rs.stop()
	for {
		select {
		case <-j.kick:
			for j.round(&rs) {
			}
		case <-rs.c():
			rs.done(j.recover())
		case ch := <-j.recoverReq:
			err := j.recover()
			if err == nil {
				rs.stop()
			}
			ch <- err
		case <-j.stop:
			for j.round(&rs) {
			}
			return
		}
	}
}

// gather waits briefly for the batch to fill to the size of the previous
// one (see ManagedLedger.gather: without it batches alternate 1, N-1).
func (j *journal) gather() {
	j.mu.Lock()
	n := len(j.mu.waits)
	j.mu.Unlock()
	if n == 0 || n >= j.w.lastBatch {
		return
	}
	timer := time.NewTimer(min(max(j.w.lastSync/2, 50*time.Microsecond), time.Millisecond))
	defer timer.Stop()
	for {
		select {
		case <-j.kick:
		case <-timer.C:
			return
		case <-j.stop:
			return
		}
		j.mu.Lock()
		n = len(j.mu.waits)
		j.mu.Unlock()
		if n >= j.w.lastBatch {
			return
		}
	}
}

// round writes and syncs one group; false: nothing was pending.
func (j *journal) round(rs *retryState) bool {
	j.gather()
	j.mu.Lock()
	buf, waits, failed := j.mu.buf, j.mu.waits, j.mu.failed
	if len(waits) == 0 {
		j.mu.Unlock()
		return false
	}
	j.mu.waits = nil
	if failed != nil || len(buf) == 0 {
		// Nothing to write (a failed journal drops the frames; a group
		// of barriers has none): the buffer stays the submitters'. It
		// must not be swapped for spare here, or both would be one
		// array, and the next round would write that array while
		// submitters append into it (frames torn or zeroed on disk).
		j.mu.buf = buf[:0]
	} else {
		j.mu.buf = j.w.spare[:0]
	}
	if failed == nil && len(buf) > 0 {
		cur := j.mu.files[len(j.mu.files)-1]
		for _, w := range waits {
			if w.name == "" {
				continue
			}
			if p, ok := cur.maxPos[w.name]; !ok || p.Less(w.pos) {
				cur.maxPos[w.name] = w.pos
			}
		}
	}
	j.mu.Unlock()
	if failed != nil || len(buf) == 0 {
		j.groups <- jgroup{waits: waits, err: failed}
		return true
	}

	stampFrames(buf, j.w.seq)
	t0 := time.Now()
	err := j.writeSync(buf)
	j.w.lastSync, j.w.lastBatch = time.Since(t0), len(waits)
	if cap(buf) <= 8<<20 {
		j.w.spare = buf[:0]
	} else {
		j.w.spare = nil
	}
	if err != nil {
		j.mu.Lock()
		if j.mu.failed == nil {
			j.mu.failed = storageError("journal", err)
		}
		failed = j.mu.failed
		j.mu.Unlock()
		j.log.Error("managedledger: journal write failed; appends refused until it recovers", "err", err,
			"disk_full", errors.Is(failed, ErrDiskFull))
		rs.failed(j.opts.RetryInterval)
		j.groups <- jgroup{waits: waits, err: failed}
		return true
	}
	if obs := j.opts.Observer; obs != nil {
		obs.SyncLatency(j.w.lastSync)
	}
	j.groups <- jgroup{waits: waits}
	j.w.grown += int64(len(buf))
	if j.opts.Grown != nil && j.opts.GrowBytes > 0 && j.w.grown >= j.opts.GrowBytes {
		j.w.grown = 0
		j.opts.Grown()
	}
	if j.w.size >= j.opts.MaxFileBytes {
		if err := j.rotate(); err != nil {
			// The current file goes on growing; try again after the next group.
			j.log.Warn("managedledger: journal rotation failed", "err", err)
		}
	}
	return true
}

// writeSync writes buf at the end of the current file (after zero-filling
// ahead, see Prealloc) and fdatasyncs.
func (j *journal) writeSync(buf []byte) error {
	off := j.w.size
	end := off + int64(len(buf))
	j.fl.Lock()
	for j.fl.filling && end > j.fl.start {
		j.fl.cond.Wait() // never write into a region being zero-filled
	}
	if p := j.opts.Prealloc; p > 0 && !j.fl.filling && j.fl.allocated-end < p/2 {
		// Zeros ahead of the writer, in the background with their own
		// fsync (the kernel groups it with the groups' syncs): most
		// group fdatasyncs then overwrite allocated blocks and commit no
		// size change.
		start := max(j.fl.allocated, end)
		j.fl.filling, j.fl.start = true, start
		go j.fill(j.w.f, start, start+p)
	}
	j.fl.Unlock()
	if err := writeAll(j.w.f, buf, off); err != nil {
		return err
	}
	if err := j.w.f.Sync(); err != nil {
		return err
	}
	j.w.size = off + int64(len(buf))
	return nil
}

var jzeros = make([]byte, 1<<20)

// fill zero-fills [start, end) of f and syncs (the background filler).
// A failure is not fatal: groups then just grow the file; preallocation
// stops for this file.
func (j *journal) fill(f segment.File, start, end int64) {
	var err error
	for a := start; a < end && err == nil; a += int64(len(jzeros)) {
		err = writeAll(f, jzeros[:min(int64(len(jzeros)), end-a)], a)
	}
	if err == nil {
		err = f.Sync()
	}
	j.fl.Lock()
	defer j.fl.Unlock()
	j.fl.filling = false
	if err == nil {
		j.fl.allocated = end
	} else {
		j.fl.allocated = 1 << 62 // no more fills into this file
		j.log.Warn("managedledger: journal preallocation failed", "err", err)
	}
	j.fl.cond.Broadcast()
}

// waitFill waits for a fill in flight (before the file is truncated,
// replaced or closed).
func (j *journal) waitFill() {
	j.fl.Lock()
	for j.fl.filling {
		j.fl.cond.Wait()
	}
	j.fl.Unlock()
}

// reserve zero-fills n bytes after the written end and syncs them.
func (j *journal) reserve(n int64) error {
	j.waitFill()
	for a, to := j.w.size, j.w.size+n; a < to; {
		k := min(int64(len(jzeros)), to-a)
		if err := writeAll(j.w.f, jzeros[:k], a); err != nil {
			return err
		}
		a += k
	}
	if err := j.w.f.Sync(); err != nil {
		return err
	}
	j.fl.Lock()
	j.fl.allocated = j.w.size + n
	j.fl.Unlock()
	return nil
}

// rotate starts the next file; the current one is complete (every byte
// of it synced).
func (j *journal) rotate() error {
	return j.newFile(j.w.seq + 1)
}

// recover brings a failed journal back: the current file is cut back to
// the last synced group (nothing that failed may be replayed later) and
// synced, then a new file is started. Writer goroutine.
func (j *journal) recover() error {
	j.mu.Lock()
	failed, closed := j.mu.failed, j.mu.closed
	j.mu.Unlock()
	if failed == nil || closed {
		return nil
	}
	j.waitFill()
	err := j.w.f.Truncate(j.w.size)
	if err == nil {
		err = j.w.f.Sync()
	}
	if err == nil {
		err = j.rotate()
	}
	if err == nil {
		// Learn that writes fit again before accepting them.
		err = j.reserve(recoveryReserve)
	}
	if err != nil {
		j.log.Warn("managedledger: journal recovery failed; appends still refused", "err", err)
		return errRetryLater
	}
	j.mu.Lock()
	j.mu.failed = nil
	j.mu.Unlock()
	j.log.Info("managedledger: journal recovered from storage failure", "sequence", j.w.seq, "cause", failed)
	return nil
}

// recoverNow makes one recovery attempt of a failed journal at once (on
// the writer) and returns the journal's failure if it stays failed.
func (j *journal) recoverNow() error {
	if j.err() == nil {
		return nil
	}
	ch := make(chan error, 1)
	select {
	case j.recoverReq <- ch:
		<-ch
	case <-j.done:
	}
	return j.err()
}

// completer runs completions in submission order.
func (j *journal) completer() {
	defer close(j.cdone)
	for g := range j.groups {
		for _, w := range g.waits {
			w.done(g.err)
		}
	}
}

// journalTail returns the entries of ledger ledgerID in recs (the
// journal's records of one managed ledger, in journal order) from entry
// id from on, after applying cuts: a gapless run starting at from, or
// nothing. A journal whose run for the ledger starts after from (entries
// missing between the segment and the journal) is ErrCorrupt.
func journalTail(recs []jrec, ledgerID, from int64) ([]segment.Record, error) {
	var run []segment.Record
	for i := range recs {
		r := &recs[i]
		if r.ledgerID != ledgerID {
			continue
		}
		e := r.rec.EntryID
		// Drop what this record supersedes: a cut cancels from its id on,
		// an entry rewrites its id (after an in-place recovery) and a
		// record after a gap starts a new run.
		if len(run) > 0 && (e <= run[len(run)-1].EntryID || r.kind == jKindCut) {
			k := sort.Search(len(run), func(i int) bool { return run[i].EntryID >= e })
			run = run[:k]
		} else if len(run) > 0 && e != run[len(run)-1].EntryID+1 {
			run = run[:0]
		}
		if r.kind == jKindEntry {
			run = append(run, r.rec)
		}
	}
	k := sort.Search(len(run), func(i int) bool { return run[i].EntryID >= from })
	run = run[k:]
	if len(run) > 0 && run[0].EntryID != from {
		return nil, fmt.Errorf("%w: ledger %d: journal continues at entry %d, the segment ends before entry %d", ErrCorrupt, ledgerID, run[0].EntryID, from)
	}
	return run, nil
}
