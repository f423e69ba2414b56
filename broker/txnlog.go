package broker

// Transactions in a partition's log (KIP-98's storage half), protocol-neutral.
//
// A transactional append (AppendRequest.Transactional) opens, for its
// producer id, a transaction on the partition at the append's first index
// unless one is already open. A transaction marker (Partition.WriteTxnMarker)
// ends it: a control batch in Kafka's control record format, which both
// protocols' readers recognise and skip (the format is fixed by Kafka's
// clients, which read the markers themselves; it is the one place the
// broker writes a wire format, because the marker is part of the log).
//
// Per partition the broker keeps, under Partition.mu:
//   - open: producer id -> first index of its open transaction;
//   - closing: transactions whose marker is appended but not yet durable
//     (they still hold the LSO back: a reader must not pass their records
//     before it can see how they ended);
//   - aborted: the aborted-transaction index (producer id, first index,
//     index of the abort marker), in marker order.
//
// INVARIANT: LastStableOffset = min(first index of every open or closing
// transaction, NextIndex).
//
// Recovery: a partition that never saw a transactional write has no
// transaction record and costs nothing on load. The first transactional
// append to a partition writes its record (txnRecord) before the append, so
// a crash can never leave transactional entries behind without one. The
// record carries a checkpoint (the state as of an index C, written on
// close and every txnCheckpointEvery markers); loading scans the log from C
// (from the log start without one) and replays the transactional entries
// and markers. A stale checkpoint is still correct: the scan starts earlier.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"sort"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/metadata"
)

// pathTxnLogs holds one txnRecord per partition that ever had a
// transactional write: /admin/txn-logs/<tenant>/<ns>/<domain>/<topic>.
const pathTxnLogs = "admin/txn-logs"

// txnRecordVersion is the format version of txnRecord; a newer one is refused.
const txnRecordVersion = 1

// txnCheckpointEvery is how many markers a partition writes between two
// background checkpoints (besides the one on close).
var txnCheckpointEvery = 256

// txnRecord is a partition's persisted transaction state: its existence
// says the partition has transactional entries; Checkpoint, when >= 0, is
// the index up to which (exclusive) Open and Aborted are complete.
type txnRecord struct {
	Version    int          `json:"version"`
	Checkpoint int64        `json:"checkpoint"`
	Open       []OpenTxn    `json:"open,omitempty"`
	Aborted    []AbortedTxn `json:"aborted,omitempty"`
}

// OpenTxn is a transaction still open on a partition.
type OpenTxn struct {
	ProducerID int64 `json:"pid"`
	FirstIndex int64 `json:"first"`
}

// AbortedTxn is one entry of a partition's aborted-transaction index: the
// producer's records from FirstIndex up to the abort marker at LastIndex
// are aborted (Kafka's AbortedTxn, whose lastOffset is the marker's).
type AbortedTxn struct {
	ProducerID int64 `json:"pid"`
	FirstIndex int64 `json:"first"`
	LastIndex  int64 `json:"last"`
}

// TxnMarker ends a producer's transaction on a partition.
type TxnMarker struct {
	ProducerID int64
	Epoch      int16
	Commit     bool
	// CoordinatorEpoch is recorded in the marker (Kafka's control record value).
	CoordinatorEpoch int32
}

// closingTxn is a transaction whose marker is in flight.
type closingTxn struct {
	pid    int64
	first  int64 // -1: no data of the producer was open here
	marker int64 // the marker's index
	commit bool
}

// partitionTxns is a partition's transaction state, guarded by Partition.mu.
type partitionTxns struct {
	used    bool // the partition's txnRecord exists
	open    map[int64]int64
	closing []closingTxn
	aborted []AbortedTxn
	markers int // since the last checkpoint
	// changed is closed (and replaced) when a marker completes: the LSO
	// may have moved although no entry became visible (see TxnChanged).
	changed chan struct{}
}

func txnLogPath(n TopicName) string { return metadata.Join(pathTxnLogs, n.LedgerName()) }

// Kafka RecordBatch v2 header offsets the broker reads (see
// protocol/kafka/batch.go for the layout) and the attribute bits.
const (
	kbAttrOffset     = 21
	kbProducerOffset = 43
	kbHeaderSize     = 61
	kbTransactional  = 0x10
	kbControl        = 0x20
)

var crcCastagnoli = crc32.MakeTable(crc32.Castagnoli)

// entryTxn classifies a stored entry: whether it is transactional data or
// a marker, of which producer, and for a marker whether it commits.
type entryTxn struct {
	transactional bool
	control       bool
	commit        bool
	pid           int64
}

func classifyEntry(e *Entry) entryTxn {
	if e.Format == FormatPulsar {
		pid, ok := pulsarTxnProducer(e.Data)
		return entryTxn{transactional: ok, pid: pid}
	}
	if e.Format != FormatKafka || len(e.Data) < kbHeaderSize || e.Data[16] != 2 {
		return entryTxn{}
	}
	attrs := binary.BigEndian.Uint16(e.Data[kbAttrOffset:])
	t := entryTxn{
		transactional: attrs&kbTransactional != 0,
		control:       attrs&kbControl != 0,
		pid:           int64(binary.BigEndian.Uint64(e.Data[kbProducerOffset:])),
	}
	if t.control {
		// One control record: length, attributes, timestamp delta,
		// offset delta (varints, each one byte here or more), key.
		t.commit = controlType(e.Data[kbHeaderSize:]) == 1
	}
	return t
}

// Pulsar payload framing ([0x0e01][u32 crc32c][u32 metaSize][MessageMetadata]
// [payload]) and the MessageMetadata field that carries a transaction's
// low id bits (Pulsar's txnid_least_bits).
const (
	pulsarMagic         = 0x0e01
	pulsarHdrSize       = 10
	pulsarFieldTxnLeast = 22
)

// pulsarTxnProducer reports whether a stored Pulsar payload belongs to a
// transaction and of which producer id: its MessageMetadata carries
// txnid_least_bits, the transaction's producer id (Pulsar transaction ids
// are (0, producer id)). The Pulsar handler stores a transaction's chunked
// messages so, as Pulsar itself stores transactional messages, because a
// chunk has no Kafka batch form (its other transactional messages are Kafka
// transactional batches); it refuses that field in a SEND outside a
// transaction, so only the coordinator's producers carry it. This is the
// second wire detail the broker reads, for the same reason as the Kafka
// batch header: recovery reads transactions from the stored bytes. When
// the field repeats, the last one counts (protobuf's rule).
func pulsarTxnProducer(b []byte) (int64, bool) {
	if len(b) < pulsarHdrSize || binary.BigEndian.Uint16(b) != pulsarMagic {
		return 0, false
	}
	size := int64(binary.BigEndian.Uint32(b[6:]))
	if size > int64(len(b)-pulsarHdrSize) {
		return 0, false
	}
	md := b[pulsarHdrSize : pulsarHdrSize+size]
	var pid uint64
	found := false
	for len(md) > 0 {
		num, typ, n := protowire.ConsumeTag(md)
		if n < 0 {
			return 0, false
		}
		md = md[n:]
		if num == pulsarFieldTxnLeast && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(md)
			if n < 0 {
				return 0, false
			}
			pid, found, md = v, true, md[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, md)
		if n < 0 {
			return 0, false
		}
		md = md[n:]
	}
	return int64(pid), found
}

// controlType reads the control record type from a control batch's
// record bytes (-1 when unreadable). Record layout: length varint,
// attributes int8, timestamp delta varint, offset delta varint, key
// length varint, key (int16 version, int16 type).
func controlType(rec []byte) int {
	r := rec
	for i := range 5 {
		n := 1 // attributes: one plain byte
		if i != 1 {
			n = varintLen(r)
		}
		if n <= 0 || len(r) < n {
			return -1
		}
		r = r[n:]
	}
	if len(r) < 4 {
		return -1
	}
	return int(int16(binary.BigEndian.Uint16(r[2:])))
}

// varintLen is the length of the varint at the start of b (0: malformed).
func varintLen(b []byte) int {
	for i := 0; i < len(b) && i < 10; i++ {
		if b[i] < 0x80 {
			return i + 1
		}
	}
	return 0
}

// appendControlBatch appends a Kafka control batch holding one commit or
// abort marker (KIP-98: key = version 0, type 0 abort / 1 commit; value =
// version 0, coordinator epoch), base offset 0 (fetch rewrites it).
func appendControlBatch(dst []byte, m TxnMarker, now int64) []byte {
	typ := int16(0)
	if m.Commit {
		typ = 1
	}
	var rec []byte
	rec = append(rec, 0)    // attributes
	rec = append(rec, 0)    // timestamp delta 0 (zigzag varint)
	rec = append(rec, 0)    // offset delta 0
	rec = append(rec, 4<<1) // key length 4 (zigzag)
	rec = binary.BigEndian.AppendUint16(rec, 0)
	rec = binary.BigEndian.AppendUint16(rec, uint16(typ))
	rec = append(rec, 6<<1) // value length 6
	rec = binary.BigEndian.AppendUint16(rec, 0)
	rec = binary.BigEndian.AppendUint32(rec, uint32(m.CoordinatorEpoch))
	rec = append(rec, 0) // no headers

	start := len(dst)
	dst = binary.BigEndian.AppendUint64(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(kbHeaderSize-12+1+len(rec)))
	dst = binary.BigEndian.AppendUint32(dst, 0) // partition leader epoch
	dst = append(dst, 2)                        // magic
	dst = append(dst, 0, 0, 0, 0)               // crc, below
	dst = binary.BigEndian.AppendUint16(dst, kbControl|kbTransactional)
	dst = binary.BigEndian.AppendUint32(dst, 0) // last offset delta
	dst = binary.BigEndian.AppendUint64(dst, uint64(now))
	dst = binary.BigEndian.AppendUint64(dst, uint64(now))
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.ProducerID))
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Epoch))
	dst = binary.BigEndian.AppendUint32(dst, 0xffffffff) // base sequence -1
	dst = binary.BigEndian.AppendUint32(dst, 1)          // one record
	dst = append(dst, byte(len(rec)<<1))                 // record length (zigzag, < 64)
	dst = append(dst, rec...)
	binary.BigEndian.PutUint32(dst[start+17:], crc32.Checksum(dst[start+kbAttrOffset:], crcCastagnoli))
	return dst
}

// ---- the append side ----

// ensureTxnRecord creates the partition's txnRecord before its first
// transactional append (see the recovery note above). Called without
// locks held.
func (p *Partition) ensureTxnRecord(ctx context.Context) error {
	p.mu.Lock()
	used := p.mu.txns.used
	p.mu.Unlock()
	if used {
		return nil
	}
	raw, _ := json.Marshal(txnRecord{Version: txnRecordVersion, Checkpoint: -1})
	_, err := p.b.store.Put(ctx, txnLogPath(p.name), raw, metadata.NotExists)
	if err != nil && !errors.Is(err, metadata.ErrExists) {
		return fmt.Errorf("broker: %s: recording transactional use: %w", p.name, err)
	}
	p.mu.Lock()
	p.mu.txns.used = true
	p.mu.Unlock()
	return nil
}

// noteTxnAppend records a transactional append assigned at index first.
// Called with appendMu held (so the assignment order is the log order).
func (p *Partition) noteTxnAppend(pid, first int64) {
	p.mu.Lock()
	if _, ok := p.mu.txns.open[pid]; !ok {
		if p.mu.txns.open == nil {
			p.mu.txns.open = map[int64]int64{}
		}
		p.mu.txns.open[pid] = first
	}
	p.mu.Unlock()
}

// WriteTxnMarker appends a commit or abort marker for m.ProducerID and
// returns its index once durable: the producer's open transaction on the
// partition is then over (aborted ones enter the aborted index). A marker
// for a producer without an open transaction here is written all the same
// (a coordinator finishing a transaction after a restart may repeat one);
// readers ignore it.
func (p *Partition) WriteTxnMarker(ctx context.Context, m TxnMarker) (int64, error) {
	select {
	case <-p.done:
		return 0, fmt.Errorf("%w: partition %s", ErrClosed, p.name)
	default:
	}
	if err := p.ensureTxnRecord(ctx); err != nil {
		return 0, err
	}
	data := appendControlBatch(nil, m, time.Now().UnixMilli())
	// No batch checked against the store before this marker's position
	// may take a position after it (appendChecked, txncluster.go).
	p.txnCheck.Lock()
	p.appendMu.Lock()
	pending, err := p.ml.AppendAsync(managedledger.Entry{Format: FormatKafka, MsgCount: 1, Data: data})
	if err != nil {
		p.appendMu.Unlock()
		p.txnCheck.Unlock()
		return 0, mapLedgerErr(err)
	}
	idx := pending.Assigned().FirstIndex
	ct := closingTxn{pid: m.ProducerID, first: -1, marker: idx, commit: m.Commit}
	p.mu.Lock()
	if first, ok := p.mu.txns.open[m.ProducerID]; ok {
		ct.first = first
		delete(p.mu.txns.open, m.ProducerID)
	}
	p.mu.txns.closing = append(p.mu.txns.closing, ct)
	p.mu.Unlock()
	p.appendMu.Unlock()
	p.txnCheck.Unlock()

	_, err = pending.Wait(context.WithoutCancel(ctx))
	p.mu.Lock()
	i := slices.IndexFunc(p.mu.txns.closing, func(c closingTxn) bool { return c.marker == idx })
	if i >= 0 {
		p.mu.txns.closing = slices.Delete(p.mu.txns.closing, i, i+1)
	}
	checkpoint := false
	if err != nil {
		// The marker did not make it: the transaction is open again (at
		// its first index, whatever the producer appended since).
		if ct.first >= 0 {
			if cur, ok := p.mu.txns.open[ct.pid]; !ok || ct.first < cur {
				p.mu.txns.open[ct.pid] = ct.first
			}
		}
	} else {
		p.applyMarkerLocked(ct)
		p.mu.txns.markers++
		checkpoint = p.mu.txns.markers >= txnCheckpointEvery
	}
	if ch := p.mu.txns.changed; ch != nil {
		close(ch)
		p.mu.txns.changed = nil
	}
	p.mu.Unlock()
	if err != nil {
		return 0, mapLedgerErr(err)
	}
	if checkpoint {
		// Inline (one metadata write per txnCheckpointEvery markers):
		// the caller is the coordinator, which waits for markers anyway.
		if err := p.checkpointTxns(context.WithoutCancel(ctx)); err != nil {
			p.b.log.Warn("transaction checkpoint failed", "topic", p.name.String(), "err", err)
		}
	}
	return idx, nil
}

// applyMarkerLocked records the outcome of a durable marker. p.mu held.
func (p *Partition) applyMarkerLocked(ct closingTxn) {
	if !ct.commit && ct.first >= 0 {
		p.mu.txns.aborted = append(p.mu.txns.aborted, AbortedTxn{ProducerID: ct.pid, FirstIndex: ct.first, LastIndex: ct.marker})
	}
}

// ---- the read side ----

// LastStableOffset is the first index a read_committed reader may not
// read yet: the first index of the oldest open transaction, else NextIndex.
func (p *Partition) LastStableOffset() int64 {
	next := p.ml.NextIndex()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lsoLocked(next)
}

func (p *Partition) lsoLocked(next int64) int64 {
	lso := next
	for _, first := range p.mu.txns.open {
		lso = min(lso, first)
	}
	for _, c := range p.mu.txns.closing {
		if c.first >= 0 {
			lso = min(lso, c.first)
		}
	}
	return lso
}

// TxnChanged returns a channel closed when a transaction marker completes
// on the partition: the last stable offset may then move without a new
// entry becoming visible after the marker's own (Changed), so readers held
// at the LSO wait on both. Take a new channel after each wake-up.
func (p *Partition) TxnChanged() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.txns.changed == nil {
		p.mu.txns.changed = make(chan struct{})
	}
	return p.mu.txns.changed
}

// HasTransactions reports whether the partition ever had a transactional
// write (readers may skip every transaction check otherwise).
func (p *Partition) HasTransactions() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.txns.used
}

// AbortedTxns lists the aborted transactions whose records may lie in
// [from, to): those with FirstIndex < to and LastIndex >= from, in marker
// order (what a Kafka Fetch returns for the records it sends).
func (p *Partition) AbortedTxns(from, to int64) []AbortedTxn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []AbortedTxn
	ab := p.mu.txns.aborted
	// aborted is in marker order, so LastIndex ascends: skip those before from.
	i := sort.Search(len(ab), func(i int) bool { return ab[i].LastIndex >= from })
	for _, a := range ab[i:] {
		if a.FirstIndex < to {
			out = append(out, a)
		}
	}
	return out
}

// OpenTxns lists the partition's open transactions sorted by producer id
// (in-flight markers' transactions included).
func (p *Partition) OpenTxns() []OpenTxn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]OpenTxn, 0, len(p.mu.txns.open))
	for pid, first := range p.mu.txns.open {
		out = append(out, OpenTxn{ProducerID: pid, FirstIndex: first})
	}
	for _, c := range p.mu.txns.closing {
		if c.first >= 0 {
			out = append(out, OpenTxn{ProducerID: c.pid, FirstIndex: c.first})
		}
	}
	slices.SortFunc(out, func(a, b OpenTxn) int { return cmpInt64(a.ProducerID, b.ProducerID) })
	return out
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TxnEntryState is how a transaction-aware reader treats an entry.
type TxnEntryState int

const (
	// TxnVisible: deliver (plain or committed transactional data).
	TxnVisible TxnEntryState = iota
	// TxnMarkerEntry: a commit/abort marker; never a message for clients
	// that do not read markers themselves.
	TxnMarkerEntry
	// TxnAbortedEntry: data of an aborted transaction.
	TxnAbortedEntry
	// TxnUnstable: at or after the last stable offset; its outcome is not
	// known yet, so a reader must wait.
	TxnUnstable
)

// TxnState tells a reader that does not interpret markers (Pulsar
// dispatch) how to treat e. For a partition without transactions it is
// always TxnVisible.
func (p *Partition) TxnState(e *Entry) TxnEntryState {
	p.mu.Lock()
	used := p.mu.txns.used
	p.mu.Unlock()
	if !used {
		return TxnVisible
	}
	if e.FirstIndex >= p.LastStableOffset() {
		return TxnUnstable
	}
	t := classifyEntry(e)
	switch {
	case t.control:
		return TxnMarkerEntry
	case !t.transactional:
		return TxnVisible
	}
	for _, a := range p.AbortedTxns(e.FirstIndex, e.FirstIndex+1) {
		if a.ProducerID == t.pid && a.FirstIndex <= e.FirstIndex && e.FirstIndex < a.LastIndex {
			return TxnAbortedEntry
		}
	}
	return TxnVisible
}

// ---- recovery and checkpoints ----

// recoverTxns rebuilds the transaction state on load (see the package
// note above). It runs before the partition is published.
func (p *Partition) recoverTxns(ctx context.Context) error {
	r, err := p.b.store.Get(ctx, txnLogPath(p.name))
	if errors.Is(err, metadata.ErrNotFound) {
		return nil // never transactional: nothing to scan
	}
	if err != nil {
		return err
	}
	var rec txnRecord
	if err := json.Unmarshal(r.Value, &rec); err != nil {
		return fmt.Errorf("decoding %s: %w", txnLogPath(p.name), err)
	}
	if rec.Version > txnRecordVersion {
		return fmt.Errorf("transaction record version %d is newer than %d", rec.Version, txnRecordVersion)
	}
	first, next := p.ml.FirstIndex(), p.ml.NextIndex()
	t := partitionTxns{used: true, open: map[int64]int64{}}
	from := first
	if rec.Checkpoint >= 0 && rec.Checkpoint <= next {
		from = max(rec.Checkpoint, first)
		for _, o := range rec.Open {
			t.open[o.ProducerID] = o.FirstIndex
		}
		t.aborted = append(t.aborted, rec.Aborted...)
	}
	for idx := from; idx < next; {
		es, err := p.ml.ReadFromIndex(ctx, idx, 256, 4<<20)
		if err != nil {
			return mapLedgerErr(err)
		}
		if len(es) == 0 {
			break
		}
		for i := range es {
			e := &es[i]
			idx = e.LastIndex() + 1
			c := classifyEntry(e)
			switch {
			case c.control:
				ct := closingTxn{pid: c.pid, first: -1, marker: e.FirstIndex, commit: c.commit}
				if f, ok := t.open[c.pid]; ok {
					ct.first = f
					delete(t.open, c.pid)
				}
				if !ct.commit && ct.first >= 0 {
					t.aborted = append(t.aborted, AbortedTxn{ProducerID: ct.pid, FirstIndex: ct.first, LastIndex: ct.marker})
				}
			case c.transactional:
				if _, ok := t.open[c.pid]; !ok {
					t.open[c.pid] = e.FirstIndex
				}
			}
			e.Release()
		}
	}
	p.mu.Lock()
	p.mu.txns = t
	p.mu.Unlock()
	return nil
}

// checkpointTxns writes the partition's transaction state as of its
// visible end, so that the next load scans only what follows. Aborted
// transactions wholly before the log start are dropped.
func (p *Partition) checkpointTxns(ctx context.Context) error {
	p.appendMu.Lock() // no assignment between the snapshot and its index
	next, first := p.ml.NextIndex(), p.ml.FirstIndex()
	p.mu.Lock()
	if !p.mu.txns.used {
		p.mu.Unlock()
		p.appendMu.Unlock()
		return nil
	}
	rec := txnRecord{Version: txnRecordVersion, Checkpoint: next}
	for pid, f := range p.mu.txns.open {
		if f < next {
			rec.Open = append(rec.Open, OpenTxn{ProducerID: pid, FirstIndex: f})
		}
	}
	var aborted []AbortedTxn
	for _, c := range p.mu.txns.closing {
		switch {
		case c.marker < next: // durable, its outcome not applied yet
			if !c.commit && c.first >= 0 {
				aborted = append(aborted, AbortedTxn{ProducerID: c.pid, FirstIndex: c.first, LastIndex: c.marker})
			}
		case c.first >= 0 && c.first < next:
			rec.Open = append(rec.Open, OpenTxn{ProducerID: c.pid, FirstIndex: c.first})
		}
	}
	// Aborted transactions wholly before the log start are dropped, in
	// memory too: retention removed their records.
	p.mu.txns.aborted = slices.DeleteFunc(p.mu.txns.aborted, func(a AbortedTxn) bool { return a.LastIndex < first })
	rec.Aborted = append(rec.Aborted, p.mu.txns.aborted...)
	rec.Aborted = append(rec.Aborted, aborted...)
	slices.SortFunc(rec.Aborted, func(a, b AbortedTxn) int { return cmpInt64(a.LastIndex, b.LastIndex) })
	slices.SortFunc(rec.Open, func(a, b OpenTxn) int { return cmpInt64(a.ProducerID, b.ProducerID) })
	p.mu.txns.markers = 0
	p.mu.Unlock()
	p.appendMu.Unlock()
	// Compare-and-swap like every record (one owner writes it, but a
	// delete of the topic must not be undone by a late checkpoint).
	_, err := updateJSON(ctx, p.b.store, txnLogPath(p.name), nil, func(v *txnRecord) error {
		*v = rec
		return nil
	})
	return err
}
