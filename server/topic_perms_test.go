package server

// Topic-level permissions end to end: granted through Pulsar's
// /admin/v2/persistent/{t}/{ns}/{topic}/permissions or Kafka LITERAL topic
// ACLs, enforced for pulsar-client-go, franz-go and sarama clients.

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/IBM/sarama"
	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

// topicPermissions is GET .../{topic}/permissions as role, which must answer 200.
func topicPermissions(t *testing.T, s *Server, role, topicPath string) map[string][]string {
	t.Helper()
	code, body := adminREST(t, s, role, "GET", "/admin/v2/persistent/"+topicPath+"/permissions", "")
	if code != 200 {
		t.Fatalf("GET permissions of %s: %d %s", topicPath, code, body)
	}
	var out map[string][]string
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPulsarTopicPermissions: a role granted one topic (tina) produces and
// consumes it, and a partitioned topic's partitions, but nothing else of
// the namespace; a revocation applies to her next producer.
func TestPulsarTopicPermissions(t *testing.T) {
	e := startAuthzEnv(t)
	const orders, other, parted = "persistent://tenant-a/ns/orders", "persistent://tenant-a/ns/other", "persistent://tenant-a/ns/parted"
	if code, body := e.rest("admin", "PUT", "/admin/v2/persistent/tenant-a/ns/parted/partitions", "2"); code/100 != 2 {
		t.Fatalf("create parted: %d %s", code, body)
	}
	tina := e.client("tina")
	// Refused first (and cached): the grant below must take effect at once.
	wantAuthzErr(t, "tina produces before her grant", produce(tina, orders, "too early"))

	// Only the tenant's admins grant.
	if code, body := e.rest("alice", "POST", "/admin/v2/persistent/tenant-a/ns/orders/permissions/tina", `["produce"]`); code != 403 {
		t.Fatalf("alice grants: %d %s, want 403", code, body)
	}
	if code, body := e.rest("b-admin", "POST", "/admin/v2/persistent/tenant-a/ns/orders/permissions/tina", `["produce"]`); code != 403 {
		t.Fatalf("b-admin grants in tenant-a: %d %s, want 403", code, body)
	}
	for _, path := range []string{"tenant-a/ns/orders", "tenant-a/ns/parted"} {
		if code, body := e.rest("a-admin", "POST", "/admin/v2/persistent/"+path+"/permissions/tina", `["produce","consume"]`); code != 204 {
			t.Fatalf("a-admin grants tina %s: %d %s", path, code, body)
		}
	}
	// The effective grants: the namespace's and the topic's.
	want := map[string][]string{"alice": {"consume", "produce"}, "carol": {"consume", "produce"}, "writer": {"produce"},
		"reader": {"consume"}, "tina": {"consume", "produce"}}
	if got := topicPermissions(t, e.s, "a-admin", "tenant-a/ns/orders"); !reflect.DeepEqual(got, want) {
		t.Fatalf("orders permissions: %v", got)
	}
	if got := topicPermissions(t, e.s, "a-admin", "tenant-a/ns/other"); got["tina"] != nil {
		t.Fatalf("other permissions show tina: %v", got)
	}

	if err := produce(tina, orders, "from tina"); err != nil {
		t.Fatalf("tina produces to orders: %v", err)
	}
	if v, err := consumeOne(tina, orders, "tina-sub"); err != nil || v != "from tina" {
		t.Fatalf("tina consumes orders: %q %v", v, err)
	}
	// A partitioned topic: the client looks up and produces to partitions.
	if err := produce(tina, parted, "to a partition"); err != nil {
		t.Fatalf("tina produces to parted: %v", err)
	}
	if v, err := consumeOne(tina, parted, "tina-sub"); err != nil || v != "to a partition" {
		t.Fatalf("tina consumes parted: %q %v", v, err)
	}
	// The sibling topic, and the namespace as a whole, stay closed to her.
	wantAuthzErr(t, "tina produces to other", produce(tina, other, "no"))
	_, err := tina.Subscribe(pulsar.ConsumerOptions{Topic: other, SubscriptionName: "tina-sub"})
	wantAuthzErr(t, "tina subscribes to other", err)
	if _, err := tina.TopicPartitions(other); err == nil {
		t.Error("tina looks other up")
	}
	if parts, err := tina.TopicPartitions(parted); err != nil || len(parts) != 2 {
		t.Errorf("tina looks parted up: %v %v", parts, err)
	}
	if code, _ := e.rest("tina", "GET", "/admin/v2/namespaces/tenant-a/ns/topics", ""); code != 403 {
		t.Errorf("tina lists the namespace's topics: %d, want 403 (a topic grant gives nothing on the namespace)", code)
	}
	if code, _ := e.rest("tina", "GET", "/lookup/v2/topic/persistent/tenant-a/ns/orders", ""); code != 200 {
		t.Errorf("tina looks orders up over HTTP: %d", code)
	}
	if code, _ := e.rest("tina", "GET", "/lookup/v2/topic/persistent/tenant-a/ns/other", ""); code != 403 {
		t.Errorf("tina looks other up over HTTP: %d, want 403", code)
	}

	// Revoke: her next producer is refused; the namespace's grants stay.
	if code, body := e.rest("a-admin", "DELETE", "/admin/v2/persistent/tenant-a/ns/orders/permissions/tina", ""); code != 204 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if code, _ := e.rest("a-admin", "DELETE", "/admin/v2/persistent/tenant-a/ns/orders/permissions/alice", ""); code != 412 {
		t.Errorf("revoking alice's namespace grant on the topic: %d, want 412", code)
	}
	delete(want, "tina")
	if got := topicPermissions(t, e.s, "a-admin", "tenant-a/ns/orders"); !reflect.DeepEqual(got, want) {
		t.Fatalf("orders permissions after the revocation: %v", got)
	}
	wantAuthzErr(t, "tina produces after the revocation", produce(tina, orders, "too late"))
	if err := produce(tina, parted, "still granted"); err != nil {
		t.Fatalf("tina's parted grant went with orders': %v", err)
	}
}

// topicACLServer is a Kafka broker with authorization on, tenant-a (admin
// role boss) and tenant-a/ns, without a group rebalance delay.
func topicACLServer(t *testing.T) *Server {
	t.Helper()
	s := startAuthServer(t, map[string]string{"authorization-enabled": "true", "superuser-roles": "admin", "protocols": "kafka",
		"kafka-group-initial-rebalance-delay": "0s"})
	aclSetup(t, s)
	for _, name := range []string{"orders", "other"} {
		if err := s.Broker().CreateTopic(aclCtx(t), broker.TopicName{Domain: "persistent", Tenant: "tenant-a", Namespace: "ns", Local: name}, 1, broker.Policies{}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestKafkaTopicACLs: LITERAL topic ACLs made with kadm are topic grants:
// alice (SASL user tenant-a/ns) produces and consumes "orders" with a
// group, not "other"; DescribeAcls reports them as LITERAL bindings;
// DeleteAcls removes them.
func TestKafkaTopicACLs(t *testing.T) {
	s := topicACLServer(t)
	ctx := aclCtx(t)
	boss := kadm.NewClient(aclKgo(t, s, "tenant-a/ns", "boss"))
	su := kadm.NewClient(aclKgo(t, s, "public/default", "admin"))
	alice := aclKgo(t, s, "tenant-a/ns", "alice")

	wantKerr(t, "alice produces before the grant", produceOne(ctx, alice, "orders", "too early"), kerr.TopicAuthorizationFailed)
	// As kafka-acls --add --allow-principal User:alice --operation Read
	// --operation Write --topic orders, then --group '*' --operation Read.
	created, err := boss.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").Topics("orders").
		ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpRead, kadm.OpWrite, kadm.OpDescribe))
	if err != nil || len(created) != 3 {
		t.Fatalf("create: %+v %v", created, err)
	}
	for _, c := range created {
		if c.Err != nil {
			t.Fatalf("create %s %s: %v %s", c.Name, c.Operation, c.Err, c.ErrMessage)
		}
	}
	if g, err := boss.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").Groups("*").Operations(kadm.OpRead)); err != nil || g[0].Err != nil {
		t.Fatalf("create group READ: %+v %v", g, err)
	}
	if got := topicPermissions(t, s, "admin", "tenant-a/ns/orders"); !reflect.DeepEqual(got, map[string][]string{"alice": {"consume", "produce"}}) {
		t.Fatalf("orders permissions: %v", got)
	}
	if got := aclPermissions(t, s, "tenant-a/ns"); len(got) != 0 {
		t.Fatalf("the namespace's permissions changed (group READ widened the grant?): %v", got)
	}

	if err := produceOne(ctx, alice, "orders", "from alice"); err != nil {
		t.Fatalf("alice produces to orders: %v", err)
	}
	wantKerr(t, "alice produces to other", produceOne(ctx, alice, "other", "no"), kerr.TopicAuthorizationFailed)
	if code := rawFetch(ctx, t, alice, "other"); code != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("alice fetches other: code %d, want TOPIC_AUTHORIZATION_FAILED", code)
	}
	group := aclKgo(t, s, "tenant-a/ns", "alice", kgo.ConsumerGroup("alice-group"), kgo.ConsumeTopics("orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if got := consumeAll(ctx, t, group, 1); !reflect.DeepEqual(got, []string{"from alice"}) {
		t.Fatalf("alice's group consumed %v", got)
	}
	offs, err := kadm.NewClient(alice).FetchOffsets(ctx, "alice-group")
	if err != nil || offs.Error() != nil {
		t.Fatalf("alice fetches her group's offsets: %v %v", err, offs.Error())
	}
	if o, ok := offs.Lookup("orders", 0); !ok || o.At != 1 {
		t.Fatalf("alice-group's offset on orders: %+v %v", o, ok)
	}
	// Listing all topics shows hers, not the sibling.
	md, err := kadm.NewClient(alice).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !md.Has("orders") || md.Has("other") {
		t.Fatalf("alice lists %v", md.Names())
	}

	// DescribeAcls: a LITERAL binding, named as each connection names it.
	d, err := boss.DescribeACLs(ctx, kadm.NewACLs().Allow().AllowHosts().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations())
	want := []kadm.DescribedACL{
		{Principal: "User:alice", Host: "*", Type: kmsg.ACLResourceTypeTopic, Name: "orders", Pattern: kadm.ACLPatternLiteral, Operation: kadm.OpRead, Permission: kmsg.ACLPermissionTypeAllow},
		{Principal: "User:alice", Host: "*", Type: kmsg.ACLResourceTypeTopic, Name: "orders", Pattern: kadm.ACLPatternLiteral, Operation: kadm.OpWrite, Permission: kmsg.ACLPermissionTypeAllow},
	}
	if err != nil || len(d) != 1 || d[0].Err != nil || !reflect.DeepEqual([]kadm.DescribedACL(d[0].Described), want) {
		t.Fatalf("boss describes: %+v %v", d, err)
	}
	d, err = su.DescribeACLs(ctx, kadm.NewACLs().Allow().AllowHosts().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations())
	if err != nil || len(d) != 1 || len(d[0].Described) != 2 || d[0].Described[0].Name != "tenant-a/ns/orders" {
		t.Fatalf("superuser (public/default) describes: %+v %v", d, err)
	}
	for name, tc := range map[string]struct {
		b    *kadm.ACLBuilder
		want int
	}{
		"match orders":        {kadm.NewACLs().Allow().AllowHosts().Topics("orders").ResourcePatternType(kadm.ACLPatternMatch).Operations(), 2},
		"match full name":     {kadm.NewACLs().Allow().AllowHosts().Topics("tenant-a/ns/orders").ResourcePatternType(kadm.ACLPatternMatch).Operations(), 2},
		"match other":         {kadm.NewACLs().Allow().AllowHosts().Topics("other").ResourcePatternType(kadm.ACLPatternMatch).Operations(), 0},
		"literal orders read": {kadm.NewACLs().Allow("User:alice").AllowHosts().Topics("orders").ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpRead), 1},
		"literal full name":   {kadm.NewACLs().Allow().AllowHosts().Topics("tenant-a/ns/orders").ResourcePatternType(kadm.ACLPatternLiteral).Operations(), 2},
		"literal star":        {kadm.NewACLs().Allow().AllowHosts().Topics("*").ResourcePatternType(kadm.ACLPatternLiteral).Operations(), 0},
		"prefixed namespace":  {kadm.NewACLs().Allow().AllowHosts().Topics("tenant-a/ns/").ResourcePatternType(kadm.ACLPatternPrefixed).Operations(), 0},
		"groups":              {kadm.NewACLs().Allow().AllowHosts().Groups().ResourcePatternType(kadm.ACLPatternAny).Operations(), 0},
	} {
		r, err := boss.DescribeACLs(ctx, tc.b)
		if err != nil || len(r) != 1 || r[0].Err != nil || len(r[0].Described) != tc.want {
			t.Errorf("describe %s: %+v %v, want %d bindings", name, r, err, tc.want)
		}
	}

	// DeleteAcls removes them; alice's next produce and group use are refused.
	del, err := boss.DeleteACLs(ctx, kadm.NewACLs().Allow("User:alice").AllowHosts().Topics("orders").
		ResourcePatternType(kadm.ACLPatternLiteral).Operations())
	if err != nil || del[0].Err != nil || len(del[0].Deleted) != 2 || del[0].Deleted[0].Name != "orders" || del[0].Deleted[0].Pattern != kadm.ACLPatternLiteral {
		t.Fatalf("delete: %+v %v", del, err)
	}
	if got := topicPermissions(t, s, "admin", "tenant-a/ns/orders"); len(got) != 0 {
		t.Fatalf("orders permissions after the delete: %v", got)
	}
	wantKerr(t, "alice produces after the delete", produceOne(ctx, alice, "orders", "too late"), kerr.TopicAuthorizationFailed)
	if _, err := kadm.NewClient(alice).FetchOffsets(ctx, "alice-group"); !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Errorf("alice fetches group offsets after the delete: %v, want GROUP_AUTHORIZATION_FAILED", err)
	}
	// GROUP READ '*' without a topic grant is the namespace's consume, as before.
	if g, err := boss.CreateACLs(ctx, kadm.NewACLs().Allow("User:zed").Groups("*").Operations(kadm.OpRead)); err != nil || g[0].Err != nil {
		t.Fatalf("create group READ for zed: %+v %v", g, err)
	}
	if got := aclPermissions(t, s, "tenant-a/ns"); !reflect.DeepEqual(got, map[string][]string{"zed": {"consume"}}) {
		t.Fatalf("namespace permissions after zed's group READ: %v", got)
	}
}

// TestKafkaTopicACLsSarama: sarama's ClusterAdmin creates, lists and
// deletes a LITERAL topic ACL, and the grant is in force meanwhile.
func TestKafkaTopicACLsSarama(t *testing.T) {
	s := topicACLServer(t)
	ctx := aclCtx(t)
	cfg := saramaPlainToken(t, sarama.V2_8_0_0, "public/default", "admin")
	ca, err := sarama.NewClusterAdmin([]string{s.Addr("kafka").String()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()

	res := sarama.Resource{ResourceType: sarama.AclResourceTopic, ResourceName: "tenant-a/ns/orders", ResourcePatternType: sarama.AclPatternLiteral}
	if err := ca.CreateACL(res, sarama.Acl{Principal: "User:alice", Host: "*", Operation: sarama.AclOperationWrite, PermissionType: sarama.AclPermissionAllow}); err != nil {
		t.Fatal(err)
	}
	if got := topicPermissions(t, s, "admin", "tenant-a/ns/orders"); !reflect.DeepEqual(got, map[string][]string{"alice": {"produce"}}) {
		t.Fatalf("orders permissions: %v", got)
	}
	alice := aclKgo(t, s, "tenant-a/ns", "alice")
	if err := produceOne(ctx, alice, "orders", "via sarama's grant"); err != nil {
		t.Fatalf("alice produces: %v", err)
	}
	wantKerr(t, "alice produces to other", produceOne(ctx, alice, "other", "no"), kerr.TopicAuthorizationFailed)

	principal := "User:alice"
	filter := sarama.AclFilter{ResourceType: sarama.AclResourceAny, ResourcePatternTypeFilter: sarama.AclPatternAny,
		Principal: &principal, Operation: sarama.AclOperationAny, PermissionType: sarama.AclPermissionAny}
	list, err := ca.ListAcls(filter)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ResourceName != "tenant-a/ns/orders" || list[0].ResourcePatternType != sarama.AclPatternLiteral || len(list[0].Acls) != 1 {
		t.Fatalf("ListAcls: %+v", list)
	}
	if deleted, err := ca.DeleteACL(filter, false); err != nil || len(deleted) != 1 {
		t.Fatalf("DeleteACL: %+v %v", deleted, err)
	}
	wantKerr(t, "alice produces after the delete", produceOne(ctx, alice, "orders", "too late"), kerr.TopicAuthorizationFailed)
}
