package kafka

// EndTxn (key 26), versions 0-5 (v4 adds TRANSACTION_ABORTABLE to the
// codes a client may get; v5 is transactions v2, KIP-890 part 2).
//
// Commits or aborts the producer's transaction and answers once it is
// complete: the commit or abort marker is durable on every partition of the
// transaction and, on commit, its offsets are the groups' positions. A retry
// of a completed end with the same outcome succeeds. v5 under
// transaction-version 2 also bumps the producer epoch (the markers carry
// the new one) and answers the producer id and epoch to continue with; an
// abort without an open transaction then succeeds too. Otherwise v5 answers
// producer id and epoch -1, as a Kafka 4 broker on transaction.version 1
// does, and the client keeps its epoch.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 5, handleEndTxn) }

func handleEndTxn(ctx context.Context, c *conn, req *kmsg.EndTxnRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	co, id, err := c.h.txnsFor(ctx, req.TransactionalID)
	if err == nil {
		if c.h.txnV2(req.Version, 5) {
			var pe broker.ProducerIDAndEpoch
			if pe, err = co.EndTxnV2(ctx, id, req.ProducerID, req.ProducerEpoch, req.Commit); err == nil {
				resp.ProducerID, resp.ProducerEpoch = pe.ProducerID, pe.Epoch
			}
		} else {
			err = co.EndTxn(ctx, id, req.ProducerID, req.ProducerEpoch, req.Commit)
		}
	}
	if err != nil {
		c.log.DebugContext(ctx, "kafka: EndTxn failed", "transactional_id", req.TransactionalID, "commit", req.Commit, "err", err)
	}
	resp.ErrorCode = errCode(err)
	return resp, nil
}
