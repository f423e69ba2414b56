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
//     allows looking topics of that namespace up and describing them, and
//     listing the namespace's topics.
//   - A role may produce and/or consume one topic when the topic grants it
//     that action (Pulsar's /admin/v2/persistent/{t}/{ns}/{topic}/permissions/{role});
//     either action also allows looking that topic up. A partitioned
//     topic's grant covers its partitions. A topic grant adds to the
//     namespace's: a topic's effective grants are both, merged. It gives
//     nothing on the namespace itself (listing its topics needs a
//     namespace grant, as in Pulsar).
//
// Topic grants are kept in the namespace's policies with the namespace's
// own (as Pulsar keeps destination_auth in the namespace's auth_policies),
// so one read answers both and a grant may exist before its topic.
//
// Grants are read through a GrantSource and cached for GrantCacheTTL.
// Invalidate drops the cache at once. A source that reports metadata
// changes (the broker: its store watch sees every broker's writes) calls
// it on every tenant or namespace change, so a grant or revocation made
// through any broker on the same metadata store takes effect on the next
// request of every connection; the admin API also calls it after its own
// changes. The TTL is the safety net.

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

// Grants are what one namespace's policies grant.
type Grants struct {
	// Namespace is role -> actions on every topic of the namespace.
	Namespace map[string][]Action
	// Topics is full topic name (persistent://tenant/ns/topic; a
	// partitioned topic by its base name) -> role -> actions on that topic.
	Topics map[string]map[string][]Action
}

// actions returns what role holds on topic (a full base name; "" for the
// namespace's own grants only).
func (g Grants) actions(role, topic string) []Action {
	out := g.Namespace[role]
	if topic != "" {
		if t := g.Topics[topic][role]; len(t) > 0 {
			out = append(slices.Clip(out), t...)
		}
	}
	return out
}

// GrantSource is where grants are kept: the broker's tenants and namespace
// policies. Errors other than "not found" are passed on to the caller (the
// operation fails as a server error, not as a refusal).
type GrantSource interface {
	// TenantAdminRoles returns the tenant's admin roles; a missing tenant
	// has none.
	TenantAdminRoles(ctx context.Context, tenant string) ([]string, error)
	// NamespaceGrants returns the grants of "tenant/ns" and of its topics;
	// a missing namespace grants nothing. The result is shared by the
	// cache: callers MUST NOT modify it.
	NamespaceGrants(ctx context.Context, namespace string) (Grants, error)
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
	grants Grants
	at     time.Time
}

// ChangeNotifier is implemented by grant sources that report changes to
// their records (*broker.Broker, from its metadata store watch).
type ChangeNotifier interface {
	OnMetadataChange(fn func(broker.MetadataChange))
}

// NewAuthorizer returns an Authorizer over src. superUsers may do anything.
// If src is a ChangeNotifier, tenant and namespace changes invalidate the
// cache.
func NewAuthorizer(superUsers []string, src GrantSource) *Authorizer {
	z := &Authorizer{superUsers: slices.Clone(superUsers), src: src, ttl: DefaultGrantCacheTTL, now: time.Now}
	z.Invalidate()
	if n, ok := src.(ChangeNotifier); ok {
		n.OnMetadataChange(func(c broker.MetadataChange) {
			if c.Kind != "topic" { // grants live in tenant and namespace records
				z.Invalidate()
			}
		})
	}
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
// ("tenant/ns") as a whole: topic grants do not count. err is a failure to
// read the grants, not a refusal.
func (z *Authorizer) Allowed(ctx context.Context, p Principal, namespace string, need Need) (bool, error) {
	return z.allowed(ctx, p, namespace, need, func(g Grants) []Action { return g.Namespace[p.Role] })
}

// AllowedTopic reports whether p may do what need says on topic: what
// Allowed allows on its namespace, or what the topic grants p (a
// partition: what its partitioned topic grants).
func (z *Authorizer) AllowedTopic(ctx context.Context, p Principal, topic broker.TopicName, need Need) (bool, error) {
	key := topic.Base().String()
	return z.allowed(ctx, p, topic.NamespaceName(), need, func(g Grants) []Action { return g.actions(p.Role, key) })
}

// AllowedSomeTopic reports whether p may do what need says on the
// namespace as a whole or on at least one of its topics (by a topic
// grant): Kafka consumer groups, which live in a namespace but are used
// to read its topics, are allowed this way.
func (z *Authorizer) AllowedSomeTopic(ctx context.Context, p Principal, namespace string, need Need) (bool, error) {
	return z.allowed(ctx, p, namespace, need, func(g Grants) []Action {
		out := slices.Clone(g.Namespace[p.Role])
		for _, roles := range g.Topics {
			out = append(out, roles[p.Role]...)
		}
		return out
	})
}

// allowed is superuser || tenant admin || need held among actions(grants
// of namespace).
func (z *Authorizer) allowed(ctx context.Context, p Principal, namespace string, need Need, actions func(Grants) []Action) (bool, error) {
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
	return Implies(actions(grants), need), nil
}

// Implies reports whether holding actions allows need (lookup: any
// action; admin: never).
func Implies(actions []Action, need Need) bool {
	switch need {
	case NeedProduce:
		return slices.Contains(actions, ActionProduce)
	case NeedConsume:
		return slices.Contains(actions, ActionConsume)
	case NeedLookup:
		return len(actions) > 0
	}
	return false
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

// CheckTopic is AllowedTopic as an error, as Check is Allowed.
func (z *Authorizer) CheckTopic(ctx context.Context, p Principal, topic broker.TopicName, need Need) error {
	ok, err := z.AllowedTopic(ctx, p, topic, need)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: role %q may not %s on topic %s", ErrNotAuthorized, p.Role, need, topic)
	}
	return nil
}

func (z *Authorizer) tenantRoles(ctx context.Context, tenant string) ([]string, error) {
	return cached(z, ctx, func() map[string]cachedRoles { return z.mu.tenants }, tenant,
		func(c cachedRoles) ([]string, time.Time) { return c.roles, c.at },
		func(v []string, at time.Time) cachedRoles { return cachedRoles{roles: v, at: at} },
		z.src.TenantAdminRoles)
}

func (z *Authorizer) namespaceGrants(ctx context.Context, namespace string) (Grants, error) {
	return cached(z, ctx, func() map[string]cachedGrants { return z.mu.namespaces }, namespace,
		func(c cachedGrants) (Grants, time.Time) { return c.grants, c.at },
		func(v Grants, at time.Time) cachedGrants { return cachedGrants{grants: v, at: at} },
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
// namespaces' Policies.Permissions and Policies.TopicPermissions.
type BrokerGrants struct{ Svc broker.Service }

func (g BrokerGrants) TenantAdminRoles(ctx context.Context, tenant string) ([]string, error) {
	info, err := g.Svc.GetTenant(ctx, tenant)
	if errors.Is(err, broker.ErrTenantNotFound) || errors.Is(err, broker.ErrInvalidName) {
		return nil, nil
	}
	return info.AdminRoles, err
}

func (g BrokerGrants) NamespaceGrants(ctx context.Context, namespace string) (Grants, error) {
	p, err := g.Svc.NamespacePolicies(ctx, namespace)
	if errors.Is(err, broker.ErrNamespaceNotFound) || errors.Is(err, broker.ErrInvalidName) {
		return Grants{}, nil
	}
	if err != nil {
		return Grants{}, err
	}
	out := Grants{Namespace: ParseGrants(p.Permissions)}
	if len(p.TopicPermissions) > 0 {
		out.Topics = make(map[string]map[string][]Action, len(p.TopicPermissions))
		for topic, perms := range p.TopicPermissions {
			out.Topics[topic] = ParseGrants(perms)
		}
	}
	return out, nil
}

// ParseGrants converts stored role -> action names, skipping names it does
// not know (a newer broker's, or Pulsar's functions and the like).
func ParseGrants(perms map[string][]string) map[string][]Action {
	grants := make(map[string][]Action, len(perms))
	for role, actions := range perms {
		for _, a := range actions {
			if a, err := ParseAction(a); err == nil {
				grants[role] = append(grants[role], a)
			}
		}
	}
	return grants
}

// OnMetadataChange implements ChangeNotifier when Svc reports changes.
func (g BrokerGrants) OnMetadataChange(fn func(broker.MetadataChange)) {
	if n, ok := g.Svc.(ChangeNotifier); ok {
		n.OnMetadataChange(fn)
	}
}
