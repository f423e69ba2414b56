package admin

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/kopernik-io/kopernik/auth"
)

// fixedGrants: tenant t1 is administered by t1-admin; t1/ns grants
// producer produce and consumer consume, and its topic "mine" (a
// partitioned topic) grants tom consume.
type fixedGrants struct{}

func (fixedGrants) TenantAdminRoles(_ context.Context, tenant string) ([]string, error) {
	if tenant == "t1" {
		return []string{"t1-admin"}, nil
	}
	return nil, nil
}

func (fixedGrants) NamespaceGrants(_ context.Context, ns string) (auth.Grants, error) {
	if ns == "t1/ns" {
		return auth.Grants{
			Namespace: map[string][]auth.Action{"producer": {auth.ActionProduce}, "consumer": {auth.ActionConsume}},
			Topics:    map[string]map[string][]auth.Action{"persistent://t1/ns/mine": {"tom": {auth.ActionConsume}}},
		}, nil
	}
	return auth.Grants{}, nil
}

// TestAllowedPaths checks the table of auth.go, role by role.
func TestAllowedPaths(t *testing.T) {
	s := &server{opts: Options{Authz: auth.NewAuthorizer([]string{"root"}, fixedGrants{})}}
	type want struct{ root, admin, producer, consumer, other, tom bool }
	all := want{true, true, true, true, true, true}
	for _, c := range []struct {
		method, path string
		want
	}{
		// superuser only
		{"GET", "/admin/v2/tenants", want{root: true}},
		{"PUT", "/admin/v2/tenants/x", want{root: true}},
		{"POST", "/admin/v2/tenants/t1", want{root: true}},
		{"DELETE", "/admin/v2/tenants/t1", want{root: true}},
		{"PUT", "/admin/v2/kopernik/scram/u", want{root: true}},
		{"GET", "/admin/v2/brokers/leaderBroker", want{root: true}},
		// tenant admin
		{"GET", "/admin/v2/tenants/t1", want{root: true, admin: true}},
		{"GET", "/admin/v2/tenants/t2", want{root: true}},
		{"GET", "/admin/v2/namespaces/t1", want{root: true, admin: true}},
		{"PUT", "/admin/v2/namespaces/t1/ns2", want{root: true, admin: true}},
		{"POST", "/admin/v2/namespaces/t1/ns/permissions/x", want{root: true, admin: true}},
		{"GET", "/admin/v2/namespaces/t1/ns/permissions", want{root: true, admin: true}},
		{"POST", "/admin/v2/namespaces/t2/ns/permissions/x", want{root: true}},
		{"PUT", "/admin/v2/persistent/t1/ns/topic", want{root: true, admin: true}},
		{"GET", "/admin/v2/persistent/t1/ns/topic/stats", want{root: true, admin: true}},
		{"DELETE", "/admin/v2/non-persistent/t1/ns/topic", want{root: true, admin: true}},
		{"PUT", "/admin/v2/persistent/t2/ns/topic", want{root: true}},
		{"DELETE", "/admin/v2/schemas/t1/ns/topic/schema", want{root: true, admin: true}},
		// lookup: produce or consume
		{"GET", "/admin/v2/namespaces/t1/ns/topics", want{root: true, admin: true, producer: true, consumer: true}},
		{"GET", "/admin/v2/persistent/t1/ns/topic/partitions", want{root: true, admin: true, producer: true, consumer: true}},
		{"GET", "/admin/v2/schemas/t1/ns/topic/schema", want{root: true, admin: true, producer: true, consumer: true}},
		{"GET", "/lookup/v2/topic/persistent/t1/ns/topic", want{root: true, admin: true, producer: true, consumer: true}},
		{"GET", "/admin/v2/namespaces/t2/ns/topics", want{root: true}},
		{"GET", "/lookup/v2/topic/persistent/t2/ns/topic", want{root: true}},
		{"PUT", "/admin/v2/persistent/t1/ns/topic/partitions", want{root: true, admin: true}},
		// lookup on one topic: a topic grant counts there, not elsewhere
		{"GET", "/admin/v2/persistent/t1/ns/mine/partitions", want{root: true, admin: true, producer: true, consumer: true, tom: true}},
		{"GET", "/admin/v2/schemas/t1/ns/mine/schema", want{root: true, admin: true, producer: true, consumer: true, tom: true}},
		{"GET", "/lookup/v2/topic/persistent/t1/ns/mine-partition-2", want{root: true, admin: true, producer: true, consumer: true, tom: true}},
		{"GET", "/lookup/v2/topic/persistent/t1/ns/mine", want{root: true, admin: true, producer: true, consumer: true, tom: true}},
		{"GET", "/admin/v2/namespaces/t1/ns/topics", want{root: true, admin: true, producer: true, consumer: true}},
		// topic permissions: tenant admin
		{"GET", "/admin/v2/persistent/t1/ns/mine/permissions", want{root: true, admin: true}},
		{"POST", "/admin/v2/persistent/t1/ns/mine/permissions/x", want{root: true, admin: true}},
		{"DELETE", "/admin/v2/persistent/t1/ns/mine/permissions/tom", want{root: true, admin: true}},
		{"POST", "/admin/v2/persistent/t2/ns/mine/permissions/x", want{root: true}},
		// any authenticated role
		{"GET", "/admin/v2/clusters", all},
		{"GET", "/admin/v2/clusters/standalone", all},
		{"PUT", "/admin/v2/clusters/standalone", want{root: true}},
	} {
		for role, w := range map[string]bool{"root": c.root, "t1-admin": c.admin, "producer": c.producer, "consumer": c.consumer, "other": c.other, "tom": c.tom} {
			got, err := s.allowed(context.Background(), auth.Principal{Role: role}, httptest.NewRequest(c.method, c.path, nil))
			if err != nil || got != w {
				t.Errorf("%s %s as %s: %v (%v), want %v", c.method, c.path, role, got, err, w)
			}
		}
	}
}
