package admin

// Authentication and authorization of admin requests.
//
// With Options.Auth set every request needs "Authorization: Bearer <token>".
// With Options.Authz set, what the token's role may do is decided from the
// request's path, as Pulsar's admin resources decide it:
//
//	superuser only     GET /tenants, PUT|POST|DELETE /tenants/{t}, /kopernik/...,
//	                   anything not listed below
//	tenant admin       GET /tenants/{t}, /namespaces/{t}[/{ns}[/...]],
//	                   /persistent/{t}/... (topic permissions included),
//	                   /non-persistent/{t}/..., DELETE /schemas/...
//	namespace lookup   GET /namespaces/{t}/{ns}/topics
//	(produce or consume
//	on the namespace)
//	topic lookup       GET /persistent/{t}/{ns}/{topic}/partitions,
//	(produce or consume GET /schemas/{t}/{ns}/{topic}/schema[/...],
//	on the namespace   GET /lookup/v2/topic/persistent/{t}/{ns}/{topic}
//	or the topic)
//	any authenticated  GET /clusters[/...]
//
// Without Options.Authz, any authenticated role may do anything, or only
// the SuperUserRoles when that list is not empty.

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

type principalKey struct{}

// principalOf is the authenticated principal of r (zero with auth off).
func principalOf(r *http.Request) auth.Principal {
	p, _ := r.Context().Value(principalKey{}).(auth.Principal)
	return p
}

// probePaths need no token: load balancers and orchestrators probe them.
// They tell only whether the broker is healthy, and why not.
var probePaths = map[string]bool{
	"/healthz": true, "/readyz": true, "/admin/v2/brokers/health": true, "/admin/v2/brokers/ready": true,
}

// authorize authenticates r and checks its role may make it. It answers
// 401 (no or bad token) or 403 (not allowed) itself and returns nil then;
// otherwise the request to serve, carrying the principal.
func (s *server) authorize(w http.ResponseWriter, r *http.Request) *http.Request {
	a := s.opts.Auth
	if a == nil || (r.Method == http.MethodGet && probePaths[r.URL.Path]) {
		return r
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeReason(w, http.StatusUnauthorized, "Authentication required")
		return nil
	}
	p, err := a.AuthenticateToken(strings.TrimSpace(token))
	if err != nil {
		a.Failed(r.Context(), "http", r.RemoteAddr, "token", err)
		writeReason(w, http.StatusUnauthorized, "Authentication required")
		return nil
	}
	allowed, err := s.allowed(r.Context(), p, r)
	if err != nil {
		s.writeError(w, r, err)
		return nil
	}
	if !allowed {
		s.log.Warn("admin request refused", "role", p.Role, "method", r.Method, "path", r.URL.Path)
		writeReason(w, http.StatusForbidden, "Don't have permission to administrate resources")
		return nil
	}
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
}

// allowed decides whether p may make request r (see the package table above).
func (s *server) allowed(ctx context.Context, p auth.Principal, r *http.Request) (bool, error) {
	z := s.opts.Authz
	if z == nil {
		return len(s.opts.SuperUserRoles) == 0 || slices.Contains(s.opts.SuperUserRoles, p.Role), nil
	}
	if z.IsSuperUser(p) {
		return true, nil
	}
	// The path as routed: decoded, without the leading and trailing '/'.
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	at := func(i int) string {
		if i < len(parts) {
			return parts[i]
		}
		return ""
	}
	get := r.Method == http.MethodGet
	if at(0) == "lookup" && at(1) == "v2" && at(2) == "topic" && len(parts) >= 6 {
		return topicLookup(ctx, z, p, at(3), at(4), at(5), at(6))
	}
	if at(0) != "admin" || at(1) != "v2" {
		return false, nil
	}
	resource, tenant, ns := at(2), at(3), at(4)
	switch resource {
	case "clusters":
		return get, nil
	case "tenants":
		if get && tenant != "" && len(parts) == 4 {
			return z.IsTenantAdmin(ctx, p, tenant)
		}
		return false, nil
	case "namespaces":
		if tenant == "" {
			return false, nil
		}
		if get && len(parts) == 6 && at(5) == "topics" {
			return z.Allowed(ctx, p, tenant+"/"+ns, auth.NeedLookup)
		}
		return z.IsTenantAdmin(ctx, p, tenant)
	case "persistent", "non-persistent":
		if tenant == "" {
			return false, nil
		}
		if get && len(parts) == 7 && at(6) == "partitions" {
			return topicLookup(ctx, z, p, resource, tenant, ns, at(5))
		}
		return z.IsTenantAdmin(ctx, p, tenant)
	case "schemas":
		if tenant == "" || ns == "" {
			return false, nil
		}
		if get {
			return topicLookup(ctx, z, p, "persistent", tenant, ns, at(5))
		}
		return z.IsTenantAdmin(ctx, p, tenant)
	}
	return false, nil
}

// topicLookup decides a lookup of topic domain://tenant/ns/local: a grant
// on its namespace or on the topic. A name that does not parse is decided
// on the namespace alone (the request then fails on the name).
func topicLookup(ctx context.Context, z *auth.Authorizer, p auth.Principal, domain, tenant, ns, local string) (bool, error) {
	name, err := broker.ParseTopicName(domain+"://"+tenant+"/"+ns+"/"+local, "", "")
	if err != nil {
		return z.Allowed(ctx, p, tenant+"/"+ns, auth.NeedLookup)
	}
	return z.AllowedTopic(ctx, p, name, auth.NeedLookup)
}

// changedGrants tells the authorizer that grants may have changed: its
// cached decisions are dropped.
func (s *server) changedGrants() { s.opts.Authz.Invalidate() }
