package segment

import (
	"errors"
	"io"
	"os"
	"sync"
)

// deferredFile is a file of a segment made by CreateUnsynced that does not
// exist on disk yet: its bytes are kept in memory until its first Sync (or
// materialize), which creates the directory and the file, writes them and
// from then on passes everything through to the real file.
//
// Why: creating a file (and its ledger's directory) is a metadata
// operation that costs ~0.1-0.2 ms of kernel time on ext4, serialised per
// parent directory; a broker taking the first write of 10,000 partitions
// spent seconds in mkdir(2) and open(2) on the acknowledgement path. With
// the journal, acknowledged entries are durable there, and a ledger file
// that was never synced may be lost in a crash anyway (recovery recreates
// it and replays the journal), so its creation can wait for the first
// checkpoint, off the acknowledgement path. Memory held is what the ledger
// appended since its creation, at most deferredMax per file (then it is
// created at once).
type deferredFile struct {
	fs   FS
	dir  string
	path string

	mu   sync.RWMutex
	data []byte // the content while real == nil
	real File
	// abandoned: the segment was abandoned (Segment.Abandon) and another
	// handle may own the path now: never create the file from here
	// (its stale content would overwrite the new handle's), keep the
	// content for reads until Close.
	abandoned bool
}

var errAbandonedDeferred = errors.New("segment: abandoned before its file was created")

func newDeferredFile(fs FS, dir, path string) *deferredFile {
	return &deferredFile{fs: fs, dir: dir, path: path}
}

// materialize creates the directory and the file (truncating any file of
// the name: a stale one from before a crash) and writes the content, without
// an fsync. Idempotent; a failure leaves the content in memory.
func (d *deferredFile) materialize() (File, error) {
	d.mu.RLock()
	real := d.real
	d.mu.RUnlock()
	if real != nil {
		return real, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.real != nil {
		return d.real, nil
	}
	if d.abandoned {
		return nil, errAbandonedDeferred
	}
	if err := d.fs.MkdirAll(d.dir); err != nil {
		return nil, err
	}
	f, err := d.fs.OpenFile(d.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	if len(d.data) > 0 {
		if _, err := f.WriteAt(d.data, 0); err != nil {
			f.Close()
			return nil, err
		}
	}
	d.real, d.data = f, nil
	return f, nil
}

// file returns the real file, or nil with d.mu held (read-locked if !write)
// for an operation on the content in memory; done releases it.
func (d *deferredFile) file(write bool) (real File, done func()) {
	if write {
		d.mu.Lock()
		if d.real != nil {
			f := d.real
			d.mu.Unlock()
			return f, nil
		}
		return nil, d.mu.Unlock
	}
	d.mu.RLock()
	if d.real != nil {
		f := d.real
		d.mu.RUnlock()
		return f, nil
	}
	return nil, d.mu.RUnlock
}

func (d *deferredFile) ReadAt(p []byte, off int64) (int, error) {
	f, done := d.file(false)
	if f != nil {
		return f.ReadAt(p, off)
	}
	defer done()
	if off >= int64(len(d.data)) {
		return 0, io.EOF
	}
	n := copy(p, d.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// deferredMax is how much a deferred file holds before it is created at
// once, on the write that passes it: the creation's cost is then small
// beside the data, and a busy ledger's data reaches the disk as it is
// written, as without deferral. This matters on a full disk: recovery must
// write what a ledger holds in memory while the journal still holds its
// copy; deferring more would need that much space freed before anything
// recovers.
const deferredMax = 64 << 10

func (d *deferredFile) WriteAt(p []byte, off int64) (int, error) {
	f, done := d.file(true)
	if f != nil {
		return f.WriteAt(p, off)
	}
	if end := off + int64(len(p)); end > int64(len(d.data)) {
		if end <= int64(cap(d.data)) {
			d.data = d.data[:end]
		} else {
			// From the size written, doubling: a partition's first write
			// is a few hundred bytes, and a 4 KiB floor for each of its
			// two files was 800 MB at 100,000 partitions.
			grown := make([]byte, end, max(end, 2*int64(cap(d.data))))
			copy(grown, d.data)
			d.data = grown
		}
	}
	n := copy(d.data[off:], p)
	big := len(d.data) > deferredMax && !d.abandoned
	done()
	if big {
		if _, err := d.materialize(); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (d *deferredFile) Truncate(size int64) error {
	f, done := d.file(true)
	if f != nil {
		return f.Truncate(size)
	}
	defer done()
	if size <= int64(len(d.data)) {
		clear(d.data[size:])
		d.data = d.data[:size]
		return nil
	}
	d.data = append(d.data, make([]byte, size-int64(len(d.data)))...)
	return nil
}

func (d *deferredFile) Size() (int64, error) {
	f, done := d.file(false)
	if f != nil {
		return f.Size()
	}
	defer done()
	return int64(len(d.data)), nil
}

// Sync creates the file if it does not exist yet, then fdatasyncs it. The
// caller syncs the directory (the segment's first sync does).
func (d *deferredFile) Sync() error {
	f, err := d.materialize()
	if err != nil {
		return err
	}
	return f.Sync()
}

// Close closes the file, creating it first (without an fsync) if it holds
// content that was never written to disk: closing a segment does not sync,
// but what was written stays in the file as it did before deferral (a
// ledger reopened by the same process finds it; only a crash loses it).
func (d *deferredFile) Close() error {
	d.mu.RLock()
	pending := d.real == nil && len(d.data) > 0 && !d.abandoned
	d.mu.RUnlock()
	var err error
	if pending {
		_, err = d.materialize()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.data = nil
	if d.real == nil {
		return err
	}
	return errors.Join(err, d.real.Close())
}

// abandon makes sure this handle never creates the file (see abandoned).
func (d *deferredFile) abandon() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.abandoned = true
}

// discard drops content never written to disk, so that a Close that
// follows creates nothing (the segment is being removed).
func (d *deferredFile) discard() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.data = nil
}
