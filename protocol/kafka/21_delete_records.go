package kafka

// DeleteRecords (key 21), versions 0-2 (Kafka 2.8's maximum).
//
// Moves a partition's log start offset forward (Partition.TruncateBefore);
// offset -1 means the high watermark. Offsets past the high watermark are
// OFFSET_OUT_OF_RANGE; offsets below the log start are a no-op. The answer
// carries the new low watermark (log start offset).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 2, handleDeleteRecords) }

func handleDeleteRecords(ctx context.Context, c *conn, req *kmsg.DeleteRecordsRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		t, terr := h.lookupTopic(ctx, rt.Topic, auth.NeedAdmin, false)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition, sp.LowWatermark = rp.Partition, -1
			err := terr
			if err == nil {
				sp.LowWatermark, err = h.deleteRecords(ctx, t, rp.Partition, rp.Offset)
			}
			if err != nil {
				sp.ErrorCode, sp.LowWatermark = errCode(err), -1
			} else {
				c.log.InfoContext(ctx, "kafka: deleted records", "topic", t.md.Name.String(), "partition", rp.Partition, "low_watermark", sp.LowWatermark)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (h *Handler) deleteRecords(ctx context.Context, t *topicInfo, partition int32, offset int64) (int64, error) {
	name, ok := t.partition(partition)
	if !ok {
		return -1, errUnknownPartition(t.kafka, partition)
	}
	p, err := h.svc.OpenPartition(ctx, name, false)
	if err != nil {
		return -1, err
	}
	if offset == -1 {
		offset = p.NextIndex()
	}
	if offset < 0 || offset > p.NextIndex() {
		return -1, broker.ErrOffsetOutOfRange
	}
	if err := p.TruncateBefore(ctx, offset); err != nil {
		return -1, err
	}
	return p.LogStart(), nil
}
