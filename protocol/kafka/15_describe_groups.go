package kafka

// DescribeGroups (key 15), versions 0-5.
//
// State, protocol type, and members (with metadata and assignment once
// Stable, as Kafka). A durable subscription made by Pulsar consumers is an
// Empty "consumer" group without members (group_pulsar.go). An unknown group is described as Dead with no error
// (Kafka before v6). Authorized operations (v3+) are not computed
// (INT32_MIN, "not provided"). Member client ids are not known to the
// coordinator (the request header's client id does not reach handlers) and
// are empty; client hosts are "/ip".

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 5, handleDescribeGroups) }

func handleDescribeGroups(ctx context.Context, c *conn, req *kmsg.DescribeGroupsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	co, err := c.h.coordinator(ctx)
	for _, name := range req.Groups {
		sg := kmsg.NewDescribeGroupsResponseGroup()
		sg.Group = name
		if err != nil {
			sg.ErrorCode = errCode(err)
			resp.Groups = append(resp.Groups, sg)
			continue
		}
		v, ok := co.describe(name)
		if !ok && !co.known(name) {
			// A subscription made by Pulsar consumers is an Empty group.
			if subs, err := c.h.subscriptionPartitions(ctx, name); err == nil && len(subs[name]) > 0 {
				v, ok = subscriptionGroupView(name), true
			}
		}
		if !ok {
			sg.State = groupDead.String()
			resp.Groups = append(resp.Groups, sg)
			continue
		}
		sg.State, sg.ProtocolType, sg.Protocol = v.state, v.protocolType, v.protocol
		for _, m := range v.members {
			sm := kmsg.NewDescribeGroupsResponseGroupMember()
			sm.MemberID, sm.ClientID, sm.ClientHost = m.id, m.clientID, m.clientHost
			if m.instanceID != "" {
				id := m.instanceID
				sm.InstanceID = &id
			}
			sm.ProtocolMetadata, sm.MemberAssignment = m.metadata, m.assignment
			if sm.ProtocolMetadata == nil {
				sm.ProtocolMetadata = []byte{}
			}
			if sm.MemberAssignment == nil {
				sm.MemberAssignment = []byte{}
			}
			sg.Members = append(sg.Members, sm)
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp, nil
}
