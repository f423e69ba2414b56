package admin

// Namespace permissions (Pulsar's NamespacesBase grantPermissionOnNamespace):
//
//	GET    /admin/v2/namespaces/{t}/{ns}/permissions         {"role": ["produce", "consume"], ...}
//	POST   /admin/v2/namespaces/{t}/{ns}/permissions/{role}  body: ["produce", "consume"]
//	DELETE /admin/v2/namespaces/{t}/{ns}/permissions/{role}
//
// Topic permissions (Pulsar's PersistentTopicsBase grantPermissionsOnTopic):
//
//	GET    /admin/v2/persistent/{t}/{ns}/{topic}/permissions         the topic's effective grants:
//	                                                                 the namespace's and the topic's, merged
//	POST   /admin/v2/persistent/{t}/{ns}/{topic}/permissions/{role}  body: ["produce", "consume"]
//	DELETE /admin/v2/persistent/{t}/{ns}/{topic}/permissions/{role}  412 if the topic grants the role nothing
//
// (and the same under /non-persistent/). Topic grants are kept in the
// namespace's policies (Policies.TopicPermissions) keyed by the topic's
// full name, so the topic need not exist yet; the namespace must. A
// partition's name ("...-partition-N") stands for its partitioned topic:
// partitions are granted together, as Pulsar grants every partition.
//
// A grant replaces the role's actions (on the namespace, or on the topic);
// package auth enforces them. Actions other than produce and consume
// (Pulsar's functions, sources, sinks, packages) are refused: kopernik has
// nothing they would allow.

import (
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

func (s *server) permissionRoutes(mux *router) {
	base := "/admin/v2/namespaces/{tenant}/{ns}/permissions"
	mux.HandleFunc("GET "+base, s.getPermissions)
	mux.HandleFunc("POST "+base+"/{role}", s.grantPermission)
	mux.HandleFunc("DELETE "+base+"/{role}", s.revokePermission)
	for _, domain := range []string{"persistent", "non-persistent"} {
		base := "/admin/v2/" + domain + "/{tenant}/{ns}/{topic}/permissions"
		mux.HandleFunc("GET "+base, s.getTopicPermissions)
		mux.HandleFunc("POST "+base+"/{role}", s.grantTopicPermission)
		mux.HandleFunc("DELETE "+base+"/{role}", s.revokeTopicPermission)
	}
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
	actions, err := grantedActions(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.updatePermissions(w, r, func(perms map[string][]string) { perms[r.PathValue("role")] = actions })
}

// grantedActions reads a grant's body: action names, deduplicated and sorted.
func grantedActions(r *http.Request) ([]string, error) {
	var body []string
	if _, err := readBody(r, &body); err != nil {
		return nil, err
	}
	actions := make([]string, 0, len(body))
	for _, a := range body {
		act, err := auth.ParseAction(a)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadRequest, err)
		}
		if !slices.Contains(actions, string(act)) {
			actions = append(actions, string(act))
		}
	}
	slices.Sort(actions)
	return actions, nil
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

// permissionTopic is the request's topic as its grants are keyed: the full
// name, a partition by its partitioned topic's.
func permissionTopic(r *http.Request) (broker.TopicName, error) {
	name, err := topicOf(r) // the domain from the path
	if err != nil {
		return name, err
	}
	return name.Base(), nil
}

func (s *server) getTopicPermissions(w http.ResponseWriter, r *http.Request) {
	name, err := permissionTopic(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.svc.NamespacePolicies(r.Context(), name.NamespaceName())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := map[string][]string{}
	for role, actions := range p.Permissions {
		out[role] = slices.Clone(actions)
	}
	for role, actions := range p.TopicPermissions[name.String()] {
		merged := append(out[role], actions...)
		slices.Sort(merged)
		out[role] = slices.Compact(merged)
	}
	for role, actions := range out {
		out[role] = nonNil(actions)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) grantTopicPermission(w http.ResponseWriter, r *http.Request) {
	actions, err := grantedActions(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.updateTopicPermissions(w, r, func(perms map[string][]string) error {
		perms[r.PathValue("role")] = actions
		return nil
	})
}

func (s *server) revokeTopicPermission(w http.ResponseWriter, r *http.Request) {
	s.updateTopicPermissions(w, r, func(perms map[string][]string) error {
		role := r.PathValue("role")
		if _, ok := perms[role]; !ok {
			// As Pulsar answers: the namespace's grants are revoked there.
			return fmt.Errorf("%w: permissions are not set at the topic level for role %q", broker.ErrInvalidConfig, role)
		}
		delete(perms, role)
		return nil
	})
}

// updateTopicPermissions applies change to a copy of the topic's grants in
// its namespace's policies; a topic left without grants is dropped.
func (s *server) updateTopicPermissions(w http.ResponseWriter, r *http.Request, change func(map[string][]string) error) {
	name, err := permissionTopic(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	key := name.String()
	s.updatePolicies(w, r, func(p *broker.Policies) error {
		perms := maps.Clone(p.TopicPermissions[key])
		if perms == nil {
			perms = map[string][]string{}
		}
		if err := change(perms); err != nil {
			return err
		}
		all := maps.Clone(p.TopicPermissions)
		if all == nil {
			all = map[string]map[string][]string{}
		}
		all[key] = perms
		if len(perms) == 0 {
			delete(all, key)
		}
		if len(all) == 0 {
			all = nil
		}
		p.TopicPermissions = all
		return nil
	})
}
