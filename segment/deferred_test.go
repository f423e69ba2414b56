package segment

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCreateUnsyncedDefersFiles: a segment made by CreateUnsynced creates
// neither its directory nor its files until its first Sync; appended
// records read back from memory meanwhile; the first Sync creates both
// files and the directory; reopening after Close finds every synced record.
// Close without a Sync still writes the files (no fsync), and Remove of a
// never-synced segment creates nothing.
func TestCreateUnsyncedDefersFiles(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "tenant", "ns", "topic-0")
	opts := Options{FS: OSFS{}, Dir: dir, Logger: quietLogger(), IndexInterval: 64}
	s, err := CreateUnsynced(opts, 7, 100, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory exists before the first sync: %v", err)
	}
	var want [][]byte
	for i := 0; i < 20; i++ {
		data := bytes.Repeat([]byte{byte(i)}, 50+i)
		if _, err := s.Append(&Record{EntryID: int64(i), FirstIndex: 100 + int64(i), MsgCount: 1, Data: data}); err != nil {
			t.Fatal(err)
		}
		want = append(want, data)
	}
	if _, err := s.Write(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Read(0, 20, 100, 1<<20)
	if err != nil || len(got) != len(want) {
		t.Fatalf("read before sync: %d records, %v", len(got), err)
	}
	if !s.Unsynced() {
		t.Fatal("not Unsynced before its first sync")
	}
	if _, err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{s.logPath, s.idxPath} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("after the first sync: %v", err)
		}
	}
	if s.Unsynced() {
		t.Fatal("Unsynced after a sync")
	}
	s.Close()
	r, err := Open(opts, 7, false)
	if err != nil {
		t.Fatal(err)
	}
	got, err = r.Read(0, 20, 100, 1<<20)
	if err != nil || len(got) != len(want) {
		t.Fatalf("after reopen: %d records, %v", len(got), err)
	}
	for i := range got {
		if !bytes.Equal(got[i].Data, want[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
	r.Close()

	// Close without a sync writes the file (the page cache keeps it
	// across a process crash, as before deferral).
	c, err := CreateUnsynced(opts, 8, 120, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Append(&Record{EntryID: 0, FirstIndex: 120, MsgCount: 1, Data: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	c.Write()
	c.Close()
	o, err := Open(opts, 8, false)
	if err != nil {
		t.Fatalf("reopening a segment closed before its first sync: %v", err)
	}
	if d := o.Durable(); d.Entries != 1 {
		t.Fatalf("closed before its first sync: %d entries, want 1", d.Entries)
	}
	o.Close()

	// Remove of a never-synced segment creates nothing.
	rm, err := CreateUnsynced(opts, 9, 121, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rm.Append(&Record{EntryID: 0, FirstIndex: 121, MsgCount: 1, Data: []byte("gone")})
	rm.Write()
	if err := rm.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, LogName(9))); !os.IsNotExist(err) {
		t.Fatalf("a removed never-synced segment left a file: %v", err)
	}
}

// TestDeferredFileCreatedPastLimit: a deferred file is created on the
// write that takes it past deferredMax, with everything written before.
func TestDeferredFileCreatedPastLimit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	path := filepath.Join(dir, "f")
	d := newDeferredFile(OSFS{}, dir, path)
	chunk := bytes.Repeat([]byte{7}, 16<<10)
	var off int64
	for off <= deferredMax {
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("created at %d bytes, before the limit: %v", off, err)
		}
		if _, err := d.WriteAt(chunk, off); err != nil {
			t.Fatal(err)
		}
		off += int64(len(chunk))
	}
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) != off || !bytes.Equal(b, bytes.Repeat([]byte{7}, int(off))) {
		t.Fatalf("past the limit: %d bytes on disk, %v; want %d", len(b), err, off)
	}
	d.Close()
}

// TestAbandonedDeferredNeverCreates: the managed ledger abandons a failed
// segment and opens another handle on the same path; closing the abandoned
// one, still deferred, must not create the file over the new handle's.
func TestAbandonedDeferredNeverCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "l")
	opts := Options{FS: OSFS{}, Dir: dir, Logger: quietLogger()}
	old, err := CreateUnsynced(opts, 3, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	old.Append(&Record{EntryID: 0, FirstIndex: 0, MsgCount: 1, Data: []byte("stale")})
	old.Write()
	old.Abandon()
	if got, err := old.Read(0, 1, 1, 1<<20); err != nil || len(got) != 1 {
		t.Fatalf("reads on an abandoned deferred segment: %d, %v", len(got), err)
	}
	fresh, err := CreateUnsynced(opts, 3, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		fresh.Append(&Record{EntryID: int64(i), FirstIndex: int64(i), MsgCount: 1, Data: []byte("fresh")})
	}
	if _, err := fresh.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	fresh.Close()
	r, err := Open(opts, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if d := r.Durable(); d.Entries != 3 {
		t.Fatalf("after the abandoned handle closed: %d entries on disk, want the new handle's 3", d.Entries)
	}
}
