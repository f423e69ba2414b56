package kafka

// DescribeShareGroupOffsets (key 90), versions 0-1 (KIP-932).
//
// A share group's start offset on each partition is the first message its
// subscription has not acknowledged (Cursor.NextIndex); v1 adds the lag
// (the subscription's backlog). Null topics: every partition holding a
// subscription of the group's name. A partition without one answers -1.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 1, handleDescribeShareGroupOffsets) }

func handleDescribeShareGroupOffsets(ctx context.Context, c *conn, req *kmsg.DescribeShareGroupOffsetsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeShareGroupOffsetsResponse)
	_, err := c.h.shareCoord(ctx)
	for _, rg := range req.Groups {
		g := kmsg.NewDescribeShareGroupOffsetsResponseGroup()
		g.GroupID = rg.GroupID
		if err != nil {
			g.ErrorCode, g.ErrorMessage = errCode(err), errMsg(err)
			resp.Groups = append(resp.Groups, g)
			continue
		}
		type want struct {
			topic string
			parts []int32 // nil: those with a subscription
		}
		var wants []want
		if rg.Topics == nil {
			subs, serr := c.h.subscriptionPartitions(ctx, rg.GroupID)
			if serr != nil {
				g.ErrorCode, g.ErrorMessage = errCode(serr), errMsg(serr)
				resp.Groups = append(resp.Groups, g)
				continue
			}
			for topic, pns := range subs[rg.GroupID] {
				w := want{topic: topic}
				for _, pn := range pns {
					w.parts = append(w.parts, int32(max(pn.PartitionIndex(), 0)))
				}
				wants = append(wants, w)
			}
		} else {
			for _, rt := range rg.Topics {
				wants = append(wants, want{topic: rt.Topic, parts: rt.Partitions})
			}
		}
		for _, w := range wants {
			rt := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopic()
			rt.Topic = w.topic
			t, terr := c.h.lookupTopic(ctx, w.topic, auth.NeedLookup, false)
			if terr == nil {
				rt.TopicID, _ = c.h.topicID(ctx, t)
			}
			for _, p := range w.parts {
				rp := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopicPartition()
				rp.Partition, rp.StartOffset, rp.LeaderEpoch, rp.Lag = p, -1, 0, -1
				if terr != nil {
					rp.ErrorCode, rp.ErrorMessage = errCode(terr), errMsg(terr)
				} else if sub, serr := c.h.shareSubscription(ctx, t, p, rg.GroupID, false); serr == nil {
					rp.StartOffset, rp.Lag = sub.Cursor().NextIndex(), sub.Cursor().Backlog()
				} else if !errors.Is(serr, broker.ErrSubscriptionNotFound) {
					rp.ErrorCode, rp.ErrorMessage = errCode(serr), errMsg(serr)
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			g.Topics = append(g.Topics, rt)
		}
		resp.Groups = append(resp.Groups, g)
	}
	return resp, nil
}

// shareSubscription returns the subscription group on partition p of t,
// creating it (at the log start) if create is set.
func (h *Handler) shareSubscription(ctx context.Context, t *topicInfo, p int32, group string, create bool) (*broker.Subscription, error) {
	pn, ok := t.partition(p)
	if !ok {
		return nil, errUnknownPartition(t.kafka, p)
	}
	part, err := h.svc.OpenPartition(ctx, pn, false)
	if err != nil {
		return nil, err
	}
	return part.Subscription(ctx, group, create, broker.InitialEarliest)
}
