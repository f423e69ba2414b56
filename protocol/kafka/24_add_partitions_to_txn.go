package kafka

// AddPartitionsToTxn (key 24), versions 0-3 (v4+ batches transactions per
// request for brokers verifying produces, KIP-890 part 1: not served, the
// coordinator is in the broker; under transactions v2 clients skip this
// call, their produces add the partitions).
//
// Adds the partitions to the producer's transaction in the broker's
// coordinator. Every partition of the request gets the same answer; a topic
// or partition that does not exist (or may not be produced to) gets its own
// error and the others OPERATION_NOT_ATTEMPTED, as Kafka answers.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 3, handleAddPartitionsToTxn) }

func handleAddPartitionsToTxn(ctx context.Context, c *conn, req *kmsg.AddPartitionsToTxnRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	codes := make([][]int16, len(req.Topics))
	var names []broker.TopicName
	failed := false
	for i, rt := range req.Topics {
		codes[i] = make([]int16, len(rt.Partitions))
		t, err := h.lookupTopic(ctx, rt.Topic, auth.NeedProduce, false)
		for j, part := range rt.Partitions {
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
		}
	}
	var code int16
	switch {
	case failed:
		code = kerr.OperationNotAttempted.Code
	default:
		co, err := h.txns(ctx)
		if err == nil {
			err = co.AddPartitions(ctx, h.txnKey(ctx, req.TransactionalID), req.ProducerID, req.ProducerEpoch, names)
		}
		if err != nil {
			c.log.DebugContext(ctx, "kafka: AddPartitionsToTxn failed", "transactional_id", req.TransactionalID, "err", err)
		}
		code = errCode(err)
	}
	for i, rt := range req.Topics {
		st := kmsg.NewAddPartitionsToTxnResponseTopic()
		st.Topic = rt.Topic
		for j, part := range rt.Partitions {
			sp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			sp.Partition = part
			sp.ErrorCode = codes[i][j]
			if sp.ErrorCode == 0 {
				sp.ErrorCode = code
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
