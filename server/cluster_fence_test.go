package server

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kopernik-io/kopernik/broker"
)

// TestClusterOwnerFencedWhileWriting: the owner of a partition under load
// loses its lease while it runs (revoked behind its back in etcd, as if
// it had been paused past the TTL and etcd had expired it): its owner
// records vanish, another broker takes the partition over, and the old
// owner's flushes in flight and after are fenced. The producer continues
// through the new owner; every acknowledged record is in the log exactly
// once, so no zombie write is visible and nothing acknowledged is lost.
func TestClusterOwnerFencedWhileWriting(t *testing.T) {
	if testing.Short() {
		t.Skip("three brokers, etcd and an S3 server")
	}
	etcd, brokers := startCluster(t, 3, "object-flush-interval", "2ms")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic, parts = "fenced", 3
	var seeds []string
	for _, s := range brokers {
		seeds = append(seeds, s.Addr("kafka").String())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	p0, _ := broker.ParseTopicName(topic+"-partition-0", "public", "default")
	owner, err := brokers[0].Broker().Cluster().Owner(ctx, p0)
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	acked := map[string]bool{}
	failed := 0
	stop := make(chan struct{})
	var wg, inflight sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := fmt.Sprintf("v-%d", i)
			inflight.Add(1)
			cl.Produce(ctx, &kgo.Record{Partition: int32(i % parts), Value: []byte(v)}, func(_ *kgo.Record, err error) {
				defer inflight.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
					return
				}
				acked[v] = true
			})
			time.Sleep(time.Millisecond)
		}
	}()
	time.Sleep(time.Second)

	ec, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	if _, err := ec.Revoke(ctx, clientv3.LeaseID(owner.Lease)); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	t.Logf("revoked the lease of node %d, owner of %s", owner.NodeID, p0)
	// Someone (the same broker after it rejoined, or another) owns it again
	// and acknowledges writes to it.
	for {
		o, err := brokers[(owner.NodeID+1)%3].Broker().Cluster().Owner(ctx, p0)
		if err == nil && o.Lease != owner.Lease {
			t.Logf("%s owned again by node %d %.2fs after the revocation", p0, o.NodeID, time.Since(revoked).Seconds())
			break
		}
		if time.Since(revoked) > 30*time.Second {
			t.Fatal("partition not owned again 30s after its owner's lease was revoked")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	inflight.Wait()

	rd, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	inLog := map[string]int{}
	missing := len(acked)
	for missing > 0 {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		fs := rd.PollFetches(rctx)
		timedOut := rctx.Err() != nil
		rcancel()
		if timedOut {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			inLog[v]++
			if inLog[v] == 1 && acked[v] {
				missing--
			}
		})
	}
	dups := 0
	for _, n := range inLog {
		dups += n - 1
	}
	t.Logf("%d acknowledged, %d failed, %d in the log, %d acknowledged missing, %d duplicates", len(acked), failed, len(inLog), missing, dups)
	if missing != 0 || dups != 0 {
		t.Fatalf("%d acknowledged records lost, %d duplicates", missing, dups)
	}
	for v := range inLog {
		if !acked[v] {
			t.Fatalf("%s is in the log but was never acknowledged", v)
		}
	}
}

// TestClusterObjectStoreOutage: the S3 server stops for 3 s under a
// franz-go idempotent producer's load and comes back: appends wait (the
// object log retries its PUTs), or fail and are retried by the client;
// every acknowledged record is in the log exactly once afterwards.
func TestClusterObjectStoreOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("brokers, etcd and an S3 server")
	}
	_, s3, brokers := startClusterWith(t, 2, "object-flush-interval", "2ms")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic, parts = "s3outage", 4
	var seeds []string
	for _, s := range brokers {
		seeds = append(seeds, s.Addr("kafka").String())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[string]bool{}
	failed := 0
	stop := make(chan struct{})
	var wg, inflight sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := fmt.Sprintf("v-%d", i)
			inflight.Add(1)
			cl.Produce(ctx, &kgo.Record{Partition: int32(i % parts), Value: []byte(v)}, func(_ *kgo.Record, err error) {
				defer inflight.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
					return
				}
				acked[v] = true
			})
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	s3.Stop()
	time.Sleep(3 * time.Second)
	mu.Lock()
	during := len(acked) - before
	mu.Unlock()
	if err := s3.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n > before+during+100 {
			t.Logf("acks resumed %.2fs after the object store returned", time.Since(restarted).Seconds())
			break
		}
		if time.Since(restarted) > 30*time.Second {
			t.Fatal("no acks 30s after the object store returned")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	inflight.Wait()

	rd, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	inLog := map[string]int{}
	missing := len(acked)
	for missing > 0 {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		fs := rd.PollFetches(rctx)
		timedOut := rctx.Err() != nil
		rcancel()
		if timedOut {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			inLog[v]++
			if inLog[v] == 1 && acked[v] {
				missing--
			}
		})
	}
	dups := 0
	for _, n := range inLog {
		dups += n - 1
	}
	t.Logf("%d acknowledged (%d while the store was down), %d failed, %d in the log, %d acknowledged missing, %d duplicates",
		len(acked), during, failed, len(inLog), missing, dups)
	if missing != 0 || dups != 0 {
		t.Fatalf("%d acknowledged records lost, %d duplicates", missing, dups)
	}
}
