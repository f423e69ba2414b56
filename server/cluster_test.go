package server

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/metadata/etcdtest"
	"github.com/kopernik-io/kopernik/objectstore/s3test"
)

// startCluster starts n brokers of one cluster on one real etcd and one
// real S3 server (the log), each with its own data dir and loopback
// listeners.
func startCluster(t testing.TB, n int, settings ...string) (*etcdtest.Server, []*Server) {
	etcd, _, out := startClusterWith(t, n, settings...)
	return etcd, out
}

// startClusterWith is startCluster that also returns the S3 server, for
// tests that start more brokers later (startClusterBroker).
func startClusterWith(t testing.TB, n int, settings ...string) (*etcdtest.Server, *s3test.Server, []*Server) {
	etcd := etcdtest.Start(t)
	s3 := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	var out []*Server
	for i := range n {
		out = append(out, startClusterBroker(t, etcd, s3, i, settings...))
	}
	return etcd, s3, out
}

// startClusterBroker starts broker i of startCluster's cluster.
func startClusterBroker(t testing.TB, etcd *etcdtest.Server, s3 *s3test.Server, i int, settings ...string) *Server {
	kv := append([]string{
		"metadata-store-url", etcd.URL(), "cluster-name", "c1", "cluster-lease-ttl", "1s",
		"broker-name", fmt.Sprintf("broker-%d", i),
		"offload-driver", "s3", "offload-s3-endpoint", s3.Endpoint, "offload-s3-bucket", s3.Bucket,
		"offload-s3-region", s3test.Region,
	}, settings...)
	return startStorageServer(t, t.TempDir(), nil, kv...)
}

// leaders returns partition -> leader node id from a Metadata request sent
// to the broker with node id node.
func leaders(ctx context.Context, t *testing.T, cl *kgo.Client, node int32, topic string) (map[int32]int32, []int32) {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl.Broker(int(node)))
	if err != nil {
		t.Fatalf("metadata from node %d: %v", node, err)
	}
	var brokers []int32
	for _, b := range resp.Brokers {
		brokers = append(brokers, b.NodeID)
	}
	sort.Slice(brokers, func(i, j int) bool { return brokers[i] < brokers[j] })
	out := map[int32]int32{}
	for _, tp := range resp.Topics {
		if err := kerr.ErrorForCode(tp.ErrorCode); err != nil {
			t.Fatalf("metadata of %s from node %d: %v", topic, node, err)
		}
		for _, p := range tp.Partitions {
			out[p.Partition] = p.Leader
		}
	}
	return out, brokers
}

// TestClusterRouting: three brokers on one etcd agree on who serves each
// partition, spread partitions over themselves, and route real clients:
// franz-go produces and consumes through the owners, a request for a
// partition sent to a non-owner gets NOT_LEADER_OR_FOLLOWER, a Pulsar client looking up on the
// wrong broker is sent to the owner. When a broker dies its registration
// expires and Metadata names only live brokers again.
// (Failover with data: TestClusterFailover.)
func TestClusterRouting(t *testing.T) {
	_, brokers := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic = "routed"
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers[0].Addr("kafka").String()), kgo.DefaultProduceTopic(topic),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 6, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	want, nodes := leaders(ctx, t, cl, 0, topic)
	if len(nodes) != 3 {
		t.Fatalf("metadata lists brokers %v, want 3", nodes)
	}
	for _, node := range nodes {
		got, _ := leaders(ctx, t, cl, node, topic)
		for p, l := range want {
			if got[p] != l {
				t.Fatalf("partition %d: node 0 says leader %d, node %d says %d", p, l, node, got[p])
			}
		}
	}
	perNode := map[int32]int{}
	for _, l := range want {
		perNode[l]++
	}
	if len(perNode) < 2 {
		t.Fatalf("6 partitions all on one broker: %v", want)
	}

	// Produce to every partition through its owner, read everything back.
	for i := range 60 {
		r := &kgo.Record{Value: []byte(fmt.Sprint(i)), Partition: int32(i % 6)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	seen := 0
	for seen < 60 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("after %d records: %v", seen, err)
		}
		seen += fs.NumRecords()
	}

	// A produce sent to a broker that does not own the partition.
	var wrong int32 = -1
	for _, node := range nodes {
		if node != want[0] {
			wrong = node
		}
	}
	lreq := kmsg.NewPtrListOffsetsRequest()
	lreq.ReplicaID = -1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Partition, lp.Timestamp = 0, -1
	lt.Partitions = append(lt.Partitions, lp)
	lreq.Topics = append(lreq.Topics, lt)
	lresp, err := lreq.RequestWith(ctx, cl.Broker(int(wrong)))
	if err != nil {
		t.Fatal(err)
	}
	if code := lresp.Topics[0].Partitions[0].ErrorCode; code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("list offsets at non-owner node %d: error %v, want NOT_LEADER_OR_FOLLOWER", wrong, kerr.ErrorForCode(code))
	}

	// Pulsar: look up through a broker that does not own the topic.
	pname := "persistent://public/default/pulsar-routed"
	pn, err := broker.ParseTopicName(pname, "public", "default")
	if err != nil {
		t.Fatal(err)
	}
	powner, err := brokers[0].Broker().Cluster().Owner(ctx, pn)
	if err != nil {
		t.Fatal(err)
	}
	var via *Server
	for _, s := range brokers {
		if s.member.Self().NodeID != powner.NodeID {
			via = s
		}
	}
	pcl, err := pulsar.NewClient(pulsar.ClientOptions{URL: "pulsar://" + via.Addr("pulsar").String(), Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	cons, err := pcl.Subscribe(pulsar.ConsumerOptions{Topic: pname, SubscriptionName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	prod, err := pcl.CreateProducer(pulsar.ProducerOptions{Topic: pname})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := range 5 {
		if _, err := prod.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		m, err := cons.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Payload()) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q", i, m.Payload())
		}
		cons.Ack(m)
	}
	owners := 0
	for _, s := range brokers {
		for _, p := range s.Broker().Partitions() {
			if p.Name().String() == pname {
				owners++
				if s.member.Self().NodeID != powner.NodeID {
					t.Fatalf("%s loaded on node %d, its owner is %d", pname, s.member.Self().NodeID, powner.NodeID)
				}
			}
		}
	}
	if owners != 1 {
		t.Fatalf("%s loaded on %d brokers, want exactly its owner", pname, owners)
	}

	// Admin REST on a broker that does not own the topic redirects to the
	// owner (Go's client follows the 307), and lookup names the owner.
	code, body := httpGet(t, via, "/admin/v2/persistent/public/default/pulsar-routed/stats")
	if code != 200 || !strings.Contains(body, `"s"`) {
		t.Fatalf("stats through a non-owner: %d %s", code, body)
	}
	code, body = httpGet(t, via, "/lookup/v2/topic/persistent/public/default/pulsar-routed")
	if code != 200 || !strings.Contains(body, powner.Pulsar) {
		t.Fatalf("lookup through a non-owner: %d %s, want owner %s", code, body, powner.Pulsar)
	}

	// The endpoint brokers forward offsets to refuses requests without
	// the cluster's secret.
	iresp, err := http.Post("http://"+via.Addr("http").String()+"/internal/kafka/v1/offsets", "application/json",
		strings.NewReader(`{"group":"g","topic":"persistent://public/default/routed-partition-0","commit":true,"offset":0}`))
	if err != nil {
		t.Fatal(err)
	}
	iresp.Body.Close()
	if iresp.StatusCode != http.StatusForbidden {
		t.Fatalf("internal offsets endpoint without the secret: %d, want 403", iresp.StatusCode)
	}

	// A broker dies (its lease runs out): Metadata drops it.
	dead := brokers[2]
	deadID := dead.member.Self().NodeID
	dead.abandon()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, live := leaders(ctx, t, cl, brokers[0].member.Self().NodeID, topic)
		if len(live) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead node %d still listed 15s after its death: %v", deadID, live)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// abandon stops the server as kill -9 would, as far as the cluster sees
// it: listeners and storage close, the lease is not revoked (Close leaves
// the cluster only through s.member) but left to expire.
func (s *Server) abandon() {
	s.member = nil
	s.Close(context.Background())
}

// TestClusterRejoinAfterEtcdOutage: etcd down past the lease TTL makes
// every broker give its lease up and unload what it served; once etcd is
// back the brokers rejoin by themselves under their node ids, and real
// clients produce and consume through them again.
func TestClusterRejoinAfterEtcdOutage(t *testing.T) {
	etcd, brokers := startCluster(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids := []int32{brokers[0].member.Self().NodeID, brokers[1].member.Self().NodeID}
	lost := []<-chan struct{}{brokers[0].member.Lost(), brokers[1].member.Lost()}
	etcd.Stop()
	for i, l := range lost {
		select {
		case <-l:
		case <-time.After(15 * time.Second):
			t.Fatalf("broker %d kept its lease 15s into an etcd outage (TTL 1s)", i)
		}
	}
	if err := etcd.Restart(); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers[0].Addr("kafka").String()), kgo.DefaultProduceTopic("after-outage"),
		kgo.ConsumeTopics("after-outage"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{} // no topics: brokers only
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && len(resp.Brokers) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("brokers did not rejoin within 30s of etcd's return (last answer: %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, s := range brokers {
		if s.member.Self().NodeID != ids[i] {
			t.Fatalf("broker %d rejoined as node %d, was %d", i, s.member.Self().NodeID, ids[i])
		}
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 4, 1, nil, "after-outage"); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i)), Partition: int32(i % 4)}).FirstErr(); err != nil {
			t.Fatalf("produce %d after rejoin: %v", i, err)
		}
	}
	seen := 0
	for seen < 40 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume after rejoin, %d records in: %v", seen, err)
		}
		seen += fs.NumRecords()
	}
}
