package kafka

// ShareGroupHeartbeat (key 76), versions 1 (KIP-932, Kafka 4.1+; the
// version Kafka 4.2 and franz-go use; v0 was the early-access one).
//
// Joins (member epoch 0, with SubscribedTopicNames), heartbeats and leaves
// (-1) a share group (group_share.go). The member id is the client's.
// Every member is assigned every partition of its subscribed topics; the
// assignment is sent when it changes (nil otherwise), with a new member
// epoch. A group name whose classic or consumer group has members is
// GROUP_ID_NOT_FOUND (not a share group). Errors: UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH, INVALID_REQUEST,
// INVALID_GROUP_ID, GROUP_AUTHORIZATION_FAILED.

import (
	"context"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(1, 1, handleShareGroupHeartbeat) }

func handleShareGroupHeartbeat(ctx context.Context, c *conn, req *kmsg.ShareGroupHeartbeatRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ShareGroupHeartbeatResponse)
	resp.HeartbeatIntervalMillis = int32(shareHeartbeatInterval / time.Millisecond)
	s, err := c.h.shareCoord(ctx)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage, resp.MemberEpoch = errCode(err), errMsg(err), -1
		return resp, nil
	}
	if req.MemberEpoch == 0 {
		if co, cerr := c.h.coordinator(ctx); cerr == nil && co.hasLiveMembers(req.GroupID) {
			msg := "group " + req.GroupID + " is not a share group"
			resp.ErrorCode, resp.ErrorMessage, resp.MemberEpoch = kerr.GroupIDNotFound.Code, &msg, -1
			return resp, nil
		}
	}
	epoch, assigned, ids, err := s.heartbeat(ctx, c, req.GroupID, req.MemberID, req.MemberEpoch, req.RackID, req.SubscribedTopicNames)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage, resp.MemberEpoch = errCode(err), errMsg(err), -1
		return resp, nil
	}
	resp.MemberID = &req.MemberID
	resp.MemberEpoch = epoch
	if assigned != nil {
		a := kmsg.NewShareGroupHeartbeatResponseAssignment()
		names := make([]string, 0, len(assigned))
		for t := range assigned {
			names = append(names, t)
		}
		sort.Strings(names)
		for _, t := range names {
			tp := kmsg.NewShareGroupHeartbeatResponseAssignmentTopicPartition()
			tp.TopicID, tp.Partitions = ids[t], assigned[t]
			a.TopicPartitions = append(a.TopicPartitions, tp)
		}
		resp.Assignment = &a
	}
	return resp, nil
}
