package managedledger

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/managedledger/objlog"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/metadata/etcdtest"
	"github.com/kopernik-io/kopernik/objectstore"
	"github.com/kopernik-io/kopernik/objectstore/s3test"
)

var (
	objmlRounds = flag.Int("objml.rounds", 3, "TestObjlogModel: rounds (random seeds)")
	objmlSeed   = flag.Uint64("objml.seed", 0, "TestObjlogModel: run one round with this seed")
	objmlOps    = flag.Int("objml.ops", 120, "TestObjlogModel: operations per round")
)

// clusterEnv is a real etcd and a real S3 server shared by the brokers
// (factories) of a test.
type clusterEnv struct {
	t    testing.TB
	meta *metadata.Etcd
	objs objectstore.Store
	// prefix keeps rounds apart in the one etcd and bucket.
	prefix string
}

func newClusterEnv(t testing.TB) *clusterEnv {
	etcd := etcdtest.Start(t)
	meta, err := metadata.OpenEtcd(etcd.Endpoints(), metadata.WithEtcdOpTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	s3 := s3test.Start(t)
	objs, err := objectstore.NewS3(context.Background(), objectstore.S3Options{
		Endpoint: s3.Endpoint, Bucket: s3.Bucket, AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey,
		MaxAttempts: 2, MaxBackoff: 20 * time.Millisecond, AttemptTimeout: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &clusterEnv{t: t, meta: meta, objs: objs}
}

// ownerPath is the test's ownership record of a ledger.
func (e *clusterEnv) ownerPath(ledger string) string {
	return "/" + e.prefix + "owners/" + escapeCursorName(ledger)
}

// setOwner makes broker the owner of ledger: a record with a fresh value.
func (e *clusterEnv) setOwner(ledger, broker string) {
	e.t.Helper()
	v := fmt.Sprintf(`{"owner":%q,"since":%d}`, broker, time.Now().UnixNano())
	if _, err := e.meta.Put(context.Background(), e.ownerPath(ledger), []byte(v), metadata.AnyVersion); err != nil {
		e.t.Fatal(err)
	}
}

// factory opens broker name's cluster factory: it may open a ledger only
// while the ownership record names it, and commits under that value.
func (e *clusterEnv) factory(name string, flush time.Duration) *Factory {
	e.t.Helper()
	f, err := NewFactory(FactoryOptions{
		Store: e.meta, RetentionInterval: -1, StorageRetryInterval: 20 * time.Millisecond,
		// Sealed ledgers are offloaded at once (cluster mode), racing the
		// moves: new owners rebuild from offloaded ledgers and the log.
		Offload: e.objs, OffloadPrefix: e.prefix + "tiered/", OffloadInterval: -1,
		ObjectLog: &ObjectLogOptions{
			Log: objlog.Options{Objects: e.objs, Meta: e.meta, Cluster: "c1" + e.prefix, Writer: name, Prefix: e.prefix, FlushInterval: flush},
			Fence: func(ctx context.Context, ledger string) (metadata.Cond, error) {
				rec, err := e.meta.Get(ctx, e.ownerPath(ledger))
				if err != nil {
					return metadata.Cond{}, err
				}
				if want := fmt.Sprintf(`{"owner":%q,`, name); len(rec.Value) < len(want) || string(rec.Value[:len(want)]) != want {
					return metadata.Cond{}, fmt.Errorf("owned by another: %s", rec.Value)
				}
				return metadata.Cond{Path: e.ownerPath(ledger), Value: rec.Value}, nil
			},
		},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

// objAppend is one append the model made, and what it was told.
type objAppend struct {
	ledger string
	data   string
	zombie bool // made after the instance's ledger moved elsewhere
	done   chan struct{}
	err    error
	entry  Entry
}

// TestObjlogModel drives three cluster factories (brokers) on one etcd and
// one S3 server with random appends, ownership moves, zombies (instances
// whose ledger moved, still appending), closes and rollovers, and checks
// after every move and at the end, from the current owner's rebuilt
// ledger: every acknowledged append is there exactly once, no zombie
// append and no failed append is, acknowledged positions and indexes are
// where they were acknowledged, and message indexes are continuous from 0.
func TestObjlogModel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and an S3 server")
	}
	env := newClusterEnv(t)
	rounds := *objmlRounds
	if *objmlSeed != 0 {
		rounds = 1
	}
	for r := 0; r < rounds; r++ {
		seed := *objmlSeed
		if seed == 0 {
			seed = rand.Uint64()
		}
		env.prefix = fmt.Sprintf("r%d/", r)
		t.Logf("round %d: -objml.seed %d", r, seed)
		runObjlogModel(t, env, seed)
		if t.Failed() {
			return
		}
	}
}

func runObjlogModel(t *testing.T, env *clusterEnv, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	ctx := context.Background()
	brokers := []string{"b0", "b1", "b2"}
	factories := map[string]*Factory{}
	for _, b := range brokers {
		factories[b] = env.factory(b, time.Duration(1+rng.IntN(4))*time.Millisecond)
	}
	defer func() {
		for _, f := range factories {
			f.Close()
		}
	}()
	// Names differ per round: ledger lists live in the one etcd.
	r := strings.TrimSuffix(env.prefix, "/")
	ledgers := []string{"t/ns/persistent/a-" + r, "t/ns/persistent/b-" + r + "-partition-0"}
	cfg := Config{MaxLedgerBytes: int64(512 + rng.IntN(4096))}
	owner := map[string]string{}
	// open instances by (broker, ledger); a zombie's ledger moved elsewhere.
	type inst struct {
		ml     *ManagedLedger
		zombie bool
	}
	open := map[[2]string]*inst{}
	var all []*objAppend
	var wg sync.WaitGroup
	seq := 0

	move := func(ledger, to string) {
		if old := owner[ledger]; old != "" {
			if in := open[[2]string{old, ledger}]; in != nil {
				in.zombie = true
			}
		}
		if in := open[[2]string{to, ledger}]; in != nil {
			// The broker unloads a ledger it lost before it may own it again.
			in.ml.Close()
			delete(open, [2]string{to, ledger})
		}
		env.setOwner(ledger, to)
		owner[ledger] = to
		ml, err := factories[to].Open(ctx, ledger, cfg)
		if err != nil {
			t.Fatalf("seed %d: %s opens %s: %v", seed, to, ledger, err)
		}
		open[[2]string{to, ledger}] = &inst{ml: ml}
	}
	for _, l := range ledgers {
		move(l, brokers[rng.IntN(len(brokers))])
	}
	appendTo := func(b, ledger string, in *inst) {
		seq++
		a := &objAppend{ledger: ledger, data: fmt.Sprintf("%s|%s|%d|%s", ledger, b, seq, make([]byte, rng.IntN(300))), zombie: in.zombie, done: make(chan struct{})}
		all = append(all, a)
		p, err := in.ml.AppendAsync(Entry{MsgCount: int32(1 + rng.IntN(3)), Data: []byte(a.data), Format: FormatKafka})
		if err != nil {
			a.err = err
			close(a.done)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.entry, a.err = p.Wait(ctx)
			close(a.done)
		}()
	}
	for op := 0; op < *objmlOps; op++ {
		ledger := ledgers[rng.IntN(len(ledgers))]
		switch k := rng.IntN(100); {
		case k < 55: // appends by the owner
			b := owner[ledger]
			for n := 1 + rng.IntN(8); n > 0; n-- {
				appendTo(b, ledger, open[[2]string{b, ledger}])
			}
		case k < 70: // appends by a zombie, if any
			for key, in := range open {
				if key[1] == ledger && in.zombie {
					appendTo(key[0], ledger, in)
				}
			}
		case k < 80: // ownership moves, appends maybe in flight
			to := brokers[rng.IntN(len(brokers))]
			if to == owner[ledger] {
				to = brokers[(rng.IntN(2)+1+indexOf(brokers, to))%len(brokers)]
			}
			move(ledger, to)
			checkObjlogLedger(t, seed, open[[2]string{to, ledger}].ml, all, ledger, false)
		case k < 85: // a zombie is unloaded
			for key, in := range open {
				if key[1] == ledger && in.zombie {
					in.ml.Close()
					delete(open, key)
				}
			}
		case k < 95: // wait for what is in flight
			wg.Wait()
		default: // the owner closes and reopens (a broker restart without a move)
			b := owner[ledger]
			open[[2]string{b, ledger}].ml.Close()
			delete(open, [2]string{b, ledger})
			env.setOwner(ledger, b)
			ml, err := factories[b].Open(ctx, ledger, cfg)
			if err != nil {
				t.Fatalf("seed %d: reopen %s on %s: %v", seed, ledger, b, err)
			}
			open[[2]string{b, ledger}] = &inst{ml: ml}
		}
		if t.Failed() {
			return
		}
	}
	wg.Wait()
	for _, l := range ledgers {
		// A final move: the new owner's rebuild holds every acknowledged
		// append, now that every outcome is known.
		to := brokers[(indexOf(brokers, owner[l])+1)%len(brokers)]
		move(l, to)
		checkObjlogLedger(t, seed, open[[2]string{to, l}].ml, all, l, true)
	}
	acked, failed, zombies := 0, 0, 0
	for _, a := range all {
		switch {
		case a.err == nil:
			acked++
		case a.zombie:
			zombies++
		default:
			failed++
		}
	}
	t.Logf("seed %d: %d appends acknowledged, %d failed, %d zombie appends refused", seed, acked, failed, zombies)
}

func indexOf(xs []string, x string) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	return -1
}

// checkObjlogLedger reads ledger from ml (just rebuilt by its new owner)
// and checks it against the appends: final means every outcome is known.
func checkObjlogLedger(t *testing.T, seed uint64, ml *ManagedLedger, all []*objAppend, ledger string, final bool) {
	t.Helper()
	ctx := context.Background()
	byData := map[string]*objAppend{}
	for _, a := range all {
		if a.ledger == ledger {
			byData[a.data] = a
		}
	}
	seen := map[string]bool{}
	next := int64(0)
	for {
		es, err := ml.ReadFromIndex(ctx, next, 100, 1<<20)
		if err != nil {
			t.Fatalf("seed %d: %s: read from %d: %v", seed, ledger, next, err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if e.FirstIndex != next {
				t.Fatalf("seed %d: %s: entry %v at index %d, want %d (indexes not continuous)", seed, ledger, e.Position, e.FirstIndex, next)
			}
			next = e.LastIndex() + 1
			d := string(e.Data)
			a := byData[d]
			switch {
			case a == nil:
				t.Fatalf("seed %d: %s: entry %v holds data nobody appended", seed, ledger, e.Position)
			case seen[d]:
				t.Fatalf("seed %d: %s: %q twice", seed, ledger, d[:20])
			case a.zombie:
				t.Fatalf("seed %d: %s: a zombie's append is visible at %v", seed, ledger, e.Position)
			}
			select {
			case <-a.done:
				if a.err != nil && !errors.Is(a.err, ErrClosed) {
					t.Fatalf("seed %d: %s: an append that failed (%v) is visible at %v", seed, ledger, a.err, e.Position)
				}
				if a.err == nil && (a.entry.FirstIndex != e.FirstIndex || a.entry.Position != e.Position) {
					t.Fatalf("seed %d: %s: acknowledged at %v index %d, found at %v index %d", seed, ledger, a.entry.Position, a.entry.FirstIndex, e.Position, e.FirstIndex)
				}
			default:
			}
			seen[d] = true
		}
		releaseEntries(es)
	}
	if next != ml.NextIndex() {
		t.Fatalf("seed %d: %s: read up to index %d, the ledger's next is %d", seed, ledger, next, ml.NextIndex())
	}
	for d, a := range byData {
		select {
		case <-a.done:
		default:
			if final {
				t.Fatalf("seed %d: %s: append outcome unknown at the end", seed, ledger)
			}
			continue
		}
		if a.err == nil && !seen[d] {
			t.Fatalf("seed %d: %s: acknowledged append at %v index %d lost", seed, ledger, a.entry.Position, a.entry.FirstIndex)
		}
	}
}

// TestClusterOffloadAndCollect: in cluster mode sealed ledgers are
// offloaded as soon as they are sealed and released from the object log,
// whose collection then deletes the small objects; a new owner rebuilds
// the ledger from the offloaded objects and the object log's rest, with
// every entry where it was.
func TestClusterOffloadAndCollect(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and an S3 server")
	}
	env := newClusterEnv(t)
	ctx := context.Background()
	open := func(name string) *Factory {
		f, err := NewFactory(FactoryOptions{
			Store: env.meta, RetentionInterval: -1, Offload: env.objs, OffloadPrefix: "tiered/", OffloadInterval: -1,
			ObjectLog: &ObjectLogOptions{
				Log:             objlog.Options{Objects: env.objs, Meta: env.meta, Cluster: "c1", Writer: name, Prefix: "log/"},
				CollectInterval: -1,
				Fence: func(ctx context.Context, ledger string) (metadata.Cond, error) {
					rec, err := env.meta.Get(ctx, env.ownerPath(ledger))
					if err != nil {
						return metadata.Cond{}, err
					}
					return metadata.Cond{Path: env.ownerPath(ledger), Value: rec.Value}, nil
				},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	const ledger = "t/ns/persistent/offloaded"
	env.setOwner(ledger, "b0")
	f0 := open("b0")
	ml, err := f0.Open(ctx, ledger, Config{MaxLedgerBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		if _, err := ml.Append(ctx, Entry{MsgCount: 1, Data: []byte(fmt.Sprintf("entry-%03d-%s", i, make([]byte, 100))), Format: FormatKafka}); err != nil {
			t.Fatal(err)
		}
	}
	// Every sealed ledger offloaded and released.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := ml.Stats()
		off := 0
		for _, l := range st.Ledgers[:len(st.Ledgers)-1] {
			if l.Offloaded {
				off++
			}
		}
		if off == len(st.Ledgers)-1 && off > 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sealed ledgers offloaded after 30s", off, len(st.Ledgers)-1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f0.bg.Wait() // the releases after the offloads
	before, err := env.objs.List(ctx, "log/wal/")
	if err != nil {
		t.Fatal(err)
	}
	deleted, err := f0.olRead.Collect(ctx, "log/", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := env.objs.List(ctx, "log/wal/")
	t.Logf("object log: %d objects, %d collected once offloaded, %d left", len(before), deleted, len(after))
	if deleted == 0 || len(after) >= len(before) {
		t.Fatalf("collection deleted %d objects (%d -> %d)", deleted, len(before), len(after))
	}
	// A new owner: everything readable, at the same indexes.
	env.setOwner(ledger, "b1")
	f1 := open("b1")
	ml1, err := f1.Open(ctx, ledger, Config{MaxLedgerBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for next < n {
		es, err := ml1.ReadFromIndex(ctx, next, 50, 1<<20)
		if err != nil {
			t.Fatalf("read from %d: %v", next, err)
		}
		if len(es) == 0 {
			t.Fatalf("nothing at index %d of %d", next, n)
		}
		for _, e := range es {
			if want := fmt.Sprintf("entry-%03d-", next); e.FirstIndex != next || !strings.HasPrefix(string(e.Data), want) {
				t.Fatalf("index %d: entry at %d holds %.10q", next, e.FirstIndex, e.Data)
			}
			next++
		}
	}
}

// TestClusterRollUnderLoad: appends that always have others in flight
// still roll the ledger over (the successor's appends wait for the
// rolling ledger's commits), every sealed ledger is offloaded, and a new
// owner reads every acknowledged entry at its index.
func TestClusterRollUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and an S3 server")
	}
	env := newClusterEnv(t)
	env.prefix = "roll/"
	ctx := context.Background()
	const ledger = "t/ns/persistent/rolling"
	env.setOwner(ledger, "b0")
	f0 := env.factory("b0", 2*time.Millisecond)
	defer f0.Close()
	cfg := Config{MaxLedgerBytes: 4096}
	ml, err := f0.Open(ctx, ledger, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const n, window = 600, 16
	pend := make(chan *Pending, window)
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		i := 0
		for p := range pend {
			e, err := p.Wait(ctx)
			if err != nil {
				errc <- fmt.Errorf("append %d: %w", i, err)
				for range pend {
				}
				return
			}
			if e.FirstIndex != int64(i) {
				errc <- fmt.Errorf("append %d acknowledged at index %d", i, e.FirstIndex)
			}
			i++
		}
	}()
	for i := range n {
		p, err := ml.AppendAsync(Entry{MsgCount: 1, Data: []byte(fmt.Sprintf("entry-%04d-%s", i, make([]byte, 200))), Format: FormatKafka})
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		pend <- p
	}
	close(pend)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	st := ml.Stats()
	t.Logf("%d entries in %d ledgers, %d rollovers with appends in flight", n, len(st.Ledgers), f0.olHeldRolls.Load())
	if f0.olHeldRolls.Load() == 0 {
		t.Fatal("no rollover happened with appends in flight")
	}
	if len(st.Ledgers) < 5 {
		t.Fatalf("%d ledgers for %d entries of ~220 bytes with MaxLedgerBytes 4096: no rollover under load", len(st.Ledgers), n)
	}
	f0.bg.Wait()
	env.setOwner(ledger, "b1")
	f1 := env.factory("b1", 2*time.Millisecond)
	defer f1.Close()
	ml1, err := f1.Open(ctx, ledger, cfg)
	if err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for next < n {
		es, err := ml1.ReadFromIndex(ctx, next, 100, 1<<20)
		if err != nil || len(es) == 0 {
			t.Fatalf("read from %d: %d entries, %v", next, len(es), err)
		}
		for _, e := range es {
			if want := fmt.Sprintf("entry-%04d-", next); e.FirstIndex != next || !strings.HasPrefix(string(e.Data), want) {
				t.Fatalf("index %d: entry at %d holds %.10q", next, e.FirstIndex, e.Data)
			}
			next++
		}
	}
	if ml1.NextIndex() != n {
		t.Fatalf("new owner's next index %d, want %d", ml1.NextIndex(), n)
	}
}

// TestClusterDeleteReleases: deleting a cluster ledger releases its object
// log entries (collected afterwards), and a ledger re-created under the
// name starts empty with higher ledger ids.
func TestClusterDeleteReleases(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and an S3 server")
	}
	env := newClusterEnv(t)
	env.prefix = "del/"
	ctx := context.Background()
	const ledger = "t/ns/persistent/deleted"
	env.setOwner(ledger, "b0")
	f := env.factory("b0", time.Millisecond)
	defer f.Close()
	ml, err := f.Open(ctx, ledger, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := ml.Append(ctx, Entry{MsgCount: 1, Data: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Delete(ctx, ledger); err != nil {
		t.Fatal(err)
	}
	n, err := f.olRead.Collect(ctx, env.prefix, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := env.objs.List(ctx, env.prefix+"wal/"); n == 0 || len(left) != 0 {
		t.Fatalf("after the delete, collection deleted %d objects and left %d", n, len(left))
	}
	ml, err = f.Open(ctx, ledger, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if ml.NextIndex() != 0 {
		t.Fatalf("re-created ledger starts at index %d", ml.NextIndex())
	}
	e, err := ml.Append(ctx, Entry{MsgCount: 1, Data: []byte("new")})
	if err != nil || e.FirstIndex != 0 || e.Position.LedgerID == 0 {
		t.Fatalf("first append of the re-created ledger: %+v, %v", e.Position, err)
	}
}

// TestClusterStaleInstanceKeepsOffloads: an instance whose ledger moved to
// another broker (a zombie: paused, then woken before it unloads) runs its
// orphan collection with its stale ledger list. It must not delete the
// objects of ledgers the new owner offloaded since; a third owner reads
// every entry. (Found by cmd/kopernik's TestClusterProcessPausedOwnerFenced:
// a woken broker deleted the offloaded ledgers of the partitions it had
// lost.)
func TestClusterStaleInstanceKeepsOffloads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and an S3 server")
	}
	env := newClusterEnv(t)
	env.prefix = "stale/"
	ctx := context.Background()
	const ledger = "t/ns/persistent/stale"
	cfg := Config{MaxLedgerBytes: 2048}
	appendN := func(ml *ManagedLedger, from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if _, err := ml.Append(ctx, Entry{MsgCount: 1, Data: []byte(fmt.Sprintf("entry-%03d-%s", i, make([]byte, 100))), Format: FormatKafka}); err != nil {
				t.Fatalf("append %d: %v", i, err)
			}
		}
	}
	env.setOwner(ledger, "b0")
	f0 := env.factory("b0", 2*time.Millisecond)
	defer f0.Close()
	zombie, err := f0.Open(ctx, ledger, cfg)
	if err != nil {
		t.Fatal(err)
	}
	appendN(zombie, 0, 5)

	env.setOwner(ledger, "b1")
	f1 := env.factory("b1", 2*time.Millisecond)
	ml1, err := f1.Open(ctx, ledger, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	appendN(ml1, 5, n-5)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := ml1.Stats()
		off := 0
		for _, l := range st.Ledgers[:len(st.Ledgers)-1] {
			if l.Offloaded {
				off++
			}
		}
		if off == len(st.Ledgers)-1 && off >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sealed ledgers offloaded after 30s", off, len(st.Ledgers)-1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f1.bg.Wait()
	before, err := env.objs.List(ctx, env.prefix+"tiered/")
	if err != nil {
		t.Fatal(err)
	}
	if err := zombie.CollectOrphanObjects(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := env.objs.List(ctx, env.prefix+"tiered/")
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("the stale instance's collection deleted %d of the new owner's %d offload objects", len(before)-len(after), len(before))
	}
	f1.Close()

	env.setOwner(ledger, "b2")
	f2 := env.factory("b2", 2*time.Millisecond)
	defer f2.Close()
	ml2, err := f2.Open(ctx, ledger, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for next := int64(0); next < n; {
		es, err := ml2.ReadFromIndex(ctx, next, 50, 1<<20)
		if err != nil {
			t.Fatalf("read from %d: %v", next, err)
		}
		if len(es) == 0 {
			t.Fatalf("nothing at index %d of %d", next, n)
		}
		for _, e := range es {
			if want := fmt.Sprintf("entry-%03d-", next); e.FirstIndex != next || !strings.HasPrefix(string(e.Data), want) {
				t.Fatalf("index %d: entry at %d holds %.10q", next, e.FirstIndex, e.Data)
			}
			next++
		}
	}
}
