package kafka

// Pulsar subscriptions seen as Kafka groups.
//
// A subscription is a group's commits (group_offsets.go), whoever created
// it: one made by a Pulsar consumer is a Kafka group for Kafka tools too.
// ListGroups lists every durable subscription of the connection's
// namespace the coordinator does not know as a group, Empty with protocol
// type "consumer" (the group has no Kafka members; its Pulsar consumers are
// not Kafka members); DescribeGroups describes such a group the same way;
// OffsetFetch with null topics answers every partition where a
// subscription of the group's name exists, as well as the topics the group
// committed to; DeleteGroups deletes the subscriptions (refused while a
// Pulsar consumer holds one).
//
// Nothing is stored for this: the subscriptions are found by scanning the
// namespace's topics the client may describe, opening their partitions.
// That costs one partition load per partition and is meant for
// administration (kadm, kafka-consumer-groups), not for every poll: group
// consumers fetch offsets for named partitions.

import (
	"context"
	"errors"
	"slices"
	"sort"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

// pulsarGroupProtocolType is the protocol type of a group that only
// exists as subscriptions: what Kafka reports for a consumer group.
const pulsarGroupProtocolType = "consumer"

// groupPartitionSet is partitions by Kafka topic name, each list in
// partition order.
type groupPartitionSet map[string][]broker.TopicName

// subscriptionPartitions scans the connection's namespace and returns, by
// subscription name (only that one if name != ""), the partitions holding
// a durable subscription of that name. Topics the client may not describe
// are skipped, as are partitions that cannot be opened (logged): a listing
// is best effort, as Kafka's is over unavailable coordinators.
func (h *Handler) subscriptionPartitions(ctx context.Context, name string) (map[string]groupPartitionSet, error) {
	tenant, ns := h.namespaceOf(ctx)
	mds, err := h.svc.ListTopics(ctx, tenant+"/"+ns)
	if errors.Is(err, broker.ErrNamespaceNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]groupPartitionSet{}
	add := func(sub, kname string, pn broker.TopicName) {
		if out[sub] == nil {
			out[sub] = groupPartitionSet{}
		}
		out[sub][kname] = append(out[sub][kname], pn)
	}
	for _, md := range mds {
		if ok, err := h.mayTopic(ctx, md.Name, auth.NeedLookup); err != nil || !ok {
			continue
		}
		t := &topicInfo{kafka: h.kafkaName(ctx, md.Name), md: md}
		for i := range t.numPartitions() {
			pn, _ := t.partition(i)
			p, err := h.svc.OpenPartition(ctx, pn, false)
			if err != nil {
				if !errors.Is(err, broker.ErrTopicNotFound) {
					h.log.WarnContext(ctx, "kafka: listing subscriptions", "topic", pn.String(), "err", err)
				}
				continue
			}
			if name != "" {
				if _, err := p.Subscription(ctx, name, false, broker.InitialLatest); err == nil {
					add(name, t.kafka, pn)
				}
				continue
			}
			for _, s := range p.Subscriptions(ctx) {
				add(s.Name(), t.kafka, pn)
			}
		}
	}
	return out, nil
}

// subscriptionGroups returns the subscription-only groups of the
// connection's namespace: subscriptions whose name the coordinator does not
// know as a group, described as Empty "consumer" groups.
func (h *Handler) subscriptionGroups(ctx context.Context, co *coordinator) []groupView {
	subs, err := h.subscriptionPartitions(ctx, "")
	if err != nil {
		h.log.WarnContext(ctx, "kafka: listing subscriptions as groups", "err", err)
		return nil
	}
	var out []groupView
	for name := range subs {
		if co.known(name) {
			continue
		}
		out = append(out, subscriptionGroupView(name))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func subscriptionGroupView(name string) groupView {
	return groupView{name: name, state: groupEmpty.String(), protocolType: pulsarGroupProtocolType}
}

// known reports whether the coordinator has a group of that name (in any
// state: a Dead one is being deleted and must not reappear as a
// subscription-only group half way).
func (c *coordinator) known(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.groups[name] != nil || c.mu.cgroups[name] != nil
}

// merge adds other's partitions to ps, once each.
func (ps groupPartitionSet) merge(other groupPartitionSet) {
	for kname, parts := range other {
		for _, pn := range parts {
			if !slices.Contains(ps[kname], pn) {
				ps[kname] = append(ps[kname], pn)
			}
		}
	}
}
