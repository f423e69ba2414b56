package kafka

// LeaveGroup (key 13), versions 0-5.
//
// v0-v2 name one member; v3+ a batch of members, by member id and/or group
// instance id (static members leave by instance id), each answered on its
// own. The group rebalances without the leavers at once. v5's reason is
// logged.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 5, handleLeaveGroup) }

func handleLeaveGroup(ctx context.Context, c *conn, req *kmsg.LeaveGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	co, err := c.h.groupCoordinator(ctx, req.Group)
	if err != nil {
		resp.ErrorCode = errCode(err)
		return resp, nil
	}
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	if req.Version < 3 {
		if e := co.leave(req.Group, req.MemberID, ""); e != nil {
			resp.ErrorCode = e.Code
		}
		return resp, nil
	}
	for _, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID = m.MemberID, m.InstanceID
		instance := ""
		if m.InstanceID != nil {
			instance = *m.InstanceID
		}
		if m.Reason != nil {
			c.log.DebugContext(ctx, "kafka: leave group", "group", req.Group, "member", m.MemberID, "reason", *m.Reason)
		}
		if e := co.leave(req.Group, m.MemberID, instance); e != nil {
			rm.ErrorCode = e.Code
		}
		resp.Members = append(resp.Members, rm)
	}
	return resp, nil
}
