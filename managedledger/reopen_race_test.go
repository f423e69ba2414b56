package managedledger

import (
	"context"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/segment"
)

// TestOpenWaitsForCloseAndDelete: while a ledger is being closed (its
// final fsync held) or deleted, Open of the same name waits instead of
// running recovery on files the closing instance still writes; after a
// close it sees every entry, after a delete an empty ledger.
func TestOpenWaitsForCloseAndDelete(t *testing.T) {
	for _, op := range []string{"close", "delete"} {
		t.Run(op, func(t *testing.T) {
			gfs := &gateFS{FS: segment.OSFS{}}
			e := newEnv(t, t.TempDir())
			e.f.Close()
			e.opts.FS = gfs
			e.start()
			ctx := context.Background()
			ml := e.open("race", Config{Sync: SyncInterval, SyncInterval: time.Hour})
			appendEntries(t, ml, 0, 20, 1)

			gfs.hold() // the close's fsync blocks
			closed := make(chan error, 1)
			go func() {
				if op == "close" {
					closed <- ml.Close()
				} else {
					closed <- e.f.Delete(ctx, "race")
				}
			}()
			time.Sleep(50 * time.Millisecond)
			opened := make(chan *ManagedLedger, 1)
			go func() {
				ml2, err := e.f.Open(ctx, "race", Config{})
				if err != nil {
					t.Error(err)
				}
				opened <- ml2
			}()
			select {
			case <-opened:
				t.Fatal("Open returned while the same ledger was still closing")
			case <-time.After(100 * time.Millisecond):
			}
			gfs.release()
			if err := <-closed; err != nil {
				t.Fatal(err)
			}
			ml2 := <-opened
			if ml2 == nil {
				return
			}
			want := int64(20)
			if op == "delete" {
				want = 0
			}
			if got := ml2.NextIndex(); got != want {
				t.Fatalf("reopened after %s: next index %d, want %d", op, got, want)
			}
			checkContinuous(t, readAll(t, ml2), 0)
		})
	}
}
