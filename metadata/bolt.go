package metadata

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// On-disk format of the bbolt store (format version 1):
//
//	bucket "meta":    "format" -> uint64 big-endian format version
//	bucket "records": path     -> [u64 big-endian version][value bytes]
//
// Keys are the full paths, so Children is a range scan over "path/" that
// seeks past each child's subtree (the byte after '/' is '0', so seeking to
// prefix+child+"0" skips every "prefix/child/..." key). An older binary
// refuses a file whose format version is newer than the one it knows.
const boltFormatVersion = 1

var (
	boltMetaBucket    = []byte("meta")
	boltRecordsBucket = []byte("records")
	boltFormatKey     = []byte("format")
)

// BoltOption tunes OpenBolt.
type BoltOption func(*boltOptions)

type boltOptions struct {
	timeout       time.Duration
	maxBatchDelay time.Duration
	maxBatchSize  int
	noSync        bool
}

// WithBoltTimeout bounds the wait for the file lock held by another process
// (default 5s; 0 waits forever).
func WithBoltTimeout(d time.Duration) BoltOption { return func(o *boltOptions) { o.timeout = d } }

// WithBoltMaxBatchDelay is how long a write waits for others to share its
// commit (default 1ms; bbolt's own 10ms would add 10ms to every lone
// write). Writers arriving while a commit is being fsynced queue behind it
// and share the next one anyway.
func WithBoltMaxBatchDelay(d time.Duration) BoltOption {
	return func(o *boltOptions) { o.maxBatchDelay = d }
}

// WithBoltMaxBatchSize caps the writes sharing one commit (default bbolt's 1000).
func WithBoltMaxBatchSize(n int) BoltOption { return func(o *boltOptions) { o.maxBatchSize = n } }

// WithBoltNoSync skips fsync on commit. It breaks the durability contract
// and exists for tests and benchmarks only.
func WithBoltNoSync() BoltOption { return func(o *boltOptions) { o.noSync = true } }

// Bolt is a durable Store in one bbolt file. Writes from concurrent callers
// share commits (bbolt's Batch): Put and Delete return after the commit that
// holds them has been fsynced.
//
// Watch events are delivered after the commit, in commit order (bbolt write
// transaction ids are consecutive), so the events of one key arrive in the
// order the writes took effect.
type Bolt struct {
	db *bolt.DB

	// closeMu is held shared by every operation and exclusively by Close,
	// so that Close waits for operations in flight.
	closeMu sync.RWMutex
	closed  bool          // guarded by closeMu
	done    chan struct{} // closed by Close: ends watch goroutines

	mu struct {
		sync.Mutex
		watchers map[*watcher]struct{}
		// open maps a write transaction in progress to the events its
		// functions produced; one commit handler per transaction delivers them.
		open map[*bolt.Tx]*boltTxEvents
		// delivered is the id of the last transaction whose events were
		// handed to watchers; ready holds committed ones waiting for a gap.
		delivered int
		ready     map[int][]Event
	}
}

type boltTxEvents struct {
	id     int
	events []Event
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens (creating if needed) the store at path.
func OpenBolt(path string, opts ...BoltOption) (*Bolt, error) {
	o := boltOptions{timeout: 5 * time.Second, maxBatchDelay: time.Millisecond}
	for _, opt := range opts {
		opt(&o)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.timeout, NoSync: o.noSync})
	if err != nil {
		return nil, fmt.Errorf("metadata: open %s: %w", path, err)
	}
	if o.maxBatchDelay > 0 {
		db.MaxBatchDelay = o.maxBatchDelay
	}
	if o.maxBatchSize > 0 {
		db.MaxBatchSize = o.maxBatchSize
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(boltMetaBucket)
		if err != nil {
			return err
		}
		if v := meta.Get(boltFormatKey); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("metadata: %s: corrupt format record", path)
			}
			if f := binary.BigEndian.Uint64(v); f > boltFormatVersion {
				return fmt.Errorf("metadata: %s has format version %d; this binary reads up to %d", path, f, boltFormatVersion)
			}
		} else {
			if err := meta.Put(boltFormatKey, binary.BigEndian.AppendUint64(nil, boltFormatVersion)); err != nil {
				return err
			}
		}
		_, err = tx.CreateBucketIfNotExists(boltRecordsBucket)
		return err
	})
	if err == nil {
		s := &Bolt{db: db, done: make(chan struct{})}
		s.mu.watchers = make(map[*watcher]struct{})
		s.mu.open = make(map[*bolt.Tx]*boltTxEvents)
		s.mu.ready = make(map[int][]Event)
		err = db.View(func(tx *bolt.Tx) error {
			s.mu.delivered = tx.ID() // last committed write transaction
			return nil
		})
		if err == nil {
			return s, nil
		}
	}
	db.Close()
	return nil, err
}

// Path returns the file's path.
func (s *Bolt) Path() string { return s.db.Path() }

func encodeRecord(version int64, value []byte) []byte {
	out := make([]byte, 8+len(value))
	binary.BigEndian.PutUint64(out, uint64(version))
	copy(out[8:], value)
	return out
}

func decodeRecord(path string, raw []byte) (Record, error) {
	if len(raw) < 8 {
		return Record{}, fmt.Errorf("metadata: corrupt record at %s", path)
	}
	return Record{
		Version: int64(binary.BigEndian.Uint64(raw)),
		Value:   append([]byte{}, raw[8:]...),
	}, nil
}

// begin takes the shared close lock; the caller must call s.closeMu.RUnlock.
func (s *Bolt) begin() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Bolt) Get(ctx context.Context, path string) (Record, error) {
	if err := ValidatePath(path); err != nil {
		return Record{}, err
	}
	if err := s.begin(); err != nil {
		return Record{}, err
	}
	defer s.closeMu.RUnlock()
	var rec Record
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(boltRecordsBucket).Get([]byte(path))
		if raw == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, path)
		}
		var err error
		rec, err = decodeRecord(path, raw)
		return err
	})
	return rec, err
}

// write runs fn in a shared (batched) write transaction. fn reports contract
// failures (ErrBadVersion, ...) through its result, never by returning an
// error, so one caller's failed compare-and-swap does not roll back the
// others' writes. fn may run more than once (bbolt's Batch retries); only
// the run whose transaction commits counts.
func (s *Bolt) write(ctx context.Context, fn func(b *bolt.Bucket) (ev *Event, err error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	var result error
	err := s.db.Batch(func(tx *bolt.Tx) error {
		ev, err := fn(tx.Bucket(boltRecordsBucket))
		result = err
		s.recordEvent(tx, ev)
		return nil
	})
	if err != nil {
		return fmt.Errorf("metadata: commit: %w", err)
	}
	return result
}

// recordEvent queues ev (if any) for delivery once tx commits. It registers
// the transaction even without an event: delivery follows consecutive
// transaction ids and must see every committed one.
func (s *Bolt) recordEvent(tx *bolt.Tx, ev *Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acc := s.mu.open[tx]
	if acc == nil {
		acc = &boltTxEvents{id: tx.ID()}
		s.mu.open[tx] = acc
		tx.OnCommit(func() { s.committed(tx) })
	}
	if ev != nil {
		acc.events = append(acc.events, *ev)
	}
}

// committed hands tx's events to watchers in transaction-id order. Commit
// handlers of consecutive transactions may run concurrently (bbolt releases
// its writer lock first), so a transaction that overtakes its predecessor
// waits in ready. Every write transaction on the file after OpenBolt goes
// through write, which registers it here, so ids have no gaps.
func (s *Bolt) committed(tx *bolt.Tx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acc := s.mu.open[tx]
	delete(s.mu.open, tx)
	if acc == nil {
		return // cannot happen: recordEvent registers the handler with the entry
	}
	// A transaction that was rolled back never commits, and its id is
	// reused by the next write transaction: this one. Drop what it
	// recorded. (Entries with lower ids may belong to committed
	// transactions whose handlers have not run yet; they stay.)
	for t, a := range s.mu.open {
		if a.id == acc.id {
			delete(s.mu.open, t)
		}
	}
	s.mu.ready[acc.id] = acc.events
	for {
		evs, ok := s.mu.ready[s.mu.delivered+1]
		if !ok {
			break
		}
		delete(s.mu.ready, s.mu.delivered+1)
		s.mu.delivered++
		for _, ev := range evs {
			for w := range s.mu.watchers {
				if under(ev.Path, w.prefix) {
					w.push(ev)
				}
			}
		}
	}
}

func (s *Bolt) Put(ctx context.Context, path string, value []byte, expectedVersion int64) (int64, error) {
	if err := ValidatePath(path); err != nil {
		return 0, err
	}
	if expectedVersion < AnyVersion {
		return 0, fmt.Errorf("metadata: invalid expected version %d", expectedVersion)
	}
	var version int64
	err := s.write(ctx, func(b *bolt.Bucket) (*Event, error) {
		key := []byte(path)
		var cur int64
		raw := b.Get(key)
		if raw != nil {
			r, err := decodeRecord(path, raw)
			if err != nil {
				return nil, err
			}
			cur = r.Version
		}
		if err := checkVersion(path, raw != nil, cur, expectedVersion); err != nil {
			return nil, err
		}
		if err := b.Put(key, encodeRecord(cur+1, value)); err != nil {
			return nil, err
		}
		version = cur + 1
		return &Event{Type: EventPut, Path: path, Version: cur + 1}, nil
	})
	if err != nil {
		return 0, err
	}
	return version, nil
}

func (s *Bolt) Delete(ctx context.Context, path string, expectedVersion int64) error {
	if err := ValidatePath(path); err != nil {
		return err
	}
	return s.write(ctx, func(b *bolt.Bucket) (*Event, error) {
		key := []byte(path)
		raw := b.Get(key)
		if raw == nil {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
		}
		r, err := decodeRecord(path, raw)
		if err != nil {
			return nil, err
		}
		if expectedVersion != AnyVersion && expectedVersion != r.Version {
			return nil, fmt.Errorf("%w: %s at version %d, expected %d", ErrBadVersion, path, r.Version, expectedVersion)
		}
		if err := b.Delete(key); err != nil {
			return nil, err
		}
		return &Event{Type: EventDelete, Path: path, Version: r.Version}, nil
	})
}

func (s *Bolt) Children(ctx context.Context, path string) ([]string, error) {
	if err := ValidatePath(path); err != nil {
		return nil, err
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	prefix := []byte(path + "/")
	if path == "/" {
		prefix = []byte("/")
	}
	// Key order interleaves a child's subtree with its siblings ("b",
	// "b-c", "b.d", "b/x", "b0"), so names are deduplicated and sorted; each
	// subtree is skipped with one seek: '0' is the byte after '/'.
	seen := map[string]struct{}{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(boltRecordsBucket).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); {
			rest := k[len(prefix):]
			i := bytes.IndexByte(rest, '/')
			if i < 0 {
				seen[string(rest)] = struct{}{}
				k, _ = c.Next()
				continue
			}
			seen[string(rest[:i])] = struct{}{}
			k, _ = c.Seek(append(k[:len(prefix)+i:len(prefix)+i], '0'))
		}
		return nil
	})
	out := make([]string, 0, len(seen))
	for name := range seen {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, err
}

func (s *Bolt) Watch(ctx context.Context, prefix string) (<-chan Event, error) {
	if err := ValidatePath(prefix); err != nil {
		return nil, err
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.closeMu.RUnlock()
	w := newWatcher(prefix)
	s.mu.Lock()
	s.mu.watchers[w] = struct{}{}
	s.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		s.mu.Lock()
		delete(s.mu.watchers, w)
		s.mu.Unlock()
		w.close()
	}()
	return w.out, nil
}

// Close waits for operations in flight, closes the file and ends every watch.
func (s *Bolt) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Lock()
	for w := range s.mu.watchers {
		w.close()
	}
	s.mu.watchers = map[*watcher]struct{}{}
	s.mu.Unlock()
	if err := s.db.Close(); err != nil && !errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return fmt.Errorf("metadata: close: %w", err)
	}
	return nil
}
