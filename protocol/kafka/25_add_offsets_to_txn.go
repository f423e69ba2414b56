package kafka

// AddOffsetsToTxn (key 25), versions 0-4 (v4 adds TRANSACTION_ABORTABLE to
// the codes a client may get; under transactions v2 clients skip this call).
//
// Adds a consumer group to the producer's transaction, so that its
// TxnOffsetCommit calls are accepted; the offsets become the group's
// subscription positions when the transaction commits.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 4, handleAddOffsetsToTxn) }

func handleAddOffsetsToTxn(ctx context.Context, c *conn, req *kmsg.AddOffsetsToTxnRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	err := c.h.checkGroup(ctx)
	if err == nil {
		co, key, cerr := c.h.txnsFor(ctx, req.TransactionalID)
		if err = cerr; err == nil {
			err = co.AddGroup(ctx, key, req.ProducerID, req.ProducerEpoch, req.Group)
		}
	}
	if err != nil {
		c.log.DebugContext(ctx, "kafka: AddOffsetsToTxn failed", "transactional_id", req.TransactionalID, "group", req.Group, "err", err)
	}
	resp.ErrorCode = errCode(err)
	return resp, nil
}
