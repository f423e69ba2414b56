package kafka

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// explainEvery bounds how often one partition's failure of one kind is
// logged: a full disk fails every produce to every partition, and one line
// per partition per interval says everything the operator needs.
const explainEvery = 10 * time.Second

// explainer logs the cause of errors a client cannot act on by itself
// (UNKNOWN_SERVER_ERROR) or that an operator must see (KAFKA_STORAGE_ERROR:
// a failed disk, exhausted file descriptors or memory), naming the request,
// the partition and the cause, so that no such code reaches a client
// without a log line explaining it.
type explainer struct {
	mu   sync.Mutex
	last map[string]time.Time // "code partition" -> last logged
}

// partitionErrCode is errCode for an error about one partition, with the
// explanation logged when the code needs one.
func (h *Handler) partitionErrCode(ctx context.Context, op, topic string, partition int32, err error) int16 {
	code := errCode(err)
	if code != kerr.UnknownServerError.Code && code != kerr.KafkaStorageError.Code {
		return code
	}
	key := fmt.Sprintf("%d %s-%d", code, topic, partition)
	now := time.Now()
	e := &h.explain
	e.mu.Lock()
	if e.last == nil {
		e.last = map[string]time.Time{}
	}
	if t, ok := e.last[key]; ok && now.Sub(t) < explainEvery {
		e.mu.Unlock()
		return code
	}
	e.last[key] = now
	if len(e.last) > 10000 {
		for k, t := range e.last {
			if now.Sub(t) >= explainEvery {
				delete(e.last, k)
			}
		}
	}
	e.mu.Unlock()
	h.log.WarnContext(ctx, "kafka: request failed", "op", op, "kafka_topic", topic, "partition", partition,
		"code", kerr.ErrorForCode(code).(*kerr.Error).Message, "err", err)
	return code
}
