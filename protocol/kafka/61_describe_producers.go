package kafka

// DescribeProducers (key 61), version 0 (KIP-664).
//
// The idempotent producers the partition deduplicates (the broker's
// producer state: those seen since the partition was loaded and those
// recovered from the log), with their epoch, last sequence and last
// timestamp (-1 when no batch of theirs is remembered). Pulsar producers
// are not Kafka producers and are not listed. A producer with an open
// transaction on the partition reports its first offset as the current
// transaction start offset (-1 otherwise); the coordinator epoch is -1
// (one coordinator, never moved). Per partition:
// UNKNOWN_TOPIC_OR_PARTITION, TOPIC_AUTHORIZATION_FAILED.

import (
	"context"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
)

func init() { register(0, 0, handleDescribeProducers) }

// kafkaProducerPrefix starts the dedup name of Kafka producer ids
// (00_produce.go: "kafka-<producerId>").
const kafkaProducerPrefix = "kafka-"

func handleDescribeProducers(ctx context.Context, c *conn, req *kmsg.DescribeProducersRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	reqs := requestedTopics(req.Topics, func(t kmsg.DescribeProducersRequestTopic) (string, []int32) { return t.Topic, t.Partitions })
	topics, err := h.resolvePartitions(ctx, reqs, false, auth.NeedLookup)
	if err != nil {
		return nil, err
	}
	for i, t := range topics {
		rt := kmsg.NewDescribeProducersResponseTopic()
		rt.Topic = t.topic
		for _, p := range req.Topics[i].Partitions {
			rp := kmsg.NewDescribeProducersResponseTopicPartition()
			rp.Partition = p
			ref, err := t.partition(p)
			if err == nil {
				rp.ActiveProducers, err = h.kafkaProducers(ctx, ref)
			}
			if err != nil {
				rp.ErrorCode = errCode(err)
				rp.ErrorMessage = errMsg(err)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// kafkaProducers lists the Kafka producer ids the partition deduplicates.
func (h *Handler) kafkaProducers(ctx context.Context, ref partitionRef) ([]kmsg.DescribeProducersResponseTopicPartitionActiveProducer, error) {
	p, err := h.svc.OpenPartition(ctx, ref.name, false)
	if err != nil {
		return nil, err
	}
	open := map[int64]int64{}
	for _, o := range p.OpenTxns() {
		open[o.ProducerID] = o.FirstIndex
	}
	var out []kmsg.DescribeProducersResponseTopicPartitionActiveProducer
	for _, st := range p.ProducerStates() {
		id, err := strconv.ParseInt(strings.TrimPrefix(st.Producer, kafkaProducerPrefix), 10, 64)
		if !strings.HasPrefix(st.Producer, kafkaProducerPrefix) || err != nil {
			continue
		}
		ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
		ap.ProducerID, ap.ProducerEpoch = id, int32(st.Epoch)
		ap.LastSequence, ap.LastTimestamp = int32(st.LastSequence), st.LastTimestamp
		ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = -1, -1
		if first, ok := open[id]; ok {
			ap.CurrentTxnStartOffset = first
		}
		out = append(out, ap)
	}
	return out, nil
}
