package managedledger

// NOTE: this is the first, in-memory implementation of the API. The durable
// segment-backed engine replaces the storage of entries; the API and the
// cursor semantics stay.

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kopernik-io/kopernik/metadata"
)

// FactoryOptions configures a Factory.
type FactoryOptions struct {
	// Dir holds ledger files; empty keeps everything in memory.
	Dir string
	// Store holds ledger lists and cursor snapshots.
	Store metadata.Store
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Factory opens managed ledgers that share a data directory and a metadata store.
type Factory struct {
	opts FactoryOptions
	log  *slog.Logger

	mu struct {
		sync.Mutex
		closed  bool
		ledgers map[string]*ManagedLedger
	}
}

// NewFactory returns a factory; it creates Dir if needed.
func NewFactory(opts FactoryOptions) (*Factory, error) {
	if opts.Store == nil {
		return nil, fmt.Errorf("managedledger: factory needs a metadata store")
	}
	f := &Factory{opts: opts, log: opts.Logger}
	if f.log == nil {
		f.log = slog.Default()
	}
	f.mu.ledgers = make(map[string]*ManagedLedger)
	return f, nil
}

// ValidateName checks a managed ledger name: '/'-separated non-empty
// segments of [A-Za-z0-9._=-], e.g. "public/default/persistent/t-partition-0".
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("managedledger: empty name")
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("managedledger: invalid name %q", name)
		}
		for _, r := range seg {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
				r == '.' || r == '_' || r == '-' || r == '='
			if !ok {
				return fmt.Errorf("managedledger: invalid character %q in name %q", r, name)
			}
		}
	}
	return nil
}

// Open returns the managed ledger called name, creating it if absent.
// Opening an already open ledger returns the same instance.
func (f *Factory) Open(ctx context.Context, name string, cfg Config) (*ManagedLedger, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.closed {
		return nil, ErrClosed
	}
	if ml, ok := f.mu.ledgers[name]; ok {
		return ml, nil
	}
	ml := &ManagedLedger{name: name, factory: f}
	ml.mu.cfg = cfg.withDefaults()
	ml.mu.changed = make(chan struct{})
	ml.mu.cursors = make(map[string]*Cursor)
	ml.mu.created = time.Now()
	f.mu.ledgers[name] = ml
	return ml, nil
}

// Delete closes and removes the managed ledger, its data and cursors.
func (f *Factory) Delete(ctx context.Context, name string) error {
	f.mu.Lock()
	ml, ok := f.mu.ledgers[name]
	delete(f.mu.ledgers, name)
	f.mu.Unlock()
	if ok {
		return ml.Close()
	}
	return nil
}

// Close closes every open managed ledger.
func (f *Factory) Close() error {
	f.mu.Lock()
	f.mu.closed = true
	all := f.mu.ledgers
	f.mu.ledgers = nil
	f.mu.Unlock()
	for _, ml := range all {
		ml.Close()
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxLedgerBytes <= 0 {
		c.MaxLedgerBytes = 128 << 20
	}
	if c.MaxLedgerAge <= 0 {
		c.MaxLedgerAge = 4 * time.Hour
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = time.Second
	}
	return c
}

// ManagedLedger is one topic-partition's log. Safe for concurrent use.
type ManagedLedger struct {
	name    string
	factory *Factory

	mu struct {
		sync.Mutex
		closed  bool
		cfg     Config
		entries []Entry // in-memory store; entries[i].Position.EntryID == base+i
		base    int64   // entry id of entries[0]
		first   int64   // first retained message index
		next    int64   // next message index
		lastPub int64
		changed chan struct{}
		cursors map[string]*Cursor
		created time.Time
	}
}

// Name returns the ledger's name.
func (ml *ManagedLedger) Name() string { return ml.name }

// SetConfig replaces the configuration; rollover and retention use it from now on.
func (ml *ManagedLedger) SetConfig(cfg Config) {
	ml.mu.Lock()
	ml.mu.cfg = cfg.withDefaults()
	ml.mu.Unlock()
}

// Pending is an append in flight.
type Pending struct {
	entry Entry
	err   error
	done  chan struct{}
}

// Wait blocks until the entry is durable (or failed) and returns it with
// Position, FirstIndex and PublishTime set.
func (p *Pending) Wait(ctx context.Context) (Entry, error) {
	select {
	case <-p.done:
		return p.entry, p.err
	case <-ctx.Done():
		return Entry{}, ctx.Err()
	}
}

// AppendAsync assigns e its position, message indexes and publish time in
// call order and starts writing it. The caller may hold its own lock across
// AppendAsync (to make check-then-append atomic) and wait outside it.
func (ml *ManagedLedger) AppendAsync(e Entry) (*Pending, error) {
	if e.MsgCount < 1 {
		return nil, fmt.Errorf("%w: message count %d", ErrInvalidEntry, e.MsgCount)
	}
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if ml.mu.closed {
		return nil, ErrClosed
	}
	now := time.Now().UnixMilli()
	if now < ml.mu.lastPub {
		now = ml.mu.lastPub
	}
	ml.mu.lastPub = now
	e.Data = append([]byte(nil), e.Data...)
	e.Position = Position{LedgerID: 0, EntryID: ml.mu.base + int64(len(ml.mu.entries))}
	e.FirstIndex = ml.mu.next
	e.PublishTime = now
	ml.mu.next += int64(e.MsgCount)
	ml.mu.entries = append(ml.mu.entries, e)
	close(ml.mu.changed)
	ml.mu.changed = make(chan struct{})
	p := &Pending{entry: e, done: make(chan struct{})}
	p.entry.Data = nil
	close(p.done)
	return p, nil
}

// Append appends e and returns once it is durable.
func (ml *ManagedLedger) Append(ctx context.Context, e Entry) (Entry, error) {
	p, err := ml.AppendAsync(e)
	if err != nil {
		return Entry{}, err
	}
	return p.Wait(ctx)
}

// Changed returns a channel closed when new entries become visible (or the
// ledger closes). Take a new channel after each wake-up.
func (ml *ManagedLedger) Changed() <-chan struct{} {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.mu.changed
}

// LastConfirmed is the position of the last visible entry; (ledger, -1) when empty.
func (ml *ManagedLedger) LastConfirmed() Position {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return Position{LedgerID: 0, EntryID: ml.mu.base + int64(len(ml.mu.entries)) - 1}
}

// FirstIndex is the lowest retained message index (Kafka log start offset).
func (ml *ManagedLedger) FirstIndex() int64 {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.mu.first
}

// NextIndex is the index the next appended message gets (Kafka high watermark).
func (ml *ManagedLedger) NextIndex() int64 {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return ml.mu.next
}

// ReadEntries returns up to maxEntries visible entries starting at the first
// entry at or after from, stopping before maxBytes would be exceeded (but
// always returning at least one entry if any exists). Empty result: nothing yet.
func (ml *ManagedLedger) ReadEntries(ctx context.Context, from Position, maxEntries, maxBytes int) ([]Entry, error) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if ml.mu.closed {
		return nil, ErrClosed
	}
	i := ml.indexOfPositionLocked(from)
	return ml.collectLocked(i, maxEntries, maxBytes), nil
}

// ReadFromIndex returns entries starting with the one containing message
// index. index == NextIndex returns nothing; index outside
// [FirstIndex, NextIndex] is ErrIndexOutOfRange.
func (ml *ManagedLedger) ReadFromIndex(ctx context.Context, index int64, maxEntries, maxBytes int) ([]Entry, error) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if ml.mu.closed {
		return nil, ErrClosed
	}
	if index < ml.mu.first || index > ml.mu.next {
		return nil, fmt.Errorf("%w: %d not in [%d, %d]", ErrIndexOutOfRange, index, ml.mu.first, ml.mu.next)
	}
	i := sort.Search(len(ml.mu.entries), func(i int) bool { return ml.mu.entries[i].LastIndex() >= index })
	return ml.collectLocked(i, maxEntries, maxBytes), nil
}

// PositionOf returns the position of the entry holding message index.
func (ml *ManagedLedger) PositionOf(index int64) (Position, error) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if index < ml.mu.first || index >= ml.mu.next {
		return Position{}, fmt.Errorf("%w: %d not in [%d, %d)", ErrIndexOutOfRange, index, ml.mu.first, ml.mu.next)
	}
	i := sort.Search(len(ml.mu.entries), func(i int) bool { return ml.mu.entries[i].LastIndex() >= index })
	return ml.mu.entries[i].Position, nil
}

// FindByTime returns the metadata (no Data) of the first entry whose
// timestamp (event time, else publish time), maximised over all earlier
// entries, is >= t. found is false when no entry qualifies.
func (ml *ManagedLedger) FindByTime(ctx context.Context, t int64) (e Entry, found bool, err error) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	var runMax int64
	for i := range ml.mu.entries {
		if ts := ml.mu.entries[i].Timestamp(); ts > runMax {
			runMax = ts
		}
		if runMax >= t && ml.mu.entries[i].LastIndex() >= ml.mu.first {
			e = ml.mu.entries[i]
			e.Data = nil
			return e, true, nil
		}
	}
	return Entry{}, false, nil
}

// TruncateBefore makes index the first retained message index (Kafka
// DeleteRecords). Cursors behind it move forward. It never moves backwards.
func (ml *ManagedLedger) TruncateBefore(ctx context.Context, index int64) error {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if index > ml.mu.next {
		return fmt.Errorf("%w: %d beyond %d", ErrIndexOutOfRange, index, ml.mu.next)
	}
	if index <= ml.mu.first {
		return nil
	}
	ml.mu.first = index
	n := sort.Search(len(ml.mu.entries), func(i int) bool { return ml.mu.entries[i].LastIndex() >= index })
	ml.mu.entries = append([]Entry(nil), ml.mu.entries[n:]...)
	ml.mu.base += int64(n)
	return nil
}

// ApplyRetention deletes consumed ledgers beyond the retention policy. Data
// after the slowest durable cursor's mark-delete position is never deleted.
func (ml *ManagedLedger) ApplyRetention(ctx context.Context) error { return nil }

// Stats summarises the ledger.
func (ml *ManagedLedger) Stats() Stats {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	var bytes int64
	for i := range ml.mu.entries {
		bytes += int64(len(ml.mu.entries[i].Data))
	}
	return Stats{
		Entries: int64(len(ml.mu.entries)), Messages: ml.mu.next - ml.mu.first, Bytes: bytes,
		FirstIndex: ml.mu.first, NextIndex: ml.mu.next,
		Ledgers: []LedgerInfo{{LedgerID: 0, Entries: int64(len(ml.mu.entries)), Bytes: bytes, Created: ml.mu.created}},
	}
}

// Close closes the ledger; pending waiters of Changed wake up.
func (ml *ManagedLedger) Close() error {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if !ml.mu.closed {
		ml.mu.closed = true
		close(ml.mu.changed)
	}
	return nil
}

// indexOfPositionLocked returns the slice index of the first entry at or after p.
func (ml *ManagedLedger) indexOfPositionLocked(p Position) int {
	return sort.Search(len(ml.mu.entries), func(i int) bool { return !ml.mu.entries[i].Position.Less(p) })
}

func (ml *ManagedLedger) collectLocked(i, maxEntries, maxBytes int) []Entry {
	var out []Entry
	size := 0
	for ; i < len(ml.mu.entries) && len(out) < maxEntries; i++ {
		e := ml.mu.entries[i]
		if len(out) > 0 && size+len(e.Data) > maxBytes {
			break
		}
		size += len(e.Data)
		e.Data = append([]byte(nil), e.Data...)
		out = append(out, e)
	}
	return out
}

// nextPositionLocked returns the position of the entry after p (which may not exist yet).
func (ml *ManagedLedger) nextPositionLocked(p Position) Position {
	i := ml.indexOfPositionLocked(Position{LedgerID: p.LedgerID, EntryID: p.EntryID + 1})
	if i < len(ml.mu.entries) {
		return ml.mu.entries[i].Position
	}
	return Position{LedgerID: 0, EntryID: ml.mu.base + int64(len(ml.mu.entries))}
}
