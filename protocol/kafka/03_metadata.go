package kafka

// Metadata (key 3), versions 0-11 (Kafka 2.8's maximum).
//
// One broker: this node at the advertised address is every partition's
// leader, its only replica and ISR, and the controller. The cluster id is
// the broker service's. Topics: null (v1+) or empty (v0) lists every topic
// of the handler's namespace; named topics are resolved with auto-creation
// when the request allows it (v4+; always for older versions, as Kafka did)
// and the handler and namespace allow it. v10+ carries topic IDs (KIP-516),
// assigned on first sight and persisted in the topic's policies. Topic-ID
// lookups (v12) are not served, so v11 is the maximum.

import (
	"context"
	"errors"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 11, handleMetadata) }

func handleMetadata(ctx context.Context, c *conn, req *kmsg.MetadataRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	host, port := h.advertised()
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = h.cfg.NodeID, host, port
	resp.Brokers = []kmsg.MetadataResponseBroker{b}
	cid := h.svc.ClusterID()
	resp.ClusterID = &cid
	resp.ControllerID = h.cfg.NodeID

	var names []string
	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		ns := h.cfg.Tenant + "/" + h.cfg.Namespace
		mds, err := h.svc.ListTopics(ctx, ns)
		if err != nil && !errors.Is(err, broker.ErrNamespaceNotFound) {
			return nil, err
		}
		for _, md := range mds {
			names = append(names, h.kafkaName(md.Name))
		}
		sort.Strings(names)
	} else {
		for _, t := range req.Topics {
			if t.Topic == nil {
				// A topic-ID lookup (v10+ allows the field): we do not
				// serve ID lookups, and say so per topic.
				rt := kmsg.NewMetadataResponseTopic()
				rt.TopicID = t.TopicID
				rt.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, rt)
				continue
			}
			names = append(names, *t.Topic)
		}
	}
	autoCreate := req.AllowAutoTopicCreation || req.Version < 4
	for _, name := range names {
		rt := kmsg.NewMetadataResponseTopic()
		rt.Topic = kmsg.StringPtr(name)
		t, err := h.lookupTopic(ctx, name, autoCreate && !all)
		if err == nil {
			rt.TopicID, err = h.topicID(ctx, t)
		}
		if err != nil {
			rt.ErrorCode = errCode(err)
			if rt.ErrorCode == kerr.UnknownServerError.Code {
				h.log.WarnContext(ctx, "kafka: metadata", "topic", name, "err", err)
			}
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		n := t.numPartitions()
		rt.Partitions = make([]kmsg.MetadataResponseTopicPartition, n)
		for i := range n {
			p := kmsg.NewMetadataResponseTopicPartition()
			p.Partition = i
			p.Leader = h.cfg.NodeID
			p.LeaderEpoch = 0
			p.Replicas = []int32{h.cfg.NodeID}
			p.ISR = []int32{h.cfg.NodeID}
			rt.Partitions[i] = p
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
