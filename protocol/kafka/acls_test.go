package kafka

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
)

func TestACLAPIsAdvertised(t *testing.T) {
	for _, key := range []int16{29, 30, 31} {
		a, ok := apis[key]
		if !ok || a.min != 1 || a.max != 2 || a.authOnly {
			t.Errorf("api %d: %+v, want served 1..2 with or without auth", key, a)
		}
	}
}

// TestACLFilterMatches: Kafka's filter rules against kopernik's bindings,
// for a connection in public/default.
func TestACLFilterMatches(t *testing.T) {
	h := &Handler{cfg: Config{Tenant: "public", Namespace: "default"}}
	ctx := context.Background()
	const (
		topic, group, anyType = kmsg.ACLResourceTypeTopic, kmsg.ACLResourceTypeGroup, kmsg.ACLResourceTypeAny
		lit, pre, match, anyP = kmsg.ACLResourcePatternTypeLiteral, kmsg.ACLResourcePatternTypePrefixed, kmsg.ACLResourcePatternTypeMatch, kmsg.ACLResourcePatternTypeAny
	)
	str := func(s string) *string { return &s }
	filter := func(rt kmsg.ACLResourceType, name *string, pt kmsg.ACLResourcePatternType) aclFilter {
		return aclFilter{resourceType: rt, name: name, pattern: pt, operation: kmsg.ACLOperationAny, permission: kmsg.ACLPermissionTypeAny}
	}
	here := aclGrant{ns: "public/default", role: "alice", action: auth.ActionConsume}
	herew := aclGrant{ns: "public/default", role: "alice", action: auth.ActionProduce}
	there := aclGrant{ns: "a/b", role: "alice", action: auth.ActionConsume}
	for _, tc := range []struct {
		name string
		f    aclFilter
		g    aclGrant
		want bool
	}{
		{"any", filter(anyType, nil, anyP), there, true},
		{"prefixed exact", filter(topic, str("a/b/"), pre), there, true},
		{"prefixed other", filter(topic, str("a/c/"), pre), there, false},
		{"prefixed no slash", filter(topic, str("a/b"), pre), there, false},
		{"literal name", filter(topic, str("a/b/"), lit), there, false},
		{"any pattern name", filter(topic, str("a/b/"), anyP), there, true},
		{"literal star here", filter(topic, str("*"), lit), here, true},
		{"literal star there", filter(topic, str("*"), lit), there, false},
		{"group star here", filter(group, str("*"), lit), here, true},
		{"group star write", filter(group, str("*"), lit), herew, false},
		{"group star there", filter(group, str("*"), lit), there, false},
		{"group any", filter(group, nil, anyP), here, true},
		{"cluster", filter(kmsg.ACLResourceTypeCluster, nil, anyP), here, false},
		{"match full name", filter(topic, str("a/b/orders"), match), there, true},
		{"match other ns", filter(topic, str("a/c/orders"), match), there, false},
		{"match short here", filter(topic, str("orders"), match), here, true},
		{"match short there", filter(topic, str("orders"), match), there, false},
		{"match star", filter(topic, str("*"), match), here, true},
		{"match group", filter(group, str("g1"), match), here, true},
		{"match group there", filter(group, str("g1"), match), there, false},
		{"match nil", filter(topic, nil, match), there, true},
	} {
		if got := h.aclMatches(ctx, &tc.f, tc.g, "public/default"); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}

	f := filter(anyType, nil, anyP)
	for _, tc := range []struct {
		name string
		set  func(*aclFilter)
		want bool
	}{
		{"principal", func(f *aclFilter) { f.principal = str("User:alice") }, true},
		{"other principal", func(f *aclFilter) { f.principal = str("User:bob") }, false},
		{"host *", func(f *aclFilter) { f.host = str("*") }, true},
		{"other host", func(f *aclFilter) { f.host = str("10.0.0.1") }, false},
		{"read", func(f *aclFilter) { f.operation = kmsg.ACLOperationRead }, true},
		{"write", func(f *aclFilter) { f.operation = kmsg.ACLOperationWrite }, false},
		{"all", func(f *aclFilter) { f.operation = kmsg.ACLOperationAll }, true},
		{"describe", func(f *aclFilter) { f.operation = kmsg.ACLOperationDescribe }, false},
		{"allow", func(f *aclFilter) { f.permission = kmsg.ACLPermissionTypeAllow }, true},
		{"deny", func(f *aclFilter) { f.permission = kmsg.ACLPermissionTypeDeny }, false},
	} {
		g := f
		tc.set(&g)
		if got := h.aclMatches(ctx, &g, there, "public/default"); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}

	for _, bad := range []aclFilter{
		{resourceType: kmsg.ACLResourceTypeUnknown, pattern: anyP, operation: kmsg.ACLOperationAny, permission: kmsg.ACLPermissionTypeAny},
		{resourceType: anyType, pattern: kmsg.ACLResourcePatternTypeUnknown, operation: kmsg.ACLOperationAny, permission: kmsg.ACLPermissionTypeAny},
		{resourceType: anyType, pattern: anyP, operation: kmsg.ACLOperationUnknown, permission: kmsg.ACLPermissionTypeAny},
		{resourceType: anyType, pattern: anyP, operation: kmsg.ACLOperationAny, permission: kmsg.ACLPermissionTypeUnknown},
		{resourceType: 99, pattern: anyP, operation: kmsg.ACLOperationAny, permission: kmsg.ACLPermissionTypeAny},
	} {
		if err := bad.validate(); err == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}
