package broker

// TestTxnLogModel drives a real partition (bbolt metadata, segment files in
// a temp dir) and a trivially correct model of KIP-98's partition state with
// the same random operations: transactional appends of a few producers
// (Kafka transactional batches, and Pulsar payloads marked with the
// transaction as the Pulsar handler stores a transaction's chunks), plain
// appends (Kafka and Pulsar), commit and abort markers, explicit checkpoints, clean
// restarts and crashes. A crash is a restart whose transaction record is
// put back to a copy taken earlier (what a crash before the next
// checkpoint leaves behind); the log itself is intact, since every append
// was acknowledged durable. After every operation the last stable offset,
// the whole aborted index, a random AbortedTxns range, the open
// transactions and the TxnState of a random entry must equal the model's.
//
// Flags: -txn.seed=N reproduces one run; -txn.rounds and -txn.ops size it.

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

var (
	txnSeed   = flag.Uint64("txn.seed", 0, "TestTxnLogModel: run one round with this seed")
	txnRounds = flag.Int("txn.rounds", 6, "TestTxnLogModel: rounds (random seeds)")
	txnOps    = flag.Int("txn.ops", 150, "TestTxnLogModel: operations per round")
)

// txnModel is the reference: indexes, open transactions, aborted index and
// what each index is.
type txnModel struct {
	next    int64
	open    map[int64]int64
	aborted []AbortedTxn
	kinds   map[int64]TxnEntryState // by first index; decided once the txn ends
	txnOf   map[int64]int64         // first index -> pid, for open txn data
}

func (m *txnModel) lso() int64 {
	l := m.next
	for _, f := range m.open {
		l = min(l, f)
	}
	return l
}

func (m *txnModel) state(first int64) TxnEntryState {
	if first >= m.lso() {
		return TxnUnstable
	}
	return m.kinds[first]
}

// testKafkaBatch is a Kafka v2 batch header (records elided: the broker
// reads only the header) with the transactional attribute and producer id.
func testKafkaBatch(pid int64, transactional bool, n int32) []byte {
	b := make([]byte, kbHeaderSize+8)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	b[16] = 2
	if transactional {
		binary.BigEndian.PutUint16(b[kbAttrOffset:], kbTransactional)
	}
	binary.BigEndian.PutUint32(b[23:], uint32(n-1))
	binary.BigEndian.PutUint64(b[kbProducerOffset:], uint64(pid))
	binary.BigEndian.PutUint32(b[57:], uint32(n))
	return b
}

// testPulsarPayload is a stored Pulsar payload ([0x0e01][crc][metaSize]
// [MessageMetadata][payload]) whose metadata carries txnid_least_bits =
// pid when transactional (how the Pulsar handler stores a transaction's
// chunks), a few ordinary fields around it either way.
func testPulsarPayload(pid int64, transactional bool) []byte {
	var md []byte
	md = protowire.AppendTag(md, 1, protowire.BytesType) // producer_name
	md = protowire.AppendString(md, "p")
	md = protowire.AppendTag(md, 2, protowire.VarintType) // sequence_id
	md = protowire.AppendVarint(md, 5)
	if transactional {
		md = protowire.AppendTag(md, pulsarFieldTxnLeast, protowire.VarintType)
		md = protowire.AppendVarint(md, uint64(pid))
		md = protowire.AppendTag(md, pulsarFieldTxnLeast+1, protowire.VarintType) // txnid_most_bits
		md = protowire.AppendVarint(md, 0)
	}
	md = protowire.AppendTag(md, 27, protowire.VarintType) // num_chunks_from_msg
	md = protowire.AppendVarint(md, 2)
	b := binary.BigEndian.AppendUint16(nil, pulsarMagic)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(md)))
	b = append(b, md...)
	b = append(b, "chunk"...)
	binary.BigEndian.PutUint32(b[2:], crc32.Checksum(b[6:], crcCastagnoli))
	return b
}

func TestTxnLogModel(t *testing.T) {
	old := txnCheckpointEvery
	txnCheckpointEvery = 3 // background checkpoints happen in every round
	t.Cleanup(func() { txnCheckpointEvery = old })
	for _, seed := range modelSeeds(*txnSeed, *txnRounds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runTxnModel(t, seed, *txnOps) })
	}
}

func runTxnModel(t *testing.T, seed uint64, ops int) {
	t.Logf("seed %d (reproduce with -txn.seed=%d)", seed, seed)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	dir := t.TempDir()
	n := mustTopic(t, "txn-model")
	b := startDurable(t, dir, Options{RetentionInterval: -1})
	p, err := b.OpenPartition(ctx, n, true)
	if err != nil {
		t.Fatal(err)
	}
	m := &txnModel{open: map[int64]int64{}, kinds: map[int64]TxnEntryState{}, txnOf: map[int64]int64{}}
	var saved [][]byte // copies of the transaction record, for crashes
	var firsts []int64 // first index of every entry
	pids := []int64{7, 8, 9, 1 << 40}

	restart := func(crash bool) {
		b.close()
		b = startDurable(t, dir, Options{RetentionInterval: -1})
		if crash && len(saved) > 0 {
			old := saved[rng.IntN(len(saved))]
			if _, err := b.store.Put(ctx, txnLogPath(n), old, -1); err != nil {
				t.Fatal(err)
			}
		}
		if p, err = b.OpenPartition(ctx, n, false); err != nil {
			t.Fatal(err)
		}
	}
	for op := range ops {
		var desc string
		switch k := rng.IntN(100); {
		case k < 35:
			pid := pids[rng.IntN(len(pids))]
			cnt := int32(1 + rng.IntN(3))
			desc = fmt.Sprintf("txn append pid %d x%d", pid, cnt)
			req := AppendRequest{Format: FormatKafka, MsgCount: cnt, Data: testKafkaBatch(pid, true, cnt), Transactional: true, ProducerID: pid}
			if rng.IntN(3) == 0 { // a Pulsar transaction's chunk: Pulsar bytes
				cnt = 1
				desc = fmt.Sprintf("txn pulsar append pid %d", pid)
				req.Format, req.MsgCount, req.Data = FormatPulsar, 1, testPulsarPayload(pid, true)
			}
			if rng.IntN(2) == 0 { // also through the dedup path
				req.Producer, req.SeqFirst, req.SeqLast = fmt.Sprint("kafka-", pid), m.next, m.next+int64(cnt)-1
			}
			r, err := p.Append(ctx, req)
			if err != nil {
				t.Fatalf("op %d %s: %v", op, desc, err)
			}
			if r.Entry.FirstIndex != m.next {
				t.Fatalf("op %d %s: first index %d, model %d", op, desc, r.Entry.FirstIndex, m.next)
			}
			if _, ok := m.open[pid]; !ok {
				m.open[pid] = m.next
			}
			m.txnOf[m.next] = pid
			firsts = append(firsts, m.next)
			m.next += int64(cnt)
		case k < 50:
			desc = "plain append"
			req := AppendRequest{Format: FormatKafka, MsgCount: 2, Data: testKafkaBatch(-1, false, 2)}
			if rng.IntN(3) == 0 {
				desc = "plain pulsar append"
				req = AppendRequest{Format: FormatPulsar, MsgCount: 2, Data: testPulsarPayload(0, false)}
			}
			r, err := p.Append(ctx, req)
			if err != nil || r.Entry.FirstIndex != m.next {
				t.Fatalf("op %d %s: %+v %v", op, desc, r.Entry, err)
			}
			m.kinds[m.next] = TxnVisible
			firsts = append(firsts, m.next)
			m.next += 2
		case k < 80:
			pid := pids[rng.IntN(len(pids))]
			commit := rng.IntN(2) == 0
			desc = fmt.Sprintf("marker pid %d commit %v", pid, commit)
			idx, err := p.WriteTxnMarker(ctx, TxnMarker{ProducerID: pid, Epoch: 1, Commit: commit, CoordinatorEpoch: 3})
			if err != nil || idx != m.next {
				t.Fatalf("op %d %s: index %d (model %d) %v", op, desc, idx, m.next, err)
			}
			if first, ok := m.open[pid]; ok {
				if !commit {
					m.aborted = append(m.aborted, AbortedTxn{ProducerID: pid, FirstIndex: first, LastIndex: idx})
				}
				st := TxnVisible
				if !commit {
					st = TxnAbortedEntry
				}
				for f, owner := range m.txnOf {
					if owner == pid && f >= first && f < idx {
						m.kinds[f] = st
						delete(m.txnOf, f)
					}
				}
				delete(m.open, pid)
			}
			m.kinds[idx] = TxnMarkerEntry
			firsts = append(firsts, idx)
			m.next++
		case k < 87:
			desc = "checkpoint"
			if err := p.checkpointTxns(ctx); err != nil {
				t.Fatalf("op %d %s: %v", op, desc, err)
			}
		case k < 93:
			desc = "restart"
			restart(false)
		default:
			desc = "crash"
			restart(true)
		}
		if r, err := b.store.Get(ctx, txnLogPath(n)); err == nil {
			saved = append(saved, slices.Clone(r.Value))
		}

		// Compare.
		if got, want := p.LastStableOffset(), m.lso(); got != want {
			t.Fatalf("op %d %s: LSO %d, model %d", op, desc, got, want)
		}
		if got := p.AbortedTxns(0, m.next+1); !slices.Equal(got, m.aborted) {
			t.Fatalf("op %d %s: aborted %v, model %v", op, desc, got, m.aborted)
		}
		from, to := rng.Int64N(m.next+1), rng.Int64N(m.next+1)
		var want []AbortedTxn
		for _, a := range m.aborted {
			if a.FirstIndex < to && a.LastIndex >= from {
				want = append(want, a)
			}
		}
		if got := p.AbortedTxns(from, to); !slices.Equal(got, want) {
			t.Fatalf("op %d %s: aborted in [%d,%d) %v, model %v", op, desc, from, to, got, want)
		}
		var open []OpenTxn
		for pid, f := range m.open {
			open = append(open, OpenTxn{ProducerID: pid, FirstIndex: f})
		}
		slices.SortFunc(open, func(a, b OpenTxn) int { return cmpInt64(a.ProducerID, b.ProducerID) })
		if got := p.OpenTxns(); !slices.Equal(got, open) {
			t.Fatalf("op %d %s: open %v, model %v", op, desc, got, open)
		}
		if len(firsts) > 0 {
			f := firsts[rng.IntN(len(firsts))]
			es, err := p.ReadFromIndex(ctx, f, 1, 1<<20)
			if err != nil || len(es) != 1 {
				t.Fatalf("op %d: read %d: %v", op, f, err)
			}
			if got, want := p.TxnState(&es[0]), m.state(f); got != want {
				t.Fatalf("op %d %s: TxnState(%d) %d, model %d", op, desc, f, got, want)
			}
		}
	}
}
