package server

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafkaAuthzWorld is a broker with authorization on and two tenants:
// tenant-a (admin role a-admin) with namespace tenant-a/ns where alice may
// produce and consume and carol may only produce; tenant-b with tenant-b/ns
// where bob may produce and consume.
type kafkaAuthzWorld struct {
	t    *testing.T
	s    *Server
	addr string
}

func newKafkaAuthzWorld(t *testing.T) *kafkaAuthzWorld {
	t.Helper()
	s := startAuthServer(t, map[string]string{"authorization-enabled": "true", "superuser-roles": "admin", "auth-failure-delay": "0s",
		"kafka-group-initial-rebalance-delay": "0s"})
	w := &kafkaAuthzWorld{t: t, s: s, addr: s.Addr("kafka").String()}
	w.admin("PUT", "/admin/v2/tenants/tenant-a", `{"adminRoles":["a-admin"],"allowedClusters":["standalone"]}`, 204)
	w.admin("PUT", "/admin/v2/tenants/tenant-b", `{"adminRoles":["b-admin"],"allowedClusters":["standalone"]}`, 204)
	w.admin("PUT", "/admin/v2/namespaces/tenant-a/ns", "", 204)
	w.admin("PUT", "/admin/v2/namespaces/tenant-b/ns", "", 204)
	w.admin("POST", "/admin/v2/namespaces/tenant-a/ns/permissions/alice", `["produce","consume"]`, 204)
	w.admin("POST", "/admin/v2/namespaces/tenant-a/ns/permissions/carol", `["produce"]`, 204)
	w.admin("POST", "/admin/v2/namespaces/tenant-b/ns/permissions/bob", `["produce","consume"]`, 204)
	return w
}

// admin makes an admin API request as the superuser and checks its status.
func (w *kafkaAuthzWorld) admin(method, path, body string, want int) string {
	w.t.Helper()
	code, b := adminREST(w.t, w.s, "admin", method, path, body)
	if code != want {
		w.t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, want)
	}
	return b
}

// client is a franz-go client of role, its short names in namespace
// ("tenant/ns", the SASL PLAIN username).
func (w *kafkaAuthzWorld) client(role, namespace string, opts ...kgo.Opt) *kgo.Client {
	w.t.Helper()
	token := testToken(w.t, testSecret, jwt.MapClaims{"sub": role, "exp": time.Now().Add(time.Hour).Unix()})
	opts = append([]kgo.Opt{kgo.SeedBrokers(w.addr), kgo.SASL(plainToken(namespace, token)),
		kgo.RequestRetries(2), kgo.RetryTimeout(3 * time.Second)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(cl.Close)
	return cl
}

func authzCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// produceOne produces one record and returns the error.
func produceOne(ctx context.Context, cl *kgo.Client, topic, value string) error {
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr()
}

// rawFetch fetches partition 0 of topic from offset 0 and returns the
// partition's error code.
func rawFetch(ctx context.Context, t *testing.T, cl *kgo.Client, topic string) int16 {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.MaxWaitMillis, req.MaxBytes = 11, 10, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("fetch %s: %v", topic, err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch %s: %+v", topic, resp)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

func wantKerr(t *testing.T, what string, err error, want *kerr.Error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

// consumeAll reads n records of topic with group g and commits them.
func consumeAll(ctx context.Context, t *testing.T, cl *kgo.Client, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %v, want %d: %v", got, n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestKafkaAuthzTenantIsolation: with franz-go, a role granted tenant A's
// namespace cannot produce, consume, list or describe tenant B's topics or
// groups, whatever namespace it claims in its SASL username; its own work
// goes on after each refusal.
func TestKafkaAuthzTenantIsolation(t *testing.T) {
	w := newKafkaAuthzWorld(t)
	ctx := authzCtx(t)

	// bob: a topic and a group "shared-name" in tenant B.
	bob := w.client("bob", "tenant-b/ns", kgo.AllowAutoTopicCreation())
	if err := produceOne(ctx, bob, "secret", "b1"); err != nil {
		t.Fatalf("bob produces in his namespace: %v", err)
	}
	bobGroup := w.client("bob", "tenant-b/ns", kgo.ConsumeTopics("secret"), kgo.ConsumerGroup("shared-name"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if got := consumeAll(ctx, t, bobGroup, 1); got[0] != "b1" {
		t.Fatalf("bob consumed %v", got)
	}

	// alice: her own topic and a group of the same name, in tenant A.
	alice := w.client("alice", "tenant-a/ns", kgo.AllowAutoTopicCreation())
	if err := produceOne(ctx, alice, "mine", "a1"); err != nil {
		t.Fatalf("alice produces in her namespace: %v", err)
	}
	aliceGroup := w.client("alice", "tenant-a/ns", kgo.ConsumeTopics("mine"), kgo.ConsumerGroup("shared-name"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if got := consumeAll(ctx, t, aliceGroup, 1); got[0] != "a1" {
		t.Fatalf("alice consumed %v", got)
	}

	// alice addressing tenant B's topic by its full name.
	wantKerr(t, "produce to tenant-b/ns/secret", produceOne(ctx, alice, "tenant-b/ns/secret", "x"), kerr.TopicAuthorizationFailed)
	wantKerr(t, "produce to a new topic in tenant B", produceOne(ctx, alice, "tenant-b/ns/new-one", "x"), kerr.TopicAuthorizationFailed)
	if code := rawFetch(ctx, t, alice, "tenant-b/ns/secret"); code != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("fetch tenant-b/ns/secret: code %d, want TOPIC_AUTHORIZATION_FAILED", code)
	}
	adm := kadm.NewClient(alice)
	md, err := adm.Metadata(ctx, "tenant-b/ns/secret")
	if err == nil {
		err = md.Topics["tenant-b/ns/secret"].Err
	}
	wantKerr(t, "metadata of tenant-b/ns/secret", err, kerr.TopicAuthorizationFailed)
	ends, err := adm.ListEndOffsets(ctx, "tenant-b/ns/secret")
	if err == nil {
		err = ends.Error()
	}
	wantKerr(t, "list offsets of tenant-b/ns/secret", err, kerr.TopicAuthorizationFailed)
	rcs, err := adm.DescribeTopicConfigs(ctx, "tenant-b/ns/secret")
	if err == nil && len(rcs) == 1 {
		err = rcs[0].Err
	}
	wantKerr(t, "describe configs of tenant-b/ns/secret", err, kerr.TopicAuthorizationFailed)
	if _, err := w.s.Broker().GetTopic(ctx, mustTopic(t, "tenant-b/ns/new-one")); err == nil {
		t.Error("alice's refused produce created a topic in tenant B")
	}

	// alice claiming tenant B's namespace as her own (SASL username).
	spoof := w.client("alice", "tenant-b/ns")
	sadm := kadm.NewClient(spoof)
	topics, err := sadm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if names := topics.Names(); len(names) != 0 {
		t.Errorf("alice listed tenant B's topics: %v", names)
	}
	wantKerr(t, "produce to short name in tenant B", produceOne(ctx, spoof, "secret", "x"), kerr.TopicAuthorizationFailed)
	groups, err := sadm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 0 {
		t.Errorf("alice listed tenant B's groups: %v", groups.Groups())
	}
	dg, err := sadm.DescribeGroups(ctx, "shared-name")
	if err == nil {
		err = dg["shared-name"].Err
	}
	wantKerr(t, "describe tenant B's group", err, kerr.GroupAuthorizationFailed)
	of, err := sadm.FetchOffsets(ctx, "shared-name")
	if err == nil {
		err = of.Error()
	}
	wantKerr(t, "fetch tenant B's group offsets", err, kerr.GroupAuthorizationFailed)

	// In her own namespace, "shared-name" is her group only: one member,
	// her offsets on her topic.
	aadm := kadm.NewClient(alice)
	lg, err := aadm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := lg.Groups(); !slices.Equal(got, []string{"shared-name"}) {
		t.Errorf("alice's groups: %v", got)
	}
	aof, err := aadm.FetchOffsets(ctx, "shared-name")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := aof.Lookup("mine", 0); !ok || o.At != 1 {
		t.Errorf("alice's group offset on mine: %+v %v", o, ok)
	}
	if _, ok := aof.Lookup("tenant-b/ns/secret", 0); ok {
		t.Error("alice's group shows tenant B's commits")
	}
	// Bob's group in his namespace kept its own commit.
	bof, err := kadm.NewClient(bob).FetchOffsets(ctx, "shared-name")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := bof.Lookup("secret", 0); !ok || o.At != 1 {
		t.Errorf("bob's group offset on secret: %+v %v", o, ok)
	}

	// Topic administration: only the tenant admin (and superuser).
	_, err = aadm.CreateTopic(ctx, 1, 1, nil, "alice-made")
	wantKerr(t, "alice creates a topic", err, kerr.TopicAuthorizationFailed)
	aAdmin := kadm.NewClient(w.client("a-admin", "tenant-a/ns"))
	if _, err := aAdmin.CreateTopic(ctx, 1, 1, nil, "admin-made"); err != nil {
		t.Errorf("tenant admin creates a topic in its tenant: %v", err)
	}
	_, err = aAdmin.CreateTopic(ctx, 1, 1, nil, "tenant-b/ns/admin-made")
	wantKerr(t, "tenant A's admin creates a topic in tenant B", err, kerr.TopicAuthorizationFailed)
	dr, err := aAdmin.DeleteTopics(ctx, "tenant-b/ns/secret")
	if err == nil {
		err = dr["tenant-b/ns/secret"].Err
	}
	wantKerr(t, "tenant A's admin deletes tenant B's topic", err, kerr.TopicAuthorizationFailed)

	// After every refusal alice's connection still works.
	if err := produceOne(ctx, alice, "mine", "a2"); err != nil {
		t.Fatalf("alice after the refusals: %v", err)
	}
}

// TestKafkaAuthzActions: a produce-only grant cannot consume or join a
// group; revoking a grant refuses the next request of an open connection.
func TestKafkaAuthzActions(t *testing.T) {
	w := newKafkaAuthzWorld(t)
	ctx := authzCtx(t)
	carol := w.client("carol", "tenant-a/ns", kgo.AllowAutoTopicCreation())
	if err := produceOne(ctx, carol, "carols", "c1"); err != nil {
		t.Fatalf("carol produces: %v", err)
	}
	if code := rawFetch(ctx, t, carol, "carols"); code != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("produce-only fetch: code %d, want TOPIC_AUTHORIZATION_FAILED", code)
	}
	jr := kmsg.NewPtrJoinGroupRequest()
	jr.Version, jr.Group, jr.SessionTimeoutMillis, jr.RebalanceTimeoutMillis, jr.ProtocolType = 5, "carols-group", 10000, 10000, "consumer"
	jr.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	// franz-go asks FindCoordinator first, which refuses already.
	jresp, err := jr.RequestWith(ctx, carol)
	if err == nil {
		err = kerr.ErrorForCode(jresp.ErrorCode)
	}
	wantKerr(t, "produce-only JoinGroup", err, kerr.GroupAuthorizationFailed)

	alice := w.client("alice", "tenant-a/ns")
	if err := produceOne(ctx, alice, "carols", "a1"); err != nil {
		t.Fatalf("alice before revocation: %v", err)
	}
	w.admin("DELETE", "/admin/v2/namespaces/tenant-a/ns/permissions/alice", "", 204)
	wantKerr(t, "alice after revocation", produceOne(ctx, alice, "carols", "a2"), kerr.TopicAuthorizationFailed)
	if code := rawFetch(ctx, t, alice, "carols"); code != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("fetch after revocation: code %d", code)
	}
}

// TestKafkaAuthzSarama: sarama's producer and consumer get Kafka's
// authorization errors for another tenant's topic.
func TestKafkaAuthzSarama(t *testing.T) {
	w := newKafkaAuthzWorld(t)
	ctx := authzCtx(t)
	if err := produceOne(ctx, w.client("bob", "tenant-b/ns", kgo.AllowAutoTopicCreation()), "secret", "b1"); err != nil {
		t.Fatal(err)
	}
	cfg := saramaPlainToken(t, sarama.V2_8_0_0, "tenant-a/ns", "alice")
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Max = 0
	// The Metadata request that auto-creates "own" answers
	// LEADER_NOT_AVAILABLE (as Kafka does); sarama's metadata retry
	// fetches the partitions. Authorization failures are not retried.
	cfg.Metadata.Retry.Max = 3
	cfg.Metadata.Retry.Backoff = 20 * time.Millisecond
	cl, err := sarama.NewClient([]string{w.addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p, err := sarama.NewSyncProducerFromClient(cl)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "tenant-b/ns/secret", Value: sarama.StringEncoder("x")}); !errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
		t.Errorf("sarama produce to tenant B: %v, want ErrTopicAuthorizationFailed", err)
	}
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "own", Value: sarama.StringEncoder("x")}); err != nil {
		t.Errorf("sarama produce in own namespace: %v", err)
	}
	c, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ConsumePartition("tenant-b/ns/secret", 0, sarama.OffsetOldest); !errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
		t.Errorf("sarama consume from tenant B: %v, want ErrTopicAuthorizationFailed", err)
	}
	ca, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.DescribeConsumerGroups([]string{"any"}); err != nil {
		t.Errorf("describe own group: %v", err)
	}
}

// TestKafkaAuthzAddPartitionsToTxnV4: AddPartitionsToTxn v4+ is the
// broker-to-broker form (Kafka requires CLUSTER_ACTION): a role that may
// produce is refused at the top level, a superuser is answered per
// transaction.
func TestKafkaAuthzAddPartitionsToTxnV4(t *testing.T) {
	w := newKafkaAuthzWorld(t)
	ctx := authzCtx(t)
	verify := func(cl *kgo.Client) *kmsg.AddPartitionsToTxnResponse {
		t.Helper()
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
		tx.TransactionalID, tx.ProducerID, tx.VerifyOnly = "nobody", 1, true
		req.Transactions = append(req.Transactions, tx)
		// To the broker itself: a Client.Request would be sharded to the
		// transaction's coordinator, which FindCoordinator may refuse first.
		resp, err := cl.SeedBrokers()[0].Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if req.Version < 4 {
			t.Fatalf("sent v%d", req.Version)
		}
		return resp.(*kmsg.AddPartitionsToTxnResponse)
	}
	if r := verify(w.client("alice", "tenant-a/ns")); r.ErrorCode != kerr.ClusterAuthorizationFailed.Code || len(r.Transactions) != 0 {
		t.Errorf("alice: top-level %v, %d transactions; want CLUSTER_AUTHORIZATION_FAILED", kerr.ErrorForCode(r.ErrorCode), len(r.Transactions))
	}
	if r := verify(w.client("admin", "tenant-a/ns")); r.ErrorCode != 0 || len(r.Transactions) != 1 || r.Transactions[0].TransactionalID != "nobody" {
		t.Errorf("superuser: top-level %v, transactions %+v", kerr.ErrorForCode(r.ErrorCode), r.Transactions)
	}
}
