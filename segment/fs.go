package segment

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// File is the part of *os.File a segment uses.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes written data durable (fdatasync on Linux).
	Sync() error
	Truncate(size int64) error
	Size() (int64, error)
	Close() error
}

// FS is the file system a segment lives on. Tests wrap it to inject failures.
type FS interface {
	// OpenFile opens name with os.OpenFile flags.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Remove(name string) error
	MkdirAll(dir string) error
	// List returns the names of the regular files in dir (not recursive), sorted.
	List(dir string) ([]string, error)
	// SyncDir makes directory entries (created or removed files) durable.
	SyncDir(dir string) error
}

// OSFS is the operating system's file system.
type OSFS struct{}

type osFile struct{ *os.File }

func (f osFile) Sync() error { return fdatasync(f.File) }

func (f osFile) Size() (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (OSFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (OSFS) Remove(name string) error { return os.Remove(name) }

func (OSFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

func (OSFS) List(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range des {
		if de.Type().IsRegular() {
			out = append(out, de.Name())
		}
	}
	return out, nil
}

func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// MemFS is an in-memory FS: the engine's memory mode and a test double.
// Sync is a no-op; nothing survives the process.
type MemFS struct {
	mu    sync.Mutex
	files map[string]*memFile
}

// NewMemFS returns an empty in-memory file system.
func NewMemFS() *MemFS { return &MemFS{files: make(map[string]*memFile)} }

type memFile struct {
	mu   sync.RWMutex
	data []byte
}

type memHandle struct {
	f      *memFile
	closed bool
}

func (m *MemFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	name = filepath.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[name]
	switch {
	case ok && flag&os.O_EXCL != 0 && flag&os.O_CREATE != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case !ok && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case !ok:
		f = &memFile{}
		m.files[name] = f
	}
	if flag&os.O_TRUNC != 0 {
		f.mu.Lock()
		f.data = nil
		f.mu.Unlock()
	}
	return &memHandle{f: f}, nil
}

func (m *MemFS) Remove(name string) error {
	name = filepath.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[name]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(m.files, name)
	return nil
}

func (m *MemFS) MkdirAll(string) error { return nil }

func (m *MemFS) List(dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for name := range m.files {
		if filepath.Dir(name) == dir {
			out = append(out, filepath.Base(name))
		}
	}
	sort.Strings(out)
	return out, nil
}

func (m *MemFS) SyncDir(string) error { return nil }

var errHandleClosed = errors.New("segment: file closed")

func (h *memHandle) ReadAt(p []byte, off int64) (int, error) {
	if h.closed {
		return 0, errHandleClosed
	}
	h.f.mu.RLock()
	defer h.f.mu.RUnlock()
	if off >= int64(len(h.f.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *memHandle) WriteAt(p []byte, off int64) (int, error) {
	if h.closed {
		return 0, errHandleClosed
	}
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	if end := off + int64(len(p)); end > int64(len(h.f.data)) {
		if end <= int64(cap(h.f.data)) {
			h.f.data = h.f.data[:end]
		} else {
			grown := make([]byte, end, max(end, 2*int64(cap(h.f.data))))
			copy(grown, h.f.data)
			h.f.data = grown
		}
	}
	return copy(h.f.data[off:], p), nil
}

func (h *memHandle) Sync() error {
	if h.closed {
		return errHandleClosed
	}
	return nil
}

func (h *memHandle) Truncate(size int64) error {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	if size < int64(len(h.f.data)) {
		clear(h.f.data[size:])
		h.f.data = h.f.data[:size]
	} else {
		h.f.data = append(h.f.data, make([]byte, size-int64(len(h.f.data)))...)
	}
	return nil
}

func (h *memHandle) Size() (int64, error) {
	h.f.mu.RLock()
	defer h.f.mu.RUnlock()
	return int64(len(h.f.data)), nil
}

func (h *memHandle) Close() error { h.closed = true; return nil }

// FaultFS wraps an FS and fails operations on demand (tests).
type FaultFS struct {
	FS
	mu sync.Mutex
	// WriteErr, SyncErr fail WriteAt / Sync on files whose name contains the
	// key's substring ("" matches all) while set.
	writeErr map[string]error
	syncErr  map[string]error
	held     map[string]*syncGate
}

// syncGate holds Syncs until released, then answers them with err.
type syncGate struct {
	open chan struct{}
	err  error
}

// HoldSyncs makes Sync on files whose name contains substr block until the
// returned release is called; the held Syncs then fail with err, or go on
// when err is nil, and later Syncs are not held. Tests use it to keep
// appends in flight for as long as they need.
func (f *FaultFS) HoldSyncs(substr string) (release func(err error)) {
	g := &syncGate{open: make(chan struct{})}
	f.mu.Lock()
	if f.held == nil {
		f.held = make(map[string]*syncGate)
	}
	f.held[substr] = g
	f.mu.Unlock()
	var once sync.Once
	return func(err error) {
		once.Do(func() {
			g.err = err
			close(g.open)
			f.mu.Lock()
			if f.held[substr] == g {
				delete(f.held, substr)
			}
			f.mu.Unlock()
		})
	}
}

func (f *FaultFS) gate(name string) *syncGate {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, g := range f.held {
		if strings.Contains(name, k) {
			return g
		}
	}
	return nil
}

// FailWrites makes WriteAt fail with err on files whose name contains substr;
// err == nil clears it.
func (f *FaultFS) FailWrites(substr string, err error) { f.set(&f.writeErr, substr, err) }

// FailSyncs makes Sync fail with err on files whose name contains substr.
func (f *FaultFS) FailSyncs(substr string, err error) { f.set(&f.syncErr, substr, err) }

func (f *FaultFS) set(m *map[string]error, substr string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if *m == nil {
		*m = make(map[string]error)
	}
	if err == nil {
		delete(*m, substr)
	} else {
		(*m)[substr] = err
	}
}

func (f *FaultFS) lookup(m *map[string]error, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, err := range *m {
		if strings.Contains(name, k) {
			return err
		}
	}
	return nil
}

func (f *FaultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, name: name}, nil
}

type faultFile struct {
	File
	fs   *FaultFS
	name string
}

func (ff *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := ff.fs.lookup(&ff.fs.writeErr, ff.name); err != nil {
		return 0, fmt.Errorf("injected write failure: %w", err)
	}
	return ff.File.WriteAt(p, off)
}

func (ff *faultFile) Sync() error {
	if g := ff.fs.gate(ff.name); g != nil {
		<-g.open
		if g.err != nil {
			return fmt.Errorf("injected sync failure: %w", g.err)
		}
	}
	if err := ff.fs.lookup(&ff.fs.syncErr, ff.name); err != nil {
		return fmt.Errorf("injected sync failure: %w", err)
	}
	return ff.File.Sync()
}
