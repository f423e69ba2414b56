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
	if co := resp.Coordinators[0]; co.ErrorCode != 0 || co.Port != port || co.Host != host {
		t.Fatalf("transaction coordinator: %+v", co)
	}
	r.CoordinatorKeys = []string{""}
	resp = c.do(r).(*kmsg.FindCoordinatorResponse)
	wantCode(t, "empty transactional id", resp.Coordinators[0].ErrorCode, kerr.InvalidRequest)
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
	s := startServer(t, func(c *Config) { c.GroupInitialRebalanceDelay = 600 * time.Millisecond })
	start := time.Now()
	j1 := async(t, s.addr, joinReq(3, "delay", "", "", 10000, "a"))
	time.Sleep(300 * time.Millisecond)
	// A second member inside the delay joins the same first generation.
	j2 := async(t, s.addr, joinReq(3, "delay", "", "", 10000, "b"))
	r1, r2 := (<-j1).(*kmsg.JoinGroupResponse), (<-j2).(*kmsg.JoinGroupResponse)
	if r1.Generation != 1 || r2.Generation != 1 || len(r1.Members)+len(r2.Members) != 2 {
		t.Fatalf("joins: %+v / %+v", r1, r2)
	}
	// b is a new member inside the delay: the delay is extended once
	// (Kafka's InitialDelayedJoin), to two delays after a's join.
	if el := time.Since(start); el < 1200*time.Millisecond {
		t.Fatalf("first rebalance after %v, before the initial delay extended by the second member", el)
	}
}

func TestGroupEmptyWithoutCommitsExpires(t *testing.T) {
	defer func(d time.Duration) { groupEmptyExpiry = d }(groupEmptyExpiry)
	groupEmptyExpiry = 200 * time.Millisecond
	s := startServer(t)
	c := dialRaw(t, s.addr)
	createTopicRaw(t, c, "exp", 1)
	for _, g := range []string{"no-commits", "commits"} {
		jr := c.do(joinReq(3, g, "", "", 10000, "m")).(*kmsg.JoinGroupResponse)
		if g == "commits" {
			wantCode(t, "commit", commitRaw(c, g, jr.MemberID, jr.Generation, "exp", 0), kerr.RebalanceInProgress)
			c.do(syncReq(g, jr.MemberID, jr.Generation, nil))
			wantCode(t, "commit", commitRaw(c, g, jr.MemberID, jr.Generation, "exp", 0), nil)
		}
		lr := kmsg.NewPtrLeaveGroupRequest()
		lr.Version, lr.Group, lr.MemberID = 2, g, jr.MemberID
		wantCode(t, "leave", c.do(lr).(*kmsg.LeaveGroupResponse).ErrorCode, nil)
	}
	checkFor(t, 5*time.Second, func() error {
		lg := kmsg.NewPtrListGroupsRequest()
		r := c.do(lg).(*kmsg.ListGroupsResponse)
		if len(r.Groups) != 1 || r.Groups[0].Group != "commits" {
			return fmt.Errorf("groups: %+v", r.Groups)
		}
		return nil
	})
	if keys, err := s.broker.ListState(testCtx(t), groupStateKind+"/public/default"); err != nil || len(keys) != 1 || keys[0] != "commits" {
		t.Fatalf("records: %v %v", keys, err)
	}
}

// TestGroupSyncTimeout: a member that joins but never sends SyncGroup is
// dropped after the rebalance timeout; the one that did rebalances alone.
func TestGroupSyncTimeout(t *testing.T) {
	s := startServer(t)
	c := dialRaw(t, s.addr)
	j1 := joinReq(3, "nosync", "", "", 10000, "a")
	j1.RebalanceTimeoutMillis = 300
	r1 := async(t, s.addr, j1)
	j2 := joinReq(3, "nosync", "", "", 10000, "b")
	j2.RebalanceTimeoutMillis = 300
	r2 := (<-async(t, s.addr, j2)).(*kmsg.JoinGroupResponse)
	a := (<-r1).(*kmsg.JoinGroupResponse)
	if a.Generation != 1 || r2.Generation != 1 {
		t.Fatalf("joins: %+v %+v", a, r2)
	}
	// Only the follower syncs; the leader vanishes without a word.
	follower := a
	if a.LeaderID == a.MemberID {
		follower = r2
	}
	sr := c.do(syncReq("nosync", follower.MemberID, 1, nil)).(*kmsg.SyncGroupResponse)
	wantCode(t, "follower sync when the leader never syncs", sr.ErrorCode, kerr.RebalanceInProgress)
	jr := c.do(joinReq(3, "nosync", follower.MemberID, "", 10000, "x")).(*kmsg.JoinGroupResponse)
	if jr.ErrorCode != 0 || jr.Generation != 2 || len(jr.Members) != 1 || jr.LeaderID != follower.MemberID {
		t.Fatalf("rejoin alone: %+v", jr)
	}
}

// TestGroupOffsetVersions commits and fetches at every served version.
func TestGroupOffsetVersions(t *testing.T) {
	s := startServer(t)
	c := dialRaw(t, s.addr)
	createTopicRaw(t, c, "vers", 1)
	produceN(t, testCtx(t), s.addr, "vers", 0, 20)
	for v := int16(0); v <= 8; v++ {
		group := fmt.Sprintf("v%d", v)
		cr := kmsg.NewPtrOffsetCommitRequest()
		cr.Version, cr.Group = v, group
		ct := kmsg.NewOffsetCommitRequestTopic()
		ct.Topic = "vers"
		cp := kmsg.NewOffsetCommitRequestTopicPartition()
		meta := "m" + group
		cp.Partition, cp.Offset, cp.Metadata, cp.LeaderEpoch = 0, int64(v)+1, &meta, 0
		ct.Partitions = append(ct.Partitions, cp)
		cr.Topics = append(cr.Topics, ct)
		if code := c.do(cr).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("commit v%d: %v", v, kerr.ErrorForCode(code))
		}
		fr := kmsg.NewPtrOffsetFetchRequest()
		fr.Version = v
		var off int64
		var md string
		if v >= 8 {
			g := kmsg.NewOffsetFetchRequestGroup()
			g.Group = group
			ft := kmsg.NewOffsetFetchRequestGroupTopic()
			ft.Topic, ft.Partitions = "vers", []int32{0}
			g.Topics = append(g.Topics, ft)
			fr.Groups = append(fr.Groups, g)
			p := c.do(fr).(*kmsg.OffsetFetchResponse).Groups[0].Topics[0].Partitions[0]
			off, md = p.Offset, *p.Metadata
		} else {
			fr.Group = group
			ft := kmsg.NewOffsetFetchRequestTopic()
			ft.Topic, ft.Partitions = "vers", []int32{0}
			fr.Topics = append(fr.Topics, ft)
			p := c.do(fr).(*kmsg.OffsetFetchResponse).Topics[0].Partitions[0]
			off, md = p.Offset, *p.Metadata
		}
		if off != int64(v)+1 || md != meta {
			t.Fatalf("fetch v%d: offset %d metadata %q", v, off, md)
		}
	}
	// Unknown topics and partitions: no commit, no error.
	fr := kmsg.NewPtrOffsetFetchRequest()
	fr.Version, fr.Group = 7, "v7"
	for _, tp := range []string{"vers", "nope"} {
		ft := kmsg.NewOffsetFetchRequestTopic()
		ft.Topic, ft.Partitions = tp, []int32{5}
		fr.Topics = append(fr.Topics, ft)
	}
	for _, tp := range c.do(fr).(*kmsg.OffsetFetchResponse).Topics {
		if p := tp.Partitions[0]; p.Offset != -1 || p.ErrorCode != 0 {
			t.Fatalf("%s: %+v", tp.Topic, p)
		}
	}
}

// TestGroupMembershipVersions runs join, sync, heartbeat and leave at
// every served version.
func TestGroupMembershipVersions(t *testing.T) {
	// A lone member's join completes at once.
	s := startServer(t, func(c *Config) { c.GroupInitialRebalanceDelay = 0 })
	c := dialRaw(t, s.addr)
	for v := int16(0); v <= 9; v++ {
		g := fmt.Sprintf("jv%d", v)
		jr := c.do(joinReq(v, g, "", "", 10000, "m")).(*kmsg.JoinGroupResponse)
		if v >= 4 {
			wantCode(t, fmt.Sprintf("join v%d", v), jr.ErrorCode, kerr.MemberIDRequired)
			jr = c.do(joinReq(v, g, jr.MemberID, "", 10000, "m")).(*kmsg.JoinGroupResponse)
		}
		if jr.ErrorCode != 0 || jr.Generation != 1 || jr.LeaderID != jr.MemberID || len(jr.Members) != 1 || string(jr.Members[0].ProtocolMetadata) != "m" {
			t.Fatalf("join v%d: %+v", v, jr)
		}
		sr := syncReq(g, jr.MemberID, 1, map[string]string{jr.MemberID: "a"})
		sr.Version = min(v, 5)
		if r := c.do(sr).(*kmsg.SyncGroupResponse); r.ErrorCode != 0 || string(r.MemberAssignment) != "a" {
			t.Fatalf("sync v%d: %+v", sr.Version, r)
		}
		hb := kmsg.NewPtrHeartbeatRequest()
		// v0 Heartbeat and LeaveGroup answers (an error code) are shorter
		// than the smallest request frame readFrame accepts: v1 at least.
		hb.Version, hb.Group, hb.MemberID, hb.Generation = max(min(v, 4), 1), g, jr.MemberID, 1
		wantCode(t, fmt.Sprintf("heartbeat v%d", hb.Version), c.do(hb).(*kmsg.HeartbeatResponse).ErrorCode, nil)
		lr := kmsg.NewPtrLeaveGroupRequest()
		lr.Version, lr.Group = max(min(v, 5), 1), g
		if lr.Version < 3 {
			lr.MemberID = jr.MemberID
		} else {
			m := kmsg.NewLeaveGroupRequestMember()
			m.MemberID = jr.MemberID
			lr.Members = append(lr.Members, m)
		}
		lresp := c.do(lr).(*kmsg.LeaveGroupResponse)
		if lresp.ErrorCode != 0 || lr.Version >= 3 && lresp.Members[0].ErrorCode != 0 {
			t.Fatalf("leave v%d: %+v", lr.Version, lresp)
		}
		dr := kmsg.NewPtrDescribeGroupsRequest()
		dr.Version, dr.Groups = min(v, 5), []string{g}
		if d := c.do(dr).(*kmsg.DescribeGroupsResponse); d.Groups[0].State != "Empty" {
			t.Fatalf("describe v%d: %+v", dr.Version, d)
		}
	}
	lg := kmsg.NewPtrListGroupsRequest()
	for v := int16(0); v <= 5; v++ {
		lg.Version = v
		if r := c.do(lg).(*kmsg.ListGroupsResponse); r.ErrorCode != 0 || len(r.Groups) != 10 {
			t.Fatalf("list v%d: %+v", v, r)
		}
	}
	dg := kmsg.NewPtrDeleteGroupsRequest()
	for v := int16(0); v <= 2; v++ {
		dg.Version, dg.Groups = v, []string{fmt.Sprintf("jv%d", v)}
		if r := c.do(dg).(*kmsg.DeleteGroupsResponse); r.Groups[0].ErrorCode != 0 {
			t.Fatalf("delete v%d: %+v", v, r)
		}
	}
}
