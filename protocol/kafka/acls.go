package kafka

// Kafka ACLs (KIP-140: DescribeAcls, CreateAcls, DeleteAcls) over
// kopernik's namespace and topic permissions (package auth; Pulsar's
// /admin/v2/namespaces/{t}/{ns}/permissions and
// /admin/v2/persistent/{t}/{ns}/{topic}/permissions). Kopernik grants roles
// the produce and/or consume action on a whole namespace or on one topic;
// a Kafka binding is accepted only when it says exactly that:
//
//	principal    User:<role>  (the role of the token; not the wildcard User:*)
//	host         *
//	permission   ALLOW
//	resource     TOPIC PREFIXED "<tenant>/<ns>/"  the namespace tenant/ns
//	             TOPIC LITERAL "*"                the connection's namespace
//	             TOPIC LITERAL "<topic>"          that one topic (a short name:
//	                                              in the connection's namespace;
//	                                              "<tenant>/<ns>/<topic>"
//	                                              elsewhere); it need not exist
//	             GROUP LITERAL "*"                the connection's namespace
//	                                              (groups live there and are
//	                                              authorized by consume)
//	operation    READ -> consume, WRITE -> produce, ALL -> both (topics);
//	             READ (groups): see below; DESCRIBE is implied by READ or
//	             WRITE, so a DESCRIBE creation changes nothing and succeeds
//	             when the role then holds an action that implies it
//
// GROUP READ "*": a role that holds consume on a topic of the connection's
// namespace by a topic grant (once the request's other creations are
// applied) may already use the namespace's groups (authz.go), so the
// binding is implied and changes nothing; otherwise it grants consume on
// the connection's namespace, as it always did. So Kafka's habit of
// pairing topic READ with group READ does not widen a topic grant to the
// namespace, as long as the topic READ comes first or in the same request.
//
// Any other creation (DENY, a host, a literal group name, a partition's
// name, another resource type or operation) is refused with
// INVALID_REQUEST and a message saying why, and changes nothing; the other
// creations of the request are carried out. Without an authorizer every
// ACL API answers SECURITY_DISABLED, as Kafka does.
//
// Bindings are reported (DescribeAcls, and DeleteAcls' matches) in two
// forms: TOPIC PREFIXED "<tenant>/<ns>/" for a namespace grant, TOPIC
// LITERAL "<topic>" for a topic grant (named as the connection names it:
// short in its namespace, "<tenant>/<ns>/<topic>" elsewhere); READ for
// consume, WRITE for produce. Filters follow Kafka's rules (ANY, MATCH,
// LITERAL, PREFIXED; null name, principal and host match anything; MATCH
// of a name selects the LITERAL binding of that name and the PREFIXED
// bindings it starts with, PREFIXED selects PREFIXED bindings only) against
// those forms, with these aliases: a filter for TOPIC LITERAL "*" matches
// the namespace bindings of the connection's namespace, one for GROUP
// LITERAL "*" its consume bindings; MATCH of a topic name matches the
// namespace bindings of the namespace the name resolves to (short names:
// the connection's) and the topic bindings of that topic; a topic binding
// also answers to its "<tenant>/<ns>/<topic>" name. A filter operation ALL
// matches READ and WRITE (a created ALL is kept as both).
//
// Who may call: CreateAcls and DeleteAcls change a namespace's (or its
// topics') permissions, which needs admin of its tenant (a tenant admin
// role or a superuser), else CLUSTER_AUTHORIZATION_FAILED; DescribeAcls and
// DeleteAcls see only the namespaces of tenants the caller administers (a
// superuser: all), and a caller who administers none is refused with
// CLUSTER_AUTHORIZATION_FAILED.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

// aclPrincipalPrefix is the principal type of every kopernik role.
const aclPrincipalPrefix = "User:"

// aclGrant is one action a role holds on a namespace or one of its
// topics: one binding.
type aclGrant struct {
	ns     string // "tenant/ns"
	topic  string // full topic name for a topic grant; "" for the namespace's
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

// aclResource is the resource g is reported as: TOPIC PREFIXED
// "<tenant>/<ns>/", or TOPIC LITERAL with the topic's Kafka name.
func (h *Handler) aclResource(ctx context.Context, g aclGrant) (kmsg.ACLResourcePatternType, string) {
	if g.topic == "" {
		return kmsg.ACLResourcePatternTypePrefixed, aclResourceName(g.ns)
	}
	return kmsg.ACLResourcePatternTypeLiteral, h.aclTopicName(ctx, g.topic)
}

// aclTopicName is the Kafka name of the granted topic full (short in the
// connection's namespace); a name Kafka clients cannot spell otherwise (a
// non-persistent topic) stays full.
func (h *Handler) aclTopicName(ctx context.Context, full string) string {
	n, err := broker.ParseTopicName(full, "", "")
	if err != nil || n.Domain != "persistent" {
		return full
	}
	return h.kafkaName(ctx, n)
}

// errSecurityDisabled answers every ACL API when authorization is off.
var errSecurityDisabled = fmt.Errorf("%w: authorization is not enabled on this broker (authorization-enabled)", kerr.SecurityDisabled)

// aclUnsupported refuses a creation kopernik cannot represent.
func aclUnsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInvalidRequest, fmt.Sprintf(format, args...))
}

// aclChange is what one accepted creation asks for.
type aclChange struct {
	ns        string
	topic     string // full topic name for a topic grant
	role      string
	add       []auth.Action // actions to grant
	implied   auth.Need     // DESCRIBE: nothing to add; the role must then hold this
	groupRead bool          // GROUP READ "*": implied by a topic consume grant, else add consume
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
		n, err := h.parseName(ctx, c.ResourceName)
		if err != nil {
			return aclChange{}, fmt.Errorf("%w: topic %q: %v", errInvalidRequest, c.ResourceName, err)
		}
		if n.PartitionIndex() >= 0 {
			return aclChange{}, aclUnsupported("topic %q names a partition: grant its partitioned topic, which covers its partitions", c.ResourceName)
		}
		ch.ns, ch.topic = n.NamespaceName(), n.String()
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
		ch.groupRead = true
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

// aclReadGrants returns the bindings of namespace ns and its topics:
// the namespace's first, then by topic, each sorted by role then action; a
// namespace deleted meanwhile has none.
func (h *Handler) aclReadGrants(ctx context.Context, ns string) ([]aclGrant, error) {
	p, err := h.svc.NamespacePolicies(ctx, ns)
	if errors.Is(err, broker.ErrNamespaceNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []aclGrant
	add := func(topic string, perms map[string][]string) {
		for role, actions := range perms {
			for _, a := range actions {
				if act, err := auth.ParseAction(a); err == nil {
					out = append(out, aclGrant{ns: ns, topic: topic, role: role, action: act})
				}
			}
		}
	}
	add("", p.Permissions)
	for topic, perms := range p.TopicPermissions {
		add(topic, perms)
	}
	slices.SortFunc(out, func(a, b aclGrant) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		if c := strings.Compare(a.role, b.role); c != 0 {
			return c
		}
		return strings.Compare(string(a.action), string(b.action))
	})
	return slices.CompactFunc(out, func(a, b aclGrant) bool { return a == b }), nil
}

// aclPerms are a namespace's grants as stored: its own (role -> actions)
// and its topics' (full topic name -> role -> actions).
type aclPerms struct {
	ns     map[string][]string
	topics map[string]map[string][]string
}

// of returns the role -> actions map of topic ("": the namespace's),
// creating it.
func (p *aclPerms) of(topic string) map[string][]string {
	if topic == "" {
		return p.ns
	}
	m := p.topics[topic]
	if m == nil {
		m = map[string][]string{}
		p.topics[topic] = m
	}
	return m
}

// holdsTopicConsume reports whether role may consume some topic of the
// namespace through a topic grant.
func (p *aclPerms) holdsTopicConsume(role string) bool {
	for _, perms := range p.topics {
		if slices.Contains(perms[role], string(auth.ActionConsume)) {
			return true
		}
	}
	return false
}

// aclUpdate applies change to namespace ns's permissions and its topics'
// (role -> sorted actions; a role without actions, and a topic without
// roles, removed) and stores them if they changed, by the broker's
// compare-and-swap: concurrent ACL requests, admin API grants and other
// brokers never lose each other's change. change may run more than once.
func (h *Handler) aclUpdate(ctx context.Context, ns string, change func(perms *aclPerms)) (changed bool, err error) {
	err = h.svc.UpdateNamespacePolicies(ctx, ns, func(p *broker.Policies) error {
		changed = aclApply(p, change)
		if !changed {
			return broker.ErrUnchanged
		}
		return nil
	})
	return changed, err
}

// aclApply applies change to p's permissions; false if they stay the same.
func aclApply(p *broker.Policies, change func(perms *aclPerms)) bool {
	perms := aclPerms{ns: aclClonePerms(p.Permissions), topics: make(map[string]map[string][]string, len(p.TopicPermissions))}
	for topic, tp := range p.TopicPermissions {
		perms.topics[topic] = aclClonePerms(tp)
	}
	change(&perms)
	aclNormalize(perms.ns)
	for topic, tp := range perms.topics {
		if aclNormalize(tp); len(tp) == 0 {
			delete(perms.topics, topic)
		}
	}
	same := aclSamePermissions(p.Permissions, perms.ns) && len(p.TopicPermissions) == len(perms.topics)
	for topic, tp := range perms.topics {
		old, ok := p.TopicPermissions[topic]
		same = same && ok && aclSamePermissions(old, tp)
	}
	if same {
		return false
	}
	p.Permissions, p.TopicPermissions = perms.ns, perms.topics
	if len(perms.ns) == 0 {
		p.Permissions = nil
	}
	if len(perms.topics) == 0 {
		p.TopicPermissions = nil
	}
	return true
}

func aclClonePerms(perms map[string][]string) map[string][]string {
	out := make(map[string][]string, len(perms))
	for role, actions := range perms {
		out[role] = slices.Clone(actions)
	}
	return out
}

// aclNormalize sorts each role's actions and drops roles without any.
func aclNormalize(perms map[string][]string) {
	for role, actions := range perms {
		slices.Sort(actions)
		actions = slices.Compact(actions)
		if len(actions) == 0 {
			delete(perms, role)
			continue
		}
		perms[role] = actions
	}
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
	if g.topic != "" {
		return h.aclMatchesTopic(ctx, f, g)
	}
	if !aclMatchesBinding(f, g) {
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

// aclMatchesTopic is aclMatches for a topic grant: a TOPIC LITERAL binding
// named as the connection names the topic, or "<tenant>/<ns>/<topic>".
func (h *Handler) aclMatchesTopic(ctx context.Context, f *aclFilter, g aclGrant) bool {
	if !aclMatchesBinding(f, g) || f.resourceType != kmsg.ACLResourceTypeAny && f.resourceType != kmsg.ACLResourceTypeTopic {
		return false
	}
	switch f.pattern {
	case kmsg.ACLResourcePatternTypeAny, kmsg.ACLResourcePatternTypeMatch, kmsg.ACLResourcePatternTypeLiteral:
	default:
		return false // PREFIXED filters select PREFIXED bindings only
	}
	if f.name == nil {
		return true
	}
	if f.pattern == kmsg.ACLResourcePatternTypeMatch {
		// Kafka: a LITERAL binding applies to the resource of its name.
		n, err := h.parseName(ctx, *f.name)
		return err == nil && n.String() == g.topic
	}
	if *f.name == h.aclTopicName(ctx, g.topic) {
		return true
	}
	n, err := broker.ParseTopicName(g.topic, "", "")
	return err == nil && n.Domain == "persistent" && *f.name == n.Tenant+"/"+n.Namespace+"/"+n.Local
}

// aclMatchesBinding checks the fields of f every binding has: principal,
// host, permission and operation.
func aclMatchesBinding(f *aclFilter, g aclGrant) bool {
	if f.principal != nil && *f.principal != aclPrincipalPrefix+g.role {
		return false
	}
	if f.host != nil && *f.host != "*" {
		return false
	}
	if f.permission != kmsg.ACLPermissionTypeAny && f.permission != kmsg.ACLPermissionTypeAllow {
		return false
	}
	op := f.operation
	return op == kmsg.ACLOperationAny || op == kmsg.ACLOperationAll || op == g.operation()
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
