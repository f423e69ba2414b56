package kafka

// DeleteShareGroupOffsets (key 92), version 0 (KIP-932).
//
// Deletes a share group's state on whole topics: the subscription of the
// group's name on each of the topic's partitions. Only while the group
// has no share members (NON_EMPTY_GROUP); a subscription a Pulsar
// consumer holds is NON_EMPTY_GROUP for its topic.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 0, handleDeleteShareGroupOffsets) }

func handleDeleteShareGroupOffsets(ctx context.Context, c *conn, req *kmsg.DeleteShareGroupOffsetsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DeleteShareGroupOffsetsResponse)
	s, err := c.h.shareCoord(ctx)
	if err == nil && s.hasMembers(req.GroupID) {
		err = kerr.NonEmptyGroup
	}
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errCode(err), errMsg(err)
		return resp, nil
	}
	for _, rt := range req.Topics {
		t := kmsg.NewDeleteShareGroupOffsetsResponseTopic()
		t.Topic = rt.Topic
		ti, terr := c.h.lookupTopic(ctx, rt.Topic, auth.NeedConsume, false)
		if terr == nil {
			t.TopicID, _ = c.h.topicID(ctx, ti)
			for p := range ti.numPartitions() {
				pn, _ := ti.partition(p)
				part, perr := c.h.svc.OpenPartition(ctx, pn, false)
				if perr == nil {
					perr = part.DeleteSubscription(ctx, req.GroupID, false)
				}
				if errors.Is(perr, broker.ErrSubscriptionNotFound) {
					continue
				}
				if errors.Is(perr, broker.ErrInUse) {
					perr = kerr.NonEmptyGroup
				}
				if perr != nil {
					terr = perr
					break
				}
			}
		}
		t.ErrorCode, t.ErrorMessage = errCode(terr), errMsg(terr)
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}
