package managedledger

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/segment"
)

// blockFS blocks OpenFile of any path containing part until release: a
// ledger whose recovery or creation is stuck on its disk.
type blockFS struct {
	segment.FS
	part    string
	once    sync.Once
	gate    chan struct{}
	blocked chan struct{} // closed when the first blocked OpenFile waits
	bOnce   sync.Once
	armed   atomic.Bool
}

func newBlockFS(part string) *blockFS {
	return &blockFS{FS: segment.OSFS{}, part: part, gate: make(chan struct{}), blocked: make(chan struct{})}
}

func (b *blockFS) OpenFile(name string, flag int, perm os.FileMode) (segment.File, error) {
	if b.armed.Load() && strings.Contains(name, b.part) {
		b.bOnce.Do(func() { close(b.blocked) })
		<-b.gate
	}
	return b.FS.OpenFile(name, flag, perm)
}

func (b *blockFS) release() { b.once.Do(func() { close(b.gate) }) }

// TestOpenConcurrent: one ledger whose open is stuck on its disk stalls
// neither the opens, appends and closes of other ledgers nor the factory's
// Close; a second Open of the stuck name waits (one instance per name), a
// cancelled one returns the context's error, and an open that completes
// after Close fails with ErrClosed without leaking its ledger. After a
// restart every acknowledged entry is there.
func TestOpenConcurrent(t *testing.T) {
	dir := t.TempDir()
	bfs := newBlockFS("stuck")
	e := newEnv(t, dir)
	e.f.Close()
	e.opts.FS = bfs
	e.start()
	t.Cleanup(bfs.release) // a failing run does not leave Close stuck
	ctx := context.Background()
	// "stuck" exists, so that its open recovers its file (a new ledger's
	// open touches no file: segment.CreateUnsynced defers it).
	pre := e.open("stuck", Config{})
	appendEntries(t, pre, 0, 3, 1)
	if err := pre.Close(); err != nil {
		t.Fatal(err)
	}
	bfs.armed.Store(true)

	type result struct {
		ml  *ManagedLedger
		err error
	}
	stuck := make(chan result, 1)
	go func() {
		ml, err := e.f.Open(ctx, "stuck", Config{})
		stuck <- result{ml, err}
	}()
	<-bfs.blocked

	// Twenty other ledgers open, append and close while "stuck" waits.
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 20; i++ {
			ml, err := e.f.Open(ctx, fmt.Sprintf("free-%02d", i), Config{})
			if err != nil {
				done <- err
				return
			}
			for j := 0; j < 5; j++ {
				if _, err := ml.Append(ctx, Entry{Format: FormatKafka, MsgCount: 1, Data: payload(j)}); err != nil {
					done <- err
					return
				}
			}
			if i%2 == 0 {
				if err := ml.Close(); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("other ledgers stalled behind one stuck open")
	}

	// A second Open of the stuck name waits for the first.
	second := make(chan result, 1)
	go func() {
		ml, err := e.f.Open(ctx, "stuck", Config{})
		second <- result{ml, err}
	}()
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	if _, err := e.f.Open(cctx, "stuck", Config{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("open with a cancelled context while the name is busy: %v, want DeadlineExceeded", err)
	}
	cancel()
	select {
	case r := <-second:
		t.Fatalf("second open returned while the first was stuck: %v", r.err)
	default:
	}

	// Close while the open is stuck: Close waits for it, and the open
	// fails with ErrClosed (the factory is gone), its ledger closed.
	closed := make(chan error, 1)
	go func() { closed <- e.f.Close() }()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-closed:
		t.Fatalf("Close returned while an open was in flight: %v", err)
	default:
	}
	bfs.release()
	r := <-stuck
	if !errors.Is(r.err, ErrClosed) {
		t.Fatalf("open completing after Close: %v, want ErrClosed", r.err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if r := <-second; !errors.Is(r.err, ErrClosed) {
		t.Fatalf("second open after Close: %v, want ErrClosed", r.err)
	}

	e.opts.FS = segment.OSFS{}
	e.start()
	for i := 0; i < 20; i++ {
		ml := e.open(fmt.Sprintf("free-%02d", i), Config{})
		es := readAll(t, ml)
		if len(es) != 5 {
			t.Fatalf("free-%02d: %d entries after restart, want 5", i, len(es))
		}
	}
}

// TestOpenCloseStress: workers open, append to and close a few shared
// names at random; an Open returns the one live instance or waits for a
// close, so appends never land in a second instance of a ledger. After a
// restart each ledger holds exactly the acknowledged entries.
func TestOpenCloseStress(t *testing.T) {
	e := newEnv(t, t.TempDir())
	ctx := context.Background()
	names := []string{"s0", "s1", "s2", "s3"}
	var mu sync.Mutex
	acked := map[string]int{}
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			for round := 0; round < 60; round++ {
				name := names[rng.Intn(len(names))]
				ml, err := e.f.Open(ctx, name, Config{})
				if err != nil {
					errc <- err
					return
				}
				n := 0
				for j := rng.Intn(4); j >= 0; j-- {
					if _, err := ml.Append(ctx, Entry{Format: FormatKafka, MsgCount: 1, Data: payload(j), SeqFirst: int64(j)}); err != nil {
						if errors.Is(err, ErrClosed) {
							break // another worker closed this instance
						}
						errc <- err
						return
					}
					n++
				}
				mu.Lock()
				acked[name] += n
				mu.Unlock()
				if rng.Intn(3) == 0 {
					if err := ml.Close(); err != nil {
						errc <- err
						return
					}
				}
			}
		}(int64(w))
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	e.restart()
	for _, name := range names {
		es := readAll(t, e.open(name, Config{}))
		if len(es) != acked[name] {
			t.Fatalf("%s: %d entries after restart, %d acknowledged", name, len(es), acked[name])
		}
		checkContinuous(t, es, 0)
	}
}

// TestSyncedFileLostIsAnError: the ledger list marks an active ledger's
// file unsynced only while none of its journal records was released, so
// that recovery recreates a file a crash lost before its first sync, but a
// file lost after its entries left the journal (a disk or an operator
// error, never a crash) fails the open instead of coming back empty.
func TestSyncedFileLostIsAnError(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir)
	ml := e.open("lost", Config{})
	appendEntries(t, ml, 0, 5, 1)
	e.f.checkpoint() // syncs the file and releases its journal records
	rec, err := e.store.Get(context.Background(), ledgerPath("lost"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(rec.Value), `"unsynced":true`) {
		t.Fatalf("ledger list still marks the checkpointed file unsynced: %s", rec.Value)
	}
	id := ml.Stats().Ledgers[0].LedgerID
	e.restart()
	e.f.Close()
	if err := os.Remove(filepath.Join(dir, "lost", segment.LogName(id))); err != nil {
		t.Fatal(err)
	}
	e.start()
	if ml, err := e.f.Open(context.Background(), "lost", Config{}); err == nil {
		t.Fatalf("open after the synced file vanished: no error, %d entries", len(readAll(t, ml)))
	}
}
