package kafka

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGroupScript runs testdata/group: a script of classic group protocol
// requests sent by hand over loopback (members named by the script, their
// generated member ids hidden), each followed by what the coordinator
// answered (regenerate with -rewrite, then review the diff). JoinGroup and
// SyncGroup block in the coordinator, so they are sent in the background
// and their answers printed by await.
//
// Commands:
//
//	new                                    fresh server (initial rebalance delay 100 ms), group g
//	join m=NAME [session=MS] [instance=I]  JoinGroup (the MEMBER_ID_REQUIRED round trip first), in the background;
//	                                       protocol "range" with the instance id (else the name) as metadata
//	sync m=NAME [assign=NAME:X,...]        SyncGroup of the member's generation, in the background
//	await m=NAME                           the answer to the member's JoinGroup or SyncGroup
//	heartbeat m=NAME [gen=N]               Heartbeat of the member's generation (or N)
//	leave m=NAME                           LeaveGroup
//	describe                               DescribeGroups: state, protocol, members
//	sleep ms=N
func TestGroupScript(t *testing.T) {
	gs := &groupScript{}
	datadriven.RunTest(t, "testdata/group", func(t *testing.T, d *datadriven.TestData) string {
		return gs.run(t, d)
	})
}

type scriptMember struct {
	name, id, instance string
	session            int32
	gen                int32
	pending            <-chan kmsg.Response
}

type groupScript struct {
	s       *testServer
	c       *rawConn
	members map[string]*scriptMember
	names   map[string]string // member id -> name
}

func (g *groupScript) member(t *testing.T, d *datadriven.TestData) *scriptMember {
	t.Helper()
	var name string
	d.ScanArgs(t, "m", &name)
	m := g.members[name]
	if m == nil {
		m = &scriptMember{name: name, session: 10000}
		g.members[name] = m
	}
	return m
}

func (g *groupScript) nameOf(id string) string {
	if n, ok := g.names[id]; ok {
		return n
	}
	return "?" + id
}

func (g *groupScript) describe() kmsg.DescribeGroupsResponseGroup {
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Version = 5
	req.Groups = []string{"g"}
	return g.c.do(req).(*kmsg.DescribeGroupsResponse).Groups[0]
}

func (g *groupScript) memberIDs() []string {
	var ids []string
	for _, mm := range g.describe().Members {
		ids = append(ids, mm.MemberID)
	}
	return ids
}

func codeName(code int16) string {
	if code == 0 {
		return "ok"
	}
	return kerr.ErrorForCode(code).Error()
}

func (g *groupScript) run(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "new":
		g.s = startServer(t, func(c *Config) { c.GroupInitialRebalanceDelay = 100 * time.Millisecond })
		g.c = dialRaw(t, g.s.addr)
		g.members, g.names = map[string]*scriptMember{}, map[string]string{}
		return "ok"
	case "join":
		m := g.member(t, d)
		if d.HasArg("session") {
			d.ScanArgs(t, "session", &m.session)
		}
		if d.HasArg("instance") {
			d.ScanArgs(t, "instance", &m.instance)
		}
		if m.id == "" && m.instance == "" {
			// A new dynamic member learns its id first (v4+).
			r := g.c.do(joinReq(9, "g", "", "", m.session, m.name)).(*kmsg.JoinGroupResponse)
			if r.ErrorCode != kerr.MemberIDRequired.Code {
				return "first join: " + codeName(r.ErrorCode)
			}
			m.id = r.MemberID
			g.names[m.id] = m.name
		}
		meta := m.name
		if m.instance != "" {
			meta = m.instance
		}
		m.pending = async(t, g.s.addr, joinReq(9, "g", m.id, m.instance, m.session, meta))
		if m.id != "" {
			// The next command may depend on the join having arrived (a
			// heartbeat told to rebalance): wait until it is a member.
			checkFor(t, 5*time.Second, func() error {
				if slices.Contains(g.memberIDs(), m.id) {
					return nil
				}
				return fmt.Errorf("%s not a member yet", m.name)
			})
		}
		return "ok"
	case "sync":
		m := g.member(t, d)
		assign := map[string]string{}
		if d.HasArg("assign") {
			var list string
			d.ScanArgs(t, "assign", &list)
			for _, a := range strings.Split(list, ",") {
				name, x, _ := strings.Cut(a, ":")
				if o := g.members[name]; o != nil {
					assign[o.id] = x
				}
			}
		}
		req := syncReq("g", m.id, m.gen, assign)
		if m.instance != "" {
			req.InstanceID = &m.instance
		}
		m.pending = async(t, g.s.addr, req)
		return "ok"
	case "await":
		m := g.member(t, d)
		if m.pending == nil {
			t.Fatalf("%s: %s has nothing pending", d.Pos, m.name)
		}
		var resp kmsg.Response
		var ok bool
		select {
		case resp, ok = <-m.pending:
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: no answer for %s", d.Pos, m.name)
		}
		m.pending = nil
		if !ok {
			return "connection closed"
		}
		switch r := resp.(type) {
		case *kmsg.JoinGroupResponse:
			if r.ErrorCode != 0 {
				return codeName(r.ErrorCode)
			}
			if m.id == "" {
				m.id = r.MemberID
				g.names[m.id] = m.name
			}
			m.gen = r.Generation
			out := fmt.Sprintf("gen=%d leader=%s", r.Generation, g.nameOf(r.LeaderID))
			if len(r.Members) > 0 {
				var ms []string
				for _, mm := range r.Members {
					ms = append(ms, g.nameOf(mm.MemberID))
				}
				slices.Sort(ms)
				out += " members=[" + strings.Join(ms, " ") + "]"
			}
			return out
		case *kmsg.SyncGroupResponse:
			if r.ErrorCode != 0 {
				return codeName(r.ErrorCode)
			}
			return fmt.Sprintf("assignment=%q", r.MemberAssignment)
		}
		return fmt.Sprintf("unexpected %T", resp)
	case "heartbeat":
		m := g.member(t, d)
		gen := m.gen
		if d.HasArg("gen") {
			d.ScanArgs(t, "gen", &gen)
		}
		return codeName(heartbeat(g.c, "g", m.id, m.instance, gen))
	case "leave":
		m := g.member(t, d)
		req := kmsg.NewPtrLeaveGroupRequest()
		req.Version = 5
		req.Group = "g"
		lm := kmsg.NewLeaveGroupRequestMember()
		lm.MemberID = m.id
		if m.instance != "" {
			lm.InstanceID = &m.instance
		}
		req.Members = append(req.Members, lm)
		r := g.c.do(req).(*kmsg.LeaveGroupResponse)
		if r.ErrorCode != 0 {
			return codeName(r.ErrorCode)
		}
		return codeName(r.Members[0].ErrorCode)
	case "describe":
		dg := g.describe()
		if dg.ErrorCode != 0 {
			return codeName(dg.ErrorCode)
		}
		var ms []string
		for _, mm := range dg.Members {
			ms = append(ms, g.nameOf(mm.MemberID))
		}
		slices.Sort(ms)
		return fmt.Sprintf("state=%s protocol=%s members=[%s]", dg.State, dg.Protocol, strings.Join(ms, " "))
	case "sleep":
		var ms int
		d.ScanArgs(t, "ms", &ms)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return "ok"
	}
	t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	return ""
}
