package kafka

// InitProducerId (key 22), versions 0-4 (Kafka 2.8's maximum).
//
// Serves idempotent producers (Kafka 3.x clients enable idempotence by
// default): every call returns a new producer id with epoch 0, as Kafka does
// for producers without a transactional id; a KIP-360 epoch bump (v3+ with
// an existing id) also gets a fresh id, which resets sequences the same way.
// Transactional ids are refused: transactions are not served.

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 4, handleInitProducerID) }

func handleInitProducerID(ctx context.Context, c *conn, req *kmsg.InitProducerIDRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	if req.TransactionalID != nil {
		resp.ErrorCode = errCode(errTransactional)
		resp.ProducerID, resp.ProducerEpoch = -1, -1
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
// inherited by a new producer.
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
