package segment

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"testing"
)

// watchFS wraps an FS and checks LimitFS's use of it: how many descriptors
// are open (and the most ever), and that no descriptor written since its
// last sync is closed except by the user's own Close.
type watchFS struct {
	FS
	mu        sync.Mutex
	open, top int
	userClose bool // set by the test around a handle's Close
	failSync  map[string]error
	emfileAt  int // != 0: opens with this many descriptors open fail with EMFILE
	bad       []string
}

type watchFile struct {
	File
	w     *watchFS
	name  string
	dirty bool
}

func (w *watchFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	w.mu.Lock()
	if w.emfileAt != 0 && w.open >= w.emfileAt {
		w.mu.Unlock()
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EMFILE}
	}
	w.mu.Unlock()
	f, err := w.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.open++
	w.top = max(w.top, w.open)
	w.mu.Unlock()
	return &watchFile{File: f, w: w, name: name}, nil
}

func (f *watchFile) WriteAt(p []byte, off int64) (int, error) {
	f.w.mu.Lock()
	f.dirty = true
	f.w.mu.Unlock()
	return f.File.WriteAt(p, off)
}

func (f *watchFile) Sync() error {
	f.w.mu.Lock()
	err := f.w.failSync[f.name]
	if err == nil {
		f.dirty = false
	}
	f.w.mu.Unlock()
	if err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *watchFile) Close() error {
	f.w.mu.Lock()
	if f.dirty && !f.w.userClose && f.w.failSync[f.name] == nil {
		f.w.bad = append(f.w.bad, "closed unsynced: "+f.name)
	}
	f.w.open--
	f.w.mu.Unlock()
	return f.File.Close()
}

// TestLimitFSModel drives random operations on handles of a LimitFS with
// a tiny bound and on plain MemFS handles, and checks that every read
// agrees, that the bound holds (single-threaded, nothing is pinned when a
// file opens), and that no dirty descriptor is closed unsynced.
func TestLimitFSModel(t *testing.T) {
	for seed := uint64(1); seed <= 60; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		w := &watchFS{FS: NewMemFS()}
		maxOpen := 1 + rng.IntN(4)
		l := NewLimitFS(w, maxOpen)
		ref := NewMemFS()
		type pair struct{ got, want File }
		var hs []pair
		names := []string{"/d/a", "/d/b", "/d/c", "/d/e", "/d/f"}
		for op := 0; op < 400; op++ {
			name := names[rng.IntN(len(names))]
			switch x := rng.IntN(20); {
			case x < 3 || len(hs) == 0:
				flag := os.O_RDWR | os.O_CREATE
				if rng.IntN(4) == 0 {
					flag |= os.O_TRUNC
				}
				g, gerr := l.OpenFile(name, flag, 0o644)
				r, rerr := ref.OpenFile(name, flag, 0o644)
				if (gerr == nil) != (rerr == nil) {
					t.Fatalf("seed %d op %d: open %s: %v vs %v", seed, op, name, gerr, rerr)
				}
				if gerr == nil {
					hs = append(hs, pair{g, r})
				}
			case x < 4:
				i := rng.IntN(len(hs))
				w.mu.Lock()
				w.userClose = true
				w.mu.Unlock()
				if err := hs[i].got.Close(); err != nil {
					t.Fatalf("seed %d op %d: close: %v", seed, op, err)
				}
				w.mu.Lock()
				w.userClose = false
				w.mu.Unlock()
				hs[i].want.Close()
				hs = append(hs[:i], hs[i+1:]...)
			case x < 10:
				h := hs[rng.IntN(len(hs))]
				p := make([]byte, 1+rng.IntN(40))
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				off := int64(rng.IntN(100))
				if _, err := h.got.WriteAt(p, off); err != nil {
					t.Fatalf("seed %d op %d: write: %v", seed, op, err)
				}
				h.want.WriteAt(p, off)
			case x < 12:
				h := hs[rng.IntN(len(hs))]
				n := int64(rng.IntN(120))
				if err := h.got.Truncate(n); err != nil {
					t.Fatalf("seed %d op %d: truncate: %v", seed, op, err)
				}
				h.want.Truncate(n)
			case x < 14:
				h := hs[rng.IntN(len(hs))]
				if err := h.got.Sync(); err != nil {
					t.Fatalf("seed %d op %d: sync: %v", seed, op, err)
				}
			case x < 15:
				// Remove: handles open on the name read on (POSIX).
				lerr, rerr := l.Remove(name), ref.Remove(name)
				if (lerr == nil) != (rerr == nil) {
					t.Fatalf("seed %d op %d: remove %s: %v vs %v", seed, op, name, lerr, rerr)
				}
			default:
				h := hs[rng.IntN(len(hs))]
				gs, gerr := h.got.Size()
				ws, _ := h.want.Size()
				if gerr != nil || gs != ws {
					t.Fatalf("seed %d op %d: size %d, %v; want %d", seed, op, gs, gerr, ws)
				}
				got, want := make([]byte, ws+5), make([]byte, ws+5)
				gn, _ := h.got.ReadAt(got, 0)
				wn, _ := h.want.ReadAt(want, 0)
				if gn != wn || !bytes.Equal(got[:gn], want[:wn]) {
					t.Fatalf("seed %d op %d: read %d bytes %x; want %d %x", seed, op, gn, got[:gn], wn, want[:wn])
				}
			}
			w.mu.Lock()
			bad, open := w.bad, w.open
			w.mu.Unlock()
			if len(bad) > 0 {
				t.Fatalf("seed %d op %d: %v", seed, op, bad)
			}
			// Removed files' handles stay open beyond the bound.
			if st := l.Stats(); open != st.Open || open > maxOpen+l.keptHandles() {
				t.Fatalf("seed %d op %d: %d descriptors open, stats %+v, bound %d", seed, op, open, st, maxOpen)
			}
		}
		for _, h := range hs {
			h.got.Close()
		}
		if w.open != 0 {
			t.Fatalf("seed %d: %d descriptors left open after every Close", seed, w.open)
		}
	}
}

// keptHandles counts handles of removed files, whose descriptors stay
// open (beyond the bound) until Close.
func (l *LimitFS) keptHandles() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, set := range l.names {
		for h := range set {
			if h.kept && h.fd != nil {
				n++
			}
		}
	}
	return n
}

// TestLimitFSEvictionSyncErrorIsSticky: a dirty file whose eviction sync
// failed reports the failure on every later Sync and on Close (the data
// may be gone), never a success.
func TestLimitFSEvictionSyncErrorIsSticky(t *testing.T) {
	boom := errors.New("EIO")
	w := &watchFS{FS: NewMemFS(), failSync: map[string]error{}}
	l := NewLimitFS(w, 1)
	a, err := l.OpenFile("/d/a", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteAt([]byte("acked?"), 0); err != nil {
		t.Fatal(err)
	}
	w.failSync["/d/a"] = boom
	b, err := l.OpenFile("/d/b", os.O_RDWR|os.O_CREATE, 0o644) // evicts a, whose sync fails
	if err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.EvictionSyncs != 1 {
		t.Fatalf("stats %+v: want one eviction sync", st)
	}
	delete(w.failSync, "/d/a") // the disk recovers; the lost write does not
	for i := 0; i < 3; i++ {
		if err := a.Sync(); !errors.Is(err, boom) {
			t.Fatalf("Sync %d after a failed eviction sync: %v, want %v", i, err, boom)
		}
	}
	if err := a.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close: %v, want %v", err, boom)
	}
	b.Close()
}

// TestLimitFSEmfile: descriptors taken elsewhere (sockets) make the inner
// open fail with EMFILE below the bound; LimitFS evicts an idle descriptor
// and retries, and reports EMFILE only when it has nothing to evict.
func TestLimitFSEmfile(t *testing.T) {
	w := &watchFS{FS: NewMemFS(), emfileAt: 2}
	l := NewLimitFS(w, 100)
	var hs []File
	for i := 0; i < 5; i++ {
		h, err := l.OpenFile(fmt.Sprintf("/d/%d", i), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatalf("open %d beyond the inner limit, with idle descriptors to evict: %v", i, err)
		}
		if _, err := h.WriteAt([]byte{byte(i)}, 0); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	for i, h := range hs {
		p := make([]byte, 1)
		if _, err := h.ReadAt(p, 0); err != nil || p[0] != byte(i) {
			t.Fatalf("read %d: %v %v", i, p, err)
		}
	}
	for _, h := range hs {
		h.Close()
	}
	w.mu.Lock()
	w.emfileAt = -1 // any open fails: w.open >= -1
	w.mu.Unlock()
	if _, err := l.OpenFile("/d/x", os.O_RDWR|os.O_CREATE, 0o644); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("open with nothing to evict: %v, want EMFILE", err)
	}
	if st := l.Stats(); st.Open != 0 {
		t.Fatalf("a failed open left %+v", st)
	}
}

// TestLimitFSConcurrent: goroutines write and read their own regions of
// shared handles, sync and reopen through a bound of 2 descriptors; every
// region reads back what its goroutine wrote last. Run with -race.
func TestLimitFSConcurrent(t *testing.T) {
	w := &watchFS{FS: NewMemFS()}
	l := NewLimitFS(w, 2)
	const files, workers, rounds = 5, 6, 300
	hs := make([]File, files)
	for i := range hs {
		h, err := l.OpenFile(fmt.Sprintf("/d/%d", i), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		hs[i] = h
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			last := make([]byte, files)
			for r := 0; r < rounds; r++ {
				i := rng.IntN(files)
				off := int64(g * 8)
				switch rng.IntN(3) {
				case 0:
					v := byte(rng.Uint32())
					if _, err := hs[i].WriteAt(bytes.Repeat([]byte{v}, 8), off); err != nil {
						errs <- err
						return
					}
					last[i] = v
				case 1:
					if err := hs[i].Sync(); err != nil {
						errs <- err
						return
					}
				default:
					p := make([]byte, 8)
					n, _ := hs[i].ReadAt(p, off)
					want := bytes.Repeat([]byte{last[i]}, 8)
					if n == 0 && last[i] == 0 {
						continue
					}
					if !bytes.Equal(p[:n], want[:n]) || (last[i] != 0 && n != 8) {
						errs <- fmt.Errorf("worker %d file %d: read %x, want %x", g, i, p[:n], want)
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(w.bad) > 0 {
		t.Fatal(w.bad[:min(len(w.bad), 5)])
	}
	for _, h := range hs {
		h.Close()
	}
	if w.open != 0 {
		t.Fatalf("%d descriptors left open", w.open)
	}
}
