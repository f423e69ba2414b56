package compact_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/convert"
	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/managedledger/compact"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/segment"
)

// TestCompactOSFS runs compactions on the real file system: views survive
// a reopen, a later compaction replaces the file, Delete removes it all.
func TestCompactOSFS(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store := metadata.NewMemory()
	ml := newLedger(t, store, ledgerName)
	open := func() *compact.Compactor {
		c, err := compact.New(compact.Options{Dir: dir, FS: segment.OSFS{}, Store: store, Codec: convert.CompactionCodec{}, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	produce := func(round int) {
		for i := range 50 {
			recs := []rec{{key: []byte(fmt.Sprintf("k%d", i%10)), value: []byte(fmt.Sprintf("r%d-%d", round, i))}}
			if i%10 == 3 && round == 1 {
				recs[0].value = nil
			}
			if _, err := ml.Append(ctx, managedledger.Entry{Format: managedledger.FormatKafka, MsgCount: 1, Data: kafkaBatch(recs, i%2 == 0, false, false, 0)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0)
	c := open()
	res, err := c.Compact(ctx, ledgerName, ml, compact.Params{UpTo: ml.NextIndex(), DeleteRetention: time.Hour})
	if err != nil || !res.Compacted || res.Cleaned != 50 || res.RecordsOut != 10 || res.EntriesOut != 10 {
		t.Fatalf("first compaction: %+v, %v", res, err)
	}
	c.Close()
	c = open()
	defer c.Close()
	got := readAll(t, c)
	if len(got) != 10 || string(got[49].value) != "r0-49" || string(got[40].value) != "r0-40" {
		t.Fatalf("reopened view: %v", got)
	}
	produce(1)
	// Tombstones of round 1 are older than a zero retention: dropped.
	res, err = c.Compact(ctx, ledgerName, ml, compact.Params{UpTo: ml.NextIndex(), DeleteRetention: 0, Now: time.Now().Add(time.Second)})
	if err != nil || !res.Compacted || res.Cleaned != 100 || res.RecordsOut != 9 || res.TombstonesDropped != 1 {
		t.Fatalf("second compaction: %+v, %v", res, err)
	}
	got = readAll(t, c)
	if len(got) != 9 || string(got[99].value) != "r1-49" {
		t.Fatalf("second view: %v", got)
	}
	if _, ok := got[93]; ok {
		t.Fatal("tombstone kept")
	}
	osfs := segment.OSFS{}
	names, _ := osfs.List(filepath.Join(dir, filepath.FromSlash(ledgerName)))
	if len(names) != 1 || names[0] != fmt.Sprintf("%020d.cpv", 2) {
		t.Fatalf("files: %v", names)
	}
	// Nothing new: nothing to do.
	res, err = c.Compact(ctx, ledgerName, ml, compact.Params{UpTo: ml.NextIndex()})
	if err != nil || res.Compacted {
		t.Fatalf("idle compaction: %+v, %v", res, err)
	}
	if err := c.Delete(ctx, ledgerName); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Info(ctx, ledgerName); ok || err != nil {
		t.Fatalf("after delete: %v %v", ok, err)
	}
	if names, _ := osfs.List(filepath.Join(dir, filepath.FromSlash(ledgerName))); len(names) != 0 {
		t.Fatalf("files after delete: %v", names)
	}
	if _, err := store.Get(ctx, "/compacted-ledgers/"+ledgerName); err == nil {
		t.Fatal("record left after delete")
	}
}

// TestCorruptViewRefused: a view file that fails verification (disk lied)
// or is missing is never served partially: reads fall back to the raw log
// and the next compaction rebuilds the view.
func TestCorruptViewRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store := metadata.NewMemory()
	ml := newLedger(t, store, ledgerName)
	for i := range 5 {
		recs := []rec{{key: []byte{byte('a' + i)}, value: []byte("x")}}
		if _, err := ml.Append(ctx, managedledger.Entry{Format: managedledger.FormatKafka, MsgCount: 1, Data: kafkaBatch(recs, false, false, false, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := compact.New(compact.Options{Dir: dir, Store: store, Codec: convert.CompactionCodec{}, Logger: quietLogger()})
	if _, err := c.Compact(ctx, ledgerName, ml, compact.Params{UpTo: 5}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	path := filepath.Join(dir, filepath.FromSlash(ledgerName), fmt.Sprintf("%020d.cpv", 1))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	c, _ = compact.New(compact.Options{Dir: dir, Store: store, Codec: convert.CompactionCodec{}, Logger: quietLogger()})
	defer c.Close()
	if _, ok, err := c.Info(ctx, ledgerName); ok || err != nil {
		t.Fatalf("corrupt view served: %v %v", ok, err)
	}
	if es, cleaned, err := c.Read(ctx, ledgerName, 0, 10, 1<<20); len(es) != 0 || cleaned != 0 || err != nil {
		t.Fatalf("corrupt view read: %d entries, cleaned %d, %v", len(es), cleaned, err)
	}
	// The next compaction rebuilds it as generation 2.
	res, err := c.Compact(ctx, ledgerName, ml, compact.Params{UpTo: 5})
	if err != nil || !res.Compacted || res.Generation != 2 || res.RecordsOut != 5 {
		t.Fatalf("rebuild: %+v %v", res, err)
	}
	if got := readAll(t, c); len(got) != 5 {
		t.Fatalf("rebuilt view: %v", got)
	}
	// A missing file is the same.
	if err := os.Remove(filepath.Join(dir, filepath.FromSlash(ledgerName), fmt.Sprintf("%020d.cpv", 2))); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c, _ = compact.New(compact.Options{Dir: dir, Store: store, Codec: convert.CompactionCodec{}, Logger: quietLogger()})
	defer c.Close()
	if _, ok, err := c.Info(ctx, ledgerName); ok || err != nil {
		t.Fatalf("missing view served: %v %v", ok, err)
	}
}

func readAll(t *testing.T, c *compact.Compactor) map[int64]rec {
	t.Helper()
	out := map[int64]rec{}
	for i := int64(0); ; {
		es, _, err := c.Read(context.Background(), ledgerName, i, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			return out
		}
		for _, e := range es {
			recs, _ := readBatch(t, e.Data, e.FirstIndex, e.MsgCount)
			for o, r := range recs {
				out[o] = r
			}
			i = e.LastIndex() + 1
		}
	}
}

// TestReadsDuringCompactions: readers keep reading (whole views, never a
// closed file) while compactions replace the view under them.
func TestReadsDuringCompactions(t *testing.T) {
	ctx := context.Background()
	store := metadata.NewMemory()
	ml := newLedger(t, store, ledgerName)
	c, err := compact.New(compact.Options{Dir: "/v", FS: segment.NewMemFS(), Store: store, Codec: convert.CompactionCodec{}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 3 {
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				for i := int64(0); ; {
					es, cleaned, err := c.Read(ctx, ledgerName, i, 7, 1<<20)
					if err != nil {
						errs <- err
						return
					}
					if len(es) == 0 {
						break
					}
					for _, e := range es {
						if e.LastIndex() >= cleaned || e.LastIndex() < i {
							errs <- fmt.Errorf("entry [%d,%d] read from %d, cleaned %d", e.FirstIndex, e.LastIndex(), i, cleaned)
							return
						}
					}
					i = es[len(es)-1].LastIndex() + 1
				}
			}
		}()
	}
	for round := range 30 {
		for i := range 20 {
			recs := []rec{{key: []byte(fmt.Sprintf("k%d", i%7)), value: []byte(fmt.Sprintf("r%d", round))}}
			if _, err := ml.Append(ctx, managedledger.Entry{Format: managedledger.FormatKafka, MsgCount: 1, Data: kafkaBatch(recs, false, false, false, 0)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Compact(ctx, ledgerName, ml, compact.Params{UpTo: ml.NextIndex()}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestTombstonesExpireWithoutWrites: a view holding tombstones records the
// oldest one's publish time (across a reopen), and once delete.retention.ms
// has passed a compaction with nothing new rewrites the view alone without
// them; before that, and after it, such a compaction does nothing.
func TestTombstonesExpireWithoutWrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store := metadata.NewMemory()
	ml := newLedger(t, store, ledgerName)
	for i := range 20 {
		recs := []rec{{key: []byte(fmt.Sprintf("k%d", i%5)), value: []byte(fmt.Sprintf("v%d", i))}}
		if i >= 15 && i%2 == 0 {
			recs[0].value = nil // k1 and k3 end deleted
		}
		if _, err := ml.Append(ctx, managedledger.Entry{Format: managedledger.FormatKafka, MsgCount: 1, Data: kafkaBatch(recs, false, false, false, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	open := func() *compact.Compactor {
		c, err := compact.New(compact.Options{Dir: dir, FS: segment.OSFS{}, Store: store, Codec: convert.CompactionCodec{}, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := open()
	now := time.Now()
	res, err := c.Compact(ctx, ledgerName, ml, compact.Params{UpTo: ml.NextIndex(), DeleteRetention: time.Hour, Now: now})
	if err != nil || !res.Compacted || res.RecordsOut != 5 {
		t.Fatalf("first compaction: %+v, %v", res, err)
	}
	c.Close()
	c = open()
	defer c.Close()
	info, ok, err := c.Info(ctx, ledgerName)
	if err != nil || !ok || info.OldestTombstone.IsZero() || info.OldestTombstone.After(now) || now.Sub(info.OldestTombstone) > time.Minute {
		t.Fatalf("view info after reopen: %+v %v %v", info, ok, err)
	}
	if info.TombstonesExpired(now, time.Hour) || !info.TombstonesExpired(now.Add(2*time.Hour), time.Hour) || info.TombstonesExpired(now.Add(2*time.Hour), -1) {
		t.Fatalf("TombstonesExpired wrong for %v", info.OldestTombstone)
	}
	// Within delete.retention.ms: nothing to do.
	res, err = c.Compact(ctx, ledgerName, ml, compact.Params{UpTo: ml.NextIndex(), DeleteRetention: time.Hour, Now: now.Add(time.Minute)})
	if err != nil || res.Compacted {
		t.Fatalf("compaction within the retention: %+v, %v", res, err)
	}
	// Past it: the view alone is rewritten without the tombstones.
	res, err = c.Compact(ctx, ledgerName, ml, compact.Params{UpTo: ml.NextIndex(), DeleteRetention: time.Hour, Now: now.Add(2 * time.Hour)})
	if err != nil || !res.Compacted || res.TombstonesDropped != 2 || res.RecordsOut != 3 || res.Cleaned != 20 {
		t.Fatalf("compaction past the retention: %+v, %v", res, err)
	}
	got := readAll(t, c)
	if len(got) != 3 || string(got[15].value) != "v15" || string(got[19].value) != "v19" {
		t.Fatalf("view after expiry: %v", got)
	}
	for off, r := range got {
		if r.value == nil {
			t.Fatalf("tombstone at %d kept", off)
		}
	}
	info, _, _ = c.Info(ctx, ledgerName)
	if !info.OldestTombstone.IsZero() {
		t.Fatalf("oldest tombstone %v left in a view without tombstones", info.OldestTombstone)
	}
	res, err = c.Compact(ctx, ledgerName, ml, compact.Params{UpTo: ml.NextIndex(), DeleteRetention: time.Hour, Now: now.Add(3 * time.Hour)})
	if err != nil || res.Compacted {
		t.Fatalf("idle compaction after expiry: %+v, %v", res, err)
	}
}
