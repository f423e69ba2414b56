package auth

// Authorization: what an authenticated role may do, decided as Pulsar's
// default authorization provider does.
//
//   - A superuser role may do everything.
//   - A tenant's admin roles (TenantInfo.adminRoles) may do everything on
//     the tenant's namespaces, topics and subscriptions, and administer them.
//   - Any other role may produce and/or consume in a namespace when the
//     namespace grants it that action (Pulsar's
//     /admin/v2/namespaces/{t}/{ns}/permissions/{role}); either action also
//     allows looking topics of that namespace up and describing them.
//
// Grants are read through a GrantSource and cached for GrantCacheTTL;
// Invalidate drops the cache at once (the admin API calls it after every
// change it makes), so a grant or revocation made through this broker takes
// effect on the next request of every connection.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kopernik-io/kopernik/broker"
)

// ErrNotAuthorized is the error of every refused operation; the wrapped
// message says which role lacked what.
var ErrNotAuthorized = errors.New("auth: not authorized")

// Action is a namespace permission (Pulsar's AuthAction, without the
// functions, sources, sinks and packages actions kopernik has no use for).
type Action string

const (
	ActionProduce Action = "produce"
	ActionConsume Action = "consume"
)

// ParseAction accepts Pulsar's action names.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case ActionProduce, ActionConsume:
		return a, nil
	}
	return "", fmt.Errorf("unknown action %q (kopernik grants %q and %q)", s, ActionProduce, ActionConsume)
}

// Need is what an operation requires on a namespace.
type Need uint8

const (
	// NeedProduce: publish to a topic of the namespace.
	NeedProduce Need = iota + 1
	// NeedConsume: read a topic, subscribe, commit or read offsets, join
	// a consumer group of the namespace.
	NeedConsume
	// NeedLookup: find or describe a topic of the namespace, list its
	// topics (granted by produce or consume).
	NeedLookup
	// NeedAdmin: create, delete or reconfigure topics and subscriptions,
	// grant permissions (a tenant admin or superuser).
	NeedAdmin
)

func (n Need) String() string {
	switch n {
	case NeedProduce:
		return "produce"
	case NeedConsume:
		return "consume"
	case NeedLookup:
		return "lookup"
	case NeedAdmin:
		return "admin"
	}
	return fmt.Sprintf("need(%d)", uint8(n))
}

// GrantSource is where grants are kept: the broker's tenants and namespace
// policies. Errors other than "not found" are passed on to the caller (the
// operation fails as a server error, not as a refusal).
type GrantSource interface {
	// TenantAdminRoles returns the tenant's admin roles; a missing tenant
	// has none.
	TenantAdminRoles(ctx context.Context, tenant string) ([]string, error)
	// NamespaceGrants returns role -> actions for "tenant/ns"; a missing
	// namespace grants nothing.
	NamespaceGrants(ctx context.Context, namespace string) (map[string][]Action, error)
}

// DefaultGrantCacheTTL bounds how stale a cached grant may be when it was
// changed elsewhere than through this broker's admin API.
const DefaultGrantCacheTTL = 5 * time.Second

// Authorizer decides what roles may do. A nil *Authorizer allows everything
// (authorization off).
type Authorizer struct {
	superUsers []string
	src        GrantSource
	ttl        time.Duration
	now        func() time.Time

	mu struct {
		sync.Mutex
		gen        uint64 // bumped by Invalidate: reads begun before it are not cached
		tenants    map[string]cachedRoles
		namespaces map[string]cachedGrants
	}
}

// maxCachedNames bounds each cache: names come from clients (a request for
// a namespace that does not exist is cached too), so a full cache is
// dropped rather than allowed to grow.
const maxCachedNames = 4096

type cachedRoles struct {
	roles []string
	at    time.Time
}

type cachedGrants struct {
	grants map[string][]Action
	at     time.Time
}

// NewAuthorizer returns an Authorizer over src. superUsers may do anything.
func NewAuthorizer(superUsers []string, src GrantSource) *Authorizer {
	z := &Authorizer{superUsers: slices.Clone(superUsers), src: src, ttl: DefaultGrantCacheTTL, now: time.Now}
	z.Invalidate()
	return z
}

// Invalidate forgets every cached grant.
func (z *Authorizer) Invalidate() {
	if z == nil {
		return
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.mu.gen++
	z.mu.tenants = map[string]cachedRoles{}
	z.mu.namespaces = map[string]cachedGrants{}
}

// IsSuperUser reports whether p is a superuser (true when z is nil).
func (z *Authorizer) IsSuperUser(p Principal) bool {
	return z == nil || slices.Contains(z.superUsers, p.Role)
}

// IsTenantAdmin reports whether p may administer tenant: a superuser or one
// of its admin roles.
func (z *Authorizer) IsTenantAdmin(ctx context.Context, p Principal, tenant string) (bool, error) {
	if z.IsSuperUser(p) {
		return true, nil
	}
	if p.Role == "" {
		return false, nil
	}
	roles, err := z.tenantRoles(ctx, tenant)
	if err != nil {
		return false, err
	}
	return slices.Contains(roles, p.Role), nil
}

// Allowed reports whether p may do what need says on namespace
// ("tenant/ns"). err is a failure to read the grants, not a refusal.
func (z *Authorizer) Allowed(ctx context.Context, p Principal, namespace string, need Need) (bool, error) {
	if z.IsSuperUser(p) {
		return true, nil
	}
	if p.Role == "" {
		return false, nil
	}
	tenant, _, ok := strings.Cut(namespace, "/")
	if !ok {
		return false, fmt.Errorf("auth: %q is not tenant/namespace", namespace)
	}
	if admin, err := z.IsTenantAdmin(ctx, p, tenant); err != nil || admin {
		return admin, err
	}
	if need == NeedAdmin {
		return false, nil
	}
	grants, err := z.namespaceGrants(ctx, namespace)
	if err != nil {
		return false, err
	}
	actions := grants[p.Role]
	switch need {
	case NeedProduce:
		return slices.Contains(actions, ActionProduce), nil
	case NeedConsume:
		return slices.Contains(actions, ActionConsume), nil
	case NeedLookup:
		return len(actions) > 0, nil
	}
	return false, nil
}

// Check is Allowed as an error: nil when allowed, ErrNotAuthorized (with
// who, what and where) when refused, or the failure to read the grants.
func (z *Authorizer) Check(ctx context.Context, p Principal, namespace string, need Need) error {
	ok, err := z.Allowed(ctx, p, namespace, need)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: role %q may not %s in namespace %s", ErrNotAuthorized, p.Role, need, namespace)
	}
	return nil
}

func (z *Authorizer) tenantRoles(ctx context.Context, tenant string) ([]string, error) {
	return cached(z, ctx, func() map[string]cachedRoles { return z.mu.tenants }, tenant,
		func(c cachedRoles) ([]string, time.Time) { return c.roles, c.at },
		func(v []string, at time.Time) cachedRoles { return cachedRoles{roles: v, at: at} },
		z.src.TenantAdminRoles)
}

func (z *Authorizer) namespaceGrants(ctx context.Context, namespace string) (map[string][]Action, error) {
	return cached(z, ctx, func() map[string]cachedGrants { return z.mu.namespaces }, namespace,
		func(c cachedGrants) (map[string][]Action, time.Time) { return c.grants, c.at },
		func(v map[string][]Action, at time.Time) cachedGrants { return cachedGrants{grants: v, at: at} },
		z.src.NamespaceGrants)
}

// cached returns key's value from the cache m() (under z.mu) if younger
// than the TTL, else loads and caches it unless Invalidate ran meanwhile.
func cached[C, V any](z *Authorizer, ctx context.Context, m func() map[string]C, key string,
	get func(C) (V, time.Time), mk func(V, time.Time) C, load func(context.Context, string) (V, error)) (V, error) {
	now := z.now()
	z.mu.Lock()
	c, ok := m()[key]
	gen := z.mu.gen
	z.mu.Unlock()
	if ok {
		if v, at := get(c); now.Sub(at) < z.ttl {
			return v, nil
		}
	}
	v, err := load(ctx, key)
	if err != nil {
		return v, err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.mu.gen == gen {
		cache := m()
		if len(cache) >= maxCachedNames {
			clear(cache)
		}
		cache[key] = mk(v, now)
	}
	return v, nil
}

// BrokerGrants reads grants from a broker.Service: tenants' admin roles and
// namespaces' Policies.Permissions.
type BrokerGrants struct{ Svc broker.Service }

func (g BrokerGrants) TenantAdminRoles(ctx context.Context, tenant string) ([]string, error) {
	info, err := g.Svc.GetTenant(ctx, tenant)
	if errors.Is(err, broker.ErrTenantNotFound) || errors.Is(err, broker.ErrInvalidName) {
		return nil, nil
	}
	return info.AdminRoles, err
}

func (g BrokerGrants) NamespaceGrants(ctx context.Context, namespace string) (map[string][]Action, error) {
	p, err := g.Svc.NamespacePolicies(ctx, namespace)
	if errors.Is(err, broker.ErrNamespaceNotFound) || errors.Is(err, broker.ErrInvalidName) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	grants := make(map[string][]Action, len(p.Permissions))
	for role, actions := range p.Permissions {
		for _, a := range actions {
			if a, err := ParseAction(a); err == nil {
				grants[role] = append(grants[role], a)
			}
		}
	}
	return grants, nil
}
