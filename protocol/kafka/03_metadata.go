package kafka

// Metadata (key 3), versions 0-11 (Kafka 2.8's maximum).
//
// Standalone: this node at the advertised address is every partition's
// leader, its only replica and ISR, and the controller. In a cluster
// (Service.Cluster), the brokers are the live cluster brokers at their
// registered Kafka addresses, a partition's leader (and only replica) is
// its owner, assigned on this lookup when it has none, and the controller
// is the live broker with the lowest node id. The cluster id is
// the broker service's. Topics: null (v1+) or empty (v0) lists every topic
// of the handler's namespace; named topics are resolved with auto-creation
// when the request allows it (v4+; always for older versions, as Kafka did)
// and the handler and namespace allow it. As Kafka does, the request that
// creates a topic gets LEADER_NOT_AVAILABLE for it (its topic ID, no
// partitions); the next request lists the partitions. v10+ carries topic IDs (KIP-516),
// assigned on first sight and persisted in the topic's policies. Topic-ID
// lookups (v12) are not served, so v11 is the maximum.

import (
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 11, handleMetadata) }

func handleMetadata(ctx context.Context, c *conn, req *kmsg.MetadataRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	host, port := c.advertised()
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = h.cfg.NodeID, host, port
	resp.Brokers = []kmsg.MetadataResponseBroker{b}
	cid := h.svc.ClusterID()
	resp.ClusterID = &cid
	resp.ControllerID = h.cfg.NodeID
	cl := h.svc.Cluster()
	if cl != nil {
		resp.Brokers, resp.ControllerID = clusterBrokers(cl)
	}

	var names []string
	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		var err error
		if names, err = h.listedTopics(ctx); err != nil {
			return nil, err
		}
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
	if all {
		names = append(names, consumerOffsetsTopic)
	}
	autoCreate := req.AllowAutoTopicCreation || req.Version < 4
	for _, name := range names {
		rt := kmsg.NewMetadataResponseTopic()
		rt.Topic = kmsg.StringPtr(name)
		if name == consumerOffsetsTopic {
			// Group commits live in subscriptions, not in a topic; clients
			// still expect Kafka's internal topic to be listed (franz-go's
			// regex consumers skip it by its IsInternal flag).
			rt.IsInternal = true
			rt.TopicID = h.internalTopicID(name)
			rt.Partitions = []kmsg.MetadataResponseTopicPartition{h.partitionMetadata(0)}
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		t, err := h.lookupTopic(ctx, name, auth.NeedLookup, autoCreate && !all)
		if err == nil {
			rt.TopicID, err = h.topicID(ctx, t)
		}
		if err != nil {
			rt.ErrorCode = errCode(err)
			if rt.ErrorCode == kerr.UnknownServerError.Code {
				h.log.WarnContext(ctx, "kafka: metadata", "kafka_topic", name, "err", err)
			}
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		if t.created {
			// As Kafka: the request that auto-creates a topic learns that
			// it exists but not its partitions; clients retry and the next
			// request lists them (kafka-go's tests rely on the first
			// answer being LEADER_NOT_AVAILABLE).
			rt.ErrorCode = kerr.LeaderNotAvailable.Code
			rt.Partitions = []kmsg.MetadataResponseTopicPartition{}
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		n := t.numPartitions()
		rt.Partitions = make([]kmsg.MetadataResponseTopicPartition, n)
		for i := range n {
			rt.Partitions[i] = h.partitionMetadata(i)
			if cl != nil {
				h.clusterLeader(ctx, cl, t, &rt.Partitions[i])
			}
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// listedTopics are the Kafka names of the connection's namespace's topics
// the client may describe, sorted: what an all-topics request covers. As
// Kafka does, a listing leaves out topics the client holds no grant on, by
// topic or namespace (the grants are read once, then cached).
func (h *Handler) listedTopics(ctx context.Context) ([]string, error) {
	tenant, nsName := h.namespaceOf(ctx)
	mds, err := h.svc.ListTopics(ctx, tenant+"/"+nsName)
	if err != nil && !errors.Is(err, broker.ErrNamespaceNotFound) {
		return nil, err
	}
	var names []string
	for _, md := range mds {
		if ok, err := h.mayTopic(ctx, md.Name, auth.NeedLookup); err != nil || !ok {
			continue
		}
		names = append(names, h.kafkaName(ctx, md.Name))
	}
	sort.Strings(names)
	return names, nil
}

// consumerOffsetsTopic is Kafka's internal topic of group commits. kopernik
// keeps commits as subscription cursors and only lists the name (flagged
// internal, one partition) for clients that look for it; every request on
// it is refused at once with INVALID_TOPIC_EXCEPTION (errInternalTopic), so
// that a producer or consumer fails instead of retrying until it times out.
const consumerOffsetsTopic = "__consumer_offsets"

// partitionMetadata describes partition i: this node leads it alone.
func (h *Handler) partitionMetadata(i int32) kmsg.MetadataResponseTopicPartition {
	p := kmsg.NewMetadataResponseTopicPartition()
	p.Partition = i
	p.Leader = h.cfg.NodeID
	p.LeaderEpoch = 0
	p.Replicas = []int32{h.cfg.NodeID}
	p.ISR = []int32{h.cfg.NodeID}
	return p
}

// clusterBrokers lists the live brokers that have a Kafka listener, and
// the controller (lowest node id).
func clusterBrokers(cl broker.Cluster) ([]kmsg.MetadataResponseBroker, int32) {
	var out []kmsg.MetadataResponseBroker
	controller := int32(-1)
	for _, bi := range cl.Brokers() {
		host, portStr, err := net.SplitHostPort(bi.Kafka)
		if err != nil {
			continue
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			continue
		}
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = bi.NodeID, host, int32(port)
		out = append(out, b)
		if controller < 0 {
			controller = bi.NodeID
		}
	}
	return out, controller
}

// clusterLeader sets partition p's leader to its owner; a partition whose
// owner cannot be found now answers LEADER_NOT_AVAILABLE (retriable).
func (h *Handler) clusterLeader(ctx context.Context, cl broker.Cluster, t *topicInfo, p *kmsg.MetadataResponseTopicPartition) {
	name, ok := t.partition(p.Partition)
	if !ok {
		return
	}
	owner, err := cl.Owner(ctx, name)
	if err != nil {
		h.log.WarnContext(ctx, "kafka: metadata: no owner", "partition", name, "err", err)
		p.ErrorCode = kerr.LeaderNotAvailable.Code
		p.Leader = -1
		p.Replicas, p.ISR = []int32{}, []int32{}
		return
	}
	p.Leader = owner.NodeID
	p.Replicas = []int32{owner.NodeID}
	p.ISR = []int32{owner.NodeID}
}

// internalTopicID derives a stable topic ID for an internal topic from the
// cluster id, so it stays the same across restarts.
func (h *Handler) internalTopicID(name string) [16]byte {
	sum := sha256.Sum256([]byte(h.svc.ClusterID() + "/" + name))
	var id [16]byte
	copy(id[:], sum[:16])
	id[6] = id[6]&0x0f | 0x40 // a version-4-shaped UUID
	id[8] = id[8]&0x3f | 0x80
	return id
}
