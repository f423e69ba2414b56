package kafka

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// aptReq is an AddPartitionsToTxn request at version with one transaction
// in the v0-v3 shape (version <= 3) or several in the v4+ shape.
type aptTxn struct {
	id     string
	pid    int64
	epoch  int16
	verify bool
	parts  []int32 // of topic "apt"
}

func aptRequest(version int16, txns ...aptTxn) *kmsg.AddPartitionsToTxnRequest {
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = version
	if version <= 3 {
		tx := txns[0]
		req.TransactionalID, req.ProducerID, req.ProducerEpoch = tx.id, tx.pid, tx.epoch
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = "apt", tx.parts
		req.Topics = append(req.Topics, rt)
		return req
	}
	for _, tx := range txns {
		t := kmsg.NewAddPartitionsToTxnRequestTransaction()
		t.TransactionalID, t.ProducerID, t.ProducerEpoch, t.VerifyOnly = tx.id, tx.pid, tx.epoch, tx.verify
		rt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
		rt.Topic, rt.Partitions = "apt", tx.parts
		t.Topics = append(t.Topics, rt)
		req.Transactions = append(req.Transactions, t)
	}
	return req
}

// aptCodes renders a response as "id: partition=ERROR ..." lines, one per
// transaction (v0-v3: one line, id "-").
func aptCodes(resp *kmsg.AddPartitionsToTxnResponse) []string {
	render := func(id string, parts map[int32]int16) string {
		var keys []int32
		for p := range parts {
			keys = append(keys, p)
		}
		slices.Sort(keys)
		s := id + ":"
		for _, p := range keys {
			name := "NONE"
			if parts[p] != 0 {
				name = kerr.ErrorForCode(parts[p]).(*kerr.Error).Message
			}
			s += fmt.Sprintf(" %d=%s", p, name)
		}
		return s
	}
	var out []string
	if resp.ErrorCode != 0 {
		out = append(out, "top: "+kerr.ErrorForCode(resp.ErrorCode).(*kerr.Error).Message)
	}
	if len(resp.Topics) > 0 {
		parts := map[int32]int16{}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				parts[rp.Partition] = rp.ErrorCode
			}
		}
		out = append(out, render("-", parts))
	}
	for _, tx := range resp.Transactions {
		parts := map[int32]int16{}
		for _, rt := range tx.Topics {
			for _, rp := range rt.Partitions {
				parts[rp.Partition] = rp.ErrorCode
			}
		}
		out = append(out, render(tx.TransactionalID, parts))
	}
	return out
}

// TestAddPartitionsToTxnVersions: AddPartitionsToTxn in the clients' shape
// (v0-v3: one transaction, partitions added; PRODUCER_FENCED answered as
// INVALID_PRODUCER_EPOCH to v0-v1) and the brokers' shape (v4-v5, KIP-890
// part 1: several transactions per request, each added or, VerifyOnly,
// only checked): a verified partition in the Ongoing transaction is NONE,
// one not in it INVALID_TXN_STATE (v4) or TRANSACTION_ABORTABLE (v5), and
// verifying adds nothing (the coordinator's record and a produce to the
// partition tell); a v4 add is a real add; unknown ids, other epochs, an
// empty id and unknown partitions get their own errors per transaction.
func TestAddPartitionsToTxnVersions(t *testing.T) {
	s := startServer(t)
	c := dialRaw(t, s.addr)
	createTopicRaw(t, c, "apt", 3)
	initPID := func(id string) (int64, int16) {
		t.Helper()
		req := kmsg.NewPtrInitProducerIDRequest()
		req.Version = 4
		req.TransactionalID = kmsg.StringPtr(id)
		req.TransactionTimeoutMillis = 60000
		resp := c.do(req).(*kmsg.InitProducerIDResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("InitProducerId %s: %v", id, kerr.ErrorForCode(resp.ErrorCode))
		}
		return resp.ProducerID, resp.ProducerEpoch
	}
	initPID("apt-a")
	pa, ea := initPID("apt-a") // epoch 1: epoch 0 is fenced
	pb, eb := initPID("apt-b")
	step := func(what string, req *kmsg.AddPartitionsToTxnRequest, want ...string) {
		t.Helper()
		got := aptCodes(c.do(req).(*kmsg.AddPartitionsToTxnResponse))
		if !slices.Equal(got, want) {
			t.Errorf("%s (v%d):\n got %q\nwant %q", what, req.Version, got, want)
		}
	}
	partitionsOf := func(id string) []int32 {
		t.Helper()
		req := kmsg.NewPtrDescribeTransactionsRequest()
		req.TransactionalIDs = []string{id}
		resp := c.do(req).(*kmsg.DescribeTransactionsResponse)
		var out []int32
		for _, st := range resp.TransactionStates {
			for _, rt := range st.Topics {
				out = append(out, rt.Partitions...)
			}
		}
		slices.Sort(out)
		return out
	}

	// Clients' shape.
	step("v3 add", aptRequest(3, aptTxn{id: "apt-a", pid: pa, epoch: ea, parts: []int32{0}}), "-: 0=NONE")
	step("v3 unknown partition", aptRequest(3, aptTxn{id: "apt-a", pid: pa, epoch: ea, parts: []int32{1, 9}}),
		"-: 1=OPERATION_NOT_ATTEMPTED 9=UNKNOWN_TOPIC_OR_PARTITION")
	step("v2 fenced epoch", aptRequest(2, aptTxn{id: "apt-a", pid: pa, epoch: ea - 1, parts: []int32{0}}), "-: 0=PRODUCER_FENCED")
	step("v0 fenced epoch", aptRequest(0, aptTxn{id: "apt-a", pid: pa, epoch: ea - 1, parts: []int32{0}}), "-: 0=INVALID_PRODUCER_EPOCH")
	if got := partitionsOf("apt-a"); !slices.Equal(got, []int32{0}) {
		t.Fatalf("apt-a's partitions after the v0-v3 calls: %v, want [0]", got)
	}

	// Brokers' shape, several transactions in one request.
	step("v4 batch", aptRequest(4,
		aptTxn{id: "apt-a", pid: pa, epoch: ea, verify: true, parts: []int32{0, 1}},
		aptTxn{id: "apt-b", pid: pb, epoch: eb, parts: []int32{2}},
		aptTxn{id: "apt-none", pid: 12345, epoch: 0, verify: true, parts: []int32{0}},
		aptTxn{id: "", pid: pa, epoch: ea, verify: true, parts: []int32{0}},
	),
		"apt-a: 0=NONE 1=INVALID_TXN_STATE",
		"apt-b: 2=NONE",
		"apt-none: 0=INVALID_PRODUCER_ID_MAPPING",
		": 0=INVALID_REQUEST",
	)
	if got := partitionsOf("apt-a"); !slices.Equal(got, []int32{0}) {
		t.Errorf("apt-a's partitions after verifying 1: %v, want [0] (verification must not add)", got)
	}
	if got := partitionsOf("apt-b"); !slices.Equal(got, []int32{2}) {
		t.Errorf("apt-b's partitions after a v4 add: %v, want [2]", got)
	}
	step("v5 verify", aptRequest(5,
		aptTxn{id: "apt-a", pid: pa, epoch: ea, verify: true, parts: []int32{1, 0}},
		aptTxn{id: "apt-b", pid: pb, epoch: eb, verify: true, parts: []int32{2, 7}},
	),
		"apt-a: 0=NONE 1=TRANSACTION_ABORTABLE",
		"apt-b: 2=OPERATION_NOT_ATTEMPTED 7=UNKNOWN_TOPIC_OR_PARTITION",
	)
	step("v5 verify, fenced epoch and other producer id", aptRequest(5,
		aptTxn{id: "apt-a", pid: pa, epoch: ea - 1, verify: true, parts: []int32{0}},
		aptTxn{id: "apt-b", pid: pa, epoch: eb, verify: true, parts: []int32{2}},
	),
		"apt-a: 0=PRODUCER_FENCED",
		"apt-b: 2=INVALID_PRODUCER_ID_MAPPING",
	)

	// The verified-only partition is still not in the transaction: a
	// transactional produce to it is refused, to the added one accepted.
	produce := func(partition int32, seq int32) int16 {
		t.Helper()
		req := produceReq("apt", partition, txnBatch(pa, ea, seq, "v"))
		req.TransactionID = kmsg.StringPtr("apt-a")
		return c.do(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	if code := produce(1, 0); code != kerr.InvalidTxnState.Code {
		t.Errorf("produce to verified-only partition 1: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
	}
	if code := produce(0, 0); code != 0 {
		t.Errorf("produce to added partition 0: %v", kerr.ErrorForCode(code))
	}

	// After the end, nothing is in a transaction any more.
	if r := c.do(kmsgEndTxn("apt-b", pb, eb, true)).(*kmsg.EndTxnResponse); r.ErrorCode != 0 {
		t.Fatalf("EndTxn apt-b: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	step("v5 verify after commit", aptRequest(5, aptTxn{id: "apt-b", pid: pb, epoch: eb, verify: true, parts: []int32{2}}),
		"apt-b: 2=TRANSACTION_ABORTABLE")
}

// TestTxnListAndDescribeProducers: ListTransactions v0-v2 filters (v1's
// duration as Kafka's: the last transaction began longer ago than the
// filter, in any state, and an id that never began one is left out; v2's
// id pattern matches whole ids, an invalid one is
// INVALID_REGULAR_EXPRESSION, v1 ignores it) and DescribeProducers' current
// transaction start offset for an open transaction (-1 once committed).
func TestTxnListAndDescribeProducers(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	const topic = "ltx"
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	open := newKgo(t, s.addr, kgo.TransactionalID("lt-open"), kgo.DefaultProduceTopic(topic))
	produceTxn(t, ctx, open, topic, "c", 2, true) // offsets 0-1, marker 2
	if err := open.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := open.ProduceSync(ctx, &kgo.Record{Value: []byte("o")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	done := newKgo(t, s.addr, kgo.TransactionalID("other-done"))
	produceTxn(t, ctx, done, topic, "d", 1, true)
	idle := newKgo(t, s.addr, kgo.TransactionalID("lt-idle"))
	if _, _, err := idle.ProducerID(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // every transaction began > 0 ms ago

	c := dialRaw(t, s.addr)
	list := func(version int16, duration int64, pattern *string) (string, []string) {
		t.Helper()
		req := kmsg.NewPtrListTransactionsRequest()
		req.Version, req.DurationFilterMillis, req.TransactionalIDPattern = version, duration, pattern
		resp := c.do(req).(*kmsg.ListTransactionsResponse)
		var ids []string
		for _, st := range resp.TransactionStates {
			ids = append(ids, st.TransactionalID+"="+st.TransactionState)
		}
		slices.Sort(ids)
		code := "NONE"
		if resp.ErrorCode != 0 {
			code = kerr.ErrorForCode(resp.ErrorCode).(*kerr.Error).Message
		}
		return code, ids
	}
	all := []string{"lt-idle=Empty", "lt-open=Ongoing", "other-done=CompleteCommit"}
	for _, tc := range []struct {
		what     string
		version  int16
		duration int64
		pattern  *string
		code     string
		want     []string
	}{
		{"v0", 0, -1, nil, "NONE", all},
		{"v1 no duration", 1, -1, nil, "NONE", all},
		{"v1 duration 0", 1, 0, nil, "NONE", []string{"lt-open=Ongoing", "other-done=CompleteCommit"}},
		{"v1 duration 1 min", 1, 60000, nil, "NONE", nil},
		{"v1 ignores a pattern", 1, -1, kmsg.StringPtr("nothing"), "NONE", all},
		{"v2 prefix", 2, -1, kmsg.StringPtr("lt-.*"), "NONE", []string{"lt-idle=Empty", "lt-open=Ongoing"}},
		{"v2 whole-id match", 2, -1, kmsg.StringPtr("open"), "NONE", nil},
		{"v2 suffix", 2, -1, kmsg.StringPtr(".*open"), "NONE", []string{"lt-open=Ongoing"}},
		{"v2 alternation", 2, -1, kmsg.StringPtr("lt-idle|other-.*"), "NONE", []string{"lt-idle=Empty", "other-done=CompleteCommit"}},
		{"v2 empty pattern", 2, -1, kmsg.StringPtr(""), "NONE", all},
		{"v2 pattern and duration", 2, 0, kmsg.StringPtr("lt-.*"), "NONE", []string{"lt-open=Ongoing"}},
		{"v2 invalid pattern", 2, -1, kmsg.StringPtr("(ab(cd"), "INVALID_REGULAR_EXPRESSION", nil},
	} {
		code, got := list(tc.version, tc.duration, tc.pattern)
		if code != tc.code || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %s %v, want %s %v", tc.what, code, got, tc.code, tc.want)
		}
	}

	// DescribeProducers: the open transaction starts at offset 3.
	pid, _, err := open.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	startOf := func() int64 {
		t.Helper()
		var ts kadm.TopicsSet
		ts.Add(topic, 0)
		described, err := adm.DescribeProducers(ctx, ts)
		if err != nil {
			t.Fatal(err)
		}
		p0 := described[topic].Partitions[0]
		pr, ok := p0.ActiveProducers[pid]
		if p0.Err != nil || !ok {
			t.Fatalf("DescribeProducers: %+v, want producer %d", p0, pid)
		}
		return pr.CurrentTxnStartOffset
	}
	if got := startOf(); got != 3 {
		t.Errorf("open transaction's start offset %d, want 3", got)
	}
	if err := open.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if got := startOf(); got != -1 {
		t.Errorf("start offset after the commit %d, want -1", got)
	}
}
