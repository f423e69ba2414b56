package admin

// SCRAM credentials of Kafka SASL/SCRAM users (kopernik's own resource; in
// Kafka, kafka-configs --alter --add-config 'SCRAM-SHA-256=[password=...]'):
//
//	GET    /admin/v2/kopernik/scram                 ["SCRAM-SHA-256:alice", ...]
//	PUT    /admin/v2/kopernik/scram/{user}          {"mechanism": "SCRAM-SHA-256",
//	                                                 "password": "...", "iterations": 4096,
//	                                                 "tenant": "t", "namespace": "ns"}
//	DELETE /admin/v2/kopernik/scram/{user}[?mechanism=SCRAM-SHA-512]
//
// Only the salted, iterated keys are stored, never the password. tenant and
// namespace (optional) are where the user's short Kafka topic names resolve.

import (
	"fmt"
	"net/http"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

type scramRequest struct {
	Mechanism  string `json:"mechanism"`
	Password   string `json:"password"`
	Iterations int    `json:"iterations"`
	Tenant     string `json:"tenant"`
	Namespace  string `json:"namespace"`
}

func (s *server) scramRoutes(mux *router) {
	const base = "/admin/v2/kopernik/scram"
	mux.HandleFunc("GET "+base, func(w http.ResponseWriter, r *http.Request) {
		users, err := s.opts.SCRAM.Users(r.Context())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if users == nil {
			users = []string{}
		}
		writeJSON(w, http.StatusOK, users)
	})
	mux.HandleFunc("PUT "+base+"/{user}", func(w http.ResponseWriter, r *http.Request) {
		var req scramRequest
		if _, err := readBody(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		if req.Mechanism == "" {
			req.Mechanism = auth.SCRAMSHA256
		}
		if req.Iterations == 0 {
			req.Iterations = auth.DefaultSCRAMIterations
		}
		if req.Namespace != "" && req.Tenant == "" {
			s.writeError(w, r, fmt.Errorf("%w: namespace without tenant", errBadRequest))
			return
		}
		for _, seg := range [][2]string{{"tenant", req.Tenant}, {"namespace", req.Namespace}} {
			if seg[1] != "" {
				if err := broker.ValidateSegment(seg[0], seg[1]); err != nil {
					s.writeError(w, r, fmt.Errorf("%w: %v", errBadRequest, err))
					return
				}
			}
		}
		cred, err := auth.NewSCRAMCredential(req.Mechanism, req.Password, req.Iterations)
		if err != nil {
			s.writeError(w, r, fmt.Errorf("%w: %v", errBadRequest, err))
			return
		}
		cred.Tenant, cred.Namespace = req.Tenant, req.Namespace
		user := r.PathValue("user")
		if err := s.opts.SCRAM.Put(r.Context(), user, cred); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.log.Info("SCRAM credential set", "user", user, "mechanism", req.Mechanism)
		ok(w)
	})
	mux.HandleFunc("DELETE "+base+"/{user}", func(w http.ResponseWriter, r *http.Request) {
		mech := r.URL.Query().Get("mechanism")
		if mech != "" && mech != auth.SCRAMSHA256 && mech != auth.SCRAMSHA512 {
			s.writeError(w, r, fmt.Errorf("%w: unknown mechanism %q", errBadRequest, mech))
			return
		}
		if err := s.opts.SCRAM.Delete(r.Context(), r.PathValue("user"), mech); err != nil {
			s.writeError(w, r, err)
			return
		}
		ok(w)
	})
}
