package kafka

// CreateTopics (key 19), versions 0-7 (Kafka 2.8's maximum).
//
// Kafka-created topics are partitioned topics: num_partitions (-1: the
// handler's default-partitions) partitions "t-partition-0..N-1". One
// replica: replication factor -1 or 1; an explicit assignment must place
// every partition on this node only. Configs are those of configs.go;
// unknown ones fail the topic with INVALID_CONFIG. validate_only checks
// everything and creates nothing. v5+ answers the resulting partitions,
// replication factor and configs; v7 the new topic's id.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 7, handleCreateTopics) }

// maxPartitions caps a topic's partition count: every Metadata answer lists
// them all, so a count in the billions would exhaust memory on each request.
const maxPartitions = 1 << 16

func handleCreateTopics(ctx context.Context, c *conn, req *kmsg.CreateTopicsRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		var err error
		if seen[rt.Topic] > 1 {
			err = fmt.Errorf("%w: topic %q appears more than once", errInvalidRequest, rt.Topic)
		} else {
			err = h.createTopic(ctx, c, &rt, req.ValidateOnly, &st)
		}
		if err != nil {
			st.ErrorCode, st.ErrorMessage = errCode(err), errMsg(err)
			st.NumPartitions, st.ReplicationFactor = -1, -1
			st.Configs = nil
			c.log.DebugContext(ctx, "kafka: create topic failed", "kafka_topic", rt.Topic, "err", err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (h *Handler) createTopic(ctx context.Context, c *conn, rt *kmsg.CreateTopicsRequestTopic, validateOnly bool, st *kmsg.CreateTopicsResponseTopic) error {
	if rt.Topic == consumerOffsetsTopic {
		return errInternalTopic
	}
	name, err := h.parseName(ctx, rt.Topic)
	if err != nil {
		return err
	}
	if err := h.checkTopic(ctx, name, auth.NeedAdmin); err != nil {
		return err
	}
	n := int(rt.NumPartitions)
	if len(rt.ReplicaAssignment) > 0 {
		if rt.NumPartitions != -1 || rt.ReplicationFactor != -1 {
			return fmt.Errorf("%w: give either a replica assignment or partitions and replication factor", errInvalidRequest)
		}
		for i, a := range rt.ReplicaAssignment {
			if a.Partition != int32(i) {
				return fmt.Errorf("%w: assignment partitions must be 0..N-1", errInvalidPartitions)
			}
			if len(a.Replicas) != 1 || a.Replicas[0] != h.cfg.NodeID {
				return fmt.Errorf("%w: partition %d must be assigned to node %d alone", errInvalidReplication, a.Partition, h.cfg.NodeID)
			}
		}
		n = len(rt.ReplicaAssignment)
	} else if rt.ReplicationFactor != -1 && rt.ReplicationFactor != 1 {
		return fmt.Errorf("%w: %d (this cluster has one broker: use 1 or -1)", errInvalidReplication, rt.ReplicationFactor)
	}
	if n == -1 {
		n = h.cfg.DefaultPartitions
	}
	if n < 1 || n > maxPartitions {
		return fmt.Errorf("%w: %d partitions (1..%d)", errInvalidPartitions, n, maxPartitions)
	}
	p, err := policiesFromConfigs(rt.Configs)
	if err != nil {
		return err
	}
	if name.PartitionIndex() >= 0 {
		return fmt.Errorf("%w: a topic name cannot end in -partition-N: %s", broker.ErrInvalidName, rt.Topic)
	}
	if validateOnly {
		if _, err := h.svc.GetTopic(ctx, name); err == nil {
			return fmt.Errorf("%w: topic %s", broker.ErrAlreadyExists, rt.Topic)
		}
		if _, err := h.svc.NamespacePolicies(ctx, name.NamespaceName()); err != nil {
			return err
		}
	} else {
		p.TopicID = newTopicID()
		if err := h.svc.CreateTopic(ctx, name, n, p); err != nil {
			return err
		}
		c.log.InfoContext(ctx, "kafka: created topic", "topic", name.String(), "partitions", n)
	}
	st.NumPartitions, st.ReplicationFactor = int32(n), 1
	md, err := h.svc.GetTopic(ctx, name)
	if validateOnly {
		// Report what the topic would look like.
		md = broker.TopicMetadata{Name: name, Partitions: n, Policies: p}
		md.Effective, err = h.effectiveFor(ctx, name, p)
	}
	if err != nil {
		return err
	}
	if !validateOnly {
		id, _ := parseTopicID(md.Policies.TopicID)
		st.TopicID = id
	}
	for _, d := range describeTopicConfigs(md, nil) {
		cc := kmsg.NewCreateTopicsResponseTopicConfig()
		cc.Name, cc.Value, cc.ReadOnly = d.name, kmsg.StringPtr(d.value), d.readOnly
		cc.Source = int8(configSource(d))
		st.Configs = append(st.Configs, cc)
	}
	return nil
}

// effectiveFor resolves policies p for a topic that does not exist yet, by
// the same rules as the broker: the namespace's explicit values over... the
// defaults a handler can see. Only used to answer validate_only requests.
func (h *Handler) effectiveFor(ctx context.Context, name broker.TopicName, p broker.Policies) (broker.EffectivePolicies, error) {
	eff := broker.DefaultPolicies()
	nsp, err := h.svc.NamespacePolicies(ctx, name.NamespaceName())
	if err != nil {
		return eff, err
	}
	apply := func(q broker.Policies) {
		if q.RetentionTime != nil {
			eff.RetentionTime = *q.RetentionTime
		}
		if q.RetentionBytes != nil {
			eff.RetentionBytes = *q.RetentionBytes
		}
		if q.MaxMessageBytes != nil {
			eff.MaxMessageBytes = *q.MaxMessageBytes
		}
		if q.SegmentBytes != nil {
			eff.SegmentBytes = *q.SegmentBytes
		}
		if q.SegmentAge != nil {
			eff.SegmentAge = *q.SegmentAge
		}
	}
	apply(nsp)
	apply(p)
	return eff, nil
}

// configSource is Kafka's config source for a described config.
func configSource(d describedConfig) kmsg.ConfigSource {
	if d.topicLevel {
		return kmsg.ConfigSourceDynamicTopicConfig
	}
	return kmsg.ConfigSourceDefaultConfig
}
