package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKillDuringAckedProduce SIGKILLs a real kopernik process while Kafka
// producers (acks=all) are appending, restarts it on the same data dir, and
// checks that every acknowledged record is there exactly once and in order,
// that offsets stay dense, and that producing continues after the restart.
func TestKillDuringAckedProduce(t *testing.T) {
	if testing.Short() {
		t.Skip("process crash test")
	}
	dir := t.TempDir()
	const topic = "crash"
	const producers = 4
	acked := make([][]int, producers) // per producer: sequence numbers acknowledged, in order
	next := make([]int, producers)

	for round := 0; round < 3; round++ {
		cmd, addrs := startProcess(t, dir)
		cl, err := kgo.NewClient(kgo.SeedBrokers(addrs["kafka"]), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(0),
			// Once the broker is killed, fail fast instead of retrying: the
			// client is closed before the restart, so nothing is re-sent.
			kgo.DisableIdempotentWrite(), kgo.RecordRetries(0), kgo.RecordDeliveryTimeout(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		stop := make(chan struct{})
		for g := 0; g < producers; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					mu.Lock()
					seq := next[g]
					next[g]++
					mu.Unlock()
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("%d-%d", g, seq))}).FirstErr()
					cancel()
					if err != nil {
						return // the broker is gone; unacknowledged records may or may not be there
					}
					mu.Lock()
					acked[g] = append(acked[g], seq)
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		close(stop)
		wg.Wait()
		cl.Close()
		total := 0
		for _, a := range acked {
			total += len(a)
		}
		t.Logf("round %d: %d records acknowledged so far", round, total)
	}

	// Restart once more and read everything back.
	_, addrs := startProcess(t, dir)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs["kafka"]), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// One more acknowledged record after the crashes marks the end.
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte("end")}).FirstErr(); err != nil {
		t.Fatalf("produce after restart: %v", err)
	}
	seen := make([]map[int]bool, producers)
	lastSeq := make([]int, producers)
	for g := range seen {
		seen[g] = map[int]bool{}
		lastSeq[g] = -1
	}
	wantOffset := int64(0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for done := false; !done; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading back: %v (at offset %d)", err, wantOffset)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != wantOffset {
				t.Fatalf("offset %d, want %d: offsets must be dense", r.Offset, wantOffset)
			}
			wantOffset++
			v := string(r.Value)
			if v == "end" {
				done = true
				return
			}
			gs, ss, _ := strings.Cut(v, "-")
			g, _ := strconv.Atoi(gs)
			seq, _ := strconv.Atoi(ss)
			if seen[g][seq] {
				t.Fatalf("record %s stored twice", v)
			}
			if seq <= lastSeq[g] {
				t.Fatalf("record %s after %d-%d: out of order", v, g, lastSeq[g])
			}
			seen[g][seq] = true
			lastSeq[g] = seq
		})
	}
	for g, list := range acked {
		for _, seq := range list {
			if !seen[g][seq] {
				t.Errorf("acknowledged record %d-%d lost", g, seq)
			}
		}
	}
}
