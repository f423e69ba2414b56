package kafka

// ElectLeaders (key 43), versions 0-2 (KIP-460).
//
// Every partition has one replica, this node, which leads it: there is no
// leader to elect, preferred or unclean, and each partition answers
// ELECTION_NOT_NEEDED, as Kafka does for a partition already led by its
// preferred replica. Null topics (an election of every partition) answer no
// partitions, as Kafka answers for a cluster where nothing needs electing.
// Per partition: UNKNOWN_TOPIC_OR_PARTITION; per topic, without admin on
// it, TOPIC_AUTHORIZATION_FAILED.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
)

func init() { register(0, 2, handleElectLeaders) }

func handleElectLeaders(ctx context.Context, c *conn, req *kmsg.ElectLeadersRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	reqs := requestedTopics(req.Topics, func(t kmsg.ElectLeadersRequestTopic) (string, []int32) { return t.Topic, t.Partitions })
	topics, err := h.resolvePartitions(ctx, reqs, false, auth.NeedAdmin)
	if err != nil {
		return nil, err
	}
	notNeeded := fmt.Sprintf("node %d is the partition's only replica and its leader", h.cfg.NodeID)
	for i, t := range topics {
		rt := kmsg.NewElectLeadersResponseTopic()
		rt.Topic = t.topic
		for _, p := range req.Topics[i].Partitions {
			rp := kmsg.NewElectLeadersResponseTopicPartition()
			rp.Partition = p
			if _, err := t.partition(p); err != nil {
				rp.ErrorCode, rp.ErrorMessage = errCode(err), errMsg(err)
			} else {
				rp.ErrorCode, rp.ErrorMessage = kerr.ElectionNotNeeded.Code, kmsg.StringPtr(notNeeded)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
