package kafka

// OffsetForLeaderEpoch (key 23), versions 0-4 (Kafka 2.8's maximum).
//
// There is one leader epoch, 0, for every partition's whole life (Metadata
// and fetched batches say so too), so epoch 0 ends at the high watermark.
// A later epoch is unknown (-1/-1, as Kafka answers); a current leader epoch
// above 0 is UNKNOWN_LEADER_EPOCH.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
)

func init() { register(0, 4, handleOffsetForLeaderEpoch) }

func handleOffsetForLeaderEpoch(ctx context.Context, c *conn, req *kmsg.OffsetForLeaderEpochRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		t, terr := h.lookupTopic(ctx, rt.Topic, auth.NeedLookup, false)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition, sp.LeaderEpoch, sp.EndOffset = rp.Partition, -1, -1
			err := terr
			if err == nil {
				name, ok := t.partition(rp.Partition)
				if !ok {
					err = errUnknownPartition(rt.Topic, rp.Partition)
				} else if p, perr := h.svc.OpenPartition(ctx, name, false); perr != nil {
					err = perr
				} else if req.Version >= 2 && rp.CurrentLeaderEpoch > 0 {
					sp.ErrorCode = kerr.UnknownLeaderEpoch.Code
				} else if rp.LeaderEpoch == 0 {
					sp.LeaderEpoch, sp.EndOffset = 0, p.NextIndex()
				}
			}
			if err != nil {
				sp.ErrorCode = errCode(err)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
