package kafka

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnBatch is makeBatch with the transactional attribute.
func txnBatch(pid int64, epoch int16, seq int32, values ...string) []byte {
	b := makeBatch(pid, epoch, seq, time.Now().UnixMilli(), values...)
	binary.BigEndian.PutUint16(b[21:], attrTransactional)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

// TestTxnV2Wire drives transactions v2 (KIP-890 part 2) on the wire as a
// Kafka 4 client does, and the same calls under transaction-version 1:
// ApiVersions finalizes transaction.version at the configured level;
// under 2 a Produce v12 and a TxnOffsetCommit v5 join the transaction
// without AddPartitionsToTxn / AddOffsetsToTxn, EndTxn v5 answers the
// bumped epoch (a produce at the old one is fenced, a retried EndTxn gets
// the same answer), an empty abort succeeds and an empty commit does not;
// under 1 the same requests are refused (the partition was never added)
// and EndTxn v5 answers no new epoch.
func TestTxnV2Wire(t *testing.T) {
	for _, tv := range []int{1, 2} {
		t.Run(fmt.Sprintf("transaction.version=%d", tv), func(t *testing.T) {
			s := startServer(t, func(c *Config) { c.TransactionVersion = tv })
			c := dialRaw(t, s.addr)
			av := kmsg.NewPtrApiVersionsRequest()
			av.Version = 3
			avr := c.do(av).(*kmsg.ApiVersionsResponse)
			if len(avr.FinalizedFeatures) != 1 || avr.FinalizedFeatures[0].Name != "transaction.version" || avr.FinalizedFeatures[0].MaxVersionLevel != int16(tv) || avr.FinalizedFeaturesEpoch < 0 {
				t.Fatalf("finalized features %+v epoch %d, want transaction.version=%d", avr.FinalizedFeatures, avr.FinalizedFeaturesEpoch, tv)
			}
			const topic, group, txnID = "v2wire", "v2group", "v2txn"
			createTopicRaw(t, c, topic, 2)

			init := kmsg.NewPtrInitProducerIDRequest()
			init.Version = 5
			init.TransactionalID = kmsg.StringPtr(txnID)
			init.TransactionTimeoutMillis = 60000
			ir := c.do(init).(*kmsg.InitProducerIDResponse)
			if ir.ErrorCode != 0 {
				t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(ir.ErrorCode))
			}
			pid, epoch := ir.ProducerID, ir.ProducerEpoch

			produce := func(epoch int16, seq int32, partition int32, values ...string) int16 {
				t.Helper()
				req := produceReq(topic, partition, txnBatch(pid, epoch, seq, values...))
				req.Version = 12
				req.TransactionID = kmsg.StringPtr(txnID)
				return c.do(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
			}
			endTxn := func(pid int64, epoch int16, commit bool) *kmsg.EndTxnResponse {
				t.Helper()
				req := kmsgEndTxn(txnID, pid, epoch, commit)
				req.Version = 5
				return c.do(req).(*kmsg.EndTxnResponse)
			}
			commitOffset := func(epoch int16, offset int64) int16 {
				t.Helper()
				req := kmsg.NewPtrTxnOffsetCommitRequest()
				req.Version = 5
				req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = txnID, group, pid, epoch
				req.Generation, req.MemberID = -1, ""
				rt := kmsg.NewTxnOffsetCommitRequestTopic()
				rt.Topic = topic
				rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch = 0, offset, -1
				rt.Partitions = append(rt.Partitions, rp)
				req.Topics = append(req.Topics, rt)
				return c.do(req).(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
			}

			if tv == 1 {
				if code := produce(epoch, 0, 0, "a"); code != kerr.InvalidTxnState.Code {
					t.Fatalf("v12 produce under v1 without AddPartitionsToTxn: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
				}
				if code := commitOffset(epoch, 1); code != kerr.InvalidTxnState.Code {
					t.Fatalf("v5 TxnOffsetCommit under v1 without AddOffsetsToTxn: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
				}
				if r := endTxn(pid, epoch, false); r.ErrorCode != kerr.InvalidTxnState.Code || r.ProducerID != -1 || r.ProducerEpoch != -1 {
					t.Fatalf("v5 EndTxn under v1 without a transaction: %v %d/%d, want INVALID_TXN_STATE -1/-1", kerr.ErrorForCode(r.ErrorCode), r.ProducerID, r.ProducerEpoch)
				}
				return
			}

			for p := range int32(2) {
				if code := produce(epoch, 0, p, fmt.Sprintf("p%d-a", p), fmt.Sprintf("p%d-b", p)); code != 0 {
					t.Fatalf("v12 produce to %d: %v", p, kerr.ErrorForCode(code))
				}
			}
			if code := produce(epoch, 2, 0, "p0-c"); code != 0 {
				t.Fatalf("second v12 produce: %v", kerr.ErrorForCode(code))
			}
			if code := commitOffset(epoch, 7); code != 0 {
				t.Fatalf("v5 TxnOffsetCommit: %v", kerr.ErrorForCode(code))
			}
			r := endTxn(pid, epoch, true)
			if r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != epoch+1 {
				t.Fatalf("EndTxn v5 commit: %v %d/%d, want %d/%d", kerr.ErrorForCode(r.ErrorCode), r.ProducerID, r.ProducerEpoch, pid, epoch+1)
			}
			if again := endTxn(pid, epoch, true); again.ErrorCode != 0 || again.ProducerEpoch != epoch+1 {
				t.Fatalf("retried EndTxn v5: %v %d/%d, want the same answer", kerr.ErrorForCode(again.ErrorCode), again.ProducerID, again.ProducerEpoch)
			}
			if code := produce(epoch, 3, 0, "late"); code != kerr.InvalidProducerEpoch.Code && code != kerr.ProducerFenced.Code {
				t.Fatalf("produce at the ended epoch: %v, want INVALID_PRODUCER_EPOCH", kerr.ErrorForCode(code))
			}
			epoch++
			if r := endTxn(pid, epoch, true); r.ErrorCode != kerr.InvalidTxnState.Code {
				t.Fatalf("empty commit: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(r.ErrorCode))
			}
			if r := endTxn(pid, epoch, false); r.ErrorCode != 0 || r.ProducerEpoch != epoch+1 {
				t.Fatalf("empty abort: %v %d, want epoch %d", kerr.ErrorForCode(r.ErrorCode), r.ProducerEpoch, epoch+1)
			}
			epoch++
			// An aborted transaction at the new epoch (sequences restart).
			if code := produce(epoch, 0, 1, "p1-aborted"); code != 0 {
				t.Fatalf("produce at the new epoch: %v", kerr.ErrorForCode(code))
			}
			if r := endTxn(pid, epoch, false); r.ErrorCode != 0 || r.ProducerEpoch != epoch+1 {
				t.Fatalf("abort: %v %d", kerr.ErrorForCode(r.ErrorCode), r.ProducerEpoch)
			}

			ctx := testCtx(t)
			got := consumeValues(t, s.addr, topic, kgo.ReadCommitted(), 5, 500*time.Millisecond)
			if strings.Join(got, ",") != "p0-a,p0-b,p0-c,p1-a,p1-b" && strings.Join(got, ",") != "p1-a,p1-b,p0-a,p0-b,p0-c" {
				t.Fatalf("read_committed: %v", got)
			}
			offs, err := kadm.NewClient(newKgo(t, s.addr)).FetchOffsets(ctx, group)
			if err != nil {
				t.Fatal(err)
			}
			if o, ok := offs.Lookup(topic, 0); !ok || o.At != 4 {
				t.Fatalf("group offset %+v %v, want 4 (7 clamped to the end: three records and the marker)", o, ok)
			}
		})
	}
}

// TestTxnV2Franz: franz-go opts into transactions v2 exactly when the
// broker finalizes transaction.version 2: each committed or aborted
// transaction then bumps the producer's epoch (DescribeTransactions), and
// read_committed sees exactly the committed ones; under version 1 the
// epoch stays.
func TestTxnV2Franz(t *testing.T) {
	for _, tv := range []int{1, 2} {
		t.Run(fmt.Sprintf("transaction.version=%d", tv), func(t *testing.T) {
			s := startServer(t, func(c *Config) { c.TransactionVersion = tv })
			ctx := testCtx(t)
			const topic = "v2franz"
			adm := kadm.NewClient(newKgo(t, s.addr))
			if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
				t.Fatal(err)
			}
			p := newKgo(t, s.addr, kgo.TransactionalID("v2franz"), kgo.TransactionTimeout(30*time.Second), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
			produceTxn(t, ctx, p, topic, "c1", 9, true)
			produceTxn(t, ctx, p, topic, "a1", 9, false)
			produceTxn(t, ctx, p, topic, "c2", 9, true)
			d, err := adm.DescribeTransactions(ctx, "v2franz")
			if err != nil {
				t.Fatal(err)
			}
			dt, ok := d["v2franz"]
			if !ok || dt.Err != nil {
				t.Fatalf("describe: %+v %v", dt, ok)
			}
			wantEpoch := int16(0)
			if tv == 2 {
				wantEpoch = 3
			}
			if dt.ProducerEpoch != wantEpoch {
				t.Fatalf("producer epoch %d after three transactions, want %d", dt.ProducerEpoch, wantEpoch)
			}
			want := append(seq("c1", 9), seq("c2", 9)...)
			got := consumeValues(t, s.addr, topic, kgo.ReadCommitted(), len(want), time.Second)
			if len(got) != len(want) {
				t.Fatalf("read_committed got %d records %v, want %d", len(got), got, len(want))
			}
			for _, v := range got {
				if strings.HasPrefix(v, "a1") {
					t.Fatalf("read_committed saw an aborted record %q", v)
				}
			}
		})
	}
}
