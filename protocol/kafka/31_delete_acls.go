package kafka

// DeleteAcls (key 31), versions 1-2 (Kafka 2.8's maximum; v0 is not
// served: see 29_describe_acls.go).
//
// Each filter (acls.go's rules) removes the actions it selects from the
// namespaces (and their topics) of the tenants the caller administers and
// answers them as the bindings deleted, in the forms DescribeAcls reports:
// TOPIC PREFIXED "<tenant>/<ns>/" or TOPIC LITERAL "<topic>". A
// filter with UNKNOWN values is INVALID_REQUEST; one naming a namespace of
// a tenant the caller does not administer, or any filter of a caller who
// administers no tenant, is CLUSTER_AUTHORIZATION_FAILED. A filter that
// can select nothing kopernik keeps (DENY, another host, DESCRIBE, a
// cluster resource) deletes nothing and succeeds, as in Kafka.
// SECURITY_DISABLED without an authorizer.

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(1, 2, handleDeleteACLs) }

func handleDeleteACLs(ctx context.Context, c *conn, req *kmsg.DeleteACLsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	filters := make([]aclFilter, len(req.Filters))
	for i, rf := range req.Filters {
		filters[i] = aclFilter{
			resourceType: rf.ResourceType, name: rf.ResourceName, pattern: rf.ResourcePatternType,
			principal: rf.Principal, host: rf.Host, operation: rf.Operation, permission: rf.PermissionType,
		}
	}
	matched, errs, nsErrs := c.h.deleteACLs(ctx, c, filters)
	for i := range filters {
		r := kmsg.NewDeleteACLsResponseResult()
		if err := errs[i]; err != nil {
			r.ErrorCode, r.ErrorMessage = errCode(err), errMsg(err)
			c.log.DebugContext(ctx, "kafka: delete acls refused", "err", err)
		}
		for _, g := range matched[i] {
			m := kmsg.NewDeleteACLsResponseResultMatchingACL()
			m.ResourceType = kmsg.ACLResourceTypeTopic
			m.ResourcePatternType, m.ResourceName = c.h.aclResource(ctx, g)
			m.Principal, m.Host = aclPrincipalPrefix+g.role, "*"
			m.Operation, m.PermissionType = g.operation(), kmsg.ACLPermissionTypeAllow
			if err := nsErrs[g.ns]; err != nil {
				m.ErrorCode, m.ErrorMessage = errCode(err), errMsg(err)
			}
			r.MatchingACLs = append(r.MatchingACLs, m)
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

// deleteACLs removes what the filters select. It returns each filter's
// matches and error, and the namespaces whose update failed.
func (h *Handler) deleteACLs(ctx context.Context, c *conn, filters []aclFilter) (matched [][]aclGrant, errs []error, nsErrs map[string]error) {
	matched, errs, nsErrs = make([][]aclGrant, len(filters)), make([]error, len(filters)), map[string]error{}
	fail := func(err error) {
		for i := range errs {
			errs[i] = err
		}
	}
	if h.authz == nil {
		fail(errSecurityDisabled)
		return
	}
	if len(filters) == 0 {
		return
	}
	nss, err := h.aclNamespaces(ctx)
	if err != nil {
		fail(err)
		return
	}
	grants, err := h.aclLoad(ctx, nss)
	if err != nil {
		fail(err)
		return
	}
	remove := map[string][]aclGrant{}
	for i := range filters {
		f := &filters[i]
		if errs[i] = f.validate(); errs[i] != nil {
			continue
		}
		if matched[i], errs[i] = h.aclMatching(ctx, f, nss, grants); errs[i] != nil {
			continue
		}
		for _, g := range matched[i] {
			remove[g.ns] = append(remove[g.ns], g)
		}
	}
	changed := false
	for _, ns := range slices.Sorted(maps.Keys(remove)) {
		did, err := h.aclUpdate(ctx, ns, func(perms *aclPerms) {
			for _, g := range remove[ns] {
				m := perms.of(g.topic)
				m[g.role] = slices.DeleteFunc(m[g.role], func(a string) bool { return a == string(g.action) })
			}
		})
		if errors.Is(err, broker.ErrNamespaceNotFound) {
			err = nil // deleted meanwhile, and its permissions with it
		}
		if err != nil {
			nsErrs[ns] = err
			continue
		}
		if did {
			changed = true
			var roles []string
			for _, g := range remove[ns] {
				roles = append(roles, g.role)
			}
			slices.Sort(roles)
			c.log.InfoContext(ctx, "kafka: acl deleted", "namespace", ns, "roles", slices.Compact(roles), "by", principal(ctx).Role)
		}
	}
	if changed {
		h.authz.Invalidate()
	}
	return matched, errs, nsErrs
}

// aclLoad reads the bindings of namespaces nss.
func (h *Handler) aclLoad(ctx context.Context, nss []string) (map[string][]aclGrant, error) {
	grants := make(map[string][]aclGrant, len(nss))
	for _, ns := range nss {
		g, err := h.aclReadGrants(ctx, ns)
		if err != nil {
			return nil, err
		}
		grants[ns] = g
	}
	return grants, nil
}
