package kafka

// KIP-848 consumer groups: the assignment state machine.
//
// This file has no I/O and no locking: cgGroup is driven by the
// coordinator under coordinator.mu (group_consumer.go) and by the model
// test with the same calls.
//
// Vocabulary (Kafka's):
//   - The group epoch counts changes of what the assignment depends on:
//     members, their subscriptions, the subscribed topics' partitions.
//     Every change recomputes the target assignment at once, so the
//     assignment epoch always equals the group epoch here.
//   - A member's epoch is the target epoch it has reconciled to. A member
//     moves to the new epoch only when it holds no partition the target
//     takes away from it.
//   - Reconciliation is incremental: a partition leaving member A is first
//     revoked (A is told its assignment without it and keeps owning it
//     until a heartbeat of A no longer lists it, or A leaves or is fenced);
//     only then can member B, whose target has it, be given it.
//
// INVARIANT: every partition has at most one owner: owner[p] == m.id iff p
// is in m.assigned or m.revoking, and assigned and revoking are disjoint.
// INVARIANT: a member with revocations pending keeps its old epoch.

import (
	"slices"
	"sort"
	"time"
)

// cgTP is one partition of a topic (the topic's Kafka name).
type cgTP struct {
	topic     string
	partition int32
}

func cgLess(a, b cgTP) bool {
	if a.topic != b.topic {
		return a.topic < b.topic
	}
	return a.partition < b.partition
}

// cgTopic is a subscribed topic as resolved from the broker's metadata.
type cgTopic struct {
	name       string
	id         [16]byte
	partitions int32
}

// Server-side assignors (Kafka group.consumer.assignors: uniform, range;
// uniform is the default).
const (
	cgAssignorUniform = "uniform"
	cgAssignorRange   = "range"
)

// cgMember is one member of a consumer-protocol group.
type cgMember struct {
	id, instanceID, rack string
	clientID, clientHost string
	assignor             string // "" = the group's default
	names                []string
	regex                string // "" = none; matched against whole names
	rebalance            time.Duration

	epoch     int32 // reconciled epoch; cgEpochStaticLeft while a left static member's slot is kept
	prevEpoch int32 // the epoch before the last move (commits in it are still accepted)
	assigned  map[cgTP]bool
	revoking  map[cgTP]bool

	deadline       time.Time // session expiry
	revokeDeadline time.Time // set while revoking: fenced if not done by then

	// classic is set for a member that uses the classic protocol
	// (JoinGroup/SyncGroup/Heartbeat) in a consumer-protocol group
	// (group_consumer_classic.go); nil for a ConsumerGroupHeartbeat member.
	classic *cgClassic
}

// cgEpochStaticLeft marks a static member that left with epoch -2: its
// partitions stay reserved for its instance id until its session expires.
const cgEpochStaticLeft = -2

func newCGMember(id string) *cgMember {
	return &cgMember{id: id, assigned: map[cgTP]bool{}, revoking: map[cgTP]bool{}}
}

// sortKey orders members for the range assignor: by instance id if
// static (so that a static member's new incarnation keeps its place and
// its ranges), else by member id.
func (m *cgMember) sortKey() string {
	if m.instanceID != "" {
		return "i:" + m.instanceID
	}
	return "m:" + m.id
}

// subscribes reports whether m's subscription covers topic.
func (m *cgMember) subscribes(topic string, match func(regex, name string) bool) bool {
	if slices.Contains(m.names, topic) {
		return true
	}
	return m.regex != "" && match(m.regex, topic)
}

// cgGroup is the membership and assignment of one consumer-protocol group.
type cgGroup struct {
	epoch   int32
	members map[string]*cgMember
	static  map[string]string // instance id -> member id
	topics  map[string]cgTopic
	target  map[string]map[cgTP]bool // member id -> target assignment
	owner   map[cgTP]string
	// match reports whether a subscription regex matches a topic name
	// (compiled and cached by the caller).
	match func(regex, name string) bool
}

func newCGGroup(match func(regex, name string) bool) *cgGroup {
	return &cgGroup{
		members: map[string]*cgMember{}, static: map[string]string{}, topics: map[string]cgTopic{},
		target: map[string]map[cgTP]bool{}, owner: map[cgTP]string{}, match: match,
	}
}

// assignorName is the assignor the group uses: the one its members ask
// for (the most popular; ties by name), uniform when none asks.
func (g *cgGroup) assignorName() string {
	counts := map[string]int{}
	for _, m := range g.members {
		if m.assignor != "" {
			counts[m.assignor]++
		}
	}
	best, n := cgAssignorUniform, 0
	for a, c := range counts {
		if c > n || (c == n && a < best) {
			best, n = a, c
		}
	}
	return best
}

// bump records a change of what the assignment depends on and recomputes
// the target.
func (g *cgGroup) bump() {
	g.epoch++
	g.computeTarget()
}

// setTopics replaces the resolved subscribed topics; a change of names,
// ids or partition counts bumps the epoch.
func (g *cgGroup) setTopics(ts map[string]cgTopic) {
	same := len(ts) == len(g.topics)
	for n, t := range ts {
		if g.topics[n] != t {
			same = false
		}
	}
	if same {
		return
	}
	g.topics = ts
	g.bump()
}

// removeMember drops m and releases everything it owns.
func (g *cgGroup) removeMember(id string) {
	m := g.members[id]
	if m == nil {
		return
	}
	for p := range m.assigned {
		delete(g.owner, p)
	}
	for p := range m.revoking {
		delete(g.owner, p)
	}
	delete(g.members, id)
	delete(g.target, id)
	if m.instanceID != "" && g.static[m.instanceID] == id {
		delete(g.static, m.instanceID)
	}
	g.bump()
}

// replaceStatic hands the slot of a left static member (epoch -2) to a new
// incarnation with member id newID: same assignment, no rebalance.
func (g *cgGroup) replaceStatic(old *cgMember, newID string) *cgMember {
	delete(g.members, old.id)
	tgt := g.target[old.id]
	delete(g.target, old.id)
	old.id = newID
	old.epoch, old.prevEpoch = g.epoch, g.epoch
	for p := range old.assigned {
		g.owner[p] = newID
	}
	for p := range old.revoking {
		g.owner[p] = newID
	}
	g.members[newID] = old
	g.target[newID] = tgt
	g.static[old.instanceID] = newID
	return old
}

// reconcile moves m towards its target. reported, when not nil, is the
// set of partitions m says it owns (a full heartbeat): revoked partitions
// it no longer lists are released. It returns whether m's assignment or
// epoch changed.
func (g *cgGroup) reconcile(m *cgMember, reported map[cgTP]bool, now time.Time) bool {
	changed := false
	if reported != nil {
		for p := range m.revoking {
			if !reported[p] {
				delete(m.revoking, p)
				delete(g.owner, p)
			}
		}
	}
	tgt := g.target[m.id]
	for p := range m.revoking {
		if tgt[p] { // targeted back at m before it let go
			delete(m.revoking, p)
			m.assigned[p] = true
			changed = true
		}
	}
	for p := range m.assigned {
		if !tgt[p] {
			delete(m.assigned, p)
			m.revoking[p] = true
			changed = true
		}
	}
	if len(m.revoking) > 0 {
		if m.revokeDeadline.IsZero() {
			m.revokeDeadline = now.Add(m.rebalance)
		}
		return changed
	}
	m.revokeDeadline = time.Time{}
	if m.epoch != g.epoch {
		m.prevEpoch, m.epoch = m.epoch, g.epoch
		changed = true
	}
	for p := range tgt {
		if !m.assigned[p] && g.owner[p] == "" {
			m.assigned[p] = true
			g.owner[p] = m.id
			changed = true
		}
	}
	return changed
}

// stable reports whether every member owns exactly its target (a left
// static member's waiting slot does not count: it owns its target).
func (g *cgGroup) stable() bool {
	for id, m := range g.members {
		if m.epoch == cgEpochStaticLeft {
			continue
		}
		if len(m.revoking) > 0 || len(m.assigned) != len(g.target[id]) || m.epoch != g.epoch {
			return false
		}
	}
	return true
}

// partitionsOf lists the partitions of the topics m subscribes to.
func (g *cgGroup) subscribed(m *cgMember) []cgTP {
	var out []cgTP
	for name, t := range g.topics {
		if m.subscribes(name, g.match) {
			for i := range t.partitions {
				out = append(out, cgTP{name, i})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return cgLess(out[i], out[j]) })
	return out
}

// computeTarget recomputes every member's target with the group's
// assignor. A left static member keeps its slot (and its target).
func (g *cgGroup) computeTarget() {
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	subs := map[string][]cgTP{}
	for _, id := range ids {
		subs[id] = g.subscribed(g.members[id])
	}
	var tgt map[string]map[cgTP]bool
	if g.assignorName() == cgAssignorRange {
		sort.Slice(ids, func(i, j int) bool { return g.members[ids[i]].sortKey() < g.members[ids[j]].sortKey() })
		tgt = assignRange(ids, subs)
	} else {
		tgt = assignUniform(ids, subs, g.target)
	}
	g.target = tgt
}

// assignRange is Kafka's range assignor per topic: the members subscribed
// to a topic, in the order of ids (by sortKey), get contiguous ranges of its partitions, the
// first ones one more when the count does not divide evenly.
func assignRange(ids []string, subs map[string][]cgTP) map[string]map[cgTP]bool {
	out := map[string]map[cgTP]bool{}
	byTopic := map[string][]string{}
	parts := map[string][]cgTP{}
	for _, id := range ids {
		out[id] = map[cgTP]bool{}
		seen := map[string]bool{}
		for _, p := range subs[id] {
			if !seen[p.topic] {
				seen[p.topic] = true
				byTopic[p.topic] = append(byTopic[p.topic], id)
			}
		}
	}
	for _, id := range ids {
		for _, p := range subs[id] {
			if byTopic[p.topic][0] == id {
				parts[p.topic] = append(parts[p.topic], p)
			}
		}
	}
	for topic, ms := range byTopic {
		ps := parts[topic]
		n, k := len(ps)/len(ms), len(ps)%len(ms)
		i := 0
		for j, id := range ms {
			c := n
			if j < k {
				c++
			}
			for _, p := range ps[i : i+c] {
				out[id][p] = true
			}
			i += c
		}
	}
	return out
}

// assignUniform balances partitions over the members subscribed to them,
// sticky to the previous target: a partition stays where it was while its
// member still subscribes and is not above its share, the rest go to the
// least loaded subscriber, then single moves from the most to the least
// loaded subscriber even the counts out (no two subscribers of a topic
// differ by more than one partition where a move can fix it).
func assignUniform(ids []string, subs map[string][]cgTP, prev map[string]map[cgTP]bool) map[string]map[cgTP]bool {
	out := map[string]map[cgTP]bool{}
	subscribers := map[cgTP][]string{}
	var all []cgTP
	for _, id := range ids {
		out[id] = map[cgTP]bool{}
		for _, p := range subs[id] {
			if subscribers[p] == nil {
				all = append(all, p)
			}
			subscribers[p] = append(subscribers[p], id)
		}
	}
	sort.Slice(all, func(i, j int) bool { return cgLess(all[i], all[j]) })
	share := 0
	if len(ids) > 0 {
		share = (len(all) + len(ids) - 1) / len(ids)
	}
	var free []cgTP
	for _, p := range all {
		kept := false
		for _, id := range subscribers[p] {
			if prev[id][p] && len(out[id]) < share {
				out[id][p] = true
				kept = true
				break
			}
		}
		if !kept {
			free = append(free, p)
		}
	}
	least := func(cands []string) string {
		best := ""
		for _, id := range cands {
			if best == "" || len(out[id]) < len(out[best]) {
				best = id
			}
		}
		return best
	}
	for _, p := range free {
		out[least(subscribers[p])][p] = true
	}
	// Even out: move a partition from a member to a subscriber of it with
	// at least two fewer. Each move lowers the sum of squared counts, so
	// this ends.
	for moved := true; moved; {
		moved = false
		for _, p := range all {
			from := ""
			for _, id := range subscribers[p] {
				if out[id][p] {
					from = id
				}
			}
			to := least(subscribers[p])
			if len(out[from]) >= len(out[to])+2 {
				delete(out[from], p)
				out[to][p] = true
				moved = true
			}
		}
	}
	return out
}
