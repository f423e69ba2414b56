package kafka

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// etlLedger records what the transform workers were told: per transaction
// (worker/serial) its outputs and whether it committed. The checker reads
// the output topic with read_committed and judges it against the ledger.
type etlLedger struct {
	mu        sync.Mutex
	committed map[string][]string // txn -> input keys it produced
	aborted   map[string]bool
}

func (l *etlLedger) end(txn string, keys []string, committed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if committed {
		l.committed[txn] = keys
	} else {
		l.aborted[txn] = true
	}
}

// TestTxnConsumeTransformProduce: workers in one consumer group read an
// input topic with read_committed and copy each record to an output topic
// in a transaction that also commits the input offsets (franz-go's
// GroupTransactSession); one in four transactions is aborted on purpose,
// and the broker restarts once in the middle. The checker then reads the
// output with read_committed and finds: no record of an aborted
// transaction (G1a), every committed transaction whole, every input exactly
// once, and the group's committed offsets at the input's end.
func TestTxnConsumeTransformProduce(t *testing.T) {
	s := startDurableServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const in, out, group, n = "etl-in", "etl-out", "etl", 2000
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, in); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, out); err != nil {
		t.Fatal(err)
	}
	// Input: half plain, half in transactions of its own (one aborted),
	// so that the workers' read_committed consumption is judged too.
	src := newKgo(t, s.addr, kgo.TransactionalID("etl-src"), kgo.TransactionTimeout(30*time.Second))
	if err := src.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	lastReal := map[int32]int64{} // partition -> offset of its last committed input
	for i := range n {
		r, err := src.ProduceSync(ctx, &kgo.Record{Topic: in, Key: []byte(strconv.Itoa(i)), Value: []byte("in")}).First()
		if err != nil {
			t.Fatal(err)
		}
		lastReal[r.Partition] = max(lastReal[r.Partition], r.Offset)
		if i%250 == 249 {
			if err := src.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
			// An aborted batch of junk between committed ones.
			if err := src.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			for j := range 5 {
				src.ProduceSync(ctx, &kgo.Record{Topic: in, Key: []byte("junk-" + strconv.Itoa(j)), Value: []byte("in")})
			}
			if err := src.EndTransaction(ctx, kgo.TryAbort); err != nil {
				t.Fatal(err)
			}
			if err := src.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := src.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	src.Close()

	ledger := &etlLedger{committed: map[string][]string{}, aborted: map[string]bool{}}
	var consumed sync.Map // input key -> struct{}, by committed transactions only
	var count struct {
		sync.Mutex
		n int
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	worker := func(w int) {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(uint64(w), 7))
		sess, err := kgo.NewGroupTransactSession(
			kgo.SeedBrokers(s.addr), kgo.MetadataMinAge(100*time.Millisecond),
			kgo.TransactionalID(fmt.Sprintf("etl-worker-%d", w)), kgo.TransactionTimeout(30*time.Second),
			kgo.ConsumerGroup(group), kgo.ConsumeTopics(in), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SessionTimeout(10*time.Second),
			kgo.RetryTimeout(60*time.Second),
		)
		if err != nil {
			errs <- err
			return
		}
		defer sess.Close()
		for serial := 0; ; serial++ {
			select {
			case <-done:
				return
			default:
			}
			pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			fs := sess.PollRecords(pctx, 10+rng.IntN(100))
			pcancel()
			if ctx.Err() != nil {
				return
			}
			var keys []string
			if err := sess.Begin(); err != nil {
				errs <- fmt.Errorf("worker %d begin: %w", w, err)
				return
			}
			txn := fmt.Sprintf("%d/%d", w, serial)
			fs.EachRecord(func(r *kgo.Record) {
				keys = append(keys, string(r.Key))
				sess.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: []byte(txn)}, nil)
			})
			commit := rng.IntN(4) != 0
			committed, err := sess.End(ctx, kgo.TransactionEndTry(commit))
			if err != nil {
				// A restart in the middle of End: the outcome is unknown
				// to this worker; the checker decides from the output.
				t.Logf("worker %d txn %s end: %v", w, txn, err)
				ledger.end(txn, nil, false)
				ledger.mu.Lock()
				delete(ledger.aborted, txn)
				ledger.mu.Unlock()
				continue
			}
			ledger.end(txn, keys, committed)
			if committed {
				count.Lock()
				for _, k := range keys {
					if _, dup := consumed.LoadOrStore(k, struct{}{}); !dup {
						count.n++
					}
				}
				count.Unlock()
			}
		}
	}
	for w := range 2 {
		wg.Add(1)
		go worker(w)
	}
	restarted := false
	checkFor(t, 80*time.Second, func() error {
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		count.Lock()
		c := count.n
		count.Unlock()
		if c >= n/2 && !restarted {
			restarted = true
			t.Logf("restarting the broker after %d inputs", c)
			s.restart()
		}
		if c < n {
			return fmt.Errorf("%d of %d inputs consumed by committed transactions", c, n)
		}
		return nil
	})
	close(done)
	wg.Wait()

	// The checker.
	c := newKgo(t, s.addr, kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	seen := map[string]int{}       // input key -> times in the output
	byTxn := map[string][]string{} // txn -> keys seen
	for quiet := 0; quiet < 3; {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := c.PollFetches(pctx)
		pcancel()
		if fs.NumRecords() == 0 {
			quiet++
			continue
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Key)]++
			byTxn[string(r.Value)] = append(byTxn[string(r.Value)], string(r.Key))
		})
	}
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	for txn, keys := range byTxn {
		if ledger.aborted[txn] {
			t.Errorf("G1a: read_committed read %d records of aborted transaction %s", len(keys), txn)
		}
		if want, ok := ledger.committed[txn]; ok && len(want) != len(keys) {
			t.Errorf("transaction %s partly visible: %d of %d records", txn, len(keys), len(want))
		}
	}
	for txn, keys := range ledger.committed {
		if len(keys) > 0 && len(byTxn[txn]) == 0 {
			t.Errorf("committed transaction %s (%d records) not visible", txn, len(keys))
		}
	}
	for i := range n {
		if k := strconv.Itoa(i); seen[k] != 1 {
			t.Errorf("input %s appears %d times in the output", k, seen[k])
		}
	}
	for k := range seen {
		if strings.HasPrefix(k, "junk-") {
			t.Errorf("an aborted input record (%s) was transformed", k)
		}
	}
	// The group's offsets are past every committed input (trailing
	// markers and aborted records are not consumed, so not committed).
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for part, last := range lastReal {
		got, ok := offs.Lookup(in, part)
		if !ok || got.At <= last {
			t.Errorf("partition %d: group at %v, last committed input at %d", part, got.At, last)
		}
	}
	t.Logf("%d committed and %d aborted transactions; %d outputs", len(ledger.committed), len(ledger.aborted), len(seen))
}

// TestTxnSarama: sarama's transactional producer commits and aborts, and
// its read_committed consumer sees only the committed messages.
func TestTxnSarama(t *testing.T) {
	s := startServer(t)
	cfg := saramaConfig()
	cfg.Producer.Transaction.ID = "sarama-txn"
	cfg.Producer.Compression = sarama.CompressionNone
	p, err := sarama.NewSyncProducer([]string{s.addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	send := func(prefix string, n int, commit bool) {
		t.Helper()
		if err := p.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "sarama-txn", Value: sarama.StringEncoder(fmt.Sprintf("%s-%d", prefix, i))}); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		if commit {
			err = p.CommitTxn()
		} else {
			err = p.AbortTxn()
		}
		if err != nil {
			t.Fatalf("%s: end (commit %v): %v", prefix, commit, err)
		}
	}
	send("c1", 5, true)
	send("a", 5, false)
	send("c2", 5, true)

	ccfg := saramaConfig()
	ccfg.Consumer.IsolationLevel = sarama.ReadCommitted
	c, err := sarama.NewConsumer([]string{s.addr}, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition("sarama-txn", 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	want := append(seq("c1", 5), seq("c2", 5)...)
	var got []string
	for len(got) < len(want) {
		select {
		case m := <-pc.Messages():
			got = append(got, string(m.Value))
		case err := <-pc.Errors():
			t.Fatal(err)
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out; got %v", got)
		}
	}
	select {
	case m := <-pc.Messages():
		t.Fatalf("unexpected message %q", m.Value)
	case <-time.After(300 * time.Millisecond):
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("read_committed got %v\nwant %v", got, want)
	}
}
