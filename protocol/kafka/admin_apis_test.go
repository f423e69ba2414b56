package kafka

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

// TestAdminAPIsKadmAndSarama: the cluster-tool APIs (DescribeLogDirs,
// DescribeProducers, client quotas, ElectLeaders, partition reassignments,
// DescribeCluster) answer what is true of a one-node broker, through kadm
// and sarama's ClusterAdmin (sarama has no DescribeProducers).
func TestAdminAPIsKadmAndSarama(t *testing.T) {
	s := startDurableServer(t)
	ctx := testCtx(t)
	cl := newKgo(t, s.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "adm"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "adm", Partition: 0, Value: []byte("value")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	pname, _ := broker.ParseTopicName("adm-partition-0", "public", "default")
	part, err := s.broker.OpenPartition(ctx, pname, false)
	if err != nil {
		t.Fatal(err)
	}
	size := part.Stats().Bytes
	if size <= 0 {
		t.Fatalf("partition 0 stores %d bytes", size)
	}
	dir, _ := filepath.Abs(s.dir)

	sadm, err := sarama.NewClusterAdmin([]string{s.addr}, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer sadm.Close()

	t.Run("DescribeLogDirs", func(t *testing.T) {
		all, err := adm.DescribeAllLogDirs(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		d, ok := all[0][dir]
		if !ok || d.Err != nil || d.TotalBytes <= 0 || d.UsableBytes <= 0 {
			t.Fatalf("kadm: dir %s: %+v (all %+v)", dir, d, all)
		}
		if p, ok := all[0].Lookup(dir, "adm", 0); !ok || p.Size != size {
			t.Fatalf("kadm: adm/0 %+v, want %d bytes", p, size)
		}
		if p, ok := all[0].Lookup(dir, "adm", 1); !ok || p.Size != 0 {
			t.Fatalf("kadm: adm/1 %+v, want 0 bytes", p)
		}
		sdirs, err := sadm.DescribeLogDirs([]int32{0})
		if err != nil || len(sdirs[0]) != 1 || sdirs[0][0].Path != dir {
			t.Fatalf("sarama: %v %+v", err, sdirs)
		}
		var got int64 = -1
		for _, st := range sdirs[0][0].Topics {
			for _, sp := range st.Partitions {
				if st.Topic == "adm" && sp.PartitionID == 0 {
					got = sp.Size
				}
			}
		}
		if got != size {
			t.Fatalf("sarama: adm/0 size %d, want %d", got, size)
		}
	})

	t.Run("DescribeProducers", func(t *testing.T) {
		id, epoch, err := cl.ProducerID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var s kadm.TopicsSet
		s.Add("adm", 0, 1)
		described, err := adm.DescribeProducers(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		p0 := described["adm"].Partitions[0]
		pr, ok := p0.ActiveProducers[id]
		if p0.Err != nil || !ok || pr.ProducerEpoch != epoch || pr.LastSequence != 2 || pr.LastTimestamp <= 0 {
			t.Fatalf("partition 0: %+v, want producer %d epoch %d at sequence 2", p0, id, epoch)
		}
		if p1 := described["adm"].Partitions[1]; p1.Err != nil || len(p1.ActiveProducers) != 0 {
			t.Fatalf("partition 1: %+v", p1)
		}
	})

	t.Run("ClientQuotas", func(t *testing.T) {
		qs, err := adm.DescribeClientQuotas(ctx, false, nil)
		if err != nil || len(qs) != 0 {
			t.Fatalf("kadm describe: %v %+v", err, qs)
		}
		user := "alice"
		altered, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
			Entity: kadm.ClientQuotaEntity{{Type: "user", Name: &user}},
			Ops:    []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 1024}},
		}})
		if err != nil || len(altered) != 1 || !errors.Is(altered[0].Err, kerr.InvalidRequest) || !strings.Contains(altered[0].ErrMessage, "not enforce") {
			t.Fatalf("kadm alter: %v %+v", err, altered)
		}
		entries, err := sadm.DescribeClientQuotas(nil, false)
		if err != nil || len(entries) != 0 {
			t.Fatalf("sarama describe: %v %+v", err, entries)
		}
		err = sadm.AlterClientQuotas([]sarama.QuotaEntityComponent{{EntityType: sarama.QuotaEntityUser, MatchType: sarama.QuotaMatchExact, Name: "alice"}},
			sarama.ClientQuotasOp{Key: "producer_byte_rate", Value: 1024}, false)
		if err == nil || !strings.Contains(err.Error(), "not enforce") {
			t.Fatalf("sarama alter: %v", err)
		}
	})

	t.Run("ElectLeaders", func(t *testing.T) {
		var s kadm.TopicsSet
		s.Add("adm", 0, 1, 9)
		res, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, s)
		if err != nil {
			t.Fatal(err)
		}
		for p, want := range map[int32]error{0: kerr.ElectionNotNeeded, 1: kerr.ElectionNotNeeded, 9: kerr.UnknownTopicOrPartition} {
			if r := res["adm"][p]; !errors.Is(r.Err, want) {
				t.Errorf("kadm: partition %d: %+v, want %v", p, r, want)
			}
		}
		sres, err := sadm.ElectLeaders(sarama.PreferredElection, map[string][]int32{"adm": {0}})
		if err != nil || sres["adm"][0] == nil || !errors.Is(sres["adm"][0].ErrorCode, sarama.ErrElectionNotNeeded) {
			t.Fatalf("sarama: %v %+v", err, sres)
		}
	})

	t.Run("PartitionReassignments", func(t *testing.T) {
		var req kadm.AlterPartitionAssignmentsReq
		req.Assign("adm", 0, []int32{0})
		req.Assign("adm", 1, []int32{1})
		res, err := adm.AlterPartitionAssignments(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if r := res["adm"][0]; r.Err != nil {
			t.Errorf("kadm: the one replica it has: %+v", r)
		}
		if r := res["adm"][1]; !errors.Is(r.Err, kerr.InvalidReplicaAssignment) || !strings.Contains(r.ErrMessage, "one replica") {
			t.Errorf("kadm: another node: %+v", r)
		}
		var s kadm.TopicsSet
		s.Add("adm", 0, 1)
		listed, err := adm.ListPartitionReassignments(ctx, s)
		if err != nil || len(listed) != 0 {
			t.Fatalf("kadm list: %v %+v", err, listed)
		}
		if err := sadm.AlterPartitionReassignments("adm", [][]int32{{0}, {0, 1}}); err == nil {
			t.Fatal("sarama: two replicas accepted")
		}
		if err := sadm.AlterPartitionReassignments("adm", [][]int32{{0}, {0}}); err != nil {
			t.Fatalf("sarama: the replicas it has: %v", err)
		}
		status, err := sadm.ListPartitionReassignments("adm", []int32{0, 1})
		if err != nil || len(status) != 0 {
			t.Fatalf("sarama list: %v %+v", err, status)
		}
	})

	t.Run("DescribeCluster", func(t *testing.T) {
		req := kmsg.NewPtrDescribeClusterRequest()
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || resp.ClusterID != s.broker.ClusterID() || len(resp.Brokers) != 1 || resp.ControllerID != 0 {
			t.Fatalf("kmsg: %v %+v", err, resp)
		}
		brokers, controller, err := sadm.DescribeCluster()
		if err != nil || len(brokers) != 1 || controller != 0 || brokers[0].Addr() != s.addr {
			t.Fatalf("sarama: %v %v %d", err, brokers, controller)
		}
	})
}

// TestConsumerOffsetsRefused: __consumer_offsets stays listed (internal)
// but producing to, reading from or deleting it fails at once with a
// non-retriable INVALID_TOPIC_EXCEPTION instead of retrying to a timeout.
func TestConsumerOffsetsRefused(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	cl := newKgo(t, s.addr)
	// franz-go retries retriable errors until the context ends: getting
	// INVALID_TOPIC_EXCEPTION back proves the refusal is definitive.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: consumerOffsetsTopic, Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.InvalidTopicException) {
		t.Fatalf("franz-go produce: %v", err)
	}
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, consumerOffsetsTopic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup(consumerOffsetsTopic, 0); !errors.Is(o.Err, kerr.InvalidTopicException) {
		t.Fatalf("list offsets: %+v", ends)
	}
	if res, err := adm.DeleteTopics(ctx, consumerOffsetsTopic); err != nil || !errors.Is(res[consumerOffsetsTopic].Err, kerr.InvalidTopicException) {
		t.Fatalf("delete: %v %+v", err, res)
	}
	if res, err := adm.CreateTopic(ctx, 1, 1, nil, consumerOffsetsTopic); !errors.Is(err, kerr.InvalidTopicException) {
		t.Fatalf("create: %v %+v", err, res)
	}
	cfg := saramaConfig()
	cfg.Producer.Idempotent, cfg.Net.MaxOpenRequests = false, 5
	cfg.Producer.Retry.Max = 0
	sp, err := sarama.NewSyncProducer([]string{s.addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if _, _, err := sp.SendMessage(&sarama.ProducerMessage{Topic: consumerOffsetsTopic, Value: sarama.StringEncoder("x")}); !errors.Is(err, sarama.ErrInvalidTopic) {
		t.Fatalf("sarama produce: %v", err)
	}
}

// TestApiVersionsAdvertisesAdminAPIs: the admin APIs are advertised; the
// SCRAM credential APIs only with authentication on.
func TestApiVersionsAdvertisesAdminAPIs(t *testing.T) {
	s := startServer(t)
	req := kmsg.NewPtrApiVersionsRequest()
	resp, err := req.RequestWith(testCtx(t), newKgo(t, s.addr))
	if err != nil {
		t.Fatal(err)
	}
	var keys []int16
	for _, k := range resp.ApiKeys {
		keys = append(keys, k.ApiKey)
	}
	for _, want := range []int16{35, 43, 45, 46, 48, 49, 60, 61} {
		if !slices.Contains(keys, want) {
			t.Errorf("key %d (%s) not advertised", want, kmsg.NameForKey(want))
		}
	}
	for _, absent := range []int16{50, 51} {
		if slices.Contains(keys, absent) {
			t.Errorf("key %d (%s) advertised without authentication", absent, kmsg.NameForKey(absent))
		}
	}
}
