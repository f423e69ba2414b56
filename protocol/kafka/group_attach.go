package kafka

// Members as subscription consumers.
//
// While a "consumer" group is Stable, each member is attached to the
// subscriptions of the partitions assigned to it (the consumer protocol's
// assignment, which the coordinator can read) through
// Subscription.AddConsumer without a sink (members fetch by offset; nothing
// is dispatched to them): subscription statistics (the admin API,
// pulsar-admin) list Kafka members next to Pulsar consumers, and deleting
// the subscription without force is refused while a Kafka member owns it,
// as it is for a Pulsar consumer. Subscriptions that do not exist yet (no
// commit) are attached when the first commit creates them. Everything is
// released when the group leaves Stable (a rebalance starts, the group
// empties or is deleted) or the handler closes.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

// attachPlan is the partition owners of one Stable generation.
type attachPlan struct {
	generation int32
	owners     map[string]attachOwner // partition full name -> owner
}

type attachOwner struct {
	member, instanceID, host string
}

// groupAttachments is a group's attachment state, guarded by coordinator.mu.
type groupAttachments struct {
	plan     *attachPlan
	releases map[string]func() // partition full name -> release
}

// planLocked builds the plan of a Stable consumer group from its members'
// assignments. Expects c.mu held; resolving Kafka names to partitions
// happens later, outside the lock (resolve), so owners are keyed by Kafka
// topic and partition first.
func (g *group) planLocked() map[kafkaPartition]attachOwner {
	if g.state != groupStable || g.protocolType != "consumer" {
		return nil
	}
	out := map[kafkaPartition]attachOwner{}
	for _, m := range g.members {
		var a kmsg.ConsumerMemberAssignment
		if len(m.assignment) == 0 || a.ReadFrom(m.assignment) != nil {
			continue
		}
		for _, t := range a.Topics {
			for _, p := range t.Partitions {
				out[kafkaPartition{t.Topic, p}] = attachOwner{member: m.id, instanceID: m.instanceID, host: m.clientHost}
			}
		}
	}
	return out
}

type kafkaPartition struct {
	topic     string
	partition int32
}

// detachLocked releases every attachment of g. Expects c.mu held
// (releasing only takes subscription locks, which never call back).
func (g *group) detachLocked() {
	for _, rel := range g.att.releases {
		rel()
	}
	g.att = groupAttachments{}
}

// attach attaches g's members to the subscriptions of generation gen, if
// g is still Stable in it. Call without c.mu held.
func (c *coordinator) attach(ctx context.Context, g *group, gen int32) {
	c.mu.Lock()
	if g.state != groupStable || g.generation != gen || g.att.plan != nil {
		c.mu.Unlock()
		return
	}
	byKafka := g.planLocked()
	c.mu.Unlock()
	if len(byKafka) == 0 {
		return
	}
	plan := &attachPlan{generation: gen, owners: map[string]attachOwner{}}
	topics := map[string]*topicInfo{}
	for kp, owner := range byKafka {
		t, ok := topics[kp.topic]
		if !ok {
			t, _ = c.h.lookupTopic(ctx, kp.topic, internalLookup, false)
			topics[kp.topic] = t
		}
		if t == nil {
			continue
		}
		if name, ok := t.partition(kp.partition); ok {
			plan.owners[name.String()] = owner
		}
	}
	c.mu.Lock()
	if g.state != groupStable || g.generation != gen || g.att.plan != nil {
		c.mu.Unlock()
		return
	}
	g.att = groupAttachments{plan: plan, releases: map[string]func(){}}
	c.mu.Unlock()
	for name := range plan.owners {
		c.attachOne(ctx, g, gen, name)
	}
}

// attachOne attaches the owner of partition name (full name) in generation
// gen to the group's subscription there, if it exists.
func (c *coordinator) attachOne(ctx context.Context, g *group, gen int32, name string) {
	c.mu.Lock()
	plan := g.att.plan
	if plan == nil || plan.generation != gen || g.att.releases[name] != nil {
		c.mu.Unlock()
		return
	}
	owner, ok := plan.owners[name]
	c.mu.Unlock()
	if !ok {
		return
	}
	tn, err := broker.ParseTopicName(name, c.h.cfg.Tenant, c.h.cfg.Namespace)
	if err != nil {
		return
	}
	p, err := c.h.svc.OpenPartition(ctx, tn, false)
	if err != nil {
		return
	}
	sub, err := p.Subscription(ctx, g.name, false, broker.InitialLatest)
	if err != nil {
		if !errors.Is(err, broker.ErrSubscriptionNotFound) {
			c.h.log.DebugContext(ctx, "kafka: attaching group member", "group", g.name, "topic", tn.String(), "err", err)
		}
		return
	}
	info := broker.ConsumerInfo{Name: owner.member, Protocol: "kafka", Address: owner.host, ConnectedSince: time.Now()}
	if owner.instanceID != "" {
		info.Metadata = map[string]string{"group.instance.id": owner.instanceID}
	}
	// A member without deliveries (it fetches by offset): held and listed.
	h, err := sub.AddConsumer(ctx, broker.ConsumerSpec{Info: info}, nil)
	if err != nil {
		return
	}
	both := h.Close
	c.mu.Lock()
	if g.att.plan != plan || g.att.releases[name] != nil {
		c.mu.Unlock()
		both()
		return
	}
	g.att.releases[name] = both
	c.mu.Unlock()
}

// attachCommitted attaches the owner of a partition whose subscription a
// commit may just have created.
func (c *coordinator) attachCommitted(ctx context.Context, groupName string, name broker.TopicName) {
	c.mu.Lock()
	g := c.mu.groups[groupName]
	if g == nil || g.att.plan == nil {
		c.mu.Unlock()
		return
	}
	gen := g.att.plan.generation
	c.mu.Unlock()
	c.attachOne(ctx, g, gen, name.String())
}

// detachAll releases every group's attachments (the handler is closing).
func (c *coordinator) detachAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range c.mu.groups {
		g.detachLocked()
	}
	for _, cg := range c.mu.cgroups {
		cg.detachAllLocked()
	}
}
