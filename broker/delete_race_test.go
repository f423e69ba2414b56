package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/managedledger"
)

// TestDeleteTopicRacingProducers deletes a topic again and again while
// producers keep re-creating it and appending, on real files. A load
// racing the delete must wait for it: no partition may be served from a
// ledger whose files were removed, and no recovery may run on files the
// closing instance still writes. Every error a producer sees is one of
// the orderly ones; every partition read afterwards is gapless.
func TestDeleteTopicRacingProducers(t *testing.T) {
	ctx := context.Background()
	b := newTestBrokerOn(t, managedledger.FactoryOptions{Dir: t.TempDir(), Logger: quietTestLogger()})
	name := mustTopic(t, "churn")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []error
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p, err := b.OpenPartition(ctx, name, true)
				if err == nil {
					_, err = p.Append(ctx, AppendRequest{Format: FormatKafka, MsgCount: 1, Data: make([]byte, 100+i%900)})
				}
				if err != nil && !errors.Is(err, ErrTopicNotFound) && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrAlreadyExists) {
					mu.Lock()
					bad = append(bad, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < 30; i++ {
		// Let the producers re-create the topic and write a little first.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if p := b.loaded(name); p != nil && p.NextIndex() >= 20 {
				break
			}
		}
		if err := b.DeleteTopic(ctx, name, true); err != nil && !errors.Is(err, ErrTopicNotFound) {
			t.Errorf("delete %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	for _, err := range bad {
		t.Errorf("producer: %v", err)
	}
	p, err := b.OpenPartition(ctx, name, true)
	if err != nil {
		t.Fatal(err)
	}
	next := p.FirstIndex()
	for next < p.NextIndex() {
		es, err := p.ReadFromIndex(ctx, next, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.FirstIndex != next {
				t.Fatalf("read gap: entry at %d, want %d", e.FirstIndex, next)
			}
			next = e.LastIndex() + 1
		}
	}
}

func quietTestLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
