package managedledger

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/segment"
)

func TestAppendReadAcrossLedgers(t *testing.T) {
	storageModes(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		ml := e.open("public/default/t-partition-0", Config{MaxLedgerBytes: 2000})
		if lc := ml.LastConfirmed(); lc.EntryID != -1 {
			t.Fatalf("empty ledger last confirmed %v", lc)
		}
		written := appendEntries(t, ml, 0, 200, 3)
		st := ml.Stats()
		if len(st.Ledgers) < 3 {
			t.Fatalf("expected rollovers, got %d ledgers", len(st.Ledgers))
		}
		if ml.NextIndex() != 600 || ml.FirstIndex() != 0 || st.Entries != 200 {
			t.Fatalf("next %d first %d entries %d", ml.NextIndex(), ml.FirstIndex(), st.Entries)
		}
		if ml.LastConfirmed() != written[199].Position {
			t.Fatalf("last confirmed %v, want %v", ml.LastConfirmed(), written[199].Position)
		}
		got := readAll(t, ml)
		if len(got) != 200 {
			t.Fatalf("read %d entries", len(got))
		}
		checkContinuous(t, got, 0)
		for i := range got {
			if got[i].Position != written[i].Position || got[i].PublishTime != written[i].PublishTime {
				t.Fatalf("entry %d: %+v vs %+v", i, got[i].Position, written[i].Position)
			}
		}
		// Index lookups land on the entry holding the index, in every ledger.
		for ix := int64(0); ix < 600; ix += 7 {
			pos, err := ml.PositionOf(ix)
			if err != nil || pos != written[ix/3].Position {
				t.Fatalf("PositionOf(%d) = %v %v, want %v", ix, pos, err, written[ix/3].Position)
			}
			es, err := ml.ReadFromIndex(ctx, ix, 2, 1<<20)
			if err != nil || len(es) != 2 || es[0].FirstIndex != ix/3*3 {
				t.Fatalf("ReadFromIndex(%d): %d entries %v", ix, len(es), err)
			}
		}
		if es, err := ml.ReadFromIndex(ctx, 600, 10, 1<<20); err != nil || len(es) != 0 {
			t.Fatalf("read at next index: %d %v", len(es), err)
		}
		if _, err := ml.ReadFromIndex(ctx, 601, 10, 1<<20); !errors.Is(err, ErrIndexOutOfRange) {
			t.Fatalf("read beyond: %v", err)
		}
		if _, err := ml.PositionOf(600); !errors.Is(err, ErrIndexOutOfRange) {
			t.Fatalf("position beyond: %v", err)
		}
		// maxBytes: at least one entry, then stops before exceeding.
		es, _ := ml.ReadEntries(ctx, Earliest, 100, 1)
		if len(es) != 1 {
			t.Fatalf("maxBytes=1 returned %d", len(es))
		}
		// Find by time: publish times are non-decreasing; the first entry qualifies for t <= its time.
		fe, ok, err := ml.FindByTime(ctx, written[0].PublishTime)
		if err != nil || !ok || fe.Position != written[0].Position || fe.Data != nil {
			t.Fatalf("FindByTime first: %+v %v %v", fe.Position, ok, err)
		}
		fe, ok, _ = ml.FindByTime(ctx, written[199].PublishTime)
		if !ok || fe.PublishTime != written[199].PublishTime {
			t.Fatalf("FindByTime last: %+v %v", fe, ok)
		}
		if _, ok, _ := ml.FindByTime(ctx, written[199].PublishTime+1); ok {
			t.Fatal("FindByTime after the last entry found one")
		}
	})
}

func TestFindByTimeEventTimes(t *testing.T) {
	storageModes(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		ml := e.open("t", Config{MaxLedgerBytes: 600})
		// Event times with a late outlier: running max decides.
		times := []int64{100, 200, 150, 500, 300, 400, 600, 50, 700}
		var pos []Position
		for i, ts := range times {
			en, err := ml.Append(ctx, Entry{MsgCount: 1, MaxEventTime: ts, Data: payload(i), SeqFirst: int64(i)})
			if err != nil {
				t.Fatal(err)
			}
			pos = append(pos, en.Position)
		}
		cases := map[int64]int{1: 0, 100: 0, 101: 1, 200: 1, 201: 3, 450: 3, 500: 3, 501: 6, 600: 6, 650: 8, 700: 8}
		for ts, want := range cases {
			got, ok, err := ml.FindByTime(ctx, ts)
			if err != nil || !ok || got.Position != pos[want] {
				t.Errorf("FindByTime(%d) = %v %v %v, want %v", ts, got.Position, ok, err, pos[want])
			}
		}
	})
}

func TestConcurrentAppendersAndReaders(t *testing.T) {
	e := newEnv(t, t.TempDir())
	ctx := context.Background()
	ml := e.open("concurrent", Config{MaxLedgerBytes: 64 << 10})
	const appenders, perAppender, readers = 8, 1000, 3
	total := appenders * perAppender
	var wg sync.WaitGroup
	results := make([][]Entry, readers)
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			cur := ml.NewReader(Earliest)
			for len(results[r]) < total {
				ch := ml.Changed()
				es, err := cur.ReadEntries(ctx, 1+r*7, 1<<20)
				if err != nil {
					t.Error(err)
					return
				}
				if len(es) == 0 {
					select {
					case <-ch:
					case <-time.After(10 * time.Second):
						t.Error("reader stuck")
						return
					}
					continue
				}
				results[r] = append(results[r], es...)
			}
		}(r)
	}
	var awg sync.WaitGroup
	for a := 0; a < appenders; a++ {
		awg.Add(1)
		go func(a int) {
			defer awg.Done()
			for i := 0; i < perAppender; i++ {
				seq := a*perAppender + i
				en, err := ml.Append(ctx, Entry{Format: FormatPulsar, MsgCount: int32(1 + seq%4), Data: payload(seq), SeqFirst: int64(seq)})
				if err != nil {
					t.Error(err)
					return
				}
				// Visible when Append returns.
				if ml.NextIndex() < en.LastIndex()+1 {
					t.Errorf("appended entry %v not visible", en.Position)
				}
			}
		}(a)
	}
	awg.Wait()
	wg.Wait()
	for r, es := range results {
		if len(es) != total {
			t.Fatalf("reader %d read %d entries, want %d", r, len(es), total)
		}
		checkContinuous(t, es, 0)
		seen := make(map[int64]bool)
		for _, en := range es {
			if seen[en.SeqFirst] {
				t.Fatalf("reader %d: seq %d twice", r, en.SeqFirst)
			}
			seen[en.SeqFirst] = true
		}
	}
	if len(ml.Stats().Ledgers) < 2 {
		t.Fatal("expected rollovers under load")
	}
}

func TestRestartKeepsEntriesIndexesCursors(t *testing.T) {
	storageModes(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cfg := Config{MaxLedgerBytes: 3000}
		ml := e.open("ns/restart", cfg)
		written := appendEntries(t, ml, 0, 120, 2)
		c, err := ml.OpenCursor(ctx, "group/with odd chars%..", InitialEarliest)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetNextIndex(ctx, 51); err != nil { // inside entry 25 (indexes 50,51)
			t.Fatal(err)
		}
		c.Delete(ctx, written[30].Position, written[31].Position, written[40].Position)
		c.SetProperties(map[string]string{"meta": "v"})
		wantMD, wantNext, wantBacklog := c.MarkDeletePosition(), c.NextIndex(), c.Backlog()
		if wantNext != 51 || wantBacklog != 240-51-6 {
			t.Fatalf("before restart: next %d backlog %d", wantNext, wantBacklog)
		}
		ledgers := len(ml.Stats().Ledgers)

		e.restart()
		ml = e.open("ns/restart", cfg)
		got := readAll(t, ml)
		if len(got) != 120 || ml.NextIndex() != 240 || len(ml.Stats().Ledgers) != ledgers {
			t.Fatalf("after restart: %d entries, next %d, %d ledgers", len(got), ml.NextIndex(), len(ml.Stats().Ledgers))
		}
		checkContinuous(t, got, 0)
		c, ok := ml.Cursor("group/with odd chars%..")
		if !ok {
			t.Fatal("cursor lost")
		}
		if c.MarkDeletePosition() != wantMD || c.NextIndex() != wantNext || c.Backlog() != wantBacklog ||
			!c.IsAcked(written[40].Position) || c.Properties()["meta"] != "v" {
			t.Fatalf("cursor after restart: md %v next %d backlog %d", c.MarkDeletePosition(), c.NextIndex(), c.Backlog())
		}
		more := appendEntries(t, ml, 120, 10, 2)
		if more[0].FirstIndex != 240 {
			t.Fatalf("appends continue at %d", more[0].FirstIndex)
		}
		checkContinuous(t, readAll(t, ml), 0)
	})
}

func TestStorageFailureFailsLedgerUntilReopen(t *testing.T) {
	for _, path := range syncPaths {
		t.Run(path.name, func(t *testing.T) { testStorageFailureFailsLedgerUntilReopen(t, path.perLedger, path.syncFile) })
	}
}

func testStorageFailureFailsLedgerUntilReopen(t *testing.T, perLedger bool, syncFile string) {
	ffs := &segment.FaultFS{FS: segment.OSFS{}}
	e := newEnv(t, t.TempDir())
	e.f.Close()
	e.opts.FS = ffs
	e.opts.StorageRetryInterval = -1 // no automatic recovery: see TestStorageRecovery*
	e.opts.PerLedgerSync = perLedger
	e.start()
	ctx := context.Background()
	ml := e.open("faulty", Config{})
	appendEntries(t, ml, 0, 5, 1)
	ffs.FailSyncs(syncFile, errors.New("EIO"))
	if _, err := ml.Append(ctx, Entry{MsgCount: 1, Data: payload(5), SeqFirst: 5}); !errors.Is(err, ErrStorage) {
		t.Fatalf("append with failing fsync: %v", err)
	}
	ffs.FailSyncs(syncFile, nil)
	if _, err := ml.Append(ctx, Entry{MsgCount: 1, Data: payload(6), SeqFirst: 6}); !errors.Is(err, ErrStorage) {
		t.Fatalf("append after failure: %v", err)
	}
	if ml.NextIndex() != 5 {
		t.Fatalf("failed entry became visible: next %d", ml.NextIndex())
	}
	ml.Close()
	ml = e.open("faulty", Config{})
	// The unsynced entry may or may not have survived; what is there is continuous.
	got := readAll(t, ml)
	if len(got) < 5 {
		t.Fatalf("lost synced entries: %d", len(got))
	}
	appendEntries(t, ml, 7, 3, 1)
	if all := readAll(t, ml); len(all) != len(got)+3 {
		t.Fatalf("after reopen: %d entries", len(all))
	}
	ffs.FailWrites(".log", errors.New("ENOSPC"))
	if _, err := ml.Append(ctx, Entry{MsgCount: 1, Data: payload(1)}); !errors.Is(err, ErrStorage) {
		t.Fatalf("append with failing write: %v", err)
	}
}

func TestSyncIntervalVisibleAtOnce(t *testing.T) {
	e := newEnv(t, t.TempDir())
	ctx := context.Background()
	ml := e.open("interval", Config{Sync: SyncInterval, SyncInterval: 20 * time.Millisecond})
	p, err := ml.AppendAsync(Entry{MsgCount: 2, Data: payload(0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if ml.NextIndex() != 2 {
		t.Fatalf("next %d", ml.NextIndex())
	}
	appendEntries(t, ml, 1, 50, 1)
	e.restart()
	ml = e.open("interval", Config{Sync: SyncInterval})
	if ml.NextIndex() != 52 {
		t.Fatalf("after clean restart next %d", ml.NextIndex())
	}
}

func TestOrphanSegmentFiles(t *testing.T) {
	e := newEnv(t, t.TempDir())
	ml := e.open("orph", Config{MaxLedgerBytes: 400})
	appendEntries(t, ml, 0, 10, 1)
	ml.Close()
	dir := filepath.Join(e.dir, "orph")
	// A crash between creating ledger 98 and recording it: header only.
	empty, err := segment.Create(segment.Options{Dir: dir, Logger: quietLogger()}, 98, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	empty.Close()
	// An unlisted ledger with records (a store older than the data): kept.
	full, err := segment.Create(segment.Options{Dir: dir, Logger: quietLogger()}, 99, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	full.Append(&segment.Record{EntryID: 0, FirstIndex: 0, MsgCount: 1, Data: []byte("keep me")})
	full.Sync()
	full.Close()
	// A deleted ledger's leftovers (below the first listed id).
	os.WriteFile(filepath.Join(dir, segment.IndexName(0)+".tmp"), nil, 0o644) // not a segment name: ignored
	ml = e.open("orph", Config{MaxLedgerBytes: 400})
	if _, err := os.Stat(filepath.Join(dir, segment.LogName(98))); !os.IsNotExist(err) {
		t.Fatalf("empty orphan kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, segment.LogName(99))); err != nil {
		t.Fatalf("orphan with data removed: %v", err)
	}
	if got := readAll(t, ml); len(got) != 10 {
		t.Fatalf("%d entries", len(got))
	}
}

// gateFS holds every log and journal fsync until the test opens the gate.
type gateFS struct {
	segment.FS
	mu     sync.Mutex
	closed bool
	gate   chan struct{}
}

type gateFile struct {
	segment.File
	fs  *gateFS
	log bool
}

func (g *gateFS) OpenFile(name string, flag int, perm os.FileMode) (segment.File, error) {
	f, err := g.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	held := g.closed
	g.mu.Unlock()
	// Only files opened before hold are held: a second instance opening
	// the same files meanwhile is not slowed down (and so is caught).
	// The journal's file too: in journal mode its fsync is the one an
	// acknowledgement waits for.
	ext := filepath.Ext(name)
	return &gateFile{File: f, fs: g, log: (ext == ".log" || ext == journalSuffix) && !held}, nil
}

func (g *gateFS) hold() {
	g.mu.Lock()
	g.gate, g.closed = make(chan struct{}), true
	g.mu.Unlock()
}

func (g *gateFS) release() {
	g.mu.Lock()
	if g.closed {
		close(g.gate)
		g.closed = false
	}
	g.mu.Unlock()
}

func (f *gateFile) Sync() error {
	f.fs.mu.Lock()
	gate, held := f.fs.gate, f.fs.closed
	f.fs.mu.Unlock()
	if f.log && held {
		<-gate
	}
	return f.File.Sync()
}

// TestVisibleOnlyWhenDurable: under SyncAlways, while the fsync is held,
// the appended entry is invisible to every read path and Append blocks.
func TestVisibleOnlyWhenDurable(t *testing.T) {
	gfs := &gateFS{FS: segment.OSFS{}}
	e := newEnv(t, t.TempDir())
	e.f.Close()
	e.opts.FS = gfs
	e.start()
	ctx := context.Background()
	ml := e.open("vis", Config{})
	appendEntries(t, ml, 0, 3, 1)
	lc, changed := ml.LastConfirmed(), ml.Changed()
	gfs.hold()
	done := make(chan Entry)
	go func() {
		en, err := ml.Append(ctx, Entry{MsgCount: 2, Data: payload(3), SeqFirst: 3})
		if err != nil {
			t.Error(err)
		}
		done <- en
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("Append returned before its fsync")
	case <-changed:
		t.Fatal("Changed fired before the fsync")
	default:
	}
	if ml.NextIndex() != 3 || ml.LastConfirmed() != lc || len(readAll(t, ml)) != 3 {
		t.Fatalf("entry visible before fsync: next %d", ml.NextIndex())
	}
	if _, err := ml.ReadFromIndex(ctx, 3, 1, 1<<20); err != nil {
		t.Fatalf("read at next index: %v", err)
	}
	if _, err := ml.PositionOf(3); !errors.Is(err, ErrIndexOutOfRange) {
		t.Fatalf("PositionOf unsynced entry: %v", err)
	}
	gfs.release()
	en := <-done
	<-changed
	if ml.NextIndex() != 5 || ml.LastConfirmed() != en.Position || len(readAll(t, ml)) != 4 {
		t.Fatalf("after fsync: next %d", ml.NextIndex())
	}
}

func TestIdleSealedSegmentsCloseAndReopen(t *testing.T) {
	storageModes(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		ml := e.open("idle", Config{MaxLedgerBytes: 500})
		written := appendEntries(t, ml, 0, 30, 2)
		c, _ := ml.OpenCursor(ctx, "c", InitialEarliest)
		ml.closeIdleSegments(0)
		ml.mu.Lock()
		open := 0
		for _, l := range ml.mu.ledgers {
			if l.seg != nil {
				open++
			}
		}
		ml.mu.Unlock()
		if open != 1 {
			t.Fatalf("%d segments open after closing idle ones, want only the active", open)
		}
		checkContinuous(t, readAll(t, ml), 0)
		if c.Backlog() != 60 || c.NextIndex() != 0 {
			t.Fatalf("cursor over reopened segments: backlog %d next %d", c.Backlog(), c.NextIndex())
		}
		// Reads racing with closes: every read completes or plans again.
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < 200; i++ {
				ml.closeIdleSegments(0)
			}
		}()
		for i := 0; i < 50; i++ {
			if got := readAll(t, ml); len(got) != 30 || got[29].Position != written[29].Position {
				t.Fatalf("read during closes: %d entries", len(got))
			}
		}
		<-done
	})
}
