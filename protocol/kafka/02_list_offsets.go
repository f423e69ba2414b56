package kafka

// ListOffsets (key 2), versions 1-7 (v7: KIP-734 max timestamp).
//
// Timestamp -2 (earliest) answers the log start offset, -1 (latest) the high
// watermark with read_uncommitted and the last stable offset with
// read_committed (isolation level 1, v2+). Any other timestamp t
// answers the first record with timestamp >= t: the partition's time index
// finds the batch, whose records are then walked to find the record itself
// (Kafka's own semantics), decompressing it if needed (bounded, see
// compression.go); Pulsar entries are walked as converted records (package
// convert). If the batch cannot be read, its base offset is
// answered: earlier than Kafka's answer, so a consumer re-reads a few
// records but never skips one. No record at or after t: offset -1.
// Timestamp -3 (max timestamp, v7+) answers the first record holding the
// partition's largest timestamp, found the same way.

import (
	"context"
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/convert"
)

func init() { register(1, 7, handleListOffsets) }

const (
	listMaxTimestamp = -3
	listEarliest     = -2
	listLatest       = -1
)

func handleListOffsets(ctx context.Context, c *conn, req *kmsg.ListOffsetsRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		t, terr := h.lookupTopic(ctx, rt.Topic, auth.NeedLookup, false)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset = -1, -1
			err := terr
			if err == nil {
				sp.Offset, sp.Timestamp, err = h.listOffset(ctx, t, rp.Partition, rp.Timestamp, req.IsolationLevel == 1)
			}
			if err != nil {
				sp.ErrorCode = h.partitionErrCode(ctx, "list offsets", rt.Topic, rp.Partition, err)
				sp.Timestamp, sp.Offset = -1, -1
			} else {
				sp.LeaderEpoch = 0
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// listOffset answers one partition: (offset, timestamp).
// committed (read_committed) answers latest with the last stable offset.
func (h *Handler) listOffset(ctx context.Context, t *topicInfo, partition int32, ts int64, committed bool) (int64, int64, error) {
	name, ok := t.partition(partition)
	if !ok {
		return -1, -1, errUnknownPartition(t.kafka, partition)
	}
	p, err := h.svc.OpenPartition(ctx, name, false)
	if err != nil {
		return -1, -1, err
	}
	switch {
	case ts == listEarliest:
		return p.LogStart(), -1, nil
	case ts == listLatest && committed:
		return p.LastStableOffset(), -1, nil
	case ts == listLatest:
		return p.NextIndex(), -1, nil
	case ts == listMaxTimestamp:
		if ts = p.MaxTimestamp(); ts <= 0 {
			return -1, -1, nil // empty partition
		}
	case ts < 0:
		return -1, -1, errInvalidRequest
	}
	e, found, err := p.FindByTime(ctx, ts)
	if err != nil || !found {
		return -1, -1, err
	}
	es, err := p.ReadFromIndex(ctx, max(e.FirstIndex, p.FirstIndex()), 1, 1)
	if err != nil {
		return -1, -1, err
	}
	if len(es) == 0 {
		return max(e.FirstIndex, p.FirstIndex()), e.Timestamp(), nil
	}
	batch := es[0].Data
	if es[0].Format != broker.FormatKafka {
		// Pulsar messages: walk them as the Kafka records a fetch returns.
		if batch, err = convert.PulsarToKafka(&es[0]); err != nil {
			return max(e.FirstIndex, p.FirstIndex()), e.Timestamp(), nil
		}
	}
	off, rts := findRecordByTime(batch, ts)
	if off < 0 {
		return max(e.FirstIndex, p.FirstIndex()), e.Timestamp(), nil
	}
	return max(es[0].FirstIndex+int64(off), p.FirstIndex()), rts, nil
}

// findRecordByTime walks a v2 batch and returns the offset delta and
// timestamp of its first record with timestamp >= ts, or -1 when the batch
// is malformed or has no such record.
func findRecordByTime(b []byte, ts int64) (int32, int64) {
	bh, err := parseBatchHeader(b)
	if err != nil || int(bh.length) > len(b) {
		return -1, -1
	}
	rest, err := decompressRecords(bh.attributes&attrCodecMask, b[batchHeaderSize:bh.length])
	if err != nil {
		return -1, -1
	}
	for range bh.recordCount {
		l, n := binary.Varint(rest)
		if n <= 0 || l < 0 || int64(len(rest)-n) < l {
			return -1, -1
		}
		rec := rest[n : n+int(l)]
		rest = rest[n+int(l):]
		if len(rec) < 1 {
			return -1, -1
		}
		tsDelta, k := binary.Varint(rec[1:])
		if k <= 0 {
			return -1, -1
		}
		offDelta, k2 := binary.Varint(rec[1+k:])
		if k2 <= 0 {
			return -1, -1
		}
		if rts := bh.baseTimestamp + tsDelta; rts >= ts {
			return int32(offDelta), rts
		}
	}
	return -1, -1
}
