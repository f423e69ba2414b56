package offload

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"testing"

	"github.com/kopernik-io/kopernik/objectstore"
	"github.com/kopernik-io/kopernik/objectstore/s3test"
	"github.com/kopernik-io/kopernik/segment"
)

// countingStore passes every call to a real store and records how many
// GETs are in flight at most and how many each object got.
type countingStore struct {
	objectstore.Store
	mu       sync.Mutex
	inflight int
	peak     int
	gets     map[string]int
}

func (s *countingStore) Get(ctx context.Context, key string, off, n int64) ([]byte, error) {
	s.mu.Lock()
	s.inflight++
	s.peak = max(s.peak, s.inflight)
	s.gets[key]++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight--
		s.mu.Unlock()
	}()
	return s.Store.Get(ctx, key, off, n)
}

// payload is entry id's data: its ledger and id, then filler.
func payload(ledger, id int64, size int) []byte {
	b := make([]byte, size)
	binary.LittleEndian.PutUint64(b, uint64(ledger))
	binary.LittleEndian.PutUint64(b[8:], uint64(id))
	return b
}

// TestReadAheadBounded reads a chain of offloaded ledgers sequentially
// from a real S3 server with a read-ahead far larger than the cache, and
// checks that read-ahead runs (several GETs in flight), that the cache's
// memory (blocks cached plus fetches in
// flight) never exceeds its budget and read-ahead never more than half of
// it, that each index is fetched once, and that every read is the gapless
// run of entries that was written.
func TestReadAheadBounded(t *testing.T) {
	srv := s3test.Start(t)
	st, err := objectstore.NewS3(context.Background(), objectstore.S3Options{
		Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	const (
		ledgers   = 6
		entries   = 40
		entrySize = 8 << 10
		blockSize = 32 << 10 // three or four entries a block, 10+ blocks a ledger
	)
	ctx := context.Background()
	var keys [ledgers][2]string
	blockLen := int64(0)
	for l := range int64(ledgers) {
		b := NewBuilder(l, l*entries, NewUUID(), blockSize)
		for id := range int64(entries) {
			r := segment.Record{EntryID: id, FirstIndex: l*entries + id, MsgCount: 1, PublishTime: 1, Data: payload(l, id, entrySize)}
			if err := b.Add(&r); err != nil {
				t.Fatal(err)
			}
		}
		data, index, idx := b.Finish()
		for _, bl := range idx.Blocks {
			blockLen = max(blockLen, bl.Length)
		}
		keys[l][0], keys[l][1] = Keys("", "t", l, idx.ID)
		if err := Upload(ctx, st, keys[l][0], keys[l][1], data, index); err != nil {
			t.Fatal(err)
		}
	}

	cs := &countingStore{Store: st, gets: map[string]int{}}
	budget := 8 * blockLen
	cache := NewCache(budget)
	defer cache.Close()
	var chain []*Ledger
	for l := range ledgers {
		chain = append(chain, NewLedger(cs, cache, keys[l][0], keys[l][1], 100))
	}
	maxAhead := int64(0)
	for l, rd := range chain {
		for from := int64(0); from < entries; {
			recs, err := rd.Read(ctx, from, 1000, 2*entrySize, true, chain[l+1:])
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) == 0 {
				t.Fatalf("ledger %d: nothing at entry %d of %d", l, from, entries)
			}
			for _, r := range recs {
				if r.EntryID != from || !bytes.Equal(r.Data, payload(int64(l), from, entrySize)) {
					t.Fatalf("ledger %d: got entry %d (%d bytes) where %d expected", l, r.EntryID, len(r.Data), from)
				}
				from++
			}
			cache.mu.Lock()
			maxAhead = max(maxAhead, cache.mu.ahead)
			cache.mu.Unlock()
		}
	}
	cache.Close() // read-ahead finished: the counts are final

	if p := cache.Peak(); p > budget {
		t.Errorf("cache held %d bytes at its peak, budget %d", p, budget)
	}
	if maxAhead > budget/2 {
		t.Errorf("read-ahead held %d bytes, more than half the budget (%d)", maxAhead, budget)
	}
	// Read-ahead may fill half the budget (4 blocks) and the reader waits
	// for one more.
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.peak < 2 || int64(cs.peak) > budget/2/blockLen+1 {
		t.Errorf("%d GETs in flight at most; want read-ahead to keep 2 to %d", cs.peak, budget/2/blockLen+1)
	}
	for k, n := range cs.gets {
		if strings.HasSuffix(k, ".index") && n != 1 {
			t.Errorf("index %s fetched %d times", k, n)
		}
	}
	t.Logf("peak memory %d of %d, read-ahead %d, %d GETs in flight at most", cache.Peak(), budget, maxAhead, cs.peak)
}
