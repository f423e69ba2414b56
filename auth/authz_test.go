package auth

import (
	"context"
	"testing"
	"time"
)

// grantTable is a GrantSource from literal tables, counting reads.
type grantTable struct {
	admins map[string][]string
	grants map[string]map[string][]Action
	reads  int
}

func (g *grantTable) TenantAdminRoles(_ context.Context, tenant string) ([]string, error) {
	g.reads++
	return g.admins[tenant], nil
}

func (g *grantTable) NamespaceGrants(_ context.Context, ns string) (map[string][]Action, error) {
	g.reads++
	return g.grants[ns], nil
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
