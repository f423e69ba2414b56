package kafka

// DescribeAcls (key 29), versions 1-2 (Kafka 2.8's maximum; v0 cannot
// carry a pattern type, and namespace grants are reported PREFIXED).
//
// Reports the namespace and topic permissions of the tenants the caller
// administers as bindings TOPIC PREFIXED "<tenant>/<ns>/" and TOPIC
// LITERAL "<topic>" (see acls.go for the mapping and the filter rules). SECURITY_DISABLED without an authorizer,
// CLUSTER_AUTHORIZATION_FAILED for a caller who administers no tenant,
// INVALID_REQUEST for a filter with UNKNOWN values.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(1, 2, handleDescribeACLs) }

func handleDescribeACLs(ctx context.Context, c *conn, req *kmsg.DescribeACLsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	f := aclFilter{
		resourceType: req.ResourceType, name: req.ResourceName, pattern: req.ResourcePatternType,
		principal: req.Principal, host: req.Host, operation: req.Operation, permission: req.PermissionType,
	}
	grants, err := c.h.describeACLs(ctx, &f)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errCode(err), errMsg(err)
		c.log.DebugContext(ctx, "kafka: describe acls failed", "err", err)
		return resp, nil
	}
	for _, g := range grants {
		pattern, name := c.h.aclResource(ctx, g)
		if n := len(resp.Resources); n == 0 || resp.Resources[n-1].ResourceName != name || resp.Resources[n-1].ResourcePatternType != pattern {
			r := kmsg.NewDescribeACLsResponseResource()
			r.ResourceType, r.ResourceName, r.ResourcePatternType = kmsg.ACLResourceTypeTopic, name, pattern
			resp.Resources = append(resp.Resources, r)
		}
		a := kmsg.NewDescribeACLsResponseResourceACL()
		a.Principal, a.Host = aclPrincipalPrefix+g.role, "*"
		a.Operation, a.PermissionType = g.operation(), kmsg.ACLPermissionTypeAllow
		r := &resp.Resources[len(resp.Resources)-1]
		r.ACLs = append(r.ACLs, a)
	}
	return resp, nil
}

// describeACLs returns the bindings f selects, grouped by namespace, then
// by topic.
func (h *Handler) describeACLs(ctx context.Context, f *aclFilter) ([]aclGrant, error) {
	if h.authz == nil {
		return nil, errSecurityDisabled
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	nss, err := h.aclNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	grants, err := h.aclLoad(ctx, nss)
	if err != nil {
		return nil, err
	}
	return h.aclMatching(ctx, f, nss, grants)
}
