package kafka

// TestConsumerGroupAssignModel drives the KIP-848 assignment state machine
// (group_consumer_assign.go) with random joins, leaves, expiries,
// subscription changes (names and regexes), partition-count changes and
// heartbeats (full ones that acknowledge revocations, keepalives, and
// heartbeats whose response the client loses), with simulated clients that
// believe only what responses told them. After every operation:
//   - ownership is consistent: every partition has at most one owner, which
//     holds it as assigned or revoking, never both;
//   - no partition is believed owned by two clients at once (a client
//     drops a partition when a response leaves it out, and the server only
//     hands it on after the old owner's next full heartbeat stops listing
//     it), so two consumers never read one partition;
//   - the target gives every subscribed partition to exactly one member
//     subscribed to its topic; for uniform, members subscribing to the same
//     topics differ by at most one partition; for range, it equals an
//     independent per-topic range computation.
//
// After the random operations, every member heartbeats until nothing
// changes: the group must be stable with every subscribed partition owned
// by exactly one member (its target owner).
//
// -cg.seed=N replays one seed; -cg.rounds sets the number of random rounds.

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

var (
	cgModelSeed   = flag.Uint64("cg.seed", 0, "TestConsumerGroupAssignModel: replay this seed (0: random seeds)")
	cgModelRounds = flag.Int("cg.rounds", 200, "TestConsumerGroupAssignModel: rounds of random operations")
)

// cgClient is what a simulated client believes it owns.
type cgClient struct {
	told map[cgTP]bool
}

type cgModel struct {
	t       *testing.T
	rng     *rand.Rand
	cg      *consumerGroup
	clients map[string]*cgClient
	parts   map[string]int32 // topic -> partitions that exist
	now     time.Time
	nextID  int
	log     []string
}

var cgModelTopics = []string{"a", "b", "c", "orders", "orders-v2"}
var cgModelRegexes = []string{"orders.*", "[ab]", ".*"}

func (md *cgModel) resolved() map[string]cgTopic {
	out := map[string]cgTopic{}
	st := md.cg.st
	for name, n := range md.parts {
		for _, m := range st.members {
			if m.subscribes(name, md.cg.match) {
				out[name] = cgTopic{name: name, id: [16]byte{byte(len(name)), name[0]}, partitions: n}
				break
			}
		}
	}
	return out
}

func (md *cgModel) randomSubscription(m *cgMember) {
	m.names, m.regex = nil, ""
	if md.rng.IntN(3) == 0 {
		m.regex = cgModelRegexes[md.rng.IntN(len(cgModelRegexes))]
		return
	}
	for _, tp := range cgModelTopics {
		if md.rng.IntN(2) == 0 {
			m.names = append(m.names, tp)
		}
	}
}

// heartbeat runs one heartbeat of member id: full (reporting what the
// client believes it owns) or a keepalive; lost drops the response.
func (md *cgModel) heartbeat(id string, full, lost bool) {
	st := md.cg.st
	m := st.members[id]
	if m == nil || m.epoch == cgEpochStaticLeft {
		return
	}
	var reported map[cgTP]bool
	if full {
		reported = map[cgTP]bool{}
		for p := range md.clients[id].told {
			reported[p] = true
		}
	}
	st.setTopics(md.resolved())
	st.reconcile(m, reported, md.now)
	if lost {
		return
	}
	told := map[cgTP]bool{}
	for p := range m.assigned {
		told[p] = true
	}
	md.clients[id].told = told
}

func (md *cgModel) step() {
	st := md.cg.st
	ids := md.memberIDs()
	pick := func() string { return ids[md.rng.IntN(len(ids))] }
	switch op := md.rng.IntN(10); {
	case op == 0 || len(ids) == 0:
		md.nextID++
		id := fmt.Sprintf("m%d", md.nextID)
		m := newCGMember(id)
		m.rebalance = time.Minute
		md.randomSubscription(m)
		if md.rng.IntN(2) == 0 {
			m.assignor = cgAssignorRange
		} else {
			m.assignor = cgAssignorUniform
		}
		if md.rng.IntN(3) == 0 {
			m.instanceID = "inst-" + id
			st.static[m.instanceID] = id
		}
		st.members[id] = m
		md.clients[id] = &cgClient{told: map[cgTP]bool{}}
		st.topics = md.resolved()
		st.bump()
		md.heartbeat(id, true, false)
		md.log = append(md.log, fmt.Sprintf("join %s %v %q %s", id, m.names, m.regex, m.assignor))
	case op == 4 && md.rng.IntN(2) == 0:
		// Static members: one leaves with -2 (its client stops and
		// forgets), or a new incarnation takes a left one's slot.
		id := pick()
		m := st.members[id]
		switch {
		case m.instanceID == "":
			md.heartbeat(id, true, false)
			md.log = append(md.log, "heartbeat "+id+" full=true lost=false")
		case m.epoch != cgEpochStaticLeft:
			m.epoch = cgEpochStaticLeft
			md.clients[id].told = map[cgTP]bool{}
			md.log = append(md.log, "static leave "+id)
		default:
			md.rejoinStatic(m)
		}
	case op == 1:
		id := pick()
		st.removeMember(id)
		delete(md.clients, id)
		md.log = append(md.log, "leave/expire "+id)
	case op == 2:
		id := pick()
		md.randomSubscription(st.members[id])
		st.bump()
		md.log = append(md.log, fmt.Sprintf("resubscribe %s %v %q", id, st.members[id].names, st.members[id].regex))
	case op == 3:
		tp := cgModelTopics[md.rng.IntN(len(cgModelTopics))]
		md.parts[tp] += int32(md.rng.IntN(3))
		md.log = append(md.log, fmt.Sprintf("partitions %s %d", tp, md.parts[tp]))
	default:
		id := pick()
		full, lost := md.rng.IntN(3) != 0, md.rng.IntN(8) == 0
		md.heartbeat(id, full, lost)
		md.log = append(md.log, fmt.Sprintf("heartbeat %s full=%v lost=%v", id, full, lost))
	}
	md.now = md.now.Add(100 * time.Millisecond)
}

// rejoinStatic brings a left static member back under a new member id.
func (md *cgModel) rejoinStatic(m *cgMember) {
	old := m.id
	md.nextID++
	id := fmt.Sprintf("m%d", md.nextID)
	delete(md.clients, old)
	md.clients[id] = &cgClient{told: map[cgTP]bool{}}
	md.cg.st.replaceStatic(m, id)
	md.heartbeat(id, true, false)
	md.log = append(md.log, "static rejoin "+old+" as "+id)
}

func (md *cgModel) memberIDs() []string {
	var ids []string
	for id := range md.cg.st.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (md *cgModel) fail(format string, args ...any) {
	md.t.Helper()
	tail := md.log
	if len(tail) > 30 {
		tail = tail[len(tail)-30:]
	}
	md.t.Fatalf("%s\nlast operations:\n%s", fmt.Sprintf(format, args...), joinLines(tail))
}

func joinLines(ls []string) string {
	s := ""
	for _, l := range ls {
		s += "  " + l + "\n"
	}
	return s
}

func (md *cgModel) check() {
	md.t.Helper()
	st := md.cg.st
	held := map[cgTP]string{}
	for id, m := range st.members {
		for p := range m.assigned {
			if m.revoking[p] {
				md.fail("%s holds %v as assigned and revoking", id, p)
			}
			if o := held[p]; o != "" {
				md.fail("%v held by %s and %s", p, o, id)
			}
			held[p] = id
		}
		for p := range m.revoking {
			if o := held[p]; o != "" {
				md.fail("%v held by %s and %s", p, o, id)
			}
			held[p] = id
		}
	}
	if len(held) != len(st.owner) {
		md.fail("owner map has %d entries, members hold %d", len(st.owner), len(held))
	}
	for p, id := range held {
		if st.owner[p] != id {
			md.fail("owner[%v] = %q, held by %s", p, st.owner[p], id)
		}
	}
	believed := map[cgTP]string{}
	for id, c := range md.clients {
		for p := range c.told {
			if o := believed[p]; o != "" {
				md.fail("clients %s and %s both believe they own %v", o, id, p)
			}
			believed[p] = id
		}
	}
	md.checkTarget()
}

func (md *cgModel) checkTarget() {
	md.t.Helper()
	st := md.cg.st
	targeted := map[cgTP]string{}
	for id, tgt := range st.target {
		m := st.members[id]
		for p := range tgt {
			if o := targeted[p]; o != "" {
				md.fail("%v targeted at %s and %s", p, o, id)
			}
			targeted[p] = id
			if !m.subscribes(p.topic, md.cg.match) || p.partition >= st.topics[p.topic].partitions {
				md.fail("%v targeted at %s, which does not subscribe to it", p, id)
			}
		}
	}
	for _, m := range st.members {
		for _, p := range st.subscribed(m) {
			if targeted[p] == "" {
				md.fail("%v subscribed by %s but targeted at nobody", p, m.id)
			}
		}
	}
	ids := md.memberIDs()
	subs := map[string][]cgTP{}
	for _, id := range ids {
		subs[id] = st.subscribed(st.members[id])
	}
	if st.assignorName() == cgAssignorRange {
		// An independent range computation.
		for _, topic := range cgModelTopics {
			var ms []string
			for _, id := range ids {
				if st.members[id].subscribes(topic, md.cg.match) {
					ms = append(ms, id)
				}
			}
			// Range orders members by instance id, else member id.
			sort.Slice(ms, func(i, j int) bool { return st.members[ms[i]].sortKey() < st.members[ms[j]].sortKey() })
			n := st.topics[topic].partitions
			if len(ms) == 0 {
				continue
			}
			for p := range n {
				// Member j gets [j*q + min(j, r), ...).
				q, r := n/int32(len(ms)), n%int32(len(ms))
				want := ""
				for j := range int32(len(ms)) {
					lo := j*q + min(j, r)
					hi := lo + q
					if j < r {
						hi++
					}
					if p >= lo && p < hi {
						want = ms[j]
					}
				}
				if got := targeted[cgTP{topic, p}]; got != want {
					md.fail("range: %s-%d targeted at %s, want %s", topic, p, got, want)
				}
			}
		}
		return
	}
	// Uniform: members with identical subscriptions are within one.
	for i, a := range ids {
		for _, b := range ids[i+1:] {
			if fmt.Sprint(subs[a]) == fmt.Sprint(subs[b]) {
				na, nb := len(st.target[a]), len(st.target[b])
				if na > nb+1 || nb > na+1 {
					md.fail("uniform: %s has %d, %s has %d with the same subscription", a, na, b, nb)
				}
			}
		}
	}
}

// settle heartbeats every member until nothing changes, then checks the
// group is stable with every subscribed partition owned by its target.
func (md *cgModel) settle() {
	md.t.Helper()
	st := md.cg.st
	for _, id := range md.memberIDs() {
		if m := st.members[id]; m.epoch == cgEpochStaticLeft {
			md.rejoinStatic(m)
		}
	}
	for round := 0; ; round++ {
		if round > 5 {
			md.fail("not stable after %d rounds of full heartbeats", round)
		}
		for _, id := range md.memberIDs() {
			md.heartbeat(id, true, false)
			md.check()
		}
		if st.stable() {
			break
		}
	}
	for id, tgt := range st.target {
		for p := range tgt {
			if st.owner[p] != id {
				md.fail("stable, but %v owned by %q, targeted at %s", p, st.owner[p], id)
			}
		}
	}
}

func TestConsumerGroupAssignModel(t *testing.T) {
	rounds := *cgModelRounds
	seeds := make([]uint64, 0, rounds)
	if *cgModelSeed != 0 {
		seeds = append(seeds, *cgModelSeed)
	} else {
		for range rounds {
			seeds = append(seeds, rand.Uint64())
		}
	}
	for _, seed := range seeds {
		md := &cgModel{
			t: t, rng: rand.New(rand.NewPCG(seed, seed)), cg: newConsumerGroup("g"),
			clients: map[string]*cgClient{}, parts: map[string]int32{}, now: time.Unix(0, 0),
		}
		for _, tp := range cgModelTopics {
			md.parts[tp] = 1 + int32(md.rng.IntN(6))
		}
		md.log = append(md.log, fmt.Sprintf("seed %d (replay with -cg.seed=%d)", seed, seed))
		for range 150 {
			md.step()
			md.check()
		}
		md.settle()
	}
}
