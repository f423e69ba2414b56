package admin

// Tenants: /admin/v2/tenants (Pulsar's TenantsBase). A tenant's body is
// TenantInfo: {"adminRoles": [...], "allowedClusters": [...]}. The cluster
// list (/admin/v2/clusters) lives here too: tenants name allowed clusters.

import (
	"net/http"

	"github.com/kopernik-io/kopernik/broker"
)

// tenantInfo is Pulsar's TenantInfo JSON.
type tenantInfo struct {
	AdminRoles      []string `json:"adminRoles"`
	AllowedClusters []string `json:"allowedClusters"`
}

func (s *server) tenantRoutes(mux *router) {
	mux.HandleFunc("GET /admin/v2/tenants", s.listTenants)
	mux.HandleFunc("GET /admin/v2/tenants/{$}", s.listTenants)
	mux.HandleFunc("GET /admin/v2/tenants/{tenant}", s.getTenant)
	mux.HandleFunc("PUT /admin/v2/tenants/{tenant}", s.createTenant)
	mux.HandleFunc("POST /admin/v2/tenants/{tenant}", s.updateTenant)
	mux.HandleFunc("DELETE /admin/v2/tenants/{tenant}", s.deleteTenant)
	mux.HandleFunc("GET /admin/v2/clusters", s.listClusters)
	mux.HandleFunc("GET /admin/v2/clusters/{cluster}", s.getCluster)
}

func (s *server) listTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := s.svc.ListTenants(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(ts))
}

func (s *server) getTenant(w http.ResponseWriter, r *http.Request) {
	info, err := s.svc.GetTenant(r.Context(), r.PathValue("tenant"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tenantInfo{AdminRoles: nonNil(info.AdminRoles), AllowedClusters: nonNil(info.AllowedClusters)})
}

func (s *server) createTenant(w http.ResponseWriter, r *http.Request) {
	var body tenantInfo
	if _, err := readBody(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	err := s.svc.CreateTenant(r.Context(), r.PathValue("tenant"), broker.TenantInfo(body))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ok(w)
}

func (s *server) updateTenant(w http.ResponseWriter, r *http.Request) {
	var body tenantInfo
	if _, err := readBody(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.svc.UpdateTenant(r.Context(), r.PathValue("tenant"), broker.TenantInfo(body)); err != nil {
		s.writeError(w, r, err)
		return
	}
	ok(w)
}

func (s *server) deleteTenant(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.DeleteTenant(r.Context(), r.PathValue("tenant")); err != nil {
		s.writeError(w, r, err)
		return
	}
	ok(w)
}

func (s *server) listClusters(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, []string{s.opts.ClusterName})
}

// getCluster answers Pulsar's ClusterData for the one cluster.
func (s *server) getCluster(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("cluster") != s.opts.ClusterName {
		writeReason(w, http.StatusNotFound, "Cluster does not exist")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"serviceUrl":          s.opts.HTTPURL,
		"serviceUrlTls":       s.opts.HTTPURLTLS,
		"brokerServiceUrl":    s.opts.BrokerURL,
		"brokerServiceUrlTls": s.opts.BrokerURLTLS,
	})
}

// nonNil makes JSON say [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
