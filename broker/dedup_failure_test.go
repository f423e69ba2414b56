package broker

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/segment"
)

// TestDedupAcrossStorageFailure: a storage failure loses a producer's
// batches in flight, the ledger recovers, and then (1) a later batch of
// the producer is refused until it resends from the first lost one, so
// the lost batches are neither taken for duplicates nor reordered; (2) a
// resend of a durable batch is still a duplicate; (3) the resend lands in
// order. Kafka's strict sequences and Pulsar's gapped ones alike.
func TestDedupAcrossStorageFailure(t *testing.T) {
	for _, strict := range []bool{true, false} {
		t.Run(map[bool]string{true: "kafka", false: "pulsar"}[strict], func(t *testing.T) {
			ctx := context.Background()
			ffs := &segment.FaultFS{FS: segment.OSFS{}}
			b := newTestBrokerOn(t, managedledger.FactoryOptions{Dir: t.TempDir(), FS: ffs,
				Logger: quietTestLogger(), StorageRetryInterval: 10 * time.Millisecond})
			p, err := b.OpenPartition(ctx, mustTopic(t, "dedupfail"), true)
			if err != nil {
				t.Fatal(err)
			}
			reqOf := func(producer string, seq int64) AppendRequest {
				return AppendRequest{Format: FormatKafka, MsgCount: 1, Data: []byte{byte(seq)}, Producer: producer,
					SeqFirst: seq, SeqLast: seq, StrictSequence: strict}
			}
			req := func(seq int64) AppendRequest { return reqOf("prod", seq) }
			if _, err := p.Append(ctx, req(0)); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Append(ctx, reqOf("other", 0)); err != nil {
				t.Fatal(err)
			}
			ffs.FailSyncs("", syscall.EIO)
			if _, err := p.Append(ctx, req(1)); !errors.Is(err, ErrStorage) {
				t.Fatalf("append during the fault: %v", err)
			}
			// Refused at once by the failed ledger (nothing in flight):
			// "other" must resend from 1 as well.
			if _, err := p.Append(ctx, reqOf("other", 1)); !errors.Is(err, ErrStorage) {
				t.Fatalf("append to the failed ledger: %v", err)
			}
			// Many batches in flight at once (more than the dedup window
			// remembers), all lost together: settling must find the first.
			ffs.FailSyncs("", nil)
			waitRecovered(t, p)
			ffs.FailSyncs("", syscall.EIO)
			var inflight []*PendingAppend
			for seq := int64(0); seq < 3*dedupWindow; seq++ {
				if a, err := p.AppendAsync(reqOf("many", seq)); err == nil {
					inflight = append(inflight, a)
				}
			}
			for _, a := range inflight {
				if _, err := a.Wait(ctx); !errors.Is(err, ErrStorage) {
					t.Fatalf("batch in flight at the failure: %v", err)
				}
			}
			ffs.FailSyncs("", nil)
			waitRecovered(t, p)
			for seq := int64(0); seq < 3*dedupWindow; seq++ {
				if r, err := p.Append(ctx, reqOf("many", seq)); err != nil || r.Duplicate {
					t.Fatalf("many's resend of %d: %+v, %v", seq, r, err)
				}
			}
			ffs.FailSyncs("", syscall.EIO)
			if _, err := p.Append(ctx, req(1)); !errors.Is(err, ErrStorage) {
				t.Fatalf("append during the second fault: %v", err)
			}
			ffs.FailSyncs("", nil)
			// Recovery is in the background: batch 2 is refused (before and
			// after it) because batch 1 was lost and not resent yet.
			deadline := time.Now().Add(5 * time.Second)
			for {
				_, err := p.Append(ctx, req(2))
				if !errors.Is(err, ErrStorage) {
					t.Fatalf("batch after the lost one: %v, want a storage error until the resend", err)
				}
				if _, ferr := p.ml.StorageFailure(); ferr == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("ledger did not recover")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if _, err := p.Append(ctx, req(2)); !errors.Is(err, ErrStorage) {
				t.Fatalf("batch 2 after recovery, before the resend: %v", err)
			}
			if r, err := p.Append(ctx, req(0)); err != nil || !r.Duplicate || r.Entry.FirstIndex != 0 {
				t.Fatalf("resend of the durable batch 0: %+v, %v", r, err)
			}
			base := p.NextIndex()
			for seq := int64(1); seq <= 2; seq++ {
				r, err := p.Append(ctx, req(seq))
				if err != nil || r.Duplicate || r.Entry.FirstIndex != base+seq-1 {
					t.Fatalf("resend of batch %d: %+v, %v", seq, r, err)
				}
			}
			if got := p.LastSequence("prod"); got != 2 {
				t.Fatalf("last sequence %d, want 2", got)
			}
			if _, err := p.Append(ctx, reqOf("other", 2)); !errors.Is(err, ErrStorage) {
				t.Fatalf("other's batch 2 before its resend of 1: %v", err)
			}
			base = p.NextIndex()
			for seq := int64(1); seq <= 2; seq++ {
				if r, err := p.Append(ctx, reqOf("other", seq)); err != nil || r.Duplicate || r.Entry.FirstIndex != base+seq-1 {
					t.Fatalf("other's resend of %d: %+v, %v", seq, r, err)
				}
			}
		})
	}
}

// waitRecovered waits until p's ledger accepts appends again.
func waitRecovered(t *testing.T, p *Partition) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := p.ml.StorageFailure(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("ledger did not recover")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOldDuplicateWaitsForItsOriginal: a resend of a batch older than the
// remembered ones arrives while the original is still in flight (a client
// reconnected for another producer's sake and resends its pending
// queue). The answer "duplicate" may only come once the original is
// durable: if the original then fails, the resend must fail too, so the
// client keeps the message and sends it again, instead of taking it for
// stored.
func TestOldDuplicateWaitsForItsOriginal(t *testing.T) {
	for _, outcome := range []error{syscall.EIO, nil} {
		t.Run(map[bool]string{true: "original-fails", false: "original-durable"}[outcome != nil], func(t *testing.T) {
			ctx := context.Background()
			ffs := &segment.FaultFS{FS: segment.OSFS{}}
			b := newTestBrokerOn(t, managedledger.FactoryOptions{Dir: t.TempDir(), FS: ffs,
				Logger: quietTestLogger(), StorageRetryInterval: 10 * time.Millisecond})
			p, err := b.OpenPartition(ctx, mustTopic(t, "olddup"), true)
			if err != nil {
				t.Fatal(err)
			}
			req := func(seq int64) AppendRequest {
				return AppendRequest{Format: FormatPulsar, MsgCount: 1, Data: []byte{byte(seq)}, Producer: "prod",
					SeqFirst: seq, SeqLast: seq}
			}
			release := ffs.HoldSyncs("")
			defer release(nil)
			var originals []*PendingAppend
			for seq := int64(0); seq < 3*dedupWindow; seq++ {
				a, err := p.AppendAsync(req(seq))
				if err != nil {
					t.Fatal(err)
				}
				originals = append(originals, a)
			}
			// Batch 1 is no longer among the recent ones, and in flight
			// (not batch 0: its position, 0, is also a zero answer's).
			resend, err := p.AppendAsync(req(1))
			if err != nil {
				t.Fatalf("resend of batch 1 while its original is in flight: %v, want an answer that waits", err)
			}
			answered := make(chan error, 1)
			var resent AppendResult
			go func() {
				var err error
				resent, err = resend.Wait(ctx)
				answered <- err
			}()
			select {
			case err := <-answered:
				t.Fatalf("resend answered (%v) while its original is not durable", err)
			case <-time.After(50 * time.Millisecond):
			}
			release(outcome)
			var first AppendResult
			for i, a := range originals {
				res, err := a.Wait(ctx)
				if (err == nil) != (outcome == nil) {
					t.Fatalf("original: %v", err)
				}
				if i == 1 {
					first = res
				}
			}
			err = <-answered
			if outcome != nil {
				if !errors.Is(err, ErrStorage) {
					t.Fatalf("resend of a lost batch: %v, want a storage error", err)
				}
				return
			}
			// A durable original: the resend is answered with its position
			// (found in the log's tail), as a duplicate.
			if err != nil || !resent.Duplicate || resent.Entry.FirstIndex != first.Entry.FirstIndex {
				t.Fatalf("resend of a durable batch: %v, duplicate %v at %d; want a duplicate at %d",
					err, resent.Duplicate, resent.Entry.FirstIndex, first.Entry.FirstIndex)
			}
		})
	}
}
