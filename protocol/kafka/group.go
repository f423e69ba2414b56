package kafka

// Group coordinator: Kafka's classic consumer-group protocol (JoinGroup,
// SyncGroup, Heartbeat, LeaveGroup) with this node as every group's
// coordinator.
//
// What is stored where:
//   - A group's committed offset on a partition IS the mark-delete position
//     of the subscription of the group's name on that partition (see
//     group_offsets.go): one record, shared with Pulsar consumers and the
//     admin API, no second copy.
//   - Groups are scoped by namespace: a connection's groups are those of
//     its namespace (its SASL principal's, else the handler's; see
//     namespaceOf), each namespace with its own coordinator, so that two
//     tenants' groups of the same name are two groups. The subscription
//     is still named by the group alone (on topics of any namespace).
//   - Membership (members, generation, protocol, leader, assignments, static
//     member ids) and the list of topics the group committed to are one
//     record per group in the broker's StateStore (kind
//     "kafka-group/<tenant>/<namespace>"),
//     written when a rebalance completes (the leader's SyncGroup) and when
//     the group becomes empty, as Kafka writes its group metadata to
//     __consumer_offsets. A reloaded group with members is Stable; members
//     that do not come back expire after their session timeout.
//
// State machine (Kafka's GroupMetadata states):
//
//	Empty --join--> PreparingRebalance --all joined / rebalance timeout--> CompletingRebalance
//	CompletingRebalance --leader SyncGroup--> Stable
//	Stable|CompletingRebalance --join of a new or changed member, leave, expiry--> PreparingRebalance
//	PreparingRebalance --nobody rejoined--> Empty;  DeleteGroups: Empty --> Dead
//
// The first rebalance of an empty group waits Config.GroupInitialRebalanceDelay
// (in generation 0, extended by the same delay while new members keep
// joining, up to the rebalance timeout; the member whose join opens the
// rebalance is not one of them) so that a group starting many consumers at
// once rebalances once (Kafka group.initial.rebalance.delay.ms and its
// InitialDelayedJoin).
//
// Concurrency: one mutex (coordinator.mu) guards every group; JoinGroup and
// SyncGroup park their connection's goroutine on a channel, outside the
// lock, until the rebalance step completes (Kafka's delayed operations). A
// ticker expires sessions and rebalance deadlines. No broker or store call
// is made with coordinator.mu held, except releasing subscription holds
// (Subscription.mu is a leaf). Lock order: coordinator.loadMu,
// coordinator.mu, Subscription.mu; group.wmu is held across store writes
// and nothing else is taken under it.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

// Session timeout bounds (Kafka group.min.session.timeout.ms 6s and
// group.max.session.timeout.ms 30m). Tests lower the minimum.
var (
	groupMinSessionTimeout = 6 * time.Second
	groupMaxSessionTimeout = 30 * time.Minute
)

// groupEmptyExpiry is how long an empty group that never committed an
// offset is kept (Kafka removes such groups at its next offsets cleanup,
// offsets.retention.check.interval.ms, 10 minutes).
var groupEmptyExpiry = 10 * time.Minute

// groupTick is the coordinator's timer resolution for session expiry and
// rebalance deadlines.
const groupTick = 50 * time.Millisecond

// groupStateKind prefixes the StateStore kind of group records; the kind
// is "kafka-group/<tenant>/<namespace>".
const groupStateKind = "kafka-group"

// maxOffsetMetadata is the longest commit metadata string accepted (Kafka
// offset.metadata.max.bytes, default 4096).
const maxOffsetMetadata = 4096

type groupState int8

const (
	groupEmpty groupState = iota
	groupPreparingRebalance
	groupCompletingRebalance
	groupStable
	groupDead
)

func (s groupState) String() string {
	switch s {
	case groupEmpty:
		return "Empty"
	case groupPreparingRebalance:
		return "PreparingRebalance"
	case groupCompletingRebalance:
		return "CompletingRebalance"
	case groupStable:
		return "Stable"
	}
	return "Dead"
}

type groupProtocol struct {
	Name     string `json:"name"`
	Metadata []byte `json:"metadata"`
}

// groupMember is one member. Guarded by coordinator.mu.
type groupMember struct {
	id         string
	instanceID string // "" for a dynamic member
	clientID   string
	clientHost string
	session    time.Duration
	rebalance  time.Duration
	protocols  []groupProtocol
	assignment []byte
	joinedAt   time.Time
	deadline   time.Time // session expiry, unless a JoinGroup or SyncGroup waits

	join chan joinResult // set while a JoinGroup waits
	sync chan syncResult // set while a SyncGroup waits
}

func (m *groupMember) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

func sameProtocols(a, b []groupProtocol) bool {
	return slices.EqualFunc(a, b, func(x, y groupProtocol) bool {
		return x.Name == y.Name && bytes.Equal(x.Metadata, y.Metadata)
	})
}

// group is one consumer group. Guarded by coordinator.mu, except the
// write-ordering fields under wmu.
type group struct {
	name         string
	state        groupState
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*groupMember
	static       map[string]string    // instance id -> member id
	pending      map[string]time.Time // member ids handed out with MEMBER_ID_REQUIRED -> expiry
	topics       map[string]bool      // full names of the topics the group committed to

	joinDeadline     time.Time
	syncDeadline     time.Time       // CompletingRebalance: members must have synced by then
	synced           map[string]bool // members that sent SyncGroup in this generation
	emptySince       time.Time       // when the group last became empty
	initial          bool            // in the initial delayed join
	initialRemaining time.Duration
	newMemberAdded   bool

	att groupAttachments // members attached to subscriptions while Stable (group_attach.go)

	saved   groupRecord // membership as of the last completed rebalance or emptying
	seq     uint64      // bumped per record built for writing
	wmu     sync.Mutex
	written uint64 // under wmu: seq of the last record written
}

func newGroup(name string) *group {
	return &group{
		name:    name,
		members: map[string]*groupMember{},
		static:  map[string]string{},
		pending: map[string]time.Time{},
		topics:  map[string]bool{},

		emptySince: time.Now(),
	}
}

// groupRecord is the persisted form of a group (JSON in the StateStore).
type groupRecord struct {
	ProtocolType string         `json:"protocolType,omitempty"`
	Protocol     string         `json:"protocol,omitempty"`
	Generation   int32          `json:"generation"`
	Leader       string         `json:"leader,omitempty"`
	Members      []memberRecord `json:"members,omitempty"`
	Topics       []string       `json:"topics,omitempty"`
}

type memberRecord struct {
	ID          string          `json:"id"`
	InstanceID  string          `json:"instanceId,omitempty"`
	ClientID    string          `json:"clientId,omitempty"`
	ClientHost  string          `json:"clientHost,omitempty"`
	SessionMs   int64           `json:"sessionMs"`
	RebalanceMs int64           `json:"rebalanceMs"`
	Protocols   []groupProtocol `json:"protocols"`
	Assignment  []byte          `json:"assignment,omitempty"`
}

// joinResult answers a JoinGroup.
type joinResult struct {
	code         int16
	generation   int32
	protocolType string
	protocol     string
	leader       string
	memberID     string
	members      []joinedMember // the leader's copy only
}

type joinedMember struct {
	id, instanceID string
	metadata       []byte
}

// syncResult answers a SyncGroup.
type syncResult struct {
	code         int16
	protocolType string
	protocol     string
	assignment   []byte
}

// coordinator is a handler's group coordinator for one namespace.
type coordinator struct {
	h     *Handler
	key   coordinatorKey
	kind  string            // StateStore kind of its group records
	store broker.StateStore // nil: membership is not persisted
	delay time.Duration
	// base is the context of the coordinator's own work (record writes,
	// attaching members): short topic names resolve in its namespace.
	base context.Context

	loadMu sync.Mutex
	loaded bool // under loadMu

	mu struct {
		sync.Mutex
		groups  map[string]*group
		cgroups map[string]*consumerGroup // KIP-848 groups (group_consumer.go)
	}
}

// coordinators maps a coordinatorKey to its *coordinator, created on first
// use (kafka.go owns Handler's fields; this keeps the coordinator in its files).
var coordinators sync.Map

// coordinatorKey names a coordinator: a handler's, for one namespace.
type coordinatorKey struct {
	h         *Handler
	namespace string // "tenant/ns"
}

var errCoordinatorClosing = fmt.Errorf("kafka: handler closing: %w", kerr.CoordinatorNotAvailable)

// coordinator returns the group coordinator of the request's namespace
// with its persisted groups loaded, if the request may use groups there
// (authz.go). An error is GROUP_AUTHORIZATION_FAILED or a
// coordinator-level failure for the client to retry.
func (h *Handler) coordinator(ctx context.Context) (*coordinator, error) {
	select {
	case <-h.closing:
		return nil, errCoordinatorClosing
	default:
	}
	if err := h.checkGroup(ctx); err != nil {
		return nil, err
	}
	tenant, ns := h.namespaceOf(ctx)
	key := coordinatorKey{h: h, namespace: tenant + "/" + ns}
	v, ok := coordinators.Load(key)
	if !ok {
		c := &coordinator{h: h, key: key, kind: groupStateKind + "/" + key.namespace, delay: h.cfg.GroupInitialRebalanceDelay,
			base: context.WithValue(context.Background(), principalKey{}, auth.Principal{Tenant: tenant, Namespace: ns})}
		c.store, _ = h.svc.(broker.StateStore)
		c.mu.groups = map[string]*group{}
		c.mu.cgroups = map[string]*consumerGroup{}
		if v, ok = coordinators.LoadOrStore(key, c); !ok {
			if c.store == nil {
				h.log.WarnContext(ctx, "kafka: broker has no StateStore; consumer group membership is not persisted")
			}
			go c.run()
		}
	}
	c := v.(*coordinator)
	if err := c.load(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// load reads the persisted groups once.
func (c *coordinator) load(ctx context.Context) error {
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	if c.loaded || c.store == nil {
		c.loaded = true
		return nil
	}
	keys, err := c.store.ListState(ctx, c.kind)
	if err != nil {
		return fmt.Errorf("kafka: loading groups: %w: %w", kerr.CoordinatorLoadInProgress, err)
	}
	loaded := map[string]*group{}
	now := time.Now()
	for _, k := range keys {
		b, err := c.store.GetState(ctx, c.kind, k)
		if errors.Is(err, broker.ErrStateNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("kafka: loading group %q: %w: %w", k, kerr.CoordinatorLoadInProgress, err)
		}
		var rec groupRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			c.h.log.WarnContext(ctx, "kafka: skipping unreadable group record", "group", k, "err", err)
			continue
		}
		loaded[k] = groupFromRecord(k, rec, now)
	}
	c.mu.Lock()
	for k, g := range loaded {
		if _, ok := c.mu.groups[k]; !ok {
			c.mu.groups[k] = g
			if g.state == groupStable {
				go c.attachSoon(g, g.generation)
			}
		}
	}
	c.mu.Unlock()
	c.loaded = true
	return nil
}

func groupFromRecord(name string, rec groupRecord, now time.Time) *group {
	g := newGroup(name)
	g.protocolType, g.protocol = rec.ProtocolType, rec.Protocol
	g.generation, g.leader = rec.Generation, rec.Leader
	for _, t := range rec.Topics {
		g.topics[t] = true
	}
	for i, mr := range rec.Members {
		m := &groupMember{
			id: mr.ID, instanceID: mr.InstanceID, clientID: mr.ClientID, clientHost: mr.ClientHost,
			session: time.Duration(mr.SessionMs) * time.Millisecond, rebalance: time.Duration(mr.RebalanceMs) * time.Millisecond,
			protocols: mr.Protocols, assignment: mr.Assignment,
			joinedAt: now.Add(time.Duration(i)), deadline: now.Add(time.Duration(mr.SessionMs) * time.Millisecond),
		}
		g.members[m.id] = m
		if m.instanceID != "" {
			g.static[m.instanceID] = m.id
		}
	}
	if len(g.members) > 0 {
		g.state = groupStable
		if _, ok := g.members[g.leader]; !ok {
			g.leader = g.firstMember()
		}
	} else {
		g.state, g.emptySince = groupEmpty, now
		g.protocol, g.leader = "", ""
	}
	g.saved = rec
	g.saved.Topics = nil
	return g
}

// run expires sessions and rebalance deadlines until the handler closes.
func (c *coordinator) run() {
	t := time.NewTicker(groupTick)
	defer t.Stop()
	for {
		select {
		case <-c.h.closing:
			c.detachAll()
			coordinators.Delete(c.key)
			return
		case now := <-t.C:
			c.tick(now)
		}
	}
}

func (c *coordinator) tick(now time.Time) {
	var writes []func()
	c.mu.Lock()
	writes = c.tickConsumerGroups(now)
	for _, g := range c.mu.groups {
		for id, exp := range g.pending {
			if now.After(exp) {
				delete(g.pending, id)
				if g.state == groupPreparingRebalance {
					writes = appendWrite(writes, c.tryCompleteJoin(g, now))
				}
			}
		}
		for _, m := range g.members {
			if m.join == nil && m.sync == nil && now.After(m.deadline) {
				c.h.log.Info("kafka: group member session expired", "group", g.name, "member", m.id, "session_timeout", m.session)
				writes = appendWrite(writes, c.removeMember(g, m, now))
			}
		}
		if g.state == groupEmpty && len(g.topics) == 0 && len(g.members) == 0 && len(g.pending) == 0 &&
			!g.emptySince.IsZero() && now.Sub(g.emptySince) > groupEmptyExpiry && c.nonEmptyCG(g.name) == nil {
			// (A consumer-protocol group of the name with members keeps it:
			// it was upgraded from it or commits through it.)
			// Never committed anything: forget it (Dead until its record
			// is gone, so that nothing recreates it half way).
			g.state = groupDead
			writes = append(writes, func() { c.forget(g) })
			continue
		}
		if g.state == groupCompletingRebalance && !now.Before(g.syncDeadline) {
			// Members that never sent SyncGroup in the rebalance timeout
			// are gone (Kafka 3.x's pending-sync timeout); the rest
			// rebalance without them.
			for _, m := range g.members {
				if !g.synced[m.id] {
					c.h.log.Info("kafka: group member did not sync in time", "group", g.name, "member", m.id)
					c.dropMember(g, m)
				}
			}
			c.prepareRebalance(g, now)
			writes = appendWrite(writes, c.tryCompleteJoin(g, now))
		}
		if g.state == groupPreparingRebalance && !now.Before(g.joinDeadline) {
			if g.initial && g.newMemberAdded && g.initialRemaining > 0 {
				d := min(c.delay, g.initialRemaining)
				g.initialRemaining -= d
				g.newMemberAdded = false
				g.joinDeadline = now.Add(d)
			} else {
				writes = appendWrite(writes, c.completeJoin(g, now))
			}
		}
	}
	c.mu.Unlock()
	for _, w := range writes {
		w()
	}
}

// attachSoon attaches g's members to their subscriptions (group_attach.go)
// in the background, bounded in time.
func (c *coordinator) attachSoon(g *group, gen int32) {
	ctx, cancel := context.WithTimeout(c.base, 30*time.Second)
	defer cancel()
	c.attach(ctx, g, gen)
}

func appendWrite(ws []func(), w func()) []func() {
	if w != nil {
		ws = append(ws, w)
	}
	return ws
}

// ---- state transitions; every function here expects c.mu held ----

func (g *group) firstMember() string {
	var first *groupMember
	for _, m := range g.members {
		if first == nil || m.joinedAt.Before(first.joinedAt) {
			first = m
		}
	}
	if first == nil {
		return ""
	}
	return first.id
}

func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalance)
	}
	return d
}

// supports reports whether a member with these protocols may join.
func (g *group) supports(protocolType string, protocols []groupProtocol) bool {
	if protocolType == "" || len(protocols) == 0 {
		return false
	}
	if len(g.members) == 0 {
		return true
	}
	if protocolType != g.protocolType {
		return false
	}
	cands := g.candidates()
	for _, p := range protocols {
		if cands[p.Name] {
			return true
		}
	}
	return false
}

// candidates are the protocols every member supports.
func (g *group) candidates() map[string]bool {
	var out map[string]bool
	for _, m := range g.members {
		mine := map[string]bool{}
		for _, p := range m.protocols {
			if out == nil || out[p.Name] {
				mine[p.Name] = true
			}
		}
		out = mine
	}
	return out
}

// selectProtocol picks the protocol most members prefer among those all
// support (Kafka's vote); ties go to the leader's preference order.
func (g *group) selectProtocol() string {
	cands := g.candidates()
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if cands[p.Name] {
				votes[p.Name]++
				break
			}
		}
	}
	var order []string
	if l := g.members[g.leader]; l != nil {
		for _, p := range l.protocols {
			order = append(order, p.Name)
		}
	}
	for n := range cands {
		if !slices.Contains(order, n) {
			order = append(order, n)
		}
	}
	best, bestVotes := "", -1
	for _, n := range order {
		if cands[n] && votes[n] > bestVotes {
			best, bestVotes = n, votes[n]
		}
	}
	return best
}

// prepareRebalance moves g to PreparingRebalance.
func (c *coordinator) prepareRebalance(g *group, now time.Time) {
	g.detachLocked()
	if g.state == groupCompletingRebalance {
		for _, m := range g.members {
			if m.sync != nil {
				m.sync <- syncResult{code: kerr.RebalanceInProgress.Code}
				m.sync = nil
			}
		}
	}
	for _, m := range g.members {
		m.assignment = nil
	}
	wasEmpty := g.state == groupEmpty
	g.state = groupPreparingRebalance
	rt := g.maxRebalanceTimeout()
	if wasEmpty && c.delay > 0 {
		d := min(c.delay, rt)
		g.initial, g.initialRemaining, g.newMemberAdded = true, rt-d, false
		g.joinDeadline = now.Add(d)
	} else {
		g.initial = false
		g.joinDeadline = now.Add(rt)
	}
}

// tryCompleteJoin completes the join phase early once every known member
// waits in JoinGroup and no MEMBER_ID_REQUIRED member is still expected.
func (c *coordinator) tryCompleteJoin(g *group, now time.Time) func() {
	if g.state != groupPreparingRebalance || g.initial || len(g.pending) > 0 {
		return nil
	}
	for _, m := range g.members {
		if m.join == nil {
			return nil
		}
	}
	return c.completeJoin(g, now)
}

// completeJoin ends the join phase: members that did not rejoin are
// dropped, a new generation starts and every waiting JoinGroup is answered
// (the leader with the members' metadata). It returns the record write to
// run after c.mu is released, if any.
func (c *coordinator) completeJoin(g *group, now time.Time) func() {
	for _, m := range g.members {
		if m.join == nil {
			c.h.log.Info("kafka: group member did not rejoin in time", "group", g.name, "member", m.id)
			c.dropMember(g, m)
		}
	}
	g.initial = false
	g.generation++
	if len(g.members) == 0 {
		g.state = groupEmpty
		g.emptySince = now
		g.protocol, g.leader = "", ""
		g.saved = g.snapshot()
		return c.writeLocked(g)
	}
	if _, ok := g.members[g.leader]; !ok {
		g.leader = g.firstMember()
	}
	g.protocol = g.selectProtocol()
	g.state = groupCompletingRebalance
	g.syncDeadline = now.Add(g.maxRebalanceTimeout())
	g.synced = map[string]bool{}
	var all []joinedMember
	for _, m := range g.members {
		all = append(all, joinedMember{id: m.id, instanceID: m.instanceID, metadata: m.metadataFor(g.protocol)})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].id < all[j].id })
	for _, m := range g.members {
		m.deadline = now.Add(m.session)
		r := g.joinResultFor(m)
		if m.id == g.leader {
			r.members = all
		}
		m.join <- r
		m.join = nil
	}
	c.h.log.Info("kafka: group rebalanced", "group", g.name, "generation", g.generation, "members", len(g.members), "protocol", g.protocol, "leader", g.leader)
	return nil
}

func (g *group) joinResultFor(m *groupMember) joinResult {
	return joinResult{generation: g.generation, protocolType: g.protocolType, protocol: g.protocol, leader: g.leader, memberID: m.id}
}

// dropMember removes m from g, answering its waiting requests.
func (c *coordinator) dropMember(g *group, m *groupMember) {
	delete(g.members, m.id)
	if m.instanceID != "" && g.static[m.instanceID] == m.id {
		delete(g.static, m.instanceID)
	}
	if m.join != nil {
		m.join <- joinResult{code: kerr.UnknownMemberID.Code, generation: -1, memberID: m.id}
		m.join = nil
	}
	if m.sync != nil {
		m.sync <- syncResult{code: kerr.UnknownMemberID.Code}
		m.sync = nil
	}
	if g.leader == m.id {
		g.leader = ""
	}
}

// removeMember drops m (left or expired) and rebalances the rest.
func (c *coordinator) removeMember(g *group, m *groupMember, now time.Time) func() {
	c.dropMember(g, m)
	switch g.state {
	case groupStable, groupCompletingRebalance:
		c.prepareRebalance(g, now)
		return c.tryCompleteJoin(g, now)
	case groupPreparingRebalance:
		return c.tryCompleteJoin(g, now)
	}
	return nil
}

// snapshot is g's membership as a record (without topics).
func (g *group) snapshot() groupRecord {
	rec := groupRecord{ProtocolType: g.protocolType, Protocol: g.protocol, Generation: g.generation, Leader: g.leader}
	if len(g.members) == 0 {
		rec.Protocol, rec.Leader = "", ""
	}
	for _, m := range g.members {
		rec.Members = append(rec.Members, memberRecord{
			ID: m.id, InstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost,
			SessionMs: m.session.Milliseconds(), RebalanceMs: m.rebalance.Milliseconds(),
			Protocols: m.protocols, Assignment: m.assignment,
		})
	}
	sort.Slice(rec.Members, func(i, j int) bool { return rec.Members[i].ID < rec.Members[j].ID })
	return rec
}

// writeLocked builds g's record (saved membership + topics) and returns the
// function that writes it; call that after releasing c.mu. Writes of one
// group are applied in the order they were built.
//
// In a cluster the write is fenced by the ownership of the group's
// coordinator unit under which this memory was loaded (groupCoordinator),
// taken now, while c.mu is held: a write built from memory of an earlier
// ownership carries that ownership's fence and fails in etcd, so a broker
// that lost the unit (paused past its lease between its lease check and
// this write) cannot overwrite what the new coordinator wrote. A write
// without a fence (the group was never served under an ownership here) is
// not made.
func (c *coordinator) writeLocked(g *group) func() {
	w := c.writeLockedErr(g)
	if w == nil {
		return nil
	}
	return func() { w() }
}

// writeLockedErr is writeLocked whose write reports its error (an error
// wrapping broker.ErrUnitFenced when fenced).
func (c *coordinator) writeLockedErr(g *group) func() error {
	if c.store == nil {
		return nil
	}
	rec := g.saved
	for t := range g.topics {
		rec.Topics = append(rec.Topics, t)
	}
	sort.Strings(rec.Topics)
	b, err := json.Marshal(rec)
	if err != nil {
		panic(err) // plain data
	}
	g.seq++
	seq := g.seq
	fence, clustered, fenced := c.fenceOf(g.name)
	return func() error {
		if clustered && !fenced {
			err := fmt.Errorf("kafka: group %q: no coordinator fence: %w", g.name, broker.ErrUnitFenced)
			c.h.log.Warn("kafka: group record not written", "group", g.name, "err", err)
			return err
		}
		return c.write(g, seq, b, fence, clustered)
	}
}

func (c *coordinator) write(g *group, seq uint64, b []byte, fence broker.Fence, clustered bool) error {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if seq <= g.written {
		return nil
	}
	// Not the request's context: a record must not be lost because the
	// client went away half way.
	ctx, cancel := context.WithTimeout(c.base, 30*time.Second)
	defer cancel()
	var err error
	if fs, ok := c.store.(fencedStateStore); ok && clustered {
		err = fs.PutStateFenced(ctx, fence, c.kind, g.name, b)
	} else {
		err = c.store.PutState(ctx, c.kind, g.name, b)
	}
	if err != nil {
		c.h.log.Error("kafka: writing group record", "group", g.name, "err", err)
		return err
	}
	g.written = seq
	return nil
}

// fencedStateStore is the StateStore of a cluster broker (*broker.Broker).
type fencedStateStore interface {
	PutStateFenced(ctx context.Context, fence broker.Fence, kind, key string, value []byte) error
}

// forget removes an expired empty group (see tick).
func (c *coordinator) forget(g *group) {
	ctx, cancel := context.WithTimeout(c.base, 30*time.Second)
	defer cancel()
	err := c.deleteRecord(ctx, g)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.h.log.Warn("kafka: removing expired empty group", "group", g.name, "err", err)
		g.state, g.emptySince = groupEmpty, time.Now()
		return
	}
	if c.mu.groups[g.name] == g {
		delete(c.mu.groups, g.name)
	}
}

// deleteRecord removes g's record (DeleteGroups).
func (c *coordinator) deleteRecord(ctx context.Context, g *group) error {
	if c.store == nil {
		return nil
	}
	g.wmu.Lock()
	defer g.wmu.Unlock()
	g.written = ^uint64(0) // no later write may resurrect it
	return c.store.DeleteState(ctx, c.kind, g.name)
}

func newMemberID(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	if prefix == "" {
		prefix = "member"
	}
	return prefix + "-" + hex.EncodeToString(b[:])
}

// ---- requests ----

// joinRequest is a decoded JoinGroup.
type joinRequest struct {
	group, memberID, instanceID string
	clientID, clientHost        string
	session, rebalance          time.Duration
	protocolType                string
	protocols                   []groupProtocol
	requireKnownMemberID        bool // v4+: MEMBER_ID_REQUIRED for a new dynamic member
}

// join serves JoinGroup; it may wait for the rebalance to complete.
func (c *coordinator) join(ctx context.Context, r joinRequest) joinResult {
	fail := func(e *kerr.Error) joinResult { return joinResult{code: e.Code, generation: -1, memberID: r.memberID} }
	if r.group == "" {
		return fail(kerr.InvalidGroupID)
	}
	if r.session < groupMinSessionTimeout || r.session > groupMaxSessionTimeout {
		return fail(kerr.InvalidSessionTimeout)
	}
	// A consumer-protocol group with members answers classic members
	// itself (group_consumer_classic.go).
	if res, ok := c.joinConsumerGroup(ctx, r); ok {
		return res
	}
	now := time.Now()
	var write func()
	c.mu.Lock()
	if c.consumerGroupNonEmpty(r.group) {
		// Became one since joinConsumerGroup looked: join again.
		c.mu.Unlock()
		return fail(kerr.RebalanceInProgress)
	}
	if cg := c.mu.cgroups[r.group]; cg != nil {
		cg.detachAllLocked()
		delete(c.mu.cgroups, r.group) // an empty consumer group becomes classic
	}
	g := c.mu.groups[r.group]
	if g == nil {
		if r.memberID != "" {
			c.mu.Unlock()
			return fail(kerr.UnknownMemberID)
		}
		g = newGroup(r.group)
		c.mu.groups[r.group] = g
	}
	if g.state == groupDead {
		c.mu.Unlock()
		return fail(kerr.CoordinatorNotAvailable)
	}
	if !g.supports(r.protocolType, r.protocols) {
		c.mu.Unlock()
		return fail(kerr.InconsistentGroupProtocol)
	}
	var m *groupMember
	switch {
	case r.memberID == "" && r.instanceID != "" && g.static[r.instanceID] != "":
		// A static member restarted: it takes over its old identity under
		// a new member id, fencing the old one.
		old := g.members[g.static[r.instanceID]]
		delete(g.members, old.id)
		if old.join != nil {
			old.join <- joinResult{code: kerr.FencedInstanceID.Code, generation: -1, memberID: old.id}
			old.join = nil
		}
		if old.sync != nil {
			old.sync <- syncResult{code: kerr.FencedInstanceID.Code}
			old.sync = nil
		}
		wasLeader := g.leader == old.id
		m = old
		m.id = newMemberID(r.instanceID)
		g.members[m.id] = m
		g.static[r.instanceID] = m.id
		if wasLeader {
			g.leader = m.id
		}
		m.session, m.rebalance, m.clientID, m.clientHost = r.session, r.rebalance, r.clientID, r.clientHost
		m.deadline = now.Add(m.session)
		if g.state == groupStable && sameProtocols(m.protocols, r.protocols) {
			// Nothing changed: no rebalance (KIP-345). The new id is
			// persisted so that a restart does not resurrect the old one.
			res := g.joinResultFor(m)
			if m.id == g.leader {
				res.members = g.joinedMembers()
			}
			for i := range g.saved.Members {
				if g.saved.Members[i].InstanceID == r.instanceID {
					g.saved.Members[i].ID = m.id
				}
			}
			if wasLeader {
				g.saved.Leader = m.id
			}
			write = c.writeLocked(g)
			g.detachLocked() // re-attached under the new member id
			c.mu.Unlock()
			if write != nil {
				write()
			}
			go c.attachSoon(g, res.generation)
			return res
		}
		m.protocols = r.protocols
		c.rebalanceFor(g, now)
	case r.memberID == "" && r.instanceID == "" && r.requireKnownMemberID:
		id := newMemberID("")
		g.pending[id] = now.Add(r.session)
		c.mu.Unlock()
		return joinResult{code: kerr.MemberIDRequired.Code, generation: -1, memberID: id}
	case r.memberID == "" || !g.pending[r.memberID].IsZero():
		id := r.memberID
		if id == "" {
			id = newMemberID(r.instanceID)
		}
		delete(g.pending, id)
		m = c.addMember(g, id, r, now)
	default:
		if id, ok := g.static[r.instanceID]; r.instanceID != "" && ok && id != r.memberID {
			c.mu.Unlock()
			return fail(kerr.FencedInstanceID) // an older incarnation
		}
		m = g.members[r.memberID]
		if m == nil {
			c.mu.Unlock()
			return fail(kerr.UnknownMemberID)
		}
		if m.instanceID != r.instanceID {
			c.mu.Unlock()
			return fail(kerr.FencedInstanceID)
		}
		m.session, m.rebalance, m.clientID, m.clientHost = r.session, r.rebalance, r.clientID, r.clientHost
		m.deadline = now.Add(m.session)
		changed := !sameProtocols(m.protocols, r.protocols)
		switch g.state {
		case groupPreparingRebalance:
			m.protocols = r.protocols
		case groupCompletingRebalance, groupStable:
			if !changed && (g.state == groupCompletingRebalance || m.id != g.leader) {
				// A retried join of the current generation.
				res := g.joinResultFor(m)
				if m.id == g.leader {
					res.members = g.joinedMembers()
				}
				c.mu.Unlock()
				return res
			}
			m.protocols = r.protocols
			c.prepareRebalance(g, now)
		default:
			c.mu.Unlock()
			return fail(kerr.UnknownMemberID)
		}
	}
	if m.join != nil {
		// The same member joins again while its previous join waits (a
		// client retry on another connection): the older one gives up.
		m.join <- joinResult{code: kerr.RebalanceInProgress.Code, generation: -1, memberID: m.id}
	}
	ch := make(chan joinResult, 1)
	m.join = ch
	write = c.tryCompleteJoin(g, now)
	c.mu.Unlock()
	if write != nil {
		write()
	}
	select {
	case res := <-ch:
		return res
	case <-ctx.Done():
	case <-c.h.closing:
	}
	return joinResult{code: kerr.CoordinatorNotAvailable.Code, generation: -1, memberID: m.id}
}

// rebalanceFor starts (or joins) a rebalance because a member joined or changed.
func (c *coordinator) rebalanceFor(g *group, now time.Time) {
	switch g.state {
	case groupEmpty, groupStable, groupCompletingRebalance:
		c.prepareRebalance(g, now)
	case groupPreparingRebalance:
		if rt := g.maxRebalanceTimeout(); !g.initial && now.Add(rt).After(g.joinDeadline) {
			g.joinDeadline = now.Add(rt)
		}
	}
}

func (c *coordinator) addMember(g *group, id string, r joinRequest, now time.Time) *groupMember {
	if len(g.members) == 0 {
		g.protocolType = r.protocolType
	}
	m := &groupMember{
		id: id, instanceID: r.instanceID, clientID: r.clientID, clientHost: r.clientHost,
		session: r.session, rebalance: r.rebalance, protocols: r.protocols,
		joinedAt: now, deadline: now.Add(r.session),
	}
	// A new member that joins the group's first rebalance while it is in
	// its initial delay extends the delay once more (Kafka's
	// addMemberAndRebalance: PreparingRebalance and generation 0). The
	// member whose join opens the rebalance finds the group Empty and
	// does not count, so a lone consumer's first join waits one delay, not
	// two; members rejoining (or a static member taking over its
	// identity) never extend it.
	if g.state == groupPreparingRebalance && g.initial && g.generation == 0 {
		g.newMemberAdded = true
	}
	g.members[id] = m
	if r.instanceID != "" {
		g.static[r.instanceID] = id
	}
	c.rebalanceFor(g, now)
	return m
}

func (g *group) joinedMembers() []joinedMember {
	var all []joinedMember
	for _, m := range g.members {
		all = append(all, joinedMember{id: m.id, instanceID: m.instanceID, metadata: m.metadataFor(g.protocol)})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].id < all[j].id })
	return all
}

// checkMember validates a member's id, instance id and generation.
func (g *group) checkMember(memberID, instanceID string, generation int32) (*groupMember, *kerr.Error) {
	if instanceID != "" {
		if id, ok := g.static[instanceID]; ok && id != memberID {
			return nil, kerr.FencedInstanceID
		}
	}
	m := g.members[memberID]
	if m == nil {
		return nil, kerr.UnknownMemberID
	}
	if generation != g.generation {
		return m, kerr.IllegalGeneration
	}
	return m, nil
}

// syncRequest is a decoded SyncGroup.
type syncRequest struct {
	group, memberID, instanceID string
	generation                  int32
	protocolType, protocol      *string
	assignments                 map[string][]byte
}

// sync serves SyncGroup; a follower waits for the leader's assignments.
func (c *coordinator) sync(ctx context.Context, r syncRequest) syncResult {
	fail := func(e *kerr.Error) syncResult { return syncResult{code: e.Code} }
	now := time.Now()
	c.mu.Lock()
	if cg := c.nonEmptyCG(r.group); cg != nil {
		res := c.syncConsumerGroupLocked(cg, r, now)
		c.mu.Unlock()
		return res
	}
	g := c.mu.groups[r.group]
	if g == nil {
		c.mu.Unlock()
		return fail(kerr.UnknownMemberID)
	}
	if g.state == groupDead {
		c.mu.Unlock()
		return fail(kerr.CoordinatorNotAvailable)
	}
	m, kerrc := g.checkMember(r.memberID, r.instanceID, r.generation)
	if kerrc != nil {
		c.mu.Unlock()
		return fail(kerrc)
	}
	if r.protocolType != nil && *r.protocolType != g.protocolType || r.protocol != nil && *r.protocol != g.protocol {
		c.mu.Unlock()
		return fail(kerr.InconsistentGroupProtocol)
	}
	m.deadline = now.Add(m.session)
	if g.synced != nil {
		g.synced[m.id] = true
	}
	result := func(m *groupMember) syncResult {
		return syncResult{protocolType: g.protocolType, protocol: g.protocol, assignment: m.assignment}
	}
	switch g.state {
	case groupEmpty:
		c.mu.Unlock()
		return fail(kerr.UnknownMemberID)
	case groupPreparingRebalance:
		c.mu.Unlock()
		return fail(kerr.RebalanceInProgress)
	case groupStable:
		res := result(m)
		c.mu.Unlock()
		return res
	}
	// CompletingRebalance.
	if m.id != g.leader {
		if m.sync != nil {
			m.sync <- syncResult{code: kerr.RebalanceInProgress.Code}
		}
		ch := make(chan syncResult, 1)
		m.sync = ch
		c.mu.Unlock()
		select {
		case res := <-ch:
			return res
		case <-ctx.Done():
		case <-c.h.closing:
		}
		return fail(kerr.CoordinatorNotAvailable)
	}
	for _, mm := range g.members {
		mm.assignment = r.assignments[mm.id]
	}
	g.state = groupStable
	g.saved = g.snapshot()
	for _, mm := range g.members {
		if mm.sync != nil {
			mm.deadline = now.Add(mm.session)
			mm.sync <- result(mm)
			mm.sync = nil
		}
	}
	res := result(m)
	write := c.writeLockedErr(g)
	gen := g.generation
	c.mu.Unlock()
	// The leader's answer waits for the record: once it has its
	// assignment, a restart brings the group back Stable with it.
	// Followers were answered above; the window is one store write.
	if write != nil {
		if err := write(); errors.Is(err, broker.ErrUnitFenced) {
			// This broker no longer coordinates the group: the new
			// coordinator's record stands, and the leader finds it.
			res.code = kerr.NotCoordinator.Code
		}
	}
	go c.attachSoon(g, gen)
	return res
}

// heartbeat serves Heartbeat.
func (c *coordinator) heartbeat(memberID, instanceID, groupName string, generation int32) *kerr.Error {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if cg := c.nonEmptyCG(groupName); cg != nil {
		return c.heartbeatConsumerGroupLocked(cg, memberID, instanceID, generation, now)
	}
	g := c.mu.groups[groupName]
	if g == nil {
		return kerr.UnknownMemberID
	}
	if g.state == groupDead {
		return kerr.CoordinatorNotAvailable
	}
	m, e := g.checkMember(memberID, instanceID, generation)
	if m != nil {
		m.deadline = now.Add(m.session)
	}
	if e != nil {
		return e
	}
	switch g.state {
	case groupPreparingRebalance:
		return kerr.RebalanceInProgress
	case groupEmpty:
		return kerr.UnknownMemberID
	}
	return nil
}

// leave serves one member of a LeaveGroup.
func (c *coordinator) leave(groupName, memberID, instanceID string) *kerr.Error {
	now := time.Now()
	var write func()
	c.mu.Lock()
	e := func() *kerr.Error {
		if cg := c.nonEmptyCG(groupName); cg != nil {
			return c.leaveConsumerGroupLocked(cg, memberID, instanceID)
		}
		g := c.mu.groups[groupName]
		if g == nil || g.state == groupDead {
			return kerr.UnknownMemberID
		}
		if instanceID != "" {
			id, ok := g.static[instanceID]
			if !ok {
				return kerr.UnknownMemberID
			}
			if memberID != "" && id != memberID {
				return kerr.FencedInstanceID
			}
			memberID = id
		}
		if _, ok := g.pending[memberID]; ok {
			delete(g.pending, memberID)
			write = c.tryCompleteJoin(g, now)
			return nil
		}
		m := g.members[memberID]
		if m == nil {
			return kerr.UnknownMemberID
		}
		c.h.log.Info("kafka: group member left", "group", g.name, "member", m.id)
		write = c.removeMember(g, m, now)
		return nil
	}()
	c.mu.Unlock()
	if write != nil {
		write()
	}
	return e
}

// commitCheck validates an OffsetCommit's group fields (Kafka's rules):
// generation < 0 from a non-member commits to an empty or unknown group
// (which then exists, Empty, so that ListGroups shows it); members commit
// in their generation, also while a rebalance is being prepared.
func (c *coordinator) commitCheck(groupName, memberID, instanceID string, generation int32) *kerr.Error {
	if groupName == "" {
		return kerr.InvalidGroupID
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.mu.groups[groupName]
	if cg := c.mu.cgroups[groupName]; cg != nil && (g == nil || len(g.members) == 0) {
		if e := c.consumerCommitCheck(cg, memberID, generation); e != nil {
			return e
		}
		if g == nil {
			// Keeps the topics the group commits to (addTopics).
			c.mu.groups[groupName] = newGroup(groupName)
		}
		return nil
	}
	if g == nil {
		if generation >= 0 {
			return kerr.IllegalGeneration
		}
		c.mu.groups[groupName] = newGroup(groupName)
		return nil
	}
	switch {
	case g.state == groupDead:
		return kerr.CoordinatorNotAvailable
	case instanceID != "" && g.static[instanceID] != "" && g.static[instanceID] != memberID:
		return kerr.FencedInstanceID
	case generation < 0 && g.state == groupEmpty:
		return nil
	}
	m, e := g.checkMember(memberID, instanceID, generation)
	if e != nil {
		return e
	}
	m.deadline = time.Now().Add(m.session)
	if g.state == groupCompletingRebalance {
		// The new generation's assignments are not out yet.
		return kerr.RebalanceInProgress
	}
	return nil
}

// addTopics records that the group committed to these topics (full names)
// and persists the record if the set grew.
func (c *coordinator) addTopics(groupName string, topics []string) {
	c.mu.Lock()
	g := c.mu.groups[groupName]
	var write func()
	if g != nil && g.state != groupDead {
		grew := false
		for _, t := range topics {
			if !g.topics[t] {
				g.topics[t] = true
				grew = true
			}
		}
		if grew {
			write = c.writeLocked(g)
		}
	}
	c.mu.Unlock()
	if write != nil {
		write()
	}
}

// groupTopics returns the topics g committed to.
func (c *coordinator) groupTopics(groupName string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.mu.groups[groupName]
	if g == nil {
		return nil
	}
	var out []string
	for t := range g.topics {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
