package server

// Kafka ACL APIs (DescribeAcls, CreateAcls, DeleteAcls) over namespace
// permissions, through franz-go's kadm and sarama's ClusterAdmin.

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

// aclStartServer starts a Kafka broker with authentication and
// authorization on; "admin" is the superuser.
func aclStartServer(t *testing.T) *Server {
	t.Helper()
	return startAuthServer(t, map[string]string{"authorization-enabled": "true", "superuser-roles": "admin", "protocols": "kafka"})
}

// aclREST calls the admin API as the superuser and returns the status and body.
func aclREST(t *testing.T, s *Server, method, path, body string) (int, string) {
	t.Helper()
	return adminREST(t, s, "admin", method, path, body)
}

// aclPermissions is GET /admin/v2/namespaces/{ns}/permissions.
func aclPermissions(t *testing.T, s *Server, ns string) map[string][]string {
	t.Helper()
	code, body := aclREST(t, s, "GET", "/admin/v2/namespaces/"+ns+"/permissions", "")
	if code != 200 {
		t.Fatalf("GET permissions of %s: %d %s", ns, code, body)
	}
	var out map[string][]string
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// aclKgo is a franz-go client authenticated as role, SASL PLAIN user user.
func aclKgo(t *testing.T, s *Server, user, role string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	tok := testToken(t, testSecret, jwt.MapClaims{"sub": role})
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.Addr("kafka").String()), kgo.SASL(plainToken(user, tok)),
		kgo.RequestRetries(0), kgo.RetryTimeout(2 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func aclCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// aclAllowed asks the server's authorizer (through its cache).
func aclAllowed(t *testing.T, s *Server, role, ns string, need auth.Need) bool {
	t.Helper()
	ok, err := s.authz.Allowed(context.Background(), auth.Principal{Role: role}, ns, need)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// aclSetup creates tenant-a (admin role "boss") and tenant-a/ns.
func aclSetup(t *testing.T, s *Server) {
	t.Helper()
	if code, body := aclREST(t, s, "PUT", "/admin/v2/tenants/tenant-a", `{"adminRoles":["boss"],"allowedClusters":[]}`); code/100 != 2 {
		t.Fatalf("create tenant: %d %s", code, body)
	}
	if code, body := aclREST(t, s, "PUT", "/admin/v2/namespaces/tenant-a/ns", ""); code/100 != 2 {
		t.Fatalf("create namespace: %d %s", code, body)
	}
}

func TestKafkaACLsKadm(t *testing.T) {
	s := aclStartServer(t)
	aclSetup(t, s)
	ctx := aclCtx(t)
	su := aclKgo(t, s, "public/default", "admin")
	adm := kadm.NewClient(su)

	// Cached before the grant: the ACL change must invalidate it.
	if aclAllowed(t, s, "alice", "tenant-a/ns", auth.NeedProduce) {
		t.Fatal("alice may produce before any grant")
	}
	early := aclKgo(t, s, "tenant-a/ns", "alice", kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))
	if err := early.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("too early")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice produces before the grant: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	alicePrefix := kadm.NewACLs().Allow("User:alice").Topics("tenant-a/ns/").
		ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpWrite, kadm.OpRead)
	created, err := adm.CreateACLs(ctx, alicePrefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 2 {
		t.Fatalf("created %d results", len(created))
	}
	for _, c := range created {
		if c.Err != nil {
			t.Fatalf("create %s %s: %v %s", c.Name, c.Operation, c.Err, c.ErrMessage)
		}
	}
	if got := aclPermissions(t, s, "tenant-a/ns"); !reflect.DeepEqual(got, map[string][]string{"alice": {"consume", "produce"}}) {
		t.Fatalf("permissions after create: %v", got)
	}
	if !aclAllowed(t, s, "alice", "tenant-a/ns", auth.NeedProduce) || !aclAllowed(t, s, "alice", "tenant-a/ns", auth.NeedConsume) {
		t.Fatal("the grant is not in effect at once")
	}
	// Creating it again changes nothing and succeeds.
	if again, err := adm.CreateACLs(ctx, alicePrefix); err != nil || again[0].Err != nil || again[1].Err != nil {
		t.Fatalf("create again: %v %v", again, err)
	}

	described, err := adm.DescribeACLs(ctx, kadm.NewACLs().Allow().AllowHosts().AnyResource().
		ResourcePatternType(kadm.ACLPatternAny).Operations())
	if err != nil {
		t.Fatal(err)
	}
	want := []kadm.DescribedACL{
		{Principal: "User:alice", Host: "*", Type: kmsg.ACLResourceTypeTopic, Name: "tenant-a/ns/", Pattern: kadm.ACLPatternPrefixed, Operation: kadm.OpRead, Permission: kmsg.ACLPermissionTypeAllow},
		{Principal: "User:alice", Host: "*", Type: kmsg.ACLResourceTypeTopic, Name: "tenant-a/ns/", Pattern: kadm.ACLPatternPrefixed, Operation: kadm.OpWrite, Permission: kmsg.ACLPermissionTypeAllow},
	}
	if len(described) != 1 || described[0].Err != nil || !reflect.DeepEqual([]kadm.DescribedACL(described[0].Described), want) {
		t.Fatalf("describe all: %+v", described)
	}
	// Filters: MATCH of a topic of the namespace finds them; another
	// prefix, another principal and DESCRIBE do not.
	for name, tc := range map[string]struct {
		b    *kadm.ACLBuilder
		want int
	}{
		"match topic":     {kadm.NewACLs().Allow().AllowHosts().Topics("tenant-a/ns/orders").ResourcePatternType(kadm.ACLPatternMatch).Operations(), 2},
		"prefixed write":  {kadm.NewACLs().Allow("User:alice").AllowHosts("*").Topics("tenant-a/ns/").ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpWrite), 1},
		"other prefix":    {kadm.NewACLs().Allow().AllowHosts().Topics("public/default/").ResourcePatternType(kadm.ACLPatternPrefixed).Operations(), 0},
		"other principal": {kadm.NewACLs().Allow("User:bob").AllowHosts().Topics().ResourcePatternType(kadm.ACLPatternAny).Operations(), 0},
		"describe op":     {kadm.NewACLs().Allow().AllowHosts().Topics().ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpDescribe), 0},
		"other host":      {kadm.NewACLs().Allow().AllowHosts("10.0.0.1").Topics().ResourcePatternType(kadm.ACLPatternAny).Operations(), 0},
		"literal star":    {kadm.NewACLs().Allow().AllowHosts().Topics("*").ResourcePatternType(kadm.ACLPatternLiteral).Operations(), 0}, // not the connection's namespace
	} {
		r, err := adm.DescribeACLs(ctx, tc.b)
		if err != nil || len(r) != 1 || r[0].Err != nil || len(r[0].Described) != tc.want {
			t.Errorf("describe %s: %+v %v, want %d bindings", name, r, err, tc.want)
		}
	}

	// alice, in tenant-a/ns, produces and consumes there.
	if err := s.Broker().CreateTopic(ctx, broker.TopicName{Domain: "persistent", Tenant: "tenant-a", Namespace: "ns", Local: "orders"}, 1, broker.Policies{}); err != nil {
		t.Fatal(err)
	}
	alice := aclKgo(t, s, "tenant-a/ns", "alice", kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err := alice.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("from alice")}).FirstErr(); err != nil {
		t.Fatalf("alice produce: %v", err)
	}
	fs := alice.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatalf("alice fetch: %v", err)
	}
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "from alice" {
		t.Fatalf("alice consumed %v", recs)
	}

	// alice is no tenant admin: every ACL API refuses her.
	aliceAdm := kadm.NewClient(aclKgo(t, s, "tenant-a/ns", "alice"))
	if r, err := aliceAdm.CreateACLs(ctx, kadm.NewACLs().Allow("User:mallory").Topics("tenant-a/ns/").
		ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpRead)); err != nil || !errors.Is(r[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("alice creates: %+v %v", r, err)
	}
	if r, err := aliceAdm.DescribeACLs(ctx, kadm.NewACLs().Allow().AllowHosts().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations()); err != nil || !errors.Is(r[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("alice describes: %+v %v", r, err)
	}
	if r, err := aliceAdm.DeleteACLs(ctx, kadm.NewACLs().Allow().AllowHosts().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations()); err != nil || !errors.Is(r[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("alice deletes: %+v %v", r, err)
	}
	if got := aclPermissions(t, s, "tenant-a/ns"); len(got) != 1 {
		t.Fatalf("permissions after alice's attempts: %v", got)
	}

	// boss, tenant-a's admin: may grant in tenant-a, not in public; sees tenant-a only.
	boss := kadm.NewClient(aclKgo(t, s, "tenant-a/ns", "boss"))
	// As kafka-acls --add --consumer --topic '*' --group '*' would:
	// topic READ and DESCRIBE, group READ (and DESCRIBE, implied too).
	r, err := boss.CreateACLs(ctx, kadm.NewACLs().Allow("User:carol").Topics("*").Groups("*").Operations(kadm.OpRead, kadm.OpDescribe))
	if err != nil || len(r) != 4 {
		t.Fatalf("boss grants carol consume on LITERAL * (tenant-a/ns): %+v %v", r, err)
	}
	for _, c := range r {
		if c.Err != nil {
			t.Fatalf("boss grants carol %s %s %s: %v %s", c.Type, c.Name, c.Operation, c.Err, c.ErrMessage)
		}
	}
	if r, err := boss.CreateACLs(ctx, kadm.NewACLs().Allow("User:carol").Topics("public/default/").
		ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpRead)); err != nil || !errors.Is(r[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("boss grants in public/default: %+v %v", r, err)
	}
	if code, body := aclREST(t, s, "POST", "/admin/v2/namespaces/public/default/permissions/dave", `["produce"]`); code/100 != 2 {
		t.Fatalf("grant dave: %d %s", code, body)
	}
	bd, err := boss.DescribeACLs(ctx, kadm.NewACLs().Allow().AllowHosts().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations())
	if err != nil || bd[0].Err != nil || len(bd[0].Described) != 3 {
		t.Fatalf("boss describes: %+v %v, want alice's two and carol's", bd, err)
	}
	if r, err := boss.DeleteACLs(ctx, kadm.NewACLs().Allow().AllowHosts().Topics("public/default/").
		ResourcePatternType(kadm.ACLPatternPrefixed).Operations()); err != nil || !errors.Is(r[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("boss deletes in public/default: %+v %v", r, err)
	}
	// The superuser sees dave too; carol's grant came from LITERAL "*" of
	// a tenant-a/ns connection, so it is tenant-a/ns's.
	all, _ := adm.DescribeACLs(ctx, kadm.NewACLs().Allow().AllowHosts().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations())
	if len(all[0].Described) != 4 {
		t.Fatalf("superuser describes %+v", all[0].Described)
	}
	if got := aclPermissions(t, s, "tenant-a/ns"); !reflect.DeepEqual(got, map[string][]string{"alice": {"consume", "produce"}, "carol": {"consume"}}) {
		t.Fatalf("permissions after carol: %v", got)
	}

	// Delete: WRITE only first, then the rest of alice's.
	del, err := adm.DeleteACLs(ctx, kadm.NewACLs().Allow("User:alice").AllowHosts("*").Topics("tenant-a/ns/").
		ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpWrite))
	if err != nil || del[0].Err != nil || len(del[0].Deleted) != 1 || del[0].Deleted[0].Operation != kadm.OpWrite || del[0].Deleted[0].Name != "tenant-a/ns/" {
		t.Fatalf("delete write: %+v %v", del, err)
	}
	if aclAllowed(t, s, "alice", "tenant-a/ns", auth.NeedProduce) || !aclAllowed(t, s, "alice", "tenant-a/ns", auth.NeedConsume) {
		t.Fatal("after deleting WRITE alice should consume only")
	}
	if err := alice.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("too late")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice produces after WRITE was deleted: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	del, err = adm.DeleteACLs(ctx, kadm.NewACLs().Allow("User:alice").AllowHosts().Topics().ResourcePatternType(kadm.ACLPatternAny).Operations())
	if err != nil || del[0].Err != nil || len(del[0].Deleted) != 1 || del[0].Deleted[0].Operation != kadm.OpRead {
		t.Fatalf("delete the rest: %+v %v", del, err)
	}
	if got := aclPermissions(t, s, "tenant-a/ns"); !reflect.DeepEqual(got, map[string][]string{"carol": {"consume"}}) {
		t.Fatalf("permissions after delete: %v", got)
	}
	if aclAllowed(t, s, "alice", "tenant-a/ns", auth.NeedConsume) {
		t.Fatal("alice still consumes after the delete")
	}
}

// TestKafkaACLsUnsupported: bindings kopernik cannot represent are refused
// one by one with INVALID_REQUEST and change nothing.
func TestKafkaACLsUnsupported(t *testing.T) {
	s := aclStartServer(t)
	aclSetup(t, s)
	ctx := aclCtx(t)
	su := aclKgo(t, s, "public/default", "admin")

	mk := func(rt kmsg.ACLResourceType, name string, pt kmsg.ACLResourcePatternType, principal, host string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) kmsg.CreateACLsRequestCreation {
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = rt, name, pt
		c.Principal, c.Host, c.Operation, c.PermissionType = principal, host, op, perm
		return c
	}
	const (
		topic, group, cluster = kmsg.ACLResourceTypeTopic, kmsg.ACLResourceTypeGroup, kmsg.ACLResourceTypeCluster
		lit, pre              = kmsg.ACLResourcePatternTypeLiteral, kmsg.ACLResourcePatternTypePrefixed
		allow, deny           = kmsg.ACLPermissionTypeAllow, kmsg.ACLPermissionTypeDeny
		read, write, describe = kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationDescribe
	)
	bad := map[string]kmsg.CreateACLsRequestCreation{
		"deny":             mk(topic, "tenant-a/ns/", pre, "User:x", "*", read, deny),
		"host":             mk(topic, "tenant-a/ns/", pre, "User:x", "10.0.0.1", read, allow),
		"partition name":   mk(topic, "orders-partition-0", lit, "User:x", "*", read, allow),
		"bad topic name":   mk(topic, "or ders", lit, "User:x", "*", read, allow),
		"no such ns topic": mk(topic, "tenant-a/nope/orders", lit, "User:x", "*", read, allow),
		"topic describe":   mk(topic, "tenant-a/ns/orders", lit, "User:x", "*", describe, allow),
		"short prefix":     mk(topic, "tenant-a/", pre, "User:x", "*", read, allow),
		"topic prefix":     mk(topic, "tenant-a/ns/ord", pre, "User:x", "*", read, allow),
		"cluster":          mk(cluster, "kafka-cluster", lit, "User:x", "*", kmsg.ACLOperationAlter, allow),
		"group name":       mk(group, "g1", lit, "User:x", "*", read, allow),
		"group write":      mk(group, "*", lit, "User:x", "*", write, allow),
		"group prefix *":   mk(group, "*", pre, "User:x", "*", read, allow),
		"create op":        mk(topic, "tenant-a/ns/", pre, "User:x", "*", kmsg.ACLOperationCreate, allow),
		"describe alone":   mk(topic, "tenant-a/ns/", pre, "User:x", "*", describe, allow),
		"group principal":  mk(topic, "tenant-a/ns/", pre, "Group:x", "*", read, allow),
		"wildcard user":    mk(topic, "tenant-a/ns/", pre, "User:*", "*", read, allow),
		"any pattern":      mk(topic, "tenant-a/ns/", kmsg.ACLResourcePatternTypeAny, "User:x", "*", read, allow),
		"no such ns":       mk(topic, "tenant-a/nope/", pre, "User:x", "*", read, allow),
		"transactional id": mk(kmsg.ACLResourceTypeTransactionalId, "tx", lit, "User:x", "*", write, allow),
	}
	req := kmsg.NewPtrCreateACLsRequest()
	var names []string
	for name, c := range bad {
		names = append(names, name)
		req.Creations = append(req.Creations, c)
	}
	// A good one in the same request is carried out, and DESCRIBE with
	// READ in the same request is accepted.
	req.Creations = append(req.Creations,
		mk(topic, "tenant-a/ns/", pre, "User:y", "*", read, allow),
		mk(topic, "tenant-a/ns/", pre, "User:y", "*", describe, allow),
		mk(group, "*", lit, "User:z", "*", read, allow), // public/default: the connection's namespace
		mk(group, "*", lit, "User:z", "*", describe, allow))
	resp, err := req.RequestWith(ctx, su)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resp.Results {
		if i < len(names) {
			if r.ErrorCode != kerr.InvalidRequest.Code || r.ErrorMessage == nil || *r.ErrorMessage == "" {
				t.Errorf("%s: code %d message %v, want INVALID_REQUEST with a message", names[i], r.ErrorCode, r.ErrorMessage)
			} else {
				t.Logf("%s: %s", names[i], *r.ErrorMessage)
			}
		} else if r.ErrorCode != 0 {
			t.Errorf("good creation %d: %d %v", i-len(names), r.ErrorCode, *r.ErrorMessage)
		}
	}
	if got := aclPermissions(t, s, "tenant-a/ns"); !reflect.DeepEqual(got, map[string][]string{"y": {"consume"}}) {
		t.Fatalf("tenant-a/ns permissions: %v", got)
	}
	if got := aclPermissions(t, s, "public/default"); !reflect.DeepEqual(got, map[string][]string{"z": {"consume"}}) {
		t.Fatalf("public/default permissions: %v", got)
	}

	// Filters with UNKNOWN values: INVALID_REQUEST.
	dr := kmsg.NewPtrDescribeACLsRequest()
	dr.ResourceType, dr.Operation, dr.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	dr.ResourcePatternType = kmsg.ACLResourcePatternTypeUnknown
	if d, err := dr.RequestWith(ctx, su); err != nil || d.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("describe with UNKNOWN pattern: %+v %v", d, err)
	}
	// GROUP LITERAL "*" on a public/default connection selects z's consume.
	dr.ResourceType, dr.ResourceName, dr.ResourcePatternType = kmsg.ACLResourceTypeGroup, kmsg.StringPtr("*"), lit
	if d, err := dr.RequestWith(ctx, su); err != nil || d.ErrorCode != 0 || len(d.Resources) != 1 || d.Resources[0].ResourceName != "public/default/" {
		t.Errorf("describe GROUP *: %+v %v", d, err)
	}
}

// TestKafkaACLsSarama: sarama's ClusterAdmin creates, lists and deletes.
func TestKafkaACLsSarama(t *testing.T) {
	// 2.0: the ACL APIs at v1; 2.8: at v2 (flexible).
	for _, v := range []sarama.KafkaVersion{sarama.V2_0_0_0, sarama.V2_8_0_0} {
		t.Run(v.String(), func(t *testing.T) { aclSarama(t, v) })
	}
}

func aclSarama(t *testing.T, version sarama.KafkaVersion) {
	s := aclStartServer(t)
	aclSetup(t, s)
	cfg := saramaPlainToken(t, version, "public/default", "admin")
	ca, err := sarama.NewClusterAdmin([]string{s.Addr("kafka").String()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()

	res := sarama.Resource{ResourceType: sarama.AclResourceTopic, ResourceName: "tenant-a/ns/", ResourcePatternType: sarama.AclPatternPrefixed}
	for _, op := range []sarama.AclOperation{sarama.AclOperationWrite, sarama.AclOperationRead} {
		if err := ca.CreateACL(res, sarama.Acl{Principal: "User:alice", Host: "*", Operation: op, PermissionType: sarama.AclPermissionAllow}); err != nil {
			t.Fatal(err)
		}
	}
	if got := aclPermissions(t, s, "tenant-a/ns"); !reflect.DeepEqual(got, map[string][]string{"alice": {"consume", "produce"}}) {
		t.Fatalf("permissions after sarama create: %v", got)
	}
	principal := "User:alice"
	filter := sarama.AclFilter{ResourceType: sarama.AclResourceAny, ResourcePatternTypeFilter: sarama.AclPatternAny,
		Principal: &principal, Operation: sarama.AclOperationAny, PermissionType: sarama.AclPermissionAny}
	list, err := ca.ListAcls(filter)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ResourceName != "tenant-a/ns/" || list[0].ResourcePatternType != sarama.AclPatternPrefixed || len(list[0].Acls) != 2 {
		t.Fatalf("ListAcls: %+v", list)
	}
	if !aclAllowed(t, s, "alice", "tenant-a/ns", auth.NeedProduce) {
		t.Fatal("alice may not produce after sarama's grant")
	}
	deleted, err := ca.DeleteACL(filter, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 2 {
		t.Fatalf("DeleteACL matched %+v", deleted)
	}
	if got := aclPermissions(t, s, "tenant-a/ns"); len(got) != 0 {
		t.Fatalf("permissions after sarama delete: %v", got)
	}
	if list, err := ca.ListAcls(filter); err != nil || len(list) != 0 {
		t.Fatalf("ListAcls after delete: %+v %v", list, err)
	}
}

// TestKafkaACLsSecurityDisabled: without an authorizer every ACL API
// answers SECURITY_DISABLED, as Kafka does.
func TestKafkaACLsSecurityDisabled(t *testing.T) {
	s := startAuthServer(t, map[string]string{"protocols": "kafka"}) // authorization off
	ctx := aclCtx(t)
	adm := kadm.NewClient(aclKgo(t, s, "public/default", "admin"))
	c, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").Topics("public/default/").
		ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpRead))
	if err != nil || !errors.Is(c[0].Err, kerr.SecurityDisabled) {
		t.Errorf("create: %+v %v", c, err)
	}
	d, err := adm.DescribeACLs(ctx, kadm.NewACLs().Allow().AllowHosts().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations())
	if err != nil || !errors.Is(d[0].Err, kerr.SecurityDisabled) {
		t.Errorf("describe: %+v %v", d, err)
	}
	r, err := adm.DeleteACLs(ctx, kadm.NewACLs().Allow().AllowHosts().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations())
	if err != nil || !errors.Is(r[0].Err, kerr.SecurityDisabled) {
		t.Errorf("delete: %+v %v", r, err)
	}
	if got := aclPermissions(t, s, "public/default"); len(got) != 0 {
		t.Fatalf("permissions: %v", got)
	}
}

// TestKafkaACLsConcurrent: concurrent creations on one namespace, from
// separate connections, all land (none overwrites another's read).
func TestKafkaACLsConcurrent(t *testing.T) {
	s := aclStartServer(t)
	aclSetup(t, s)
	ctx := aclCtx(t)
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		adm := kadm.NewClient(aclKgo(t, s, "public/default", "admin"))
		go func() {
			r, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:u"+strconv.Itoa(i)).Topics("tenant-a/ns/").
				ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpRead))
			if err == nil {
				err = r[0].Err
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := aclPermissions(t, s, "tenant-a/ns"); len(got) != n {
		t.Fatalf("%d roles granted, want %d: %v", len(got), n, got)
	}
}

// saramaPlainToken is a sarama configuration of version authenticating
// with SASL PLAIN: username user (a tenant/namespace), a token of role.
func saramaPlainToken(t *testing.T, version sarama.KafkaVersion, user, role string) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = version
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	cfg.Net.SASL.User = user
	cfg.Net.SASL.Password = "token:" + testToken(t, testSecret, jwt.MapClaims{"sub": role})
	return cfg
}
