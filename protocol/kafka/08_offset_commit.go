package kafka

// OffsetCommit (key 8), versions 0-8 (Kafka 2.8's maximum).
//
// A commit moves the group's subscription on each partition (see
// group_offsets.go) and is durable before the answer. Group checks follow
// Kafka: a member commits in its generation (also while a rebalance is being
// prepared; REBALANCE_IN_PROGRESS while assignments are being synced); a
// non-member with generation -1 and no member id commits to an empty or
// unknown group ("simple" commits, which also create the group). v0 has no
// generation. v2-v4's retention time is ignored: commits live as long as the
// subscription. v6+ leader epochs and the metadata string (at most 4096
// bytes, OFFSET_METADATA_TOO_LARGE otherwise) are kept with the commit.
// v7+: group instance id.

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 8, handleOffsetCommit) }

// commitParallelism bounds the partitions one OffsetCommit writes at once
// (their cursor writes share the metadata store's group commits).
const commitParallelism = 8

func handleOffsetCommit(ctx context.Context, c *conn, req *kmsg.OffsetCommitRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	gen, member, instance := req.Generation, req.MemberID, ""
	if req.Version == 0 {
		gen, member = -1, ""
	}
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	var groupCode int16
	co, err := h.groupCoordinator(ctx, req.Group)
	if err != nil {
		groupCode = errCode(err)
	} else if e := co.commitCheck(req.Group, member, instance, gen); e != nil {
		groupCode = e.Code
	}

	type job struct {
		ti, pi   int
		name     broker.TopicName
		offset   int64
		epoch    int32
		metadata *string
	}
	var jobs []job
	var topics []string
	resp.Topics = make([]kmsg.OffsetCommitResponseTopic, len(req.Topics))
	for ti, rt := range req.Topics {
		st := &resp.Topics[ti]
		*st = kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.OffsetCommitResponseTopicPartition, len(rt.Partitions))
		var t *topicInfo
		var terr error
		if groupCode == 0 {
			t, terr = h.lookupTopic(ctx, rt.Topic, auth.NeedConsume, false)
			if terr == nil {
				topics = append(topics, t.md.Name.String())
			}
		}
		for pi, rp := range rt.Partitions {
			sp := &st.Partitions[pi]
			*sp = kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			switch {
			case groupCode != 0:
				sp.ErrorCode = groupCode
			case terr != nil:
				sp.ErrorCode = errCode(terr)
			case rp.Metadata != nil && len(*rp.Metadata) > maxOffsetMetadata:
				sp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
			default:
				name, ok := t.partition(rp.Partition)
				if !ok {
					sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
					continue
				}
				epoch := rp.LeaderEpoch
				if req.Version < 6 {
					epoch = -1
				}
				jobs = append(jobs, job{ti: ti, pi: pi, name: name, offset: rp.Offset, epoch: epoch, metadata: rp.Metadata})
			}
		}
	}
	if len(jobs) == 0 {
		return resp, nil
	}
	// The group's record lists its topics before any subscription is
	// created, so that DeleteGroups and OffsetFetch(all) find them.
	co.addTopics(req.Group, topics)
	sem := make(chan struct{}, commitParallelism)
	var wg sync.WaitGroup
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := h.commitOffset(ctx, req.Group, j.name, j.offset, j.epoch, j.metadata); err != nil {
				c.log.WarnContext(ctx, "kafka: offset commit failed", "group", req.Group, "topic", j.name.String(), "err", err)
				resp.Topics[j.ti].Partitions[j.pi].ErrorCode = errCode(err)
				return
			}
			co.attachCommitted(ctx, req.Group, j.name)
		}()
	}
	wg.Wait()
	return resp, nil
}
