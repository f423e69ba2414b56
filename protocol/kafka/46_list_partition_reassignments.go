package kafka

// ListPartitionReassignments (key 46), version 0 (KIP-455).
//
// No reassignment is ever in progress (AlterPartitionReassignments moves
// nothing: one replica per partition), so the answer lists none, for the
// topics asked or (null topics) for all.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 0, handleListPartitionReassignments) }

func handleListPartitionReassignments(ctx context.Context, c *conn, req *kmsg.ListPartitionReassignmentsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	resp.Topics = []kmsg.ListPartitionReassignmentsResponseTopic{}
	return resp, nil
}
