package segment

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// buildSegment writes n records into a fresh in-memory segment and returns
// the file system, the records and the log and index file contents.
func buildSegment(t testing.TB, n int, sizes []byte, interval int64) (*MemFS, []Record) {
	fs := NewMemFS()
	opts := Options{FS: fs, Dir: "/f", Logger: quietLogger(), IndexInterval: interval}
	s, err := Create(opts, 9, 1000, time.UnixMilli(1))
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	next := int64(1000)
	for i := 0; i < n; i++ {
		size := 0
		if len(sizes) > 0 {
			size = int(sizes[i%len(sizes)]) * (i%3 + 1)
		}
		r := Record{
			EntryID: int64(i), FirstIndex: next, MsgCount: int32(i%4 + 1), PublishTime: int64(100 + i),
			MaxEventTime: int64((i * 37) % 90), Producer: "pp"[:i%3], Data: bytes.Repeat([]byte{byte(i)}, size),
		}
		if _, err := s.Append(&r); err != nil {
			t.Fatal(err)
		}
		next = r.NextIndex()
		recs = append(recs, r)
	}
	if _, err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	return fs, recs
}

func fileBytes(fs *MemFS, name string) []byte {
	f, err := fs.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil
	}
	n, _ := f.Size()
	b := make([]byte, n)
	f.ReadAt(b, 0)
	return b
}

func putFile(fs *MemFS, name string, b []byte) {
	f, _ := fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	f.WriteAt(b, 0)
}

// checkPrefix opens the segment (unsealed) and checks that what it
// recovers is exactly a prefix of recs, readable, and that appends continue.
// With flipped bits before the last index point (media corruption, which
// recovery does not rescan) reads may fail with ErrCorrupt, but never
// return wrong data.
func checkPrefix(t *testing.T, fs *MemFS, recs []Record, flipped bool) {
	opts := Options{FS: fs, Dir: "/f", Logger: quietLogger(), IndexInterval: 256}
	s, err := Open(opts, 9, false)
	if err != nil {
		return // a destroyed header is refused, not misread
	}
	defer s.Close()
	w := s.Written()
	if w.Entries > int64(len(recs)) {
		t.Fatalf("recovered %d entries from %d written", w.Entries, len(recs))
	}
	got, err := s.Read(0, w.Entries, int(w.Entries)+1, 1<<30)
	if err != nil && !(flipped && errors.Is(err, ErrCorrupt)) {
		t.Fatalf("reading recovered prefix: %v", err)
	}
	if err == nil && int64(len(got)) != w.Entries {
		t.Fatalf("read %d of %d recovered entries", len(got), w.Entries)
	}
	for i := range got {
		if !sameRecord(got[i], recs[i]) {
			t.Fatalf("recovered record %d differs", i)
		}
	}
	if err != nil {
		return
	}
	next := int64(1000)
	if len(got) > 0 {
		next = got[len(got)-1].NextIndex()
	}
	if w.NextIndex != next {
		t.Fatalf("next index %d, want %d", w.NextIndex, next)
	}
	r := Record{EntryID: w.Entries, FirstIndex: next, MsgCount: 1, Data: []byte("after")}
	if _, err := s.Append(&r); err != nil {
		t.Fatalf("append after recovery: %v", err)
	}
	if _, err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Read(w.Entries, w.Entries+1, 1, 1<<20); err != nil || len(got) != 1 || string(got[0].Data) != "after" {
		t.Fatalf("read appended: %v %v", got, err)
	}
}

// FuzzRecoverMutated: a valid segment, truncated and bit-flipped anywhere
// (log or index), must recover exactly a prefix of its records.
func FuzzRecoverMutated(f *testing.F) {
	f.Add(uint8(20), uint16(0xffff), []byte{})
	f.Add(uint8(20), uint16(700), []byte{})
	f.Add(uint8(50), uint16(0xffff), []byte{0, 10, 200})
	f.Add(uint8(50), uint16(0xffff), []byte{1, 5, 3})
	f.Add(uint8(3), uint16(45), []byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, n uint8, cut uint16, flips []byte) {
		fs, recs := buildSegment(t, int(n%80), []byte{3, 60, 7, 200}, 256)
		logName, idxName := filepath.Join("/f", LogName(9)), filepath.Join("/f", IndexName(9))
		log, idx := fileBytes(fs, logName), fileBytes(fs, idxName)
		if int(cut) < len(log) {
			log = log[:cut]
		}
		// flips: triples (file, offset hi, offset lo) flip one bit each.
		for i := 0; i+2 < len(flips); i += 3 {
			target := log
			if flips[i]&1 == 1 {
				target = idx
			}
			if len(target) == 0 {
				continue
			}
			off := (int(flips[i+1])<<8 | int(flips[i+2])) % len(target)
			target[off] ^= 1 << (flips[i] >> 1 % 8)
		}
		putFile(fs, logName, log)
		putFile(fs, idxName, idx)
		checkPrefix(t, fs, recs, len(flips) >= 3)
	})
}

// FuzzOpenArbitrary: arbitrary bytes as log and index must never panic.
func FuzzOpenArbitrary(f *testing.F) {
	fs, _ := buildSegment(f, 10, []byte{5, 9}, 64)
	f.Add(fileBytes(fs, filepath.Join("/f", LogName(9))), fileBytes(fs, filepath.Join("/f", IndexName(9))))
	f.Add([]byte("KPLG"), []byte("KPIX"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, log, idx []byte) {
		for _, sealed := range []bool{false, true} {
			fs := NewMemFS()
			putFile(fs, filepath.Join("/f", LogName(9)), log)
			putFile(fs, filepath.Join("/f", IndexName(9)), idx)
			s, err := Open(Options{FS: fs, Dir: "/f", Logger: quietLogger()}, 9, sealed)
			if err != nil {
				continue
			}
			w := s.Written()
			// Corruption before the last valid index point is not rescanned
			// by recovery; reads then report it (ErrCorrupt), never panic.
			if _, err := s.Read(0, w.Entries, int(w.Entries)+1, 1<<30); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("reading recovered segment: %v", err)
			}
			for i := int64(0); i < w.Entries; i++ {
				s.Header(i, w.Entries)
			}
			s.FindIndex(w.FirstIndex, w.Entries)
			s.FindTime(50, w.Entries)
			s.Close()
		}
	})
}

// FuzzIndexLookup: lookups by entry id, message index and time agree with
// a linear scan for any record sizes and index interval.
func FuzzIndexLookup(f *testing.F) {
	f.Add([]byte{1, 2, 3}, uint16(64), uint8(30))
	f.Add([]byte{255, 0, 17}, uint16(1), uint8(100))
	f.Add([]byte{}, uint16(4096), uint8(5))
	f.Fuzz(func(t *testing.T, sizes []byte, interval uint16, n uint8) {
		fs, recs := buildSegment(t, int(n%150), sizes, int64(interval))
		s, err := Open(Options{FS: fs, Dir: "/f", Logger: quietLogger(), IndexInterval: int64(interval)}, 9, true)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		limit := int64(len(recs))
		var runMax int64
		firstReaching := map[int64]int64{} // timestamp -> first entry whose running max >= it
		for i, r := range recs {
			h, err := s.Header(int64(i), limit)
			if err != nil || h.EntryID != int64(i) || h.FirstIndex != r.FirstIndex {
				t.Fatalf("Header(%d) = %+v, %v", i, h, err)
			}
			for ix := r.FirstIndex; ix < r.NextIndex(); ix++ {
				if h, ok, err := s.FindIndex(ix, limit); err != nil || !ok || h.EntryID != int64(i) {
					t.Fatalf("FindIndex(%d) = %d %v %v", ix, h.EntryID, ok, err)
				}
			}
			for ts := runMax + 1; ts <= r.Timestamp(); ts++ {
				firstReaching[ts] = int64(i)
			}
			runMax = max(runMax, r.Timestamp())
		}
		for ts, want := range firstReaching {
			if h, ok, err := s.FindTime(ts, limit); err != nil || !ok || h.EntryID != want {
				t.Fatalf("FindTime(%d) = %d %v %v, want %d", ts, h.EntryID, ok, err, want)
			}
		}
		if _, ok, _ := s.FindTime(runMax+1, limit); ok {
			t.Fatal("FindTime beyond the max found an entry")
		}
		if len(recs) > 0 {
			if _, ok, _ := s.FindIndex(recs[len(recs)-1].NextIndex(), limit); ok {
				t.Fatal("FindIndex beyond the end found an entry")
			}
		}
	})
}

// TestWriteFuzzSeeds regenerates the committed seed corpus under
// testdata/fuzz when KOPERNIK_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("KOPERNIK_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set KOPERNIK_WRITE_FUZZ_SEEDS=1 to regenerate")
	}
	write := func(target, name string, vals ...string) {
		dir := filepath.Join("testdata", "fuzz", target)
		os.MkdirAll(dir, 0o755)
		body := "go test fuzz v1\n"
		for _, v := range vals {
			body += v + "\n"
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs, _ := buildSegment(t, 12, []byte{4, 30}, 64)
	log, idx := fileBytes(fs, filepath.Join("/f", LogName(9))), fileBytes(fs, filepath.Join("/f", IndexName(9)))
	write("FuzzOpenArbitrary", "valid", fmt.Sprintf("[]byte(%q)", log), fmt.Sprintf("[]byte(%q)", idx))
	write("FuzzOpenArbitrary", "torn", fmt.Sprintf("[]byte(%q)", log[:len(log)-5]), fmt.Sprintf("[]byte(%q)", idx))
	zeroTail := append(append([]byte(nil), log...), make([]byte, 64)...)
	write("FuzzOpenArbitrary", "zero-tail", fmt.Sprintf("[]byte(%q)", zeroTail), fmt.Sprintf("[]byte(%q)", idx[:IndexHeaderSize]))
	write("FuzzRecoverMutated", "mid-cut", "byte('\\x28')", "uint16(1500)", `[]byte("")`)
	write("FuzzRecoverMutated", "index-flip", "byte('\\x28')", "uint16(65535)", `[]byte("\x01\x00\x30\x00\x02\x00")`)
	write("FuzzIndexLookup", "mixed", `[]byte("\x00\x01\xff\x10")`, "uint16(100)", "byte('\\x78')")
}
