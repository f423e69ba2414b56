package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/metadata"
)

// consumeValues reads every record of topic from the start until it has
// want records or nothing new comes for quiet, with the given isolation.
func consumeValues(t *testing.T, addr, topic string, iso kgo.IsolationLevel, want int, quiet time.Duration) []string {
	t.Helper()
	c := newKgo(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso))
	defer c.Close()
	var got []string
	for len(got) < want {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		fs := c.PollFetches(ctx)
		cancel()
		if errors.Is(fs.Err0(), context.DeadlineExceeded) {
			break
		}
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume %s: %v", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}

func produceTxn(t *testing.T, ctx context.Context, cl *kgo.Client, topic, prefix string, n int, commit bool) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%s-%d", prefix, i)}).FirstErr(); err != nil {
			t.Fatalf("produce %s-%d: %v", prefix, i, err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end %s (commit %v): %v", prefix, commit, err)
	}
}

func seq(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// TestTxnFranzCommitAbortFence: committed transactions are seen by
// read_committed consumers, aborted ones only by read_uncommitted ones;
// an open transaction holds read_committed back (its end offset is the
// LSO); a second producer with the same transactional id fences the first
// and aborts its open transaction.
func TestTxnFranzCommitAbortFence(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	const topic = "txn-basic"
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	p1 := newKgo(t, s.addr, kgo.TransactionalID("tx-basic"), kgo.TransactionTimeout(30*time.Second))
	produceTxn(t, ctx, p1, topic, "c1", 10, true)
	produceTxn(t, ctx, p1, topic, "a", 10, false)
	produceTxn(t, ctx, p1, topic, "c2", 10, true)

	want := append(seq("c1", 10), seq("c2", 10)...)
	if got := consumeValues(t, s.addr, topic, kgo.ReadCommitted(), len(want), time.Second); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("read_committed got %v\nwant %v", got, want)
	}
	all := append(append(seq("c1", 10), seq("a", 10)...), seq("c2", 10)...)
	if got := consumeValues(t, s.addr, topic, kgo.ReadUncommitted(), len(all), time.Second); strings.Join(got, ",") != strings.Join(all, ",") {
		t.Fatalf("read_uncommitted got %v\nwant %v", got, all)
	}

	// An open transaction: the LSO stays at its first record.
	end, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	hw := end[topic][0].Offset
	if err := p1.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := p1.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "open-%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	committed, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, err = adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if lso, hw2 := committed[topic][0].Offset, end[topic][0].Offset; lso != hw || hw2 != hw+5 {
		t.Fatalf("open transaction: LSO %d (want %d), HW %d (want %d)", lso, hw, hw2, hw+5)
	}
	if got := consumeValues(t, s.addr, topic, kgo.ReadCommitted(), len(want)+1, 500*time.Millisecond); len(got) != len(want) {
		t.Fatalf("read_committed saw %d records past an open transaction: %v", len(got), got[len(want):])
	}

	// The same transactional id again: p1 is fenced, its transaction aborted.
	p2 := newKgo(t, s.addr, kgo.TransactionalID("tx-basic"), kgo.TransactionTimeout(30*time.Second))
	produceTxn(t, ctx, p2, topic, "c3", 3, true)
	err = p1.EndTransaction(ctx, kgo.TryCommit)
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("fenced producer's commit: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	want = append(want, seq("c3", 3)...)
	if got := consumeValues(t, s.addr, topic, kgo.ReadCommitted(), len(want)+1, time.Second); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after fencing, read_committed got %v\nwant %v", got, want)
	}
}

// TestTxnInitProducerIDErrors: a timeout above the broker maximum is
// INVALID_TRANSACTION_TIMEOUT; calls with an unknown producer id are
// INVALID_PRODUCER_ID_MAPPING.
func TestTxnInitProducerIDErrors(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	cl := newKgo(t, s.addr, kgo.TransactionalID("tx-too-long"), kgo.TransactionTimeout(time.Hour))
	err := cl.BeginTransaction() // franz-go initializes the producer id here
	if err == nil {
		err = cl.ProduceSync(ctx, &kgo.Record{Topic: "txn-err", Value: []byte("x")}).FirstErr()
	}
	if !errors.Is(err, kerr.InvalidTransactionTimeout) {
		t.Fatalf("1h timeout: %v, want INVALID_TRANSACTION_TIMEOUT", err)
	}
	raw := newKgo(t, s.addr)
	req := kmsgEndTxn("nobody", 42, 0, true)
	resp, err := req.RequestWith(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); !errors.Is(err, kerr.InvalidProducerIDMapping) {
		t.Fatalf("EndTxn of an unknown id: %v", err)
	}
}

// TestTxnRestartInPrepareCommit: a broker that stops after recording
// PrepareCommit but before writing the markers (the state a crash there
// leaves) completes the commit when it starts again: read_committed
// consumers then see the transaction whole.
func TestTxnRestartInPrepareCommit(t *testing.T) {
	s := startDurableServer(t)
	ctx := testCtx(t)
	const topic = "txn-restart"
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	p := newKgo(t, s.addr, kgo.TransactionalID("tx-restart"), kgo.TransactionTimeout(30*time.Second), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		if err := p.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "r-%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if got := consumeValues(t, s.addr, topic, kgo.ReadCommitted(), 1, 500*time.Millisecond); len(got) != 0 {
		t.Fatalf("open transaction visible: %v", got)
	}
	p.Close()
	s.stop()
	// What a crash right after the PrepareCommit write leaves behind.
	path := metadata.Join("admin/transactions", "s"+url.PathEscape("public/default/tx-restart"))
	r, err := s.storage.Store.Get(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var m broker.TxnMetadata
	if err := json.Unmarshal(r.Value, &m); err != nil {
		t.Fatal(err)
	}
	if m.State != broker.TxnOngoing || len(m.Partitions) != 3 {
		t.Fatalf("record before the crash: %+v", m)
	}
	m.State = broker.TxnPrepareCommit
	raw, _ := json.Marshal(m)
	if _, err := s.storage.Store.Put(ctx, path, raw, r.Version); err != nil {
		t.Fatal(err)
	}
	s.storage.Close()
	s.openStorage()
	s.start()
	got := consumeValues(t, s.addr, topic, kgo.ReadCommitted(), 9, 5*time.Second)
	if len(got) != 9 {
		t.Fatalf("after restart in PrepareCommit, read_committed saw %d of 9: %v", len(got), got)
	}
	checkFor(t, 5*time.Second, func() error {
		r, err := s.storage.Store.Get(ctx, path)
		if err != nil {
			return err
		}
		var m broker.TxnMetadata
		json.Unmarshal(r.Value, &m)
		if m.State != broker.TxnCompleteCommit {
			return fmt.Errorf("state %s", m.State)
		}
		return nil
	})
}

func kmsgEndTxn(id string, pid int64, epoch int16, commit bool) *kmsg.EndTxnRequest {
	r := kmsg.NewPtrEndTxnRequest()
	r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Commit = id, pid, epoch, commit
	return r
}

// TestTxnAbandonedTimesOutAfterRestart: a producer disappears in the middle
// of a transaction and the broker restarts; the coordinator aborts the
// transaction once its timeout passes (the read_committed consumers'
// last stable offset moves on, its records are never visible to them),
// and the same transactional id then works again.
func TestTxnAbandonedTimesOutAfterRestart(t *testing.T) {
	s := startDurableServer(t)
	ctx := testCtx(t)
	const topic = "txn-abandoned"
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	p := newKgo(t, s.addr, kgo.TransactionalID("tx-abandoned"), kgo.TransactionTimeout(time.Second))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := p.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "lost-%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	p.Close() // gone without ending its transaction
	s.restart()
	committed, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if lso := committed[topic][0].Offset; lso != 0 {
		t.Fatalf("LSO after restart %d, want 0 (the transaction is still open)", lso)
	}
	co, err := s.broker.Transactions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	co.CheckTimeouts(ctx) // what the background loop does every 10 s
	checkFor(t, 5*time.Second, func() error {
		committed, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			return err
		}
		if lso := committed[topic][0].Offset; lso != 6 { // 5 records + the abort marker
			return fmt.Errorf("LSO %d, want 6", lso)
		}
		return nil
	})
	p2 := newKgo(t, s.addr, kgo.TransactionalID("tx-abandoned"), kgo.TransactionTimeout(10*time.Second))
	produceTxn(t, ctx, p2, topic, "next", 3, true)
	if got := consumeValues(t, s.addr, topic, kgo.ReadCommitted(), 4, time.Second); strings.Join(got, ",") != "next-0,next-1,next-2" {
		t.Fatalf("read_committed got %v", got)
	}
	if got := consumeValues(t, s.addr, topic, kgo.ReadUncommitted(), 8, time.Second); len(got) != 8 {
		t.Fatalf("read_uncommitted got %v", got)
	}
}

// TestTxnDescribeAndList: kadm's DescribeTransactions and ListTransactions
// show an ongoing transaction with its partitions, then its completion.
func TestTxnDescribeAndList(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "txn-desc"); err != nil {
		t.Fatal(err)
	}
	p := newKgo(t, s.addr, kgo.TransactionalID("tx-desc"), kgo.TransactionTimeout(20*time.Second), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := p.ProduceSync(ctx, &kgo.Record{Topic: "txn-desc", Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	d, err := adm.DescribeTransactions(ctx, "tx-desc", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	got := d["tx-desc"]
	if got.Err != nil || got.State != "Ongoing" || got.TimeoutMillis != 20000 || got.StartTimestamp <= 0 || len(got.Topics["txn-desc"]) != 2 {
		t.Fatalf("ongoing: %+v", got)
	}
	if !errors.Is(d["nobody"].Err, kerr.TransactionalIDNotFound) {
		t.Fatalf("unknown id: %+v", d["nobody"])
	}
	l, err := adm.ListTransactions(ctx, nil, []string{"Ongoing"})
	if err != nil {
		t.Fatal(err)
	}
	if lt, ok := l["tx-desc"]; !ok || lt.State != "Ongoing" || lt.ProducerID != got.ProducerID {
		t.Fatalf("list Ongoing: %+v", l)
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if l, err = adm.ListTransactions(ctx, nil, []string{"Ongoing"}); err != nil || len(l) != 0 {
		t.Fatalf("list Ongoing after commit: %+v %v", l, err)
	}
	if d, err = adm.DescribeTransactions(ctx, "tx-desc"); err != nil || d["tx-desc"].State != "CompleteCommit" || len(d["tx-desc"].Topics) != 0 {
		t.Fatalf("after commit: %+v %v", d, err)
	}
}
