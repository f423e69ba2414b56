package kafka

// Committed offsets are subscriptions.
//
// Group G's committed offset on partition P of topic t is the subscription
// named G on the kopernik topic t-partition-P: OffsetCommit N moves its
// mark-delete position so that N is the first unconsumed message
// (Cursor.SetNextIndex) and OffsetFetch answers Cursor.NextIndex. There is
// no second copy: a Pulsar consumer acknowledging on subscription G, or an
// admin reset of it, is what the Kafka group sees next, and the
// subscription's backlog is the group's lag. Retention keeps what the
// subscription has not consumed.
//
// A partition without the subscription has no commit (OffsetFetch -1). The
// subscription is created by the first commit, at the committed position.
// The commit's metadata string and leader epoch are cursor properties.
//
// An offset outside the partition's [log start, log end] is stored as
// given, as Kafka does (the consumer then gets OFFSET_OUT_OF_RANGE and
// applies its reset policy): the cursor can only point at retained
// messages or the end, so its mark-delete is clamped into the log, and the
// committed value is kept next to it as cursor properties
// (kafka.commit.offset, and kafka.commit.next = the clamped position it
// stands for). OffsetFetch answers the committed value while the cursor is
// still at that clamped position; once anything else moves the cursor (a
// Pulsar consumer's ack, an admin reset, a later commit) the cursor's
// position is the answer again.

import (
	"context"
	"errors"
	"maps"
	"strconv"

	"github.com/kopernik-io/kopernik/broker"
)

// Cursor property keys of a Kafka commit.
const (
	propCommitMetadata    = "kafka.commit.metadata"
	propCommitLeaderEpoch = "kafka.commit.leader-epoch"
	// propCommitOffset and propCommitNext are set together, only when the
	// committed offset lies outside the log: the offset as committed and
	// the cursor's next index it was clamped to.
	propCommitOffset = "kafka.commit.offset"
	propCommitNext   = "kafka.commit.next"
)

// commitOffset stores group's committed offset on one partition and returns
// once it is durable; in a cluster, on the partition's owner
// (cluster_groups.go).
func (h *Handler) commitOffset(ctx context.Context, group string, name broker.TopicName, offset int64, leaderEpoch int32, metadata *string) error {
	err := h.commitOffsetLocal(ctx, group, name, offset, leaderEpoch, metadata)
	if owner, ok := remoteOwner(err); ok {
		req := offsetsRequest{Group: group, Topic: name.String(), Commit: true, Offset: offset, LeaderEpoch: leaderEpoch, Metadata: metadata}
		// The owner commits only while this broker's ownership of the
		// group's unit still holds in etcd (cluster_groups.go): a commit
		// this broker forwards after losing the group (paused past its
		// lease) is refused there, NOT_COORDINATOR.
		if co, cerr := h.coordinator(ctx); cerr == nil {
			if fence, _, fenced := co.fenceOf(group); fenced {
				req.Fence = &fence
			}
		}
		_, err = h.forwardOffsets(ctx, owner, req)
	}
	return err
}

// commitOffsetLocal is commitOffset on this broker.
func (h *Handler) commitOffsetLocal(ctx context.Context, group string, name broker.TopicName, offset int64, leaderEpoch int32, metadata *string) error {
	p, err := h.svc.OpenPartition(ctx, name, false)
	if err != nil {
		return err
	}
	sub, err := p.Subscription(ctx, group, true, broker.InitialEarliest)
	if err != nil {
		return err
	}
	cur := sub.Cursor()
	var next int64
	for attempt := 0; ; attempt++ {
		// The cursor lives on the raw log: on a compact topic whose raw
		// ledgers below the view's cleaned point were released, an offset
		// the view still serves (at or above the log start) is below the
		// raw log's first index; the cursor then stands at that index and
		// the offset asked is kept beside it (outsideCommit).
		next = min(max(offset, p.LogStart(), p.FirstIndex()), p.NextIndex())
		err = cur.SetNextIndex(ctx, next)
		// Retention or an append may move the bounds between the read and
		// the set: try again with fresh ones.
		if err == nil || attempt == 2 {
			break
		}
	}
	if err != nil {
		return broker.LedgerErr(err)
	}
	old := cur.Properties()
	props := maps.Clone(old)
	if props == nil {
		props = map[string]string{}
	}
	delete(props, propCommitMetadata)
	delete(props, propCommitLeaderEpoch)
	delete(props, propCommitOffset)
	delete(props, propCommitNext)
	if next != offset {
		props[propCommitOffset] = strconv.FormatInt(offset, 10)
		props[propCommitNext] = strconv.FormatInt(next, 10)
	}
	if metadata != nil && *metadata != "" {
		props[propCommitMetadata] = *metadata
	}
	if leaderEpoch >= 0 {
		props[propCommitLeaderEpoch] = strconv.Itoa(int(leaderEpoch))
	}
	if !maps.Equal(old, props) {
		cur.SetProperties(props)
	}
	// A fenced cursor (the partition moved while this broker held it) is
	// a retriable answer, not UNKNOWN_SERVER_ERROR: the commit is sent
	// again and reaches the new owner.
	return broker.LedgerErr(cur.Flush(ctx))
}

// committed is one partition's committed offset; offset -1: none.
type committed struct {
	offset      int64
	leaderEpoch int32
	metadata    string
}

// fetchOffset reads group's committed offset on one partition; in a
// cluster, from the partition's owner (cluster_groups.go).
func (h *Handler) fetchOffset(ctx context.Context, group string, name broker.TopicName) (committed, error) {
	c, err := h.fetchOffsetLocal(ctx, group, name)
	if owner, ok := remoteOwner(err); ok {
		r, ferr := h.forwardOffsets(ctx, owner, offsetsRequest{Group: group, Topic: name.String()})
		if ferr != nil {
			return c, ferr
		}
		return committed{offset: r.Offset, leaderEpoch: r.LeaderEpoch, metadata: r.Metadata}, nil
	}
	return c, err
}

// fetchOffsetLocal is fetchOffset on this broker.
func (h *Handler) fetchOffsetLocal(ctx context.Context, group string, name broker.TopicName) (committed, error) {
	none := committed{offset: -1, leaderEpoch: -1}
	p, err := h.svc.OpenPartition(ctx, name, false)
	if errors.Is(err, broker.ErrTopicNotFound) {
		return none, nil
	}
	if err != nil {
		return none, err
	}
	sub, err := p.Subscription(ctx, group, false, broker.InitialLatest)
	if errors.Is(err, broker.ErrSubscriptionNotFound) {
		return none, nil
	}
	if err != nil {
		return none, err
	}
	cur := sub.Cursor()
	out := committed{offset: cur.NextIndex(), leaderEpoch: -1}
	props := cur.Properties()
	out.metadata = props[propCommitMetadata]
	if e, err := strconv.ParseInt(props[propCommitLeaderEpoch], 10, 32); err == nil {
		out.leaderEpoch = int32(e)
	}
	if off, ok := outsideCommit(props, out.offset); ok {
		out.offset = off
	}
	return out, nil
}

// groupPartitions lists every partition of the topics a group committed
// to, skipping topics that no longer exist.
func (h *Handler) groupPartitions(ctx context.Context, topics []string) map[string][]broker.TopicName {
	out := map[string][]broker.TopicName{}
	for _, full := range topics {
		n, err := broker.ParseTopicName(full, h.cfg.Tenant, h.cfg.Namespace)
		if err != nil {
			continue
		}
		md, err := h.svc.GetTopic(ctx, n)
		if err != nil {
			continue
		}
		t := &topicInfo{kafka: h.kafkaName(ctx, md.Name), md: md}
		for i := range t.numPartitions() {
			pn, _ := t.partition(i)
			out[t.kafka] = append(out[t.kafka], pn)
		}
	}
	return out
}

// partitionIndex is a partition name's Kafka partition number.
func partitionIndex(n broker.TopicName) int32 {
	if i := n.PartitionIndex(); i >= 0 {
		return int32(i)
	}
	return 0
}

// outsideCommit returns the committed offset a cursor at next stands for
// when the commit lay outside the log (see propCommitOffset), and false
// when the cursor's own position is the answer: no such commit, or the
// cursor moved since.
func outsideCommit(props map[string]string, next int64) (int64, bool) {
	off, err1 := strconv.ParseInt(props[propCommitOffset], 10, 64)
	at, err2 := strconv.ParseInt(props[propCommitNext], 10, 64)
	if err1 != nil || err2 != nil || at != next {
		return 0, false
	}
	return off, true
}
