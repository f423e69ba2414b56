package kafka

// ConsumerGroupDescribe (key 69), versions 0-1 (KIP-848).
//
// A consumer-protocol group: state (Empty, Reconciling, Stable), group and
// assignment epoch (always equal here: the target is recomputed at every
// change), assignor, and members with their epoch, subscription, current
// assignment and target assignment. v1 adds the member type (1 =
// consumer). A classic group, or none, is GROUP_ID_NOT_FOUND, as Kafka
// answers. Authorized operations are not computed (INT32_MIN).

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 1, handleConsumerGroupDescribe) }

func handleConsumerGroupDescribe(ctx context.Context, c *conn, req *kmsg.ConsumerGroupDescribeRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	co, err := c.h.coordinator(ctx)
	for _, name := range req.Groups {
		sg := kmsg.NewConsumerGroupDescribeResponseGroup()
		sg.Group = name
		if err != nil {
			sg.ErrorCode = errCode(err)
		} else if !co.describeConsumer(name, &sg) {
			sg.ErrorCode = kerr.GroupIDNotFound.Code
			msg := "group " + name + " is not a consumer group"
			sg.ErrorMessage = &msg
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp, nil
}

// describeConsumer fills sg for a consumer group; false if name is not one.
func (c *coordinator) describeConsumer(name string, sg *kmsg.ConsumerGroupDescribeResponseGroup) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cg := c.mu.cgroups[name]
	if cg == nil {
		return false
	}
	st := cg.st
	sg.State = cg.state()
	sg.Epoch, sg.AssignmentEpoch = st.epoch, st.epoch
	sg.AssignorName = st.assignorName()
	ids := make([]string, 0, len(st.members))
	for id := range st.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		m := st.members[id]
		sm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
		sm.MemberID, sm.MemberEpoch = m.id, m.epoch
		sm.ClientID, sm.ClientHost = m.clientID, m.clientHost
		if m.instanceID != "" {
			v := m.instanceID
			sm.InstanceID = &v
		}
		if m.rack != "" {
			v := m.rack
			sm.RackID = &v
		}
		sm.SubscribedTopics = append([]string{}, m.names...)
		if m.regex != "" {
			v := m.regex
			sm.SubscribedTopicRegex = &v
		}
		sm.Assignment = describeAssignment(st, m.assigned)
		sm.TargetAssignment = describeAssignment(st, st.target[id])
		sm.MemberType = 1 // consumer protocol
		if m.classic != nil {
			sm.MemberType = 0 // a classic member (group_consumer_classic.go)
		}
		sg.Members = append(sg.Members, sm)
	}
	return true
}

func describeAssignment(st *cgGroup, set map[cgTP]bool) kmsg.Assignment {
	a := kmsg.NewAssignment()
	a.TopicPartitions = []kmsg.AssignmentTopicPartition{}
	for _, tps := range groupByTopic(set) {
		t := kmsg.NewAssignmentTopicPartition()
		t.Topic, t.TopicID = tps[0].topic, st.topics[tps[0].topic].id
		for _, p := range tps {
			t.Partitions = append(t.Partitions, p.partition)
		}
		a.TopicPartitions = append(a.TopicPartitions, t)
	}
	return a
}
