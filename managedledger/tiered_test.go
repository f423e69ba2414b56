package managedledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/managedledger/offload"
	"github.com/kopernik-io/kopernik/objectstore"
	"github.com/kopernik-io/kopernik/objectstore/s3test"
	"github.com/kopernik-io/kopernik/segment"
)

// tieredEnv is a file-backed env whose factory offloads to a real S3
// server (versitygw, started for the test).
func tieredEnv(t *testing.T) (*env, *s3test.Server, objectstore.Store) {
	t.Helper()
	srv := s3test.Start(t)
	st, err := objectstore.NewS3(context.Background(), objectstore.S3Options{
		Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey,
		MaxAttempts: 2, MaxBackoff: 20 * time.Millisecond, AttemptTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: t.TempDir()}
	e.store = openFileStore(t, filepath.Join(e.dir, "meta.json"))
	e.opts = FactoryOptions{
		Dir: e.dir, Store: e.store, Logger: quietLogger(), RetentionInterval: -1, IndexInterval: 512,
		Offload: st, OffloadPrefix: "t/", OffloadInterval: -1, OffloadBlockSize: 4 << 10, CacheBytes: -1,
	}
	e.start()
	t.Cleanup(func() { e.f.Close() })
	return e, srv, st
}

// localLogs lists the .log files of name's sealed ledgers: the active
// ledger's file may not exist yet (segment.CreateUnsynced defers it to the
// first checkpoint), so it is left out.
func localLogs(t *testing.T, e *env, name string) []string {
	t.Helper()
	active := ""
	if rec, err := e.store.Get(context.Background(), ledgerPath(name)); err == nil {
		var list ledgerListRecord
		if err := json.Unmarshal(rec.Value, &list); err != nil {
			t.Fatal(err)
		}
		for _, lm := range list.Ledgers {
			if !lm.Sealed {
				active = segment.LogName(lm.ID)
			}
		}
	}
	ds, _ := os.ReadDir(filepath.Join(e.dir, name))
	var out []string
	for _, d := range ds {
		if strings.HasSuffix(d.Name(), ".log") && d.Name() != active {
			out = append(out, d.Name())
		}
	}
	return out
}

func objectKeys(t *testing.T, st objectstore.Store, prefix string) []string {
	t.Helper()
	objs, err := st.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, o.Key)
	}
	return out
}

func sameEntries(t *testing.T, got, want []Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Position != w.Position || g.FirstIndex != w.FirstIndex || g.MsgCount != w.MsgCount || g.PublishTime != w.PublishTime ||
			g.Producer != w.Producer || g.SeqFirst != w.SeqFirst || !bytes.Equal(g.Data, payload(int(w.SeqFirst))) {
			t.Fatalf("entry %d: got %+v, want %+v", i, g, w)
		}
	}
}

// TestOffloadReadBack offloads sealed ledgers, deletes their local files
// (deletion lag 0) and reads everything back through every read path,
// before and after a restart.
func TestOffloadReadBack(t *testing.T) {
	e, _, st := tieredEnv(t)
	ctx := context.Background()
	cfg := Config{MaxLedgerBytes: 8 << 10}
	ml := e.open("ns/topic", cfg)
	want := appendEntries(t, ml, 0, 600, 3)
	c, err := ml.OpenCursor(ctx, "sub", InitialEarliest)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetNextIndex(ctx, 301); err != nil {
		t.Fatal(err)
	}
	sealed := len(ml.Stats().Ledgers) - 1
	if sealed < 5 {
		t.Fatalf("only %d sealed ledgers", sealed)
	}
	if s := ml.OffloadStatus(); s.State != OffloadNotRun {
		t.Fatalf("status before = %+v", s)
	}
	if err := ml.Offload(ctx, Latest); err != nil {
		t.Fatal(err)
	}
	if s := ml.OffloadStatus(); s.State != OffloadSuccess || s.FirstUnoffloaded.LedgerID != ml.Stats().Ledgers[sealed].LedgerID {
		t.Fatalf("status after = %+v", s)
	}
	if n := len(objectKeys(t, st, "t/ns/topic/")); n != 2*sealed {
		t.Fatalf("%d objects, want %d", n, 2*sealed)
	}
	if err := ml.DeleteOffloadedLocal(ctx); err != nil {
		t.Fatal(err)
	}
	if logs := localLogs(t, e, "ns/topic"); len(logs) != 0 {
		t.Fatalf("local logs after deletion: %v", logs)
	}
	check := func(ml *ManagedLedger, c *Cursor) {
		t.Helper()
		sameEntries(t, readAll(t, ml), want)
		for _, idx := range []int64{0, 1, 2, 3, 299, 300, 301, 1000, 1799} {
			es, err := ml.ReadFromIndex(ctx, idx, 3, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			k := int(idx / 3)
			sameEntries(t, es, want[k:min(k+3, len(want))])
			pos, err := ml.PositionOf(idx)
			if err != nil || pos != want[k].Position {
				t.Fatalf("PositionOf(%d) = %v, %v; want %v", idx, pos, err, want[k].Position)
			}
		}
		ts := want[200].Timestamp()
		got, ok, err := ml.FindByTime(ctx, ts)
		if err != nil || !ok || got.Timestamp() < ts || got.Position.Compare(want[200].Position) > 0 {
			t.Fatalf("FindByTime(%d) = %+v, %v, %v", ts, got, ok, err)
		}
		if n := c.NextIndex(); n != 301 {
			t.Fatalf("cursor next index %d, want 301", n)
		}
		if b := c.Backlog(); b != 1800-301 {
			t.Fatalf("backlog %d, want %d", b, 1800-301)
		}
	}
	check(ml, c)
	for _, l := range ml.Stats().Ledgers[:sealed] {
		if !l.Offloaded || !l.LocalDeleted {
			t.Fatalf("ledger %+v not offloaded and deleted locally", l)
		}
	}
	e.restart()
	ml = e.open("ns/topic", cfg)
	c, err = ml.OpenCursor(ctx, "sub", InitialEarliest)
	if err != nil {
		t.Fatal(err)
	}
	check(ml, c)
	more := appendEntries(t, ml, 600, 10, 3)
	want = append(want, more...)
	sameEntries(t, readAll(t, ml), want)

	// Truncation into an offloaded ledger, then retention deletes the
	// objects of the ledgers it removes.
	if err := ml.TruncateBefore(ctx, 900); err != nil {
		t.Fatal(err)
	}
	if ml.FirstIndex() != 900 {
		t.Fatalf("first index %d", ml.FirstIndex())
	}
	es, err := ml.ReadEntries(ctx, Earliest, 1, 1<<20)
	if err != nil || len(es) != 1 || es[0].FirstIndex != 900 {
		t.Fatalf("first entry after truncation: %+v, %v", es, err)
	}
	left := len(ml.Stats().Ledgers) - 1
	e.f.Close() // waits for background object deletions
	if n := len(objectKeys(t, st, "t/ns/topic/")); n != 2*left {
		t.Fatalf("%d objects after truncation, want %d", n, 2*left)
	}
	e.start()
	if err := e.f.Delete(ctx, "ns/topic"); err != nil {
		t.Fatal(err)
	}
	if keys := objectKeys(t, st, "t/"); len(keys) != 0 {
		t.Fatalf("objects after topic delete: %v", keys)
	}
}

// TestOffloadStoreDown: with the store down, appends go on, offload fails
// with a recorded reason and keeps the local copy, reads of deleted-local
// offloaded data fail retriably (never an empty answer), and all of it
// works once the store is back.
func TestOffloadStoreDown(t *testing.T) {
	e, srv, _ := tieredEnv(t)
	ctx := context.Background()
	ml := e.open("t1", Config{MaxLedgerBytes: 8 << 10})
	want := appendEntries(t, ml, 0, 300, 1)
	if err := ml.Offload(ctx, Position{LedgerID: 2}); err != nil {
		t.Fatal(err)
	}
	if err := ml.DeleteOffloadedLocal(ctx); err != nil {
		t.Fatal(err)
	}
	e.restart() // drop the cached blocks and indexes
	ml = e.open("t1", Config{MaxLedgerBytes: 8 << 10})
	srv.Stop()

	want = append(want, appendEntries(t, ml, 300, 100, 1)...)
	for _, read := range []func() ([]Entry, error){
		func() ([]Entry, error) { return ml.ReadEntries(ctx, Earliest, 10, 1<<20) },
		func() ([]Entry, error) { return ml.ReadFromIndex(ctx, 0, 10, 1<<20) },
		func() ([]Entry, error) { return ml.ReadFromIndexWithin(ctx, 1, 10, 1<<20) },
	} {
		es, err := read()
		if !errors.Is(err, ErrTieredUnavailable) || !objectstore.Retriable(err) || len(es) != 0 {
			t.Fatalf("read with the store down: %d entries, %v; want ErrTieredUnavailable", len(es), err)
		}
	}
	if _, err := ml.PositionOf(1); !errors.Is(err, ErrTieredUnavailable) {
		t.Fatalf("PositionOf with the store down: %v", err)
	}
	// Local data is still read.
	es, err := ml.ReadFromIndex(ctx, 350, 5, 1<<20)
	if err != nil || len(es) != 5 || es[0].FirstIndex != 350 {
		t.Fatalf("local read with the store down: %d, %v", len(es), err)
	}
	if err := ml.Offload(ctx, Latest); err == nil {
		t.Fatal("offload with the store down succeeded")
	}
	if s := ml.OffloadStatus(); s.State != OffloadError || s.Error == "" {
		t.Fatalf("status = %+v, want ERROR with a reason", s)
	}
	for _, l := range ml.Stats().Ledgers[2:] {
		if l.Offloaded || l.LocalDeleted {
			t.Fatalf("ledger %+v offloaded while the store was down", l)
		}
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	sameEntries(t, readAll(t, ml), want)
	if err := ml.Offload(ctx, Latest); err != nil {
		t.Fatal(err)
	}
	if err := ml.DeleteOffloadedLocal(ctx); err != nil {
		t.Fatal(err)
	}
	sameEntries(t, readAll(t, ml), want)
}

// TestOffloadInterrupted: an upload interrupted after its id was recorded
// (a crash) is dropped on open and its objects are collected; a
// half-written object is never read.
func TestOffloadInterrupted(t *testing.T) {
	e, _, st := tieredEnv(t)
	ctx := context.Background()
	ml := e.open("t2", Config{MaxLedgerBytes: 8 << 10})
	want := appendEntries(t, ml, 0, 100, 1)
	e.f.Close()

	// What a crash mid-upload leaves: the id in the list, not complete,
	// and a partial data object.
	rec, err := e.store.Get(ctx, ledgerPath("t2"))
	if err != nil {
		t.Fatal(err)
	}
	var list ledgerListRecord
	if err := json.Unmarshal(rec.Value, &list); err != nil {
		t.Fatal(err)
	}
	uid := offload.NewUUID()
	list.Ledgers[0].Offload = &offloadMeta{UID: uid.String()}
	b, _ := json.Marshal(list)
	if _, err := e.store.Put(ctx, ledgerPath("t2"), b, rec.Version); err != nil {
		t.Fatal(err)
	}
	dataKey, _ := offload.Keys("t/", "t2", list.Ledgers[0].ID, uid)
	if err := st.Put(ctx, dataKey, []byte("KPOD half an object")); err != nil {
		t.Fatal(err)
	}
	// Another topic's object under a nested name is not ours.
	otherKey, _ := offload.Keys("t/", "t2/nested", 0, offload.NewUUID())
	if err := st.Put(ctx, otherKey, []byte("x")); err != nil {
		t.Fatal(err)
	}

	e.start()
	ml = e.open("t2", Config{MaxLedgerBytes: 8 << 10})
	if l := ml.Stats().Ledgers[0]; l.Offloaded {
		t.Fatalf("interrupted offload counted as done: %+v", l)
	}
	sameEntries(t, readAll(t, ml), want)
	if err := ml.CollectOrphanObjects(ctx); err != nil {
		t.Fatal(err)
	}
	if keys := objectKeys(t, st, "t/t2/"); len(keys) != 1 || keys[0] != otherKey {
		t.Fatalf("objects after collection: %v", keys)
	}
	if err := ml.Offload(ctx, Latest); err != nil {
		t.Fatal(err)
	}
	if err := ml.DeleteOffloadedLocal(ctx); err != nil {
		t.Fatal(err)
	}
	sameEntries(t, readAll(t, ml), want)
}

// TestOffloadFormatCorrupt: a damaged block is reported as corruption,
// never returned as data.
func TestOffloadFormatCorrupt(t *testing.T) {
	b := offload.NewBuilder(7, 100, offload.NewUUID(), 256)
	for i := 0; i < 20; i++ {
		r := segment.Record{EntryID: int64(i), FirstIndex: 100 + int64(i), MsgCount: 1, PublishTime: int64(i), Data: payload(i)}
		if err := b.Add(&r); err != nil {
			t.Fatal(err)
		}
	}
	data, index, _ := b.Finish()
	idx, err := offload.DecodeIndex(index)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Blocks) < 3 || idx.Entries != 20 || idx.NextIndex != 120 {
		t.Fatalf("index %+v", idx)
	}
	for i, bl := range idx.Blocks {
		recs, err := offload.DecodeBlock(data[bl.Offset:bl.Offset+bl.Length], bl)
		if err != nil || recs[0].EntryID != bl.FirstEntry {
			t.Fatalf("block %d: %v", i, err)
		}
	}
	bl := idx.Blocks[1]
	bad := bytes.Clone(data[bl.Offset : bl.Offset+bl.Length])
	bad[len(bad)-3] ^= 1
	if _, err := offload.DecodeBlock(bad, bl); !errors.Is(err, offload.ErrCorrupt) {
		t.Fatalf("damaged block: %v", err)
	}
	index[20] ^= 1
	if _, err := offload.DecodeIndex(index); !errors.Is(err, offload.ErrCorrupt) {
		t.Fatalf("damaged index: %v", err)
	}
}

// TestOffloadCrashBeforeLocalDelete: a crash after the list recorded a
// local deletion but before the files went: the next open deletes them,
// and reads use the object store.
func TestOffloadCrashBeforeLocalDelete(t *testing.T) {
	e, _, _ := tieredEnv(t)
	ctx := context.Background()
	ml := e.open("t3", Config{MaxLedgerBytes: 8 << 10})
	want := appendEntries(t, ml, 0, 100, 1)
	if err := ml.Offload(ctx, Latest); err != nil {
		t.Fatal(err)
	}
	before := len(localLogs(t, e, "t3"))
	e.f.Close()
	rec, err := e.store.Get(ctx, ledgerPath("t3"))
	if err != nil {
		t.Fatal(err)
	}
	var list ledgerListRecord
	if err := json.Unmarshal(rec.Value, &list); err != nil {
		t.Fatal(err)
	}
	list.Ledgers[0].Offload.LocalDeleted = true
	b, _ := json.Marshal(list)
	if _, err := e.store.Put(ctx, ledgerPath("t3"), b, rec.Version); err != nil {
		t.Fatal(err)
	}
	e.start()
	ml = e.open("t3", Config{MaxLedgerBytes: 8 << 10})
	if after := len(localLogs(t, e, "t3")); after != before-1 {
		t.Fatalf("%d local logs after reopen, want %d", after, before-1)
	}
	sameEntries(t, readAll(t, ml), want)
}
