package kafka

// AlterShareGroupOffsets (key 91), version 0 (KIP-932).
//
// Sets a share group's start offset on partitions: the subscription's
// cursor moves so that the offset is the first unacknowledged message
// (created at it if missing; an offset outside the log is clamped into
// it). Only while the group has no share members and no Pulsar consumer
// holds the subscription (NON_EMPTY_GROUP).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
)

func init() { register(0, 0, handleAlterShareGroupOffsets) }

func handleAlterShareGroupOffsets(ctx context.Context, c *conn, req *kmsg.AlterShareGroupOffsetsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.AlterShareGroupOffsetsResponse)
	s, err := c.h.shareCoord(ctx)
	if err == nil && s.hasMembers(req.GroupID) {
		err = kerr.NonEmptyGroup
	}
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errCode(err), errMsg(err)
		return resp, nil
	}
	s.markKnown(req.GroupID)
	for _, rt := range req.Topics {
		t := kmsg.NewAlterShareGroupOffsetsResponseTopic()
		t.Topic = rt.Topic
		ti, terr := c.h.lookupTopic(ctx, rt.Topic, auth.NeedConsume, false)
		if terr == nil {
			t.TopicID, _ = c.h.topicID(ctx, ti)
		}
		for _, rp := range rt.Partitions {
			p := kmsg.NewAlterShareGroupOffsetsResponseTopicPartition()
			p.Partition = rp.Partition
			perr := terr
			if perr == nil {
				sub, serr := c.h.shareSubscription(ctx, ti, rp.Partition, req.GroupID, true)
				switch {
				case serr != nil:
					perr = serr
				case sub.Held():
					perr = kerr.NonEmptyGroup
				default:
					perr = sub.Cursor().SetNextIndex(ctx, rp.StartOffset)
				}
			}
			p.ErrorCode, p.ErrorMessage = errCode(perr), errMsg(perr)
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}
