package kafka

// ConsumerGroupHeartbeat (key 68), versions 0-1 (KIP-848, Kafka 4.0).
//
// Joins (member epoch 0), heartbeats, and leaves (-1; -2 for a static
// member, whose partitions wait for its next incarnation) a
// consumer-protocol group whose assignment the coordinator computes
// (uniform or range); see group_consumer.go and
// group_consumer_assign.go. v1 (the version franz-go requires) has the
// client generate its member id and adds SubscribedTopicRegex, which the
// broker resolves against the namespace's topics. v0 is served the same
// way, except that it has no regex field.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 1, handleConsumerGroupHeartbeat) }

func handleConsumerGroupHeartbeat(ctx context.Context, c *conn, req *kmsg.ConsumerGroupHeartbeatRequest) (kmsg.Response, error) {
	co, err := c.h.groupCoordinator(ctx, req.Group)
	if err != nil {
		resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		resp.ErrorCode = errCode(err)
		resp.MemberEpoch = -1
		return resp, nil
	}
	if req.MemberEpoch == 0 && c.h.shareGroupHasMembers(ctx, req.Group) { // group_share.go
		resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		resp.ErrorCode, resp.MemberEpoch = kerr.GroupIDNotFound.Code, -1
		msg := "group " + req.Group + " is a share group"
		resp.ErrorMessage = &msg
		return resp, nil
	}
	resp := co.consumerHeartbeat(ctx, cgHeartbeatRequest{req: req, clientID: clientIDFrom(ctx), clientHost: clientHost(c)})
	if resp.ErrorCode == 0 && req.MemberEpoch >= 0 {
		// The member's partitions' subscriptions list it as a consumer
		// (group_consumer_attach.go).
		co.cgAttach(ctx, req.Group)
	}
	return resp, nil
}
