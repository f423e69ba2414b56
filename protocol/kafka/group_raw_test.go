package kafka

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func joinReq(version int16, group, member, instance string, sessionMs int32, meta string) *kmsg.JoinGroupRequest {
	r := kmsg.NewPtrJoinGroupRequest()
	r.Version = version
	r.Group, r.MemberID, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = group, member, sessionMs, 5000
	r.ProtocolType = "consumer"
	if instance != "" {
		r.InstanceID = &instance
	}
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name, p.Metadata = "range", []byte(meta)
	r.Protocols = append(r.Protocols, p)
	return r
}

func syncReq(group, member string, gen int32, assign map[string]string) *kmsg.SyncGroupRequest {
	r := kmsg.NewPtrSyncGroupRequest()
	r.Version = 5
	r.Group, r.MemberID, r.Generation = group, member, gen
	pt, p := "consumer", "range"
	r.ProtocolType, r.Protocol = &pt, &p
	for m, a := range assign {
		ga := kmsg.NewSyncGroupRequestGroupAssignment()
		ga.MemberID, ga.MemberAssignment = m, []byte(a)
		r.GroupAssignment = append(r.GroupAssignment, ga)
	}
	return r
}

func heartbeat(c *rawConn, group, member, instance string, gen int32) int16 {
	r := kmsg.NewPtrHeartbeatRequest()
	r.Version = 4
	r.Group, r.MemberID, r.Generation = group, member, gen
	if instance != "" {
		r.InstanceID = &instance
	}
	return c.do(r).(*kmsg.HeartbeatResponse).ErrorCode
}

func commitRaw(c *rawConn, group, member string, gen int32, topic string, offset int64) int16 {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version = 8
	r.Group, r.MemberID, r.Generation = group, member, gen
	t := kmsg.NewOffsetCommitRequestTopic()
	t.Topic = topic
	p := kmsg.NewOffsetCommitRequestTopicPartition()
	p.Partition, p.Offset = 0, offset
	t.Partitions = append(t.Partitions, p)
	r.Topics = append(r.Topics, t)
	return c.do(r).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
}

// async runs a request on its own connection (JoinGroup and SyncGroup block).
func async(t *testing.T, addr string, req kmsg.Request) <-chan kmsg.Response {
	ch := make(chan kmsg.Response, 1)
	c := dialRaw(t, addr)
	corr := c.send(req)
	go func() {
		body, err := readFrame(c.nc, 1<<30, nil)
		if err != nil {
			close(ch)
			return
		}
		resp := req.ResponseKind()
		body = body[4:]
		if resp.IsFlexible() {
			body = body[1:]
		}
		if resp.ReadFrom(body) != nil {
			close(ch)
			return
		}
		_ = corr
		ch <- resp
	}()
	return ch
}

func wantCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	var wc int16
	if want != nil {
		wc = want.Code
	}
	if got != wc {
		t.Fatalf("%s: error %v, want %v", what, kerr.ErrorForCode(got), want)
	}
}

func TestGroupFindCoordinator(t *testing.T) {
	s := startServer(t)
	c := dialRaw(t, s.addr)
	h, ps, _ := net.SplitHostPort(s.addr)
	p, _ := strconv.Atoi(ps)
	host, port := h, int32(p)
	for v := int16(0); v <= 3; v++ {
		r := kmsg.NewPtrFindCoordinatorRequest()
		r.Version, r.CoordinatorKey = v, "g"
		resp := c.do(r).(*kmsg.FindCoordinatorResponse)
		if resp.ErrorCode != 0 || resp.Host != host || resp.Port != port || resp.NodeID != 0 {
			t.Fatalf("v%d: %+v", v, resp)
		}
	}
	r := kmsg.NewPtrFindCoordinatorRequest()
	r.Version, r.CoordinatorKeys = 4, []string{"a", "b"}
	resp := c.do(r).(*kmsg.FindCoordinatorResponse)
	if len(resp.Coordinators) != 2 || resp.Coordinators[1].Key != "b" || resp.Coordinators[1].Port != port || resp.Coordinators[0].ErrorCode != 0 {
		t.Fatalf("v4: %+v", resp)
	}
	r.CoordinatorType = 1
	resp = c.do(r).(*kmsg.FindCoordinatorResponse)
	wantCode(t, "transaction coordinator", resp.Coordinators[0].ErrorCode, kerr.CoordinatorNotAvailable)
}

func TestGroupProtocolErrors(t *testing.T) {
	defer func(d time.Duration) { groupMinSessionTimeout = d }(groupMinSessionTimeout)
	groupMinSessionTimeout = 100 * time.Millisecond
	s := startServer(t)
	createTopicRaw(t, dialRaw(t, s.addr), "raw-commit", 1)
	c := dialRaw(t, s.addr)
	const g = "raw"

	// v4+: a new dynamic member first learns its id.
	jr := c.do(joinReq(5, g, "", "", 10000, "m1")).(*kmsg.JoinGroupResponse)
	wantCode(t, "first join", jr.ErrorCode, kerr.MemberIDRequired)
	m1 := jr.MemberID
	if m1 == "" {
		t.Fatal("no member id with MEMBER_ID_REQUIRED")
	}
	jr = c.do(joinReq(5, g, m1, "", 10000, "m1")).(*kmsg.JoinGroupResponse)
	if jr.ErrorCode != 0 || jr.Generation != 1 || jr.LeaderID != m1 || len(jr.Members) != 1 || *jr.Protocol != "range" {
		t.Fatalf("join: %+v", jr)
	}
	wantCode(t, "commit before sync", commitRaw(c, g, m1, 1, "raw-commit", 0), kerr.RebalanceInProgress)
	sr := c.do(syncReq(g, m1, 1, map[string]string{m1: "a1"})).(*kmsg.SyncGroupResponse)
	if sr.ErrorCode != 0 || string(sr.MemberAssignment) != "a1" {
		t.Fatalf("sync: %+v", sr)
	}
	wantCode(t, "heartbeat", heartbeat(c, g, m1, "", 1), nil)
	wantCode(t, "old generation", heartbeat(c, g, m1, "", 0), kerr.IllegalGeneration)
	wantCode(t, "unknown member", heartbeat(c, g, "nobody", "", 1), kerr.UnknownMemberID)
	wantCode(t, "commit old generation", commitRaw(c, g, m1, 0, "raw-commit", 0), kerr.IllegalGeneration)
	wantCode(t, "commit", commitRaw(c, g, m1, 1, "raw-commit", 0), nil)
	wantCode(t, "simple commit to a live group", commitRaw(c, g, "", -1, "raw-commit", 0), kerr.UnknownMemberID)
	bad := joinReq(5, g, "", "", 10000, "x")
	bad.ProtocolType = "connect"
	wantCode(t, "other protocol type", c.do(bad).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InconsistentGroupProtocol)
	wantCode(t, "session timeout too low", c.do(joinReq(5, g, "", "", 10, "x")).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InvalidSessionTimeout)

	// A second member (v3: no MEMBER_ID_REQUIRED) starts a rebalance; the
	// first learns it from its heartbeat and rejoins.
	j2 := async(t, s.addr, joinReq(3, g, "", "", 600, "m2"))
	checkFor(t, 5*time.Second, func() error {
		if code := heartbeat(c, g, m1, "", 1); code != kerr.RebalanceInProgress.Code {
			return fmt.Errorf("heartbeat: %v, want REBALANCE_IN_PROGRESS", kerr.ErrorForCode(code))
		}
		return nil
	})
	jr = c.do(joinReq(5, g, m1, "", 10000, "m1")).(*kmsg.JoinGroupResponse)
	r2 := (<-j2).(*kmsg.JoinGroupResponse)
	if jr.Generation != 2 || r2.Generation != 2 || len(jr.Members) != 2 || len(r2.Members) != 0 || r2.LeaderID != m1 {
		t.Fatalf("rejoin: %+v / %+v", jr, r2)
	}
	m2 := r2.MemberID
	// The follower's SyncGroup waits for the leader's.
	s2 := async(t, s.addr, syncReq(g, m2, 2, nil))
	select {
	case r := <-s2:
		t.Fatalf("follower sync answered before the leader's: %+v", r)
	case <-time.After(100 * time.Millisecond):
	}
	c.do(syncReq(g, m1, 2, map[string]string{m1: "a1", m2: "a2"}))
	if r := (<-s2).(*kmsg.SyncGroupResponse); r.ErrorCode != 0 || string(r.MemberAssignment) != "a2" {
		t.Fatalf("follower sync: %+v", r)
	}
	// Member 2 vanishes: its 600ms session expires, the group rebalances.
	checkFor(t, 5*time.Second, func() error {
		if code := heartbeat(c, g, m1, "", 2); code != kerr.RebalanceInProgress.Code {
			return fmt.Errorf("heartbeat: %v, want REBALANCE_IN_PROGRESS", kerr.ErrorForCode(code))
		}
		return nil
	})
	jr = c.do(joinReq(5, g, m1, "", 10000, "m1")).(*kmsg.JoinGroupResponse)
	if jr.Generation != 3 || len(jr.Members) != 1 {
		t.Fatalf("after expiry: %+v", jr)
	}
	wantCode(t, "expired member", heartbeat(c, g, m2, "", 3), kerr.UnknownMemberID)

	// LeaveGroup v3+ answers per member; the group is then empty.
	lr := kmsg.NewPtrLeaveGroupRequest()
	lr.Version, lr.Group = 5, g
	for _, id := range []string{m1, "nobody"} {
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID = id
		lr.Members = append(lr.Members, m)
	}
	lresp := c.do(lr).(*kmsg.LeaveGroupResponse)
	if lresp.ErrorCode != 0 || len(lresp.Members) != 2 || lresp.Members[0].ErrorCode != 0 || lresp.Members[1].ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("leave: %+v", lresp)
	}
	dr := kmsg.NewPtrDescribeGroupsRequest()
	dr.Version, dr.Groups = 5, []string{g, "never"}
	dresp := c.do(dr).(*kmsg.DescribeGroupsResponse)
	if dresp.Groups[0].State != "Empty" || len(dresp.Groups[0].Members) != 0 || dresp.Groups[1].State != "Dead" {
		t.Fatalf("describe: %+v", dresp)
	}
	wantCode(t, "simple commit to an empty group", commitRaw(c, g, "", -1, "raw-commit", 0), nil)
}

func TestGroupStaticMembership(t *testing.T) {
	s := startServer(t)
	c := dialRaw(t, s.addr)
	const g = "static"
	// Static members skip MEMBER_ID_REQUIRED.
	jr := c.do(joinReq(5, g, "", "i1", 10000, "m")).(*kmsg.JoinGroupResponse)
	if jr.ErrorCode != 0 || jr.Generation != 1 || jr.Members[0].InstanceID == nil || *jr.Members[0].InstanceID != "i1" {
		t.Fatalf("join: %+v", jr)
	}
	old := jr.MemberID
	c.do(syncReq(g, old, 1, map[string]string{old: "a"}))
	// The instance restarts: it gets a new member id in the same
	// generation, without a rebalance, and keeps its assignment.
	jr = c.do(joinReq(5, g, "", "i1", 10000, "m")).(*kmsg.JoinGroupResponse)
	if jr.ErrorCode != 0 || jr.Generation != 1 || jr.MemberID == old {
		t.Fatalf("static rejoin: %+v", jr)
	}
	sr := c.do(syncReq(g, jr.MemberID, 1, nil)).(*kmsg.SyncGroupResponse)
	if sr.ErrorCode != 0 || string(sr.MemberAssignment) != "a" {
		t.Fatalf("static sync: %+v", sr)
	}
	wantCode(t, "fenced old incarnation", heartbeat(c, g, old, "i1", 1), kerr.FencedInstanceID)
	wantCode(t, "new incarnation", heartbeat(c, g, jr.MemberID, "i1", 1), nil)
	wantCode(t, "old incarnation rejoins", c.do(joinReq(5, g, old, "i1", 10000, "m")).(*kmsg.JoinGroupResponse).ErrorCode, kerr.FencedInstanceID)
	// Leaving by instance id alone.
	lr := kmsg.NewPtrLeaveGroupRequest()
	lr.Version, lr.Group = 4, g
	m := kmsg.NewLeaveGroupRequestMember()
	inst := "i1"
	m.InstanceID = &inst
	lr.Members = append(lr.Members, m)
	if r := c.do(lr).(*kmsg.LeaveGroupResponse); r.Members[0].ErrorCode != 0 {
		t.Fatalf("leave: %+v", r)
	}
	checkFor(t, 5*time.Second, func() error {
		lg := kmsg.NewPtrListGroupsRequest()
		lg.Version, lg.StatesFilter = 4, []string{"empty"}
		if r := c.do(lg).(*kmsg.ListGroupsResponse); len(r.Groups) != 1 || r.Groups[0].Group != g {
			return fmt.Errorf("empty groups: %+v", r.Groups)
		}
		return nil
	})
}

func TestGroupInitialRebalanceDelay(t *testing.T) {
	defer func(d time.Duration) { GroupInitialRebalanceDelay = d }(GroupInitialRebalanceDelay)
	GroupInitialRebalanceDelay = 600 * time.Millisecond
	s := startServer(t)
	start := time.Now()
	j1 := async(t, s.addr, joinReq(3, "delay", "", "", 10000, "a"))
	time.Sleep(300 * time.Millisecond)
	// A second member inside the delay joins the same first generation.
	j2 := async(t, s.addr, joinReq(3, "delay", "", "", 10000, "b"))
	r1, r2 := (<-j1).(*kmsg.JoinGroupResponse), (<-j2).(*kmsg.JoinGroupResponse)
	if r1.Generation != 1 || r2.Generation != 1 || len(r1.Members)+len(r2.Members) != 2 {
		t.Fatalf("joins: %+v / %+v", r1, r2)
	}
	if el := time.Since(start); el < 600*time.Millisecond {
		t.Fatalf("first rebalance after %v, before the initial delay", el)
	}
}
