package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/metadata"
)

// TestTxnExpiryRaces runs producers' whole transactions (init, join,
// append, v2 end) on a few transactional ids while another goroutine
// expires every idle id again and again. Calls may fail (an id expired
// under a producer is, as in Kafka, an unknown producer id mapping), but
// afterwards every id's cached record equals the store's, and the
// producer id index points at the entry that owns it.
func TestTxnExpiryRaces(t *testing.T) {
	ctx := context.Background()
	b := startDurable(t, t.TempDir(), Options{RetentionInterval: -1, Transactions: TxnOptions{CheckInterval: -1, MaxTimeout: time.Hour, IDExpiration: time.Hour}})
	co, err := b.Transactions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := mustTopic(t, "expiry-race")
	p, err := b.OpenPartition(ctx, n, true)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"r0", "r1", "r2"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var expired int
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			expired += co.ExpireIdle(ctx, time.Now().Add(2*time.Hour))
		}
	})
	var producers sync.WaitGroup
	for w := range 4 {
		producers.Go(func() {
			for i := range 40 {
				id := ids[(w+i)%len(ids)]
				pe, err := co.InitProducerID(ctx, id, time.Hour, ProducerIDAndEpoch{ProducerID: -1})
				if err != nil {
					continue
				}
				if co.JoinPartitions(ctx, id, pe.ProducerID, pe.Epoch, []TopicName{n}) != nil {
					continue
				}
				co.Append(ctx, p, pe.Epoch, AppendRequest{Format: FormatKafka, MsgCount: 1, Data: testKafkaBatch(pe.ProducerID, true, 1), Transactional: true, ProducerID: pe.ProducerID})
				co.EndTxnV2(ctx, id, pe.ProducerID, pe.Epoch, i%2 == 0)
			}
		})
	}
	producers.Wait()
	close(stop)
	wg.Wait()
	if expired == 0 {
		t.Fatal("nothing expired: the race was not run")
	}
	// Let every open transaction end, so that nothing holds the LSO.
	co.ExpireIdle(ctx, time.Now().Add(2*time.Hour))
	for _, id := range ids {
		r, err := b.store.Get(ctx, txnPath(id))
		cached, derr := co.Describe(ctx, id)
		if errors.Is(err, metadata.ErrNotFound) {
			if !errors.Is(derr, ErrTxnNotFound) {
				t.Fatalf("%s: not in the store, cached %+v %v", id, cached, derr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var stored TxnMetadata
		if err := json.Unmarshal(r.Value, &stored); err != nil {
			t.Fatal(err)
		}
		if derr != nil || fmt.Sprint(cached) != fmt.Sprint(stored) {
			t.Fatalf("%s: cached %+v %v\nstored %+v", id, cached, derr, stored)
		}
		co.mu.Lock()
		e := co.mu.byPID[stored.ProducerID]
		co.mu.Unlock()
		if e == nil || e.id != id || e.gone.Load() {
			t.Fatalf("%s: producer id %d indexes %+v", id, stored.ProducerID, e)
		}
	}
}

// TestTxnExpirable: which records expire, as of when.
func TestTxnExpirable(t *testing.T) {
	c := &TxnCoordinator{opts: TxnOptions{IDExpiration: time.Hour, PulsarEndedRetention: time.Minute}}
	now := time.Now()
	ago := func(d time.Duration) int64 { return now.Add(-d).UnixMilli() }
	pulsar := pulsarTxnPrefix + "1"
	for _, tc := range []struct {
		m    TxnMetadata
		want bool
	}{
		{TxnMetadata{TransactionalID: "k", State: TxnEmpty, LastUpdateMs: ago(2 * time.Hour)}, true},
		{TxnMetadata{TransactionalID: "k", State: TxnCompleteCommit, LastUpdateMs: ago(2 * time.Hour)}, true},
		{TxnMetadata{TransactionalID: "k", State: TxnCompleteAbort, LastUpdateMs: ago(30 * time.Minute)}, false},
		{TxnMetadata{TransactionalID: "k", State: TxnOngoing, LastUpdateMs: ago(48 * time.Hour)}, false},
		{TxnMetadata{TransactionalID: "k", State: TxnPrepareCommit, LastUpdateMs: ago(48 * time.Hour)}, false},
		{TxnMetadata{TransactionalID: pulsar, State: TxnCompleteCommit, LastUpdateMs: ago(2 * time.Minute)}, true},
		{TxnMetadata{TransactionalID: pulsar, State: TxnCompleteAbort, LastUpdateMs: ago(30 * time.Second)}, false},
		// An unused Pulsar transaction lives out its timeout.
		{TxnMetadata{TransactionalID: pulsar, State: TxnEmpty, TimeoutMs: 600000, LastUpdateMs: ago(5 * time.Minute)}, false},
		{TxnMetadata{TransactionalID: pulsar, State: TxnEmpty, TimeoutMs: 600000, LastUpdateMs: ago(11 * time.Minute)}, true},
	} {
		if got := c.expirable(tc.m, now); got != tc.want {
			t.Errorf("%s %s idle %v: expirable %v, want %v", tc.m.TransactionalID, tc.m.State, now.Sub(time.UnixMilli(tc.m.LastUpdateMs)).Round(time.Second), got, tc.want)
		}
	}
	c.opts.IDExpiration = -1
	if c.expirable(TxnMetadata{TransactionalID: "k", State: TxnEmpty, LastUpdateMs: ago(1000 * time.Hour)}, now) {
		t.Error("IDExpiration < 0 expired a Kafka id")
	}
}
