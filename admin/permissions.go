package admin

// Namespace permissions (Pulsar's NamespacesBase grantPermissionOnNamespace):
//
//	GET    /admin/v2/namespaces/{t}/{ns}/permissions         {"role": ["produce", "consume"], ...}
//	POST   /admin/v2/namespaces/{t}/{ns}/permissions/{role}  body: ["produce", "consume"]
//	DELETE /admin/v2/namespaces/{t}/{ns}/permissions/{role}
//
// A grant replaces the role's actions; package auth enforces them. Actions
// other than produce and consume (Pulsar's functions, sources, sinks,
// packages) are refused: kopernik has nothing they would allow.

import (
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func (s *server) permissionRoutes(mux *http.ServeMux) {
	base := "/admin/v2/namespaces/{tenant}/{ns}/permissions"
	mux.HandleFunc("GET "+base, s.getPermissions)
	mux.HandleFunc("POST "+base+"/{role}", s.grantPermission)
	mux.HandleFunc("DELETE "+base+"/{role}", s.revokePermission)
}

func (s *server) getPermissions(w http.ResponseWriter, r *http.Request) {
	p, err := s.svc.NamespacePolicies(r.Context(), namespaceOf(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := map[string][]string{}
	for role, actions := range p.Permissions {
		out[role] = nonNil(actions)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) grantPermission(w http.ResponseWriter, r *http.Request) {
	var body []string
	if _, err := readBody(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	actions := make([]string, 0, len(body))
	for _, a := range body {
		act, err := auth.ParseAction(a)
		if err != nil {
			s.writeError(w, r, fmt.Errorf("%w: %v", errBadRequest, err))
			return
		}
		if !slices.Contains(actions, string(act)) {
			actions = append(actions, string(act))
		}
	}
	slices.Sort(actions)
	s.updatePermissions(w, r, func(perms map[string][]string) { perms[r.PathValue("role")] = actions })
}

func (s *server) revokePermission(w http.ResponseWriter, r *http.Request) {
	s.updatePermissions(w, r, func(perms map[string][]string) { delete(perms, r.PathValue("role")) })
}

// updatePermissions applies change to a copy of the namespace's permissions.
func (s *server) updatePermissions(w http.ResponseWriter, r *http.Request, change func(map[string][]string)) {
	s.updatePolicies(w, r, func(p *broker.Policies) error {
		perms := maps.Clone(p.Permissions)
		if perms == nil {
			perms = map[string][]string{}
		}
		change(perms)
		p.Permissions = perms
		return nil
	})
}
