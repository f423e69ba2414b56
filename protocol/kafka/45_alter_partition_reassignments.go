package kafka

// AlterPartitionReassignments (key 45), version 0 (KIP-455).
//
// Every partition has one replica, this node. Asking for exactly that
// replica set succeeds and moves nothing; cancelling (null replicas)
// answers NO_REASSIGNMENT_IN_PROGRESS; any other set answers
// INVALID_REPLICA_ASSIGNMENT (not retriable) saying why: a partition cannot
// move to another node or gain replicas here. Per topic, without admin on
// it, TOPIC_AUTHORIZATION_FAILED; unknown partitions
// UNKNOWN_TOPIC_OR_PARTITION.

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
)

func init() { register(0, 0, handleAlterPartitionReassignments) }

func handleAlterPartitionReassignments(ctx context.Context, c *conn, req *kmsg.AlterPartitionAssignmentsRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	reqs := requestedTopics(req.Topics, func(t kmsg.AlterPartitionAssignmentsRequestTopic) (string, []int32) {
		ps := []int32{}
		for _, p := range t.Partitions {
			ps = append(ps, p.Partition)
		}
		return t.Topic, ps
	})
	topics, err := h.resolvePartitions(ctx, reqs, false, auth.NeedAdmin)
	if err != nil {
		return nil, err
	}
	only := []int32{h.cfg.NodeID}
	for i, t := range topics {
		rt := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		rt.Topic = t.topic
		for _, p := range req.Topics[i].Partitions {
			rp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			rp.Partition = p.Partition
			_, err := t.partition(p.Partition)
			switch {
			case err != nil:
			case p.Replicas == nil:
				err = fmt.Errorf("%w: partition %d has no reassignment to cancel", kerr.NoReassignmentInProgress, p.Partition)
			case !slices.Equal(p.Replicas, only):
				err = fmt.Errorf("%w: replicas %v: partitions have one replica, node %d; they cannot move or gain replicas",
					kerr.InvalidReplicaAssignment, p.Replicas, h.cfg.NodeID)
			}
			if err != nil {
				rp.ErrorCode, rp.ErrorMessage = errCode(err), errMsg(err)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
