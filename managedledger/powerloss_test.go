package managedledger

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/segment"
)

// crashFS is an in-memory segment.FS that models a power loss: each file
// keeps its content as of the last Sync plus the operations since; crash()
// builds a new file system where every unsynced operation survived, was
// lost, or (writes) survived torn, in order. A file created since the last
// SyncDir of its directory may vanish altogether (POSIX: its directory
// entry is not durable; segment.CreateUnsynced relies on recovery for it).
// Removing files counts as durable (the segment syncs the directory).
type crashFS struct {
	mu    sync.Mutex
	files map[string]*crashFile
}

type crashOp struct {
	off   int64
	data  []byte // nil: truncate to off
	trunc bool
}

type crashFile struct {
	data    []byte
	durable []byte
	ops     []crashOp
	// created: the directory entry is not durable yet (no SyncDir since
	// the file was created).
	created bool
}

func newCrashFS() *crashFS { return &crashFS{files: map[string]*crashFile{}} }

func (c *crashFS) crash(rng *rand.Rand) *crashFS {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := newCrashFS()
	for name, f := range c.files {
		if f.created && rng.IntN(2) == 0 {
			continue // its directory entry was lost
		}
		nf := &crashFile{data: append([]byte(nil), f.durable...)}
		for _, op := range f.ops {
			switch r := rng.IntN(3); {
			case r == 0: // lost
			case op.trunc:
				nf.data = truncateTo(nf.data, op.off)
			case r == 1:
				nf.data = writeAt(nf.data, op.data, op.off)
			default: // torn
				nf.data = writeAt(nf.data, op.data[:rng.IntN(len(op.data)+1)], op.off)
			}
		}
		nf.durable = append([]byte(nil), nf.data...)
		out.files[name] = nf
	}
	return out
}

func writeAt(b, p []byte, off int64) []byte {
	if end := off + int64(len(p)); end > int64(len(b)) {
		b = append(b, make([]byte, end-int64(len(b)))...)
	}
	copy(b[off:], p)
	return b
}

func truncateTo(b []byte, n int64) []byte {
	if n <= int64(len(b)) {
		return b[:n]
	}
	return append(b, make([]byte, n-int64(len(b)))...)
}

type crashHandle struct {
	fs   *crashFS
	name string
}

func (c *crashFS) OpenFile(name string, flag int, perm os.FileMode) (segment.File, error) {
	name = filepath.Clean(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.files[name]
	if !ok {
		if flag&os.O_CREATE == 0 {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		f = &crashFile{created: true}
		c.files[name] = f
	}
	if flag&os.O_TRUNC != 0 {
		f.data, f.durable, f.ops = nil, nil, nil
	}
	return &crashHandle{fs: c, name: name}, nil
}

func (c *crashFS) Remove(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	name = filepath.Clean(name)
	if _, ok := c.files[name]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(c.files, name)
	return nil
}

func (c *crashFS) MkdirAll(string) error { return nil }

func (c *crashFS) SyncDir(dir string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, f := range c.files {
		if filepath.Dir(name) == filepath.Clean(dir) {
			f.created = false
		}
	}
	return nil
}

func (c *crashFS) List(dir string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for name := range c.files {
		if filepath.Dir(name) == filepath.Clean(dir) {
			out = append(out, filepath.Base(name))
		}
	}
	sort.Strings(out)
	return out, nil
}

func (h *crashHandle) file() *crashFile { return h.fs.files[h.name] }

func (h *crashHandle) ReadAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	f := h.file()
	if f == nil || off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *crashHandle) WriteAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	f := h.file()
	if f == nil {
		return 0, fs.ErrClosed
	}
	f.data = writeAt(f.data, p, off)
	f.ops = append(f.ops, crashOp{off: off, data: append([]byte(nil), p...)})
	return len(p), nil
}

func (h *crashHandle) Sync() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if f := h.file(); f != nil {
		f.durable = append(f.durable[:0], f.data...)
		f.ops = nil
	}
	return nil
}

func (h *crashHandle) Truncate(n int64) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if f := h.file(); f != nil {
		f.data = truncateTo(f.data, n)
		f.ops = append(f.ops, crashOp{off: n, trunc: true})
	}
	return nil
}

func (h *crashHandle) Size() (int64, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if f := h.file(); f != nil {
		return int64(len(f.data)), nil
	}
	return 0, fs.ErrNotExist
}

func (h *crashHandle) Close() error { return nil }

// copyStore snapshots a metadata store (records and versions).
func copyStore(t testing.TB, src metadata.Store) *metadata.Memory {
	ctx := context.Background()
	dst := metadata.NewMemory()
	var walk func(p string)
	walk = func(p string) {
		if r, err := src.Get(ctx, p); err == nil {
			for v := int64(1); v <= r.Version; v++ {
				dst.Put(ctx, p, r.Value, metadata.AnyVersion)
			}
		}
		kids, err := src.Children(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range kids {
			if p == "/" {
				walk("/" + k)
			} else {
				walk(p + "/" + k)
			}
		}
	}
	walk("/")
	return dst
}

// TestPowerLossRecovery cuts power (in a model) under concurrent SyncAlways
// appends: unsynced writes to the log and index files are lost, kept or
// torn at random. Every acknowledged entry must survive, exactly once, in
// order, and appends must continue. It exercises preallocated tails,
// rollovers and index points written without fsync.
func TestPowerLossRecovery(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	cfs := newCrashFS()
	var store metadata.Store = metadata.NewMemory()
	acked := map[int64]int64{}
	cfg := Config{MaxLedgerBytes: 256 << 10}
	replayed := int64(0) // entries the journal gave back to segments
	for round := int64(0); round < 8; round++ {
		f, err := NewFactory(FactoryOptions{
			Dir: "/data", FS: cfs, Store: store, Logger: quietLogger(), RetentionInterval: -1,
			Prealloc: 32 << 10, IndexInterval: 512,
		})
		if err != nil {
			t.Fatal(err)
		}
		ml, err := f.Open(context.Background(), "pl/t", cfg)
		if err != nil {
			t.Fatalf("round %d: reopen after power loss: %v", round, err)
		}
		replayed += f.replayed.Load()
		verifyAcked(t, ml, acked)

		var ackMu sync.Mutex
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := int64(0); g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int64(0); ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					seq := round<<40 | g<<32 | i
					e, err := ml.Append(context.Background(), Entry{MsgCount: int32(1 + i%3), SeqFirst: seq, Data: crashPayload(seq)})
					if err != nil {
						return
					}
					ackMu.Lock()
					acked[seq] = e.FirstIndex
					ackMu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(20+rng.IntN(80)) * time.Millisecond)
		// Power cut: what was acknowledged, then the metadata, then the disk.
		ackMu.Lock()
		snapshot := make(map[int64]int64, len(acked))
		for k, v := range acked {
			snapshot[k] = v
		}
		ackMu.Unlock()
		newStore := copyStore(t, store)
		newFS := cfs.crash(rng)
		close(stop)
		wg.Wait()
		f.Close()
		acked, store, cfs = snapshot, newStore, newFS
	}
	f, err := NewFactory(FactoryOptions{Dir: "/data", FS: cfs, Store: store, Logger: quietLogger(), RetentionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ml, err := f.Open(context.Background(), "pl/t", cfg)
	if err != nil {
		t.Fatal(err)
	}
	verifyAcked(t, ml, acked)
	next := ml.NextIndex()
	if e, err := ml.Append(context.Background(), Entry{MsgCount: 1, Data: []byte("x")}); err != nil || e.FirstIndex != next {
		t.Fatalf("append after recovery: %v at %d, want %d", err, e.FirstIndex, next)
	}
	t.Logf("%d acknowledged entries verified, %d ledgers, %d entries replayed from the journal", len(acked), len(ml.Stats().Ledgers), replayed+f.replayed.Load())
}

func verifyAcked(t *testing.T, ml *ManagedLedger, acked map[int64]int64) {
	t.Helper()
	all := readAll(t, ml)
	seen := make(map[int64]int64, len(all))
	next := int64(0)
	for _, e := range all {
		if e.FirstIndex != next {
			t.Fatalf("index gap at %v: %d, want %d", e.Position, e.FirstIndex, next)
		}
		next = e.LastIndex() + 1
		if _, dup := seen[e.SeqFirst]; dup {
			t.Fatalf("seq %d twice", e.SeqFirst)
		}
		seen[e.SeqFirst] = e.FirstIndex
		if !bytes.Equal(e.Data, crashPayload(e.SeqFirst)) {
			t.Fatalf("entry %v: wrong content", e.Position)
		}
	}
	for seq, idx := range acked {
		if got, ok := seen[seq]; !ok || got != idx {
			t.Fatalf("acknowledged seq %d at index %d: stored %v at %d (%d entries)", seq, idx, ok, got, len(all))
		}
	}
}
