package kafka

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestConsumerGroupScript runs testdata/consumer_group: a script of KIP-848
// requests (ConsumerGroupHeartbeat, ConsumerGroupDescribe, OffsetCommit)
// sent by hand over loopback for group g on topic t, each followed by what
// the coordinator answered (regenerate with -rewrite, then review the
// diff). Members are named by the script and use their name as member id
// (v1 clients generate theirs); heartbeat interval 100 ms, session timeout
// 2 s, rebalance timeout 500 ms.
//
// Commands:
//
//	new [partitions=N]                   fresh server (initial rebalance delay 100 ms), topic t with N partitions (4)
//	hb m=NAME [join|leave|static-leave] [epoch=N] [owned=P,..|owned=none|owned=current]
//	   [instance=I] [id=ID] [assignor=A] [sub=T,..]
//	                                     ConsumerGroupHeartbeat: join sends epoch 0 with the subscription
//	                                     (t, or sub), leave -1, static-leave -2, else the member's epoch (or N);
//	                                     owned lists the partitions it says it owns (current: its last
//	                                     assignment; none: an empty list; absent: a keepalive without the list);
//	                                     id gives another member id (a static member's new incarnation)
//	describe                             ConsumerGroupDescribe: state, epochs, members' epoch, assignment, target
//	commit m=NAME [epoch=N] p=P offset=O OffsetCommit with the member's epoch (or N)
//	cjoin m=NAME [owned=P,..] [rebalance=MS]
//	                                     a classic member's JoinGroup (MEMBER_ID_REQUIRED round trip first),
//	                                     protocol "cooperative-sticky" with consumer metadata (topic t, owned),
//	                                     session timeout 10 s, rebalance timeout 10 s (or MS)
//	csync m=NAME [assign=M:P..;M:P..]    its SyncGroup in its generation (assign: the leader's assignments)
//	cheartbeat m=NAME                    its Heartbeat in its generation
//	cdescribe                            DescribeGroups: state, protocol type, protocol, generation, members
//	sleep ms=N
func TestConsumerGroupScript(t *testing.T) {
	cs := &cgScript{}
	datadriven.RunTest(t, "testdata/consumer_group", func(t *testing.T, d *datadriven.TestData) string {
		return cs.run(t, d)
	})
}

type cgScriptMember struct {
	id, instance string
	epoch        int32 // for a classic member: its generation
	assigned     []int32
}

// classicMeta is consumer protocol metadata (v1, with owned partitions)
// for topic t.
func classicMeta(owned []int32) []byte {
	md := kmsg.NewConsumerMemberMetadata()
	md.Version = 1
	md.Topics = []string{"t"}
	if len(owned) > 0 {
		op := kmsg.NewConsumerMemberMetadataOwnedPartition()
		op.Topic, op.Partitions = "t", owned
		md.OwnedPartitions = append(md.OwnedPartitions, op)
	}
	return md.AppendTo(nil)
}

func classicAssignment(ps []int32) []byte {
	a := kmsg.NewConsumerMemberAssignment()
	a.Version = 1
	if len(ps) > 0 {
		at := kmsg.NewConsumerMemberAssignmentTopic()
		at.Topic, at.Partitions = "t", ps
		a.Topics = append(a.Topics, at)
	}
	return a.AppendTo(nil)
}

type cgScript struct {
	s       *testServer
	c       *rawConn
	topicID [16]byte
	members map[string]*cgScriptMember
	names   map[string]string // member id -> script name
}

func parseParts(s string) []int32 {
	out := []int32{}
	if s == "" || s == "none" {
		return out
	}
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			panic(err)
		}
		out = append(out, int32(n))
	}
	return out
}

func fmtParts(ps []int32) string {
	ps = slices.Clone(ps)
	slices.Sort(ps)
	var out []string
	for _, p := range ps {
		out = append(out, strconv.Itoa(int(p)))
	}
	return "[" + strings.Join(out, " ") + "]"
}

func (g *cgScript) nameOf(id string) string {
	if n, ok := g.names[id]; ok {
		return n
	}
	return "?" + id
}

func (g *cgScript) run(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "new":
		parts := 4
		if d.HasArg("partitions") {
			d.ScanArgs(t, "partitions", &parts)
		}
		lowerCGTimers(t, 100*time.Millisecond, 2*time.Second)
		g.s = startServer(t, func(c *Config) { c.GroupInitialRebalanceDelay = 100 * time.Millisecond })
		g.c = dialRaw(t, g.s.addr)
		g.members, g.names = map[string]*cgScriptMember{}, map[string]string{}
		adm := kadm.NewClient(newKgo(t, g.s.addr))
		ctx := testCtx(t)
		if _, err := adm.CreateTopic(ctx, int32(parts), 1, nil, "t"); err != nil {
			t.Fatal(err)
		}
		td, err := adm.ListTopics(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		g.topicID = td["t"].ID
		return "ok"
	case "hb":
		var name string
		d.ScanArgs(t, "m", &name)
		m := g.members[name]
		if m == nil {
			m = &cgScriptMember{id: name}
			g.members[name] = m
		}
		if d.HasArg("id") {
			d.ScanArgs(t, "id", &m.id)
		}
		if d.HasArg("instance") {
			d.ScanArgs(t, "instance", &m.instance)
		}
		g.names[m.id] = name
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Version = 1
		req.Group, req.MemberID, req.MemberEpoch = "g", m.id, m.epoch
		if m.instance != "" {
			req.InstanceID = &m.instance
		}
		switch {
		case d.HasArg("join"):
			req.MemberEpoch = 0
			req.RebalanceTimeoutMillis = 500
			req.SubscribedTopicNames = []string{"t"}
			if d.HasArg("sub") {
				var sub string
				d.ScanArgs(t, "sub", &sub)
				req.SubscribedTopicNames = strings.Split(sub, ",")
			}
			req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		case d.HasArg("leave"):
			req.MemberEpoch = -1
		case d.HasArg("static-leave"):
			req.MemberEpoch = -2
		}
		if d.HasArg("epoch") {
			d.ScanArgs(t, "epoch", &req.MemberEpoch)
		}
		if d.HasArg("assignor") {
			var a string
			d.ScanArgs(t, "assignor", &a)
			req.ServerAssignor = &a
		}
		if d.HasArg("owned") {
			var owned string
			d.ScanArgs(t, "owned", &owned)
			ps := m.assigned
			if owned != "current" {
				ps = parseParts(owned)
			}
			req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
			if len(ps) > 0 {
				rt := kmsg.NewConsumerGroupHeartbeatRequestTopic()
				rt.TopicID, rt.Partitions = g.topicID, ps
				req.Topics = append(req.Topics, rt)
			}
		}
		resp := g.c.do(req).(*kmsg.ConsumerGroupHeartbeatResponse)
		if resp.ErrorCode != 0 {
			return codeName(resp.ErrorCode)
		}
		m.epoch = resp.MemberEpoch
		out := fmt.Sprintf("epoch=%d", resp.MemberEpoch)
		if resp.Assignment != nil {
			m.assigned = []int32{}
			for _, at := range resp.Assignment.Topics {
				if at.TopicID == g.topicID {
					m.assigned = append(m.assigned, at.Partitions...)
				}
			}
			out += " assigned=" + fmtParts(m.assigned)
		}
		return out
	case "describe":
		req := kmsg.NewPtrConsumerGroupDescribeRequest()
		req.Version = 1
		req.Groups = []string{"g"}
		dg := g.c.do(req).(*kmsg.ConsumerGroupDescribeResponse).Groups[0]
		if dg.ErrorCode != 0 {
			return codeName(dg.ErrorCode)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "state=%s epoch=%d assignment-epoch=%d assignor=%s\n", dg.State, dg.Epoch, dg.AssignmentEpoch, dg.AssignorName)
		slices.SortFunc(dg.Members, func(a, b kmsg.ConsumerGroupDescribeResponseGroupMember) int {
			return strings.Compare(g.nameOf(a.MemberID), g.nameOf(b.MemberID))
		})
		for _, mm := range dg.Members {
			parts := func(a kmsg.Assignment) []int32 {
				var ps []int32
				for _, tp := range a.TopicPartitions {
					ps = append(ps, tp.Partitions...)
				}
				return ps
			}
			inst := ""
			if mm.InstanceID != nil {
				inst = " instance=" + *mm.InstanceID
			}
			if mm.MemberType == 0 {
				inst += " classic"
			}
			fmt.Fprintf(&b, "%s: epoch=%d assigned=%s target=%s%s\n", g.nameOf(mm.MemberID), mm.MemberEpoch,
				fmtParts(parts(mm.Assignment)), fmtParts(parts(mm.TargetAssignment)), inst)
		}
		return b.String()
	case "commit":
		var name string
		var p int32
		var off int64
		d.ScanArgs(t, "m", &name)
		d.ScanArgs(t, "p", &p)
		d.ScanArgs(t, "offset", &off)
		m := g.members[name]
		if m == nil {
			m = &cgScriptMember{id: name}
		}
		epoch := m.epoch
		if d.HasArg("epoch") {
			d.ScanArgs(t, "epoch", &epoch)
		}
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version = 8
		req.Group, req.MemberID, req.Generation = "g", m.id, epoch
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p, off
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return codeName(g.c.do(req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode)
	case "cjoin":
		var name string
		d.ScanArgs(t, "m", &name)
		m := g.members[name]
		if m == nil {
			m = &cgScriptMember{}
			g.members[name] = m
		}
		var owned []int32
		if d.HasArg("owned") {
			var o string
			d.ScanArgs(t, "owned", &o)
			owned = parseParts(o)
		}
		rebalance := int32(10000)
		if d.HasArg("rebalance") {
			d.ScanArgs(t, "rebalance", &rebalance)
		}
		join := func(id string) *kmsg.JoinGroupResponse {
			req := kmsg.NewPtrJoinGroupRequest()
			req.Version = 9
			req.Group, req.MemberID, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = "g", id, 10000, rebalance
			req.ProtocolType = "consumer"
			pr := kmsg.NewJoinGroupRequestProtocol()
			pr.Name, pr.Metadata = "cooperative-sticky", classicMeta(owned)
			req.Protocols = append(req.Protocols, pr)
			return g.c.do(req).(*kmsg.JoinGroupResponse)
		}
		if m.id == "" {
			r := join("")
			if r.ErrorCode != kerr.MemberIDRequired.Code {
				return "first join: " + codeName(r.ErrorCode)
			}
			m.id = r.MemberID
			g.names[m.id] = name
		}
		r := join(m.id)
		if r.ErrorCode != 0 {
			return codeName(r.ErrorCode)
		}
		m.epoch = r.Generation
		leader := "none"
		if r.LeaderID != "" {
			leader = g.nameOf(r.LeaderID)
		}
		proto := ""
		if r.Protocol != nil {
			proto = *r.Protocol
		}
		return fmt.Sprintf("gen=%d leader=%s protocol=%s members=%d", r.Generation, leader, proto, len(r.Members))
	case "csync":
		var name string
		d.ScanArgs(t, "m", &name)
		m := g.members[name]
		req := kmsg.NewPtrSyncGroupRequest()
		req.Version = 5
		req.Group, req.MemberID, req.Generation = "g", m.id, m.epoch
		pt, pn := "consumer", "cooperative-sticky"
		req.ProtocolType, req.Protocol = &pt, &pn
		if d.HasArg("assign") {
			var list string
			d.ScanArgs(t, "assign", &list)
			for _, a := range strings.Split(list, ";") {
				who, ps, _ := strings.Cut(a, ":")
				ga := kmsg.NewSyncGroupRequestGroupAssignment()
				ga.MemberID, ga.MemberAssignment = g.members[who].id, classicAssignment(parseParts(ps))
				req.GroupAssignment = append(req.GroupAssignment, ga)
			}
		}
		r := g.c.do(req).(*kmsg.SyncGroupResponse)
		if r.ErrorCode != 0 {
			return codeName(r.ErrorCode)
		}
		var a kmsg.ConsumerMemberAssignment
		if err := a.ReadFrom(r.MemberAssignment); err != nil {
			return "undecodable assignment: " + err.Error()
		}
		m.assigned = []int32{}
		for _, at := range a.Topics {
			m.assigned = append(m.assigned, at.Partitions...)
		}
		return "assigned=" + fmtParts(m.assigned)
	case "cheartbeat":
		var name string
		d.ScanArgs(t, "m", &name)
		m := g.members[name]
		return codeName(heartbeat(g.c, "g", m.id, "", m.epoch))
	case "cdescribe":
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Version = 5
		req.Groups = []string{"g"}
		dg := g.c.do(req).(*kmsg.DescribeGroupsResponse).Groups[0]
		if dg.ErrorCode != 0 {
			return codeName(dg.ErrorCode)
		}
		var ms []string
		for _, mm := range dg.Members {
			ms = append(ms, g.nameOf(mm.MemberID))
		}
		slices.Sort(ms)
		return fmt.Sprintf("state=%s type=%s protocol=%s members=[%s]", dg.State, dg.ProtocolType, dg.Protocol, strings.Join(ms, " "))
	case "sleep":
		var ms int
		d.ScanArgs(t, "ms", &ms)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return "ok"
	}
	t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	return ""
}
