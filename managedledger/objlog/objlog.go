// Package objlog is the cluster write path: a broker's write-ahead log in
// object storage, committed through etcd, fenced by topic ownership. It is
// the cluster counterpart of the local journal: appends of every ledger a
// broker owns are batched into one object per flush, the object is PUT,
// and one etcd transaction then records it — only if the broker still owns
// every ledger in it. Only then are the appends acknowledged. The object
// store holds the only copy a broker needs; a broker that dies loses
// nothing acknowledged, and its successor replays the log.
//
// # Objects
//
// <prefix>wal/<writer>/<seq %020d> where writer is the broker's name and a
// random session id (a restarted broker never reuses a name):
//
//	object := magic "KPWAL001" frame*
//	frame  := u32 len(body) | u32 crc32c(body) | body          (big endian)
//	body   := u16 len(ledger) | ledger | u64 ledgerID | u64 entryID | payload
//
// A ledger's frames in one object are contiguous and in entry order.
//
// # Index records (etcd)
//
// /objlog/<cluster>/wal/<writer>-<seq %020d>: JSON {object, created,
// ranges: [{ledger, ledgerId, first, last, off, len}]}: which entries of
// which ledger an object holds, and where. Writing this record is the
// commit point: an entry is acknowledged, visible, and replayed by any
// broker exactly when a record naming it exists. The record is created
// with NotExists in a transaction whose conditions are the fences (the
// owner record of each ledger, by value) of the ledgers it names, so a
// broker that lost a ledger's ownership cannot commit to it: its late
// writes are never visible (BookKeeper's fencing, in etcd). When a fence
// fails, the ledgers it guards fail with ErrFenced and the rest of the
// object is committed without them (the object keeps their unreferenced
// bytes until it is collected).
//
// /objlog/<cluster>/released/<escaped ledger>: JSON {ledgerId, entryId}:
// every entry at or before that position is durable elsewhere (offloaded
// into per-ledger objects, or deleted) and is no longer replayed. Collect
// deletes objects, and then their index records, once every range they
// hold is released.
//
// # Failures
//
// A failed PUT fails the flush's appends (nothing was committed). A commit
// whose outcome is unknown (etcd unreachable) is resolved by reading the
// index record's path until etcd answers, and retried when absent: the
// record's path is fixed, so a retry cannot commit twice. Flushes are
// serial, so a ledger's committed entries are a contiguous prefix of what
// it appended; a ledger whose flush failed must not append again before
// it learned what was committed (the managed ledger's recovery does so).
//
// INVARIANT: for a (ledger, ledgerId), the committed entries are entryIds
// 0..n-1 with no gap and no duplicate, across all writers and restarts.
package objlog

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
	"strings"
	"time"
)

// Entry is one ledger entry in the log.
type Entry struct {
	Ledger   string // managed ledger name
	LedgerID int64
	EntryID  int64
	Data     []byte
}

// Position orders entries of one managed ledger.
type Position struct {
	LedgerID int64 `json:"ledgerId"`
	EntryID  int64 `json:"entryId"`
}

// Less orders positions.
func (p Position) Less(q Position) bool {
	if p.LedgerID != q.LedgerID {
		return p.LedgerID < q.LedgerID
	}
	return p.EntryID < q.EntryID
}

// rng is one ledger's frames in one object.
type rng struct {
	Ledger   string `json:"ledger"`
	LedgerID int64  `json:"ledgerId"`
	First    int64  `json:"first"`
	Last     int64  `json:"last"`
	Off      int64  `json:"off"`
	Len      int64  `json:"len"`
}

// index is an index record's value.
type index struct {
	Object  string    `json:"object"`
	Created time.Time `json:"created"`
	Ranges  []rng     `json:"ranges"`
}

const magic = "KPWAL001"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt: an object's bytes do not match its index record.
var ErrCorrupt = errors.New("objlog: corrupt object")

// encodeObject lays out entries grouped by ledger (first-appearance order
// of the ledger, entries in the order given) and returns the object and
// one range per (ledger, ledgerId) run.
func encodeObject(entries []Entry) ([]byte, []rng) {
	type key struct {
		ledger string
		id     int64
	}
	var order []key
	groups := map[key][]Entry{}
	for _, e := range entries {
		k := key{e.Ledger, e.LedgerID}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], e)
	}
	size := len(magic)
	for _, e := range entries {
		size += 8 + 2 + len(e.Ledger) + 16 + len(e.Data)
	}
	buf := make([]byte, 0, size)
	buf = append(buf, magic...)
	var ranges []rng
	for _, k := range order {
		g := groups[k]
		r := rng{Ledger: k.ledger, LedgerID: k.id, First: g[0].EntryID, Last: g[len(g)-1].EntryID, Off: int64(len(buf))}
		for _, e := range g {
			buf = appendFrame(buf, e)
		}
		r.Len = int64(len(buf)) - r.Off
		ranges = append(ranges, r)
	}
	return buf, ranges
}

func appendFrame(buf []byte, e Entry) []byte {
	bodyLen := 2 + len(e.Ledger) + 16 + len(e.Data)
	start := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, uint32(bodyLen))
	buf = binary.BigEndian.AppendUint32(buf, 0) // crc, filled below
	body := len(buf)
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(e.Ledger)))
	buf = append(buf, e.Ledger...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(e.LedgerID))
	buf = binary.BigEndian.AppendUint64(buf, uint64(e.EntryID))
	buf = append(buf, e.Data...)
	binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[body:], castagnoli))
	return buf
}

// decodeFrames parses a range's bytes into entries, verifying every
// checksum and that they are exactly r's entries in order. The entries'
// Data alias b.
func decodeFrames(b []byte, r rng) ([]Entry, error) {
	var out []Entry
	next := r.First
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: %s/%d: truncated frame header", ErrCorrupt, r.Ledger, r.LedgerID)
		}
		n := binary.BigEndian.Uint32(b)
		sum := binary.BigEndian.Uint32(b[4:])
		if uint64(n) > uint64(len(b)-8) || n < 18 {
			return nil, fmt.Errorf("%w: %s/%d: frame length %d of %d bytes left", ErrCorrupt, r.Ledger, r.LedgerID, n, len(b)-8)
		}
		body := b[8 : 8+n]
		b = b[8+n:]
		if crc32.Checksum(body, castagnoli) != sum {
			return nil, fmt.Errorf("%w: %s/%d: checksum mismatch at entry %d", ErrCorrupt, r.Ledger, r.LedgerID, next)
		}
		nl := int(binary.BigEndian.Uint16(body))
		if 2+nl+16 > len(body) {
			return nil, fmt.Errorf("%w: %s/%d: ledger name overruns frame", ErrCorrupt, r.Ledger, r.LedgerID)
		}
		e := Entry{
			Ledger:   string(body[2 : 2+nl]),
			LedgerID: int64(binary.BigEndian.Uint64(body[2+nl:])),
			EntryID:  int64(binary.BigEndian.Uint64(body[2+nl+8:])),
			Data:     body[2+nl+16:],
		}
		if e.Ledger != r.Ledger || e.LedgerID != r.LedgerID || e.EntryID != next {
			return nil, fmt.Errorf("%w: frame holds %s/%d/%d, index says %s/%d/%d", ErrCorrupt, e.Ledger, e.LedgerID, e.EntryID, r.Ledger, r.LedgerID, next)
		}
		out = append(out, e)
		next++
	}
	if next != r.Last+1 {
		return nil, fmt.Errorf("%w: %s/%d: range ends at entry %d, index says %d", ErrCorrupt, r.Ledger, r.LedgerID, next-1, r.Last)
	}
	return out, nil
}

// segment escapes any string into one metadata path segment.
func segment(s string) string {
	var b strings.Builder
	b.WriteByte('e')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func sortRanges(rs []located) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i].r, rs[j].r
		if a.LedgerID != b.LedgerID {
			return a.LedgerID < b.LedgerID
		}
		return a.First < b.First
	})
}

func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are marshalled
	}
	return b
}
