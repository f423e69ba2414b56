package broker

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"testing"
	"time"
)

// TestTxnV2EpochExhaustion runs transactions v2 ends across the end of the
// epoch space: the end at the last usable epoch writes its markers with
// the last epoch under the old producer id (closing the transaction on
// the partition), then moves the producer to a new id at epoch 0; a retry
// of that end gets the new id, the old id is no longer the transaction's,
// and the new id runs transactions as usual.
func TestTxnV2EpochExhaustion(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := Options{RetentionInterval: -1, Transactions: TxnOptions{CheckInterval: -1, MaxTimeout: time.Hour}}
	b := startDurable(t, dir, opts)
	co, err := b.Transactions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := mustTopic(t, "v2-exhaust")
	if _, err := b.OpenPartition(ctx, n, true); err != nil {
		t.Fatal(err)
	}
	pe, err := co.InitProducerID(ctx, "t", time.Hour, ProducerIDAndEpoch{ProducerID: -1})
	if err != nil {
		t.Fatal(err)
	}
	// Age the producer to two epochs before the last (the store is the
	// truth: edit it while no coordinator has it cached).
	b.close()
	b = startDurable(t, dir, opts)
	r, err := b.store.Get(ctx, txnPath("t"))
	if err != nil {
		t.Fatal(err)
	}
	var rec TxnMetadata
	if err := json.Unmarshal(r.Value, &rec); err != nil {
		t.Fatal(err)
	}
	rec.Epoch = math.MaxInt16 - 2
	raw, _ := json.Marshal(rec)
	if _, err := b.store.Put(ctx, txnPath("t"), raw, r.Version); err != nil {
		t.Fatal(err)
	}
	b.close()
	b = startDurable(t, dir, opts)
	if co, err = b.Transactions(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := b.OpenPartition(ctx, n, false)
	if err != nil {
		t.Fatal(err)
	}
	old := ProducerIDAndEpoch{ProducerID: pe.ProducerID, Epoch: math.MaxInt16 - 2}
	produce := func(pe ProducerIDAndEpoch) {
		t.Helper()
		if err := co.JoinPartitions(ctx, "t", pe.ProducerID, pe.Epoch, []TopicName{n}); err != nil {
			t.Fatal(err)
		}
		if _, err := co.Append(ctx, p, pe.Epoch, AppendRequest{Format: FormatKafka, MsgCount: 2, Data: testKafkaBatch(pe.ProducerID, true, 2), Transactional: true, ProducerID: pe.ProducerID}); err != nil {
			t.Fatal(err)
		}
	}

	produce(old)
	got, err := co.EndTxnV2(ctx, "t", old.ProducerID, old.Epoch, true)
	if err != nil || got != (ProducerIDAndEpoch{ProducerID: old.ProducerID, Epoch: math.MaxInt16 - 1}) {
		t.Fatalf("commit at epoch %d: %+v %v", old.Epoch, got, err)
	}
	last := got
	produce(last)
	start := p.NextIndex() - 2
	next, err := co.EndTxnV2(ctx, "t", last.ProducerID, last.Epoch, false)
	if err != nil || next.ProducerID == last.ProducerID || next.Epoch != 0 {
		t.Fatalf("abort at epoch %d: %+v %v, want a new producer id at epoch 0", last.Epoch, next, err)
	}
	if lso := p.LastStableOffset(); lso != p.NextIndex() {
		t.Fatalf("LSO %d, next %d: the abort marker did not close the transaction", lso, p.NextIndex())
	}
	wantAborted := []AbortedTxn{{ProducerID: last.ProducerID, FirstIndex: start, LastIndex: p.NextIndex() - 1}}
	if ab := p.AbortedTxns(0, p.NextIndex()); !slices.Equal(ab, wantAborted) {
		t.Fatalf("aborted %v, want %v", ab, wantAborted)
	}
	if again, err := co.EndTxnV2(ctx, "t", last.ProducerID, last.Epoch, false); err != nil || again != next {
		t.Fatalf("retried abort: %+v %v, want %+v", again, err, next)
	}
	if err := co.JoinPartitions(ctx, "t", last.ProducerID, last.Epoch, []TopicName{n}); !errors.Is(err, ErrInvalidProducerIDMapping) {
		t.Fatalf("old producer id after the move: %v, want ErrInvalidProducerIDMapping", err)
	}
	produce(next)
	if got, err := co.EndTxnV2(ctx, "t", next.ProducerID, next.Epoch, true); err != nil || got != (ProducerIDAndEpoch{ProducerID: next.ProducerID, Epoch: 1}) {
		t.Fatalf("commit under the new id: %+v %v", got, err)
	}
	// And the move survives a restart.
	b.close()
	b = startDurable(t, dir, opts)
	if co, err = b.Transactions(ctx); err != nil {
		t.Fatal(err)
	}
	if d, err := co.Describe(ctx, "t"); err != nil || d.ProducerID != next.ProducerID || d.Epoch != 1 || d.State != TxnCompleteCommit {
		t.Fatalf("after restart: %+v %v", d, err)
	}
}
