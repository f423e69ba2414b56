package kafka

// KIP-848 consumer groups in the coordinator: ConsumerGroupHeartbeat's
// request handling around the state machine of group_consumer_assign.go.
//
// A group name is either a classic group (JoinGroup/SyncGroup) or a
// consumer-protocol group at a time, as in Kafka, and converts online
// between the two (group_consumer_classic.go): a ConsumerGroupHeartbeat
// join upgrades a classic group of consumers with members, classic members
// of a consumer group are served by it, and the group is classic again
// when its last consumer-protocol member goes. A ConsumerGroupHeartbeat
// for a classic group that cannot be upgraded gets GROUP_ID_NOT_FOUND. An
// empty classic group (one that only holds commits) may become a consumer
// group. Commits stay subscription cursors (group_offsets.go); the
// classic group object of the same name keeps the list of topics the group
// committed to.
//
// Consumer-group membership is kept in memory only: after a restart the
// members' heartbeats get UNKNOWN_MEMBER_ID and they rejoin with epoch 0
// (their committed offsets are the subscriptions, which are durable).
//
// Locking: consumer groups live in coordinator.mu.cgroups under
// coordinator.mu; topic resolution (broker metadata calls) happens before
// taking it.

import (
	"context"
	"regexp"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
)

// Consumer group timing (Kafka group.consumer.session.timeout.ms 45s and
// group.consumer.heartbeat.interval.ms 5s). Tests lower them.
var (
	cgSessionTimeout    = 45 * time.Second
	cgHeartbeatInterval = 5 * time.Second
)

// consumerGroup is one consumer-protocol group. Guarded by coordinator.mu.
type consumerGroup struct {
	name    string
	st      *cgGroup
	regexes map[string]*regexp.Regexp // compiled subscription regexes
	// emptySince is when the group last lost its last member (zero while
	// it has members); an empty group is forgotten after groupEmptyExpiry.
	emptySince time.Time
	// att are the members' subscription attachments by partition, and
	// attRetry when to look again for a subscription that was missing
	// (group_consumer_attach.go).
	att      map[cgTP]*cgAttachment
	attRetry map[cgTP]time.Time
}

func newConsumerGroup(name string) *consumerGroup {
	cg := &consumerGroup{name: name, regexes: map[string]*regexp.Regexp{},
		att: map[cgTP]*cgAttachment{}, attRetry: map[cgTP]time.Time{}}
	cg.st = newCGGroup(cg.match)
	return cg
}

// match reports whether regex, which compileSubscription accepted,
// matches all of name.
func (cg *consumerGroup) match(regex, name string) bool {
	re := cg.regexes[regex]
	if re == nil {
		var err error
		if re, err = compileSubscription(regex); err != nil {
			return false
		}
		cg.regexes[regex] = re
	}
	return re.MatchString(name)
}

// compileSubscription compiles a subscription regex anchored at both
// ends: Kafka (RE2/J) matches the whole topic name. Go's regexp is RE2,
// the syntax RE2/J implements.
func compileSubscription(regex string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + regex + `)$`)
}

// cgState is the state name Kafka reports for a consumer group.
func (cg *consumerGroup) state() string {
	switch {
	case len(cg.st.members) == 0:
		return "Empty"
	case cg.st.stable():
		return "Stable"
	}
	return "Reconciling"
}

// cgSubscriptions collects what the group subscribes to, for resolution.
func (cg *consumerGroup) subscriptions() (names, regexes []string) {
	seenN, seenR := map[string]bool{}, map[string]bool{}
	for _, m := range cg.st.members {
		for _, n := range m.names {
			if !seenN[n] {
				seenN[n] = true
				names = append(names, n)
			}
		}
		if m.regex != "" && !seenR[m.regex] {
			seenR[m.regex] = true
			regexes = append(regexes, m.regex)
		}
	}
	return names, regexes
}

// covered reports whether a resolution of names and regexes looked at
// topic n.
func (cg *consumerGroup) covered(n string, names, regexes []string) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	for _, r := range regexes {
		if cg.match(r, n) {
			return true
		}
	}
	return false
}

// resolveTopics looks up the named topics and the namespace's topics that
// match one of the regexes (__consumer_offsets included, as Kafka). Topics that do not exist or that the client
// may not consume are left out, as Kafka leaves out unknown ones.
func (h *Handler) resolveTopics(ctx context.Context, names, regexes []string) (map[string]cgTopic, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	if len(regexes) > 0 {
		listed, err := h.listedTopics(ctx)
		if err != nil {
			return nil, err
		}
		var res []*regexp.Regexp
		for _, r := range regexes {
			if re, err := compileSubscription(r); err == nil {
				res = append(res, re)
			}
		}
		// Kafka's broker-side regex matching includes internal topics
		// (franz-go adopts such an assignment), so __consumer_offsets,
		// listed in Metadata as internal, is matched too.
		for _, n := range append(listed, consumerOffsetsTopic) {
			for _, re := range res {
				if re.MatchString(n) {
					want[n] = true
					break
				}
			}
		}
	}
	out := map[string]cgTopic{}
	for n := range want {
		if n == consumerOffsetsTopic {
			// One partition, as Metadata lists it; fetching it is refused
			// (INVALID_TOPIC_EXCEPTION), since commits are subscriptions.
			out[n] = cgTopic{name: n, id: h.internalTopicID(n), partitions: 1}
			continue
		}
		t, err := h.lookupTopic(ctx, n, auth.NeedConsume, false)
		if err != nil {
			continue
		}
		id, err := h.topicID(ctx, t)
		if err != nil {
			return nil, err
		}
		out[n] = cgTopic{name: n, id: id, partitions: t.numPartitions()}
	}
	return out, nil
}

// cgHeartbeatRequest is a decoded ConsumerGroupHeartbeat with the
// connection's client id and host.
type cgHeartbeatRequest struct {
	req                  *kmsg.ConsumerGroupHeartbeatRequest
	clientID, clientHost string
}

// consumerHeartbeat serves ConsumerGroupHeartbeat.
func (c *coordinator) consumerHeartbeat(ctx context.Context, r cgHeartbeatRequest) *kmsg.ConsumerGroupHeartbeatResponse {
	req := r.req
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	resp.HeartbeatIntervalMillis = int32(cgHeartbeatInterval.Milliseconds())
	fail := func(e *kerr.Error, msg string) *kmsg.ConsumerGroupHeartbeatResponse {
		resp.ErrorCode = e.Code
		if msg != "" {
			resp.ErrorMessage = &msg
		}
		resp.MemberEpoch = -1
		return resp
	}
	if e, msg := validateCGHeartbeat(req); e != nil {
		return fail(e, msg)
	}

	// Resolve the group's subscriptions with this request's outside the
	// lock.
	c.mu.Lock()
	var upgradeWrite func()
	if g := c.mu.groups[req.Group]; g != nil && (len(g.members) > 0 || g.state != groupEmpty) {
		// Kafka's online upgrade: a classic group of consumers becomes a
		// consumer group when a member joins with this protocol
		// (group_consumer_classic.go).
		if req.MemberEpoch != 0 || !c.upgradeLocked(g, time.Now()) {
			c.mu.Unlock()
			return fail(kerr.GroupIDNotFound, "group "+req.Group+" is not a consumer group")
		}
		upgradeWrite = c.writeLocked(g) // the classic record without members
	}
	var names, regexes []string
	if cg := c.mu.cgroups[req.Group]; cg != nil {
		names, regexes = cg.subscriptions()
	}
	c.mu.Unlock()
	if upgradeWrite != nil {
		upgradeWrite()
	}
	names = append(names, req.SubscribedTopicNames...)
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != "" {
		regexes = append(regexes, *req.SubscribedTopicRegex)
	}
	topics, err := c.h.resolveTopics(ctx, names, regexes)
	if err != nil {
		return fail(kerr.CoordinatorNotAvailable, err.Error())
	}

	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	// Runs before the unlock: whatever this heartbeat moved or released
	// is detached from its subscription (attaching comes after, unlocked).
	defer func() {
		if cg := c.mu.cgroups[req.Group]; cg != nil {
			cg.detachStaleLocked()
		}
	}()
	if g := c.mu.groups[req.Group]; g != nil && (len(g.members) > 0 || g.state != groupEmpty) {
		return fail(kerr.GroupIDNotFound, "group "+req.Group+" is not a consumer group")
	}
	cg := c.mu.cgroups[req.Group]
	if cg == nil {
		if req.MemberEpoch != 0 {
			return fail(kerr.UnknownMemberID, "")
		}
		cg = newConsumerGroup(req.Group)
		c.mu.cgroups[req.Group] = cg
	}
	st := cg.st
	m := st.members[req.MemberID]
	// Another member's subscription may have changed while the lock was
	// released: its topics were resolved by its own heartbeat, and this
	// one, which did not look them up, must not drop them.
	for n, t := range st.topics {
		if _, ok := topics[n]; !ok && !cg.covered(n, names, regexes) {
			topics[n] = t
		}
	}

	switch req.MemberEpoch {
	case -1, cgEpochStaticLeft:
		if m == nil {
			return fail(kerr.UnknownMemberID, "")
		}
		if req.MemberEpoch == cgEpochStaticLeft && m.instanceID != "" {
			// Static leave: the slot (and its partitions) waits for the
			// instance's next incarnation until the session expires.
			m.epoch = cgEpochStaticLeft
			m.deadline = now.Add(cgSessionTimeout)
		} else {
			st.setTopics(topics)
			st.removeMember(m.id)
			c.h.log.Info("kafka: consumer group member left", "group", req.Group, "member", req.MemberID)
			if m.classic == nil {
				// Only classic members left: a classic group again.
				if w := c.maybeDowngradeLocked(cg, now); w != nil {
					go w() // c.mu is held until return; the write is ordered by wmu
				}
			}
		}
		resp.MemberID = &req.MemberID
		resp.MemberEpoch = req.MemberEpoch
		return resp
	case 0:
		instance := ""
		if req.InstanceID != nil {
			instance = *req.InstanceID
		}
		replaced := false
		if instance != "" {
			if old := st.members[st.static[instance]]; old != nil && old.id != req.MemberID {
				if old.epoch != cgEpochStaticLeft {
					return fail(kerr.UnreleasedInstanceID, "instance "+instance+" is still in use by member "+old.id)
				}
				m = st.replaceStatic(old, req.MemberID)
				replaced = true
			}
		}
		if m != nil && m.epoch != cgEpochStaticLeft && st.static[instance] != m.id {
			// A known member rejoining from scratch: it has lost its
			// partitions, so release them first.
			st.removeMember(m.id)
			m = nil
		}
		if m == nil {
			m = newCGMember(req.MemberID)
			m.instanceID = instance
			m.epoch = 0
			st.members[m.id] = m
			if instance != "" {
				st.static[instance] = m.id
			}
			c.h.log.Info("kafka: consumer group member joined", "group", req.Group, "member", m.id, "instance", instance)
		}
		m.clientID, m.clientHost = r.clientID, r.clientHost
		m.rebalance = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
		if applyCGSubscription(m, req) || !replaced {
			st.topics = topics
			st.bump() // membership or subscription changed
		} else {
			// A static member's new incarnation with the same
			// subscription: no rebalance, as Kafka.
			st.setTopics(topics)
		}
	default:
		if m == nil {
			return fail(kerr.UnknownMemberID, "")
		}
		if req.MemberEpoch != m.epoch && !(req.MemberEpoch == m.prevEpoch && ownsSubset(st, m, req.Topics)) {
			return fail(kerr.FencedMemberEpoch, "")
		}
		if applyCGSubscription(m, req) {
			st.bump()
		}
		st.setTopics(topics)
	}
	m.deadline = now.Add(cgSessionTimeout)

	var reported map[cgTP]bool
	if req.Topics != nil {
		reported = map[cgTP]bool{}
		byID := map[[16]byte]string{}
		for n, t := range st.topics {
			byID[t.id] = n
		}
		for _, t := range req.Topics {
			n, ok := byID[t.TopicID]
			if !ok {
				continue // a topic no longer subscribed: it owns nothing of it
			}
			for _, p := range t.Partitions {
				reported[cgTP{n, p}] = true
			}
		}
		// A revoked partition of a topic the group no longer resolves
		// is released once the member stops listing its id; without
		// the id mapping, stopping to list anything releases it.
	}
	changed := st.reconcile(m, reported, now)
	resp.MemberID = &m.id
	resp.MemberEpoch = m.epoch
	if changed || req.Topics != nil || req.MemberEpoch == 0 {
		resp.Assignment = cgAssignment(st, m)
	}
	return resp
}

// validateCGHeartbeat checks the request as Kafka does before it looks at
// the group.
func validateCGHeartbeat(req *kmsg.ConsumerGroupHeartbeatRequest) (*kerr.Error, string) {
	switch {
	case req.Group == "":
		return kerr.InvalidRequest, "group id must not be empty"
	case req.MemberID == "":
		return kerr.InvalidRequest, "member id must not be empty (v1+: the client generates it)"
	case req.MemberEpoch < cgEpochStaticLeft:
		return kerr.InvalidRequest, "member epoch must be -2, -1 or >= 0"
	case req.InstanceID != nil && *req.InstanceID == "":
		return kerr.InvalidRequest, "instance id must not be empty when given"
	}
	if req.MemberEpoch == 0 {
		switch {
		case req.RebalanceTimeoutMillis <= 0:
			return kerr.InvalidRequest, "rebalance timeout must be set when joining"
		case req.SubscribedTopicNames == nil && req.SubscribedTopicRegex == nil:
			return kerr.InvalidRequest, "a subscription must be given when joining"
		case len(req.Topics) > 0:
			return kerr.InvalidRequest, "owned partitions must be empty when joining"
		}
	}
	if a := req.ServerAssignor; a != nil && *a != "" && *a != cgAssignorUniform && *a != cgAssignorRange {
		return kerr.UnsupportedAssignor, "assignor " + *a + " is not one of uniform, range"
	}
	if re := req.SubscribedTopicRegex; re != nil && *re != "" {
		if _, err := compileSubscription(*re); err != nil {
			return kerr.InvalidRegularExpression, err.Error()
		}
	}
	return nil, ""
}

// applyCGSubscription copies the fields a full heartbeat sets into m and
// reports whether the subscription or assignor changed.
func applyCGSubscription(m *cgMember, req *kmsg.ConsumerGroupHeartbeatRequest) bool {
	changed := false
	if req.SubscribedTopicNames != nil {
		names := append([]string(nil), req.SubscribedTopicNames...)
		sort.Strings(names)
		if !equalStrings(names, m.names) {
			m.names, changed = names, true
		}
	}
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != m.regex {
		m.regex, changed = *req.SubscribedTopicRegex, true
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != m.assignor {
		m.assignor, changed = *req.ServerAssignor, true
	}
	if req.RackID != nil {
		m.rack = *req.RackID
	}
	if req.RebalanceTimeoutMillis > 0 {
		m.rebalance = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	return changed
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ownsSubset reports whether the partitions a request lists (nil: not
// listed) are a subset of what m holds: a member one epoch behind may
// still heartbeat, as Kafka allows, when it lost the response that moved
// it.
func ownsSubset(st *cgGroup, m *cgMember, topics []kmsg.ConsumerGroupHeartbeatRequestTopic) bool {
	if topics == nil {
		return true
	}
	byID := map[[16]byte]string{}
	for n, t := range st.topics {
		byID[t.id] = n
	}
	for _, t := range topics {
		for _, p := range t.Partitions {
			tp := cgTP{byID[t.TopicID], p}
			if !m.assigned[tp] && !m.revoking[tp] {
				return false
			}
		}
	}
	return true
}

// cgAssignment is m's current assignment (without partitions being
// revoked) in the response's form.
func cgAssignment(st *cgGroup, m *cgMember) *kmsg.ConsumerGroupHeartbeatResponseAssignment {
	a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
	a.Topics = []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}
	for _, tps := range groupByTopic(m.assigned) {
		t := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
		t.TopicID = st.topics[tps[0].topic].id
		for _, p := range tps {
			t.Partitions = append(t.Partitions, p.partition)
		}
		a.Topics = append(a.Topics, t)
	}
	return &a
}

// groupByTopic sorts a partition set into per-topic lists, by topic name.
func groupByTopic(set map[cgTP]bool) [][]cgTP {
	var all []cgTP
	for p := range set {
		all = append(all, p)
	}
	sort.Slice(all, func(i, j int) bool { return cgLess(all[i], all[j]) })
	var out [][]cgTP
	for i, p := range all {
		if i == 0 || all[i-1].topic != p.topic {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], p)
	}
	return out
}

// tickConsumerGroups expires sessions and fences members that did not
// revoke in their rebalance timeout. Expects c.mu held.
func (c *coordinator) tickConsumerGroups(now time.Time) (writes []func()) {
	for name, cg := range c.mu.cgroups {
		removedConsumer := false
		for id, m := range cg.st.members {
			switch {
			case now.After(m.deadline):
				c.h.log.Info("kafka: consumer group member session expired", "group", name, "member", id)
				cg.st.removeMember(id)
				removedConsumer = removedConsumer || m.classic == nil
			case !m.revokeDeadline.IsZero() && now.After(m.revokeDeadline):
				c.h.log.Info("kafka: consumer group member did not revoke in its rebalance timeout", "group", name, "member", id)
				cg.st.removeMember(id)
				removedConsumer = removedConsumer || m.classic == nil
			case m.classic != nil && !m.classic.rejoinBy.IsZero() && now.After(m.classic.rejoinBy):
				c.h.log.Info("kafka: classic member did not rejoin in its rebalance timeout", "group", name, "member", id)
				cg.st.removeMember(id)
			case m.classic != nil && !m.classic.syncBy.IsZero() && now.After(m.classic.syncBy):
				c.h.log.Info("kafka: classic member did not sync in its rebalance timeout", "group", name, "member", id)
				cg.st.removeMember(id)
			}
		}
		cg.detachStaleLocked()
		if removedConsumer {
			if w := c.maybeDowngradeLocked(cg, now); w != nil {
				writes = append(writes, w)
				continue // a classic group now
			}
		}
		switch {
		case len(cg.st.members) > 0:
			cg.emptySince = time.Time{}
		case cg.emptySince.IsZero():
			cg.emptySince = now
		case now.Sub(cg.emptySince) > groupEmptyExpiry:
			cg.detachAllLocked()
			delete(c.mu.cgroups, name)
		}
	}
	return writes
}

// consumerCommitCheck validates an OffsetCommit to a consumer group
// (cg != nil): members commit with their member epoch (or the one before,
// which a client still uses while it reconciles); anyone else only to an
// empty group with generation -1. Expects c.mu held.
func (c *coordinator) consumerCommitCheck(cg *consumerGroup, memberID string, epoch int32) *kerr.Error {
	m := cg.st.members[memberID]
	if m == nil {
		if epoch < 0 && memberID == "" && len(cg.st.members) == 0 {
			return nil
		}
		return kerr.UnknownMemberID
	}
	if epoch != m.epoch && epoch != m.prevEpoch {
		return kerr.StaleMemberEpoch
	}
	return nil
}

// consumerGroupNonEmpty reports whether name is a consumer group with
// members (classic requests for it are refused). Expects c.mu held.
func (c *coordinator) consumerGroupNonEmpty(name string) bool {
	cg := c.mu.cgroups[name]
	return cg != nil && len(cg.st.members) > 0
}
