package broker

// TestPulsarTxnModel drives the real coordinator (a durable broker) with
// random Pulsar-transaction operations and checks them against a model:
// NewPulsarTxn (long or 1 ms timeouts), AddPartitions, transactional
// appends (AppendAsync), plain appends, transactional acks (individual
// and cumulative) of plain entries on one subscription, EndPulsarTxn
// (commit, abort, and repeated ends), timeouts (CheckTimeouts) and
// restarts. After every operation: the error class (an ended transaction
// is ErrTxnNotFound for every command, a partition outside the
// transaction ErrInvalidTxnState), every partition's next index, last
// stable offset and aborted index, and which plain entries the
// subscription has acknowledged (only what committed transactions acked).
//
// Flags: -ptxn.seed=N reproduces one run; -ptxn.rounds, -ptxn.ops size it.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var (
	ptxnSeed   = flag.Uint64("ptxn.seed", 0, "TestPulsarTxnModel: run one round with this seed")
	ptxnRounds = flag.Int("ptxn.rounds", 4, "TestPulsarTxnModel: rounds (random seeds)")
	ptxnOps    = flag.Int("ptxn.ops", 150, "TestPulsarTxnModel: operations per round")
)

type mPulsarTxn struct {
	pid   int64
	short bool
	ended bool
	parts []string
	acks  []Position
	upTo  *Position
}

func TestPulsarTxnModel(t *testing.T) {
	for _, seed := range modelSeeds(*ptxnSeed, *ptxnRounds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runPulsarTxnModel(t, seed, *ptxnOps) })
	}
}

func runPulsarTxnModel(t *testing.T, seed uint64, ops int) {
	t.Logf("seed %d (reproduce with -ptxn.seed=%d)", seed, seed)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed^0x77))
	dir := t.TempDir()
	opts := Options{RetentionInterval: -1, Transactions: TxnOptions{CheckInterval: -1, MaxTimeout: time.Hour}}
	b := startDurable(t, dir, opts)
	co, err := b.Transactions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := []TopicName{mustTopic(t, "pm-a"), mustTopic(t, "pm-b")}
	parts := map[string]*mPart{}
	for _, n := range names {
		if _, err := b.OpenPartition(ctx, n, true); err != nil {
			t.Fatal(err)
		}
		parts[n.String()] = &mPart{open: map[int64]int64{}}
	}
	ackPart := names[0] // acks are of plain entries of pm-a, subscription "s"
	var plain []Position
	acked := map[Position]bool{}
	var txns []*mPulsarTxn

	end := func(m *mPulsarTxn, commit bool) {
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
			for _, p := range m.acks {
				acked[p] = true
			}
			if m.upTo != nil {
				for _, p := range plain {
					if !m.upTo.Less(p) {
						acked[p] = true
					}
				}
			}
		}
		m.ended = true
	}
	for op := range ops {
		var desc string
		var got, want error
		var m *mPulsarTxn
		if len(txns) > 0 {
			m = txns[rng.IntN(len(txns))]
		}
		// lookup resolves m as a handler does; ended: ErrTxnNotFound.
		lookup := func() (PulsarTxn, error) {
			tx, err := co.LookupPulsarTxn(m.pid)
			if m.ended != errors.Is(err, ErrTxnNotFound) || !m.ended && err != nil {
				t.Fatalf("op %d: lookup of %d (ended %v): %v", op, m.pid, m.ended, err)
			}
			return tx, err
		}
		switch k := rng.IntN(100); {
		case k < 12 || m == nil:
			// At most one open short transaction: CheckTimeouts aborts
			// several in no defined order, so their markers' order (and
			// the aborted index) would not be the model's.
			short := rng.IntN(3) == 0 && !slices.ContainsFunc(txns, func(m *mPulsarTxn) bool { return m.short && !m.ended })
			timeout := time.Hour
			if short {
				timeout = time.Millisecond
			}
			desc = fmt.Sprintf("new short %v", short)
			pid, err := co.NewPulsarTxn(ctx, timeout)
			if err != nil {
				t.Fatalf("op %d %s: %v", op, desc, err)
			}
			txns = append(txns, &mPulsarTxn{pid: pid, short: short})
		case k < 27:
			n := names[rng.IntN(len(names))]
			desc = fmt.Sprintf("add %d %s", m.pid, n.Local)
			tx, err := lookup()
			if err != nil {
				got, want = err, ErrTxnNotFound
				break
			}
			got = co.AddPartitions(ctx, tx.ID, tx.ProducerID, tx.Epoch, []TopicName{n})
			if !slices.Contains(m.parts, n.String()) {
				m.parts = append(m.parts, n.String())
			}
		case k < 47:
			n := names[rng.IntN(len(names))]
			cnt := int32(1 + rng.IntN(3))
			desc = fmt.Sprintf("append %d to %s x%d", m.pid, n.Local, cnt)
			tx, err := lookup()
			if err != nil {
				got, want = err, ErrTxnNotFound
				break
			}
			p, err := b.OpenPartition(ctx, n, false)
			if err != nil {
				t.Fatal(err)
			}
			h, err := co.AppendAsync(p, tx.Epoch, AppendRequest{Format: FormatKafka, MsgCount: cnt, Data: testKafkaBatch(m.pid, true, cnt), Transactional: true, ProducerID: m.pid})
			if err == nil {
				_, err = h.Wait(ctx)
			}
			got = err
			if !slices.Contains(m.parts, n.String()) {
				want = ErrInvalidTxnState
				break
			}
			mp := parts[n.String()]
			if _, ok := mp.open[m.pid]; !ok {
				mp.open[m.pid] = mp.next
			}
			mp.next += int64(cnt)
		case k < 57:
			n := names[rng.IntN(len(names))]
			desc = fmt.Sprintf("plain append to %s", n.Local)
			p, err := b.OpenPartition(ctx, n, false)
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.Append(ctx, AppendRequest{Format: FormatKafka, MsgCount: 1, Data: testKafkaBatch(-1, false, 1)})
			if err != nil {
				t.Fatalf("op %d %s: %v", op, desc, err)
			}
			parts[n.String()].next++
			if n == ackPart {
				plain = append(plain, res.Entry.Position)
			}
		case k < 70:
			if len(plain) == 0 {
				continue
			}
			var pos []Position
			for range 1 + rng.IntN(2) {
				pos = append(pos, plain[rng.IntN(len(plain))])
			}
			var upTo *Position
			if rng.IntN(4) == 0 {
				p := plain[rng.IntN(len(plain))]
				upTo = &p
			}
			desc = fmt.Sprintf("ack %d %v up to %v", m.pid, pos, upTo)
			tx, err := lookup()
			if err != nil {
				got, want = err, ErrTxnNotFound
				break
			}
			got = co.CommitAcks(ctx, tx.ID, tx.ProducerID, tx.Epoch, "s", ackPart, "", pos, upTo)
			m.acks = append(m.acks, pos...)
			if upTo != nil && (m.upTo == nil || m.upTo.Less(*upTo)) {
				m.upTo = upTo
			}
		case k < 85:
			commit := rng.IntN(3) != 0
			desc = fmt.Sprintf("end %d commit %v (ended %v)", m.pid, commit, m.ended)
			tx, err := lookup()
			if err != nil {
				got, want = err, ErrTxnNotFound
				break
			}
			got = co.EndPulsarTxn(ctx, tx, commit)
			end(m, commit)
		case k < 92:
			desc = "check timeouts"
			time.Sleep(3 * time.Millisecond)
			co.CheckTimeouts(ctx)
			for _, mt := range txns {
				if mt.short && !mt.ended {
					end(mt, false)
				}
			}
		default:
			desc = "restart"
			b.close()
			b = startDurable(t, dir, opts)
			if co, err = b.Transactions(ctx); err != nil {
				t.Fatal(err)
			}
		}

		if (want == nil) != (got == nil) || want != nil && !errors.Is(got, want) {
			t.Fatalf("op %d %s: error %v, model %v", op, desc, got, want)
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
		}
		p, err := b.OpenPartition(ctx, ackPart, false)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := p.Subscription(ctx, "s", false, InitialEarliest)
		for _, pos := range plain {
			is := err == nil && sub.Cursor().IsAcked(pos)
			if is != acked[pos] {
				t.Fatalf("op %d %s: %v acked %v, model %v (subscription: %v)", op, desc, pos, is, acked[pos], err)
			}
		}
	}
}
