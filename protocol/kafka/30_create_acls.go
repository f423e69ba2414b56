package kafka

// CreateAcls (key 30), versions 1-2 (Kafka 2.8's maximum; v0, without a
// pattern type, is not served: see 29_describe_acls.go).
//
// Each creation is mapped onto a namespace or topic permission (acls.go)
// and needs admin of that namespace's tenant (CLUSTER_AUTHORIZATION_FAILED
// otherwise). A creation kopernik cannot represent is refused with
// INVALID_REQUEST and changes nothing; the others of the request are
// carried out. Granting what a role already holds succeeds. A namespace
// that does not exist is INVALID_REQUEST. SECURITY_DISABLED without an
// authorizer.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(1, 2, handleCreateACLs) }

func handleCreateACLs(ctx context.Context, c *conn, req *kmsg.CreateACLsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	errs := c.h.createACLs(ctx, c, req.Creations)
	for i := range req.Creations {
		r := kmsg.NewCreateACLsResponseResult()
		if err := errs[i]; err != nil {
			r.ErrorCode, r.ErrorMessage = errCode(err), errMsg(err)
			c.log.DebugContext(ctx, "kafka: create acl refused", "principal", req.Creations[i].Principal,
				"resource", req.Creations[i].ResourceName, "err", err)
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

// createACLs carries out the creations; it returns each one's error.
func (h *Handler) createACLs(ctx context.Context, c *conn, creations []kmsg.CreateACLsRequestCreation) []error {
	errs := make([]error, len(creations))
	if h.authz == nil {
		for i := range errs {
			errs[i] = errSecurityDisabled
		}
		return errs
	}
	changes := make([]aclChange, len(creations))
	byNS := map[string][]int{}
	for i := range creations {
		ch, err := h.aclCreation(ctx, &creations[i])
		if err == nil {
			err = h.checkACLAdmin(ctx, ch.ns)
		}
		if err != nil {
			errs[i] = err
			continue
		}
		changes[i] = ch
		byNS[ch.ns] = append(byNS[ch.ns], i)
	}
	if len(byNS) == 0 {
		return errs
	}
	changed := false
	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		idx := byNS[ns]
		did, err := h.aclUpdate(ctx, ns, func(perms *aclPerms) {
			for _, i := range idx {
				ch := changes[i]
				m := perms.of(ch.topic)
				for _, a := range ch.add {
					m[ch.role] = append(m[ch.role], string(a))
				}
			}
			// GROUP READ "*": implied by a topic consume grant, else
			// consume on the namespace.
			for _, i := range idx {
				if ch := changes[i]; ch.groupRead && !perms.holdsTopicConsume(ch.role) {
					perms.ns[ch.role] = append(perms.ns[ch.role], string(auth.ActionConsume))
				}
			}
			// DESCRIBE is implied: accepted when the role now holds an
			// action implying it.
			for _, i := range idx {
				// Set on every run: only the last (stored) one counts.
				errs[i] = nil
				if need := changes[i].implied; need != 0 && !aclImplies(perms, changes[i], need) {
					errs[i] = aclUnsupported("DESCRIBE cannot be granted alone: kopernik implies it by READ or WRITE (groups: READ); grant one of those too")
				}
			}
		})
		if errors.Is(err, broker.ErrNamespaceNotFound) {
			err = fmt.Errorf("%w: namespace %s does not exist", errInvalidRequest, ns)
		}
		if err != nil {
			for _, i := range idx {
				errs[i] = err
			}
			continue
		}
		if did {
			changed = true
			var roles []string
			for _, i := range idx {
				roles = append(roles, changes[i].role)
			}
			slices.Sort(roles)
			c.log.InfoContext(ctx, "kafka: acl granted", "namespace", ns, "roles", slices.Compact(roles), "by", principal(ctx).Role)
		}
	}
	if changed {
		h.authz.Invalidate()
	}
	return errs
}

// aclImplies reports whether ch's role holds need where ch applies: a
// topic (its grants and the namespace's), the namespace (topic DESCRIBE on
// a namespace resource), or the namespace's groups (group DESCRIBE:
// consume on the namespace or on one of its topics).
func aclImplies(perms *aclPerms, ch aclChange, need auth.Need) bool {
	var names []string
	switch {
	case ch.topic != "":
		names = append(slices.Clone(perms.ns[ch.role]), perms.topics[ch.topic][ch.role]...)
	case need == auth.NeedConsume:
		if perms.holdsTopicConsume(ch.role) {
			return true
		}
		names = perms.ns[ch.role]
	default:
		names = perms.ns[ch.role]
	}
	return auth.Implies(auth.ParseGrants(map[string][]string{ch.role: names})[ch.role], need)
}
