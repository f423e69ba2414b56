package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

// A topic's Kafka topic ID (KIP-516) is its Policies.TopicID, 32 hex
// digits, assigned when the handler first sees the topic.

// topicInfo is a topic as Kafka sees it.
type topicInfo struct {
	kafka string // the name the client used
	md    broker.TopicMetadata
	id    [16]byte // zero until topicID
	// created: this lookup auto-created the topic (Metadata answers
	// LEADER_NOT_AVAILABLE for it in that response, as Kafka does).
	created bool
}

// numPartitions is the Kafka partition count: a non-partitioned topic is one.
func (t *topicInfo) numPartitions() int32 {
	if t.md.Partitions == 0 {
		return 1
	}
	return int32(t.md.Partitions)
}

// partition names Kafka partition i, or reports false if it does not exist.
func (t *topicInfo) partition(i int32) (broker.TopicName, bool) {
	if i < 0 || i >= t.numPartitions() {
		return broker.TopicName{}, false
	}
	if t.md.Partitions == 0 {
		return t.md.Name, true
	}
	return t.md.Name.Partition(int(i)), true
}

// parseName maps a Kafka topic name to a kopernik topic: "t" lives in the
// connection's tenant/namespace (its SASL principal's, else the configured
// one); "tenant/ns/t" and persistent:// names are taken as they are.
func (h *Handler) parseName(ctx context.Context, s string) (broker.TopicName, error) {
	tenant, ns := h.namespaceOf(ctx)
	return broker.ParseTopicName(s, tenant, ns)
}

// kafkaName is the name Kafka clients see for n: short in the connection's
// namespace, tenant/ns/local elsewhere.
func (h *Handler) kafkaName(ctx context.Context, n broker.TopicName) string {
	if tenant, ns := h.namespaceOf(ctx); n.Tenant == tenant && n.Namespace == ns {
		return n.Local
	}
	return n.Tenant + "/" + n.Namespace + "/" + n.Local
}

// lookupTopic resolves a Kafka topic for a request that needs need on it
// (authz.go; internalLookup for the handler's own use), creating it when
// autoCreate is set, the handler allows it and the namespace's policy does
// not forbid it. Authorization comes first: a refused client learns
// nothing about the topic and creates nothing.
// Kafka-created topics are partitioned (default-partitions, or the
// namespace's AutoTopicPartitions if it sets one).
func (h *Handler) lookupTopic(ctx context.Context, kname string, need auth.Need, autoCreate bool) (*topicInfo, error) {
	if kname == consumerOffsetsTopic {
		return nil, errInternalTopic
	}
	name, err := h.parseName(ctx, kname)
	if err != nil {
		return nil, err
	}
	if need != internalLookup {
		if err := h.checkTopic(ctx, name, need); err != nil {
			return nil, err
		}
	}
	md, err := h.svc.GetTopic(ctx, name)
	created := false
	if errors.Is(err, broker.ErrTopicNotFound) && autoCreate && h.cfg.AutoCreateTopics && name.PartitionIndex() < 0 {
		var n int
		// A concurrent request's creation counts as this one's too: the
		// topic did not exist when this request looked.
		created = true
		if n, err = h.autoCreatePartitions(ctx, name); err == nil {
			err = h.svc.CreateTopic(ctx, name, n, broker.Policies{TopicID: newTopicID()})
			if err == nil {
				h.log.InfoContext(ctx, "kafka auto-created topic", "topic", name.String(), "partitions", n)
			}
			if err == nil || errors.Is(err, broker.ErrAlreadyExists) {
				md, err = h.svc.GetTopic(ctx, name)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if md.Name != name {
		// "t-partition-0" of a partitioned topic: Kafka clients address
		// partitions by number, never by this name.
		return nil, fmt.Errorf("%w: %s is a partition of %s", broker.ErrTopicNotFound, name, md.Name)
	}
	return &topicInfo{kafka: kname, md: md, created: created}, nil
}

// topicID returns t's Kafka topic ID, assigning one if needed.
func (h *Handler) topicID(ctx context.Context, t *topicInfo) ([16]byte, error) {
	if t.id == [16]byte{} {
		id, err := ensureTopicID(ctx, h.svc, t.md)
		if err != nil {
			return id, err
		}
		t.id = id
	}
	return t.id, nil
}

// autoCreatePartitions returns the partition count for an auto-created
// topic, or ErrTopicNotFound if the namespace forbids auto-creation.
//
// The namespace's own policy is all a handler can see: a broker-wide
// default of AutoTopicCreation=false is not visible through Service.
func (h *Handler) autoCreatePartitions(ctx context.Context, name broker.TopicName) (int, error) {
	nsp, err := h.svc.NamespacePolicies(ctx, name.NamespaceName())
	if err != nil {
		return 0, err
	}
	if nsp.AutoTopicCreation != nil && !*nsp.AutoTopicCreation {
		return 0, fmt.Errorf("%w: %s (auto-creation is off in %s)", broker.ErrTopicNotFound, name, name.NamespaceName())
	}
	if nsp.AutoTopicPartitions != nil && *nsp.AutoTopicPartitions > 0 {
		return *nsp.AutoTopicPartitions, nil
	}
	return h.cfg.DefaultPartitions, nil
}

func newTopicID() string {
	var id [16]byte
	rand.Read(id[:])
	return hex.EncodeToString(id[:])
}

func parseTopicID(s string) ([16]byte, bool) {
	var id [16]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return id, false
	}
	copy(id[:], b)
	return id, id != [16]byte{}
}

// ensureTopicID returns md's topic ID, persisting a new one if it has
// none (topics created elsewhere: Pulsar, the admin API). Compare-and-swap
// makes every broker agree on the first ID stored.
func ensureTopicID(ctx context.Context, svc broker.Service, md broker.TopicMetadata) ([16]byte, error) {
	if id, ok := parseTopicID(md.Policies.TopicID); ok {
		return id, nil
	}
	var id [16]byte
	err := svc.UpdateTopicPolicies(ctx, md.Name, func(p *broker.Policies) error {
		var ok bool
		if id, ok = parseTopicID(p.TopicID); ok {
			return broker.ErrUnchanged
		}
		p.TopicID = newTopicID()
		id, _ = parseTopicID(p.TopicID)
		return nil
	})
	return id, err
}

// topicPartitions is a request's topic and partitions (nil partitions:
// all of them), as the admin APIs that take a topics set send them.
type topicPartitions struct {
	topic      string
	partitions []int32
}

// partitionRef is one partition a request names: its broker name when it
// exists (ok), else the error for that partition.
type partitionRef struct {
	partition int32
	name      broker.TopicName
	err       error
}

// resolvedTopic is one requested topic: an error for the whole topic, or
// its partitions.
type resolvedTopic struct {
	topic string
	err   error
	parts []partitionRef
}

// requestedTopics converts a request's topics to topicPartitions.
func requestedTopics[T any](ts []T, f func(T) (string, []int32)) []topicPartitions {
	out := make([]topicPartitions, 0, len(ts))
	for _, t := range ts {
		name, parts := f(t)
		out = append(out, topicPartitions{topic: name, partitions: parts})
	}
	return out
}

// partition returns requested partition p, or the error to answer for it:
// the topic's, or UNKNOWN_TOPIC_OR_PARTITION.
func (rt resolvedTopic) partition(p int32) (partitionRef, error) {
	if rt.err != nil {
		return partitionRef{}, rt.err
	}
	for _, r := range rt.parts {
		if r.partition == p {
			return r, r.err
		}
	}
	return partitionRef{}, errUnknownPartition(rt.topic, p)
}

// resolvePartitions looks up each requested topic (need checked on it) and
// the partitions asked for; all, when reqs is nil, means every topic the
// client may describe with all of its partitions.
func (h *Handler) resolvePartitions(ctx context.Context, reqs []topicPartitions, all bool, need auth.Need) ([]resolvedTopic, error) {
	if all {
		names, err := h.listedTopics(ctx)
		if err != nil {
			return nil, err
		}
		reqs = nil
		for _, n := range names {
			reqs = append(reqs, topicPartitions{topic: n})
		}
	}
	out := make([]resolvedTopic, 0, len(reqs))
	for _, rq := range reqs {
		rt := resolvedTopic{topic: rq.topic}
		t, err := h.lookupTopic(ctx, rq.topic, need, false)
		if err != nil {
			rt.err = err
			out = append(out, rt)
			continue
		}
		parts := rq.partitions
		if parts == nil {
			for i := range t.numPartitions() {
				parts = append(parts, i)
			}
		}
		for _, i := range parts {
			ref := partitionRef{partition: i}
			var ok bool
			if ref.name, ok = t.partition(i); !ok {
				ref.err = errUnknownPartition(rq.topic, i)
			}
			rt.parts = append(rt.parts, ref)
		}
		out = append(out, rt)
	}
	return out, nil
}
