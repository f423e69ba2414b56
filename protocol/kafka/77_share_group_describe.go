package kafka

// ShareGroupDescribe (key 77), version 1 (KIP-932, Kafka 4.1+).
//
// A share group: state (Empty, Stable), group and assignment epoch (equal:
// the assignment follows every change at once), assignor "simple", and its
// members with their epoch, client, subscription and assignment (every
// partition of the subscribed topics). A name that is no share group is
// GROUP_ID_NOT_FOUND. Authorized operations are not computed (INT32_MIN).

import (
	"context"
	"math"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(1, 1, handleShareGroupDescribe) }

func handleShareGroupDescribe(ctx context.Context, c *conn, req *kmsg.ShareGroupDescribeRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ShareGroupDescribeResponse)
	s, err := c.h.shareCoord(ctx)
	for _, name := range req.GroupIDs {
		sg := kmsg.NewShareGroupDescribeResponseGroup()
		sg.GroupID = name
		sg.AuthorizedOperations = math.MinInt32
		if err != nil {
			sg.ErrorCode, sg.ErrorMessage = errCode(err), errMsg(err)
			resp.Groups = append(resp.Groups, sg)
			continue
		}
		g, members, ok := s.describe(name)
		if !ok {
			sg.ErrorCode = kerr.GroupIDNotFound.Code
			msg := "group " + name + " is not a share group"
			sg.ErrorMessage = &msg
			resp.Groups = append(resp.Groups, sg)
			continue
		}
		sg.GroupState = "Empty"
		if len(members) > 0 {
			sg.GroupState = "Stable"
		}
		sg.GroupEpoch, sg.AssignmentEpoch, sg.Assignor = g.epoch, g.epoch, "simple"
		for _, m := range members {
			sm := kmsg.NewShareGroupDescribeResponseGroupMember()
			sm.MemberID, sm.RackID, sm.MemberEpoch = m.id, m.rack, m.epoch
			sm.ClientID, sm.ClientHost = m.clientID, m.host
			sm.SubscribedTopicNames = append([]string(nil), m.topics...)
			topics := make([]string, 0, len(m.assigned))
			for t := range m.assigned {
				topics = append(topics, t)
			}
			sort.Strings(topics)
			for _, t := range topics {
				tp := kmsg.NewShareGroupDescribeResponseGroupMemberAssignmentTopicPartition()
				tp.TopicID, tp.Topic, tp.Partitions = m.ids[t], t, m.assigned[t]
				sm.Assignment.TopicPartitions = append(sm.Assignment.TopicPartitions, tp)
			}
			sg.Members = append(sg.Members, sm)
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp, nil
}
