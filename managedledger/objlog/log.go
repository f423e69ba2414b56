package objlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/objectstore"
)

// Meta is what the log needs of the metadata store: records and
// multi-record transactions (the etcd store).
type Meta interface {
	metadata.Store
	metadata.Transactor
}

// Options configure a Log.
type Options struct {
	Objects objectstore.Store
	Meta    Meta
	// Cluster names the index records' root (/objlog/<Cluster>).
	Cluster string
	// Writer is this broker's name (stable; a random session id is added).
	Writer string
	// Prefix is prepended to every object key (e.g. "cluster1/").
	Prefix string
	// FlushInterval is how long the first pending append waits for others
	// to join its object (default 5ms); FlushBytes flushes at once when
	// that much is pending (default 4 MiB). One flush runs at a time; what
	// arrives meanwhile goes into the next.
	FlushInterval time.Duration
	FlushBytes    int
	// MaxInflight is how many flushes may be storing their objects at
	// once (default 4); their commits still happen one at a time, in
	// order.
	MaxInflight int
	// PutRetryFor bounds how long a failing PUT is retried before the
	// flush's appends fail (default 10s).
	PutRetryFor time.Duration
	// Fence returns the condition under which this broker may commit to
	// ledger (its ownership record, by value); ok false fails the
	// ledger's appends with ErrFenced. Nil: no fencing (single writer).
	Fence func(ledger string) (cond metadata.Cond, ok bool)
	// OrphanAge is the age after which Collect deletes an object no index
	// record names (default 10 minutes); a commit is given up (its appends
	// fail, nothing committed) once its object is half that old, so that
	// a record never names an object Collect may have deleted. Every
	// broker of a cluster must use the same value.
	OrphanAge time.Duration
	Logger    *slog.Logger
}

// Errors of Append.
var (
	// ErrFenced: this broker does not own the ledger (any more).
	ErrFenced = errors.New("objlog: ledger fenced: ownership moved")
	// ErrClosed: the log was closed before the append was committed.
	ErrClosed = errors.New("objlog: closed")
	// ErrStorage: the object could not be stored; nothing was committed.
	ErrStorage = errors.New("objlog: object store write failed")
)

// DefaultOrphanAge is Options.OrphanAge's default.
const DefaultOrphanAge = 10 * time.Minute

// maxFencesPerTxn keeps a commit inside etcd's default --max-txn-ops
// (128): one compare per fence plus the index record's own.
const maxFencesPerTxn = 120

// fence is a ledger's commit condition in one flush.
type fence struct {
	cond metadata.Cond
	ok   bool
}

type pending struct {
	e    Entry
	done func(error)
}

// Log is one broker's write path. Append is safe for concurrent use; the
// entries of one ledger must be appended in entry order.
type Log struct {
	opts    Options
	root    string // /objlog/<cluster>
	session string // <writer>-<random>
	log     *slog.Logger

	mu      sync.Mutex
	queue   []pending
	bytes   int
	first   time.Time // when the oldest queued append arrived
	wake    chan struct{}
	closed  bool
	aborted bool
	seq     int64

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// Open starts a log writer.
func Open(opts Options) (*Log, error) {
	if opts.Objects == nil || opts.Meta == nil || opts.Cluster == "" || opts.Writer == "" {
		return nil, errors.New("objlog: Objects, Meta, Cluster and Writer are required")
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 5 * time.Millisecond
	}
	if opts.FlushBytes <= 0 {
		opts.FlushBytes = 4 << 20
	}
	if opts.MaxInflight <= 0 {
		opts.MaxInflight = 4
	}
	if opts.PutRetryFor <= 0 {
		opts.PutRetryFor = 10 * time.Second
	}
	if opts.OrphanAge <= 0 {
		opts.OrphanAge = DefaultOrphanAge
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, err
	}
	l := &Log{
		opts:    opts,
		root:    metadata.Join("objlog", segment(opts.Cluster)),
		session: segment(opts.Writer) + "-" + hex.EncodeToString(r[:]),
		log:     opts.Logger,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.run()
	return l, nil
}

// Append queues e; done is called once, from the log's goroutine, with nil
// when e is committed (durable in the object store, recorded in etcd,
// visible to Replay), or with why not. done must not block.
func (l *Log) Append(e Entry, done func(error)) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		done(ErrClosed)
		return
	}
	if len(l.queue) == 0 {
		l.first = time.Now()
	}
	l.queue = append(l.queue, pending{e: e, done: done})
	l.bytes += len(e.Data) + len(e.Ledger) + 24
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Close commits what is queued, then stops. Later appends fail with
// ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-l.done
	l.cancel()
	return nil
}

// abort stops at once, as a killed broker: queued appends fail with
// ErrClosed, a flush in progress is cut off wherever it is.
func (l *Log) abort() {
	l.mu.Lock()
	l.closed, l.aborted = true, true
	l.mu.Unlock()
	l.cancel()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-l.done
}

func (l *Log) run() {
	flights := make(chan *flight, l.opts.MaxInflight)
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		l.commitLoop(flights)
	}()
	defer func() {
		close(flights)
		<-committed
		close(l.done)
	}()
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.closed {
			l.mu.Unlock()
			<-l.wake
			l.mu.Lock()
		}
		if l.aborted || (l.closed && len(l.queue) == 0) {
			q := l.queue
			l.queue = nil
			l.mu.Unlock()
			for _, p := range q {
				p.done(ErrClosed)
			}
			return
		}
		// Let the batch fill for up to FlushInterval since its first append.
		for !l.closed && l.bytes < l.opts.FlushBytes {
			wait := time.Until(l.first.Add(l.opts.FlushInterval))
			if wait <= 0 {
				break
			}
			l.mu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-l.wake:
				t.Stop()
			}
			l.mu.Lock()
		}
		batch := l.queue
		l.queue, l.bytes = nil, 0
		l.seq++
		seq := l.seq
		l.mu.Unlock()
		if f := l.store(batch, seq); f != nil {
			flights <- f // blocks while MaxInflight objects are being stored
		}
	}
}

// flight is one flush between its PUT and its commit.
type flight struct {
	seq     int64
	key     string
	putAt   time.Time
	keep    []pending
	ranges  []rng
	fences  map[string]fence
	putDone chan error
}

// store checks the fences, encodes the object and starts its PUT; commits
// happen in commitLoop, in seq order.
func (l *Log) store(batch []pending, seq int64) *flight {
	// Fences first: a ledger this broker no longer owns is not written.
	fences := map[string]fence{}
	var keep []pending
	for _, p := range batch {
		f, seen := fences[p.e.Ledger]
		if !seen {
			f.ok = true
			if l.opts.Fence != nil {
				f.cond, f.ok = l.opts.Fence(p.e.Ledger)
			}
			fences[p.e.Ledger] = f
		}
		if !f.ok {
			p.done(fmt.Errorf("%w: %s", ErrFenced, p.e.Ledger))
			continue
		}
		keep = append(keep, p)
	}
	if len(keep) == 0 {
		return nil
	}
	entries := make([]Entry, len(keep))
	for i, p := range keep {
		entries[i] = p.e
	}
	data, ranges := encodeObject(entries)
	f := &flight{
		seq: seq, key: fmt.Sprintf("%swal/%s/%013d-%020d", l.opts.Prefix, l.session, time.Now().UnixMilli(), seq),
		putAt: time.Now(), keep: keep, ranges: ranges, fences: fences, putDone: make(chan error, 1),
	}
	go func() { f.putDone <- l.put(f.key, data) }()
	return f
}

// ledgerTail is what commitLoop knows of a ledger: the ledger id it
// writes and the next entry id it may commit there.
type ledgerTail struct {
	ledgerID int64
	next     int64
}

// commitLoop commits flights in order. It enforces the contiguity
// invariant: a range commits only if it starts where the ledger's
// committed entries end (or is the first this log sees of that ledger
// id), so that appends queued behind a flush that failed fail too instead
// of committing after a gap.
func (l *Log) commitLoop(flights <-chan *flight) {
	tails := map[string]ledgerTail{}
	for f := range flights {
		err := <-f.putDone
		byLedger := map[string][]pending{}
		for _, p := range f.keep {
			byLedger[p.e.Ledger] = append(byLedger[p.e.Ledger], p)
		}
		finish := func(ledger string, err error) {
			for _, p := range byLedger[ledger] {
				p.done(err)
			}
			delete(byLedger, ledger)
		}
		// Which ledgers may commit: their ranges continue their tails.
		var order []string
		rangesOf := map[string][]rng{}
		for _, r := range f.ranges {
			if _, ok := rangesOf[r.Ledger]; !ok {
				order = append(order, r.Ledger)
			}
			rangesOf[r.Ledger] = append(rangesOf[r.Ledger], r)
		}
		var ok []string
		for _, ledger := range order {
			if gapErr := continues(tails, rangesOf[ledger]); gapErr != nil {
				finish(ledger, gapErr)
				continue
			}
			if err != nil {
				finish(ledger, err)
				continue
			}
			ok = append(ok, ledger)
		}
		// Commit in chunks of ledgers that fit one etcd transaction; a
		// ledger's ranges (two when it rolled over to a new ledger id
		// within the batch) stay in one chunk: one outcome per ledger.
		part := 0
		for start := 0; start < len(ok); start += maxFencesPerTxn {
			chunkLedgers := ok[start:min(start+maxFencesPerTxn, len(ok))]
			var chunk []rng
			for _, ledger := range chunkLedgers {
				chunk = append(chunk, rangesOf[ledger]...)
			}
			path := fmt.Sprintf("%s/wal/%s-%020d-%03d", l.root, l.session, f.seq, part)
			part++
			results := l.commit(path, f.key, f.putAt, chunk, f.fences)
			for _, ledger := range chunkLedgers {
				if results[ledger] == nil {
					rs := rangesOf[ledger]
					last := rs[len(rs)-1]
					tails[ledger] = ledgerTail{ledgerID: last.LedgerID, next: last.Last + 1}
				}
				finish(ledger, results[ledger])
			}
		}
	}
}

// continues checks that rs (one ledger's ranges in one object, in order)
// continue what that ledger committed, and notes the first ledger id seen.
func continues(tails map[string]ledgerTail, rs []rng) error {
	ledger := rs[0].Ledger
	t, seen := tails[ledger]
	for _, r := range rs {
		switch {
		case !seen || r.LedgerID > t.ledgerID:
			// The first this log sees of this ledger id: it starts the tail
			// (its new owner appends from what replay told it).
			t, seen = ledgerTail{ledgerID: r.LedgerID, next: r.First}, true
		case r.LedgerID < t.ledgerID:
			return fmt.Errorf("%w: %s: entries of ledger id %d after ledger id %d", ErrStorage, ledger, r.LedgerID, t.ledgerID)
		}
		if r.First != t.next {
			return fmt.Errorf("%w: %s/%d: entries from %d would follow entries up to %d that did not commit", ErrStorage, ledger, r.LedgerID, r.First, t.next-1)
		}
		t.next = r.Last + 1
	}
	// Remember the start of a ledger id seen first here even when this
	// flight then fails, so that a later flight cannot start past it.
	if _, ok := tails[ledger]; !ok || tails[ledger].ledgerID < rs[0].LedgerID {
		tails[ledger] = ledgerTail{ledgerID: rs[0].LedgerID, next: rs[0].First}
	}
	return nil
}

// put stores the object, retrying an unavailable store for PutRetryFor.
func (l *Log) put(key string, data []byte) error {
	deadline := time.Now().Add(l.opts.PutRetryFor)
	backoff := 20 * time.Millisecond
	for {
		err := l.opts.Objects.Put(l.ctx, key, data)
		if err == nil {
			return nil
		}
		if l.ctx.Err() != nil {
			return ErrClosed
		}
		if !objectstore.Retriable(err) || time.Now().After(deadline) {
			l.log.Warn("objlog: object write failed", "key", key, "bytes", len(data), "err", err)
			return fmt.Errorf("%w: %s: %w", ErrStorage, key, err)
		}
		sleepCtx(l.ctx, backoff)
		backoff = min(2*backoff, time.Second)
	}
}

// commit records ranges under path, fenced. It returns each ledger's
// outcome. An unknown outcome (etcd unreachable) is resolved by reading
// path, and the commit retried while path is absent, until it is known or
// the log is aborted.
func (l *Log) commit(path, object string, put time.Time, ranges []rng, fences map[string]fence) map[string]error {
	results := map[string]error{}
	backoff := 20 * time.Millisecond
	for len(ranges) > 0 {
		if time.Since(put) > l.opts.OrphanAge/2 {
			l.log.Warn("objlog: commit given up: object too old to be committed safely", "path", path, "object", object)
			for _, r := range ranges {
				results[r.Ledger] = fmt.Errorf("%w: commit of %s did not complete within %v", ErrStorage, object, l.opts.OrphanAge/2)
			}
			return results
		}
		var conds []metadata.Cond
		var condLedger []string
		conds = append(conds, metadata.Cond{Path: path, Absent: true})
		condLedger = append(condLedger, "")
		seen := map[string]bool{}
		for _, r := range ranges {
			if f := fences[r.Ledger]; l.opts.Fence != nil && !seen[r.Ledger] {
				seen[r.Ledger] = true
				conds = append(conds, f.cond)
				condLedger = append(condLedger, r.Ledger)
			}
		}
		val := marshal(index{Object: object, Created: time.Now().UTC(), Ranges: ranges})
		err := l.opts.Meta.Txn(l.ctx, conds, []metadata.Op{{Path: path, Value: val}})
		var failed *metadata.TxnFailedError
		switch {
		case err == nil:
			for _, r := range ranges {
				results[r.Ledger] = nil
			}
			return results
		case errors.As(err, &failed):
			fencedOut := map[string]bool{}
			for _, i := range failed.Failed {
				if i == 0 {
					// Our record exists: an earlier attempt whose answer was
					// lost did commit. It holds what it held; read it.
					return l.resolveExisting(path, ranges, results)
				}
				fencedOut[condLedger[i]] = true
			}
			var rest []rng
			for _, r := range ranges {
				if fencedOut[r.Ledger] {
					results[r.Ledger] = fmt.Errorf("%w: %s", ErrFenced, r.Ledger)
				} else {
					rest = append(rest, r)
				}
			}
			ranges = rest
		default:
			if l.ctx.Err() != nil {
				for _, r := range ranges {
					results[r.Ledger] = ErrClosed
				}
				return results
			}
			l.log.Warn("objlog: commit outcome unknown; resolving", "path", path, "err", err)
			// Find out whether it happened before trying again.
			for {
				_, gerr := l.opts.Meta.Get(l.ctx, path)
				if gerr == nil {
					return l.resolveExisting(path, ranges, results)
				}
				if errors.Is(gerr, metadata.ErrNotFound) {
					break
				}
				if l.ctx.Err() != nil {
					for _, r := range ranges {
						results[r.Ledger] = ErrClosed
					}
					return results
				}
				sleepCtx(l.ctx, backoff)
				backoff = min(2*backoff, time.Second)
			}
		}
	}
	return results
}

// resolveExisting answers the ledgers of ranges from the record at path,
// which a previous attempt committed.
func (l *Log) resolveExisting(path string, ranges []rng, results map[string]error) map[string]error {
	for {
		rec, err := l.opts.Meta.Get(l.ctx, path)
		if err == nil {
			var ix index
			if err := json.Unmarshal(rec.Value, &ix); err != nil {
				for _, r := range ranges {
					results[r.Ledger] = fmt.Errorf("objlog: %s: %w", path, err)
				}
				return results
			}
			in := map[string]bool{}
			for _, r := range ix.Ranges {
				in[r.Ledger] = true
			}
			for _, r := range ranges {
				if in[r.Ledger] {
					results[r.Ledger] = nil
				} else {
					results[r.Ledger] = fmt.Errorf("%w: %s", ErrFenced, r.Ledger)
				}
			}
			return results
		}
		if l.ctx.Err() != nil {
			for _, r := range ranges {
				results[r.Ledger] = ErrClosed
			}
			return results
		}
		sleepCtx(l.ctx, 100*time.Millisecond)
	}
}

// located is a range with the object it is in.
type located struct {
	r      rng
	object string
	record string
}

// Reader reads and garbage-collects a cluster's log; any broker may use
// one (the new owner of a ledger replays it).
type Reader struct {
	Objects objectstore.Store
	Meta    metadata.Store
	Cluster string
}

func (r Reader) root() string { return metadata.Join("objlog", segment(r.Cluster)) }

// records reads every index record: in a few range reads where the
// store can (etcd), else one read per record.
func (r Reader) records(ctx context.Context) (map[string]index, error) {
	if cr, ok := r.Meta.(metadata.ChildRecordser); ok {
		recs, err := cr.ChildRecords(ctx, r.root()+"/wal")
		if err != nil {
			return nil, fmt.Errorf("objlog: read index: %w", err)
		}
		out := make(map[string]index, len(recs))
		for n, rec := range recs {
			var ix index
			if err := json.Unmarshal(rec.Value, &ix); err != nil {
				return nil, fmt.Errorf("objlog: index %s: %w", n, err)
			}
			out[n] = ix
		}
		return out, nil
	}
	names, err := r.Meta.Children(ctx, r.root()+"/wal")
	if err != nil {
		return nil, fmt.Errorf("objlog: list index: %w", err)
	}
	out := make(map[string]index, len(names))
	for _, n := range names {
		rec, err := r.Meta.Get(ctx, r.root()+"/wal/"+n)
		if errors.Is(err, metadata.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("objlog: read index %s: %w", n, err)
		}
		var ix index
		if err := json.Unmarshal(rec.Value, &ix); err != nil {
			return nil, fmt.Errorf("objlog: index %s: %w", n, err)
		}
		out[n] = ix
	}
	return out, nil
}

// Released returns the position up to which ledger's entries are released
// (LedgerID -1 when nothing is).
func (r Reader) Released(ctx context.Context, ledger string) (Position, int64, error) {
	rec, err := r.Meta.Get(ctx, r.root()+"/released/"+segment(ledger))
	if errors.Is(err, metadata.ErrNotFound) {
		return Position{LedgerID: -1, EntryID: -1}, metadata.NotExists, nil
	} else if err != nil {
		return Position{}, 0, err
	}
	var p Position
	if err := json.Unmarshal(rec.Value, &p); err != nil {
		return Position{}, 0, fmt.Errorf("objlog: released %s: %w", ledger, err)
	}
	return p, rec.Version, nil
}

// Replay calls fn for every committed entry of ledger after position
// after (and after its released position), in (ledgerId, entryId) order.
// It fails rather than skip: a gap or a duplicate in what is committed,
// or an object that does not match its record, is an error.
func (r Reader) Replay(ctx context.Context, ledger string, after Position, fn func(Entry) error) error {
	snap, err := r.Snapshot(ctx)
	if err != nil {
		return err
	}
	return r.ReplaySnapshot(ctx, snap, ledger, after, fn)
}

// Snapshot is the log's index as of one read: what was committed before
// the read began, and possibly more.
type Snapshot struct{ recs map[string]index }

// Snapshot reads the index, for ReplaySnapshot: ledgers opened together
// (a failover) share one read. A snapshot serves a ledger only if it was
// read after that ledger's previous writer was fenced.
func (r Reader) Snapshot(ctx context.Context) (*Snapshot, error) {
	recs, err := r.records(ctx)
	if err != nil {
		return nil, err
	}
	return &Snapshot{recs: recs}, nil
}

// ReplaySnapshot is Replay from an index read earlier.
func (r Reader) ReplaySnapshot(ctx context.Context, snap *Snapshot, ledger string, after Position, fn func(Entry) error) error {
	rel, _, err := r.Released(ctx, ledger)
	if err != nil {
		return err
	}
	if after.Less(rel) {
		after = rel
	}
	recs := snap.recs
	var rs []located
	for name, ix := range recs {
		for _, rg := range ix.Ranges {
			if rg.Ledger == ledger && after.Less(Position{rg.LedgerID, rg.Last}) {
				rs = append(rs, located{r: rg, object: ix.Object, record: name})
			}
		}
	}
	sortRanges(rs)
	next := map[int64]int64{} // ledgerId -> next entry expected
	for _, lr := range rs {
		if want, ok := next[lr.r.LedgerID]; ok && lr.r.First != want {
			return fmt.Errorf("%w: %s/%d: record %s starts at entry %d, expected %d", ErrCorrupt, ledger, lr.r.LedgerID, lr.record, lr.r.First, want)
		}
		b, err := r.Objects.Get(ctx, lr.object, lr.r.Off, lr.r.Len)
		if err != nil {
			return fmt.Errorf("objlog: read %s: %w", lr.object, err)
		}
		if int64(len(b)) != lr.r.Len {
			return fmt.Errorf("%w: %s: %d bytes at %d, record says %d", ErrCorrupt, lr.object, len(b), lr.r.Off, lr.r.Len)
		}
		es, err := decodeFrames(b, lr.r)
		if err != nil {
			return err
		}
		for _, e := range es {
			if !after.Less(Position{e.LedgerID, e.EntryID}) {
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		next[lr.r.LedgerID] = lr.r.Last + 1
	}
	return nil
}

// Release records that ledger's entries up to upTo are durable elsewhere
// (or deleted); Replay skips them and Collect may delete their objects.
// Releases only move forward.
func (r Reader) Release(ctx context.Context, ledger string, upTo Position) error {
	path := r.root() + "/released/" + segment(ledger)
	for {
		cur, version, err := r.Released(ctx, ledger)
		if err != nil {
			return err
		}
		if !cur.Less(upTo) {
			return nil
		}
		_, err = r.Meta.Put(ctx, path, marshal(upTo), version)
		if err == nil {
			return nil
		}
		if !errors.Is(err, metadata.ErrBadVersion) && !errors.Is(err, metadata.ErrExists) && !errors.Is(err, metadata.ErrNotFound) {
			return fmt.Errorf("objlog: release %s: %w", ledger, err)
		}
	}
}

// Collect deletes every object all of whose ranges are released, then its
// index records (in that order: a record whose object is gone holds only
// released ranges, which Replay never reads), and objects under the prefix
// that no record names and that are older than orphanAge (flushes that
// failed, were fenced, or were cut off by a crash). It returns how many
// objects it deleted.
func (r Reader) Collect(ctx context.Context, prefix string, orphanAge time.Duration) (int, error) {
	recs, err := r.records(ctx)
	if err != nil {
		return 0, err
	}
	released := map[string]Position{}
	byObject := map[string][]string{}
	live := map[string]bool{}
	for name, ix := range recs {
		byObject[ix.Object] = append(byObject[ix.Object], name)
		for _, rg := range ix.Ranges {
			p, ok := released[rg.Ledger]
			if !ok {
				p, _, err = r.Released(ctx, rg.Ledger)
				if err != nil {
					return 0, err
				}
				released[rg.Ledger] = p
			}
			if p.Less(Position{rg.LedgerID, rg.Last}) {
				live[ix.Object] = true
			}
		}
	}
	deleted := 0
	objects := make([]string, 0, len(byObject))
	for o := range byObject {
		objects = append(objects, o)
	}
	sort.Strings(objects)
	for _, o := range objects {
		if live[o] {
			continue
		}
		if err := r.Objects.Delete(ctx, o); err != nil {
			return deleted, fmt.Errorf("objlog: delete %s: %w", o, err)
		}
		deleted++
		for _, name := range byObject[o] {
			if err := r.Meta.Delete(ctx, r.root()+"/wal/"+name, metadata.AnyVersion); err != nil && !errors.Is(err, metadata.ErrNotFound) {
				return deleted, fmt.Errorf("objlog: delete index %s: %w", name, err)
			}
		}
	}
	infos, err := r.Objects.List(ctx, prefix+"wal/")
	if err != nil {
		return deleted, fmt.Errorf("objlog: list objects: %w", err)
	}
	cutoff := time.Now().Add(-orphanAge).UnixMilli()
	for _, in := range infos {
		if _, named := byObject[in.Key]; named {
			continue
		}
		base := in.Key[strings.LastIndexByte(in.Key, '/')+1:]
		ms, err := strconv.ParseInt(strings.SplitN(base, "-", 2)[0], 10, 64)
		if err != nil || ms > cutoff {
			continue
		}
		if err := r.Objects.Delete(ctx, in.Key); err != nil {
			return deleted, fmt.Errorf("objlog: delete orphan %s: %w", in.Key, err)
		}
		deleted++
	}
	return deleted, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
