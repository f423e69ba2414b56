package compact_test

import (
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/kopernik-io/kopernik/segment"
)

// powerFS is an in-memory segment.FS that can lose power: each file keeps
// the bytes of its last Sync and the writes since; lose() returns the file
// system after a power cut, where every write since a file's last Sync
// survived, was lost, or was torn, and a file created since its directory's
// last SyncDir may be gone. failAt makes the n-th mutating call (write,
// sync, directory sync, remove, create, truncate; counted from 1) and every
// later one fail, as if the power went there.
type powerFS struct {
	mu     sync.Mutex
	files  map[string]*pfile
	ops    int
	failAt int // 0: never
}

type pwrite struct {
	off   int64
	data  []byte
	trunc bool
}

type pfile struct {
	data, synced []byte
	pending      []pwrite
	fresh        bool // directory entry not synced yet
}

var errPowerCut = errors.New("powerfs: power cut")

func newPowerFS() *powerFS { return &powerFS{files: map[string]*pfile{}} }

// step counts a mutating call and reports whether it fails. mu held.
func (p *powerFS) stepLocked() error {
	p.ops++
	if p.failAt > 0 && p.ops >= p.failAt {
		return errPowerCut
	}
	return nil
}

func (p *powerFS) lose(rng *rand.Rand) *powerFS {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := newPowerFS()
	for name, f := range p.files {
		if f.fresh && rng.IntN(2) == 0 {
			continue
		}
		data := append([]byte(nil), f.synced...)
		for _, w := range f.pending {
			switch k := rng.IntN(3); {
			case k == 0:
			case w.trunc:
				data = resize(data, w.off)
			case k == 1:
				data = put(data, w.data, w.off)
			default:
				data = put(data, w.data[:rng.IntN(len(w.data)+1)], w.off)
			}
		}
		out.files[name] = &pfile{data: data, synced: append([]byte(nil), data...)}
	}
	return out
}

func put(b, p []byte, off int64) []byte {
	if end := off + int64(len(p)); end > int64(len(b)) {
		b = resize(b, end)
	}
	copy(b[off:], p)
	return b
}

func resize(b []byte, n int64) []byte {
	if n <= int64(len(b)) {
		return b[:n]
	}
	return append(b, make([]byte, n-int64(len(b)))...)
}

func (p *powerFS) OpenFile(name string, flag int, _ os.FileMode) (segment.File, error) {
	name = filepath.Clean(name)
	p.mu.Lock()
	defer p.mu.Unlock()
	f, ok := p.files[name]
	if !ok || flag&os.O_TRUNC != 0 {
		if !ok && flag&os.O_CREATE == 0 {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		if err := p.stepLocked(); err != nil {
			return nil, err
		}
		if !ok {
			f = &pfile{fresh: true}
			p.files[name] = f
		} else {
			f.data = nil
			f.pending = append(f.pending, pwrite{off: 0, trunc: true})
		}
	}
	return &phandle{fs: p, name: name}, nil
}

func (p *powerFS) Remove(name string) error {
	name = filepath.Clean(name)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stepLocked(); err != nil {
		return err
	}
	if _, ok := p.files[name]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(p.files, name) // removals are taken as durable (the caller syncs the directory)
	return nil
}

func (p *powerFS) MkdirAll(string) error { return nil }

func (p *powerFS) List(dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for name := range p.files {
		if filepath.Dir(name) == dir {
			out = append(out, filepath.Base(name))
		}
	}
	sort.Strings(out)
	return out, nil
}

func (p *powerFS) SyncDir(dir string) error {
	dir = filepath.Clean(dir)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stepLocked(); err != nil {
		return err
	}
	for name, f := range p.files {
		if filepath.Dir(name) == dir {
			f.fresh = false
		}
	}
	return nil
}

// names lists every file, for orphan checks.
func (p *powerFS) names(prefix string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for name := range p.files {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

type phandle struct {
	fs   *powerFS
	name string
}

func (h *phandle) file() (*pfile, error) {
	f, ok := h.fs.files[h.name]
	if !ok {
		return nil, &fs.PathError{Op: "access", Path: h.name, Err: fs.ErrNotExist}
	}
	return f, nil
}

func (h *phandle) ReadAt(b []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	f, err := h.file()
	if err != nil {
		return 0, err
	}
	if off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(b, f.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (h *phandle) WriteAt(b []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.fs.stepLocked(); err != nil {
		return 0, err
	}
	f, err := h.file()
	if err != nil {
		return 0, err
	}
	f.data = put(f.data, b, off)
	f.pending = append(f.pending, pwrite{off: off, data: append([]byte(nil), b...)})
	return len(b), nil
}

func (h *phandle) Sync() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.fs.stepLocked(); err != nil {
		return err
	}
	f, err := h.file()
	if err != nil {
		return err
	}
	f.synced, f.pending = append([]byte(nil), f.data...), nil
	return nil
}

func (h *phandle) Truncate(n int64) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.fs.stepLocked(); err != nil {
		return err
	}
	f, err := h.file()
	if err != nil {
		return err
	}
	f.data = resize(f.data, n)
	f.pending = append(f.pending, pwrite{off: n, trunc: true})
	return nil
}

func (h *phandle) Size() (int64, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	f, err := h.file()
	if err != nil {
		return 0, err
	}
	return int64(len(f.data)), nil
}

func (h *phandle) Close() error { return nil }
