package segment

import (
	"container/list"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// LimitFS bounds the file descriptors a process spends on segment files,
// however many files are open: every File it returns is a handle whose
// descriptor may be closed while the handle is idle and reopened on its next
// use (PostgreSQL's virtual file descriptors, BookKeeper's file-info cache).
// With tens of thousands of ledgers, each holding a log and an index file,
// the process limit would otherwise be reached (EMFILE) by storage alone.
//
// Contract, the same as the wrapped FS's files except where stated:
//   - A handle's descriptor is closed only when no operation on it is in
//     flight; an operation on an evicted handle waits for an eviction in
//     flight to finish and then reopens the file with the flags it was
//     opened with minus O_CREATE, O_EXCL and O_TRUNC (the file exists; its
//     content must not be cut).
//   - Durability is never weakened: a handle written since its last
//     successful Sync is fdatasynced before its descriptor is closed (Linux
//     may report a write-back error to no later descriptor once the inode
//     left memory, so a dirty file is never closed unsynced). A failed
//     eviction sync is sticky: every later Sync and Close of the handle
//     returns it, as the data it covered may be gone.
//   - Clean handles are evicted before dirty ones (least recently used
//     first within each kind), so an eviction seldom costs an fsync:
//     sparse index files and sealed ledgers are clean, the active logs of
//     busy ledgers are dirty.
//   - A file removed while a handle is open stays readable through it, as
//     on POSIX: Remove reopens evicted handles of the name first and pins
//     their descriptors until Close.
//   - The bound is soft: when every open descriptor is in use by an
//     operation in flight, a file is opened beyond it rather than waiting
//     (operations are short and never hold one handle while using
//     another). An open failing with EMFILE or ENFILE (descriptors taken
//     by sockets) evicts a handle and retries while there is one to evict.
type LimitFS struct {
	inner FS
	max   int

	mu    sync.Mutex
	cond  *sync.Cond // signalled when an eviction finishes
	open  int        // descriptors open, evictions in flight included
	clean list.List  // *limitFile with an idle, clean, evictable descriptor; front = most recent
	dirty list.List  // *limitFile with an idle, dirty, evictable descriptor
	names map[string]map[*limitFile]struct{}

	evictions, reopens, evictionSyncs uint64
}

// NewLimitFS wraps inner so that at most maxOpen descriptors (softly; see
// LimitFS) are open at once. maxOpen < 1 is taken as 1.
func NewLimitFS(inner FS, maxOpen int) *LimitFS {
	l := &LimitFS{inner: inner, max: max(maxOpen, 1), names: make(map[string]map[*limitFile]struct{})}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// LimitStats are a LimitFS's counters.
type LimitStats struct {
	Open          int    // descriptors open now
	Max           int    // the bound
	Evictions     uint64 // descriptors closed to make room
	EvictionSyncs uint64 // of which were fdatasynced first (dirty)
	Reopens       uint64 // descriptors reopened for an evicted handle
}

// Stats returns the counters.
func (l *LimitFS) Stats() LimitStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LimitStats{Open: l.open, Max: l.max, Evictions: l.evictions, EvictionSyncs: l.evictionSyncs, Reopens: l.reopens}
}

// limitFile is a handle. Its fields are guarded by LimitFS.mu; the
// descriptor itself is used outside the lock while pinned (pins > 0).
type limitFile struct {
	l       *LimitFS
	name    string
	flag    int // reopen flags
	perm    os.FileMode
	fd      File // nil while evicted
	pins    int  // operations in flight
	dirty   bool // written since the last successful Sync
	evict   bool // an eviction of fd is in flight
	kept    bool // the file was removed: fd stays open until Close
	closed  bool
	elem    *list.Element // in l.clean or l.dirty while idle and evictable
	inDirty bool          // elem is in l.dirty
	err     error         // sticky eviction-sync failure
}

var errLimitClosed = errors.New("segment: file closed")

// OpenFile opens name now (so that O_CREATE, O_EXCL and errors happen at
// once) and returns an evictable handle.
func (l *LimitFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	name = filepath.Clean(name)
	fd, err := l.openFd(name, flag, perm)
	if err != nil {
		return nil, err
	}
	h := &limitFile{l: l, name: name, flag: flag &^ (os.O_CREATE | os.O_EXCL | os.O_TRUNC), perm: perm, fd: fd}
	l.mu.Lock()
	set := l.names[name]
	if set == nil {
		set = make(map[*limitFile]struct{})
		l.names[name] = set
	}
	set[h] = struct{}{}
	l.idleLocked(h)
	l.mu.Unlock()
	return h, nil
}

// openFd opens a descriptor after making room for it, counting it in open.
func (l *LimitFS) openFd(name string, flag int, perm os.FileMode) (File, error) {
	l.mu.Lock()
	for l.open >= l.max && l.evictOneLocked() {
	}
	l.open++
	l.mu.Unlock()
	for {
		fd, err := l.inner.OpenFile(name, flag, perm)
		if err == nil {
			return fd, nil
		}
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			l.mu.Lock()
			evicted := l.evictOneLocked()
			l.mu.Unlock()
			if evicted {
				continue
			}
		}
		l.mu.Lock()
		l.open--
		l.mu.Unlock()
		return nil, err
	}
}

// evictOneLocked closes the least recently used idle descriptor, clean
// first, and reports whether there was one. It drops l.mu while a dirty
// descriptor syncs and while the descriptor closes.
func (l *LimitFS) evictOneLocked() bool {
	e := l.clean.Back()
	if e == nil {
		e = l.dirty.Back()
	}
	if e == nil {
		return false
	}
	h := e.Value.(*limitFile)
	l.busyLocked(h)
	h.evict = true
	fd, dirty := h.fd, h.dirty
	l.evictions++
	if dirty {
		l.evictionSyncs++
	}
	l.mu.Unlock()
	var err error
	if dirty {
		err = fd.Sync()
	}
	cerr := fd.Close()
	l.mu.Lock()
	h.fd, h.evict = nil, false
	if err == nil {
		h.dirty = false
	} else if h.err == nil {
		h.err = err
	}
	_ = cerr // the data is synced (or the failure kept); a close error adds nothing
	l.open--
	l.cond.Broadcast()
	return true
}

// idleLocked makes h evictable, in the list of its kind.
func (l *LimitFS) idleLocked(h *limitFile) {
	if h.pins > 0 || h.fd == nil || h.kept || h.closed || h.evict {
		return
	}
	h.inDirty = h.dirty
	if h.dirty {
		h.elem = l.dirty.PushFront(h)
	} else {
		h.elem = l.clean.PushFront(h)
	}
}

// busyLocked takes h out of the evictable lists.
func (l *LimitFS) busyLocked(h *limitFile) {
	if h.elem == nil {
		return
	}
	if h.inDirty {
		l.dirty.Remove(h.elem)
	} else {
		l.clean.Remove(h.elem)
	}
	h.elem = nil
}

// acquire pins h's descriptor, reopening it if it was evicted.
func (h *limitFile) acquire() (File, error) {
	l := h.l
	l.mu.Lock()
	for h.evict {
		l.cond.Wait()
	}
	if h.closed {
		l.mu.Unlock()
		return nil, errLimitClosed
	}
	if h.fd != nil {
		l.busyLocked(h)
		h.pins++
		fd := h.fd
		l.mu.Unlock()
		return fd, nil
	}
	// Evicted: reopen. Pin first so that a concurrent acquire waits for
	// this reopen instead of opening a second descriptor.
	h.pins++
	h.evict = true // reopen in flight: others wait on cond
	l.reopens++
	l.mu.Unlock()
	fd, err := l.openFd(h.name, h.flag, h.perm)
	l.mu.Lock()
	h.evict = false
	if err != nil {
		h.pins--
		l.cond.Broadcast()
		l.mu.Unlock()
		return nil, err
	}
	h.fd = fd
	l.cond.Broadcast()
	l.mu.Unlock()
	return fd, nil
}

// release unpins h; wrote marks it dirty.
func (h *limitFile) release(wrote bool) {
	l := h.l
	l.mu.Lock()
	if wrote {
		h.dirty = true
	}
	h.pins--
	l.idleLocked(h)
	l.mu.Unlock()
}

func (h *limitFile) ReadAt(p []byte, off int64) (int, error) {
	fd, err := h.acquire()
	if err != nil {
		return 0, err
	}
	defer h.release(false)
	return fd.ReadAt(p, off)
}

func (h *limitFile) WriteAt(p []byte, off int64) (int, error) {
	fd, err := h.acquire()
	if err != nil {
		return 0, err
	}
	defer h.release(true)
	return fd.WriteAt(p, off)
}

func (h *limitFile) Truncate(size int64) error {
	fd, err := h.acquire()
	if err != nil {
		return err
	}
	defer h.release(true)
	return fd.Truncate(size)
}

func (h *limitFile) Size() (int64, error) {
	fd, err := h.acquire()
	if err != nil {
		return 0, err
	}
	defer h.release(false)
	return fd.Size()
}

// Sync fdatasyncs the file. A write racing with it keeps the handle dirty:
// dirty is cleared only if no write was made while this sync ran.
func (h *limitFile) Sync() error {
	fd, err := h.acquire()
	if err != nil {
		return err
	}
	l := h.l
	l.mu.Lock()
	sticky := h.err
	h.dirty = false // a write from now on sets it again
	l.mu.Unlock()
	serr := fd.Sync()
	l.mu.Lock()
	if serr != nil {
		h.dirty = true
	}
	h.pins--
	l.idleLocked(h)
	l.mu.Unlock()
	if sticky != nil {
		return sticky
	}
	return serr
}

func (h *limitFile) Close() error {
	l := h.l
	l.mu.Lock()
	for h.evict {
		l.cond.Wait()
	}
	if h.closed {
		l.mu.Unlock()
		return errLimitClosed
	}
	h.closed = true
	l.busyLocked(h)
	if set := l.names[h.name]; set != nil {
		delete(set, h)
		if len(set) == 0 {
			delete(l.names, h.name)
		}
	}
	fd, sticky := h.fd, h.err
	h.fd = nil
	l.mu.Unlock()
	var err error
	if fd != nil {
		err = fd.Close()
		l.mu.Lock()
		l.open--
		l.mu.Unlock()
	}
	if sticky != nil {
		return sticky
	}
	return err
}

// Remove removes name; handles open on it keep their descriptors (reopened
// now if evicted) so that they read on as on POSIX.
func (l *LimitFS) Remove(name string) error {
	name = filepath.Clean(name)
	l.mu.Lock()
	var handles []*limitFile
	for h := range l.names[name] {
		handles = append(handles, h)
	}
	l.mu.Unlock()
	for _, h := range handles {
		if _, err := h.acquire(); err != nil {
			continue // closed meanwhile, or the file is already gone
		}
		l.mu.Lock()
		h.kept = true
		h.pins--
		l.mu.Unlock()
	}
	return l.inner.Remove(name)
}

func (l *LimitFS) MkdirAll(dir string) error { return l.inner.MkdirAll(dir) }

func (l *LimitFS) List(dir string) ([]string, error) { return l.inner.List(dir) }

func (l *LimitFS) SyncDir(dir string) error { return l.inner.SyncDir(dir) }
