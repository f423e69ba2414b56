package kafka

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

// TestGroupOffsetsAreSubscriptions: a Kafka commit is the position of the
// subscription of the group's name; the subscription's backlog is the lag;
// moving the subscription through the broker is what OffsetFetch answers;
// retention keeps what the group has not committed past; deleting the
// group (or its offsets) deletes the subscription.
func TestGroupOffsetsAreSubscriptions(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"segment.bytes": ptr("1024"), "retention.ms": ptr("1")}, "subs"); err != nil {
		t.Fatal(err)
	}
	p := newKgo(t, s.addr, kgo.DefaultProduceTopic("subs"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	const n = 30
	for i := range n {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: append([]byte(fmt.Sprintf("%03d", i)), randBytes(200)...)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	name, _ := broker.ParseTopicName("subs-partition-0", "public", "default")
	part, err := s.broker.OpenPartition(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := part.Subscription(ctx, "grp", false, broker.InitialLatest); !errors.Is(err, broker.ErrSubscriptionNotFound) {
		t.Fatalf("subscription before any commit: %v", err)
	}
	if o, _ := fetchCommitted(t, adm, "grp", "subs"); o.At != -1 {
		t.Fatalf("committed before any commit: %+v", o)
	}

	// Commit through Kafka: the subscription exists at that position.
	commit(t, adm, "grp", "subs", 10, "meta")
	sub, err := part.Subscription(ctx, "grp", false, broker.InitialLatest)
	if err != nil {
		t.Fatal(err)
	}
	if next, backlog := sub.Cursor().NextIndex(), sub.Cursor().Backlog(); next != 10 || backlog != n-10 {
		t.Fatalf("subscription at %d with backlog %d, want 10 and %d", next, backlog, n-10)
	}
	if o, _ := fetchCommitted(t, adm, "grp", "subs"); o.At != 10 || o.Metadata != "meta" {
		t.Fatalf("fetched %+v", o)
	}
	lag, err := adm.Lag(ctx, "grp")
	if err != nil || lag["grp"].Lag.Total() != n-10 {
		t.Fatalf("lag: %v %+v", err, lag["grp"])
	}

	// Retention removes consumed ledgers only: offset 10 stays readable.
	if err := s.broker.ApplyRetention(ctx); err != nil {
		t.Fatal(err)
	}
	first := part.FirstIndex()
	if first == 0 || first > 10 {
		t.Fatalf("retention removed offsets the group has not committed past: first index %d", first)
	}
	t.Logf("first index after retention: %d", first)

	// Moving the subscription through the broker is what Kafka sees.
	if err := sub.Cursor().SetNextIndex(ctx, 25); err != nil {
		t.Fatal(err)
	}
	if o, _ := fetchCommitted(t, adm, "grp", "subs"); o.At != 25 {
		t.Fatalf("after SetNextIndex(25): %+v", o)
	}
	pos, err := part.PositionOf(12)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.ResetTo(ctx, pos); err != nil {
		t.Fatal(err)
	}
	o, _ := fetchCommitted(t, adm, "grp", "subs")
	if o.At > 12 || o.At < first {
		t.Fatalf("after ResetTo(position of 12): %+v", o)
	}
	// A group consumer resumes there.
	c := newKgo(t, s.addr, kgo.ConsumerGroup("grp"), kgo.ConsumeTopics("subs"), kgo.DisableAutoCommit())
	fs := c.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	if rs := fs.Records(); len(rs) == 0 || rs[0].Offset != o.At {
		t.Fatalf("group consumer started at %d, want %d", rs[0].Offset, o.At)
	}
	c.Close()

	// A live consumer on the subscription (a Pulsar consumer) keeps the
	// group from being deleted.
	release := sub.Hold()
	if r, _ := adm.DeleteGroup(ctx, "grp"); !errors.Is(r.Err, kerr.NonEmptyGroup) {
		t.Fatalf("delete of a held group: %v", r.Err)
	}
	release()
	if r, err := adm.DeleteGroup(ctx, "grp"); err != nil || r.Err != nil {
		t.Fatalf("delete: %v %v", err, r.Err)
	}
	if _, err := part.Subscription(ctx, "grp", false, broker.InitialLatest); !errors.Is(err, broker.ErrSubscriptionNotFound) {
		t.Fatalf("subscription after DeleteGroups: %v", err)
	}
	if o, _ := fetchCommitted(t, adm, "grp", "subs"); o.At != -1 {
		t.Fatalf("committed after delete: %+v", o)
	}
	if r, _ := adm.DeleteGroup(ctx, "grp"); !errors.Is(r.Err, kerr.GroupIDNotFound) {
		t.Fatalf("second delete: %v", r.Err)
	}

	// OffsetDelete removes one partition's subscription.
	commit(t, adm, "grp2", "subs", 5, "")
	dr, err := adm.DeleteOffsets(ctx, "grp2", kadm.TopicsSet{"subs": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if err, _ := dr.Lookup("subs", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := part.Subscription(ctx, "grp2", false, broker.InitialLatest); !errors.Is(err, broker.ErrSubscriptionNotFound) {
		t.Fatalf("subscription after OffsetDelete: %v", err)
	}
	// Groups that only committed are listed, Empty.
	lg, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := lg["grp2"]; !ok || g.State != "Empty" {
		t.Fatalf("list: %+v", lg)
	}
	if _, ok := lg["grp"]; ok {
		t.Fatal("deleted group still listed")
	}
}

func commit(t *testing.T, adm *kadm.Client, group, topic string, at int64, meta string) {
	t.Helper()
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: at, LeaderEpoch: -1, Metadata: meta})
	r, err := adm.CommitOffsets(testCtx(t), group, os)
	if err == nil {
		err = r.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
}

func fetchCommitted(t *testing.T, adm *kadm.Client, group, topic string) (kadm.Offset, bool) {
	t.Helper()
	r, err := adm.FetchOffsetsForTopics(testCtx(t), group, topic)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := r.Lookup(topic, 0)
	if ok && o.Err != nil {
		t.Fatal(o.Err)
	}
	return o.Offset, ok
}

// TestGroupAdminAPIs: DescribeGroups, ListGroups, DeleteGroups and
// OffsetDelete against a live group, and OffsetFetch v8 with two groups.
func TestGroupAdminAPIs(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(newKgo(t, s.addr))
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "live"); err != nil {
		t.Fatal(err)
	}
	produceN(t, ctx, s.addr, "live", 0, 10)
	var got seen
	m := startKgoMember(t, s.addr, "live-g", "live", &got)
	checkFor(t, 10*time.Second, func() error {
		if n := got.count(); n < 10 {
			return fmt.Errorf("consumed %d of 10", n)
		}
		return nil
	})
	dg := describeOne(t, adm, "live-g")
	if dg.State != "Stable" || dg.ProtocolType != "consumer" || dg.Protocol == "" || len(dg.Members) != 1 || dg.Members[0].ClientHost != "/127.0.0.1" {
		t.Fatalf("describe: %+v", dg)
	}
	if a, ok := dg.Members[0].Assigned.AsConsumer(); !ok || len(a.Topics) != 1 || len(a.Topics[0].Partitions) != 2 {
		t.Fatalf("assignment: %+v", dg.Members[0].Assigned)
	}
	// The member shows as the consumer of its partitions' subscriptions
	// and holds them.
	subOf := func(i int) *broker.Subscription {
		name, _ := broker.ParseTopicName(fmt.Sprintf("live-partition-%d", i), "public", "default")
		part, err := s.broker.OpenPartition(ctx, name, false)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := part.Subscription(ctx, "live-g", false, broker.InitialLatest)
		if err != nil {
			t.Fatal(err)
		}
		return sub
	}
	checkFor(t, 5*time.Second, func() error {
		for i := range 2 {
			cs := subOf(i).Consumers()
			if len(cs) != 1 || cs[0].Name != dg.Members[0].MemberID || cs[0].Protocol != "kafka" {
				return fmt.Errorf("partition %d consumers: %+v", i, cs)
			}
		}
		return nil
	})
	if err := subOf(0).Partition().DeleteSubscription(ctx, "live-g", false); !errors.Is(err, broker.ErrInUse) {
		t.Fatalf("deleting a subscription a Kafka member owns: %v", err)
	}
	if lg, err := adm.ListGroups(ctx, "Stable"); err != nil || len(lg) != 1 || lg["live-g"].State != "Stable" {
		t.Fatalf("list stable: %v %+v", err, lg)
	}
	if lg, err := adm.ListGroups(ctx, "Empty"); err != nil || len(lg) != 0 {
		t.Fatalf("list empty: %v %+v", err, lg)
	}
	if r, _ := adm.DeleteGroup(ctx, "live-g"); !errors.Is(r.Err, kerr.NonEmptyGroup) {
		t.Fatalf("delete of a live group: %v", r.Err)
	}
	dr, err := adm.DeleteOffsets(ctx, "live-g", kadm.TopicsSet{"live": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if err, _ := dr.Lookup("live", 0); !errors.Is(err, kerr.GroupSubscribedToTopic) {
		t.Fatalf("offset delete on a subscribed topic: %v", err)
	}

	// OffsetFetch v8: two groups, one with every partition (null topics).
	commit(t, adm, "other-g", "live", 3, "")
	c := dialRaw(t, s.addr)
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 8
	g1 := kmsg.NewOffsetFetchRequestGroup()
	g1.Group = "live-g" // Topics nil: all
	g2 := kmsg.NewOffsetFetchRequestGroup()
	g2.Group = "other-g"
	rt := kmsg.NewOffsetFetchRequestGroupTopic()
	rt.Topic, rt.Partitions = "live", []int32{0, 1}
	g2.Topics = append(g2.Topics, rt)
	req.Groups = append(req.Groups, g1, g2)
	resp := c.do(req).(*kmsg.OffsetFetchResponse)
	if len(resp.Groups) != 2 || resp.Groups[0].ErrorCode != 0 || resp.Groups[1].ErrorCode != 0 {
		t.Fatalf("offset fetch v8: %+v", resp)
	}
	var sum int64
	for _, tp := range resp.Groups[0].Topics {
		for _, p := range tp.Partitions {
			sum += p.Offset
		}
	}
	if sum != 10 {
		t.Fatalf("live-g committed %d in all, want 10: %+v", sum, resp.Groups[0])
	}
	if ps := resp.Groups[1].Topics[0].Partitions; ps[0].Offset != 3 || ps[1].Offset != -1 {
		t.Fatalf("other-g: %+v", ps)
	}

	if err := m.close(); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error {
		if dg := describeOne(t, adm, "live-g"); dg.State != "Empty" {
			return fmt.Errorf("state %s after the member left", dg.State)
		}
		return nil
	})
	if cs := subOf(1).Consumers(); len(cs) != 0 {
		t.Fatalf("consumers after the member left: %+v", cs)
	}
	if r, err := adm.DeleteGroup(ctx, "live-g"); err != nil || r.Err != nil {
		t.Fatalf("delete: %v %v", err, r.Err)
	}
}
