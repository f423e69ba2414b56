package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testOpts(fs FS, dir string) Options {
	return Options{FS: fs, Dir: dir, Logger: quietLogger(), IndexInterval: 256}
}

// mkRecord builds entry id of a test ledger: msgCount 1..3, growing data.
func mkRecord(id, firstIndex int64) Record {
	return Record{
		EntryID: id, FirstIndex: firstIndex, MsgCount: int32(id%3 + 1),
		PublishTime: 1000 + id, MaxEventTime: (id * 7919) % 500, Format: 1,
		Producer: fmt.Sprintf("p%d", id%2), SeqFirst: id, SeqLast: id + 1,
		Data: bytes.Repeat([]byte{byte(id)}, int(id%50)*7),
	}
}

func appendN(t testing.TB, s *Segment, n int) []Record {
	t.Helper()
	w := s.Written()
	var out []Record
	for i := int64(0); i < int64(n); i++ {
		r := mkRecord(w.Entries+i, w.NextIndex)
		if _, err := s.Append(&r); err != nil {
			t.Fatal(err)
		}
		w.NextIndex = r.NextIndex()
		out = append(out, r)
	}
	return out
}

func sameRecord(a, b Record) bool {
	return a.EntryID == b.EntryID && a.FirstIndex == b.FirstIndex && a.MsgCount == b.MsgCount &&
		a.PublishTime == b.PublishTime && a.MaxEventTime == b.MaxEventTime && a.Format == b.Format &&
		a.Producer == b.Producer && a.SeqFirst == b.SeqFirst && a.SeqLast == b.SeqLast && bytes.Equal(a.Data, b.Data)
}

func checkAll(t testing.TB, s *Segment, want []Record) {
	t.Helper()
	got, err := s.Read(0, int64(len(want)), len(want)+1, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameRecord(got[i], want[i]) {
			t.Fatalf("record %d: got %+v want %+v", i, got[i], want[i])
		}
	}
}

func TestSegmentAppendReadLookups(t *testing.T) {
	for _, name := range []string{"mem", "os"} {
		t.Run(name, func(t *testing.T) {
			var fs FS = NewMemFS()
			dir := "/seg"
			if name == "os" {
				fs, dir = OSFS{}, t.TempDir()
			}
			opts := testOpts(fs, dir)
			s, err := Create(opts, 7, 100, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			want := appendN(t, s, 300)
			if d := s.Durable(); d.Entries != 0 {
				t.Fatalf("durable before sync: %+v", d)
			}
			info, err := s.Sync()
			if err != nil || info.Entries != 300 || info.NextIndex != want[299].NextIndex() {
				t.Fatalf("sync: %+v %v", info, err)
			}
			checkAll(t, s, want)
			// Bounded reads.
			got, _ := s.Read(10, 300, 5, 1<<20)
			if len(got) != 5 || got[0].EntryID != 10 {
				t.Fatalf("read from 10: %d records", len(got))
			}
			got, _ = s.Read(10, 12, 100, 1<<20)
			if len(got) != 2 {
				t.Fatalf("limit: %d records", len(got))
			}
			got, _ = s.Read(49, 300, 100, 1)
			if len(got) != 1 {
				t.Fatalf("maxBytes: at least one record, got %d", len(got))
			}
			// Lookups against a linear scan.
			runMax := int64(0)
			var firstAt []int64 // firstAt[t] = first entry with running max >= t
			for i, r := range want {
				h, err := s.Header(int64(i), 300)
				if err != nil || h.EntryID != int64(i) || h.Producer != r.Producer {
					t.Fatalf("header %d: %+v %v", i, h, err)
				}
				for ix := r.FirstIndex; ix < r.NextIndex(); ix++ {
					h, ok, err := s.FindIndex(ix, 300)
					if err != nil || !ok || h.EntryID != int64(i) {
						t.Fatalf("find index %d: %+v %v %v", ix, h, ok, err)
					}
				}
				for runMax < r.Timestamp() {
					runMax++
					firstAt = append(firstAt, int64(i))
				}
			}
			for ts := int64(1); ts < int64(len(firstAt)); ts++ {
				h, ok, err := s.FindTime(ts, 300)
				if err != nil || !ok || h.EntryID != firstAt[ts-1] {
					t.Fatalf("find time %d: %+v %v %v want %d", ts, h.EntryID, ok, err, firstAt[ts-1])
				}
			}
			if _, ok, _ := s.FindTime(runMax+1, 300); ok {
				t.Fatal("find time beyond max found something")
			}
			if _, ok, _ := s.FindIndex(want[299].NextIndex(), 300); ok {
				t.Fatal("find index beyond end found something")
			}
			// Seal, reopen sealed and unsealed.
			if err := s.Seal(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Append(&Record{EntryID: 300, FirstIndex: want[299].NextIndex(), MsgCount: 1}); !errors.Is(err, ErrSealed) {
				t.Fatalf("append after seal: %v", err)
			}
			s.Close()
			s, err = Open(opts, 7, true)
			if err != nil {
				t.Fatal(err)
			}
			checkAll(t, s, want)
			s.Close()
			s, err = Open(opts, 7, false)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, appendN(t, s, 10)...)
			if _, err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			checkAll(t, s, want)
			s.Close()
			s, err = Open(opts, 7, false)
			if err != nil {
				t.Fatal(err)
			}
			checkAll(t, s, want)
			if err := s.Remove(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSegmentRecoveryTruncatesTornTail(t *testing.T) {
	fs := NewMemFS()
	opts := testOpts(fs, "/d")
	s, err := Create(opts, 1, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := appendN(t, s, 100)
	if _, err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	size := s.Written().Size
	s.Close()
	path := filepath.Join("/d", LogName(1))
	corruptions := map[string]func(f File){
		"torn":  func(f File) { f.Truncate(size - 3) },
		"zeros": func(f File) { f.Truncate(size + 1<<16) },
		"garbage": func(f File) {
			f.WriteAt([]byte("garbage-garbage-garbage-garbage-garbage-garbage-garbage-garbage-"), size)
		},
		"bitflip":   func(f File) { b := []byte{0}; f.ReadAt(b, size-2); b[0] ^= 0x10; f.WriteAt(b, size-2) },
		"biglength": func(f File) { f.WriteAt([]byte{0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4}, size) },
	}
	for name, corrupt := range corruptions {
		t.Run(name, func(t *testing.T) {
			// Work on a copy.
			orig, _ := fs.OpenFile(path, os.O_RDWR, 0)
			n, _ := orig.Size()
			data := make([]byte, n)
			orig.ReadAt(data, 0)
			idxF, _ := fs.OpenFile(filepath.Join("/d", IndexName(1)), os.O_RDWR, 0)
			in, _ := idxF.Size()
			idx := make([]byte, in)
			idxF.ReadAt(idx, 0)

			fs2 := NewMemFS()
			f, _ := fs2.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
			f.WriteAt(data, 0)
			g, _ := fs2.OpenFile(filepath.Join("/d", IndexName(1)), os.O_RDWR|os.O_CREATE, 0o644)
			g.WriteAt(idx, 0)
			corrupt(f)
			s, err := Open(testOpts(fs2, "/d"), 1, false)
			if err != nil {
				t.Fatal(err)
			}
			exp := want
			if name == "torn" || name == "bitflip" {
				exp = want[:99]
			}
			checkAll(t, s, exp)
			// Appends continue with the next entry id and index.
			more := appendN(t, s, 5)
			if more[0].EntryID != int64(len(exp)) || more[0].FirstIndex != exp[len(exp)-1].NextIndex() {
				t.Fatalf("continued at %d/%d", more[0].EntryID, more[0].FirstIndex)
			}
			s.Sync()
			checkAll(t, s, append(exp[:len(exp):len(exp)], more...))
		})
	}
}

func TestSegmentVersionRatchet(t *testing.T) {
	fs := NewMemFS()
	opts := testOpts(fs, "/d")
	s, err := Create(opts, 3, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	f, _ := fs.OpenFile(filepath.Join("/d", LogName(3)), os.O_RDWR, 0)
	h := logHeader{version: FormatVersion + 1, ledgerID: 3}
	f.WriteAt(h.encode(), 0)
	if _, err := Open(opts, 3, false); !errors.Is(err, ErrNewerVersion) {
		t.Fatalf("newer version: %v", err)
	}
}

func TestSegmentInjectedFailures(t *testing.T) {
	ffs := &FaultFS{FS: NewMemFS()}
	opts := testOpts(ffs, "/d")
	s, err := Create(opts, 1, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 3)
	ffs.FailSyncs(".log", errors.New("EIO"))
	if _, err := s.Sync(); !errors.Is(err, ErrFailed) {
		t.Fatalf("sync: %v", err)
	}
	ffs.FailSyncs(".log", nil)
	// A failed sync poisons the segment: the page cache can no longer be trusted.
	r := mkRecord(3, s.Written().NextIndex)
	if _, err := s.Append(&r); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after failed sync: %v", err)
	}
	s.Close()
	s, err = Open(opts, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	ffs.FailWrites(".log", errors.New("ENOSPC"))
	r = mkRecord(s.Written().Entries, s.Written().NextIndex)
	if _, err := s.Append(&r); err != nil {
		t.Fatalf("append only buffers: %v", err)
	}
	if _, err := s.Sync(); !errors.Is(err, ErrFailed) {
		t.Fatalf("sync with failing write: %v", err)
	}
}

func TestSegmentPrealloc(t *testing.T) {
	opts := testOpts(OSFS{}, t.TempDir())
	opts.Prealloc = 64 << 10
	s, err := Create(opts, 1, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := appendN(t, s, 2000)
	if _, err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	checkAll(t, s, want)
	s.mu.Lock()
	s.waitFillLocked()
	s.mu.Unlock()
	if st, _ := os.Stat(filepath.Join(opts.Dir, LogName(1))); st.Size() <= s.Written().Size {
		t.Fatalf("no preallocated slack: file %d, log %d", st.Size(), s.Written().Size)
	}
	s.Close() // unsealed: the file keeps zero-filled slack
	s, err = Open(opts, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	checkAll(t, s, want)
	want = append(want, appendN(t, s, 500)...)
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(opts.Dir, LogName(1)))
	if st.Size() != s.Written().Size {
		t.Fatalf("sealed file has slack: %d vs %d", st.Size(), s.Written().Size)
	}
	checkAll(t, s, want)
	s.Close()
}

// TestSegmentAppendDuringSync appends while another goroutine writes and
// syncs (the group-commit shape): offsets must stay exact.
func TestSegmentAppendDuringSync(t *testing.T) {
	for _, prealloc := range []int64{0, 32 << 10} {
		opts := testOpts(OSFS{}, t.TempDir())
		opts.Prealloc = prealloc
		s, err := Create(opts, 1, 0, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Sync(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		want := appendN(t, s, 3000)
		close(stop)
		<-done
		if _, err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		checkAll(t, s, want)
		s.Close()
		s, err = Open(opts, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		checkAll(t, s, want)
		s.Close()
	}
}

// countFS counts the bytes read through it.
type countFS struct {
	FS
	read *int64
}

type countFile struct {
	File
	read *int64
}

func (c countFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return countFile{File: f, read: c.read}, nil
}

func (c countFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.File.ReadAt(p, off)
	*c.read += int64(n)
	return n, err
}

// TestLookupsNeverScan: lookups by entry id, message index and time read
// about one index interval of log, however long the segment.
func TestLookupsNeverScan(t *testing.T) {
	var read int64
	opts := testOpts(countFS{FS: NewMemFS(), read: &read}, "/c")
	opts.IndexInterval = 4096
	s, err := Create(opts, 1, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := appendN(t, s, 20000) // ~3.5 MB of log
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	n := int64(len(want))
	budget := int64(2 * s.lookupWindow())
	check := func(what string, f func()) {
		t.Helper()
		read = 0
		f()
		budget := budget
		if what == "Read one" {
			budget += 8 << 10 // Read reads ahead at least an 8 KiB window
		}
		if read > budget {
			t.Fatalf("%s read %d bytes (budget %d, log %d)", what, read, budget, s.Written().Size)
		}
	}
	for _, i := range []int64{0, 1, 777, 12345, n - 1} {
		r := want[i]
		check("Header", func() {
			if h, err := s.Header(i, n); err != nil || h.EntryID != i {
				t.Fatalf("Header(%d): %v", i, err)
			}
		})
		check("FindIndex", func() {
			if h, ok, err := s.FindIndex(r.FirstIndex+int64(r.MsgCount)-1, n); err != nil || !ok || h.EntryID != i {
				t.Fatalf("FindIndex: %v", err)
			}
		})
		check("FindTime", func() {
			if _, ok, err := s.FindTime(r.Timestamp(), n); err != nil || !ok {
				t.Fatalf("FindTime: %v", err)
			}
		})
		check("Read one", func() {
			if got, err := s.Read(i, n, 1, 1); err != nil || len(got) != 1 {
				t.Fatalf("Read: %v", err)
			}
		})
	}
}

// TestReadStopsAtBudget: Read never reads far past its byte budget, and a
// record it will not return (the next one would exceed maxBytes) is not
// read in full: with large records, a fetch of one costs one record of I/O.
func TestReadStopsAtBudget(t *testing.T) {
	var read int64
	opts := testOpts(countFS{FS: NewMemFS(), read: &read}, "/b")
	s, err := Create(opts, 1, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const size = 300 << 10
	for i := range int64(8) {
		r := Record{EntryID: i, FirstIndex: i, MsgCount: 1, Format: 1, Data: bytes.Repeat([]byte{byte(i)}, size)}
		if _, err := s.Append(&r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from     int64
		maxBytes int
		want     int
	}{
		{0, 1, 1},            // the first record always comes back
		{0, size + 10, 1},    // the second would not fit
		{2, 3*size + 500, 3}, // three fit exactly, the fourth is only looked at
		{6, 10 * size, 2},    // the end of the log
	} {
		read = 0
		got, err := s.Read(tc.from, 8, 100, tc.maxBytes)
		if err != nil || len(got) != tc.want {
			t.Fatalf("Read(%d, maxBytes %d): %d records, %v; want %d", tc.from, tc.maxBytes, len(got), err, tc.want)
		}
		for i, r := range got {
			if r.EntryID != tc.from+int64(i) || len(r.Data) != size || r.Data[0] != byte(r.EntryID) {
				t.Fatalf("Read(%d): record %d is entry %d with %d bytes", tc.from, i, r.EntryID, len(r.Data))
			}
			r.Release()
		}
		// One lookup window to find the start, the records returned, and
		// a header's worth (plus slack, and an 8 KiB minimum window) of the next.
		if budget := int64(s.lookupWindow() + tc.want*(size+FrameHeadSize+BodyFixedSize) + 16<<10); read > budget {
			t.Fatalf("Read(%d, maxBytes %d) read %d bytes, budget %d", tc.from, tc.maxBytes, read, budget)
		}
	}
	// ReadWithin has no exception for the first record, and reads no
	// more than its budget to find out.
	read = 0
	if got, err := s.ReadWithin(3, 8, 100, size/2); err != nil || len(got) != 0 {
		t.Fatalf("ReadWithin(size/2): %d records, %v", len(got), err)
	}
	if budget := int64(s.lookupWindow() + size/2 + 16<<10); read > budget {
		t.Fatalf("ReadWithin of nothing read %d bytes, budget %d", read, budget)
	}
	if got, err := s.ReadWithin(3, 8, 100, 2*size); err != nil || len(got) != 2 || got[1].EntryID != 4 {
		t.Fatalf("ReadWithin(2*size): %d records, %v", len(got), err)
	}
}
