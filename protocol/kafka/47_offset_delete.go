package kafka

// OffsetDelete (key 47), version 0 (KIP-496).
//
// Deletes a group's committed offsets on partitions: the group's
// subscriptions there. Allowed for an empty group, and for a "consumer"
// group on topics none of its members subscribes to
// (GROUP_SUBSCRIBED_TO_TOPIC otherwise); a group of another protocol type
// with members is NON_EMPTY_GROUP. A subscription held by a live consumer is
// GROUP_SUBSCRIBED_TO_TOPIC too.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 0, handleOffsetDelete) }

func handleOffsetDelete(ctx context.Context, c *conn, req *kmsg.OffsetDeleteRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	co, err := h.coordinator(ctx)
	if err != nil {
		resp.ErrorCode = errCode(err)
		return resp, nil
	}
	subscribed, exists, readable := co.subscribedTopics(req.Group)
	switch {
	case !exists:
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return resp, nil
	case !readable:
		resp.ErrorCode = kerr.NonEmptyGroup.Code
		return resp, nil
	}
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetDeleteResponseTopic()
		st.Topic = rt.Topic
		t, terr := h.lookupTopic(ctx, rt.Topic, auth.NeedConsume, false)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetDeleteResponseTopicPartition()
			sp.Partition = rp.Partition
			var e error
			switch {
			case terr != nil:
				e = terr
			case subscribed[rt.Topic]:
				e = kerr.GroupSubscribedToTopic
			default:
				name, ok := t.partition(rp.Partition)
				if !ok {
					e = kerr.UnknownTopicOrPartition
					break
				}
				e = h.deleteOffset(ctx, req.Group, name)
			}
			sp.ErrorCode = errCode(e)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// deleteOffset deletes the group's subscription on one partition; a
// partition without one is fine.
func (h *Handler) deleteOffset(ctx context.Context, group string, name broker.TopicName) error {
	p, err := h.svc.OpenPartition(ctx, name, false)
	if err != nil {
		return err
	}
	err = p.DeleteSubscription(ctx, group, false)
	switch {
	case errors.Is(err, broker.ErrSubscriptionNotFound):
		return nil
	case errors.Is(err, broker.ErrInUse):
		return kerr.GroupSubscribedToTopic
	}
	return err
}
