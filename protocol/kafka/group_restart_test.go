package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGroupRestart: membership (generation, members, assignments, static
// ids) and commits survive a broker restart on the same storage; a member
// that stays up across it keeps consuming in its generation without
// rebalancing, and nothing is consumed twice.
func TestGroupRestart(t *testing.T) {
	d := startDurableServer(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(newKgo(t, d.addr))
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "rs"); err != nil {
		t.Fatal(err)
	}
	produceN(t, ctx, d.addr, "rs", 0, 100)
	commit(t, adm, "simple", "rs", 7, "kept")

	var got seen
	m := startKgoMember(t, d.addr, "rg", "rs", &got, kgo.InstanceID("static-1"), kgo.SessionTimeout(30*time.Second))
	checkFor(t, 10*time.Second, func() error {
		if n := got.count(); n < 100 {
			return fmt.Errorf("consumed %d of 100", n)
		}
		return nil
	})
	before := describeOne(t, adm, "rg")
	if before.State != "Stable" || len(before.Members) != 1 {
		t.Fatalf("before restart: %+v", before)
	}

	d.restart()
	adm = kadm.NewClient(newKgo(t, d.addr))

	after := describeOne(t, adm, "rg")
	if after.State != "Stable" || len(after.Members) != 1 || after.Members[0].MemberID != before.Members[0].MemberID ||
		after.Members[0].InstanceID == nil || *after.Members[0].InstanceID != "static-1" || after.Protocol != before.Protocol {
		t.Fatalf("after restart: %+v\nbefore: %+v", after, before)
	}
	if _, ok := after.Members[0].Assigned.AsConsumer(); !ok {
		t.Fatalf("assignment lost: %+v", after.Members[0])
	}
	offs, err := adm.FetchOffsets(ctx, "rg")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	offs.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != 100 {
		t.Fatalf("committed after restart sum to %d, want 100: %+v", total, offs)
	}
	if o, _ := fetchCommitted(t, adm, "simple", "rs"); o.At != 7 || o.Metadata != "kept" {
		t.Fatalf("simple commit after restart: %+v", o)
	}
	lg, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lg["simple"]; !ok {
		t.Fatalf("groups after restart: %+v", lg)
	}

	// The member reconnects and goes on in the same generation.
	produceN(t, ctx, d.addr, "rs", 100, 50)
	checkFor(t, 15*time.Second, func() error {
		if n := got.count(); n < 150 {
			return fmt.Errorf("consumed %d of 150", n)
		}
		return nil
	})
	if err := m.close(); err != nil {
		t.Fatal(err)
	}
	if missing, dups := got.check(150); missing != 0 || dups != 0 {
		t.Fatalf("missing %d, consumed twice %d", missing, dups)
	}
}

func describeOne(t *testing.T, adm *kadm.Client, group string) kadm.DescribedGroup {
	t.Helper()
	dg, err := adm.DescribeGroups(testCtx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	return dg[group]
}

// TestGroupRestartMemberGone: a member reloaded after a restart that never
// comes back expires after its session timeout; the group empties and its
// record says so.
func TestGroupRestartMemberGone(t *testing.T) {
	defer func(d time.Duration) { groupMinSessionTimeout = d }(groupMinSessionTimeout)
	groupMinSessionTimeout = 100 * time.Millisecond
	d := startDurableServer(t)
	c := dialRaw(t, d.addr)
	jr := c.do(joinReq(3, "gone", "", "", 800, "m")).(*kmsg.JoinGroupResponse)
	if jr.ErrorCode != 0 {
		t.Fatalf("join: %+v", jr)
	}
	c.do(syncReq("gone", jr.MemberID, jr.Generation, map[string]string{jr.MemberID: "a"}))
	d.restart()
	adm := kadm.NewClient(newKgo(t, d.addr))
	if dg := describeOne(t, adm, "gone"); dg.State != "Stable" || len(dg.Members) != 1 || dg.Members[0].MemberID != jr.MemberID {
		t.Fatalf("after restart: %+v", dg)
	}
	checkFor(t, 5*time.Second, func() error {
		if dg := describeOne(t, adm, "gone"); dg.State != "Empty" {
			return fmt.Errorf("state %s", dg.State)
		}
		return nil
	})
	d.restart()
	adm = kadm.NewClient(newKgo(t, d.addr))
	if dg := describeOne(t, adm, "gone"); dg.State != "Empty" || len(dg.Members) != 0 {
		t.Fatalf("after the second restart: %+v", dg)
	}
}
