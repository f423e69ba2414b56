package broker

// TestTxnCoordinatorModel drives the real transaction coordinator (a
// durable broker: bbolt metadata, segment files) and a model of Kafka's
// transaction state machine with the same random operations on two
// transactional ids over three partitions and one group: InitProducerID
// (with and without the KIP-360 current id/epoch, sometimes stale),
// AddPartitions, AddGroup (and their transactions v2 forms JoinPartitions
// and JoinGroup), transactional appends, CommitOffsets, EndTxn and EndTxnV2
// (its epoch bump, empty aborts, retries with the epoch that ended the
// transaction) with current or stale epochs, timeouts (CheckTimeouts), restarts, and
// crashes right after a Prepare state was recorded (the record is set to
// Prepare* while the broker is down; the restarted coordinator must finish
// the transaction), and expiry of the ids with no transaction open. After every operation the error class, every record
// (producer id, epoch, state, partitions, groups), every partition's last
// stable offset and aborted index, and the group's committed offsets must
// equal the model's.
//
// Flags: -txnc.seed=N reproduces one run; -txnc.rounds, -txnc.ops size it.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var (
	txncSeed   = flag.Uint64("txnc.seed", 0, "TestTxnCoordinatorModel: run one round with this seed")
	txncRounds = flag.Int("txnc.rounds", 4, "TestTxnCoordinatorModel: rounds (random seeds)")
	txncOps    = flag.Int("txnc.ops", 150, "TestTxnCoordinatorModel: operations per round")
)

type mTxn struct {
	exists      bool
	pid         int64
	epoch, last int16
	state       TxnState
	short       bool // 1 ms timeout: CheckTimeouts aborts it when Ongoing
	parts       []string
	groups      []string
	offsets     map[string]int64 // partition -> pending next index (group "g")
	endedBy     *ProducerIDAndEpoch
}

type mPart struct {
	next    int64
	open    map[int64]int64
	aborted []AbortedTxn
}

func TestTxnCoordinatorModel(t *testing.T) {
	for _, seed := range modelSeeds(*txncSeed, *txncRounds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runTxnCoordinatorModel(t, seed, *txncOps) })
	}
}

func runTxnCoordinatorModel(t *testing.T, seed uint64, ops int) {
	t.Logf("seed %d (reproduce with -txnc.seed=%d)", seed, seed)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed^0x51))
	dir := t.TempDir()
	opts := Options{RetentionInterval: -1, Transactions: TxnOptions{CheckInterval: -1, MaxTimeout: time.Hour, IDExpiration: time.Hour}}
	b := startDurable(t, dir, opts)
	co, err := b.Transactions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := []TopicName{mustTopic(t, "cm-a"), mustTopic(t, "cm-b"), mustTopic(t, "cm-c")}
	parts := map[string]*mPart{}
	for _, n := range names {
		if _, err := b.OpenPartition(ctx, n, true); err != nil {
			t.Fatal(err)
		}
		parts[n.String()] = &mPart{open: map[int64]int64{}}
	}
	ids := []string{"x", "y"}
	txns := map[string]*mTxn{"x": {}, "y": {}}
	committed := map[string]int64{} // partition -> group g's next index; absent: none

	// end applies an end of txn m (commit or abort) to the model.
	end := func(m *mTxn, commit bool) {
		for _, pn := range m.parts {
			mp := parts[pn]
			if first, ok := mp.open[m.pid]; ok {
				if !commit {
					mp.aborted = append(mp.aborted, AbortedTxn{ProducerID: m.pid, FirstIndex: first, LastIndex: mp.next})
				}
				delete(mp.open, m.pid)
			}
			mp.next++ // the marker
		}
		if commit {
			for pn, off := range m.offsets {
				committed[pn] = min(max(off, 0), parts[pn].next)
			}
		}
		m.state = TxnCompleteAbort
		if commit {
			m.state = TxnCompleteCommit
		}
		m.parts, m.groups, m.offsets = nil, nil, nil
	}
	restart := func() {
		b.close()
		b = startDurable(t, dir, opts)
		var err error
		if co, err = b.Transactions(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// epochOf picks the epoch a call uses: mostly current, sometimes stale.
	epochOf := func(m *mTxn) (int16, bool) {
		if m.epoch > 0 && rng.IntN(6) == 0 {
			return m.epoch - 1, false
		}
		return m.epoch, true
	}
	// check is the producer check the model expects for a call.
	check := func(m *mTxn, current bool) error {
		switch {
		case !m.exists:
			return ErrInvalidProducerIDMapping
		case !current:
			return ErrTxnFenced
		}
		return nil
	}
	for op := range ops {
		id := ids[rng.IntN(len(ids))]
		m := txns[id]
		var desc string
		var got, want error
		switch k := rng.IntN(100); {
		case k < 12:
			short := rng.IntN(3) == 0
			timeout := time.Hour
			if short {
				timeout = time.Millisecond
			}
			cur := ProducerIDAndEpoch{ProducerID: -1}
			stale := false
			if m.exists && rng.IntN(2) == 0 {
				cur = ProducerIDAndEpoch{ProducerID: m.pid, Epoch: m.epoch}
				if m.epoch > 0 && rng.IntN(3) == 0 && m.last != m.epoch-1 {
					cur.Epoch, stale = m.epoch-1, true
				}
			}
			desc = fmt.Sprintf("init %s current %+v short %v", id, cur, short)
			var pe ProducerIDAndEpoch
			pe, got = co.InitProducerID(ctx, id, timeout, cur)
			switch {
			case stale:
				want = ErrTxnFenced
			case !m.exists:
				*m = mTxn{exists: true, pid: pe.ProducerID, last: -1, state: TxnEmpty}
			default:
				if m.state == TxnOngoing {
					end(m, false)
					m.epoch++
				}
				m.epoch++
				m.last = -1
				m.state = TxnEmpty
				m.parts, m.groups, m.offsets = nil, nil, nil
				m.endedBy = nil
			}
			if want == nil {
				m.short = short
				if pe.ProducerID != m.pid || pe.Epoch != m.epoch {
					t.Fatalf("op %d %s: got %+v, model %d/%d", op, desc, pe, m.pid, m.epoch)
				}
			}
		case k < 32:
			epoch, current := epochOf(m)
			var add []TopicName
			for _, n := range names {
				if rng.IntN(2) == 0 {
					add = append(add, n)
				}
			}
			join := rng.IntN(2) == 0
			desc = fmt.Sprintf("add partitions %s epoch %d %v (join %v)", id, epoch, add, join)
			if join {
				got = co.JoinPartitions(ctx, id, m.pid, epoch, add)
			} else {
				got = co.AddPartitions(ctx, id, m.pid, epoch, add)
			}
			if want = check(m, current); want == nil {
				if m.state != TxnOngoing {
					m.state, m.parts, m.groups, m.offsets, m.endedBy = TxnOngoing, nil, nil, nil, nil
				}
				for _, n := range add {
					if !slices.Contains(m.parts, n.String()) {
						m.parts = append(m.parts, n.String())
					}
				}
			}
		case k < 40:
			epoch, current := epochOf(m)
			join := rng.IntN(2) == 0
			desc = fmt.Sprintf("add group %s epoch %d (join %v)", id, epoch, join)
			if join {
				got = co.JoinGroup(ctx, id, m.pid, epoch, "g")
			} else {
				got = co.AddGroup(ctx, id, m.pid, epoch, "g")
			}
			if want = check(m, current); want == nil {
				if m.state != TxnOngoing {
					m.state, m.parts, m.groups, m.offsets, m.endedBy = TxnOngoing, nil, nil, nil, nil
				}
				if !slices.Contains(m.groups, "g") {
					m.groups = append(m.groups, "g")
				}
			}
		case k < 62:
			if !m.exists {
				continue
			}
			epoch, current := epochOf(m)
			n := names[rng.IntN(len(names))]
			cnt := int32(1 + rng.IntN(3))
			desc = fmt.Sprintf("append %s epoch %d to %s x%d", id, epoch, n.Local, cnt)
			p, err := b.OpenPartition(ctx, n, false)
			if err != nil {
				t.Fatal(err)
			}
			_, got = co.Append(ctx, p, epoch, AppendRequest{Format: FormatKafka, MsgCount: cnt, Data: testKafkaBatch(m.pid, true, cnt), Transactional: true, ProducerID: m.pid})
			switch {
			case !current:
				want = ErrProducerFenced
			case m.state != TxnOngoing || !slices.Contains(m.parts, n.String()):
				want = ErrInvalidTxnState
			default:
				mp := parts[n.String()]
				if _, ok := mp.open[m.pid]; !ok {
					mp.open[m.pid] = mp.next
				}
				mp.next += int64(cnt)
			}
		case k < 70:
			epoch, current := epochOf(m)
			n := names[rng.IntN(len(names))]
			off := rng.Int64N(parts[n.String()].next + 3)
			desc = fmt.Sprintf("commit offsets %s epoch %d %s@%d", id, epoch, n.Local, off)
			got = co.CommitOffsets(ctx, id, m.pid, epoch, "g", []TxnOffset{{Partition: n.String(), NextIndex: off}})
			if want = check(m, current); want == nil {
				if m.state != TxnOngoing || !slices.Contains(m.groups, "g") {
					want = ErrInvalidTxnState
				} else {
					if m.offsets == nil {
						m.offsets = map[string]int64{}
					}
					m.offsets[n.String()] = off
				}
			}
		case k < 77:
			epoch, _ := epochOf(m)
			pid := m.pid
			if m.endedBy != nil && rng.IntN(3) == 0 {
				pid, epoch = m.endedBy.ProducerID, m.endedBy.Epoch // a retry
			}
			commit := rng.IntN(3) != 0
			desc = fmt.Sprintf("end v2 %s %d/%d commit %v (state %s)", id, pid, epoch, commit, m.state)
			var pe ProducerIDAndEpoch
			pe, got = co.EndTxnV2(ctx, id, pid, epoch, commit)
			outcome := TxnCompleteAbort
			if commit {
				outcome = TxnCompleteCommit
			}
			switch {
			case !m.exists:
				want = ErrInvalidProducerIDMapping
			case m.endedBy != nil && *m.endedBy == ProducerIDAndEpoch{ProducerID: pid, Epoch: epoch}:
				if m.state != outcome {
					want = ErrInvalidTxnState
				}
			case epoch != m.epoch:
				want = ErrTxnFenced
			case m.state == TxnOngoing:
				end(m, commit)
				m.endedBy = &ProducerIDAndEpoch{ProducerID: m.pid, Epoch: m.epoch}
				m.epoch++
			case commit:
				want = ErrInvalidTxnState
			default:
				m.endedBy = &ProducerIDAndEpoch{ProducerID: m.pid, Epoch: m.epoch}
				m.epoch++
				m.state, m.parts, m.groups, m.offsets = TxnCompleteAbort, nil, nil, nil
			}
			if want == nil && got == nil && (pe.ProducerID != m.pid || pe.Epoch != m.epoch) {
				t.Fatalf("op %d %s: got %+v, model %d/%d", op, desc, pe, m.pid, m.epoch)
			}
		case k < 84:
			epoch, current := epochOf(m)
			commit := rng.IntN(3) != 0
			desc = fmt.Sprintf("end %s epoch %d commit %v (state %s)", id, epoch, commit, m.state)
			got = co.EndTxn(ctx, id, m.pid, epoch, commit)
			if want = check(m, current); want == nil {
				switch {
				case m.state == TxnOngoing:
					end(m, commit)
				case m.state == TxnCompleteCommit && commit, m.state == TxnCompleteAbort && !commit:
				default:
					want = ErrInvalidTxnState
				}
			}
		case k < 86:
			desc = "expire idle ids"
			// As of a moment past every record's expiration: each id
			// with no transaction open is forgotten.
			co.ExpireIdle(ctx, time.Now().Add(opts.Transactions.IDExpiration+time.Minute))
			for _, mt := range txns {
				if mt.exists && mt.state != TxnOngoing {
					*mt = mTxn{}
				}
			}
		case k < 89:
			desc = "check timeouts"
			time.Sleep(3 * time.Millisecond)
			co.CheckTimeouts(ctx)
			for _, mt := range txns {
				if mt.exists && mt.short && mt.state == TxnOngoing {
					end(mt, false)
					mt.last = mt.epoch
					mt.epoch++
				}
			}
		case k < 94:
			desc = "restart"
			restart()
		default:
			if !m.exists || m.state != TxnOngoing {
				continue
			}
			commit := rng.IntN(2) == 0
			desc = fmt.Sprintf("crash of %s in prepare (commit %v)", id, commit)
			b.close()
			b = startDurable(t, dir, Options{RetentionInterval: -1, Transactions: TxnOptions{CheckInterval: -1}})
			// Written before the coordinator loads (first use below).
			r, err := b.store.Get(ctx, txnPath(id))
			if err != nil {
				t.Fatal(err)
			}
			var rec TxnMetadata
			if err := json.Unmarshal(r.Value, &rec); err != nil {
				t.Fatal(err)
			}
			rec.State = TxnPrepareAbort
			if commit {
				rec.State = TxnPrepareCommit
			}
			raw, _ := json.Marshal(rec)
			if _, err := b.store.Put(ctx, txnPath(id), raw, r.Version); err != nil {
				t.Fatal(err)
			}
			b.close()
			b = startDurable(t, dir, opts)
			if co, err = b.Transactions(ctx); err != nil {
				t.Fatal(err)
			}
			end(m, commit)
		}

		// Compare.
		if (want == nil) != (got == nil) || want != nil && !errors.Is(got, want) {
			t.Fatalf("op %d %s: error %v, model %v", op, desc, got, want)
		}
		for _, tid := range ids {
			mt := txns[tid]
			rec, err := co.Describe(ctx, tid)
			if !mt.exists {
				if !errors.Is(err, ErrTxnNotFound) {
					t.Fatalf("op %d %s: %s: %+v %v, model: absent", op, desc, tid, rec, err)
				}
				continue
			}
			if err != nil || rec.ProducerID != mt.pid || rec.Epoch != mt.epoch || rec.LastEpoch != mt.last || rec.State != mt.state ||
				!slices.Equal(rec.Partitions, mt.parts) || !slices.Equal(rec.Groups, mt.groups) ||
				(rec.EndedBy == nil) != (mt.endedBy == nil) || rec.EndedBy != nil && *rec.EndedBy != *mt.endedBy {
				t.Fatalf("op %d %s: %s: %+v %v\nmodel %+v", op, desc, tid, rec, err, *mt)
			}
		}
		for _, n := range names {
			p, err := b.OpenPartition(ctx, n, false)
			if err != nil {
				t.Fatal(err)
			}
			mp := parts[n.String()]
			lso := mp.next
			for _, f := range mp.open {
				lso = min(lso, f)
			}
			if p.NextIndex() != mp.next || p.LastStableOffset() != lso {
				t.Fatalf("op %d %s: %s: next %d LSO %d, model %d %d", op, desc, n.Local, p.NextIndex(), p.LastStableOffset(), mp.next, lso)
			}
			if got := p.AbortedTxns(0, mp.next+1); !slices.Equal(got, mp.aborted) {
				t.Fatalf("op %d %s: %s: aborted %v, model %v", op, desc, n.Local, got, mp.aborted)
			}
			want, ok := committed[n.String()]
			sub, err := p.Subscription(ctx, "g", false, InitialLatest)
			switch {
			case !ok && err == nil:
				t.Fatalf("op %d %s: %s: group g has a subscription at %d, model none", op, desc, n.Local, sub.Cursor().NextIndex())
			case ok && (err != nil || sub.Cursor().NextIndex() != want):
				t.Fatalf("op %d %s: %s: group g at %v (%v), model %d", op, desc, n.Local, sub, err, want)
			}
		}
	}
}
