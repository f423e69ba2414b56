package admin

import (
	"net/http"
	"slices"
	"strings"
)

// authorized checks the request's bearer token when authentication is on,
// answering 401 (no or bad token) or 403 (not a superuser) itself.
func (s *server) authorized(w http.ResponseWriter, r *http.Request) bool {
	a := s.opts.Auth
	if a == nil {
		return true
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeReason(w, http.StatusUnauthorized, "Authentication required")
		return false
	}
	p, err := a.AuthenticateToken(strings.TrimSpace(token))
	if err != nil {
		a.Failed(r.Context(), "http", r.RemoteAddr, "token", err)
		writeReason(w, http.StatusUnauthorized, "Authentication required")
		return false
	}
	if len(s.opts.SuperUserRoles) > 0 && !slices.Contains(s.opts.SuperUserRoles, p.Role) {
		s.log.Warn("admin request refused", "role", p.Role, "method", r.Method, "path", r.URL.Path)
		writeReason(w, http.StatusForbidden, "Don't have permission to administrate resources")
		return false
	}
	return true
}
