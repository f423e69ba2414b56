package kafka

// AddPartitionsToTxn (key 24), versions 0-5. Versions 0-3 come from
// clients: one transaction, whose partitions are added (under transactions
// v2 clients skip this call, their produces add the partitions). Versions
// 4-5 come from brokers (KIP-890 part 1): several transactions per
// request, each either added like v3 or, with VerifyOnly, only checked
// (is each partition in the producer's Ongoing transaction?). Only a
// superuser (anyone with authorization off) may send them, as Kafka
// requires CLUSTER_ACTION: CLUSTER_AUTHORIZATION_FAILED at the top level
// otherwise. kopernik's own produce path checks the partition in the
// coordinator directly; these versions serve brokers and tools that ask.
//
// Per transaction: a topic or partition that does not exist (or may not be
// produced to) gets its own error and the others OPERATION_NOT_ATTEMPTED,
// as Kafka answers; otherwise every partition gets the coordinator's answer
// (v0-1 see PRODUCER_FENCED as INVALID_PRODUCER_EPOCH, which they predate).
// A verified partition not in the transaction is TRANSACTION_ABORTABLE at
// v5 and INVALID_TXN_STATE at v4 (which predates TRANSACTION_ABORTABLE);
// an empty transactional id in a v4+ transaction is INVALID_REQUEST. The
// transactions of one request are handled one after the other.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 5, handleAddPartitionsToTxn) }

// txnTopicPartitions is one topic of a transaction in either request shape.
type txnTopicPartitions struct {
	topic      string
	partitions []int32
}

func handleAddPartitionsToTxn(ctx context.Context, c *conn, req *kmsg.AddPartitionsToTxnRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version <= 3 {
		topics := make([]txnTopicPartitions, len(req.Topics))
		for i, rt := range req.Topics {
			topics[i] = txnTopicPartitions{rt.Topic, rt.Partitions}
		}
		codes := c.addPartitionsToTxn(ctx, req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch, false, topics)
		for i, rt := range req.Topics {
			st := kmsg.NewAddPartitionsToTxnResponseTopic()
			st.Topic = rt.Topic
			for j, part := range rt.Partitions {
				sp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				sp.Partition, sp.ErrorCode = part, codes[i][j]
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil
	}
	if err := c.h.checkSuperUser(ctx); err != nil {
		resp.ErrorCode = errCode(err)
		return resp, nil
	}
	for _, tx := range req.Transactions {
		topics := make([]txnTopicPartitions, len(tx.Topics))
		for i, rt := range tx.Topics {
			topics[i] = txnTopicPartitions{rt.Topic, rt.Partitions}
		}
		codes := c.addPartitionsToTxn(ctx, req.Version, tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly, topics)
		rtx := kmsg.NewAddPartitionsToTxnResponseTransaction()
		rtx.TransactionalID = tx.TransactionalID
		for i, rt := range tx.Topics {
			st := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			st.Topic = rt.Topic
			for j, part := range rt.Partitions {
				sp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
				sp.Partition, sp.ErrorCode = part, codes[i][j]
				st.Partitions = append(st.Partitions, sp)
			}
			rtx.Topics = append(rtx.Topics, st)
		}
		resp.Transactions = append(resp.Transactions, rtx)
	}
	return resp, nil
}

// addPartitionsToTxn adds (or, verifyOnly, checks) one transaction's
// partitions and returns each partition's error code, indexed like topics.
func (c *conn) addPartitionsToTxn(ctx context.Context, version int16, txnID string, pid int64, epoch int16, verifyOnly bool, topics []txnTopicPartitions) [][]int16 {
	h := c.h
	codes := make([][]int16, len(topics))
	// fill gives every partition without an error of its own code.
	fill := func(code int16) {
		for i := range codes {
			for j := range codes[i] {
				if codes[i][j] == 0 {
					codes[i][j] = code
				}
			}
		}
	}
	var names []broker.TopicName
	var at [][2]int // names[k] is topics[at[k][0]].partitions[at[k][1]]
	failed := false
	for i, rt := range topics {
		codes[i] = make([]int16, len(rt.partitions))
		t, err := h.lookupTopic(ctx, rt.topic, auth.NeedProduce, false)
		for j, part := range rt.partitions {
			if err != nil {
				codes[i][j], failed = errCode(err), true
				continue
			}
			name, ok := t.partition(part)
			if !ok {
				codes[i][j], failed = kerr.UnknownTopicOrPartition.Code, true
				continue
			}
			names = append(names, name)
			at = append(at, [2]int{i, j})
		}
	}
	if failed {
		fill(kerr.OperationNotAttempted.Code)
		return codes
	}
	if version >= 4 && txnID == "" {
		fill(kerr.InvalidRequest.Code)
		return codes
	}
	co, key, err := h.txnsFor(ctx, txnID)
	if err != nil {
		fill(errCode(err))
		return codes
	}
	if verifyOnly {
		in, err := co.VerifyPartitions(ctx, key, pid, epoch, names)
		if err != nil {
			c.log.DebugContext(ctx, "kafka: AddPartitionsToTxn verification failed", "transactional_id", txnID, "err", err)
			fill(errCode(err))
			return codes
		}
		notIn := kerr.TransactionAbortable.Code
		if version < 5 {
			notIn = kerr.InvalidTxnState.Code
		}
		for k, ok := range in {
			if !ok {
				codes[at[k][0]][at[k][1]] = notIn
			}
		}
		return codes
	}
	err = co.AddPartitions(ctx, key, pid, epoch, names)
	if err != nil {
		c.log.DebugContext(ctx, "kafka: AddPartitionsToTxn failed", "transactional_id", txnID, "err", err)
	}
	code := errCode(err)
	if version < 2 && code == kerr.ProducerFenced.Code {
		code = kerr.InvalidProducerEpoch.Code
	}
	fill(code)
	return codes
}
