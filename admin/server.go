// Package admin serves the subset of Apache Pulsar's admin REST API (v2)
// that kopernik implements, with Pulsar's paths and JSON shapes, so that
// pulsar-admin, pulsarctl and pulsar-client-go's pulsaradmin package work
// against it. It talks to the broker only through broker.Service.
//
// Served: the routes of docs/admin-api.md, one file per resource
// (tenants.go, namespaces.go, topics.go, subscriptions.go, messages.go,
// brokers.go, ...). Routes lists them, and a test holds the reference to it.
//
// Errors are Pulsar's JSON {"reason": "..."} with the status mapped once,
// in writeError, from the broker's sentinel errors.
package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

// Options configures the admin API.
type Options struct {
	// BrokerURL is the advertised Pulsar service URL returned by lookups
	// (default "pulsar://localhost:6650"; Pulsar's brokerServiceUrl).
	BrokerURL string
	// BrokerURLTLS is the advertised pulsar+ssl:// URL; empty if none.
	BrokerURLTLS string
	// HTTPURL is the advertised admin URL returned by lookups (default
	// "http://localhost:8080"; Pulsar's webServiceUrl).
	HTTPURL string
	// HTTPURLTLS is the advertised https:// admin URL; empty if none.
	HTTPURLTLS string
	// ClusterName is the one cluster reported by GET /admin/v2/clusters
	// (default "standalone", Pulsar's standalone cluster name).
	ClusterName string
	// Auth, when set, requires "Authorization: Bearer <token>" on every
	// request (Pulsar's authenticationEnabled on the web service).
	Auth *auth.Authenticator
	// Authz, when set, decides what each role may do (auth.go); without
	// it the token's role must be one of SuperUserRoles when that is not
	// empty.
	Authz          *auth.Authorizer
	SuperUserRoles []string
	// SCRAM, when set, serves the SCRAM credential resource (scram.go).
	SCRAM *auth.SCRAMStore
	// HealthChecks are the checks /admin/v2/brokers/health and /readyz
	// aggregate (brokers.go); none: always healthy.
	HealthChecks []Check
	// Version is what /admin/v2/brokers/version answers (default: the
	// module version from the build info).
	Version string
	// MaxBodyBytes bounds request bodies (default 1 MiB).
	MaxBodyBytes int64
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

type server struct {
	svc  broker.Service
	opts Options
	log  *slog.Logger
}

// New returns the admin API handler. Mount it at the root of the admin
// listener: it serves /admin/v2/... and /lookup/v2/... and answers 404 with
// a Pulsar-style body elsewhere.
func New(svc broker.Service, opts Options) http.Handler {
	if opts.BrokerURL == "" {
		opts.BrokerURL = "pulsar://localhost:6650"
	}
	if opts.HTTPURL == "" {
		opts.HTTPURL = "http://localhost:8080"
	}
	if opts.ClusterName == "" {
		opts.ClusterName = "standalone"
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	s := &server{svc: svc, opts: opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	mux := &router{mux: http.NewServeMux()}
	s.routes(mux, opts.SCRAM != nil)
	mux.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := mux.allowed(r); len(allow) > 0 {
			// The path is served, with other methods.
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeReason(w, http.StatusMethodNotAllowed, "Method "+r.Method+" not allowed for "+r.URL.Path)
			return
		}
		writeReason(w, http.StatusNotFound, "Not found: "+r.URL.Path)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Clients escape each path part (pulsaradmin sends
		// "persistent%2Ftenant%2Fns%2Ftopic"); route on the decoded path.
		// Names never contain '/' or '%', so nothing is lost.
		if r.URL.RawPath != "" {
			u := *r.URL
			u.RawPath = ""
			r2 := *r
			r2.URL = &u
			r = &r2
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
		}
		if r = s.authorize(w, r); r == nil {
			return
		}
		mux.mux.ServeHTTP(w, r)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// Any change may have changed grants (tenant admin roles,
			// namespace permissions, a namespace deleted and made anew).
			s.changedGrants()
		}
	})
}

// routes registers every resource's routes; the SCRAM credential routes
// only withSCRAM (authentication enabled).
func (s *server) routes(mux *router, withSCRAM bool) {
	s.brokerRoutes(mux)
	s.tenantRoutes(mux)
	s.namespaceRoutes(mux)
	s.topicRoutes(mux)
	s.messageRoutes(mux)
	s.backlogQuotaRoutes(mux)
	s.schemaRoutes(mux)
	s.terminateRoutes(mux)
	s.subscriptionRoutes(mux)
	s.lookupRoutes(mux)
	s.txnRoutes(mux)
	s.permissionRoutes(mux)
	s.offloadRoutes(mux)
	s.compactionRoutes(mux)
	if withSCRAM {
		s.scramRoutes(mux)
	}
}

// router is the admin API's route table: a ServeMux that remembers its
// patterns, so that docs/admin-api.md can be checked against them (Routes)
// and a known path asked with another method answers 405.
type router struct {
	mux      *http.ServeMux
	patterns []string
}

// HandleFunc registers fn for pattern ("METHOD /path/{wildcard}").
func (rt *router) HandleFunc(pattern string, fn http.HandlerFunc) {
	rt.mux.HandleFunc(pattern, fn)
	rt.patterns = append(rt.patterns, pattern)
}

// allowed lists the methods some route serves r's path with.
func (rt *router) allowed(r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete} {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pattern := rt.mux.Handler(r2); pattern != "/" && pattern != "" {
			out = append(out, m)
		}
	}
	return out
}

// Routes lists every route the admin API can serve (the SCRAM credential
// routes included), as "METHOD /path/{wildcard}" patterns in registration
// order; the reference, docs/admin-api.md, is checked against it.
func Routes() []string {
	s := &server{log: slog.Default()}
	mux := &router{mux: http.NewServeMux()}
	s.routes(mux, true)
	return mux.patterns
}

// errBadRequest marks malformed requests (400).
var errBadRequest = errors.New("bad request")

// writeError translates an error to Pulsar's status codes, once.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var notOwner *broker.NotOwnerError
	if errors.As(err, &notOwner) && notOwner.Owner.HTTP != "" {
		// Cluster: another broker serves the topic. Pulsar answers 307 to
		// the owner, and its admin clients (and curl -L) follow it,
		// repeating the method and body.
		http.Redirect(w, r, "http://"+notOwner.Owner.HTTP+r.URL.RequestURI(), http.StatusTemporaryRedirect)
		return
	}
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, errBadRequest):
		status = http.StatusBadRequest
	case errors.Is(err, broker.ErrTenantNotFound), errors.Is(err, broker.ErrNamespaceNotFound),
		errors.Is(err, broker.ErrTopicNotFound), errors.Is(err, broker.ErrSubscriptionNotFound),
		errors.Is(err, broker.ErrOffsetOutOfRange):
		status = http.StatusNotFound
	case errors.Is(err, broker.ErrAlreadyExists), errors.Is(err, broker.ErrNotEmpty):
		status = http.StatusConflict
	case errors.Is(err, broker.ErrInvalidName), errors.Is(err, broker.ErrInvalidConfig),
		errors.Is(err, broker.ErrInUse):
		status = http.StatusPreconditionFailed
	case errors.Is(err, broker.ErrClosed), errors.Is(err, broker.ErrTieredUnavailable), errors.Is(err, broker.ErrNotOwner),
		errors.Is(err, broker.ErrResourceExhausted):
		status = http.StatusServiceUnavailable
	case errors.Is(err, broker.ErrNoOffloader):
		status = http.StatusMethodNotAllowed // Pulsar: offload not configured for the namespace
	}
	if status == http.StatusInternalServerError {
		s.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeReason(w, status, broker.Reason(err))
}

func writeReason(w http.ResponseWriter, status int, reason string) {
	writeJSON(w, status, struct {
		Reason string `json:"reason"`
	}{reason})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"reason":"encoding response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// ok answers a successful request without a body (Pulsar answers 204).
func ok(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

// readBody decodes an optional JSON body into v; it reports whether a body
// was present.
func readBody(r *http.Request, v any) (bool, error) {
	if r.Body == nil {
		return false, nil
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return false, fmt.Errorf("%w: reading body: %v", errBadRequest, err)
	}
	if len(raw) == 0 || string(raw) == "null" {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("%w: invalid JSON body: %v", errBadRequest, err)
	}
	return true, nil
}

// boolQuery reads a boolean query parameter ("true"/"false"; absent = false).
func boolQuery(r *http.Request, name string) bool {
	return r.URL.Query().Get(name) == "true"
}
