package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var txnKillCycles = flag.Int("txnkill.cycles", 5, "TestTxnUnderKills: SIGKILL/restart cycles")

// TestTxnUnderKills runs a transactional producer (one transactional id,
// three partitions, a fifth of the transactions aborted on purpose)
// against the real binary while SIGKILLing and restarting it every ~2 s,
// then judges what a read_committed consumer reads: no record of a
// transaction the producer aborted (Jepsen G1a), every transaction it was
// told committed visible whole, every transaction whose end was cut by a
// kill all or nothing, no record twice. After a failure the producer
// starts again with the same transactional id, which fences its previous
// incarnation and aborts what that left open (a restarted Flink job's
// pattern).
func TestTxnUnderKills(t *testing.T) {
	if testing.Short() {
		t.Skip("process crash test")
	}
	dir := t.TempDir()
	kp := newProxy(t)
	env := []string{"KOPERNIK_KAFKA_ADVERTISED_ADDR=" + kp.addr()}
	var cmdMu sync.Mutex
	cmd, addrs := startProcessEnv(t, dir, env)
	kp.setTarget(addrs["kafka"])
	const topic, perTxn = "txn-kills", 6
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(kp.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	if _, err := kadm.NewClient(admCl).CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}

	outcome := map[int]string{} // txn serial -> committed | aborted | unknown
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		rng := rand.New(rand.NewPCG(1, 2))
		newProducer := func() *kgo.Client {
			for {
				cl, err := kgo.NewClient(kgo.SeedBrokers(kp.addr()), kgo.TransactionalID("txn-kills"),
					kgo.TransactionTimeout(20*time.Second), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
					kgo.RequestTimeoutOverhead(2*time.Second), kgo.RetryTimeout(5*time.Second))
				if err == nil {
					return cl
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		cl := newProducer()
		defer func() { cl.Close() }()
		for serial := 0; ; serial++ {
			select {
			case <-stop:
				return
			default:
			}
			commit := rng.IntN(5) != 0
			err := cl.BeginTransaction()
			for i := 0; err == nil && i < perTxn; i++ {
				pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
				err = cl.ProduceSync(pctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%d-%d", serial, i)}).FirstErr()
				pcancel()
			}
			if err == nil {
				ectx, ecancel := context.WithTimeout(ctx, 10*time.Second)
				err = cl.EndTransaction(ectx, kgo.TransactionEndTry(commit))
				ecancel()
				switch {
				case err == nil && commit:
					outcome[serial] = "committed"
				case err == nil:
					outcome[serial] = "aborted"
				}
			}
			if err != nil {
				// Cut by a kill: the outcome is unknown here. A new
				// incarnation with the same transactional id fences
				// this one and aborts what it left open.
				outcome[serial] = "unknown"
				cl.Close()
				cl = newProducer()
			}
		}
	}()

	for range *txnKillCycles {
		time.Sleep(time.Second + rand.N(2*time.Second))
		cmdMu.Lock()
		cmd.Process.Kill()
		cmd.Wait()
		cmd, addrs = startProcessEnv(t, dir, env)
		kp.setTarget(addrs["kafka"])
		cmdMu.Unlock()
	}
	time.Sleep(2 * time.Second)
	close(stop)
	<-done
	// A last incarnation ends anything the producer left open.
	final, err := kgo.NewClient(kgo.SeedBrokers(kp.addr()), kgo.TransactionalID("txn-kills"), kgo.TransactionTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := final.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := final.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	final.Close()

	// The checker: read every partition to its last stable offset.
	c, err := kgo.NewClient(kgo.SeedBrokers(kp.addr()), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seen := map[string]int{}
	perSerial := map[int]int{}
	for quiet := 0; quiet < 3; {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := c.PollFetches(pctx)
		pcancel()
		if fs.NumRecords() == 0 {
			quiet++
			continue
		}
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("fetch: %v", err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			seen[v]++
			var serial, i int
			fmt.Sscanf(strings.Replace(v, "-", " ", 1), "%d %d", &serial, &i)
			perSerial[serial]++
		})
	}
	counts := map[string]int{}
	for serial, o := range outcome {
		counts[o]++
		n := perSerial[serial]
		switch {
		case o == "aborted" && n > 0:
			t.Errorf("G1a: %d records of aborted transaction %d read with read_committed", n, serial)
		case o == "committed" && n != perTxn:
			t.Errorf("committed transaction %d: %d of %d records visible", serial, n, perTxn)
		case o == "unknown" && n != 0 && n != perTxn:
			t.Errorf("transaction %d cut by a kill is partly visible: %d of %d records", serial, n, perTxn)
		}
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("record %s read %d times", v, n)
		}
	}
	t.Logf("%d kills; transactions: %v; %d records read", *txnKillCycles, counts, len(seen))
	if counts["committed"] == 0 || counts["aborted"] == 0 {
		t.Errorf("the workload ended too few transactions: %v", counts)
	}
}
