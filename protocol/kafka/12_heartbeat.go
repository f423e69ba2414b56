package kafka

// Heartbeat (key 12), versions 0-4.
//
// Keeps a member's session alive. REBALANCE_IN_PROGRESS tells it to
// rejoin; ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID and FENCED_INSTANCE_ID (v3+
// static members) that it is out of the group.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 4, handleHeartbeat) }

func handleHeartbeat(ctx context.Context, c *conn, req *kmsg.HeartbeatRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	co, err := c.h.groupCoordinator(ctx, req.Group)
	if err != nil {
		resp.ErrorCode = errCode(err)
		return resp, nil
	}
	instance := ""
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	if e := co.heartbeat(req.MemberID, instance, req.Group, req.Generation); e != nil {
		resp.ErrorCode = e.Code
	}
	return resp, nil
}
