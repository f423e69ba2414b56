package kafka

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// cgRaw sends ConsumerGroupHeartbeats by hand.
type cgRaw struct {
	t     *testing.T
	cl    *kgo.Client
	group string
	id    [16]byte // the topic's id
}

type cgHB struct {
	member   string
	epoch    int32
	instance string
	names    []string
	regex    string
	assignor string
	owned    []int32 // nil: a keepalive (Topics null)
	full     bool    // send Topics even when owned is nil (empty list)
}

func (r *cgRaw) hb(h cgHB) *kmsg.ConsumerGroupHeartbeatResponse {
	r.t.Helper()
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Group, req.MemberID, req.MemberEpoch = r.group, h.member, h.epoch
	if h.instance != "" {
		req.InstanceID = &h.instance
	}
	if h.epoch == 0 {
		req.RebalanceTimeoutMillis = 5000
		req.SubscribedTopicNames = h.names
		if h.regex != "" {
			req.SubscribedTopicRegex = &h.regex
		}
		if h.names == nil && h.regex == "" {
			req.SubscribedTopicNames = []string{}
		}
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	}
	if h.assignor != "" {
		req.ServerAssignor = &h.assignor
	}
	if h.owned != nil || h.full {
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		if len(h.owned) > 0 {
			t := kmsg.NewConsumerGroupHeartbeatRequestTopic()
			t.TopicID, t.Partitions = r.id, h.owned
			req.Topics = append(req.Topics, t)
		}
	}
	resp, err := req.RequestWith(context.Background(), r.cl)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp
}

// parts is the response's assignment of the topic (nil: no assignment in
// the response).
func (r *cgRaw) parts(resp *kmsg.ConsumerGroupHeartbeatResponse) []int32 {
	if resp.Assignment == nil {
		return nil
	}
	out := []int32{}
	for _, t := range resp.Assignment.Topics {
		if t.TopicID == r.id {
			out = append(out, t.Partitions...)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func wantCG(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	if (want == nil && got != 0) || (want != nil && got != want.Code) {
		t.Fatalf("%s: error %v, want %v", what, kerr.ErrorForCode(got), want)
	}
}

// TestConsumerGroupHeartbeatRaw walks the KIP-848 protocol by hand:
// validation errors, incremental reassignment (a partition is revoked from
// its owner, and given to the new member only after the owner's heartbeat
// no longer lists it), epoch fencing, commits checked against member
// epochs, static members (leave with -2, rejoin under a new member id with
// the same partitions, UNRELEASED_INSTANCE_ID), leaving with -1, session
// expiry, and the classic/consumer exclusivity of a group name.
func TestConsumerGroupHeartbeatRaw(t *testing.T) {
	lowerCGTimers(t, 100*time.Millisecond, 2*time.Second)
	s := startServer(t, func(c *Config) { c.GroupInitialRebalanceDelay = 10 * time.Millisecond })
	ctx := testCtx(t)
	cl := newKgo(t, s.addr)
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, "raw848"); err != nil {
		t.Fatal(err)
	}
	td, err := adm.ListTopics(ctx, "raw848")
	if err != nil {
		t.Fatal(err)
	}
	r := &cgRaw{t: t, cl: cl, group: "rg", id: td["raw848"].ID}
	sub := []string{"raw848"}

	// Validation.
	wantCG(t, "empty member id", r.hb(cgHB{member: "", epoch: 0, names: sub}).ErrorCode, kerr.InvalidRequest)
	wantCG(t, "bad regex", r.hb(cgHB{member: "x", epoch: 0, regex: "(("}).ErrorCode, kerr.InvalidRegularExpression)
	wantCG(t, "bad assignor", r.hb(cgHB{member: "x", epoch: 0, names: sub, assignor: "sticky"}).ErrorCode, kerr.UnsupportedAssignor)
	wantCG(t, "unknown member", r.hb(cgHB{member: "x", epoch: 3}).ErrorCode, kerr.UnknownMemberID)

	// A alone owns everything.
	a := r.hb(cgHB{member: "A", epoch: 0, names: sub})
	wantCG(t, "join A", a.ErrorCode, nil)
	if got := r.parts(a); fmt.Sprint(got) != "[0 1 2 3]" || a.MemberEpoch < 1 || a.HeartbeatIntervalMillis != 100 {
		t.Fatalf("A: epoch %d, parts %v, interval %d", a.MemberEpoch, got, a.HeartbeatIntervalMillis)
	}
	eA := a.MemberEpoch

	// A classic JoinGroup for the same name is refused.
	jr, err := joinReq(5, "rg", "", "", 10000, "m").RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	wantCG(t, "classic join of a consumer group", jr.ErrorCode, kerr.InconsistentGroupProtocol)

	// B joins: nothing free yet.
	b := r.hb(cgHB{member: "B", epoch: 0, names: sub})
	wantCG(t, "join B", b.ErrorCode, nil)
	if got := r.parts(b); len(got) != 0 {
		t.Fatalf("B got %v while A owns everything", got)
	}
	eB := b.MemberEpoch
	// A learns that two partitions are revoked; its epoch stays.
	a = r.hb(cgHB{member: "A", epoch: eA, owned: []int32{0, 1, 2, 3}})
	keptA := r.parts(a)
	if len(keptA) != 2 || a.MemberEpoch != eA {
		t.Fatalf("A while revoking: epoch %d (was %d), parts %v", a.MemberEpoch, eA, keptA)
	}
	// A keepalive of B still gets nothing: A has not let go.
	b = r.hb(cgHB{member: "B", epoch: eB, full: true})
	if got := r.parts(b); len(got) != 0 {
		t.Fatalf("B got %v before A released them", got)
	}
	// A's heartbeat without the revoked ones releases them and moves A.
	a = r.hb(cgHB{member: "A", epoch: eA, owned: keptA})
	if a.MemberEpoch <= eA {
		t.Fatalf("A's epoch did not move after revoking: %d", a.MemberEpoch)
	}
	eA = a.MemberEpoch
	b = r.hb(cgHB{member: "B", epoch: eB, full: true})
	gotB := r.parts(b)
	if len(gotB) != 2 || b.MemberEpoch != eA {
		t.Fatalf("B after the release: epoch %d, parts %v", b.MemberEpoch, gotB)
	}
	eB = b.MemberEpoch

	// A wrong epoch is fenced.
	wantCG(t, "future epoch", r.hb(cgHB{member: "B", epoch: eB + 5}).ErrorCode, kerr.FencedMemberEpoch)

	// Commits are checked against member epochs and move the subscription.
	commit := func(member string, epoch int32, p int32, off int64) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.MemberID, req.Generation = "rg", member, epoch
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "raw848"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p, off
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	produceN(t, ctx, s.addr, "raw848", 0, 40)
	wantCG(t, "stale commit", commit("B", eB+1, gotB[0], 1), kerr.StaleMemberEpoch)
	wantCG(t, "unknown member commit", commit("Z", eB, gotB[0], 1), kerr.UnknownMemberID)
	wantCG(t, "commit", commit("B", eB, gotB[0], 1), nil)
	offs, err := adm.FetchOffsets(ctx, "rg")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("raw848", gotB[0]); !ok || o.At != 1 {
		t.Fatalf("committed offset: %+v %v", o, ok)
	}

	// Static member S: leaves with -2, comes back under a new member id
	// with the same partitions and no rebalance.
	sr := r.hb(cgHB{member: "S1", epoch: 0, instance: "inst", names: sub})
	wantCG(t, "join S1", sr.ErrorCode, nil)
	wantCG(t, "second incarnation while S1 is active",
		r.hb(cgHB{member: "S2", epoch: 0, instance: "inst", names: sub}).ErrorCode, kerr.UnreleasedInstanceID)
	// Let everybody reconcile (A revokes, S1 takes what it gets).
	var ownS []int32
	checkFor(t, 5*time.Second, func() error {
		a = r.hb(cgHB{member: "A", epoch: eA, owned: keptA})
		if p := r.parts(a); p != nil {
			keptA = p
		}
		eA = a.MemberEpoch
		b = r.hb(cgHB{member: "B", epoch: eB, owned: gotB})
		if p := r.parts(b); p != nil {
			gotB = p
		}
		eB = b.MemberEpoch
		sr = r.hb(cgHB{member: "S1", epoch: sr.MemberEpoch, instance: "inst", owned: ownS, full: true})
		if p := r.parts(sr); p != nil {
			ownS = p
		}
		if len(keptA)+len(gotB)+len(ownS) != 4 || len(ownS) == 0 {
			return fmt.Errorf("A %v B %v S %v", keptA, gotB, ownS)
		}
		return nil
	})
	left := r.hb(cgHB{member: "S1", epoch: -2, instance: "inst"})
	if left.ErrorCode != 0 || left.MemberEpoch != -2 {
		t.Fatalf("static leave: %v epoch %d", kerr.ErrorForCode(left.ErrorCode), left.MemberEpoch)
	}
	s2 := r.hb(cgHB{member: "S2", epoch: 0, instance: "inst", names: sub})
	wantCG(t, "join S2", s2.ErrorCode, nil)
	if got := r.parts(s2); fmt.Sprint(got) != fmt.Sprint(ownS) {
		t.Fatalf("S2 got %v, S1 had %v", got, ownS)
	}

	// ConsumerGroupDescribe and DescribeGroups see the consumer group.
	dg := describeConsumerGroup(t, cl, "rg")
	if dg.ErrorCode != 0 || len(dg.Members) != 3 || dg.AssignorName != "uniform" {
		t.Fatalf("describe: %+v", dg)
	}
	if d := describeOne(t, adm, "rg"); d.ProtocolType != "consumer" || len(d.Members) != 3 {
		t.Fatalf("DescribeGroups: %+v", d)
	}

	// A leaves (-1): its partitions are free at once.
	l := r.hb(cgHB{member: "A", epoch: -1})
	if l.ErrorCode != 0 || l.MemberEpoch != -1 {
		t.Fatalf("leave: %v %d", kerr.ErrorForCode(l.ErrorCode), l.MemberEpoch)
	}
	// B stops heartbeating: after the session timeout S2 owns all.
	own := r.parts(s2)
	epoch := s2.MemberEpoch
	checkFor(t, 10*time.Second, func() error {
		resp := r.hb(cgHB{member: "S2", epoch: epoch, instance: "inst", owned: own, full: true})
		if resp.ErrorCode != 0 {
			return kerr.ErrorForCode(resp.ErrorCode)
		}
		if p := r.parts(resp); p != nil {
			own = p
		}
		epoch = resp.MemberEpoch
		if len(own) != 4 {
			return fmt.Errorf("S2 owns %v", own)
		}
		return nil
	})
	wantCG(t, "expired member", r.hb(cgHB{member: "B", epoch: eB}).ErrorCode, kerr.UnknownMemberID)

	// A classic group's name is not a consumer group.
	r2 := &cgRaw{t: t, cl: cl, group: "classic-g", id: r.id}
	jr, err = joinReq(5, "classic-g", "", "", 10000, "m").RequestWith(ctx, cl)
	if err == nil && jr.ErrorCode == kerr.MemberIDRequired.Code {
		jr, err = joinReq(5, "classic-g", jr.MemberID, "", 10000, "m").RequestWith(ctx, cl)
	}
	if err != nil || jr.ErrorCode != 0 {
		t.Fatalf("classic join: %v %v", err, kerr.ErrorForCode(jr.ErrorCode))
	}
	wantCG(t, "consumer heartbeat of a classic group", r2.hb(cgHB{member: "C", epoch: 0, names: sub}).ErrorCode, kerr.GroupIDNotFound)
	cd := describeConsumerGroup(t, cl, "classic-g")
	wantCG(t, "ConsumerGroupDescribe of a classic group", cd.ErrorCode, kerr.GroupIDNotFound)
}
