package kafka

// Group administration behind DescribeGroups, ListGroups, DeleteGroups and
// OffsetDelete.

import (
	"context"
	"errors"
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

// groupView is a copy of a group's state for describing and listing.
type groupView struct {
	name, state, protocolType, protocol string
	typ                                 string // ListGroups v5 group type: "" = classic, "consumer" (KIP-848)
	members                             []memberView
}

type memberView struct {
	id, instanceID, clientID, clientHost string
	metadata, assignment                 []byte
}

// describe returns a copy of the group, false if it does not exist.
func (c *coordinator) describe(name string) (groupView, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.mu.groups[name]
	if cg := c.mu.cgroups[name]; cg != nil && (g == nil || len(g.members) == 0) {
		return cg.view(), true
	}
	if g == nil || g.state == groupDead {
		return groupView{}, false
	}
	v := groupView{name: g.name, state: g.state.String(), protocolType: g.protocolType}
	stable := g.state == groupStable
	if stable {
		v.protocol = g.protocol
	}
	for _, m := range g.members {
		mv := memberView{id: m.id, instanceID: m.instanceID, clientID: m.clientID, clientHost: m.clientHost}
		if stable {
			mv.metadata, mv.assignment = m.metadataFor(g.protocol), m.assignment
		}
		v.members = append(v.members, mv)
	}
	sort.Slice(v.members, func(i, j int) bool { return v.members[i].id < v.members[j].id })
	return v, true
}

// list returns every group, sorted by name.
func (c *coordinator) list() []groupView {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []groupView
	for _, cg := range c.mu.cgroups {
		if g := c.mu.groups[cg.name]; g == nil || len(g.members) == 0 {
			out = append(out, cg.view())
		}
	}
	for _, g := range c.mu.groups {
		if cg := c.mu.cgroups[g.name]; cg != nil && len(g.members) == 0 {
			continue // listed as the consumer group above
		}
		if g.state != groupDead {
			out = append(out, groupView{name: g.name, state: g.state.String(), protocolType: g.protocolType})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// deleteGroup deletes an empty group: its subscriptions, then its record.
// A subscription a live consumer holds (a Pulsar consumer on the same
// subscription) makes it NON_EMPTY_GROUP and nothing is deleted.
func (h *Handler) deleteGroup(ctx context.Context, co *coordinator, name string) error {
	co.mu.Lock()
	g := co.mu.groups[name]
	if cg := co.mu.cgroups[name]; cg != nil {
		// A consumer-protocol group (group_consumer.go): deletable once
		// it has no members; its commits go with its classic half below.
		if len(cg.st.members) > 0 {
			co.mu.Unlock()
			return kerr.NonEmptyGroup
		}
		cg.detachAllLocked()
		delete(co.mu.cgroups, name)
		if g == nil {
			co.mu.Unlock()
			subs, err := h.subscriptionPartitions(ctx, name)
			if err != nil || len(subs[name]) == 0 {
				return err
			}
			return h.deleteSubscriptions(ctx, name, subs[name])
		}
	}
	switch {
	case g == nil:
		co.mu.Unlock()
		// Perhaps subscriptions made by Pulsar consumers (group_pulsar.go).
		subs, err := h.subscriptionPartitions(ctx, name)
		if err != nil {
			return err
		}
		if len(subs[name]) == 0 {
			return kerr.GroupIDNotFound
		}
		return h.deleteSubscriptions(ctx, name, subs[name])
	case g.state == groupDead:
		co.mu.Unlock()
		return kerr.GroupIDNotFound
	case g.state != groupEmpty:
		co.mu.Unlock()
		return kerr.NonEmptyGroup
	}
	topics := make([]string, 0, len(g.topics))
	for t := range g.topics {
		topics = append(topics, t)
	}
	g.state = groupDead // no join or commit while the subscriptions go
	co.mu.Unlock()

	err := h.deleteGroupSubscriptions(ctx, name, topics)
	if err == nil {
		err = co.deleteRecord(ctx, g)
	}
	co.mu.Lock()
	if err != nil {
		g.state = groupEmpty
	} else if co.mu.groups[name] == g {
		delete(co.mu.groups, name)
	}
	co.mu.Unlock()
	return err
}

// deleteGroupSubscriptions deletes the subscription called group on every
// partition of topics, or none if any is held by a live consumer.
func (h *Handler) deleteGroupSubscriptions(ctx context.Context, group string, topics []string) error {
	return h.deleteSubscriptions(ctx, group, h.groupPartitions(ctx, topics))
}

// deleteSubscriptions deletes the subscription called group on parts, or
// none if any is held by a live consumer.
func (h *Handler) deleteSubscriptions(ctx context.Context, group string, parts map[string][]broker.TopicName) error {
	var subs []*broker.Subscription
	for _, parts := range parts {
		for _, pn := range parts {
			p, err := h.svc.OpenPartition(ctx, pn, false)
			if errors.Is(err, broker.ErrTopicNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			s, err := p.Subscription(ctx, group, false, broker.InitialLatest)
			if errors.Is(err, broker.ErrSubscriptionNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if s.Held() {
				return kerr.NonEmptyGroup
			}
			subs = append(subs, s)
		}
	}
	for _, s := range subs {
		err := s.Partition().DeleteSubscription(ctx, group, false)
		switch {
		case errors.Is(err, broker.ErrInUse):
			return kerr.NonEmptyGroup
		case err != nil && !errors.Is(err, broker.ErrSubscriptionNotFound):
			return err
		}
	}
	return nil
}

// subscribedTopics returns the topics the members of a "consumer" group
// subscribe to, and false if the group has members whose subscriptions
// cannot be read (another protocol type): then no offset may be deleted.
func (c *coordinator) subscribedTopics(name string) (map[string]bool, bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.mu.groups[name]
	if g == nil || g.state == groupDead {
		return nil, false, false
	}
	out := map[string]bool{}
	if len(g.members) == 0 {
		return out, true, true
	}
	if g.protocolType != "consumer" {
		return nil, true, false
	}
	for _, m := range g.members {
		for _, p := range m.protocols {
			var md kmsg.ConsumerMemberMetadata
			if err := md.ReadFrom(p.Metadata); err != nil {
				return nil, true, false
			}
			for _, t := range md.Topics {
				out[t] = true
			}
		}
	}
	return out, true, true
}

// listFilter reports whether a group passes ListGroups' filters.
func listFilter(v groupView, states, types []string) bool {
	if len(states) > 0 && !slices.ContainsFunc(states, func(s string) bool { return equalFold(s, v.state) }) {
		return false
	}
	if len(types) > 0 && !slices.ContainsFunc(types, func(s string) bool { return equalFold(s, v.groupType()) }) {
		return false
	}
	return true
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// groupType is the ListGroups v5 type of the group.
func (v groupView) groupType() string {
	if v.typ == "" {
		return "classic"
	}
	return v.typ
}

// view is a consumer group as DescribeGroups and ListGroups show it:
// protocol type "consumer", Kafka's consumer-group state, the member ids
// (no classic metadata or assignment). Expects c.mu held.
func (cg *consumerGroup) view() groupView {
	v := groupView{name: cg.name, state: cg.state(), protocolType: "consumer", protocol: cg.st.assignorName(), typ: "consumer"}
	for _, m := range cg.st.members {
		v.members = append(v.members, memberView{id: m.id, instanceID: m.instanceID, clientID: m.clientID, clientHost: m.clientHost})
	}
	sort.Slice(v.members, func(i, j int) bool { return v.members[i].id < v.members[j].id })
	return v
}
