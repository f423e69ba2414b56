package kafka

import (
	"fmt"
	"sort"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// shareRaw sends share group requests by hand.
type shareRaw struct {
	t     *testing.T
	cl    *kgo.Client
	group string
	id    [16]byte
}

func (r *shareRaw) hb(member string, epoch int32, topics []string) *kmsg.ShareGroupHeartbeatResponse {
	r.t.Helper()
	req := kmsg.NewPtrShareGroupHeartbeatRequest()
	req.GroupID, req.MemberID, req.MemberEpoch, req.SubscribedTopicNames = r.group, member, epoch, topics
	resp, err := req.RequestWith(testCtx(r.t), r.cl)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp
}

// fetch sends a ShareFetch for partitions parts (nil: none named) with
// acks per partition.
func (r *shareRaw) fetch(cl *kgo.Client, member string, epoch int32, parts []int32, acks map[int32][]kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch) *kmsg.ShareFetchResponse {
	r.t.Helper()
	req := kmsg.NewPtrShareFetchRequest()
	req.GroupID, req.MemberID, req.ShareSessionEpoch = &r.group, &member, epoch
	req.MaxWaitMillis, req.MaxBytes, req.MaxRecords, req.BatchSize = 200, 1<<20, 100, 100
	rt := kmsg.NewShareFetchRequestTopic()
	rt.TopicID = r.id
	named := map[int32]bool{}
	for _, p := range parts {
		named[p] = true
	}
	for p := range acks {
		named[p] = true
	}
	for p := range named {
		rp := kmsg.NewShareFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes, rp.AcknowledgementBatches = p, 1<<20, acks[p]
		rt.Partitions = append(rt.Partitions, rp)
	}
	if len(rt.Partitions) > 0 {
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(testCtx(r.t), cl)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp
}

func ackBatch(first, last int64, typ int8) kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch {
	b := kmsg.NewShareFetchRequestTopicPartitionAcknowledgementBatch()
	b.FirstOffset, b.LastOffset, b.AcknowledgeTypes = first, last, []int8{typ}
	return b
}

// acquired lists a response's acquired offsets as "partition:offset/count".
func acquired(resp *kmsg.ShareFetchResponse) []string {
	var out []string
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			for _, ar := range p.AcquiredRecords {
				for off := ar.FirstOffset; off <= ar.LastOffset; off++ {
					out = append(out, fmt.Sprintf("%d:%d/%d", p.Partition, off, ar.DeliveryCount))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestShareGroupRaw walks a share group by hand: heartbeat (every member
// gets every partition), share session epochs, acquisition with delivery
// counts, accept / release / INVALID_RECORD_STATE, redelivery with a
// higher count, the session released when its connection closes, group
// configs in DescribeConfigs, ListGroups, DeleteGroups refused with
// members, share group offsets.
func TestShareGroupRaw(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	cl := newKgo(t, s.addr, kgo.DefaultProduceTopic("sraw"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "sraw"); err != nil {
		t.Fatal(err)
	}
	td, err := adm.ListTopics(ctx, "sraw")
	if err != nil {
		t.Fatal(err)
	}
	// Partition 0: offsets 0-2, one record per batch; partition 1: one
	// batch of three records.
	for i := range 3 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i)), Partition: 0}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("a"), Partition: 1}, &kgo.Record{Value: []byte("b"), Partition: 1},
		&kgo.Record{Value: []byte("c"), Partition: 1}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r := &shareRaw{t: t, cl: cl, group: "sg", id: td["sraw"].ID}

	// Group configs: defaults, then earliest; a value out of bounds is refused.
	dc := kmsg.NewPtrDescribeConfigsRequest()
	dcr := kmsg.NewDescribeConfigsRequestResource()
	dcr.ResourceType, dcr.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "sg"
	dc.Resources = append(dc.Resources, dcr)
	dresp0, err := dc.RequestWith(ctx, cl)
	if err != nil || dresp0.Resources[0].ErrorCode != 0 || len(dresp0.Resources[0].Configs) != 4 {
		t.Fatalf("group configs: %+v %v", dresp0, err)
	}
	alter := func(name, value string) int16 {
		t.Helper()
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		res := kmsg.NewIncrementalAlterConfigsRequestResource()
		res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "sg"
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = name, kmsg.StringPtr(value)
		res.Configs = append(res.Configs, c)
		req.Resources = append(req.Resources, res)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Resources[0].ErrorCode
	}
	wantCG(t, "earliest", alter("share.auto.offset.reset", "earliest"), nil)
	wantCG(t, "limit 1", alter("share.delivery.count.limit", "1"), kerr.InvalidConfig)
	dresp0, err = dc.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range dresp0.Resources[0].Configs {
		if c.Name == "share.auto.offset.reset" && (*c.Value != "earliest" || c.Source != kmsg.ConfigSourceGroupConfig) {
			t.Fatalf("share.auto.offset.reset: %s source %v", *c.Value, c.Source)
		}
	}

	wantCG(t, "no member id", r.hb("", 0, []string{"sraw"}).ErrorCode, kerr.InvalidRequest)
	wantCG(t, "unknown member", r.hb("M", 3, nil).ErrorCode, kerr.UnknownMemberID)
	hb := r.hb("M", 0, []string{"sraw"})
	wantCG(t, "join", hb.ErrorCode, nil)
	if hb.Assignment == nil || len(hb.Assignment.TopicPartitions) != 1 || fmt.Sprint(hb.Assignment.TopicPartitions[0].Partitions) != "[0 1]" {
		t.Fatalf("assignment %+v", hb.Assignment)
	}
	if again := r.hb("M", hb.MemberEpoch, nil); again.ErrorCode != 0 || again.Assignment != nil || again.MemberEpoch != hb.MemberEpoch {
		t.Fatalf("keepalive: %+v", again)
	}

	// Session: epoch 0 opens; a wrong epoch or no session is refused.
	fcl := newKgo(t, s.addr)
	wantCG(t, "no session", r.fetch(fcl, "M", 1, []int32{0}, nil).ErrorCode, kerr.ShareSessionNotFound)
	wantCG(t, "not a member", r.fetch(fcl, "X", 0, []int32{0}, nil).ErrorCode, kerr.UnknownMemberID)
	f := r.fetch(fcl, "M", 0, []int32{0, 1}, nil)
	wantCG(t, "fetch 0", f.ErrorCode, nil)
	// Deliveries reach the session asynchronously: fetch until all are in.
	first := acquired(f)
	epoch := int32(1)
	for ; len(first) < 6 && epoch < 20; epoch++ {
		first = append(first, acquired(r.fetch(fcl, "M", epoch, nil, nil))...)
	}
	sort.Strings(first)
	if fmt.Sprint(first) != "[0:0/1 0:1/1 0:2/1 1:0/1 1:1/1 1:2/1]" {
		t.Fatalf("acquired %v", first)
	}
	wantCG(t, "stale epoch", r.fetch(fcl, "M", epoch+5, nil, nil).ErrorCode, kerr.InvalidShareSessionEpoch)

	// Accept 0:0, release 0:1, accept 1:0-1:1, release 1:2; ack a record
	// not held (1:7).
	f = r.fetch(fcl, "M", epoch, nil, map[int32][]kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch{
		0: {ackBatch(0, 0, 1), ackBatch(1, 1, 2)},
		1: {ackBatch(0, 1, 1), ackBatch(2, 2, 2), ackBatch(7, 7, 1)},
	})
	wantCG(t, "fetch 1", f.ErrorCode, nil)
	for _, tp := range f.Topics {
		for _, p := range tp.Partitions {
			want := int16(0)
			if p.Partition == 1 {
				want = kerr.InvalidRecordState.Code
			}
			if p.AcknowledgeErrorCode != want {
				t.Fatalf("partition %d acknowledge error %v", p.Partition, kerr.ErrorForCode(p.AcknowledgeErrorCode))
			}
		}
	}
	redelivered := acquired(f)
	epoch++
	for ; len(redelivered) < 2 && epoch < 40; epoch++ {
		redelivered = append(redelivered, acquired(r.fetch(fcl, "M", epoch, nil, nil))...)
	}
	sort.Strings(redelivered)
	if fmt.Sprint(redelivered) != "[0:1/2 1:2/2]" {
		t.Fatalf("redelivered %v", redelivered)
	}

	// Members are NON_EMPTY_GROUP for DeleteGroups; ListGroups shows a share group.
	if resp, _ := adm.DeleteGroup(ctx, "sg"); !errorsIs(resp.Err, kerr.NonEmptyGroup) {
		t.Fatalf("delete with members: %v", resp.Err)
	}
	lg, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := lg["sg"]; !ok || g.ProtocolType != "share" || g.State != "Stable" {
		t.Fatalf("listed %+v", lg)
	}
	// ShareGroupDescribe.
	dreq := kmsg.NewPtrShareGroupDescribeRequest()
	dreq.GroupIDs = []string{"sg", "nope"}
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if g := dresp.Groups[0]; g.ErrorCode != 0 || g.GroupState != "Stable" || len(g.Members) != 1 || g.Members[0].MemberID != "M" {
		t.Fatalf("describe %+v", g)
	}
	wantCG(t, "describe unknown", dresp.Groups[1].ErrorCode, kerr.GroupIDNotFound)

	// The connection closes: what the session held is released.
	fcl.Close()
	fcl2 := newKgo(t, s.addr)
	var got []string
	for epoch := int32(0); len(got) < 3 && epoch < 20; epoch++ {
		got = append(got, acquired(r.fetch(fcl2, "M", epoch, []int32{0, 1}, nil))...)
	}
	sort.Strings(got)
	// 0:2 was still acquired (never acknowledged): released too.
	if fmt.Sprint(got) != "[0:1/3 0:2/2 1:2/3]" {
		t.Fatalf("after the connection closed: %v", got)
	}

	// Share group offsets: accepted prefix.
	oreq := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
	og := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
	og.GroupID = "sg"
	oreq.Groups = append(oreq.Groups, og)
	oresp, err := oreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	starts := map[int32]int64{}
	for _, tp := range oresp.Groups[0].Topics {
		for _, p := range tp.Partitions {
			starts[p.Partition] = p.StartOffset
		}
	}
	if starts[0] != 1 || starts[1] != 2 {
		t.Fatalf("start offsets %v", starts)
	}

	// A name in use by a consumer group with members is not a share group.
	cg := &cgRaw{t: t, cl: cl, group: "cgx", id: r.id}
	wantCG(t, "consumer group join", cg.hb(cgHB{member: "A", epoch: 0, names: []string{"sraw"}}).ErrorCode, nil)
	other := &shareRaw{t: t, cl: cl, group: "cgx", id: r.id}
	wantCG(t, "share join of a consumer group", other.hb("S", 0, []string{"sraw"}).ErrorCode, kerr.GroupIDNotFound)

	// And the reverse: a share group with members is no classic or consumer group.
	cgs := &cgRaw{t: t, cl: cl, group: "sg", id: r.id}
	wantCG(t, "consumer join of a share group", cgs.hb(cgHB{member: "C", epoch: 0, names: []string{"sraw"}}).ErrorCode, kerr.GroupIDNotFound)
	jreq := kmsg.NewPtrJoinGroupRequest()
	jreq.Group, jreq.ProtocolType, jreq.SessionTimeoutMillis, jreq.RebalanceTimeoutMillis = "sg", "consumer", 10000, 10000
	jp := kmsg.NewJoinGroupRequestProtocol()
	jp.Name = "range"
	jreq.Protocols = append(jreq.Protocols, jp)
	jresp, err := jreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	wantCG(t, "classic join of a share group", jresp.ErrorCode, kerr.InconsistentGroupProtocol)

	// Leaving ends membership; the empty group can be deleted.
	wantCG(t, "leave", r.hb("M", -1, nil).ErrorCode, nil)
	if resp, _ := adm.DeleteGroup(ctx, "sg"); resp.Err != nil {
		t.Fatalf("delete: %v", resp.Err)
	}
}

func errorsIs(err error, target *kerr.Error) bool {
	ke, ok := err.(*kerr.Error)
	return ok && ke == target
}

// TestShareGroupRestart: a share group's state is its subscription's
// cursor, so it survives a broker restart: accepted records are not
// delivered again, the others are, with their delivery counts continuing
// (the session closing at shutdown released them: one delivery more, as
// Kafka counts a lost acquisition), and the group configs persist.
func TestShareGroupRestart(t *testing.T) {
	d := startDurableServer(t)
	ctx := testCtx(t)
	cl := newKgo(t, d.addr, kgo.DefaultProduceTopic("srs"))
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "srs"); err != nil {
		t.Fatal(err)
	}
	td, err := adm.ListTopics(ctx, "srs")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := cl.ProduceSync(ctx, kgo.StringRecord(strconv.Itoa(i))).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	setEarliest := func(cl *kgo.Client) {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		res := kmsg.NewIncrementalAlterConfigsRequestResource()
		res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "rsg"
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = "share.auto.offset.reset", kmsg.StringPtr("earliest")
		res.Configs = append(res.Configs, c)
		req.Resources = append(req.Resources, res)
		if resp, err := req.RequestWith(ctx, cl); err != nil || resp.Resources[0].ErrorCode != 0 {
			t.Fatalf("config: %v", err)
		}
	}
	setEarliest(cl)
	r := &shareRaw{t: t, cl: cl, group: "rsg", id: td["srs"].ID}
	wantCG(t, "join", r.hb("M", 0, []string{"srs"}).ErrorCode, nil)
	fcl := newKgo(t, d.addr)
	got := acquired(r.fetch(fcl, "M", 0, []int32{0}, nil))
	epoch := int32(1)
	for ; len(got) < 6 && epoch < 20; epoch++ {
		got = append(got, acquired(r.fetch(fcl, "M", epoch, nil, nil))...)
	}
	if len(got) != 6 {
		t.Fatalf("acquired %v", got)
	}
	f := r.fetch(fcl, "M", epoch, nil, map[int32][]kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch{0: {ackBatch(0, 2, 1)}})
	if f.ErrorCode != 0 || len(f.Topics) == 0 || f.Topics[0].Partitions[0].AcknowledgeErrorCode != 0 {
		t.Fatalf("accept: %+v", f)
	}

	d.restart()
	cl = newKgo(t, d.addr)
	r.cl = cl
	dc := kmsg.NewPtrDescribeConfigsRequest()
	dcr := kmsg.NewDescribeConfigsRequestResource()
	dcr.ResourceType, dcr.ResourceName, dcr.ConfigNames = kmsg.ConfigResourceTypeGroupConfig, "rsg", []string{"share.auto.offset.reset"}
	dc.Resources = append(dc.Resources, dcr)
	if resp, err := dc.RequestWith(ctx, cl); err != nil || len(resp.Resources[0].Configs) != 1 || *resp.Resources[0].Configs[0].Value != "earliest" {
		t.Fatalf("config after restart: %+v %v", resp, err)
	}
	wantCG(t, "member forgotten", r.hb("M", 5, nil).ErrorCode, kerr.UnknownMemberID)
	wantCG(t, "rejoin", r.hb("M", 0, []string{"srs"}).ErrorCode, nil)
	fcl = newKgo(t, d.addr)
	got = acquired(r.fetch(fcl, "M", 0, []int32{0}, nil))
	for epoch = 1; len(got) < 3 && epoch < 20; epoch++ {
		got = append(got, acquired(r.fetch(fcl, "M", epoch, nil, nil))...)
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[0:3/2 0:4/2 0:5/2]" {
		t.Fatalf("after restart: %v", got)
	}
}
