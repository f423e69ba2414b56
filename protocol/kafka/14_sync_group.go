package kafka

// SyncGroup (key 14), versions 0-5.
//
// The leader hands in every member's assignment, which completes the
// rebalance (the group is Stable and its record is written before the
// leader is answered); followers wait for it. In a Stable group SyncGroup
// returns the member's current assignment. v3+: group instance id. v5+:
// protocol type and name, checked against the group's and echoed.

import (
	"bytes"
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 5, handleSyncGroup) }

func handleSyncGroup(ctx context.Context, c *conn, req *kmsg.SyncGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	co, err := c.h.groupCoordinator(ctx, req.Group)
	if err != nil {
		resp.ErrorCode = errCode(err)
		return resp, nil
	}
	r := syncRequest{
		group: req.Group, memberID: req.MemberID, generation: req.Generation,
		protocolType: req.ProtocolType, protocol: req.Protocol,
		assignments: make(map[string][]byte, len(req.GroupAssignment)),
	}
	if req.InstanceID != nil {
		r.instanceID = *req.InstanceID
	}
	for _, a := range req.GroupAssignment {
		r.assignments[a.MemberID] = bytes.Clone(a.MemberAssignment)
	}
	res := co.sync(ctx, r)
	resp.ErrorCode = res.code
	resp.MemberAssignment = res.assignment
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	if res.code == 0 {
		pt, p := res.protocolType, res.protocol
		resp.ProtocolType, resp.Protocol = &pt, &p
		// A classic member of a consumer-protocol group is listed as the
		// consumer of its partitions' subscriptions like the others
		// (group_consumer_attach.go; nothing to do for a classic group).
		co.cgAttach(ctx, req.Group)
	}
	return resp, nil
}
