package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGroupMigrationFranz: Kafka 4's online migration with franz-go. A
// classic consumer (kgo's default cooperative-sticky balancer, and the
// eager range balancer) owns every
// partition; a KIP-848 consumer joining the same group upgrades it to a
// consumer group, the server-side assignor divides the partitions between
// the two (the classic member revokes half through JoinGroup/SyncGroup),
// and when the KIP-848 member leaves the group is classic again with the
// classic member owning everything. Records are produced while the group
// converts both ways:
// none is lost or consumed twice across both switches, and the commits
// stay (the lag ends at zero).
func TestGroupMigrationFranz(t *testing.T) {
	for _, tc := range []struct {
		name    string
		classic []kgo.Opt
	}{
		{"cooperative-sticky", nil}, // kgo's default balancers
		{"eager-range", []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())}},
	} {
		t.Run(tc.name, func(t *testing.T) { testGroupMigrationFranz(t, tc.name, tc.classic) })
	}
}

func testGroupMigrationFranz(t *testing.T, name string, classicOpts []kgo.Opt) {
	lowerCGTimers(t, 200*time.Millisecond, 3*time.Second)
	s := startServer(t)
	ctx := testCtx(t)
	const parts = 4
	topic, group := "cgmig-"+name, "gmig-"+name
	admCl := newKgo(t, s.addr)
	adm := kadm.NewClient(admCl)
	if _, err := adm.CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	var got seen
	const per = 100
	total := 0
	produce := func() {
		produceN(t, ctx, s.addr, topic, total, per)
		total += per
	}
	waitConsumed := func() {
		t.Helper()
		checkFor(t, 20*time.Second, func() error {
			if n := got.count(); n < total {
				return fmt.Errorf("consumed %d distinct of %d", n, total)
			}
			return nil
		})
	}
	describeClassic := func() kmsg.DescribeGroupsResponseGroup {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = []string{group}
		resp, err := req.RequestWith(ctx, admCl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Groups[0]
	}

	classic := startKgoMember(t, s.addr, group, topic, &got, classicOpts...)
	produce()
	waitConsumed()
	if dg := describeClassic(); dg.State != "Stable" || len(dg.Members) != 1 || dg.ProtocolType != "consumer" {
		t.Fatalf("classic group: %+v", dg)
	}

	// Records keep coming while the group converts both ways.
	const batches, batch = 10, 50
	from := total
	total += batches * batch
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for b := range batches {
			produceN(t, ctx, s.addr, topic, from+b*batch, batch)
			time.Sleep(100 * time.Millisecond)
		}
	}()

	// Upgrade: the KIP-848 member joins the classic group.
	modern := startKgoMember(t, s.addr, group, topic, &got, kgo.ServerSideBalancer())
	checkFor(t, 20*time.Second, func() error {
		dg := describeConsumerGroup(t, admCl, group)
		if dg.ErrorCode != 0 || dg.State != "Stable" || len(dg.Members) != 2 {
			return fmt.Errorf("consumer group %+v", dg)
		}
		owned, types := map[string]bool{}, map[int8]int{}
		for _, m := range dg.Members {
			types[m.MemberType]++
			n := 0
			for _, tp := range m.Assignment.TopicPartitions {
				for _, p := range tp.Partitions {
					k := fmt.Sprint(tp.Topic, p)
					if owned[k] {
						return fmt.Errorf("%s owned twice", k)
					}
					owned[k] = true
					n++
				}
			}
			if n != parts/2 {
				return fmt.Errorf("member %s (type %d) owns %d partitions", m.MemberID, m.MemberType, n)
			}
		}
		if types[0] != 1 || types[1] != 1 {
			return fmt.Errorf("member types %v, want one classic and one consumer", types)
		}
		return nil
	})

	// Downgrade: the KIP-848 member leaves; the classic member is alone in
	// a classic group again and owns every partition.
	if err := modern.close(); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 20*time.Second, func() error {
		dg := describeClassic()
		if dg.ErrorCode != 0 || dg.State != "Stable" || len(dg.Members) != 1 {
			return fmt.Errorf("classic group %+v", dg)
		}
		var a kmsg.ConsumerMemberAssignment
		if err := a.ReadFrom(dg.Members[0].MemberAssignment); err != nil {
			return err
		}
		n := 0
		for _, tp := range a.Topics {
			n += len(tp.Partitions)
		}
		if n != parts {
			return fmt.Errorf("classic member owns %d partitions", n)
		}
		return nil
	})
	if cg := describeConsumerGroup(t, admCl, group); cg.ErrorCode == 0 {
		t.Fatalf("still a consumer group after the downgrade: %+v", cg)
	}
	<-produced
	produce()
	waitConsumed()
	if err := classic.close(); err != nil {
		t.Fatal(err)
	}
	if missing, dups := got.check(total); missing != 0 || dups != 0 {
		t.Fatalf("missing %d, consumed twice %d", missing, dups)
	}
	lag, err := adm.Lag(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if l := lag[group]; l.Error() != nil || l.Lag.Total() != 0 {
		t.Fatalf("lag: %v %d", l.Error(), l.Lag.Total())
	}
}
