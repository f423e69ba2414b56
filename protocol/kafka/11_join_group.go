package kafka

// JoinGroup (key 11), versions 0-9.
//
// The classic protocol (see group.go): the coordinator collects members,
// picks the protocol all support and the leader, and answers every member
// when the join phase completes; the leader gets the members' metadata and
// assigns client-side, so eager and cooperative assignors both work.
// v0 has no rebalance timeout (the session timeout serves for both). v4+:
// a new dynamic member first gets MEMBER_ID_REQUIRED with its id (KIP-394).
// v5+: group.instance.id (static membership, KIP-345). v7+ answer the
// protocol type. v8's reason is logged; v9's SkipAssignment is never set
// (this coordinator never assigns).

import (
	"bytes"
	"context"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 9, handleJoinGroup) }

func handleJoinGroup(ctx context.Context, c *conn, req *kmsg.JoinGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	r := joinRequest{
		group:                req.Group,
		memberID:             req.MemberID,
		clientID:             clientIDFrom(ctx),
		clientHost:           clientHost(c),
		session:              time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		rebalance:            time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
		protocolType:         req.ProtocolType,
		requireKnownMemberID: req.Version >= 4,
	}
	if req.Version == 0 {
		r.rebalance = r.session
	}
	if req.InstanceID != nil {
		r.instanceID = *req.InstanceID
	}
	for _, p := range req.Protocols {
		r.protocols = append(r.protocols, groupProtocol{Name: p.Name, Metadata: bytes.Clone(p.Metadata)})
	}
	if req.Reason != nil {
		c.log.DebugContext(ctx, "kafka: join group", "group", req.Group, "member", req.MemberID, "reason", *req.Reason)
	}
	co, err := c.h.groupCoordinator(ctx, req.Group)
	var res joinResult
	if err == nil && c.h.shareGroupHasMembers(ctx, req.Group) { // group_share.go
		err = kerr.InconsistentGroupProtocol
	}
	if err != nil {
		res = joinResult{code: errCode(err), generation: -1, memberID: req.MemberID}
	} else {
		res = co.join(ctx, r)
	}
	resp.ErrorCode = res.code
	resp.Generation = res.generation
	resp.MemberID = res.memberID
	resp.LeaderID = res.leader
	if res.code == 0 {
		pt, p := res.protocolType, res.protocol
		resp.ProtocolType, resp.Protocol = &pt, &p
	} else if req.Version < 7 {
		empty := ""
		resp.Protocol = &empty
	}
	for _, m := range res.members {
		rm := kmsg.NewJoinGroupResponseMember()
		rm.MemberID, rm.ProtocolMetadata = m.id, m.metadata
		if m.instanceID != "" {
			id := m.instanceID
			rm.InstanceID = &id
		}
		resp.Members = append(resp.Members, rm)
	}
	return resp, nil
}

// clientHost is how DescribeGroups shows a member's address (Kafka: "/ip").
func clientHost(c *conn) string {
	host, _, err := net.SplitHostPort(c.nc.RemoteAddr().String())
	if err != nil {
		return ""
	}
	return "/" + host
}
