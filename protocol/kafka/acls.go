package kafka

// Kafka ACLs (KIP-140: DescribeAcls, CreateAcls, DeleteAcls) over
// kopernik's namespace permissions (package auth; Pulsar's
// /admin/v2/namespaces/{t}/{ns}/permissions). Kopernik grants roles the
// produce and/or consume action on a whole namespace; a Kafka binding is
// accepted only when it says exactly that:
//
//	principal    User:<role>  (the role of the token; not the wildcard User:*)
//	host         *
//	permission   ALLOW
//	resource     TOPIC PREFIXED "<tenant>/<ns>/"  the namespace tenant/ns
//	             TOPIC LITERAL "*"                the connection's namespace
//	             GROUP LITERAL "*"                the connection's namespace
//	                                              (groups live there and are
//	                                              authorized by consume)
//	operation    READ -> consume, WRITE -> produce, ALL -> both (topics);
//	             READ -> consume (groups); DESCRIBE is implied by READ or
//	             WRITE, so a DESCRIBE creation changes nothing and succeeds
//	             when the role then holds an action that implies it
//
// Any other creation (DENY, a host, a literal topic or group name, another
// resource type or operation) is refused with INVALID_REQUEST and a message
// saying why, and changes nothing; the other creations of the request are
// carried out. Without an authorizer every ACL API answers SECURITY_DISABLED,
// as Kafka does.
//
// Bindings are reported (DescribeAcls, and DeleteAcls' matches) in one
// form only: TOPIC PREFIXED "<tenant>/<ns>/", READ for consume, WRITE for
// produce. Filters follow Kafka's rules (ANY, MATCH, LITERAL, PREFIXED;
// null name, principal and host match anything) against that form, with
// these aliases: a filter for TOPIC LITERAL "*" matches the bindings of the
// connection's namespace, one for GROUP LITERAL "*" its consume bindings,
// and MATCH of a topic name matches the bindings of the namespace the name
// resolves to (short names: the connection's). A filter operation ALL
// matches READ and WRITE (a created ALL is kept as both).
//
// Who may call: CreateAcls and DeleteAcls change a namespace's
// permissions, which needs admin of its tenant (a tenant admin role or a
// superuser), else CLUSTER_AUTHORIZATION_FAILED; DescribeAcls and DeleteAcls
// see only the namespaces of tenants the caller administers (a superuser:
// all), and a caller who administers none is refused with
// CLUSTER_AUTHORIZATION_FAILED.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

// aclMu serialises this package's read-modify-write of namespace
// permissions, so two concurrent ACL requests (on any connection, of any
// handler in the process) never lose each other's change. The admin API's
// permission endpoints read-modify-write the same policies without this
// lock: a grant made there at the same instant as an ACL change here may
// still be lost (the broker offers no compare-and-set on policies).
var aclMu sync.Mutex

// aclPrincipalPrefix is the principal type of every kopernik role.
const aclPrincipalPrefix = "User:"

// aclGrant is one action a role holds on a namespace: one binding.
type aclGrant struct {
	ns     string // "tenant/ns"
	role   string
	action auth.Action
}

// aclOperation is the operation a grant is reported with.
func (g aclGrant) operation() kmsg.ACLOperation {
	if g.action == auth.ActionProduce {
		return kmsg.ACLOperationWrite
	}
	return kmsg.ACLOperationRead
}

// aclResourceName is the PREFIXED topic resource naming namespace ns.
func aclResourceName(ns string) string { return ns + "/" }

// errSecurityDisabled answers every ACL API when authorization is off.
var errSecurityDisabled = fmt.Errorf("%w: authorization is not enabled on this broker (authorization-enabled)", kerr.SecurityDisabled)

// aclUnsupported refuses a creation kopernik cannot represent.
func aclUnsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInvalidRequest, fmt.Sprintf(format, args...))
}

// aclChange is what one accepted creation asks for.
type aclChange struct {
	ns      string
	role    string
	add     []auth.Action // actions to grant
	implied auth.Need     // DESCRIBE: nothing to add; the role must then hold this
}

// aclCreation maps a creation onto a namespace grant, or says why it cannot.
func (h *Handler) aclCreation(ctx context.Context, c *kmsg.CreateACLsRequestCreation) (aclChange, error) {
	switch {
	case c.ResourceType != kmsg.ACLResourceTypeTopic && c.ResourceType != kmsg.ACLResourceTypeGroup:
		if c.ResourceType <= kmsg.ACLResourceTypeAny || c.ResourceType > kmsg.ACLResourceTypeUser {
			return aclChange{}, fmt.Errorf("%w: resource type %s is not valid in a binding", errInvalidRequest, c.ResourceType)
		}
		return aclChange{}, aclUnsupported("resource type %s: kopernik grants topics and groups only", c.ResourceType)
	case c.ResourcePatternType != kmsg.ACLResourcePatternTypeLiteral && c.ResourcePatternType != kmsg.ACLResourcePatternTypePrefixed:
		return aclChange{}, fmt.Errorf("%w: pattern type %s is not valid in a binding (LITERAL or PREFIXED)", errInvalidRequest, c.ResourcePatternType)
	case c.Operation <= kmsg.ACLOperationAny || c.Operation > kmsg.ACLOperationDescribeTokens:
		return aclChange{}, fmt.Errorf("%w: operation %s is not valid in a binding", errInvalidRequest, c.Operation)
	case c.PermissionType == kmsg.ACLPermissionTypeDeny:
		return aclChange{}, aclUnsupported("DENY: kopernik grants permissions, it cannot deny them")
	case c.PermissionType != kmsg.ACLPermissionTypeAllow:
		return aclChange{}, fmt.Errorf("%w: permission type %s is not valid in a binding", errInvalidRequest, c.PermissionType)
	case c.Host != "*":
		return aclChange{}, aclUnsupported("host %q: kopernik grants from every host only (*)", c.Host)
	}
	role, ok := strings.CutPrefix(c.Principal, aclPrincipalPrefix)
	if !ok || role == "" {
		return aclChange{}, aclUnsupported("principal %q: kopernik roles are User:<role>", c.Principal)
	}
	if role == "*" {
		return aclChange{}, aclUnsupported("principal User:*: kopernik grants named roles only")
	}
	ch := aclChange{role: role}
	tenant, ns := h.namespaceOf(ctx)
	switch {
	case c.ResourceType == kmsg.ACLResourceTypeTopic && c.ResourcePatternType == kmsg.ACLResourcePatternTypePrefixed:
		n, err := aclParsePrefix(c.ResourceName)
		if err != nil {
			return aclChange{}, err
		}
		ch.ns = n
	case c.ResourcePatternType == kmsg.ACLResourcePatternTypeLiteral && c.ResourceName == "*": // topic or group
		ch.ns = tenant + "/" + ns
	case c.ResourceType == kmsg.ACLResourceTypeTopic:
		return aclChange{}, aclUnsupported("topic %q: kopernik grants whole namespaces: use PREFIXED \"<tenant>/<namespace>/\" or LITERAL \"*\" (the connection's namespace)", c.ResourceName)
	default:
		return aclChange{}, aclUnsupported("group %q %s: kopernik grants groups of the connection's namespace as a whole: use LITERAL \"*\"", c.ResourceName, c.ResourcePatternType)
	}
	switch op := c.Operation; {
	case c.ResourceType == kmsg.ACLResourceTypeTopic && op == kmsg.ACLOperationRead:
		ch.add = []auth.Action{auth.ActionConsume}
	case c.ResourceType == kmsg.ACLResourceTypeTopic && op == kmsg.ACLOperationWrite:
		ch.add = []auth.Action{auth.ActionProduce}
	case c.ResourceType == kmsg.ACLResourceTypeTopic && op == kmsg.ACLOperationAll:
		ch.add = []auth.Action{auth.ActionConsume, auth.ActionProduce}
	case c.ResourceType == kmsg.ACLResourceTypeTopic && op == kmsg.ACLOperationDescribe:
		ch.implied = auth.NeedLookup
	case c.ResourceType == kmsg.ACLResourceTypeGroup && op == kmsg.ACLOperationRead:
		ch.add = []auth.Action{auth.ActionConsume}
	case c.ResourceType == kmsg.ACLResourceTypeGroup && op == kmsg.ACLOperationDescribe:
		ch.implied = auth.NeedConsume
	default:
		return aclChange{}, aclUnsupported("operation %s on %s: kopernik grants READ (consume) and WRITE (produce) on topics, READ on groups; "+
			"creating and deleting topics, configs and the cluster are for tenant admins", op, c.ResourceType)
	}
	return ch, nil
}

// aclParsePrefix parses a PREFIXED topic resource "<tenant>/<ns>/".
func aclParsePrefix(name string) (string, error) {
	parts := strings.Split(name, "/")
	if len(parts) != 3 || parts[2] != "" {
		return "", aclUnsupported("prefix %q: kopernik grants whole namespaces: the prefix must be \"<tenant>/<namespace>/\"", name)
	}
	if err := broker.ValidateSegment("tenant", parts[0]); err != nil {
		return "", fmt.Errorf("%w: prefix %q: %v", errInvalidRequest, name, err)
	}
	if err := broker.ValidateSegment("namespace", parts[1]); err != nil {
		return "", fmt.Errorf("%w: prefix %q: %v", errInvalidRequest, name, err)
	}
	return parts[0] + "/" + parts[1], nil
}

// checkACLAdmin refuses with CLUSTER_AUTHORIZATION_FAILED unless the caller
// administers namespace ns's tenant.
func (h *Handler) checkACLAdmin(ctx context.Context, ns string) error {
	if err := h.authz.Check(ctx, principal(ctx), ns, auth.NeedAdmin); err != nil {
		return authzError(kerr.ClusterAuthorizationFailed, err)
	}
	return nil
}

// aclNamespaces lists the namespaces the caller may see ACLs of: those of
// the tenants it administers (a superuser: every tenant). It refuses with
// CLUSTER_AUTHORIZATION_FAILED when the caller administers no tenant.
func (h *Handler) aclNamespaces(ctx context.Context) ([]string, error) {
	p := principal(ctx)
	tenants, err := h.svc.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	admin := false
	for _, t := range tenants {
		ok, err := h.authz.IsTenantAdmin(ctx, p, t)
		if err != nil {
			return nil, authzError(kerr.ClusterAuthorizationFailed, err)
		}
		if !ok {
			continue
		}
		admin = true
		nss, err := h.svc.ListNamespaces(ctx, t)
		if errors.Is(err, broker.ErrTenantNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, nss...)
	}
	if !admin && !h.authz.IsSuperUser(p) {
		return nil, fmt.Errorf("%w: role %q administers no tenant", kerr.ClusterAuthorizationFailed, p.Role)
	}
	slices.Sort(out)
	return out, nil
}

// aclReadGrants returns the bindings of namespace ns, sorted by role then
// action; a namespace deleted meanwhile has none.
func (h *Handler) aclReadGrants(ctx context.Context, ns string) ([]aclGrant, error) {
	p, err := h.svc.NamespacePolicies(ctx, ns)
	if errors.Is(err, broker.ErrNamespaceNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []aclGrant
	for role, actions := range p.Permissions {
		for _, a := range actions {
			if act, err := auth.ParseAction(a); err == nil {
				out = append(out, aclGrant{ns: ns, role: role, action: act})
			}
		}
	}
	slices.SortFunc(out, func(a, b aclGrant) int {
		if c := strings.Compare(a.role, b.role); c != 0 {
			return c
		}
		return strings.Compare(string(a.action), string(b.action))
	})
	return slices.CompactFunc(out, func(a, b aclGrant) bool { return a == b }), nil
}

// aclUpdate applies change to namespace ns's permissions (role -> sorted
// actions, a role without actions removed) and stores them if they
// changed. The caller holds aclMu.
func (h *Handler) aclUpdate(ctx context.Context, ns string, change func(perms map[string][]string)) (changed bool, err error) {
	p, err := h.svc.NamespacePolicies(ctx, ns)
	if err != nil {
		return false, err
	}
	perms := make(map[string][]string, len(p.Permissions))
	for role, actions := range p.Permissions {
		perms[role] = slices.Clone(actions)
	}
	change(perms)
	for role, actions := range perms {
		slices.Sort(actions)
		actions = slices.Compact(actions)
		if len(actions) == 0 {
			delete(perms, role)
			continue
		}
		perms[role] = actions
	}
	if aclSamePermissions(p.Permissions, perms) {
		return false, nil
	}
	p.Permissions = perms
	if len(perms) == 0 {
		p.Permissions = nil
	}
	return true, h.svc.SetNamespacePolicies(ctx, ns, p)
}

func aclSamePermissions(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for role, actions := range a {
		other, ok := b[role]
		if !ok {
			return false
		}
		x, y := slices.Clone(actions), slices.Clone(other)
		slices.Sort(x)
		slices.Sort(y)
		if !slices.Equal(slices.Compact(x), slices.Compact(y)) {
			return false
		}
	}
	return true
}

// aclFilter is a Kafka binding filter (DescribeAcls' fields, DeleteAcls'
// filters).
type aclFilter struct {
	resourceType kmsg.ACLResourceType
	name         *string
	pattern      kmsg.ACLResourcePatternType
	principal    *string
	host         *string
	operation    kmsg.ACLOperation
	permission   kmsg.ACLPermissionType
}

// validate refuses what Kafka refuses in a filter: UNKNOWN (or
// out-of-range) values.
func (f *aclFilter) validate() error {
	switch {
	case f.resourceType <= kmsg.ACLResourceTypeUnknown || f.resourceType > kmsg.ACLResourceTypeUser:
		return fmt.Errorf("%w: filter resource type %s", errInvalidRequest, f.resourceType)
	case f.pattern <= kmsg.ACLResourcePatternTypeUnknown || f.pattern > kmsg.ACLResourcePatternTypePrefixed:
		return fmt.Errorf("%w: filter pattern type %s", errInvalidRequest, f.pattern)
	case f.operation <= kmsg.ACLOperationUnknown || f.operation > kmsg.ACLOperationDescribeTokens:
		return fmt.Errorf("%w: filter operation %s", errInvalidRequest, f.operation)
	case f.permission <= kmsg.ACLPermissionTypeUnknown || f.permission > kmsg.ACLPermissionTypeAllow:
		return fmt.Errorf("%w: filter permission type %s", errInvalidRequest, f.permission)
	}
	return nil
}

// namedNamespace is the namespace a filter's name spells out as
// "<tenant>/<ns>/..." (PREFIXED, or a full topic name), if it does.
func (f *aclFilter) namedNamespace() (string, bool) {
	if f.name == nil || f.resourceType != kmsg.ACLResourceTypeAny && f.resourceType != kmsg.ACLResourceTypeTopic {
		return "", false
	}
	parts := strings.Split(*f.name, "/")
	if len(parts) != 3 || broker.ValidateSegment("tenant", parts[0]) != nil || broker.ValidateSegment("namespace", parts[1]) != nil {
		return "", false
	}
	return parts[0] + "/" + parts[1], true
}

// aclView is one way a grant can be named as a Kafka resource.
type aclView struct {
	resourceType kmsg.ACLResourceType
	pattern      kmsg.ACLResourcePatternType
	name         string
}

// matches reports whether f selects grant g for a connection whose
// namespace is connNS.
func (h *Handler) aclMatches(ctx context.Context, f *aclFilter, g aclGrant, connNS string) bool {
	if f.principal != nil && *f.principal != aclPrincipalPrefix+g.role {
		return false
	}
	if f.host != nil && *f.host != "*" {
		return false
	}
	if f.permission != kmsg.ACLPermissionTypeAny && f.permission != kmsg.ACLPermissionTypeAllow {
		return false
	}
	if op := f.operation; op != kmsg.ACLOperationAny && op != kmsg.ACLOperationAll && op != g.operation() {
		return false
	}
	topics := f.resourceType == kmsg.ACLResourceTypeAny || f.resourceType == kmsg.ACLResourceTypeTopic
	groups := f.resourceType == kmsg.ACLResourceTypeAny || f.resourceType == kmsg.ACLResourceTypeGroup
	if f.pattern == kmsg.ACLResourcePatternTypeMatch && f.name != nil {
		// The bindings that apply to the named resource.
		name := *f.name
		if topics {
			if name == "*" || strings.HasPrefix(name, aclResourceName(g.ns)) {
				if name != "*" || g.ns == connNS {
					return true
				}
			}
			if n, err := h.parseName(ctx, name); err == nil && n.NamespaceName() == g.ns {
				return true
			}
		}
		return groups && g.ns == connNS && g.action == auth.ActionConsume
	}
	views := []aclView{{kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypePrefixed, aclResourceName(g.ns)}}
	if g.ns == connNS {
		views = append(views, aclView{kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeLiteral, "*"})
		if g.action == auth.ActionConsume {
			views = append(views, aclView{kmsg.ACLResourceTypeGroup, kmsg.ACLResourcePatternTypeLiteral, "*"})
		}
	}
	for _, v := range views {
		if v.resourceType == kmsg.ACLResourceTypeTopic && !topics || v.resourceType == kmsg.ACLResourceTypeGroup && !groups {
			continue
		}
		if f.pattern != kmsg.ACLResourcePatternTypeAny && f.pattern != kmsg.ACLResourcePatternTypeMatch && f.pattern != v.pattern {
			continue
		}
		if f.name != nil && *f.name != v.name {
			continue
		}
		return true
	}
	return false
}

// aclMatching returns the grants filter f selects among namespaces nss.
// A filter naming a namespace of a tenant the caller does not administer
// is refused with CLUSTER_AUTHORIZATION_FAILED rather than answered empty.
func (h *Handler) aclMatching(ctx context.Context, f *aclFilter, nss []string, grants map[string][]aclGrant) ([]aclGrant, error) {
	if ns, ok := f.namedNamespace(); ok && !slices.Contains(nss, ns) {
		if err := h.checkACLAdmin(ctx, ns); err != nil {
			return nil, err
		}
	}
	tenant, ns := h.namespaceOf(ctx)
	connNS := tenant + "/" + ns
	var out []aclGrant
	for _, n := range nss {
		for _, g := range grants[n] {
			if h.aclMatches(ctx, f, g, connNS) {
				out = append(out, g)
			}
		}
	}
	return out, nil
}
