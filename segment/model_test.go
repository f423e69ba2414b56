package segment

// TestModelReads checks Segment.Read and ReadWithin against a model (a
// slice of the records appended) over random records, budgets and
// visibility limits, across Write, Sync, Seal and reopen: every result must
// be the greedy run the doc promises (from entry from, never reaching
// limit, at most maxEntries, stopping before the data would exceed
// maxBytes, the first record exempt for Read), byte for byte. The managed
// ledger's model test (managedledger/model_test.go) covers the layers above.
//
//	go test ./segment -run TestModelReads -seg.duration=1m -seg.seed=N

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var (
	segModelSeed     = flag.Uint64("seg.seed", 0, "TestModelReads: run one round with this seed (0: random seeds for -seg.duration)")
	segModelDuration = flag.Duration("seg.duration", time.Second, "TestModelReads: running time")
)

func TestModelReads(t *testing.T) {
	if *segModelSeed != 0 {
		segModelRound(t, *segModelSeed)
		return
	}
	master := uint64(time.Now().UnixNano())
	t.Logf("master seed %d (a failure prints its round's seed)", master)
	deadline := time.Now().Add(*segModelDuration)
	rounds := 0
	for rounds == 0 || time.Now().Before(deadline) {
		segModelRound(t, master+uint64(rounds)*0x9e3779b97f4a7c15)
		rounds++
	}
	t.Logf("%d rounds", rounds)
}

func segModelRound(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed^0x5e6))
	fs := NewMemFS()
	opts := Options{FS: fs, Dir: "/seg", Logger: quietLogger(), IndexInterval: []int64{64, 256, 4096}[rng.IntN(3)]}
	if rng.IntN(2) == 0 {
		opts.Prealloc = 16 << 10
	}
	const id = 7
	firstIndex := rng.Int64N(1000)
	s, err := Create(opts, id, firstIndex, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	var all []Record // appended
	written := 0     // in the file: readable
	sealed := false
	var history []string
	logf := func(format string, args ...any) {
		if len(history) == 40 {
			history = history[1:]
		}
		history = append(history, fmt.Sprintf(format, args...))
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\nseed %d, opts %+v\nreproduce: go test ./segment -run TestModelReads -seg.seed=%d\nlast operations:\n%s",
			fmt.Sprintf(format, args...), seed, opts, seed, strings.Join(history, "\n"))
	}
	next := firstIndex
	for op := 0; op < 300; op++ {
		switch x := rng.IntN(20); {
		case x < 8 && !sealed:
			n := 1 + rng.IntN(1<<uint(rng.IntN(16)))
			r := Record{
				EntryID: int64(len(all)), FirstIndex: next, MsgCount: 1 + rng.Int32N(4),
				PublishTime: int64(op), Format: uint8(rng.IntN(3)), SeqFirst: rng.Int64N(1 << 30),
				Producer: strings.Repeat("p", rng.IntN(3)*rng.IntN(300)), Data: make([]byte, n),
			}
			for i := range r.Data {
				r.Data[i] = byte(rng.Uint32())
			}
			copy(r.Data, fmt.Sprintf("#%d#", len(all)))
			if _, err := s.Append(&r); err != nil {
				fail("append: %v", err)
			}
			r.Data = bytes.Clone(r.Data)
			next = r.NextIndex()
			all = append(all, r)
			logf("append %d: %d bytes, producer %d bytes", r.EntryID, n, len(r.Producer))
		case x < 10 && !sealed:
			if rng.IntN(2) == 0 {
				_, err = s.Write()
			} else {
				_, err = s.Sync()
			}
			if err != nil {
				fail("write/sync: %v", err)
			}
			written = len(all)
			logf("write (%d entries)", written)
		case x < 11 && !sealed && rng.IntN(4) == 0:
			if err := s.Seal(); err != nil {
				fail("seal: %v", err)
			}
			sealed, written = true, len(all)
			logf("seal")
		case x < 12:
			// Reopen: unwritten records are gone (never in the file).
			if !sealed {
				if _, err := s.Sync(); err != nil {
					fail("sync: %v", err)
				}
				written = len(all)
			}
			s.Close()
			if s, err = Open(opts, id, sealed); err != nil {
				fail("reopen: %v", err)
			}
			logf("reopen (sealed %v)", sealed)
		default:
			segModelRead(rng, s, all, written, logf, fail)
		}
	}
}

func segModelRead(rng *rand.Rand, s *Segment, all []Record, written int, logf func(string, ...any), fail func(string, ...any)) {
	from := int64(rng.IntN(written+2)) - 1
	// limit is the caller's visible (written or durable) count: a caller
	// never passes more (appended records may still be in the buffer).
	limit := max(0, int64(written)-int64(rng.IntN(3)))
	if rng.IntN(3) == 0 {
		limit = int64(rng.IntN(written + 1))
	}
	maxEntries := []int{0, 1, 2, 1 + rng.IntN(10), 1000}[rng.IntN(5)]
	start := max(from, 0)
	sizeOf := func(k int) int {
		n := 0
		for e := start; e < min(start+int64(k), int64(written)); e++ {
			n += len(all[e].Data)
		}
		return n
	}
	var maxBytes int
	switch rng.IntN(5) {
	case 0:
		maxBytes = rng.IntN(3)
	case 1:
		maxBytes = max(0, sizeOf(1)+rng.IntN(3)-1)
	case 2, 3:
		maxBytes = max(0, sizeOf(1+rng.IntN(10))+rng.IntN(5)-2)
	default:
		maxBytes = 1 << 30
	}
	atLeastOne := rng.IntN(2) == 0
	read, name := s.Read, "Read"
	if !atLeastOne {
		read, name = s.ReadWithin, "ReadWithin"
	}
	got, err := read(from, limit, maxEntries, maxBytes)
	what := fmt.Sprintf("%s(from %d, limit %d, %d entries, %d bytes) with %d written", name, from, limit, maxEntries, maxBytes, written)
	var want []int64
	size := 0
	for e := start; e < min(limit, int64(written)) && len(want) < maxEntries; e++ {
		n := len(all[e].Data)
		if (len(want) > 0 || !atLeastOne) && size+n > maxBytes {
			break
		}
		size += n
		want = append(want, e)
	}
	logf("%s -> %d records, %v (want %d)", what, len(got), err, len(want))
	if err != nil {
		fail("%s: %v", what, err)
	}
	for i := range got {
		if i >= len(want) {
			fail("%s: %d records, want %d (%v)", what, len(got), len(want), want)
		}
		w := all[want[i]]
		g := got[i]
		if g.EntryID != w.EntryID || g.FirstIndex != w.FirstIndex || g.MsgCount != w.MsgCount || g.PublishTime != w.PublishTime ||
			g.Format != w.Format || g.SeqFirst != w.SeqFirst || g.Producer != w.Producer || !bytes.Equal(g.Data, w.Data) {
			fail("%s: record %d is entry %d (%d bytes), want entry %d (%d bytes)", what, i, g.EntryID, len(g.Data), w.EntryID, len(w.Data))
		}
	}
	if len(got) != len(want) {
		fail("%s: %d records, want %d (%v)", what, len(got), len(want), want)
	}
	for i := range got {
		got[i].Release()
	}
}
