package auth

import (
	"context"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/broker"
)

// grantTable is a GrantSource from literal tables, counting reads.
type grantTable struct {
	admins map[string][]string
	grants map[string]map[string][]Action
	topics map[string]map[string]map[string][]Action // namespace -> topic -> role -> actions
	reads  int
}

func (g *grantTable) TenantAdminRoles(_ context.Context, tenant string) ([]string, error) {
	g.reads++
	return g.admins[tenant], nil
}

func (g *grantTable) NamespaceGrants(_ context.Context, ns string) (Grants, error) {
	g.reads++
	return Grants{Namespace: g.grants[ns], Topics: g.topics[ns]}, nil
}

func TestAuthorizerDecisions(t *testing.T) {
	src := &grantTable{
		admins: map[string][]string{"a": {"a-admin"}},
		grants: map[string]map[string][]Action{
			"a/ns": {"alice": {ActionProduce, ActionConsume}, "carol": {ActionProduce}, "dave": {ActionConsume}},
			"b/ns": {"bob": {ActionProduce, ActionConsume}},
		},
	}
	z := NewAuthorizer([]string{"root"}, src)
	for _, tc := range []struct {
		role, ns string
		need     Need
		want     bool
	}{
		{"root", "b/ns", NeedAdmin, true},
		{"root", "nowhere/ns", NeedProduce, true},
		{"a-admin", "a/ns", NeedAdmin, true},
		{"a-admin", "a/other", NeedConsume, true},
		{"a-admin", "b/ns", NeedLookup, false},
		{"alice", "a/ns", NeedProduce, true},
		{"alice", "a/ns", NeedConsume, true},
		{"alice", "a/ns", NeedLookup, true},
		{"alice", "a/ns", NeedAdmin, false},
		{"alice", "b/ns", NeedLookup, false},
		{"alice", "a/other", NeedProduce, false},
		{"carol", "a/ns", NeedProduce, true},
		{"carol", "a/ns", NeedConsume, false},
		{"carol", "a/ns", NeedLookup, true},
		{"dave", "a/ns", NeedProduce, false},
		{"dave", "a/ns", NeedLookup, true},
		{"", "a/ns", NeedLookup, false},
		{"bob", "b/ns", NeedConsume, true},
	} {
		got, err := z.Allowed(context.Background(), Principal{Role: tc.role}, tc.ns, tc.need)
		if err != nil || got != tc.want {
			t.Errorf("%s %s on %s: %v %v, want %v", tc.role, tc.need, tc.ns, got, err, tc.want)
		}
	}
	var nilZ *Authorizer
	if ok, _ := nilZ.Allowed(context.Background(), Principal{}, "x/y", NeedAdmin); !ok {
		t.Error("a nil Authorizer refused")
	}
	if err := z.Check(context.Background(), Principal{Role: "carol"}, "a/ns", NeedConsume); err == nil {
		t.Error("Check allowed what Allowed refuses")
	}
}

func TestAuthorizerTopicDecisions(t *testing.T) {
	src := &grantTable{
		admins: map[string][]string{"a": {"a-admin"}},
		grants: map[string]map[string][]Action{"a/ns": {"alice": {ActionProduce}}},
		topics: map[string]map[string]map[string][]Action{"a/ns": {
			"persistent://a/ns/orders": {"alice": {ActionConsume}, "tom": {ActionProduce}},
			"persistent://a/ns/parted": {"tom": {ActionConsume}},
			"persistent://a/ns/early":  {"erin": {ActionConsume}}, // no such topic yet: the grant waits for it
		}},
	}
	z := NewAuthorizer([]string{"root"}, src)
	topic := func(s string) broker.TopicName {
		n, err := broker.ParseTopicName(s, "", "")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	ctx := context.Background()
	for _, tc := range []struct {
		role, topic string
		need        Need
		want        bool
	}{
		{"root", "x/y/z", NeedAdmin, true},
		{"a-admin", "a/ns/anything", NeedProduce, true},
		{"a-admin", "a/ns/orders", NeedAdmin, true},
		// Namespace and topic grants add up.
		{"alice", "a/ns/orders", NeedProduce, true},
		{"alice", "a/ns/orders", NeedConsume, true},
		{"alice", "a/ns/other", NeedProduce, true},
		{"alice", "a/ns/other", NeedConsume, false},
		{"alice", "a/ns/orders", NeedAdmin, false},
		// A topic grant alone: that topic only.
		{"tom", "a/ns/orders", NeedProduce, true},
		{"tom", "a/ns/orders", NeedLookup, true},
		{"tom", "a/ns/orders", NeedConsume, false},
		{"tom", "a/ns/other", NeedLookup, false},
		{"tom", "a/ns/other", NeedProduce, false},
		{"tom", "a/ns/orders-partition-0", NeedProduce, true}, // only partitions map to their base
		{"tom", "a/ns/parted-partition-3", NeedConsume, true},
		{"tom", "a/ns/parted", NeedConsume, true},
		{"tom", "a/ns/parted-x", NeedConsume, false},
		{"tom", "b/ns/orders", NeedProduce, false},
		{"tom", "non-persistent://a/ns/orders", NeedProduce, false}, // another topic
		{"erin", "a/ns/early", NeedConsume, true},
		{"", "a/ns/orders", NeedLookup, false},
	} {
		got, err := z.AllowedTopic(ctx, Principal{Role: tc.role}, topic(tc.topic), tc.need)
		if err != nil || got != tc.want {
			t.Errorf("%s %s on %s: %v %v, want %v", tc.role, tc.need, tc.topic, got, err, tc.want)
		}
	}
	// Namespace questions ignore topic grants ...
	if ok, _ := z.Allowed(ctx, Principal{Role: "tom"}, "a/ns", NeedLookup); ok {
		t.Error("a topic grant allowed a namespace-level lookup")
	}
	// ... except AllowedSomeTopic (Kafka groups).
	for _, tc := range []struct {
		role string
		need Need
		want bool
	}{
		{"tom", NeedConsume, true}, {"tom", NeedProduce, true}, {"erin", NeedConsume, true},
		{"erin", NeedProduce, false}, {"alice", NeedConsume, true}, {"nobody", NeedLookup, false},
	} {
		if got, err := z.AllowedSomeTopic(ctx, Principal{Role: tc.role}, "a/ns", tc.need); err != nil || got != tc.want {
			t.Errorf("%s %s on some topic of a/ns: %v %v, want %v", tc.role, tc.need, got, err, tc.want)
		}
	}
	if err := z.CheckTopic(ctx, Principal{Role: "tom"}, topic("a/ns/other"), NeedProduce); err == nil {
		t.Error("CheckTopic allowed what AllowedTopic refuses")
	}
	// The cached grants are not changed by merging namespace and topic actions.
	if got := src.grants["a/ns"]["alice"]; len(got) != 1 {
		t.Errorf("alice's namespace grants became %v", got)
	}
	var nilZ *Authorizer
	if ok, _ := nilZ.AllowedTopic(ctx, Principal{}, topic("x/y/z"), NeedAdmin); !ok {
		t.Error("a nil Authorizer refused a topic")
	}
}

func TestAuthorizerCache(t *testing.T) {
	src := &grantTable{grants: map[string]map[string][]Action{"a/ns": {"alice": {ActionProduce}}}}
	z := NewAuthorizer([]string{"root"}, src)
	now := time.Unix(1000, 0)
	z.now = func() time.Time { return now }
	ctx := context.Background()
	alice := Principal{Role: "alice"}
	if ok, _ := z.Allowed(ctx, alice, "a/ns", NeedProduce); !ok {
		t.Fatal("refused")
	}
	reads := src.reads
	// A change behind the cache's back is seen after the TTL...
	src.grants["a/ns"] = nil
	if ok, _ := z.Allowed(ctx, alice, "a/ns", NeedProduce); !ok || src.reads != reads {
		t.Fatalf("cached decision not used: ok=%v reads %d -> %d", ok, reads, src.reads)
	}
	now = now.Add(DefaultGrantCacheTTL)
	if ok, _ := z.Allowed(ctx, alice, "a/ns", NeedProduce); ok {
		t.Fatal("stale grant used after the TTL")
	}
	// ... and at once after Invalidate.
	src.grants["a/ns"] = map[string][]Action{"alice": {ActionProduce}}
	z.Invalidate()
	if ok, _ := z.Allowed(ctx, alice, "a/ns", NeedProduce); !ok {
		t.Fatal("grant not seen after Invalidate")
	}
	// Client-chosen names cannot grow the cache without bound.
	for i := range 3 * maxCachedNames {
		z.Allowed(ctx, alice, "t/ns"+string(rune('a'+i%26))+time.Duration(i).String(), NeedLookup)
	}
	z.mu.Lock()
	n := len(z.mu.namespaces)
	z.mu.Unlock()
	if n > maxCachedNames {
		t.Fatalf("%d cached namespaces", n)
	}
}
