package managedledger

// The model and the driver of TestModel (model_test.go).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/objectstore"
	"github.com/kopernik-io/kopernik/segment"
)

// ---- the model ----

// modelLedger is a run of the model's entries that the real ledger keeps
// in one ledger (learnt from the positions Append returns).
type modelLedger struct {
	id    int64
	first int // seq of its first entry
	n     int
}

// mCursorState is what a durable cursor persists (and what a restart
// restores): everything in seqs, the entry's number in model.all.
type mCursorState struct {
	md      int          // all[:md] are at or before the mark-delete position
	acked   map[int]bool // individually acknowledged entries, all >= md
	partial map[int]int  // batch acks: seq -> leading messages acknowledged
}

func (s mCursorState) clone() mCursorState {
	return mCursorState{md: s.md, acked: maps.Clone(s.acked), partial: maps.Clone(s.partial)}
}

type modelCursor struct {
	name string
	mCursorState
	read   Position     // next position a cursor read starts at
	dirty  bool         // changed since record was written
	record mCursorState // as last persisted
}

// model is the trivially correct managed ledger: a slice of every entry
// ever appended (in log order, never removed: positions stay comparable),
// the ledgers still present, and the logical truncation point.
type model struct {
	all         []Entry
	ledgers     []modelLedger
	initLedger  int64 // the ledger the first append goes to
	truncBefore int64
	next        int64
	cursors     map[string]*modelCursor
}

// first is the first retained message index (FirstIndex).
func (m *model) first() int64 {
	f := m.truncBefore
	if len(m.ledgers) > 0 {
		f = max(f, m.all[m.ledgers[0].first].FirstIndex)
	}
	return min(f, m.next)
}

// physStart is the seq of the first entry still in a present ledger.
func (m *model) physStart() int {
	if len(m.ledgers) == 0 {
		return len(m.all)
	}
	return m.ledgers[0].first
}

// firstSeq is the seq of the first retained entry (the one holding first),
// len(all) if none.
func (m *model) firstSeq() int {
	f := m.first()
	p := m.physStart()
	return p + sort.Search(len(m.all)-p, func(i int) bool { return m.all[p+i].LastIndex() >= f })
}

// holding returns the seq of the entry holding message index.
func (m *model) holding(index int64) int {
	return sort.Search(len(m.all), func(i int) bool { return m.all[i].LastIndex() >= index })
}

// atOrAfter is the seq of the first retained entry at or after position p.
func (m *model) atOrAfter(p Position) int {
	s := sort.Search(len(m.all), func(i int) bool { return !m.all[i].Position.Less(p) })
	return max(s, m.firstSeq())
}

// countUpTo is the number of entries ever appended at or before p: how a
// real mark-delete position maps to the model.
func (m *model) countUpTo(p Position) int {
	return sort.Search(len(m.all), func(i int) bool { return p.Less(m.all[i].Position) })
}

func (m *model) nextWritePos() Position {
	if len(m.ledgers) == 0 {
		return Position{LedgerID: m.initLedger}
	}
	l := m.ledgers[len(m.ledgers)-1]
	return Position{LedgerID: l.id, EntryID: int64(l.n)}
}

// nextPos is where a cursor whose mark-delete covers all[:md] reads next.
func (m *model) nextPos(md int) Position {
	if s := max(md, m.firstSeq()); s < len(m.all) {
		return m.all[s].Position
	}
	return m.nextWritePos()
}

// expect is the contract of a read starting at seq start: greedy, stop at
// the first entry that does not fit (the first one always fits when
// atLeastOne), never more than maxEntries.
func (m *model) expect(start, maxEntries, maxBytes int, atLeastOne bool) []int {
	var out []int
	size := 0
	for s := start; s < len(m.all) && len(out) < maxEntries; s++ {
		n := len(m.all[s].Data)
		if (len(out) > 0 || !atLeastOne) && size+n > maxBytes {
			break
		}
		size += n
		out = append(out, s)
	}
	return out
}

// compact is Cursor.compactLocked in seqs.
func (m *model) compact(c *modelCursor, mdMoved bool) {
	for len(c.acked) > 0 {
		s := max(c.md, m.firstSeq())
		if s >= len(m.all) || !c.acked[s] {
			break
		}
		delete(c.acked, s)
		c.md = s + 1
		mdMoved = true
	}
	if mdMoved {
		for s := range c.acked {
			if s < c.md {
				delete(c.acked, s)
			}
		}
		for s := range c.partial {
			if s < c.md {
				delete(c.partial, s)
			}
		}
	}
	if p := m.nextPos(c.md); c.read.Less(p) {
		c.read = p
	}
	c.dirty = true
}

// cursorNextIndex is Cursor.NextIndex.
func (m *model) cursorNextIndex(c *modelCursor) int64 {
	s := max(c.md, m.firstSeq())
	if s >= len(m.all) {
		return m.next
	}
	e := m.all[s]
	if k, ok := c.partial[s]; ok {
		return max(e.FirstIndex+int64(k), m.first())
	}
	return max(e.FirstIndex, m.first())
}

// setNextIndex is Cursor.SetNextIndex; false: out of range (no change).
func (m *model) setNextIndex(c *modelCursor, index int64) bool {
	if index < m.first() || index > m.next {
		return false
	}
	t, k := len(m.all), 0
	if index < m.next {
		t = m.holding(index)
		k = int(index - m.all[t].FirstIndex)
	}
	forward := t >= c.md
	c.md = t
	if !forward {
		clear(c.acked)
		clear(c.partial)
	}
	delete(c.partial, t)
	delete(c.acked, t)
	if k > 0 {
		c.partial[t] = k
	}
	if p := m.nextPos(c.md); !forward || c.read.Less(p) {
		c.read = p
	}
	m.compact(c, true)
	return true
}

// restore is a cursor as loadCursors rebuilds it from its record.
func (m *model) restore(c *modelCursor) {
	c.mCursorState = c.record.clone()
	c.read = m.nextPos(c.md)
	m.compact(c, true)
	c.dirty = false
}

func (m *model) flush(c *modelCursor) {
	if c.dirty {
		c.record = c.mCursorState.clone()
		c.dirty = false
	}
}

// ---- the driver ----

// modelParams are the per-round knobs; printed on failure.
type modelParams struct {
	MaxLedgerBytes int64
	CacheBytes     int64
	IndexInterval  int64
	Prealloc       int64
	RetentionTime  time.Duration
	RetentionBytes int64
	Sync           SyncMode
	// Tiered storage: block size, block cache, read priority.
	OffloadBlockSize  int
	OffloadCacheBytes int64
	ReadPriority      ReadPriority
	// JournalFileBytes: small, so that the journal rotates often.
	JournalFileBytes int64
	// MaxOpenFiles: often tiny, so that files are evicted and reopened
	// under every operation (-1: unbounded).
	MaxOpenFiles int
}

type modelRig struct {
	t       testing.TB
	v       modelVariant
	seed    uint64
	rng     *rand.Rand
	p       modelParams
	ctx     context.Context
	dir     string
	store   metadata.Store
	fs      segment.FS
	cfs     *crashFS // power-loss variant only
	f       *Factory
	ml      *ManagedLedger
	m       model
	history []string // ring of the last operations
	ops     int
	held    []heldRead // read results kept unreleased, re-checked later
	objects objectstore.Store
	prefix  string // this round's object names
}

// heldRead is a read result whose Data must stay valid until Release.
type heldRead struct {
	op      int
	entries []Entry
	seqs    []int
}

const modelName = "model/t-0"

const historyLen = 60

func pick[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

// runModelRound runs one round of *modelOps operations and returns their
// number; it fails t on the first divergence.
func runModelRound(t testing.TB, v modelVariant, seed uint64) int {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	r := &modelRig{t: t, v: v, seed: seed, rng: rng, ctx: context.Background(), store: metadata.NewMemory()}
	r.m.cursors = map[string]*modelCursor{}
	r.p = modelParams{
		MaxLedgerBytes: pick[int64](rng, 300, 1<<10, 4<<10, 16<<10, 128<<10),
		CacheBytes:     -1,
		IndexInterval:  pick[int64](rng, 64, 512, 4096),
		Prealloc:       -1,
		RetentionTime:  0,
		RetentionBytes: -1,
		Sync:           SyncAlways,
		// Blocks of a few entries up to many; a cache smaller than a
		// block keeps only the newest (lookups still work).
		OffloadBlockSize:  pick(rng, 200, 1<<10, 8<<10, 1<<20),
		OffloadCacheBytes: pick[int64](rng, 1, 4<<10, 64<<20),
		ReadPriority:      pick(rng, TieredFirst, LocalFirst),
		JournalFileBytes:  pick[int64](rng, 512, 4<<10, 64<<10),
		MaxOpenFiles:      pick(rng, -1, 1, 2, 3, 8),
	}
	r.prefix = fmt.Sprintf("round-%d/", seed)
	if v.objects != nil {
		r.objects = v.objects
	} else {
		dir, err := os.MkdirTemp("", "ml-model-objects-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		r.objects = &dirStore{root: dir}
	}
	if v.cache {
		r.p.CacheBytes = pick[int64](rng, 200, 2<<10, 16<<10, 64<<10, 1<<20)
	}
	switch x := rng.IntN(10); {
	case x < 2:
		r.p.RetentionTime, r.p.RetentionBytes = -1, pick[int64](rng, 1<<10, 8<<10, 64<<10)
	case x < 3:
		r.p.RetentionTime = -1
	}
	switch v.fs {
	case "mem":
		r.dir, r.fs = "/data", segment.NewMemFS() // a Dir: the entry cache is on
		if rng.IntN(3) == 0 {
			r.p.Prealloc = 8 << 10
		}
	case "crash":
		r.cfs = newCrashFS()
		r.dir, r.fs = "/data", r.cfs
		r.p.Prealloc = pick[int64](rng, -1, 8<<10)
	case "os":
		dir, err := os.MkdirTemp("", "ml-model-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		r.dir = dir
		// fsyncs are real here: fewer rollovers, and appends under
		// SyncInterval (visible at write(2)) half of the time.
		r.p.MaxLedgerBytes = max(r.p.MaxLedgerBytes, 4<<10)
		r.p.Sync = pick(rng, SyncAlways, SyncInterval)
	}
	r.start()
	defer func() {
		if r.f != nil {
			r.f.Close()
		}
	}()
	st := r.ml.Stats()
	r.m.initLedger = st.Ledgers[0].LedgerID
	for r.ops = 0; r.ops < *modelOps; r.ops++ {
		r.step()
		r.checkState()
	}
	return r.ops
}

func (r *modelRig) cfg() Config {
	return Config{MaxLedgerBytes: r.p.MaxLedgerBytes, Sync: r.p.Sync, SyncInterval: time.Hour,
		RetentionTime: r.p.RetentionTime, RetentionBytes: r.p.RetentionBytes,
		Offload: OffloadPolicy{ReadPriority: r.p.ReadPriority}}
}

// start opens a factory over r.fs/r.store and the managed ledger. No
// background passes: cursors persist only when the test says (so a crash
// restores a known record) and retention runs only as an operation.
func (r *modelRig) start() {
	f, err := NewFactory(FactoryOptions{
		Dir: r.dir, Store: r.store, FS: r.fs, Logger: quietLogger(),
		RetentionInterval: -1, CursorFlushInterval: time.Hour,
		IndexInterval: r.p.IndexInterval, Prealloc: r.p.Prealloc, CacheBytes: r.p.CacheBytes,
		Offload: r.objects, OffloadPrefix: r.prefix, OffloadInterval: -1,
		OffloadBlockSize: r.p.OffloadBlockSize, OffloadCacheBytes: r.p.OffloadCacheBytes,
		PerLedgerSync: r.v.perLedger, JournalFileBytes: r.p.JournalFileBytes, CheckpointInterval: -1,
		MaxOpenFiles: r.p.MaxOpenFiles,
	})
	if err != nil {
		r.fail("NewFactory: %v", err)
	}
	r.f = f
	ml, err := f.Open(r.ctx, modelName, r.cfg())
	if err != nil {
		r.fail("Open: %v", err)
	}
	r.ml = ml
}

func (r *modelRig) log(format string, args ...any) {
	s := fmt.Sprintf("%4d ", r.ops) + fmt.Sprintf(format, args...)
	if len(r.history) == historyLen {
		r.history = r.history[1:]
	}
	r.history = append(r.history, s)
}

// fail reports a divergence with everything needed to understand and
// reproduce it.
func (r *modelRig) fail(format string, args ...any) {
	r.t.Helper()
	msg := fmt.Sprintf(format, args...)
	extra := ""
	if !*modelEmpty {
		extra = " -ml.empty=false"
	}
	r.t.Fatalf("model divergence at op %d: %s\n\nvariant %s, seed %d, params %+v\nreproduce: go test ./managedledger -run 'TestModel/%s$' -ml.seed=%d -ml.ops=%d%s\nmodel: %d entries appended, next index %d, first index %d (first retained seq %d), ledgers %s\nlast %d operations (newest last):\n%s",
		r.ops, msg, r.v.name, r.seed, r.p, r.v.name, r.seed, *modelOps, extra,
		len(r.m.all), r.m.next, r.m.first(), r.m.firstSeq(), r.ledgerString(), len(r.history), strings.Join(r.history, "\n"))
}

func (r *modelRig) ledgerString() string {
	var b strings.Builder
	for _, l := range r.m.ledgers {
		fmt.Fprintf(&b, "[%d: seq %d..%d] ", l.id, l.first, l.first+l.n-1)
	}
	return b.String()
}

// step runs one random operation on both sides.
func (r *modelRig) step() {
	rng := r.rng
	type op struct {
		w  int
		fn func()
	}
	ops := []op{
		{30, r.opAppend},
		{4, r.opAppendBurst},
		{14, func() { r.opReadEntries(true) }},
		{6, func() { r.opReadEntries(false) }},
		{12, func() { r.opReadFromIndex(false) }},
		{12, func() { r.opReadFromIndex(true) }},
		{3, r.opPositionOf},
		{2, r.opTruncate},
		{3, r.opRetention},
		{3, r.opOpenCursor},
		{5, r.opMarkDelete},
		{4, r.opAckIndividual},
		{2, r.opSetNextIndex},
		{2, r.opSeek},
		{1, r.opRewind},
		{6, r.opCursorRead},
		{2, r.opFlushCursor},
		{1, r.opDeleteCursor},
		{3, r.opCheckHeld},
		{1, r.opRestart},
		{2, r.opOffload},
		{3, r.opCheckpoint},
	}
	if r.cfs != nil {
		ops = append(ops, op{1, r.opCrash})
	}
	total := 0
	for _, o := range ops {
		total += o.w
	}
	x := rng.IntN(total)
	for _, o := range ops {
		if x < o.w {
			o.fn()
			return
		}
		x -= o.w
	}
}

// ---- appends ----

func (r *modelRig) dataSize() int {
	switch x := r.rng.IntN(100); {
	case x < 2 && *modelEmpty:
		return 0
	case x < 25:
		return 1 + r.rng.IntN(32)
	case x < 55:
		return 33 + r.rng.IntN(480)
	case x < 80:
		return 513 + r.rng.IntN(3584)
	case x < 96:
		return 4<<10 + r.rng.IntN(16<<10)
	}
	return 20<<10 + r.rng.IntN(130<<10) // bigger than most read budgets
}

func (r *modelRig) opAppendBurst() {
	for n := 2 + r.rng.IntN(10); n > 0; n-- {
		r.opAppend()
	}
}

func (r *modelRig) opAppend() {
	rng := r.rng
	seq := len(r.m.all)
	data := make([]byte, r.dataSize())
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	copy(data, fmt.Sprintf("#%d#", seq)) // a mix-up of entries shows in the bytes
	msgs := int32(1)
	switch x := rng.IntN(10); {
	case x < 4:
		msgs = 1 + rng.Int32N(5)
	case x < 5:
		msgs = 1 + rng.Int32N(300)
	}
	in := Entry{
		Format: pick(rng, FormatKafka, FormatPulsar, FormatUnknown), MsgCount: msgs,
		MaxEventTime: pick(rng, 0, rng.Int64N(1<<41)),
		Producer:     pick(rng, "", "p", "producer-"+strings.Repeat("x", rng.IntN(40))),
		SeqFirst:     rng.Int64N(1 << 40), Data: data,
	}
	in.SeqLast = in.SeqFirst + int64(msgs) - 1
	var active *LedgerInfo
	if st := r.ml.Stats(); len(st.Ledgers) > 0 {
		active = &st.Ledgers[len(st.Ledgers)-1]
	}
	got, err := r.ml.Append(r.ctx, in)
	r.log("append seq %d: %d bytes, %d msgs -> %v index %d, %v", seq, len(data), msgs, got.Position, got.FirstIndex, err)
	if err != nil {
		r.fail("append: %v", err)
	}
	want := in
	want.Data = bytes.Clone(data)
	// The contract: Append does not retain the caller's slice. Scribble on
	// it so that an alias (in the cache, say) shows as wrong data later.
	for i := range data {
		data[i] ^= 0xa5
	}
	if got.FirstIndex != r.m.next {
		r.fail("append: first index %d, want %d", got.FirstIndex, r.m.next)
	}
	if n := len(r.m.all); n > 0 && got.PublishTime < r.m.all[n-1].PublishTime {
		r.fail("append: publish time %d before the previous %d", got.PublishTime, r.m.all[n-1].PublishTime)
	}
	wp := r.m.nextWritePos()
	full := active != nil && active.Entries > 0 && active.Bytes >= r.p.MaxLedgerBytes
	switch {
	case got.Position == wp && !full:
	case full && got.Position.LedgerID > wp.LedgerID && got.Position.EntryID == 0:
	default:
		r.fail("append: position %v, want %v (active ledger full: %v, %+v)", got.Position, wp, full, active)
	}
	want.Position, want.FirstIndex, want.PublishTime = got.Position, got.FirstIndex, got.PublishTime
	r.m.all = append(r.m.all, want)
	r.m.next += int64(msgs)
	if n := len(r.m.ledgers); n == 0 || r.m.ledgers[n-1].id != got.Position.LedgerID {
		r.m.ledgers = append(r.m.ledgers, modelLedger{id: got.Position.LedgerID, first: seq})
	}
	r.m.ledgers[len(r.m.ledgers)-1].n++
}

// ---- reads ----

// budget picks maxEntries and maxBytes for a read starting at seq start:
// tiny, around the first entry's size, around the size of a run of k
// entries (often crossing a ledger boundary), or huge.
func (r *modelRig) budget(start int) (maxEntries, maxBytes int) {
	rng := r.rng
	maxEntries = pick(rng, 1, 2, 3, 1+rng.IntN(10), 1+rng.IntN(100), 1000)
	if rng.IntN(40) == 0 {
		maxEntries = 0
	}
	sizeOf := func(k int) int {
		n := 0
		for s := start; s < min(start+k, len(r.m.all)); s++ {
			n += len(r.m.all[s].Data)
		}
		return n
	}
	switch x := rng.IntN(10); {
	case x < 2:
		maxBytes = rng.IntN(3)
	case x < 4:
		maxBytes = max(0, sizeOf(1)+rng.IntN(3)-1)
	case x < 8:
		k := 1 + rng.IntN(12)
		if len(r.m.ledgers) > 1 && rng.IntN(2) == 0 {
			// End the budget around the first boundary after start.
			for _, l := range r.m.ledgers {
				if l.first > start {
					k = l.first - start + rng.IntN(3)
					break
				}
			}
		}
		maxBytes = max(0, sizeOf(k)+rng.IntN(5)-2)
	case x < 9:
		maxBytes = rng.IntN(64 << 10)
	default:
		maxBytes = 1 << 30
	}
	return maxEntries, maxBytes
}

// randomPos picks a read position: existing entries (also deleted or
// hidden ones), just after them (possibly past the end of a ledger),
// ledger starts, and the extremes.
func (r *modelRig) randomPos() Position {
	rng := r.rng
	n := len(r.m.all)
	if n == 0 || rng.IntN(12) == 0 {
		return pick(rng, Earliest, Latest, Position{}, r.m.nextWritePos())
	}
	e := r.m.all[rng.IntN(n)].Position
	if rng.IntN(3) == 0 {
		e = r.m.all[max(0, n-1-rng.IntN(min(n, 8)))].Position // near the tail: cached
	}
	switch rng.IntN(6) {
	case 0:
		e.EntryID++
	case 1:
		e.EntryID = -1
	case 2:
		e.EntryID += 1 + rng.Int64N(1000)
	case 3:
		e = Position{LedgerID: e.LedgerID + 1}
	}
	return e
}

// randomIndex picks a message index: inside the retained range (entry
// starts, middles of batches), at its edges and outside.
func (r *modelRig) randomIndex() int64 {
	rng := r.rng
	first, next := r.m.first(), r.m.next
	switch x := rng.IntN(10); {
	case x < 1:
		return first - 1 - rng.Int64N(3)
	case x < 2:
		return next + rng.Int64N(3)
	case x < 3:
		return first
	}
	if fs := r.m.firstSeq(); fs < len(r.m.all) {
		s := fs + rng.IntN(len(r.m.all)-fs)
		if rng.IntN(3) == 0 {
			s = max(fs, len(r.m.all)-1-rng.IntN(8)) // near the tail: cached
		}
		e := r.m.all[s]
		return max(first, e.FirstIndex+rng.Int64N(int64(e.MsgCount)))
	}
	return next
}

// checkRead compares a read result with the model's expectation for a read
// starting at seq start.
func (r *modelRig) checkRead(what string, got []Entry, start, maxEntries, maxBytes int, atLeastOne bool) {
	want := r.m.expect(start, maxEntries, maxBytes, atLeastOne)
	r.log("%s -> %s (want %s)", what, r.seqString(got), seqRange(want))
	if len(got) > maxEntries {
		r.fail("%s: %d entries, more than maxEntries", what, len(got))
	}
	size := 0
	for i, e := range got {
		s := start + i
		if s >= len(r.m.all) {
			r.fail("%s: entry %d at %v: beyond the last entry (the run should end at seq %d)", what, i, e.Position, len(r.m.all)-1)
		}
		if diff := entryDiff(e, r.m.all[s]); diff != "" {
			where := "not the next entry of a gapless run"
			if i == 0 {
				where = "the read does not start at the entry asked for"
			}
			r.fail("%s: entry %d: %s: %s (got seq %s)", what, i, where, diff, r.seqOf(e))
		}
		size += len(e.Data)
	}
	if len(got) == 0 && len(want) > 0 && atLeastOne {
		r.fail("%s: empty, but entry seq %d exists and the first entry is always returned", what, start)
	}
	if size > maxBytes && !(atLeastOne && len(got) == 1) {
		r.fail("%s: %d bytes in %d entries exceed maxBytes %d", what, size, len(got), maxBytes)
	}
	if len(got) != len(want) {
		r.fail("%s: %d entries, the budget allows %d (a short read: the contract stops only before maxBytes would be exceeded); wanted %s",
			what, len(got), len(want), r.describe(want))
	}
	r.hold(got, start)
}

// hold keeps some results unreleased (their Data must stay valid) and
// releases the rest, part of it at once, to exercise pooled read buffers.
func (r *modelRig) hold(got []Entry, start int) {
	if len(got) == 0 {
		return
	}
	if r.rng.IntN(3) == 0 && len(r.held) < 8 {
		seqs := make([]int, len(got))
		for i := range seqs {
			seqs[i] = start + i
		}
		r.held = append(r.held, heldRead{op: r.ops, entries: got, seqs: seqs})
		return
	}
	for i := range got {
		if r.rng.IntN(4) != 0 {
			got[i].Release()
		}
	}
}

// opCheckHeld re-checks a held result and releases it.
func (r *modelRig) opCheckHeld() {
	if len(r.held) == 0 {
		return
	}
	i := r.rng.IntN(len(r.held))
	h := r.held[i]
	r.held = append(r.held[:i], r.held[i+1:]...)
	r.log("re-check the unreleased result of op %d", h.op)
	for j, e := range h.entries {
		if !bytes.Equal(e.Data, r.m.all[h.seqs[j]].Data) {
			r.fail("data of entry %v read at op %d changed before Release", e.Position, h.op)
		}
	}
	for j := range h.entries {
		h.entries[j].Release()
	}
}

func (r *modelRig) opReadEntries(atLeastOne bool) {
	from := r.randomPos()
	start := r.m.atOrAfter(from)
	maxEntries, maxBytes := r.budget(start)
	var got []Entry
	var err error
	name := "ReadEntries"
	if atLeastOne {
		got, err = r.ml.ReadEntries(r.ctx, from, maxEntries, maxBytes)
	} else {
		name = "readEntries(within)"
		got, err = r.ml.readEntries(context.Background(), from, maxEntries, maxBytes, false)
	}
	what := fmt.Sprintf("%s(from %v, %d entries, %d bytes)", name, from, maxEntries, maxBytes)
	if err != nil {
		r.log("%s -> %v", what, err)
		r.fail("%s: %v", what, err)
	}
	r.checkRead(what, got, start, maxEntries, maxBytes, atLeastOne)
}

func (r *modelRig) opReadFromIndex(within bool) {
	index := r.randomIndex()
	start := r.m.holding(index)
	maxEntries, maxBytes := r.budget(start)
	name := "ReadFromIndex"
	read := r.ml.ReadFromIndex
	if within {
		name, read = "ReadFromIndexWithin", r.ml.ReadFromIndexWithin
	}
	what := fmt.Sprintf("%s(%d, %d entries, %d bytes)", name, index, maxEntries, maxBytes)
	got, err := read(r.ctx, index, maxEntries, maxBytes)
	if index < r.m.first() || index > r.m.next {
		r.log("%s -> %d entries, %v (out of range)", what, len(got), err)
		if !errors.Is(err, ErrIndexOutOfRange) || len(got) > 0 {
			r.fail("%s: %d entries, %v; want ErrIndexOutOfRange (range [%d, %d])", what, len(got), err, r.m.first(), r.m.next)
		}
		return
	}
	if err != nil {
		r.log("%s -> %v", what, err)
		r.fail("%s: %v", what, err)
	}
	r.checkRead(what, got, start, maxEntries, maxBytes, !within)
}

func (r *modelRig) opPositionOf() {
	index := r.randomIndex()
	pos, err := r.ml.PositionOf(index)
	r.log("PositionOf(%d) -> %v %v", index, pos, err)
	if index < r.m.first() || index >= r.m.next {
		if !errors.Is(err, ErrIndexOutOfRange) {
			r.fail("PositionOf(%d): %v %v, want ErrIndexOutOfRange", index, pos, err)
		}
		return
	}
	if want := r.m.all[r.m.holding(index)].Position; err != nil || pos != want {
		r.fail("PositionOf(%d): %v %v, want %v", index, pos, err, want)
	}
}

// ---- truncation and retention ----

func (r *modelRig) opTruncate() {
	index := r.randomIndex()
	if r.rng.IntN(4) == 0 { // whole ledgers away
		index = r.m.first() + r.rng.Int64N(max(1, (r.m.next-r.m.first())/2+1))
	}
	err := r.ml.TruncateBefore(r.ctx, index)
	r.log("TruncateBefore(%d) -> %v", index, err)
	if index > r.m.next {
		if !errors.Is(err, ErrIndexOutOfRange) {
			r.fail("TruncateBefore(%d) beyond %d: %v, want ErrIndexOutOfRange", index, r.m.next, err)
		}
		return
	}
	if err != nil {
		r.fail("TruncateBefore(%d): %v", index, err)
	}
	m := &r.m
	if index <= m.first() {
		return
	}
	for _, c := range m.cursors {
		if m.cursorNextIndex(c) < index {
			m.setNextIndex(c, index)
		}
	}
	m.truncBefore = index
	for len(m.ledgers) > 1 && m.all[m.ledgers[1].first].FirstIndex <= index {
		m.ledgers = m.ledgers[1:]
	}
}

func (r *modelRig) opRetention() {
	m := &r.m
	st := r.ml.Stats() // ledger sizes: the model does not know the framing
	slowest := len(m.all)
	for _, c := range m.cursors {
		slowest = min(slowest, c.md)
	}
	if len(st.Ledgers) != len(m.ledgers) && len(m.ledgers) > 0 {
		r.fail("ledgers before retention: %+v, model %s", st.Ledgers, r.ledgerString())
	}
	var total int64
	for _, l := range st.Ledgers {
		total += l.Bytes
	}
	n, removed := 0, int64(0)
	for i := 0; i+1 < len(m.ledgers); i++ {
		l := m.ledgers[i]
		if slowest < l.first+l.n {
			break // not consumed by every durable cursor
		}
		expired := r.p.RetentionTime >= 0
		overSize := r.p.RetentionBytes > 0 && total-removed > r.p.RetentionBytes
		if !expired && !overSize {
			break
		}
		n++
		removed += st.Ledgers[i].Bytes
	}
	err := r.ml.ApplyRetention(r.ctx)
	r.log("ApplyRetention (slowest cursor covers seq <%d) -> %v; model deletes %d ledgers", slowest, err, n)
	if err != nil {
		r.fail("ApplyRetention: %v", err)
	}
	m.ledgers = m.ledgers[n:]
	r.checkLedgers("after ApplyRetention")
}

// ---- cursors ----

var modelCursorNames = []string{"g1", "g/2", "a b", "sub-3"}

// cursor returns a random model cursor with its real counterpart.
func (r *modelRig) cursor() (*modelCursor, *Cursor) {
	if len(r.m.cursors) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(r.m.cursors))
	for n := range r.m.cursors {
		names = append(names, n)
	}
	sort.Strings(names)
	mc := r.m.cursors[pick(r.rng, names...)]
	c, ok := r.ml.Cursor(mc.name)
	if !ok {
		r.fail("cursor %q missing", mc.name)
	}
	return mc, c
}

func (r *modelRig) opOpenCursor() {
	name := pick(r.rng, modelCursorNames...)
	start := pick(r.rng, InitialEarliest, InitialLatest)
	_, err := r.ml.OpenCursor(r.ctx, name, start)
	r.log("OpenCursor(%q, %v) -> %v", name, start, err)
	if err != nil {
		r.fail("OpenCursor: %v", err)
	}
	m := &r.m
	if _, ok := m.cursors[name]; ok {
		return
	}
	mc := &modelCursor{name: name, mCursorState: mCursorState{acked: map[int]bool{}, partial: map[int]int{}}}
	mc.md = len(m.all)
	if start == InitialEarliest {
		mc.md = m.firstSeq()
	}
	mc.read = m.nextPos(mc.md)
	mc.dirty = true
	m.flush(mc)
	m.cursors[name] = mc
}

// ackTarget picks an entry to acknowledge: mostly just after the
// mark-delete position (so that runs compact), sometimes anywhere.
func (r *modelRig) ackTarget(mc *modelCursor) int {
	n := len(r.m.all)
	if r.rng.IntN(4) == 0 {
		return r.rng.IntN(n)
	}
	s := max(mc.md, r.m.firstSeq())
	return min(n-1, s+r.rng.IntN(6))
}

func (r *modelRig) opMarkDelete() {
	mc, c := r.cursor()
	if mc == nil || len(r.m.all) == 0 {
		return
	}
	s := r.ackTarget(mc)
	pos := r.m.all[s].Position
	err := c.MarkDelete(r.ctx, pos)
	r.log("cursor %q MarkDelete(%v = seq %d) -> %v", mc.name, pos, s, err)
	if err != nil {
		r.fail("MarkDelete: %v", err)
	}
	if s+1 > mc.md {
		mc.md = s + 1
		r.m.compact(mc, true)
	}
	r.checkCursor(mc, c)
}

func (r *modelRig) opAckIndividual() {
	mc, c := r.cursor()
	if mc == nil || len(r.m.all) == 0 {
		return
	}
	var seqs []int
	var ps []Position
	for k := 1 + r.rng.IntN(3); k > 0; k-- {
		s := r.ackTarget(mc)
		seqs = append(seqs, s)
		ps = append(ps, r.m.all[s].Position)
	}
	err := c.Delete(r.ctx, ps...)
	r.log("cursor %q Delete(seqs %v) -> %v", mc.name, seqs, err)
	if err != nil {
		r.fail("Delete: %v", err)
	}
	for _, s := range seqs {
		if s >= mc.md {
			mc.acked[s] = true
			delete(mc.partial, s)
		}
	}
	r.m.compact(mc, false)
	r.checkCursor(mc, c)
}

func (r *modelRig) opSetNextIndex() {
	mc, c := r.cursor()
	if mc == nil {
		return
	}
	index := r.randomIndex()
	err := c.SetNextIndex(r.ctx, index)
	r.log("cursor %q SetNextIndex(%d) -> %v", mc.name, index, err)
	if ok := r.m.setNextIndex(mc, index); !ok {
		if !errors.Is(err, ErrIndexOutOfRange) {
			r.fail("SetNextIndex(%d) outside [%d, %d]: %v, want ErrIndexOutOfRange", index, r.m.first(), r.m.next, err)
		}
		return
	}
	if err != nil {
		r.fail("SetNextIndex(%d): %v", index, err)
	}
	r.checkCursor(mc, c)
}

func (r *modelRig) opSeek() {
	mc, c := r.cursor()
	if mc == nil {
		return
	}
	p := r.randomPos()
	c.Seek(p)
	mc.read = p
	r.log("cursor %q Seek(%v)", mc.name, p)
}

func (r *modelRig) opRewind() {
	mc, c := r.cursor()
	if mc == nil {
		return
	}
	c.Rewind()
	mc.read = r.m.nextPos(mc.md)
	r.log("cursor %q Rewind", mc.name)
	r.checkCursor(mc, c)
}

func (r *modelRig) opCursorRead() {
	mc, c := r.cursor()
	if mc == nil {
		return
	}
	from := mc.read
	start := r.m.atOrAfter(from)
	maxEntries, maxBytes := r.budget(start)
	got, err := c.ReadEntries(r.ctx, maxEntries, maxBytes)
	what := fmt.Sprintf("cursor %q ReadEntries(from %v, %d entries, %d bytes)", mc.name, from, maxEntries, maxBytes)
	run := r.m.expect(start, maxEntries, maxBytes, true)
	var want []int
	for _, s := range run {
		if s >= mc.md && !mc.acked[s] {
			want = append(want, s)
		}
	}
	r.log("%s -> %s %v (want %v of run %s)", what, r.seqString(got), err, want, seqRange(run))
	if err != nil {
		r.fail("%s: %v", what, err)
	}
	if len(got) != len(want) {
		r.fail("%s: %d entries, want %d (seqs %v: run %s without acknowledged ones)", what, len(got), len(want), want, seqRange(run))
	}
	for i, e := range got {
		if diff := entryDiff(e, r.m.all[want[i]]); diff != "" {
			r.fail("%s: entry %d, want seq %d: %s", what, i, want[i], diff)
		}
	}
	if len(run) > 0 {
		last := r.m.all[run[len(run)-1]].Position
		mc.read = Position{LedgerID: last.LedgerID, EntryID: last.EntryID + 1}
		if got := c.ReadPosition(); got != mc.read {
			r.fail("%s: read position %v after the read, want %v: the underlying read returned a different run than %s", what, got, mc.read, r.describe(run))
		}
	}
	r.checkCursor(mc, c)
	for i := range got {
		got[i].Release()
	}
}

func (r *modelRig) opFlushCursor() {
	mc, c := r.cursor()
	if mc == nil {
		return
	}
	err := c.Flush(r.ctx)
	r.log("cursor %q Flush -> %v", mc.name, err)
	if err != nil {
		r.fail("Flush: %v", err)
	}
	r.m.flush(mc)
}

func (r *modelRig) opDeleteCursor() {
	mc, _ := r.cursor()
	if mc == nil {
		return
	}
	err := r.ml.DeleteCursor(r.ctx, mc.name)
	r.log("DeleteCursor(%q) -> %v", mc.name, err)
	if err != nil {
		r.fail("DeleteCursor: %v", err)
	}
	delete(r.m.cursors, mc.name)
}

// ---- restarts ----

func (r *modelRig) releaseHeld() {
	for _, h := range r.held {
		for j := range h.entries {
			h.entries[j].Release()
		}
	}
	r.held = nil
}

// opCheckpoint runs the factory's checkpoint: segments fsynced, journal
// records released, released journal files deleted. Nothing observable
// changes; later power losses then find the segments durable up to here.
func (r *modelRig) opCheckpoint() {
	r.f.checkpoint()
	files := 0
	if r.f.journal != nil {
		files = r.f.journal.fileCount()
	}
	r.log("checkpoint -> %d journal files", files)
}

// modelReplayed sums the entries replayed from the journal (TestModel logs it).
var modelReplayed atomic.Int64

// opRestart closes the factory (cursors persisted) and reopens it.
func (r *modelRig) opRestart() {
	r.releaseHeld()
	err := r.f.Close()
	r.log("restart (close + reopen) -> %v", err)
	if err != nil {
		r.fail("Factory.Close: %v", err)
	}
	r.f = nil
	for _, mc := range r.m.cursors {
		r.m.flush(mc)
	}
	r.start()
	for _, mc := range r.m.cursors {
		r.m.restore(mc)
	}
	r.checkLedgers("after reopen")
	r.checkCursors()
}

// opCrash cuts power: the metadata store as of now, the files as the
// power-loss model leaves them (unsynced writes lost, kept or torn). Every
// append was acknowledged, so all entries must survive; cursors come back
// as last persisted.
func (r *modelRig) opCrash() {
	r.releaseHeld()
	store := copyStore(r.t, r.store)
	cfs := r.cfs.crash(r.rng)
	r.f.Close() // writes to the old store and files, both discarded
	r.store, r.cfs, r.fs = store, cfs, cfs
	r.log("power loss + reopen")
	r.start()
	modelReplayed.Add(r.f.replayed.Load())
	for _, mc := range r.m.cursors {
		r.m.restore(mc)
	}
	r.checkLedgers("after power loss")
	r.checkCursors()
}

// ---- state checks ----

// checkState compares the cheap observable state after every operation.
func (r *modelRig) checkState() {
	m := &r.m
	if got := r.ml.FirstIndex(); got != m.first() {
		r.fail("FirstIndex %d, want %d", got, m.first())
	}
	if got := r.ml.NextIndex(); got != m.next {
		r.fail("NextIndex %d, want %d", got, m.next)
	}
	if n := len(m.all); n > 0 {
		if got := r.ml.LastConfirmed(); got != m.all[n-1].Position {
			r.fail("LastConfirmed %v, want %v", got, m.all[n-1].Position)
		}
	}
	if r.ops%16 == 0 {
		r.checkLedgers("periodic")
		r.checkCursors()
	}
}

func (r *modelRig) checkLedgers(when string) {
	m := &r.m
	if len(m.ledgers) == 0 {
		return
	}
	st := r.ml.Stats()
	ok := len(st.Ledgers) == len(m.ledgers)
	for i := 0; ok && i < len(m.ledgers); i++ {
		ok = st.Ledgers[i].LedgerID == m.ledgers[i].id && st.Ledgers[i].Entries == int64(m.ledgers[i].n) &&
			st.Ledgers[i].FirstIndex == m.all[m.ledgers[i].first].FirstIndex
	}
	if !ok {
		var b strings.Builder
		for _, l := range st.Ledgers {
			fmt.Fprintf(&b, "[%d: %d entries from index %d] ", l.LedgerID, l.Entries, l.FirstIndex)
		}
		r.fail("%s: ledgers %s, model %s", when, b.String(), r.ledgerString())
	}
}

func (r *modelRig) checkCursors() {
	real := r.ml.Cursors()
	if len(real) != len(r.m.cursors) {
		var names []string
		for _, c := range real {
			names = append(names, c.Name())
		}
		r.fail("cursors %q, model has %d", names, len(r.m.cursors))
	}
	for _, c := range real {
		mc, ok := r.m.cursors[c.Name()]
		if !ok {
			r.fail("cursor %q not in the model", c.Name())
		}
		r.checkCursor(mc, c)
	}
}

func (r *modelRig) checkCursor(mc *modelCursor, c *Cursor) {
	m := &r.m
	md := c.MarkDeletePosition()
	if got := m.countUpTo(md); got != mc.md {
		r.fail("cursor %q: mark-delete %v covers %d entries, want %d", mc.name, md, got, mc.md)
	}
	if got := c.ReadPosition(); got != mc.read {
		r.fail("cursor %q: read position %v, want %v", mc.name, got, mc.read)
	}
	if got, want := c.NextIndex(), m.cursorNextIndex(mc); got != want {
		r.fail("cursor %q: NextIndex %d, want %d", mc.name, got, want)
	}
	for s := max(0, mc.md-2); s < min(len(m.all), mc.md+8); s++ {
		if got, want := c.IsAcked(m.all[s].Position), s < mc.md || mc.acked[s]; got != want {
			r.fail("cursor %q: IsAcked(seq %d at %v) %v, want %v", mc.name, s, m.all[s].Position, got, want)
		}
	}
}

// ---- formatting ----

// entryDiff describes how got differs from want ("" if equal).
func entryDiff(got, want Entry) string {
	var d []string
	if got.Position != want.Position {
		d = append(d, fmt.Sprintf("position %v, want %v", got.Position, want.Position))
	}
	if got.FirstIndex != want.FirstIndex || got.MsgCount != want.MsgCount {
		d = append(d, fmt.Sprintf("indexes %d+%d, want %d+%d", got.FirstIndex, got.MsgCount, want.FirstIndex, want.MsgCount))
	}
	if got.Format != want.Format || got.PublishTime != want.PublishTime || got.MaxEventTime != want.MaxEventTime ||
		got.Producer != want.Producer || got.SeqFirst != want.SeqFirst || got.SeqLast != want.SeqLast {
		d = append(d, fmt.Sprintf("metadata %v/%d/%d/%q/%d-%d, want %v/%d/%d/%q/%d-%d",
			got.Format, got.PublishTime, got.MaxEventTime, got.Producer, got.SeqFirst, got.SeqLast,
			want.Format, want.PublishTime, want.MaxEventTime, want.Producer, want.SeqFirst, want.SeqLast))
	}
	if !bytes.Equal(got.Data, want.Data) {
		d = append(d, fmt.Sprintf("data of %d bytes (%.12q), want %d bytes (%.12q)", len(got.Data), got.Data, len(want.Data), want.Data))
	}
	return strings.Join(d, "; ")
}

// seqOf names the model entry at e's position, for messages.
func (r *modelRig) seqOf(e Entry) string {
	s := sort.Search(len(r.m.all), func(i int) bool { return !r.m.all[i].Position.Less(e.Position) })
	if s < len(r.m.all) && r.m.all[s].Position == e.Position {
		return fmt.Sprint(s)
	}
	return "none"
}

// seqString summarises a result as model seqs: "[3..7]", "[3 4 9]".
func (r *modelRig) seqString(es []Entry) string {
	seqs := make([]string, len(es))
	contiguous := true
	for i, e := range es {
		seqs[i] = r.seqOf(e)
		if i > 0 && seqs[i] != fmt.Sprint(atoiOr(seqs[i-1])+1) {
			contiguous = false
		}
	}
	switch {
	case len(es) == 0:
		return "[]"
	case contiguous && len(es) > 2:
		return fmt.Sprintf("[%s..%s]", seqs[0], seqs[len(seqs)-1])
	}
	return "[" + strings.Join(seqs, " ") + "]"
}

func atoiOr(s string) int {
	n := 0
	if _, err := fmt.Sscan(s, &n); err != nil {
		return -2
	}
	return n
}

func seqRange(seqs []int) string {
	switch len(seqs) {
	case 0:
		return "[]"
	case 1:
		return fmt.Sprintf("[%d]", seqs[0])
	}
	return fmt.Sprintf("[%d..%d]", seqs[0], seqs[len(seqs)-1])
}

// describe lists entries by seq with position and size, for messages.
func (r *modelRig) describe(seqs []int) string {
	var b strings.Builder
	for _, s := range seqs {
		e := r.m.all[s]
		fmt.Fprintf(&b, "seq %d at %v (%d bytes); ", s, e.Position, len(e.Data))
	}
	return b.String()
}
