package kafka

// DescribeTransactions (key 65), version 0 (KIP-664).
//
// Each transactional id's record in the broker's coordinator: state (Kafka's
// names), timeout, start time of the ongoing transaction (-1 when none),
// producer id and epoch, and its partitions grouped by topic (Kafka names).
// Unknown ids get TRANSACTIONAL_ID_NOT_FOUND.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 0, handleDescribeTransactions) }

func handleDescribeTransactions(ctx context.Context, c *conn, req *kmsg.DescribeTransactionsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	co, cerr := c.h.txns(ctx)
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID = id
		st.ProducerID, st.ProducerEpoch, st.StartTimestamp = -1, -1, -1
		err := cerr
		var m broker.TxnMetadata
		if err == nil {
			key := c.h.txnKey(ctx, id)
			if err = co.Route(ctx, key); err == nil {
				m, err = co.Describe(ctx, key)
			}
		}
		if err != nil {
			st.ErrorCode = errCode(err)
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		st.State, st.TimeoutMillis = string(m.State), m.TimeoutMs
		st.ProducerID, st.ProducerEpoch = m.ProducerID, m.Epoch
		if m.State == broker.TxnOngoing || m.State == broker.TxnPrepareCommit || m.State == broker.TxnPrepareAbort {
			st.StartTimestamp = m.StartMs
		}
		byTopic := map[string]int{}
		for _, full := range m.Partitions {
			n, err := broker.ParseTopicName(full, "", "")
			if err != nil {
				continue
			}
			kname := c.h.kafkaName(ctx, n.Base())
			i, ok := byTopic[kname]
			if !ok {
				i = len(st.Topics)
				byTopic[kname] = i
				t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				t.Topic = kname
				st.Topics = append(st.Topics, t)
			}
			st.Topics[i].Partitions = append(st.Topics[i].Partitions, partitionIndex(n))
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp, nil
}
