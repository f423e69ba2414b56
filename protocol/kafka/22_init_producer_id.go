package kafka

// InitProducerId (key 22), versions 0-5 (v5 adds TRANSACTION_ABORTABLE to
// the codes a client may get; v6, KIP-939's two-phase commit, is not served).
//
// Without a transactional id (idempotent producers; Kafka 3.x clients enable
// idempotence by default) every call returns a new producer id with epoch 0,
// as Kafka does; a KIP-360 epoch bump (v3+ with an existing id) also gets a
// fresh id, which resets sequences the same way. With a transactional id the
// broker's transaction coordinator answers (broker/txn.go): a new producer id
// for a new id, else the epoch bumped (fencing older incarnations, aborting
// their ongoing transaction); transaction_timeout_ms must be within
// (0, transaction max timeout] (INVALID_TRANSACTION_TIMEOUT); a v3+ producer
// id/epoch that is not the current one gets PRODUCER_FENCED.

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 5, handleInitProducerID) }

func handleInitProducerID(ctx context.Context, c *conn, req *kmsg.InitProducerIDRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	if req.TransactionalID != nil {
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		co, key, err := c.h.txnsFor(ctx, *req.TransactionalID)
		if err != nil {
			resp.ErrorCode = errCode(err)
			return resp, nil
		}
		current := broker.ProducerIDAndEpoch{ProducerID: -1}
		if req.Version >= 3 && req.ProducerID >= 0 {
			current = broker.ProducerIDAndEpoch{ProducerID: req.ProducerID, Epoch: req.ProducerEpoch}
		}
		timeout := time.Duration(req.TransactionTimeoutMillis) * time.Millisecond
		pe, err := co.InitProducerID(ctx, key, timeout, current)
		if err != nil {
			c.log.DebugContext(ctx, "kafka: InitProducerId failed", "transactional_id", *req.TransactionalID, "err", err)
			resp.ErrorCode = errCode(err)
			return resp, nil
		}
		resp.ProducerID, resp.ProducerEpoch = pe.ProducerID, pe.Epoch
		return resp, nil
	}
	resp.ProducerID = c.h.pids.next()
	resp.ProducerEpoch = 0
	return resp, nil
}

// producerIDs hands out unique producer ids without persisted state: each id
// is max(previous+1, now in microseconds). Ids therefore never repeat across
// restarts unless more than a million were handed out per second for longer
// than the restart took, and the broker's dedup state, keyed by id, is never
// inherited by a new producer. Transactional producer ids come from the
// coordinator's persisted counter, which starts at 1: far below these.
type producerIDs struct {
	mu   sync.Mutex
	last int64
}

func newProducerIDs() *producerIDs { return &producerIDs{} }

func (p *producerIDs) next() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := time.Now().UnixMicro()
	if id <= p.last {
		id = p.last + 1
	}
	p.last = id
	return id
}
