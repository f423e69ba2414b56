package kafka

// EndTxn (key 26), versions 0-3 (v4 adds TRANSACTION_ABORTABLE, v5 the
// KIP-890 epoch bump: not served).
//
// Commits or aborts the producer's transaction and answers once it is
// complete: the commit or abort marker is durable on every partition of the
// transaction and, on commit, its offsets are the groups' positions. A retry
// of a completed end with the same outcome succeeds.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 3, handleEndTxn) }

func handleEndTxn(ctx context.Context, c *conn, req *kmsg.EndTxnRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	co, err := c.h.txns(ctx)
	if err == nil {
		err = co.EndTxn(ctx, c.h.txnKey(ctx, req.TransactionalID), req.ProducerID, req.ProducerEpoch, req.Commit)
	}
	if err != nil {
		c.log.DebugContext(ctx, "kafka: EndTxn failed", "transactional_id", req.TransactionalID, "commit", req.Commit, "err", err)
	}
	resp.ErrorCode = errCode(err)
	return resp, nil
}
