package pulsar

// Backlog quota (Pulsar's destination_storage BacklogQuota): when a topic's
// backlog, the unacknowledged bytes of its slowest durable subscription, is
// over the namespace's limit, SENDs are held unanswered until it drops
// (producer_request_hold; the client's send timeout then fails them). The
// admin API stores the quota in the policies' BacklogQuota (admin/backlogquota.go).
// With producer_exception, the producer is closed instead (CLOSE_PRODUCER)
// and new producers are refused with ProducerBlockedQuotaExceededException
// (the client retries with backoff). consumer_backlog_eviction is not
// served: kopernik never drops unacknowledged messages.
//
// A terminated topic (admin .../terminate sets its Policies.Terminated)
// is treated alike: its producers are closed and new ones refused with
// TopicTerminatedError, on which the Go client gives the producer up.

import (
	"context"
	"time"

	"github.com/kopernik-io/kopernik/broker"
)

const (
	// quotaRecheck is how often a held producer looks at the backlog again.
	quotaRecheck = 250 * time.Millisecond
)

// backlogLimit returns the partition's backlog limit in bytes and whether
// exceeding it fails producers (producer_exception) rather than holding
// them, if a quota that acts on producers is set.
func backlogLimit(part *broker.Partition) (limit int64, exception, ok bool) {
	q := part.Policies().BacklogQuota
	if q == nil || q.LimitBytes < 0 {
		return 0, false, false
	}
	switch q.Policy {
	case "producer_request_hold":
	case "producer_exception":
		exception = true
	default:
		return 0, false, false
	}
	return q.LimitBytes, exception, true
}

// overQuota reports whether a producer_exception quota refuses producers now.
func overQuota(ctx context.Context, part *broker.Partition) bool {
	limit, exception, ok := backlogLimit(part)
	return ok && exception && backlogBytes(ctx, part) > limit
}

// backlogBytes estimates the largest subscription backlog in bytes
// (messages times the partition's average message size, as stats do).
func backlogBytes(ctx context.Context, part *broker.Partition) int64 {
	st := part.Stats()
	if st.Messages <= 0 {
		return 0
	}
	var most int64
	for _, sub := range part.Subscriptions(ctx) {
		most = max(most, sub.Cursor().Backlog())
	}
	return int64(float64(most) * float64(st.Bytes) / float64(st.Messages))
}

// terminated reports whether the topic was terminated.
func terminated(part *broker.Partition) bool {
	return part.Policies().Terminated
}

// holdForQuota waits while the backlog is over the quota; false if the
// producer ended meanwhile or was closed (producer_exception, terminated
// topic). A verdict stands for BacklogQuotaCheckInterval; while held, the
// backlog is looked at every quotaRecheck.
func (p *producer) holdForQuota() bool {
	for {
		if terminated(p.part) {
			go p.closeByBroker() // the client reconnects and is refused
			return false
		}
		now := time.Now()
		if p.quotaOver || now.Sub(p.quotaCheckedAt) >= p.c.h.cfg.BacklogQuotaCheckInterval {
			limit, exception, ok := backlogLimit(p.part)
			p.quotaOver = ok && backlogBytes(p.ctx, p.part) > limit
			p.quotaCheckedAt = now
			if p.quotaOver && exception {
				go p.closeByBroker() // the client reconnects and is refused
				return false
			}
		}
		if !p.quotaOver {
			return true
		}
		select {
		case <-p.ctx.Done():
			return false
		case <-time.After(quotaRecheck):
		}
	}
}
