package kafka

// Online migration between the classic and the consumer (KIP-848) group
// protocols, as Kafka 4 does with group.consumer.migration.policy
// "bidirectional" (its 4.x default; fixed here):
//
//   - Upgrade: a ConsumerGroupHeartbeat join (epoch 0) for a classic group
//     with members whose protocol type is "consumer" turns the group into
//     a consumer-protocol group. Every classic member becomes a member of
//     it with the epoch of the classic generation, its subscription from
//     its JoinGroup metadata and its last SyncGroup assignment as both
//     its current and its target assignment; waiting JoinGroup and
//     SyncGroup calls are answered REBALANCE_IN_PROGRESS. The joining
//     member then bumps the epoch and the server-side assignor divides the
//     partitions.
//   - Classic members keep using JoinGroup, SyncGroup, Heartbeat and
//     LeaveGroup, answered by the consumer-group state machine
//     (group_consumer_assign.go): JoinGroup reconciles the member against
//     its target with the partitions its metadata says it owns (none for
//     eager assignors) and answers at once with the member epoch as the
//     generation and no leader; SyncGroup answers the member's current
//     assignment (without the partitions being revoked) in the consumer
//     protocol's encoding; Heartbeat answers REBALANCE_IN_PROGRESS when the
//     member must rejoin (the group epoch moved, it holds partitions it
//     must revoke, or partitions of its target became free). A cooperative
//     client revokes what SyncGroup no longer lists and rejoins, which
//     releases those partitions to the members whose target has them.
//     OffsetCommit checks the generation as the member epoch, like any
//     member of the group.
//   - Downgrade: when the last consumer-protocol member leaves or is
//     removed and classic members remain, the group becomes a classic
//     group again: Stable with the remaining members, their protocols and
//     their target assignments, then a rebalance is prepared (members are
//     told by their heartbeats to rejoin and the leader assigns as usual).
//     Its generation is the highest epoch of the remaining members, so
//     that commits they make before rejoining are still in their
//     generation (Kafka uses the group epoch; the rejoin follows either way).
//
// A classic member told to rejoin that sends no JoinGroup within its
// rebalance timeout is removed (Kafka's join timeout), and so is one that
// joined and sends no SyncGroup within it (Kafka's sync timeout).
//
// Not done (Kafka does it): downgrading when a classic static member
// replaces the last consumer-protocol member.
//
// Every function here expects coordinator.mu held unless it says
// otherwise.

import (
	"context"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// consumerProtocolType is the classic protocol type of consumers, the only
// one a consumer-protocol group accepts from classic members.
const consumerProtocolType = "consumer"

// cgClassic is what a classic member of a consumer-protocol group joined
// with.
type cgClassic struct {
	protocols []groupProtocol
	session   time.Duration
	version   int16 // of its ConsumerMemberMetadata: the assignment's encoding
	// rejoinBy is set when the member is told to rejoin (Heartbeat or
	// SyncGroup answered REBALANCE_IN_PROGRESS): it is removed if no
	// JoinGroup comes within its rebalance timeout (Kafka's join timeout).
	rejoinBy time.Time
	// syncBy is set by JoinGroup: the member is removed if no SyncGroup
	// comes within its rebalance timeout (Kafka's sync timeout).
	syncBy time.Time
}

// askRejoin records that m was told to rejoin and returns the error that
// tells it.
func (m *cgMember) askRejoin(now time.Time) *kerr.Error {
	if m.classic.rejoinBy.IsZero() {
		m.classic.rejoinBy = now.Add(m.rebalance)
	}
	return kerr.RebalanceInProgress
}

// protocol is the protocol name answered to the member (its first).
func (cc *cgClassic) protocol() string { return cc.protocols[0].Name }

// decodeSubscription reads the consumer protocol subscription of a
// classic member (every protocol carries the same topics; the first that
// decodes is used).
func decodeSubscription(protocols []groupProtocol) (*kmsg.ConsumerMemberMetadata, bool) {
	for _, p := range protocols {
		var md kmsg.ConsumerMemberMetadata
		if md.ReadFrom(p.Metadata) == nil {
			return &md, true
		}
	}
	return nil, false
}

// encodeAssignment is a partition set as a consumer protocol assignment.
func encodeAssignment(set map[cgTP]bool, version int16) []byte {
	a := kmsg.NewConsumerMemberAssignment()
	a.Version = min(max(version, 0), 3)
	for _, tps := range groupByTopic(set) {
		t := kmsg.NewConsumerMemberAssignmentTopic()
		t.Topic = tps[0].topic
		for _, p := range tps {
			t.Partitions = append(t.Partitions, p.partition)
		}
		a.Topics = append(a.Topics, t)
	}
	return a.AppendTo(nil)
}

// decodeAssignment reads a classic member's assignment.
func decodeAssignment(b []byte) map[cgTP]bool {
	out := map[cgTP]bool{}
	var a kmsg.ConsumerMemberAssignment
	if len(b) == 0 || a.ReadFrom(b) != nil {
		return out
	}
	for _, t := range a.Topics {
		for _, p := range t.Partitions {
			out[cgTP{t.Topic, p}] = true
		}
	}
	return out
}

// upgradeLocked turns classic group g into a consumer-protocol group if
// Kafka's online upgrade allows it (a "consumer" protocol type whose
// members' metadata decodes) and reports whether it did.
func (c *coordinator) upgradeLocked(g *group, now time.Time) bool {
	if g.state == groupDead || g.protocolType != consumerProtocolType || len(g.members) == 0 {
		return false
	}
	cg := newConsumerGroup(g.name)
	st := cg.st
	st.epoch = g.generation
	for _, gm := range g.members {
		protocol := g.protocol
		if gm.metadataFor(protocol) == nil && len(gm.protocols) > 0 {
			protocol = gm.protocols[0].Name // no generation yet
		}
		md, ok := decodeSubscription([]groupProtocol{{Name: protocol, Metadata: gm.metadataFor(protocol)}})
		if !ok {
			c.h.log.Info("kafka: classic group not upgraded: a member's consumer protocol metadata does not decode", "group", g.name, "member", gm.id)
			return false
		}
		m := newCGMember(gm.id)
		m.instanceID, m.clientID, m.clientHost = gm.instanceID, gm.clientID, gm.clientHost
		m.rebalance = gm.rebalance
		m.names = append([]string(nil), md.Topics...)
		sort.Strings(m.names)
		if md.Rack != nil {
			m.rack = *md.Rack
		}
		m.epoch, m.prevEpoch = g.generation, g.generation
		m.deadline = now.Add(gm.session)
		m.classic = &cgClassic{protocols: gm.protocols, session: gm.session, version: md.Version}
		assigned := decodeAssignment(gm.assignment)
		tgt := map[cgTP]bool{}
		for p := range assigned {
			if st.owner[p] == "" {
				m.assigned[p], tgt[p] = true, true
				st.owner[p] = m.id
			}
		}
		st.members[m.id] = m
		st.target[m.id] = tgt
		if m.instanceID != "" {
			st.static[m.instanceID] = m.id
		}
	}
	// Waiting classic calls rejoin, now into the consumer group.
	for _, gm := range g.members {
		if gm.join != nil {
			gm.join <- joinResult{code: kerr.RebalanceInProgress.Code, generation: -1, memberID: gm.id}
			gm.join = nil
		}
		if gm.sync != nil {
			gm.sync <- syncResult{code: kerr.RebalanceInProgress.Code}
			gm.sync = nil
		}
	}
	g.detachLocked()
	g.members, g.static, g.pending = map[string]*groupMember{}, map[string]string{}, map[string]time.Time{}
	g.state, g.emptySince = groupEmpty, now
	g.protocol, g.leader = "", ""
	g.saved = g.snapshot()
	c.mu.cgroups[g.name] = cg
	c.h.log.Info("kafka: classic group upgraded to a consumer group", "group", g.name, "epoch", st.epoch, "members", len(st.members))
	return true
}

// maybeDowngradeLocked turns cg back into a classic group when only
// classic members remain, preparing a rebalance, and returns the record
// write to run after c.mu is released, if any.
func (c *coordinator) maybeDowngradeLocked(cg *consumerGroup, now time.Time) func() {
	st := cg.st
	if len(st.members) == 0 {
		return nil
	}
	gen := int32(0)
	for _, m := range st.members {
		if m.classic == nil {
			return nil
		}
		gen = max(gen, m.epoch)
	}
	g := c.mu.groups[cg.name]
	if g == nil {
		g = newGroup(cg.name)
		c.mu.groups[cg.name] = g
	}
	if g.state == groupDead {
		return nil
	}
	cg.detachAllLocked()
	delete(c.mu.cgroups, cg.name)
	g.members, g.static, g.pending = map[string]*groupMember{}, map[string]string{}, map[string]time.Time{}
	g.protocolType, g.generation, g.state = consumerProtocolType, gen, groupStable
	g.emptySince = time.Time{}
	ids := make([]string, 0, len(st.members))
	for id := range st.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for i, id := range ids {
		m := st.members[id]
		gm := &groupMember{
			id: m.id, instanceID: m.instanceID, clientID: m.clientID, clientHost: m.clientHost,
			session: m.classic.session, rebalance: m.rebalance, protocols: m.classic.protocols,
			assignment: encodeAssignment(st.target[id], m.classic.version),
			joinedAt:   now.Add(time.Duration(i)), deadline: now.Add(m.classic.session),
		}
		g.members[gm.id] = gm
		if gm.instanceID != "" {
			g.static[gm.instanceID] = gm.id
		}
	}
	g.leader = g.firstMember()
	g.protocol = g.selectProtocol()
	g.saved = g.snapshot()
	c.h.log.Info("kafka: consumer group downgraded to a classic group", "group", g.name, "generation", g.generation, "members", len(g.members))
	c.prepareRebalance(g, now)
	return c.writeLocked(g)
}

// cgClassicMember finds the classic member of cg a request names, with
// Kafka's checks: an instance id maps to its member (FENCED_INSTANCE_ID
// for another member id), an unknown member or one using the consumer
// protocol is UNKNOWN_MEMBER_ID.
func cgClassicMember(cg *consumerGroup, memberID, instanceID string) (*cgMember, *kerr.Error) {
	if instanceID != "" {
		id, ok := cg.st.static[instanceID]
		if !ok {
			return nil, kerr.UnknownMemberID
		}
		if id != memberID {
			return nil, kerr.FencedInstanceID
		}
	}
	m := cg.st.members[memberID]
	if m == nil || m.classic == nil {
		return nil, kerr.UnknownMemberID
	}
	return m, nil
}

// nonEmptyCG is the consumer-protocol group name if it has members.
func (c *coordinator) nonEmptyCG(name string) *consumerGroup {
	if cg := c.mu.cgroups[name]; cg != nil && len(cg.st.members) > 0 {
		return cg
	}
	return nil
}

// joinConsumerGroup serves a JoinGroup for a consumer-protocol group with
// members (Kafka's classicGroupJoinToConsumerGroup). ok is false when the
// group is not one (any more): the classic path serves the request. Call
// without c.mu held.
func (c *coordinator) joinConsumerGroup(ctx context.Context, r joinRequest) (res joinResult, ok bool) {
	fail := func(e *kerr.Error) (joinResult, bool) {
		return joinResult{code: e.Code, generation: -1, memberID: r.memberID}, true
	}
	c.mu.Lock()
	cg := c.nonEmptyCG(r.group)
	if cg == nil {
		c.mu.Unlock()
		return joinResult{}, false
	}
	names, regexes := cg.subscriptions()
	c.mu.Unlock()
	if r.protocolType != consumerProtocolType || len(r.protocols) == 0 {
		return fail(kerr.InconsistentGroupProtocol)
	}
	md, decoded := decodeSubscription(r.protocols)
	if !decoded {
		return fail(kerr.InconsistentGroupProtocol)
	}
	if r.memberID == "" && r.instanceID == "" && r.requireKnownMemberID {
		return joinResult{code: kerr.MemberIDRequired.Code, generation: -1, memberID: newMemberID("")}, true
	}
	names = append(names, md.Topics...)
	topics, err := c.h.resolveTopics(ctx, names, regexes)
	if err != nil {
		return fail(kerr.CoordinatorNotAvailable)
	}

	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	cg = c.nonEmptyCG(r.group)
	if cg == nil {
		return fail(kerr.RebalanceInProgress) // downgraded meanwhile: join again
	}
	defer cg.detachStaleLocked()
	st := cg.st
	id := r.memberID
	if id == "" {
		id = newMemberID(r.instanceID)
	}
	var m *cgMember
	if r.instanceID != "" {
		if oldID, ok := st.static[r.instanceID]; ok && oldID != id {
			if r.memberID != "" {
				return fail(kerr.FencedInstanceID)
			}
			// A restarted static member takes over its slot and its
			// partitions (the classic protocol may replace a live
			// instance, as Kafka lets it).
			m = st.replaceStatic(st.members[oldID], id)
		}
	}
	if m == nil {
		m = st.members[id]
	}
	added := false
	if m == nil {
		m = newCGMember(id)
		m.instanceID = r.instanceID
		st.members[id] = m
		if r.instanceID != "" {
			st.static[r.instanceID] = id
		}
		added = true
		c.h.log.Info("kafka: classic member joined a consumer group", "group", r.group, "member", id, "instance", r.instanceID)
	} else if m.classic == nil && m.epoch != cgEpochStaticLeft {
		return fail(kerr.UnknownMemberID) // a consumer-protocol member's id
	}
	m.classic = &cgClassic{protocols: r.protocols, session: r.session, version: md.Version, syncBy: now.Add(r.rebalance)}
	m.clientID, m.clientHost, m.rebalance = r.clientID, r.clientHost, r.rebalance
	subs := append([]string(nil), md.Topics...)
	sort.Strings(subs)
	changed := added || !equalStrings(subs, m.names) || m.regex != ""
	m.names, m.regex = subs, ""
	if md.Rack != nil {
		m.rack = *md.Rack
	}
	for n, t := range st.topics {
		if _, ok := topics[n]; !ok && !cg.covered(n, names, regexes) {
			topics[n] = t
		}
	}
	if changed {
		st.topics = topics
		st.bump()
	} else {
		st.setTopics(topics)
	}
	m.deadline = now.Add(r.session)
	owned := map[cgTP]bool{}
	for _, t := range md.OwnedPartitions {
		for _, p := range t.Partitions {
			owned[cgTP{t.Topic, p}] = true
		}
	}
	// Twice: the first pass may revoke partitions the member does not own
	// (an eager member revoked everything before joining); the second
	// releases them at once, so that it can move to the new epoch.
	st.reconcile(m, owned, now)
	st.reconcile(m, owned, now)
	return joinResult{generation: m.epoch, protocolType: consumerProtocolType, protocol: m.classic.protocol(), memberID: m.id}, true
}

// syncConsumerGroup serves a SyncGroup of a classic member of cg (Kafka's
// classicGroupSyncToConsumerGroup): the member's current assignment.
func (c *coordinator) syncConsumerGroupLocked(cg *consumerGroup, r syncRequest, now time.Time) syncResult {
	m, e := cgClassicMember(cg, r.memberID, r.instanceID)
	if e != nil {
		return syncResult{code: e.Code}
	}
	if r.generation != m.epoch {
		return syncResult{code: kerr.IllegalGeneration.Code}
	}
	if r.protocolType != nil && *r.protocolType != consumerProtocolType || r.protocol != nil && *r.protocol != m.classic.protocol() {
		return syncResult{code: kerr.InconsistentGroupProtocol.Code}
	}
	m.deadline = now.Add(m.classic.session)
	m.classic.syncBy = time.Time{}
	if cg.st.epoch > m.epoch && len(m.revoking) == 0 {
		return syncResult{code: m.askRejoin(now).Code}
	}
	return syncResult{protocolType: consumerProtocolType, protocol: m.classic.protocol(), assignment: encodeAssignment(m.assigned, m.classic.version)}
}

// heartbeatConsumerGroupLocked serves a Heartbeat of a classic member of
// cg (Kafka's classicGroupHeartbeatToConsumerGroup).
func (c *coordinator) heartbeatConsumerGroupLocked(cg *consumerGroup, memberID, instanceID string, generation int32, now time.Time) *kerr.Error {
	m, e := cgClassicMember(cg, memberID, instanceID)
	if e != nil {
		return e
	}
	if generation != m.epoch {
		return kerr.IllegalGeneration
	}
	m.deadline = now.Add(m.classic.session)
	if m.epoch < cg.st.epoch || len(m.revoking) > 0 {
		return m.askRejoin(now)
	}
	for p := range cg.st.target[m.id] {
		if !m.assigned[p] && cg.st.owner[p] == "" {
			return m.askRejoin(now) // what it waited for is free
		}
	}
	return nil
}

// leaveConsumerGroupLocked removes a classic member of cg (LeaveGroup).
func (c *coordinator) leaveConsumerGroupLocked(cg *consumerGroup, memberID, instanceID string) *kerr.Error {
	if instanceID != "" {
		id, ok := cg.st.static[instanceID]
		if !ok {
			return kerr.UnknownMemberID
		}
		if memberID != "" && id != memberID {
			return kerr.FencedInstanceID
		}
		memberID = id
	}
	m := cg.st.members[memberID]
	if m == nil || m.classic == nil {
		return kerr.UnknownMemberID
	}
	c.h.log.Info("kafka: classic member left a consumer group", "group", cg.name, "member", memberID)
	cg.st.removeMember(memberID)
	cg.detachStaleLocked()
	return nil
}
