package kafka

// CreatePartitions (key 37), versions 0-3 (Kafka 2.8's maximum).
//
// Grows a partitioned topic to count partitions (SetPartitions); the count
// must be larger than the current one. A non-partitioned topic (created
// through Pulsar or the admin API) cannot grow: INVALID_PARTITIONS. An
// explicit assignment must place each new partition on this node alone.
// validate_only changes nothing.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
)

func init() { register(0, 3, handleCreatePartitions) }

func handleCreatePartitions(ctx context.Context, c *conn, req *kmsg.CreatePartitionsRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		var err error
		if seen[rt.Topic] > 1 {
			err = fmt.Errorf("%w: topic %q appears more than once", errInvalidRequest, rt.Topic)
		} else {
			err = h.createPartitions(ctx, &rt, req.ValidateOnly)
		}
		if err != nil {
			st.ErrorCode, st.ErrorMessage = errCode(err), errMsg(err)
		} else if !req.ValidateOnly {
			c.log.InfoContext(ctx, "kafka: created partitions", "kafka_topic", rt.Topic, "partitions", rt.Count)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (h *Handler) createPartitions(ctx context.Context, rt *kmsg.CreatePartitionsRequestTopic, validateOnly bool) error {
	t, err := h.lookupTopic(ctx, rt.Topic, auth.NeedAdmin, false)
	if err != nil {
		return err
	}
	if t.md.Partitions == 0 {
		return fmt.Errorf("%w: %s is not a partitioned topic", errInvalidPartitions, rt.Topic)
	}
	cur := int32(t.md.Partitions)
	if rt.Count <= cur {
		return fmt.Errorf("%w: topic has %d partitions, asked for %d: the count can only grow", errInvalidPartitions, cur, rt.Count)
	}
	if rt.Count > maxPartitions {
		return fmt.Errorf("%w: %d partitions (at most %d)", errInvalidPartitions, rt.Count, maxPartitions)
	}
	if rt.Assignment != nil {
		if int32(len(rt.Assignment)) != rt.Count-cur {
			return fmt.Errorf("%w: %d assignments for %d new partitions", errInvalidPartitions, len(rt.Assignment), rt.Count-cur)
		}
		for _, a := range rt.Assignment {
			if len(a.Replicas) != 1 || a.Replicas[0] != h.cfg.NodeID {
				return fmt.Errorf("%w: new partitions must be assigned to node %d alone", errInvalidReplication, h.cfg.NodeID)
			}
		}
	}
	if validateOnly {
		return nil
	}
	return h.svc.SetPartitions(ctx, t.md.Name, int(rt.Count))
}
