package managedledger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/metadata"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// env is a factory over a data dir and a metadata store that survive
// restart (reopen) within a test.
type env struct {
	t     testing.TB
	dir   string // "" = memory mode
	store metadata.Store
	opts  FactoryOptions
	f     *Factory
}

// storageModes runs body over the memory engine and the file engine.
func storageModes(t *testing.T, body func(t *testing.T, e *env)) {
	for _, mode := range []string{"memory", "file"} {
		t.Run(mode, func(t *testing.T) {
			dir := ""
			if mode == "file" {
				dir = t.TempDir()
			}
			body(t, newEnv(t, dir))
		})
	}
}

// syncPaths are the two acknowledgement paths with a Dir: the shared
// journal (the default) and per-ledger fsyncs (FactoryOptions.
// PerLedgerSync); syncFile is the suffix of the file whose fsync an
// acknowledgement waits for.
var syncPaths = []struct {
	name      string
	perLedger bool
	syncFile  string
}{
	{"journal", false, journalSuffix},
	{"per-ledger", true, ".log"},
}

func newEnv(t testing.TB, dir string) *env {
	e := &env{t: t, dir: dir, store: metadata.NewMemory()}
	e.opts = FactoryOptions{Dir: dir, Store: e.store, Logger: quietLogger(), RetentionInterval: -1, IndexInterval: 512}
	e.start()
	t.Cleanup(func() { e.f.Close() })
	return e
}

func (e *env) start() {
	f, err := NewFactory(e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.f = f
}

// restart closes the factory and opens a new one on the same dir and store.
// Memory mode keeps the in-memory file system across the restart.
func (e *env) restart() {
	if err := e.f.Close(); err != nil {
		e.t.Fatal(err)
	}
	if e.dir == "" {
		e.opts.FS = e.f.fs
	}
	e.start()
}

func (e *env) open(name string, cfg Config) *ManagedLedger {
	ml, err := e.f.Open(context.Background(), name, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return ml
}

func payload(i int) []byte {
	return []byte(fmt.Sprintf("entry-%06d-%s", i, bytes.Repeat([]byte{'x'}, i%37)))
}

func appendEntries(t testing.TB, ml *ManagedLedger, from, n int, msgs int32) []Entry {
	t.Helper()
	var out []Entry
	for i := from; i < from+n; i++ {
		e, err := ml.Append(context.Background(), Entry{Format: FormatKafka, MsgCount: msgs, Data: payload(i), Producer: "p", SeqFirst: int64(i)})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func readAll(t testing.TB, ml *ManagedLedger) []Entry {
	t.Helper()
	var out []Entry
	from := Earliest
	for {
		es, err := ml.ReadEntries(context.Background(), from, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			return out
		}
		out = append(out, es...)
		last := es[len(es)-1].Position
		from = Position{LedgerID: last.LedgerID, EntryID: last.EntryID + 1}
	}
}

// checkContinuous verifies indexes are continuous from first and data matches seqs.
func checkContinuous(t testing.TB, es []Entry, first int64) {
	t.Helper()
	next := first
	for i, e := range es {
		if e.FirstIndex != next {
			t.Fatalf("entry %d (%v): first index %d, want %d", i, e.Position, e.FirstIndex, next)
		}
		if !bytes.Equal(e.Data, payload(int(e.SeqFirst))) {
			t.Fatalf("entry %d: data %q does not match seq %d", i, e.Data, e.SeqFirst)
		}
		if i > 0 && !es[i-1].Position.Less(e.Position) {
			t.Fatalf("positions out of order: %v then %v", es[i-1].Position, e.Position)
		}
		next = e.LastIndex() + 1
	}
}

// fileStore is a test-only durable metadata.Store: the memory store's
// contents rewritten to one file (write, fsync, rename) on every change.
// The crash test needs metadata that survives SIGKILL; the real durable
// store lives in another package.
type fileStore struct {
	*metadata.Memory
	path string
	mu   sync.Mutex
}

type fileStoreRecord struct {
	Value   []byte
	Version int64
}

func openFileStore(t testing.TB, path string) *fileStore {
	s := &fileStore{Memory: metadata.NewMemory(), path: path}
	b, err := os.ReadFile(path)
	if err == nil {
		var recs map[string]fileStoreRecord
		if err := json.Unmarshal(b, &recs); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for p, r := range recs {
			// Replay to the same version.
			for v := int64(1); v <= r.Version; v++ {
				if _, err := s.Memory.Put(ctx, p, r.Value, metadata.AnyVersion); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return s
}

func (s *fileStore) save(ctx context.Context) error {
	recs := map[string]fileStoreRecord{}
	var walk func(p string) error
	walk = func(p string) error {
		if r, err := s.Memory.Get(ctx, p); err == nil {
			recs[p] = fileStoreRecord{Value: r.Value, Version: r.Version}
		}
		kids, err := s.Memory.Children(ctx, p)
		if err != nil {
			return err
		}
		for _, k := range kids {
			if err := walk(filepath.ToSlash(filepath.Join(p, k))); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("/"); err != nil {
		return err
	}
	b, err := json.Marshal(recs)
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	return os.Rename(tmp, s.path)
}

func (s *fileStore) Put(ctx context.Context, path string, value []byte, expectedVersion int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.Memory.Put(ctx, path, value, expectedVersion)
	if err != nil {
		return v, err
	}
	return v, s.save(ctx)
}

func (s *fileStore) Delete(ctx context.Context, path string, expectedVersion int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.Memory.Delete(ctx, path, expectedVersion); err != nil {
		return err
	}
	return s.save(ctx)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
