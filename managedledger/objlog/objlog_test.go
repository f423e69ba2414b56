package objlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/metadata/etcdtest"
	"github.com/kopernik-io/kopernik/objectstore"
	"github.com/kopernik-io/kopernik/objectstore/s3test"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Main(m)) }

type env struct {
	t     testing.TB
	etcd  *etcdtest.Server
	meta  *metadata.Etcd
	s3    *s3test.Server
	objs  objectstore.Store
	read  Reader
	owner sync.Map // ledger -> current owner record value (what this writer believes)
}

// newEnv starts a real S3 server and connects to etcd (the shared member,
// or a private one that the test may stop).
func newEnv(t testing.TB, privateEtcd bool) *env {
	e := &env{t: t}
	prefix := ""
	if privateEtcd {
		e.etcd = etcdtest.Start(t)
	} else {
		e.etcd, prefix = etcdtest.Shared(t)
	}
	meta, err := metadata.OpenEtcd(e.etcd.Endpoints(), metadata.WithEtcdPrefix(prefix+"/kop"), metadata.WithEtcdOpTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	e.meta = meta
	e.s3 = s3test.Start(t)
	objs, err := objectstore.NewS3(context.Background(), objectstore.S3Options{
		Endpoint: e.s3.Endpoint, Bucket: e.s3.Bucket, AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey,
		MaxAttempts: 2, MaxBackoff: 20 * time.Millisecond, AttemptTimeout: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.objs = objs
	e.read = Reader{Objects: objs, Meta: meta, Cluster: "c1"}
	return e
}

// own makes this writer the owner of ledger: an owner record in etcd with
// a fresh value, remembered as the writer's belief.
func (e *env) own(ledger string) {
	e.t.Helper()
	v := []byte(fmt.Sprintf(`{"owner":"w","since":%d}`, time.Now().UnixNano()))
	if _, err := e.meta.Put(context.Background(), "/owners/"+segment(ledger), v, metadata.AnyVersion); err != nil {
		e.t.Fatal(err)
	}
	e.owner.Store(ledger, v)
}

// steal moves ledger's ownership elsewhere behind the writer's back (the
// writer keeps its stale belief: a zombie).
func (e *env) steal(ledger string) {
	e.t.Helper()
	v := []byte(fmt.Sprintf(`{"owner":"other","since":%d}`, time.Now().UnixNano()))
	if _, err := e.meta.Put(context.Background(), "/owners/"+segment(ledger), v, metadata.AnyVersion); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) open(opts Options) *Log {
	e.t.Helper()
	opts.Objects, opts.Meta, opts.Cluster = e.objs, e.meta, "c1"
	if opts.Writer == "" {
		opts.Writer = "broker-a:9092"
	}
	if opts.Fence == nil {
		opts.Fence = func(ledger string) (metadata.Cond, bool) {
			v, ok := e.owner.Load(ledger)
			if !ok {
				return metadata.Cond{}, false
			}
			return metadata.Cond{Path: "/owners/" + segment(ledger), Value: v.([]byte)}, true
		}
	}
	l, err := Open(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// replay returns ledger's committed entries.
func (e *env) replay(ledger string) []Entry {
	e.t.Helper()
	var out []Entry
	err := e.read.Replay(context.Background(), ledger, Position{-1, -1}, func(en Entry) error {
		en.Data = bytes.Clone(en.Data)
		out = append(out, en)
		return nil
	})
	if err != nil {
		e.t.Fatalf("replay %s: %v", ledger, err)
	}
	return out
}

func payload(ledger string, id int64, attempt int) []byte {
	return []byte(fmt.Sprintf("%s/%d/attempt-%d/%s", ledger, id, attempt, bytes.Repeat([]byte{'x'}, int(id%97))))
}

func TestFramesRoundTrip(t *testing.T) {
	var in []Entry
	for i := int64(0); i < 5; i++ {
		in = append(in, Entry{Ledger: "a", LedgerID: 3, EntryID: i, Data: payload("a", i, 0)})
		in = append(in, Entry{Ledger: "persistent://t/n/b-partition-1", LedgerID: 1, EntryID: 10 + i, Data: nil})
	}
	obj, ranges := encodeObject(in)
	if string(obj[:len(magic)]) != magic || len(ranges) != 2 {
		t.Fatalf("object header %q, %d ranges", obj[:8], len(ranges))
	}
	for _, r := range ranges {
		es, err := decodeFrames(obj[r.Off:r.Off+r.Len], r)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 5 || es[0].Ledger != r.Ledger || es[0].EntryID != r.First {
			t.Fatalf("range %+v decoded to %d entries", r, len(es))
		}
	}
	// Any flipped byte in a range is detected.
	r := ranges[0]
	for i := r.Off; i < r.Off+r.Len; i++ {
		b := bytes.Clone(obj[r.Off : r.Off+r.Len])
		b[i-r.Off] ^= 0x40
		if _, err := decodeFrames(b, r); err == nil {
			t.Fatalf("flipped byte %d not detected", i-r.Off)
		}
	}
}

func FuzzDecodeFrames(f *testing.F) {
	obj, ranges := encodeObject([]Entry{{Ledger: "l", LedgerID: 1, EntryID: 0, Data: []byte("abc")}, {Ledger: "l", LedgerID: 1, EntryID: 1}})
	f.Add(obj[ranges[0].Off:], int64(0), int64(1))
	f.Fuzz(func(t *testing.T, b []byte, first, last int64) {
		r := rng{Ledger: "l", LedgerID: 1, First: first, Last: last}
		es, err := decodeFrames(b, r)
		if err != nil {
			return
		}
		if int64(len(es)) != last-first+1 {
			t.Fatalf("decoded %d entries for range %d..%d", len(es), first, last)
		}
		for i, e := range es {
			if e.EntryID != first+int64(i) || e.Ledger != "l" {
				t.Fatalf("entry %d is %+v", i, e)
			}
		}
	})
}

// TestLogCommitsAndReplays: many ledgers appending concurrently share
// objects; every acknowledged entry replays exactly once, in order, intact.
func TestLogCommitsAndReplays(t *testing.T) {
	e := newEnv(t, false)
	l := e.open(Options{FlushInterval: 2 * time.Millisecond})
	const ledgers, perLedger = 40, 60
	var wg sync.WaitGroup
	var acked sync.Map
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine sync.WaitGroup
			for k := g; k < ledgers; k += 8 {
				name := fmt.Sprintf("persistent://public/default/t-partition-%d", k)
				e.own(name)
				for i := int64(0); i < perLedger; i++ {
					mine.Add(1)
					l.Append(Entry{Ledger: name, LedgerID: int64(k % 3), EntryID: i, Data: payload(name, i, 0)}, func(err error) {
						defer mine.Done()
						if err != nil {
							t.Errorf("%s/%d: %v", name, i, err)
							return
						}
						acked.Store(fmt.Sprint(name, i), true)
					})
				}
			}
			mine.Wait()
		}()
	}
	wg.Wait()
	l.Close()
	objects, _ := e.objs.List(context.Background(), "wal/")
	for k := 0; k < ledgers; k++ {
		name := fmt.Sprintf("persistent://public/default/t-partition-%d", k)
		got := e.replay(name)
		if len(got) != perLedger {
			t.Fatalf("%s: replayed %d entries, appended and acked %d", name, len(got), perLedger)
		}
		for i, en := range got {
			if en.EntryID != int64(i) || !bytes.Equal(en.Data, payload(name, int64(i), 0)) {
				t.Fatalf("%s: entry %d is %d %q", name, i, en.EntryID, en.Data)
			}
		}
	}
	t.Logf("%d entries of %d ledgers in %d objects", ledgers*perLedger, ledgers, len(objects))
	if len(objects) >= ledgers*perLedger/4 {
		t.Fatalf("%d objects for %d appends: flushes are not batching", len(objects), ledgers*perLedger)
	}
}

// TestLogFencesZombie: once a ledger's ownership moved, a writer that
// still believes it owns the ledger cannot commit to it: its appends fail
// with ErrFenced and never become visible, while its other ledgers in the
// same objects commit.
func TestLogFencesZombie(t *testing.T) {
	e := newEnv(t, false)
	l := e.open(Options{FlushInterval: time.Millisecond})
	defer l.Close()
	e.own("a")
	e.own("b")
	appendSync := func(ledger string, id int64) error {
		ch := make(chan error, 1)
		l.Append(Entry{Ledger: ledger, LedgerID: 0, EntryID: id, Data: payload(ledger, id, 0)}, func(err error) { ch <- err })
		return <-ch
	}
	for i := int64(0); i < 5; i++ {
		if err := appendSync("a", i); err != nil {
			t.Fatal(err)
		}
	}
	e.steal("a")
	// Both ledgers in one flush: b commits, a is fenced.
	cha, chb := make(chan error, 1), make(chan error, 1)
	l.Append(Entry{Ledger: "a", EntryID: 5, Data: payload("a", 5, 0)}, func(err error) { cha <- err })
	l.Append(Entry{Ledger: "b", EntryID: 0, Data: payload("b", 0, 0)}, func(err error) { chb <- err })
	if err := <-cha; !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie append: %v, want ErrFenced", err)
	}
	if err := <-chb; err != nil {
		t.Fatalf("owned ledger in the same flush: %v", err)
	}
	if got := e.replay("a"); len(got) != 5 {
		t.Fatalf("a replays %d entries; the 5 committed before the fence, not the zombie's", len(got))
	}
	if got := e.replay("b"); len(got) != 1 {
		t.Fatalf("b replays %d entries, want 1", len(got))
	}
	// A ledger the writer knows it does not own is refused before writing.
	e.owner.Delete("a")
	if err := appendSync("a", 5); !errors.Is(err, ErrFenced) {
		t.Fatalf("append to an unowned ledger: %v", err)
	}
}

// TestLogCrashesAndOutages is a Jepsen-style run: writers append to a set of
// ledgers while the test kills the writer (abort mid-flush), stops etcd, or
// stops the object store. After every fault a new writer (a new session,
// as the restarted broker or the next owner) learns what was committed by
// replaying, and continues from there. At the end every ledger's log must
// be contiguous from entry 0, contain every acknowledged entry with its
// data, no duplicate, and nothing whose append failed definitely
// (ErrStorage, ErrFenced).
func TestLogCrashesAndOutages(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 1))
	e := newEnv(t, true)
	ledgers := []string{"l0", "l1", "l2", "l3", "l4", "l5"}
	for _, name := range ledgers {
		e.own(name)
	}
	type outcome struct {
		data []byte
		err  error
	}
	var mu sync.Mutex
	outcomes := map[string]map[int64][]outcome{} // ledger -> entry -> every attempt
	record := func(ledger string, id int64, data []byte, err error) {
		mu.Lock()
		defer mu.Unlock()
		if outcomes[ledger] == nil {
			outcomes[ledger] = map[int64][]outcome{}
		}
		outcomes[ledger][id] = append(outcomes[ledger][id], outcome{data, err})
	}
	rounds := 6
	if testing.Short() {
		rounds = 3
	}
	for round := 0; round < rounds; round++ {
		// The new writer owns each ledger anew (a fresh owner record, as a
		// new owner's), then learns its committed length. Without the new
		// fence a killed writer's commit still in flight in etcd could land
		// after the replay, and the new writer would append over it.
		next := map[string]int64{}
		for _, name := range ledgers {
			if round > 0 {
				e.own(name)
			}
			next[name] = int64(len(e.replay(name)))
		}
		l := e.open(Options{FlushInterval: 2 * time.Millisecond, PutRetryFor: 500 * time.Millisecond, Writer: fmt.Sprintf("w%d", round)})
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, name := range ledgers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Up to 8 appends in flight, as a managed ledger pipelines
				// them; after the first failure no new append is made, but
				// those already in flight complete as they may.
				id := next[name]
				sem := make(chan struct{}, 8)
				var mine sync.WaitGroup
				var failedOnce sync.Once
				failed := make(chan struct{})
				defer mine.Wait()
				for {
					select {
					case <-stop:
						return
					case <-failed:
						return
					case sem <- struct{}{}:
					}
					data := payload(name, id, round)
					eid := id
					mine.Add(1)
					l.Append(Entry{Ledger: name, EntryID: eid, Data: data}, func(err error) {
						defer mine.Done()
						record(name, eid, data, err)
						if err != nil {
							// A managed ledger fails here and recovers from the
							// log: this writer stops appending to the ledger.
							failedOnce.Do(func() { close(failed) })
						}
						<-sem
					})
					id++
				}
			}()
		}
		time.Sleep(time.Duration(100+rnd.IntN(200)) * time.Millisecond)
		switch fault := rnd.IntN(3); fault {
		case 0:
			t.Logf("round %d: kill the writer", round)
			l.abort()
		case 1:
			t.Logf("round %d: etcd down for a while", round)
			e.etcd.Stop()
			time.Sleep(time.Duration(300+rnd.IntN(700)) * time.Millisecond)
			if err := e.etcd.Restart(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			l.abort()
		case 2:
			t.Logf("round %d: object store down for a while", round)
			e.s3.Stop()
			time.Sleep(time.Duration(300+rnd.IntN(700)) * time.Millisecond)
			if err := e.s3.Restart(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			l.abort()
		}
		close(stop)
		wg.Wait()
	}
	total, acked := 0, 0
	for _, name := range ledgers {
		got := e.replay(name)
		seen := map[int64]bool{}
		for i, en := range got {
			if en.EntryID != int64(i) {
				t.Fatalf("%s: position %d holds entry %d (gap or duplicate)", name, i, en.EntryID)
			}
			seen[en.EntryID] = true
			// The data committed must be that of an attempt not definitely failed.
			ok := false
			for _, o := range outcomes[name][en.EntryID] {
				if bytes.Equal(o.data, en.Data) {
					if errors.Is(o.err, ErrStorage) || errors.Is(o.err, ErrFenced) {
						t.Fatalf("%s/%d: committed although its append failed definitely: %v", name, en.EntryID, o.err)
					}
					ok = true
				}
			}
			if !ok {
				t.Fatalf("%s/%d: committed data %q was never appended", name, en.EntryID, en.Data)
			}
		}
		for id, os := range outcomes[name] {
			for _, o := range os {
				if o.err != nil {
					continue
				}
				acked++
				if !seen[id] || !bytes.Equal(got[id].Data, o.data) {
					t.Fatalf("%s/%d: acknowledged append lost", name, id)
				}
			}
		}
		total += len(got)
	}
	t.Logf("%d entries committed, %d acknowledged, over %d faults", total, acked, rounds)
}

// TestCollectReleasedAndOrphans: objects whose ranges are all released are
// deleted with their records, objects no record names are deleted once
// old, and replay skips what is released.
func TestCollectReleasedAndOrphans(t *testing.T) {
	e := newEnv(t, false)
	l := e.open(Options{FlushInterval: time.Millisecond})
	e.own("a")
	e.own("b")
	for i := int64(0); i < 20; i++ {
		ch := make(chan error, 2)
		l.Append(Entry{Ledger: "a", EntryID: i, Data: payload("a", i, 0)}, func(err error) { ch <- err })
		l.Append(Entry{Ledger: "b", EntryID: i, Data: payload("b", i, 0)}, func(err error) { ch <- err })
		if err := errors.Join(<-ch, <-ch); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	ctx := context.Background()
	before, _ := e.objs.List(ctx, "wal/")
	// An orphan: a flush that was stored but never committed.
	if err := e.objs.Put(ctx, fmt.Sprintf("wal/dead-1/%013d-%020d", time.Now().Add(-time.Hour).UnixMilli(), 1), []byte(magic)); err != nil {
		t.Fatal(err)
	}
	if err := e.read.Release(ctx, "a", Position{0, 19}); err != nil {
		t.Fatal(err)
	}
	// b is not released: no object may go yet except the orphan.
	n, err := e.read.Collect(ctx, "", 10*time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("collect with b unreleased: %d deleted, %v; want the orphan only", n, err)
	}
	if got := e.replay("a"); len(got) != 0 {
		t.Fatalf("a replays %d released entries", len(got))
	}
	if got := e.replay("b"); len(got) != 20 {
		t.Fatalf("b replays %d of 20 entries", len(got))
	}
	if err := e.read.Release(ctx, "b", Position{0, 9}); err != nil {
		t.Fatal(err)
	}
	if got := e.replay("b"); len(got) != 10 || got[0].EntryID != 10 {
		t.Fatalf("b after releasing 0..9 replays %d entries from %d", len(got), got[0].EntryID)
	}
	if err := e.read.Release(ctx, "b", Position{0, 5}); err != nil { // backwards: ignored
		t.Fatal(err)
	}
	if err := e.read.Release(ctx, "b", Position{1, -1}); err != nil {
		t.Fatal(err)
	}
	n, err = e.read.Collect(ctx, "", 10*time.Minute)
	if err != nil || n != len(before) {
		t.Fatalf("collect after releasing everything: %d deleted, %v; want %d", n, err, len(before))
	}
	after, _ := e.objs.List(ctx, "wal/")
	recs, _ := e.meta.Children(ctx, e.read.root()+"/wal")
	if len(after) != 0 || len(recs) != 0 {
		t.Fatalf("left %d objects and %d index records", len(after), len(recs))
	}
}

// gatedStore is the real object store with one PUT held and then failed
// on demand: the fault a flush meets when the store refuses it.
type gatedStore struct {
	objectstore.Store
	mu      sync.Mutex
	gate    chan error // when set, the next Put waits for an error (nil: go on) from it
	entered chan struct{}
}

func (g *gatedStore) Put(ctx context.Context, key string, data []byte) error {
	g.mu.Lock()
	gate := g.gate
	g.gate = nil
	g.mu.Unlock()
	if gate != nil {
		g.entered <- struct{}{}
		if err := <-gate; err != nil {
			return err
		}
	}
	return g.Store.Put(ctx, key, data)
}

// TestLogNoGapAfterFailedFlush: appends queued behind a flush that fails
// must not commit: they would follow entries that are not in the log. They
// fail too, and the ledger continues where the log really ends.
func TestLogNoGapAfterFailedFlush(t *testing.T) {
	e := newEnv(t, false)
	g := &gatedStore{Store: e.objs, entered: make(chan struct{}, 1)}
	e.objs = g
	l := e.open(Options{FlushInterval: time.Millisecond})
	defer l.Close()
	e.own("a")
	results := make(chan struct {
		id  int64
		err error
	}, 10)
	add := func(id int64) {
		l.Append(Entry{Ledger: "a", EntryID: id, Data: payload("a", id, 0)}, func(err error) {
			results <- struct {
				id  int64
				err error
			}{id, err}
		})
	}
	gate := make(chan error)
	g.mu.Lock()
	g.gate = gate
	g.mu.Unlock()
	add(0)
	<-g.entered // the flush of entry 0 is storing its object
	add(1)
	add(2)
	gate <- errors.New("injected: the store refused the object")
	for range 3 {
		r := <-results
		if r.err == nil {
			t.Fatalf("entry %d committed after entry 0's flush failed", r.id)
		}
	}
	if got := e.replay("a"); len(got) != 0 {
		t.Fatalf("replay holds %d entries after every flush failed", len(got))
	}
	// The ledger resumes at the log's real end, entry 0.
	add(0)
	if r := <-results; r.err != nil {
		t.Fatalf("append at the log's end after the failure: %v", r.err)
	}
	if got := e.replay("a"); len(got) != 1 {
		t.Fatalf("replay holds %d entries, want 1", len(got))
	}
}
