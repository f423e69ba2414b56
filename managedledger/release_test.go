package managedledger

import (
	"bytes"
	"context"
	"testing"
)

// TestReleaseReusesOnlyReleasedMemory: entries read but not released keep
// their data while later reads run, released read buffers are reused, and
// releasing copies of an entry twice is harmless.
func TestReleaseReusesOnlyReleasedMemory(t *testing.T) {
	storageModes(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		ml := e.open("rel/t", Config{})
		written := appendEntries(t, ml, 0, 50, 1)
		// read starts at a varying entry, so that a reused buffer holds
		// other bytes at the same place than it did before.
		read := func(from int) []Entry {
			es, err := ml.ReadFromIndex(ctx, int64(from), 100, 1<<20)
			if err != nil || len(es) != len(written)-from {
				t.Fatalf("read %d entries: %v", len(es), err)
			}
			return es
		}
		check := func(what string, from int, es []Entry) {
			t.Helper()
			for i := range es {
				if !bytes.Equal(es[i].Data, payload(from+i)) {
					t.Fatalf("%s: entry %d data %q, want %q", what, from+i, es[i].Data, payload(from+i))
				}
			}
		}
		kept := read(0)
		for round := 0; round < 20; round++ {
			es := read(round)
			check("fresh read", round, es)
			cp := es[0]
			for i := range es {
				es[i].Release()
			}
			cp.Release() // a copy shares the release: no double release
			check("kept read", 0, kept)
		}
		for i := range kept {
			kept[i].Release()
		}
		check("after release of kept", 7, read(7))
	})
}
