package compact

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/segment"
)

// Sentinel errors.
var (
	ErrCorrupt      = errors.New("compact: corrupt view")
	ErrNewerVersion = errors.New("compact: view written by a newer format version")
	ErrClosed       = errors.New("compact: closed")
	// ErrConflict: the view record changed under a compaction (another
	// owner compacted the same ledger); the compaction published nothing.
	ErrConflict = errors.New("compact: view changed concurrently")
)

// Record is what compaction needs to know of one record of an entry.
type Record struct {
	// Offset is the record's message index (Kafka offset).
	Offset int64
	// Key is the record's key (Pulsar partition key); nil: keyless.
	Key []byte
	// Tombstone: a null value (Kafka) or null_value (Pulsar).
	Tombstone bool
	// Control: a transaction marker; always kept.
	Control bool
	// Transactional records belong to ProducerID's transaction.
	Transactional bool
	ProducerID    int64
}

// Codec looks inside entries. Storage never parses entry bytes itself;
// the broker supplies a codec for its formats (package convert).
type Codec interface {
	// Records returns the records of e in offset order.
	Records(e *managedledger.Entry) ([]Record, error)
	// Rewrite returns e's data holding only the records keep marks (keep[i]
	// for the i-th record Records returned; at least one is marked, not
	// all), and its format: e's format and compression where the format
	// can leave gaps, every kept record at its offset; e.FirstIndex and
	// the entry's span stay as they are.
	Rewrite(e *managedledger.Entry, keep []bool) ([]byte, managedledger.Format, error)
}

// Source is the raw log a compaction reads (a *managedledger.ManagedLedger).
type Source interface {
	FirstIndex() int64
	ReadFromIndex(ctx context.Context, index int64, maxEntries, maxBytes int) ([]managedledger.Entry, error)
}

// Options configure a Compactor.
type Options struct {
	// Dir holds the view files, one directory per managed ledger.
	Dir string
	// FS is the file system (default segment.OSFS).
	FS segment.FS
	// Store holds the view records (/compacted-ledgers/<name>).
	Store metadata.Store
	Codec Codec
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Params are one compaction's inputs.
type Params struct {
	// UpTo is the end (exclusive) of what may be compacted; entries whose
	// first index is below it are compacted whole. The caller keeps it
	// within sealed ledgers (min.compaction.lag.ms).
	UpTo int64
	// Now is the time tombstone expiry is judged at (default time.Now()).
	Now time.Time
	// DeleteRetention keeps a tombstone this long after its entry was
	// published (Kafka delete.retention.ms, default 24h); < 0: forever.
	DeleteRetention time.Duration
	// LogStart drops the view's entries that end below it (Kafka
	// DeleteRecords; retention of a compact,delete topic). 0 keeps them.
	LogStart int64
	// Aborted reports whether the transaction of producerID holding the
	// record at offset was aborted (its records are dropped). Nil: none.
	Aborted func(producerID, offset int64) bool
}

// Result describes one compaction.
type Result struct {
	// Compacted: a new view was published; false if nothing was to do.
	Compacted  bool
	Generation int64
	// Cleaned is the view's cleaned index after the run.
	Cleaned                int64
	EntriesIn, EntriesOut  int64
	RecordsIn, RecordsOut  int64
	BytesIn, BytesOut      int64
	TombstonesDropped      int64
	Duration               time.Duration
	PreviousCleaned        int64
	PreviousGeneration     int64
	PreviousViewBytes      int64
	PreviousViewEntryCount int64
}

// Info describes a published view.
type Info struct {
	Generation int64
	// Cleaned is the index below which the view replaces the raw log.
	Cleaned int64
	// First is the first index the view holds (Cleaned when it is empty).
	First   int64
	Entries int64
	Records int64
	Bytes   int64
	Created time.Time
	// OldestTombstone is the publish time of the oldest entry of the view
	// holding a kept tombstone (zero: none, or a view written before it
	// was recorded). Once it is older than delete.retention.ms the view is
	// worth compacting again with nothing new (Compact with UpTo <=
	// Cleaned), which drops the expired tombstones.
	OldestTombstone time.Time
}

// viewRecord is the JSON at /compacted-ledgers/<name>.
type viewRecord struct {
	Format     int   `json:"format"`
	Generation int64 `json:"generation"`
	Cleaned    int64 `json:"cleaned"`
	Entries    int64 `json:"entries"`
	Records    int64 `json:"records"`
	Bytes      int64 `json:"bytes"`
	Created    int64 `json:"created"`
	// OldestTombstone: Info.OldestTombstone in Unix ms; 0 (absent): none.
	OldestTombstone int64 `json:"oldestTombstone,omitempty"`
}

// unixMilliOrZero is time.UnixMilli with 0 as the zero Time.
func unixMilliOrZero(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// TombstonesExpired reports whether the view holds a tombstone published
// more than retention before now (retention < 0: tombstones never expire).
func (i Info) TombstonesExpired(now time.Time, retention time.Duration) bool {
	return retention >= 0 && !i.OldestTombstone.IsZero() && i.OldestTombstone.UnixMilli() < now.UnixMilli()-retention.Milliseconds()
}

func recordPath(name string) string { return "/compacted-ledgers/" + name }

// Compactor builds, publishes and serves the views of many managed
// ledgers. Safe for concurrent use; compactions of one ledger are
// serialised.
type Compactor struct {
	opts Options
	log  *slog.Logger
	mu   struct {
		sync.Mutex
		closed  bool
		ledgers map[string]*ledgerViews
	}
}

// ledgerViews is one managed ledger's state. run serialises compactions
// and deletion; mu guards the fields (loading, swapping cur) and is held
// only briefly, so reads never wait for a compaction.
type ledgerViews struct {
	run     sync.Mutex // serialises Compact and Delete; taken before mu
	mu      sync.Mutex
	loaded  bool
	version int64 // of the view record; 0: none
	nextGen int64 // the generation the next compaction writes
	cur     *view
}

// view is one published generation, immutable. Reads hold closeMu shared;
// retiring it takes it exclusively, so no read sees a closed file.
type view struct {
	info    Info
	file    segment.File
	index   []frameRef
	closeMu sync.RWMutex
	closed  bool
}

type frameRef struct {
	first, last int64 // offsets spanned
	pos         managedledger.Position
	off         int64
	size        int32 // frame size, head included
}

// New returns a Compactor.
func New(opts Options) (*Compactor, error) {
	if opts.Store == nil || opts.Codec == nil {
		return nil, errors.New("compact: Store and Codec are required")
	}
	if opts.FS == nil {
		opts.FS = segment.OSFS{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Compactor{opts: opts, log: opts.Logger}
	c.mu.ledgers = map[string]*ledgerViews{}
	return c, nil
}

func (c *Compactor) dir(name string) string {
	return filepath.Join(c.opts.Dir, filepath.FromSlash(name))
}

func (c *Compactor) ledger(name string) (*ledgerViews, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, ErrClosed
	}
	lv := c.mu.ledgers[name]
	if lv == nil {
		lv = &ledgerViews{}
		c.mu.ledgers[name] = lv
	}
	return lv, nil
}

// loadLocked reads the view record, opens and verifies its file, and
// removes every other file of the ledger's directory (orphans of an
// interrupted compaction). lv.mu held.
func (c *Compactor) loadLocked(ctx context.Context, name string, lv *ledgerViews) error {
	if lv.loaded {
		return nil
	}
	rec, err := c.opts.Store.Get(ctx, recordPath(name))
	var vr viewRecord
	switch {
	case errors.Is(err, metadata.ErrNotFound):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(rec.Value, &vr); err != nil {
			return fmt.Errorf("%w: view record of %s: %v", ErrCorrupt, name, err)
		}
		if vr.Format > FormatVersion {
			return fmt.Errorf("%w: view record format %d", ErrNewerVersion, vr.Format)
		}
	}
	if lv.cur != nil { // an ambiguous publication is being re-read
		lv.cur.retire()
		lv.cur = nil
	}
	var v *view
	lv.nextGen = 1
	if rec.Version > 0 {
		lv.nextGen = vr.Generation + 1
		if v, err = c.openView(name, vr); err != nil {
			// The raw log still holds everything (compaction never
			// changes it): serve no view, and let the next compaction
			// rebuild one over this record. A file missing here (a data
			// directory restored or replaced, another broker's disk) or
			// corrupt must not fail the partition's reads.
			c.log.Error("compact: view unusable; reads use the raw log until the next compaction", "ledger", name,
				"generation", vr.Generation, "err", err)
			v = nil
		}
	}
	c.removeOrphans(name, v)
	lv.loaded, lv.version, lv.cur = true, rec.Version, v
	return nil
}

// removeOrphans removes the files of name's directory that keep does not
// name.
func (c *Compactor) removeOrphans(name string, keep *view) {
	dir := c.dir(name)
	files, err := c.opts.FS.List(dir)
	if err != nil {
		return
	}
	removed := false
	for _, f := range files {
		if keep != nil && f == fileName(keep.info.Generation) {
			continue
		}
		if filepath.Ext(f) != ".cpv" && filepath.Ext(f) != ".tmp" {
			continue
		}
		if err := c.opts.FS.Remove(filepath.Join(dir, f)); err != nil {
			c.log.Warn("compact: removing orphan view file", "ledger", name, "file", f, "err", err)
			continue
		}
		removed = true
	}
	if removed {
		_ = c.opts.FS.SyncDir(dir)
	}
}

// openView opens the file vr names and verifies it frame by frame.
func (c *Compactor) openView(name string, vr viewRecord) (*view, error) {
	path := filepath.Join(c.dir(name), fileName(vr.Generation))
	f, err := c.opts.FS.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: view file of %s generation %d: %v", ErrCorrupt, name, vr.Generation, err)
	}
	v, err := scanView(f, vr)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

func scanView(f segment.File, vr viewRecord) (*view, error) {
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if size != vr.Bytes {
		return nil, fmt.Errorf("%w: view file holds %d bytes, record says %d", ErrCorrupt, size, vr.Bytes)
	}
	hdr := make([]byte, headerSize)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := checkHeader(hdr, vr.Generation); err != nil {
		return nil, err
	}
	v := &view{file: f, info: Info{
		Generation: vr.Generation, Cleaned: vr.Cleaned, Entries: vr.Entries, Records: vr.Records,
		Bytes: vr.Bytes, Created: time.UnixMilli(vr.Created), OldestTombstone: unixMilliOrZero(vr.OldestTombstone),
	}}
	const chunk = 1 << 20
	buf := make([]byte, 0, chunk)
	bufOff := int64(headerSize) // file offset of buf[0]
	off := int64(headerSize)
	prevLast := int64(-1)
	for off < size {
		// Make sure buf holds [off, off+need).
		need := int64(frameHeadSize)
		for pass := 0; pass < 2; pass++ {
			if off+need > size {
				return nil, fmt.Errorf("%w: torn frame at %d", ErrCorrupt, off)
			}
			if off+need > bufOff+int64(len(buf)) {
				n := max(need, chunk)
				n = min(n, size-off)
				buf = buf[:n]
				if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
					return nil, err
				}
				bufOff = off
			}
			if pass == 0 {
				l := int64(binary.LittleEndian.Uint32(buf[off-bufOff:]))
				if l < bodyFixedSize || l > maxBodySize {
					return nil, fmt.Errorf("%w: frame length %d at %d", ErrCorrupt, l, off)
				}
				need = frameHeadSize + l
			}
		}
		fr := buf[off-bufOff : off-bufOff+need]
		body := fr[frameHeadSize:]
		if crc(body) != binary.LittleEndian.Uint32(fr[4:]) {
			return nil, fmt.Errorf("%w: frame CRC at %d", ErrCorrupt, off)
		}
		e, err := decodeBody(body)
		if err != nil {
			return nil, err
		}
		if e.FirstIndex <= prevLast || e.LastIndex() >= vr.Cleaned {
			return nil, fmt.Errorf("%w: frame at %d out of order", ErrCorrupt, off)
		}
		prevLast = e.LastIndex()
		v.index = append(v.index, frameRef{first: e.FirstIndex, last: e.LastIndex(), pos: e.Position, off: off, size: int32(need)})
		off += need
	}
	if int64(len(v.index)) != vr.Entries {
		return nil, fmt.Errorf("%w: view file holds %d entries, record says %d", ErrCorrupt, len(v.index), vr.Entries)
	}
	v.info.First = firstOf(v.index, vr.Cleaned)
	return v, nil
}

// Info returns name's published view; ok is false when it has none.
func (c *Compactor) Info(ctx context.Context, name string) (info Info, ok bool, err error) {
	lv, err := c.ledger(name)
	if err != nil {
		return Info{}, false, err
	}
	lv.mu.Lock()
	defer lv.mu.Unlock()
	if err := c.loadLocked(ctx, name, lv); err != nil {
		return Info{}, false, err
	}
	if lv.cur == nil {
		return Info{}, false, nil
	}
	return lv.cur.info, true, nil
}

// current returns name's view (nil: none) for reading: the caller must
// call v.closeMu.RUnlock when done if v is not nil.
func (c *Compactor) current(ctx context.Context, name string) (*view, error) {
	lv, err := c.ledger(name)
	if err != nil {
		return nil, err
	}
	for {
		lv.mu.Lock()
		if err := c.loadLocked(ctx, name, lv); err != nil {
			lv.mu.Unlock()
			return nil, err
		}
		v := lv.cur
		lv.mu.Unlock()
		if v == nil {
			return nil, nil
		}
		v.closeMu.RLock()
		if !v.closed {
			return v, nil
		}
		v.closeMu.RUnlock() // retired meanwhile: take the new one
	}
}

// Read returns entries of name's view from the one holding index on, up to
// maxEntries and maxBytes of data (at least one entry if any), and the
// view's cleaned index. Entries returned lie below cleaned; none (and
// cleaned 0) if the ledger has no view. An index at or above cleaned reads
// nothing: the raw log serves it.
func (c *Compactor) Read(ctx context.Context, name string, index int64, maxEntries, maxBytes int) (entries []managedledger.Entry, cleaned int64, err error) {
	v, err := c.current(ctx, name)
	if err != nil || v == nil {
		return nil, 0, err
	}
	defer v.closeMu.RUnlock()
	entries, err = v.read(index, maxEntries, maxBytes)
	return entries, v.info.Cleaned, err
}

// ReadAt is Read by position: entries of name's view at or after pos (the
// positions they had in the raw log), and the view's cleaned index.
func (c *Compactor) ReadAt(ctx context.Context, name string, pos managedledger.Position, maxEntries, maxBytes int) (entries []managedledger.Entry, cleaned int64, err error) {
	v, err := c.current(ctx, name)
	if err != nil || v == nil {
		return nil, 0, err
	}
	defer v.closeMu.RUnlock()
	i := sort.Search(len(v.index), func(i int) bool { return !v.index[i].pos.Less(pos) })
	entries, err = v.readFrom(i, maxEntries, maxBytes)
	return entries, v.info.Cleaned, err
}

// Around returns the raw positions of the view entries just before and
// just after pos (hasPrev, hasNext false where there is none) and the
// view's cleaned index (0: no view). Every raw entry strictly between two
// consecutive view entries (and, below the cleaned point, after the last)
// was removed by compaction.
func (c *Compactor) Around(ctx context.Context, name string, pos managedledger.Position) (prev, next managedledger.Position, hasPrev, hasNext bool, cleaned int64, err error) {
	v, err := c.current(ctx, name)
	if err != nil || v == nil {
		return prev, next, false, false, 0, err
	}
	defer v.closeMu.RUnlock()
	i := sort.Search(len(v.index), func(i int) bool { return !v.index[i].pos.Less(pos) })
	if i > 0 {
		prev, hasPrev = v.index[i-1].pos, true
	}
	if i < len(v.index) && v.index[i].pos == pos {
		i++
	}
	if i < len(v.index) {
		next, hasNext = v.index[i].pos, true
	}
	return prev, next, hasPrev, hasNext, v.info.Cleaned, nil
}

// EntryAfter returns the raw position and last offset of the first entry
// of name's view after pos whose last offset is at least minLast; ok is
// false when there is none (or no view). Only the view's in-memory index is
// consulted once the view is loaded: it is cheap enough to be called under
// a managed ledger's lock (managedledger.Released).
func (c *Compactor) EntryAfter(ctx context.Context, name string, pos managedledger.Position, minLast int64) (next managedledger.Position, last int64, ok bool, err error) {
	v, err := c.current(ctx, name)
	if err != nil || v == nil {
		return next, 0, false, err
	}
	defer v.closeMu.RUnlock()
	i := max(sort.Search(len(v.index), func(i int) bool { return pos.Less(v.index[i].pos) }),
		sort.Search(len(v.index), func(i int) bool { return v.index[i].last >= minLast }))
	if i == len(v.index) {
		return next, 0, false, nil
	}
	return v.index[i].pos, v.index[i].last, true, nil
}

// EntryBefore returns the raw position and last offset of the last entry
// of name's view before pos; ok is false when there is none (or no view).
func (c *Compactor) EntryBefore(ctx context.Context, name string, pos managedledger.Position) (prev managedledger.Position, last int64, ok bool, err error) {
	v, err := c.current(ctx, name)
	if err != nil || v == nil {
		return prev, 0, false, err
	}
	defer v.closeMu.RUnlock()
	i := sort.Search(len(v.index), func(i int) bool { return !v.index[i].pos.Less(pos) }) - 1
	if i < 0 {
		return prev, 0, false, nil
	}
	return v.index[i].pos, v.index[i].last, true, nil
}

// Last returns the last entry of name's view; ok is false without one.
func (c *Compactor) Last(ctx context.Context, name string) (e managedledger.Entry, cleaned int64, ok bool, err error) {
	v, err := c.current(ctx, name)
	if err != nil || v == nil {
		return e, 0, false, err
	}
	defer v.closeMu.RUnlock()
	if len(v.index) == 0 {
		return e, v.info.Cleaned, false, nil
	}
	es, err := v.readFrom(len(v.index)-1, 1, 1)
	if err != nil || len(es) == 0 {
		return e, v.info.Cleaned, false, err
	}
	return es[0], v.info.Cleaned, true, nil
}

func (v *view) read(index int64, maxEntries, maxBytes int) ([]managedledger.Entry, error) {
	return v.readFrom(sort.Search(len(v.index), func(i int) bool { return v.index[i].last >= index }), maxEntries, maxBytes)
}

// readFrom reads entries from the i-th on.
func (v *view) readFrom(i int, maxEntries, maxBytes int) ([]managedledger.Entry, error) {
	if i == len(v.index) || maxEntries <= 0 {
		return nil, nil
	}
	j, total := i, 0
	for j < len(v.index) && j-i < maxEntries {
		sz := int(v.index[j].size)
		if j > i && total+sz > maxBytes {
			break
		}
		total += sz
		j++
	}
	start := v.index[i].off
	buf := make([]byte, v.index[j-1].off+int64(v.index[j-1].size)-start)
	if _, err := v.file.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	out := make([]managedledger.Entry, 0, j-i)
	for k := i; k < j; k++ {
		fr := buf[v.index[k].off-start : v.index[k].off-start+int64(v.index[k].size)]
		body := fr[frameHeadSize:]
		if crc(body) != binary.LittleEndian.Uint32(fr[4:]) {
			return nil, fmt.Errorf("%w: frame CRC at %d (generation %d)", ErrCorrupt, v.index[k].off, v.info.Generation)
		}
		e, err := decodeBody(body)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// retire closes v once no read holds it.
func (v *view) retire() {
	v.closeMu.Lock()
	v.closed = true
	v.file.Close()
	v.closeMu.Unlock()
}

// Delete removes name's view (record and files): for a deleted topic.
func (c *Compactor) Delete(ctx context.Context, name string) error {
	lv, err := c.ledger(name)
	if err != nil {
		return err
	}
	lv.run.Lock()
	defer lv.run.Unlock()
	lv.mu.Lock()
	defer lv.mu.Unlock()
	if err := c.opts.Store.Delete(ctx, recordPath(name), metadata.AnyVersion); err != nil && !errors.Is(err, metadata.ErrNotFound) {
		return err
	}
	if lv.cur != nil {
		lv.cur.retire()
	}
	lv.loaded, lv.version, lv.cur = true, 0, nil
	c.removeOrphans(name, nil)
	c.mu.Lock()
	delete(c.mu.ledgers, name)
	c.mu.Unlock()
	return nil
}

// Close closes every open view file. Compactions in flight fail.
func (c *Compactor) Close() error {
	c.mu.Lock()
	c.mu.closed = true
	ls := c.mu.ledgers
	c.mu.ledgers = map[string]*ledgerViews{}
	c.mu.Unlock()
	for _, lv := range ls {
		lv.mu.Lock()
		if lv.cur != nil {
			lv.cur.retire()
			lv.cur = nil
		}
		lv.loaded = false
		lv.mu.Unlock()
	}
	return nil
}

func firstOf(index []frameRef, cleaned int64) int64 {
	if len(index) == 0 {
		return cleaned
	}
	return index[0].first
}
