package compact_test

// The model test: random keyed records (updates, tombstones, keyless
// records, gzip batches, Pulsar batches, aborted and committed
// transactions) appended to a
// real managed ledger, compacted at random points with random tombstone
// retention, with power cuts injected at every step of a compaction (each
// file write, sync, directory sync, remove and the metadata put, which may
// fail before or after it applies). After every compaction and every cut
// the reopened view is checked against a trivially correct model:
//   - the view is the old one or the new one, never a mix (a cut view that
//     kept the old generation is byte-for-byte the old one);
//   - below the cleaned point every key's latest value is present at its
//     offset (a latest tombstone may be missing only once it was older
//     than a delete-retention horizon some compaction used);
//   - every kept record has the offset, key and value it had in the log,
//     and is its key's latest below the cleaned point (nothing superseded,
//     aborted or keyless survives);
//   - the raw log is untouched, and no orphan file is left.
// The seed is printed on failure; KOPERNIK_SEED reruns one.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/convert"
	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/managedledger/compact"
	"github.com/kopernik-io/kopernik/metadata"
)

type modelRec struct {
	rec
	publish int64
	control bool
	aborted bool
}

type model struct {
	recs    map[int64]modelRec
	entries map[int64][]byte // first index -> data as appended
	spans   map[int64]int32
	next    int64
	// horizon is the latest tombstone horizon any compaction attempt used.
	horizon int64
	aborted map[int64]bool
}

func TestCompactModel(t *testing.T) {
	seeds := 24
	if testing.Short() {
		seeds = 6
	}
	if s := os.Getenv("KOPERNIK_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		runModel(t, seed)
		return
	}
	base := uint64(time.Now().UnixNano())
	for i := range seeds {
		seed := base + uint64(i)
		if !t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, seed) }) {
			t.Fatalf("failing seed %d (rerun with KOPERNIK_SEED=%d)", seed, seed)
		}
	}
}

const ledgerName = "persistent/t/ns/topic-partition-0"

func runModel(t *testing.T, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	store := metadata.NewMemory()
	ml := newLedger(t, store, ledgerName)
	m := &model{recs: map[int64]modelRec{}, entries: map[int64][]byte{}, spans: map[int64]int32{}, horizon: math.MinInt64, aborted: map[int64]bool{}}
	pfs := newPowerFS()
	flaky := &flakyStore{Store: store, fs: pfs}
	open := func() *compact.Compactor {
		c, err := compact.New(compact.Options{Dir: "/views", FS: pfs, Store: flaky, Codec: convert.CompactionCodec{}, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := open()
	defer func() { c.Close() }()
	nkeys := 1 + rng.IntN(24)
	pid := int64(100)
	steps := 40 + rng.IntN(60)
	var keptOld, tookNew, compactions int
	defer func() {
		t.Logf("%d compactions; after them %d views kept the old generation, %d took the new", compactions, keptOld, tookNew)
	}()
	for step := range steps {
		switch r := rng.IntN(100); {
		case r < 65:
			n := 1 + rng.IntN(8)
			recs := make([]rec, n)
			for i := range recs {
				if rng.IntN(12) > 0 {
					recs[i].key = []byte(fmt.Sprintf("k%d", rng.IntN(nkeys)))
				}
				if rng.IntN(5) > 0 {
					recs[i].value = []byte(fmt.Sprintf("v%d-%d-%d", step, i, rng.Uint32()))
				}
			}
			txn := rng.IntN(6) == 0
			if txn {
				pid++
				m.aborted[pid] = rng.IntN(2) == 0
			}
			if !txn && rng.IntN(5) == 0 {
				appendPulsar(t, ml, m, recs)
				break
			}
			appendEntry(t, ml, m, recs, kafkaBatch(recs, rng.IntN(3) == 0, txn, false, pid), false, txn && m.aborted[pid])
			if txn {
				appendEntry(t, ml, m, []rec{{key: []byte{0, 0, 0, 1}, value: []byte{0, 0, 0, 0, 0, 0}}},
					kafkaBatch([]rec{{key: []byte{0, 0, 0, 1}, value: []byte{0, 0, 0, 0, 0, 0}}}, false, false, true, pid), true, false)
			}
		default:
			before := snapshot(t, c)
			upTo := boundary(rng, m)
			p := compact.Params{UpTo: upTo, Now: time.Now().Add(time.Duration(rng.IntN(3)) * time.Second), DeleteRetention: -1,
				Aborted: func(pid, _ int64) bool { return m.aborted[pid] }}
			switch rng.IntN(3) {
			case 0:
				p.DeleteRetention = 0
			case 1:
				p.DeleteRetention = time.Duration(rng.IntN(2000)) * time.Millisecond
			}
			if p.DeleteRetention >= 0 {
				m.horizon = max(m.horizon, p.Now.UnixMilli()-p.DeleteRetention.Milliseconds())
			}
			cut := rng.IntN(2) == 0
			if cut {
				pfs.mu.Lock()
				pfs.failAt = pfs.ops + 1 + rng.IntN(12)
				pfs.mu.Unlock()
				flaky.after = rng.IntN(2) == 0
			}
			res, err := c.Compact(ctx, ledgerName, ml, p)
			if err != nil && !cut {
				t.Fatalf("step %d: compact up to %d: %v", step, upTo, err)
			}
			if err != nil && !errors.Is(err, errPowerCut) && !errors.Is(err, metadata.ErrUnavailable) {
				t.Fatalf("step %d: compact failed with %v, not the injected cut", step, err)
			}
			if cut || rng.IntN(4) == 0 {
				// Power cut (during or after the compaction): lose the
				// unsynced writes and reopen on what survived.
				c.Close()
				pfs.mu.Lock()
				pfs.failAt = 0
				pfs.mu.Unlock()
				pfs = pfs.lose(rng)
				flaky = &flakyStore{Store: store, fs: pfs}
				c = open()
			}
			after := snapshot(t, c)
			compactions++
			switch {
			case after.gen == before.gen:
				keptOld++
				if !after.equal(before) {
					t.Fatalf("step %d: generation %d kept but its view changed", step, after.gen)
				}
				if err == nil && res.Compacted {
					t.Fatalf("step %d: compaction reported generation %d published, the store holds %d", step, res.Generation, after.gen)
				}
			case after.gen == before.gen+1:
				tookNew++
				if after.cleaned < before.cleaned {
					t.Fatalf("step %d: cleaned point went back from %d to %d", step, before.cleaned, after.cleaned)
				}
			default:
				t.Fatalf("step %d: generation %d after %d", step, after.gen, before.gen)
			}
			check(t, step, c, ml, m, after)
			if names := pfs.names("/views/"); (after.gen == 0 && len(names) != 0) || len(names) > 1 {
				t.Fatalf("step %d: files left: %v (generation %d)", step, names, after.gen)
			}
		}
	}
}

func appendEntry(t *testing.T, ml *managedledger.ManagedLedger, m *model, recs []rec, data []byte, control, aborted bool) {
	t.Helper()
	e, err := ml.Append(context.Background(), managedledger.Entry{Format: managedledger.FormatKafka, MsgCount: int32(len(recs)), Data: data})
	if err != nil {
		t.Fatal(err)
	}
	m.entries[e.FirstIndex] = data
	m.spans[e.FirstIndex] = int32(len(recs))
	for i, r := range recs {
		m.recs[e.FirstIndex+int64(i)] = modelRec{rec: r, publish: e.PublishTime, control: control, aborted: aborted}
	}
	m.next = e.LastIndex() + 1
}

// appendPulsar appends recs as a Pulsar batch (compaction rewrites a
// partly kept one as a Kafka batch).
func appendPulsar(t *testing.T, ml *managedledger.ManagedLedger, m *model, recs []rec) {
	t.Helper()
	data := pulsarBatch(t, recs)
	e, err := ml.Append(context.Background(), managedledger.Entry{Format: managedledger.FormatPulsar, MsgCount: int32(len(recs)), Data: data})
	if err != nil {
		t.Fatal(err)
	}
	m.entries[e.FirstIndex] = data
	m.spans[e.FirstIndex] = int32(len(recs))
	for i, r := range recs {
		if r.value != nil && len(r.value) == 0 {
			r.value = []byte{}
		}
		m.recs[e.FirstIndex+int64(i)] = modelRec{rec: r, publish: e.PublishTime}
	}
	m.next = e.LastIndex() + 1
}

// boundary picks an entry boundary in [0, next] (or beyond, sometimes).
func boundary(rng *rand.Rand, m *model) int64 {
	if m.next == 0 || rng.IntN(4) == 0 {
		return m.next
	}
	var firsts []int64
	for f := range m.entries {
		firsts = append(firsts, f)
	}
	return firsts[rng.IntN(len(firsts))]
}

type viewSnap struct {
	gen, cleaned int64
	recs         map[int64]rec
	control      map[int64]bool
	raw          []managedledger.Entry
}

func (a viewSnap) equal(b viewSnap) bool {
	if a.gen != b.gen || a.cleaned != b.cleaned || len(a.recs) != len(b.recs) || len(a.raw) != len(b.raw) {
		return false
	}
	for o, r := range a.recs {
		if q, ok := b.recs[o]; !ok || !bytes.Equal(q.key, r.key) || !bytes.Equal(q.value, r.value) || (q.value == nil) != (r.value == nil) {
			return false
		}
	}
	for i := range a.raw {
		x, y := a.raw[i], b.raw[i]
		if x.FirstIndex != y.FirstIndex || x.MsgCount != y.MsgCount || x.Position != y.Position || !bytes.Equal(x.Data, y.Data) {
			return false
		}
	}
	return true
}

// snapshot reads the whole view, a few entries at a time.
func snapshot(t *testing.T, c *compact.Compactor) viewSnap {
	t.Helper()
	ctx := context.Background()
	info, ok, err := c.Info(ctx, ledgerName)
	if err != nil {
		t.Fatal(err)
	}
	s := viewSnap{recs: map[int64]rec{}, control: map[int64]bool{}}
	if !ok {
		return s
	}
	s.gen, s.cleaned = info.Generation, info.Cleaned
	prev := int64(-1)
	for i := int64(0); ; {
		es, cleaned, err := c.Read(ctx, ledgerName, i, 3, 200)
		if err != nil {
			t.Fatal(err)
		}
		if cleaned != s.cleaned {
			t.Fatalf("read says cleaned %d, info %d", cleaned, s.cleaned)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if e.FirstIndex <= prev || e.LastIndex() >= s.cleaned {
				t.Fatalf("view entry [%d,%d] after %d, cleaned %d", e.FirstIndex, e.LastIndex(), prev, s.cleaned)
			}
			if e.LastIndex() < i {
				t.Fatalf("read from %d returned entry [%d,%d]", i, e.FirstIndex, e.LastIndex())
			}
			prev = e.LastIndex()
			s.raw = append(s.raw, e)
			data := e.Data
			if e.Format == managedledger.FormatPulsar {
				// Kept whole: read it as Kafka readers get it.
				var err error
				if data, err = convert.PulsarToKafka(&e); err != nil {
					t.Fatalf("view entry at %d: %v", e.FirstIndex, err)
				}
			}
			recs, control := readBatch(t, data, e.FirstIndex, e.MsgCount)
			for o, r := range recs {
				s.recs[o], s.control[o] = r, control
			}
		}
		i = prev + 1
	}
	if int64(len(s.raw)) != info.Entries {
		t.Fatalf("view holds %d entries, info says %d", len(s.raw), info.Entries)
	}
	return s
}

func check(t *testing.T, step int, c *compact.Compactor, ml *managedledger.ManagedLedger, m *model, s viewSnap) {
	t.Helper()
	latest := map[string]int64{}
	for o := int64(0); o < s.cleaned; o++ {
		r, ok := m.recs[o]
		if ok && r.key != nil && !r.control && !r.aborted {
			latest[string(r.key)] = o
		}
	}
	for k, o := range latest {
		want := m.recs[o]
		got, ok := s.recs[o]
		switch {
		case ok && !bytes.Equal(got.value, want.value):
			t.Fatalf("step %d: key %q at %d holds %q, want %q", step, k, o, got.value, want.value)
		case ok:
		case want.value != nil:
			t.Fatalf("step %d: key %q lost its latest value %q at %d (cleaned %d)", step, k, want.value, o, s.cleaned)
		case want.publish >= m.horizon:
			t.Fatalf("step %d: key %q lost its tombstone at %d before any horizon passed it", step, k, o)
		}
	}
	for o, r := range s.recs {
		want, ok := m.recs[o]
		if !ok || !bytes.Equal(r.key, want.key) || !bytes.Equal(r.value, want.value) || (r.value == nil) != (want.value == nil) {
			t.Fatalf("step %d: view record at %d (%q=%q) is not the log's (%q=%q)", step, o, r.key, r.value, want.key, want.value)
		}
		if s.control[o] != want.control {
			t.Fatalf("step %d: record at %d control %v, log says %v", step, o, s.control[o], want.control)
		}
		if want.control {
			continue
		}
		if latest[string(r.key)] != o || r.key == nil || want.aborted {
			t.Fatalf("step %d: view keeps record at %d (key %q) that is not its key's latest below %d", step, o, r.key, s.cleaned)
		}
	}
	for _, e := range s.raw {
		if m.spans[e.FirstIndex] != e.MsgCount {
			t.Fatalf("step %d: view entry at %d spans %d, the log's %d", step, e.FirstIndex, e.MsgCount, m.spans[e.FirstIndex])
		}
	}
	// The raw log is untouched.
	for i := int64(0); i < m.next; {
		es, err := ml.ReadFromIndex(context.Background(), i, 64, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if !bytes.Equal(e.Data, m.entries[e.FirstIndex]) {
				t.Fatalf("step %d: raw entry at %d changed", step, e.FirstIndex)
			}
			i = e.LastIndex() + 1
		}
	}
	_ = filepath.Join
}
