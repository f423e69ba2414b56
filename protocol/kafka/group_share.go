package kafka

// Share groups (KIP-932): Kafka queues on Pulsar Shared subscriptions.
//
// A share group named G consuming topic T is the durable subscription G
// on each partition of T, dispatched Shared: a Kafka share member's
// session on a partition is a broker.ShareConsumer on that subscription's
// dispatcher (broker/share_state.go), beside any Pulsar Shared consumers
// of G, so both protocols divide the messages, an ack on either side is
// the same cursor ack, and a release, nack or lock timeout on either side
// redelivers to either. The share-partition start offset is the cursor's
// first unacknowledged message (Cursor.NextIndex).
//
// Membership: ShareGroupHeartbeat (76) joins (epoch 0), heartbeats and
// leaves (-1). Every member is assigned every partition of the topics it
// subscribes to (records, not partitions, are what share members divide).
// Members expire after the session timeout (45 s, as Kafka's
// group.share.session.timeout.ms) and are told to heartbeat every 5 s.
// Membership is in memory only: after a restart members rejoin
// (UNKNOWN_MEMBER_ID); the share state is the cursors and survives.
//
// Share sessions (ShareFetch 78 / ShareAcknowledge 79) belong to a member
// and the connection that opened them (epoch 0); epoch -1 or the
// connection closing ends the session, releasing what it held acquired.
//
// Group configs (GROUP config resources, DescribeConfigs and
// IncrementalAlterConfigs): share.auto.offset.reset (latest),
// share.record.lock.duration.ms (30000), share.delivery.count.limit (5),
// share.partition.max.record.locks (2000); stored through the broker's
// StateStore (kind kafka-share-config/<tenant>/<ns>). They apply to
// sessions opened after a change.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

const (
	shareHeartbeatInterval = 5 * time.Second
	shareSessionTimeout    = 45 * time.Second
	shareConfigKind        = "kafka-share-config"
	shareGroupType         = "share"
)

// shareConfigDefs are the group configs of a share group with their
// defaults (Kafka's group.share.* broker defaults) and bounds.
var shareConfigDefs = []struct {
	name, def string
	min, max  int64 // integer configs; 0,0: not an integer
}{
	{"share.auto.offset.reset", "latest", 0, 0},
	{"share.delivery.count.limit", strconv.Itoa(broker.DefaultShareDeliveryLimit), 2, 10},
	{"share.partition.max.record.locks", strconv.Itoa(broker.DefaultShareMaxLocks), 100, 10000},
	{"share.record.lock.duration.ms", strconv.Itoa(int(broker.DefaultShareLockDuration / time.Millisecond)), 1000, 3600000},
}

// validShareConfig checks one share group config value.
func validShareConfig(name, value string) error {
	for _, d := range shareConfigDefs {
		if d.name != name {
			continue
		}
		if d.max == 0 {
			if value != "latest" && value != "earliest" {
				return fmt.Errorf("%w: %s must be latest or earliest", broker.ErrInvalidConfig, name)
			}
			return nil
		}
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n < d.min || n > d.max {
			return fmt.Errorf("%w: %s must be an integer in [%d, %d]", broker.ErrInvalidConfig, name, d.min, d.max)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown group config %s", broker.ErrInvalidConfig, name)
}

type shareCoordinator struct {
	h     *Handler
	key   coordinatorKey
	store broker.StateStore
	kind  string

	mu struct {
		sync.Mutex
		groups   map[string]*shareGroup
		sessions map[shareSessionKey]*shareSession
	}
}

type shareGroup struct {
	name    string
	epoch   int32
	members map[string]*shareMember
	// configs are the group's set configs (nil: not loaded yet).
	configs map[string]string
	// known: created by a heartbeat or an offsets alteration (listed
	// even without members while the coordinator lives).
	known bool
}

type shareMember struct {
	id, clientID, host string
	rack               *string
	epoch              int32
	topics             []string
	deadline           time.Time
	// assigned is the last assignment sent (Kafka topic -> partitions).
	assigned map[string][]int32
	ids      map[string][16]byte
}

type shareSessionKey struct{ group, member string }

type sharePartKey struct {
	id        [16]byte
	partition int32
}

// shareSession is one member's share session. key and conn are fixed;
// epoch is guarded by shareCoordinator.mu; closed and parts by mu, which
// a request holds while it serves the session (lock).
type shareSession struct {
	key   shareSessionKey
	conn  *conn
	epoch int32

	mu     sync.Mutex
	closed bool
	parts  map[sharePartKey]*sharePart
}

type sharePart struct {
	topic *topicInfo
	sc    *broker.ShareConsumer
	err   error // attaching failed: answered on each fetch
}

var shareCoordinators sync.Map // coordinatorKey -> *shareCoordinator

// shareCoord returns the share coordinator of the request's namespace, if
// the request may use groups there.
func (h *Handler) shareCoord(ctx context.Context) (*shareCoordinator, error) {
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
	if v, ok := shareCoordinators.Load(key); ok {
		return v.(*shareCoordinator), nil
	}
	sc := &shareCoordinator{h: h, key: key, kind: shareConfigKind + "/" + key.namespace}
	sc.store, _ = h.svc.(broker.StateStore)
	sc.mu.groups = map[string]*shareGroup{}
	sc.mu.sessions = map[shareSessionKey]*shareSession{}
	v, loaded := shareCoordinators.LoadOrStore(key, sc)
	if !loaded {
		go sc.run()
	}
	return v.(*shareCoordinator), nil
}

func (s *shareCoordinator) run() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.h.closing:
			s.closeAll()
			shareCoordinators.Delete(s.key)
			return
		case now := <-t.C:
			s.expire(now)
		}
	}
}

// expire removes members whose session timed out, with their sessions.
func (s *shareCoordinator) expire(now time.Time) {
	var closing []*shareSession
	s.mu.Lock()
	for _, g := range s.mu.groups {
		for id, m := range g.members {
			if now.After(m.deadline) {
				delete(g.members, id)
				g.epoch++
				if ss := s.mu.sessions[shareSessionKey{g.name, id}]; ss != nil {
					delete(s.mu.sessions, ss.key)
					closing = append(closing, ss)
				}
			}
		}
	}
	s.mu.Unlock()
	for _, ss := range closing {
		ss.close()
	}
}

func (s *shareCoordinator) closeAll() {
	s.mu.Lock()
	all := s.mu.sessions
	s.mu.sessions = map[shareSessionKey]*shareSession{}
	s.mu.Unlock()
	for _, ss := range all {
		ss.close()
	}
}

// close releases everything the session holds, once any request serving
// it is done.
func (ss *shareSession) close() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closeLocked()
}

// closeLocked is close for a request holding the session's lock.
func (ss *shareSession) closeLocked() {
	ss.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for k, p := range ss.parts {
		if p.sc != nil {
			p.sc.Close(ctx)
		}
		delete(ss.parts, k)
	}
}

// releaseConnShareSessions closes the share sessions opened on c (the
// connection closed).
func releaseConnShareSessions(c *conn) {
	shareCoordinators.Range(func(_, v any) bool {
		s := v.(*shareCoordinator)
		if s.h != c.h {
			return true
		}
		var closing []*shareSession
		s.mu.Lock()
		for k, ss := range s.mu.sessions {
			if ss.conn == c {
				delete(s.mu.sessions, k)
				closing = append(closing, ss)
			}
		}
		s.mu.Unlock()
		for _, ss := range closing {
			ss.close()
		}
		return true
	})
}

// groupLocked returns group name, creating it.
func (s *shareCoordinator) groupLocked(name string) *shareGroup {
	g := s.mu.groups[name]
	if g == nil {
		g = &shareGroup{name: name, members: map[string]*shareMember{}}
		s.mu.groups[name] = g
	}
	return g
}

// isShareGroup reports whether name is a share group the coordinator
// knows, and whether it has members.
func (s *shareCoordinator) isShareGroup(name string) (known, members bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.mu.groups[name]
	if g == nil {
		return false, false
	}
	return g.known || len(g.members) > 0, len(g.members) > 0
}

// forget drops a share group without members (DeleteGroups), with its
// configs. It fails with NON_EMPTY_GROUP while it has members.
func (s *shareCoordinator) forget(ctx context.Context, name string) error {
	s.mu.Lock()
	g := s.mu.groups[name]
	if g != nil && len(g.members) > 0 {
		s.mu.Unlock()
		return kerr.NonEmptyGroup
	}
	delete(s.mu.groups, name)
	s.mu.Unlock()
	if s.store != nil {
		return s.store.DeleteState(ctx, s.kind, name)
	}
	return nil
}

// views lists the share groups for ListGroups.
func (s *shareCoordinator) views() []groupView {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []groupView
	for _, g := range s.mu.groups {
		if !g.known && len(g.members) == 0 {
			continue
		}
		out = append(out, groupView{name: g.name, state: g.state(), protocolType: shareGroupType, typ: shareGroupType})
	}
	return out
}

func (g *shareGroup) state() string {
	if len(g.members) == 0 {
		return "Empty"
	}
	return "Stable"
}

// configs returns the group's set configs (loading them once).
func (s *shareCoordinator) configs(ctx context.Context, name string) (map[string]string, error) {
	s.mu.Lock()
	if g := s.mu.groups[name]; g != nil && g.configs != nil {
		out := make(map[string]string, len(g.configs))
		for k, v := range g.configs {
			out[k] = v
		}
		s.mu.Unlock()
		return out, nil
	}
	s.mu.Unlock()
	cfg := map[string]string{}
	if s.store != nil {
		b, err := s.store.GetState(ctx, s.kind, name)
		switch {
		case errors.Is(err, broker.ErrStateNotFound):
		case err != nil:
			return nil, err
		default:
			if err := json.Unmarshal(b, &cfg); err != nil {
				return nil, fmt.Errorf("kafka: share group %s configs: %w", name, err)
			}
		}
	}
	s.mu.Lock()
	g := s.groupLocked(name)
	if g.configs == nil {
		g.configs = cfg
	}
	s.mu.Unlock()
	return cfg, nil
}

// setConfigs replaces the group's set configs and persists them.
func (s *shareCoordinator) setConfigs(ctx context.Context, name string, cfg map[string]string) error {
	if s.store != nil {
		b, _ := json.Marshal(cfg)
		if err := s.store.PutState(ctx, s.kind, name, b); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.groupLocked(name).configs = cfg
	s.mu.Unlock()
	return nil
}

// effective returns config name's value for group (set or default).
func effectiveShareConfig(cfg map[string]string, name string) string {
	if v, ok := cfg[name]; ok {
		return v
	}
	for _, d := range shareConfigDefs {
		if d.name == name {
			return d.def
		}
	}
	return ""
}

func shareConfigInt(cfg map[string]string, name string) int {
	n, _ := strconv.Atoi(effectiveShareConfig(cfg, name))
	return n
}

// shareOptions builds a ShareConsumer's options from the group configs.
func shareOptions(cfg map[string]string, member string, partition int32) broker.ShareOptions {
	return broker.ShareOptions{
		Name:           member,
		LockDuration:   time.Duration(shareConfigInt(cfg, "share.record.lock.duration.ms")) * time.Millisecond,
		DeliveryLimit:  shareConfigInt(cfg, "share.delivery.count.limit"),
		MaxLocks:       shareConfigInt(cfg, "share.partition.max.record.locks"),
		PartitionIndex: int(partition),
	}
}

// heartbeat serves ShareGroupHeartbeat's membership part. It returns the
// member's epoch and, when it changed, its new assignment.
func (s *shareCoordinator) heartbeat(ctx context.Context, c *conn, group, member string, epoch int32, rack *string, topics []string) (int32, map[string][]int32, map[string][16]byte, error) {
	if group == "" {
		return 0, nil, nil, kerr.InvalidGroupID
	}
	if member == "" {
		return 0, nil, nil, fmt.Errorf("%w: member id required", kerr.InvalidRequest)
	}
	now := time.Now()
	s.mu.Lock()
	g := s.groupLocked(group)
	m := g.members[member]
	switch {
	case epoch == -1:
		if m != nil {
			delete(g.members, member)
			g.epoch++
		}
		ss := s.mu.sessions[shareSessionKey{group, member}]
		delete(s.mu.sessions, shareSessionKey{group, member})
		s.mu.Unlock()
		if ss != nil {
			ss.close()
		}
		return -1, nil, nil, nil
	case epoch == 0:
		if topics == nil && m == nil {
			s.mu.Unlock()
			return 0, nil, nil, fmt.Errorf("%w: subscribed topic names required to join", kerr.InvalidRequest)
		}
		if m == nil {
			m = &shareMember{id: member}
			g.members[member] = m
			g.epoch++
		}
		m.assigned = nil // send the assignment again
	case m == nil:
		s.mu.Unlock()
		return 0, nil, nil, kerr.UnknownMemberID
	case epoch != m.epoch && epoch != m.epoch-1:
		s.mu.Unlock()
		return 0, nil, nil, kerr.FencedMemberEpoch
	}
	g.known = true
	m.clientID, m.host, m.rack, m.deadline = clientIDFrom(ctx), clientHost(c), rack, now.Add(shareSessionTimeout)
	if topics != nil && !sameStringSet(topics, m.topics) {
		m.topics = append([]string(nil), topics...)
		g.epoch++
	}
	subscribed := append([]string(nil), m.topics...)
	s.mu.Unlock()

	// Every partition of every subscribed topic that exists.
	want := map[string][]int32{}
	ids := map[string][16]byte{}
	for _, name := range subscribed {
		t, err := s.h.lookupTopic(ctx, name, auth.NeedConsume, false)
		if err != nil {
			continue
		}
		id, err := s.h.topicID(ctx, t)
		if err != nil {
			continue
		}
		ps := make([]int32, t.numPartitions())
		for i := range ps {
			ps[i] = int32(i)
		}
		want[name], ids[name] = ps, id
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if g.members[member] != m {
		return 0, nil, nil, kerr.UnknownMemberID
	}
	if m.assigned != nil && equalAssignment(m.assigned, want) {
		return m.epoch, nil, nil, nil
	}
	if !equalAssignment(m.assigned, want) {
		g.epoch++
	}
	m.assigned, m.ids = want, ids
	m.epoch = g.epoch
	return m.epoch, want, ids, nil
}

func sameStringSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(x)
	sort.Strings(y)
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}

func equalAssignment(a, b map[string][]int32) bool {
	if a == nil || len(a) != len(b) {
		return a == nil && b == nil
	}
	for t, ps := range a {
		qs, ok := b[t]
		if !ok || len(ps) != len(qs) {
			return false
		}
		for i := range ps {
			if ps[i] != qs[i] {
				return false
			}
		}
	}
	return true
}

// member returns whether member belongs to group.
func (s *shareCoordinator) isMember(group, member string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.mu.groups[group]
	return g != nil && g.members[member] != nil
}

// errShareSessionNotFound and errInvalidShareSessionEpoch are the share
// session errors of ShareFetch and ShareAcknowledge.
var (
	errShareSessionNotFound     = kerr.ShareSessionNotFound
	errInvalidShareSessionEpoch = kerr.InvalidShareSessionEpoch
)

// session finds or opens the member's share session for a request with
// the given epoch, and moves its epoch on. Epoch 0 replaces any session
// the member had; -1 returns the session removed (the caller closes it
// after applying the request's acknowledgements).
func (s *shareCoordinator) session(c *conn, group, member string, epoch int32) (*shareSession, error) {
	key := shareSessionKey{group, member}
	s.mu.Lock()
	g := s.mu.groups[group]
	if g == nil || g.members[member] == nil {
		s.mu.Unlock()
		return nil, kerr.UnknownMemberID
	}
	ss := s.mu.sessions[key]
	switch {
	case epoch == 0:
		old := ss
		ss = &shareSession{key: key, conn: c, epoch: 1, parts: map[sharePartKey]*sharePart{}}
		s.mu.sessions[key] = ss
		s.mu.Unlock()
		if old != nil {
			old.close()
		}
		return ss, nil
	case ss == nil:
		s.mu.Unlock()
		return nil, errShareSessionNotFound
	case epoch == -1:
		delete(s.mu.sessions, key)
		s.mu.Unlock()
		return ss, nil
	case epoch != ss.epoch:
		s.mu.Unlock()
		return nil, errInvalidShareSessionEpoch
	}
	ss.epoch++
	if ss.epoch < 0 {
		ss.epoch = 1
	}
	s.mu.Unlock()
	return ss, nil
}

// lock serialises the requests on one session (a client sends one
// ShareFetch or ShareAcknowledge per session at a time; this makes a
// misbehaving one harmless) and the session's closing. It returns nil,
// unlocked, if the session was closed meanwhile.
func (ss *shareSession) lock() func() {
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return nil
	}
	return ss.mu.Unlock
}

// part returns the session's partition (id, partition), attaching its
// share consumer on first use.
func (s *shareCoordinator) part(ctx context.Context, ss *shareSession, id [16]byte, partition int32) *sharePart {
	k := sharePartKey{id, partition}
	if p := ss.parts[k]; p != nil && p.sc != nil {
		return p
	}
	p := &sharePart{}
	ss.parts[k] = p
	t, err := s.h.topicByID(ctx, id)
	if err != nil {
		p.err = err
		return p
	}
	if err := s.h.checkTopic(ctx, t.md.Name, auth.NeedConsume); err != nil {
		p.err = err
		return p
	}
	p.topic = t
	pn, ok := t.partition(partition)
	if !ok {
		p.err = errUnknownPartition(t.kafka, partition)
		return p
	}
	cfg, err := s.configs(ctx, ss.key.group)
	if err != nil {
		p.err = err
		return p
	}
	part, err := s.h.svc.OpenPartition(ctx, pn, false)
	if err != nil {
		p.err = err
		return p
	}
	initial := broker.InitialLatest
	if effectiveShareConfig(cfg, "share.auto.offset.reset") == "earliest" {
		initial = broker.InitialEarliest
	}
	sub, err := part.Subscription(ctx, ss.key.group, true, initial)
	if err != nil {
		p.err = err
		return p
	}
	opts := shareOptions(cfg, ss.key.member, partition)
	opts.Inspect = kafkaInspect
	sc, err := sub.AttachShare(ctx, opts)
	if err != nil {
		p.err = err
		return p
	}
	p.sc = sc
	return p
}

// kafkaInspect lets the dispatcher deliver every entry to a share member
// (conversion happens on fetch; a corrupt entry becomes an empty batch).
func kafkaInspect(*broker.Entry) ([]byte, bool) { return nil, true }

// forgetPart closes the session's share consumer on a partition.
func (ss *shareSession) forgetPart(ctx context.Context, id [16]byte, partition int32) {
	k := sharePartKey{id, partition}
	if p := ss.parts[k]; p != nil {
		if p.sc != nil {
			p.sc.Close(ctx)
		}
		delete(ss.parts, k)
	}
}

// acknowledge applies one partition's acknowledgement batches; the error
// is the partition's acknowledge error.
func acknowledgeShare(ctx context.Context, p *sharePart, batches []shareAckBatch) error {
	if p.err != nil {
		return p.err
	}
	if p.sc == nil {
		// Detached (its partition closed): what it held was released.
		return fmt.Errorf("%w: partition reattaching", broker.ErrInvalidRecordState)
	}
	var first error
	for _, b := range batches {
		types := make([]broker.AckType, len(b.types))
		for i, t := range b.types {
			types[i] = broker.AckType(t)
		}
		if err := p.sc.Acknowledge(ctx, b.first, b.last, types); err != nil && first == nil {
			first = err
		}
	}
	return first
}

type shareAckBatch struct {
	first, last int64
	types       []int8
}

// describeMembers returns a copy of group's members for ShareGroupDescribe.
func (s *shareCoordinator) describe(name string) (g shareGroup, members []shareMember, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sg := s.mu.groups[name]
	if sg == nil || (!sg.known && len(sg.members) == 0) {
		return shareGroup{}, nil, false
	}
	for _, m := range sg.members {
		members = append(members, *m)
	}
	sort.Slice(members, func(i, j int) bool { return members[i].id < members[j].id })
	return shareGroup{name: sg.name, epoch: sg.epoch, members: nil}, members, true
}

// markKnown records that group is a share group (AlterShareGroupOffsets).
func (s *shareCoordinator) markKnown(name string) {
	s.mu.Lock()
	s.groupLocked(name).known = true
	s.mu.Unlock()
}

// hasMembers reports whether the share group has members.
func (s *shareCoordinator) hasMembers(name string) bool {
	_, m := s.isShareGroup(name)
	return m
}

// withShareGroups adds the share groups to a ListGroups listing; a share
// group's subscriptions are not listed again as a Pulsar-made group.
func withShareGroups(ctx context.Context, h *Handler, all []groupView) []groupView {
	s, err := h.shareCoord(ctx)
	if err != nil {
		return all
	}
	share := s.views()
	if len(share) == 0 {
		return all
	}
	names := map[string]bool{}
	for _, v := range share {
		names[v.name] = true
	}
	out := all[:0]
	for _, v := range all {
		if !names[v.name] {
			out = append(out, v)
		}
	}
	return append(out, share...)
}

// deleteShareOrGroup serves DeleteGroups for one name: a share group with
// members is NON_EMPTY_GROUP; otherwise it is forgotten (with its
// configs) and its subscriptions deleted like any group's.
func (h *Handler) deleteShareOrGroup(ctx context.Context, co *coordinator, name string) error {
	s, err := h.shareCoord(ctx)
	if err != nil {
		return h.deleteGroup(ctx, co, name)
	}
	known, members := s.isShareGroup(name)
	if members {
		return kerr.NonEmptyGroup
	}
	if known {
		if err := s.forget(ctx, name); err != nil {
			return err
		}
	}
	err = h.deleteGroup(ctx, co, name)
	if known && errors.Is(err, kerr.GroupIDNotFound) {
		return nil // a share group without share state yet
	}
	return err
}

// describeShareGroupConfigs answers DescribeConfigs for a GROUP resource:
// the share group configs, set ones marked (topicLevel) as group configs.
func (h *Handler) describeShareGroupConfigs(ctx context.Context, group string, names []string) ([]describedConfig, error) {
	s, err := h.shareCoord(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := s.configs(ctx, group)
	if err != nil {
		return nil, err
	}
	var out []describedConfig
	for _, d := range shareConfigDefs {
		if len(names) > 0 && !containsString(names, d.name) {
			continue
		}
		v, set := cfg[d.name]
		if !set {
			v = d.def
		}
		typ := kmsg.ConfigTypeInt
		if d.max == 0 {
			typ = kmsg.ConfigTypeString
		}
		out = append(out, describedConfig{name: d.name, value: v, typ: typ, topicLevel: set})
	}
	return out, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// alterShareGroupConfigs applies IncrementalAlterConfigs SET and DELETE
// operations to a share group's configs.
func (h *Handler) alterShareGroupConfigs(ctx context.Context, group string, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig, validateOnly bool) error {
	if group == "" {
		return kerr.InvalidGroupID
	}
	s, err := h.shareCoord(ctx)
	if err != nil {
		return err
	}
	cfg, err := s.configs(ctx, group)
	if err != nil {
		return err
	}
	for _, op := range ops {
		switch op.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			if op.Value == nil {
				return fmt.Errorf("%w: SET %s without a value", broker.ErrInvalidConfig, op.Name)
			}
			if err := validShareConfig(op.Name, *op.Value); err != nil {
				return err
			}
			cfg[op.Name] = *op.Value
		case kmsg.IncrementalAlterConfigOpDelete:
			if err := validShareConfig(op.Name, effectiveShareConfig(nil, op.Name)); err != nil {
				return err
			}
			delete(cfg, op.Name)
		default:
			return fmt.Errorf("%w: operation %d on %s: no list configs are alterable", broker.ErrInvalidConfig, op.Op, op.Name)
		}
	}
	if validateOnly {
		return nil
	}
	return s.setConfigs(ctx, group, cfg)
}

// hasLiveMembers reports whether the classic or consumer group name has
// members: a name is one kind of group at a time, as in Kafka, and a
// share member may not join a group name in use by another protocol (an
// empty group, one that only holds commits, is fine).
func (c *coordinator) hasLiveMembers(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.mu.groups[name]; g != nil && len(g.members) > 0 {
		return true
	}
	cg := c.mu.cgroups[name]
	return cg != nil && len(cg.st.members) > 0
}

// shareGroupHasMembers reports whether name is a share group with members
// (JoinGroup is then INCONSISTENT_GROUP_PROTOCOL and a KIP-848 join
// GROUP_ID_NOT_FOUND, as Kafka answers for a group of another type).
func (h *Handler) shareGroupHasMembers(ctx context.Context, name string) bool {
	v, ok := shareCoordinators.Load(coordinatorKeyOf(ctx, h))
	return ok && v.(*shareCoordinator).hasMembers(name)
}

func coordinatorKeyOf(ctx context.Context, h *Handler) coordinatorKey {
	tenant, ns := h.namespaceOf(ctx)
	return coordinatorKey{h: h, namespace: tenant + "/" + ns}
}
