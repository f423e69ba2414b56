package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

// lowerCGTimers makes consumer-group heartbeats and session expiry fast
// for a test.
func lowerCGTimers(t *testing.T, hb, session time.Duration) {
	t.Helper()
	oldHB, oldS := cgHeartbeatInterval, cgSessionTimeout
	cgHeartbeatInterval, cgSessionTimeout = hb, session
	t.Cleanup(func() { cgHeartbeatInterval, cgSessionTimeout = oldHB, oldS })
}

func describeConsumerGroup(t *testing.T, cl *kgo.Client, group string) kmsg.ConsumerGroupDescribeResponseGroup {
	t.Helper()
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Groups[0]
}

// TestConsumerGroupFranz848: franz-go members with the server-side
// balancer (KIP-848) share a topic; members join and leave while records
// are produced, the partitions move (revoked before they are reassigned),
// and with commits before each revocation nothing is lost or consumed
// twice; the lag ends at zero because commits are the subscriptions, and
// a later member resumes from those commits.
func TestConsumerGroupFranz848(t *testing.T) {
	for _, tc := range []struct {
		name     string
		balancer kgo.GroupBalancer
		assignor string
	}{
		{"uniform", kgo.CooperativeStickyBalancer(), "uniform"},
		{"range", kgo.RangeBalancer(), "range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lowerCGTimers(t, 200*time.Millisecond, 3*time.Second)
			s := startServer(t)
			ctx := testCtx(t)
			topic, group := "cg848-"+tc.name, "g848-"+tc.name
			admCl := newKgo(t, s.addr)
			adm := kadm.NewClient(admCl)
			if _, err := adm.CreateTopic(ctx, 6, 1, nil, topic); err != nil {
				t.Fatal(err)
			}
			var got seen
			const batches, per = 8, 100
			produced := make(chan struct{})
			go func() {
				defer close(produced)
				for b := range batches {
					produceN(t, ctx, s.addr, topic, b*per, per)
					time.Sleep(150 * time.Millisecond)
				}
			}()
			opts := []kgo.Opt{kgo.Balancers(tc.balancer), kgo.ServerSideBalancer()}
			m1 := startKgoMember(t, s.addr, group, topic, &got, opts...)
			m2 := startKgoMember(t, s.addr, group, topic, &got, opts...)
			m3 := startKgoMember(t, s.addr, group, topic, &got, opts...)
			checkFor(t, 15*time.Second, func() error {
				dg := describeConsumerGroup(t, admCl, group)
				if dg.ErrorCode != 0 || dg.State != "Stable" || len(dg.Members) != 3 || dg.AssignorName != tc.assignor {
					return fmt.Errorf("group %+v", dg)
				}
				owned := map[string]bool{}
				for _, m := range dg.Members {
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
					if n != 2 {
						return fmt.Errorf("member %s owns %d partitions, want 2", m.MemberID, n)
					}
				}
				return nil
			})
			// ListGroups shows it as a consumer-protocol group, also
			// when filtering by type (v5).
			lreq := kmsg.NewPtrListGroupsRequest()
			lreq.TypesFilter = []string{"consumer"}
			lresp, err := lreq.RequestWith(ctx, admCl)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, g := range lresp.Groups {
				if g.Group == group {
					found = g.ProtocolType == "consumer" && g.GroupType == "consumer" && g.GroupState == "Stable"
				}
			}
			if !found {
				t.Fatalf("ListGroups(type consumer): %+v", lresp.Groups)
			}
			if err := m1.close(); err != nil {
				t.Fatal(err)
			}
			<-produced
			m4 := startKgoMember(t, s.addr, group, topic, &got, opts...)
			time.Sleep(300 * time.Millisecond)
			if err := m2.close(); err != nil {
				t.Fatal(err)
			}
			checkFor(t, 20*time.Second, func() error {
				if n := got.count(); n < batches*per {
					return fmt.Errorf("consumed %d distinct of %d", n, batches*per)
				}
				return nil
			})
			for _, m := range []*kgoMember{m3, m4} {
				if err := m.close(); err != nil {
					t.Fatal(err)
				}
			}
			if missing, dups := got.check(batches * per); missing != 0 || dups != 0 {
				t.Fatalf("missing %d, consumed twice %d", missing, dups)
			}
			lag, err := adm.Lag(ctx, group)
			if err != nil {
				t.Fatal(err)
			}
			if l := lag[group]; l.Error() != nil || l.Lag.Total() != 0 {
				t.Fatalf("lag: %v %d", l.Error(), l.Lag.Total())
			}
			// The commits survive the members: a new member resumes
			// from them and reads only what came after.
			produceN(t, ctx, s.addr, topic, batches*per, per)
			m5 := startKgoMember(t, s.addr, group, topic, &got, opts...)
			checkFor(t, 20*time.Second, func() error {
				if n := got.count(); n < (batches+1)*per {
					return fmt.Errorf("consumed %d distinct of %d", n, (batches+1)*per)
				}
				return nil
			})
			if err := m5.close(); err != nil {
				t.Fatal(err)
			}
			if missing, dups := got.check((batches + 1) * per); missing != 0 || dups != 0 {
				t.Fatalf("after resuming: missing %d, consumed twice %d", missing, dups)
			}
		})
	}
}

// TestConsumerGroup848MembersAreSubscriptionConsumers: a KIP-848 member is
// listed as the consumer of the subscriptions of the partitions it owns
// and holds them (deleting one without force is refused), as a classic
// member is; when a second member takes half of them, each subscription
// lists its new owner only; after both leave, none.
func TestConsumerGroup848MembersAreSubscriptionConsumers(t *testing.T) {
	lowerCGTimers(t, 200*time.Millisecond, 3*time.Second)
	s := startServer(t)
	ctx := testCtx(t)
	const topic, group, parts = "cg848att", "g848att", 4
	admCl := newKgo(t, s.addr)
	if _, err := kadm.NewClient(admCl).CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	produceN(t, ctx, s.addr, topic, 0, 40)
	subOf := func(i int) *broker.Subscription {
		name, _ := broker.ParseTopicName(fmt.Sprintf("%s-partition-%d", topic, i), "public", "default")
		part, err := s.broker.OpenPartition(ctx, name, false)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := part.Subscription(ctx, group, false, broker.InitialLatest)
		if err != nil {
			return nil // no commit yet
		}
		return sub
	}
	// owners maps partition -> the member ids listed on its subscription.
	owners := func() (map[int][]string, error) {
		out := map[int][]string{}
		for i := range parts {
			sub := subOf(i)
			if sub == nil {
				return nil, fmt.Errorf("partition %d: no subscription yet", i)
			}
			for _, c := range sub.Consumers() {
				if c.Protocol != "kafka" {
					return nil, fmt.Errorf("partition %d: consumer %+v", i, c)
				}
				out[i] = append(out[i], c.Name)
			}
		}
		return out, nil
	}
	// matches checks the subscriptions against the group's assignment.
	matches := func(members int) error {
		dg := describeConsumerGroup(t, admCl, group)
		if dg.ErrorCode != 0 || len(dg.Members) != members || dg.State != "Stable" {
			return fmt.Errorf("group %+v", dg)
		}
		want := map[int]string{}
		for _, m := range dg.Members {
			for _, tp := range m.Assignment.TopicPartitions {
				for _, p := range tp.Partitions {
					want[int(p)] = m.MemberID
				}
			}
		}
		got, err := owners()
		if err != nil {
			return err
		}
		for i := range parts {
			if len(got[i]) != 1 || got[i][0] != want[i] {
				return fmt.Errorf("partition %d lists %v, owner %q", i, got[i], want[i])
			}
		}
		return nil
	}
	var seen1, seen2 seen
	opts := []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.ServerSideBalancer()}
	m1 := startKgoMember(t, s.addr, group, topic, &seen1, opts...)
	checkFor(t, 15*time.Second, func() error { return matches(1) })
	if err := subOf(0).Partition().DeleteSubscription(ctx, group, false); !errors.Is(err, broker.ErrInUse) {
		t.Fatalf("deleting a subscription a KIP-848 member owns: %v", err)
	}
	m2 := startKgoMember(t, s.addr, group, topic, &seen2, opts...)
	checkFor(t, 15*time.Second, func() error { return matches(2) })
	for _, m := range []*kgoMember{m1, m2} {
		if err := m.close(); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 10*time.Second, func() error {
		got, err := owners()
		if err != nil {
			return err
		}
		if len(got) != 0 {
			return fmt.Errorf("still listed: %v", got)
		}
		return nil
	})
}
