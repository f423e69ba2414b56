package pulsar

// Backlog quota (Pulsar's destination_storage BacklogQuota): when a topic's
// backlog, the unacknowledged bytes of its slowest durable subscription, is
// over the namespace's limit, SENDs are held unanswered until it drops
// (producer_request_hold; the client's send timeout then fails them). The
// admin API stores the quota in the policies' Extra (admin/backlogquota.go).
// producer_exception is served as a hold too, and consumer_backlog_eviction
// not at all: kopernik never drops unacknowledged messages.

import (
	"context"
	"strconv"
	"time"

	"github.com/kopernik-io/kopernik/broker"
)

const (
	extraBacklogLimit  = "pulsar.backlogQuota.limitSize"
	extraBacklogPolicy = "pulsar.backlogQuota.policy"
	// quotaRecheck is how often a held producer looks at the backlog again.
	quotaRecheck = 250 * time.Millisecond
)

// backlogLimit returns the partition's backlog limit in bytes, if a quota
// that holds producers is set.
func backlogLimit(part *broker.Partition) (int64, bool) {
	extra := part.Policies().Extra
	v, ok := extra[extraBacklogLimit]
	if !ok {
		return 0, false
	}
	switch extra[extraBacklogPolicy] {
	case "producer_request_hold", "producer_exception":
	default:
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
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

// holdForQuota waits while the backlog is over the quota; false if the
// producer ended meanwhile.
func (p *producer) holdForQuota() bool {
	for {
		limit, ok := backlogLimit(p.part)
		if !ok || backlogBytes(p.ctx, p.part) <= limit {
			return true
		}
		select {
		case <-p.ctx.Done():
			return false
		case <-time.After(quotaRecheck):
		}
	}
}
