package admin

// Backlog quotas: POST|DELETE /admin/v2/namespaces/{t}/{ns}/backlogQuota and
// GET .../backlogQuotaMap (Pulsar's BacklogQuota: limitSize in bytes, policy
// producer_request_hold | producer_exception | consumer_backlog_eviction).
// Only the destination_storage (size) quota is kept; it is stored in the
// namespace policies' BacklogQuota, which the Pulsar protocol handler reads
// (protocol/pulsar/quota.go) to hold producers of a topic whose backlog is
// over the limit.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/kopernik-io/kopernik/broker"
)

// backlogQuota is Pulsar's BacklogQuota JSON; "limit" is the deprecated
// name of limitSize (clients send it as a number or a string).
type backlogQuota struct {
	Limit     json.RawMessage `json:"limit,omitempty"`
	LimitSize int64           `json:"limitSize"`
	LimitTime int64           `json:"limitTime"`
	Policy    string          `json:"policy"`
}

func (s *server) backlogQuotaRoutes(mux *router) {
	mux.HandleFunc("POST /admin/v2/namespaces/{tenant}/{ns}/backlogQuota", s.setBacklogQuota)
	mux.HandleFunc("DELETE /admin/v2/namespaces/{tenant}/{ns}/backlogQuota", s.removeBacklogQuota)
	mux.HandleFunc("GET /admin/v2/namespaces/{tenant}/{ns}/backlogQuotaMap", s.getBacklogQuotaMap)
}

func (s *server) setBacklogQuota(w http.ResponseWriter, r *http.Request) {
	if t := r.URL.Query().Get("backlogQuotaType"); t != "" && t != "destination_storage" {
		writeReason(w, http.StatusPreconditionFailed, "only the destination_storage backlog quota is supported")
		return
	}
	var body backlogQuota
	if present, err := readBody(r, &body); err != nil || !present {
		if err == nil {
			err = fmt.Errorf("%w: backlog quota required", errBadRequest)
		}
		s.writeError(w, r, err)
		return
	}
	limit := body.LimitSize
	if len(body.Limit) > 0 {
		raw := string(body.Limit)
		if uq, err := strconv.Unquote(raw); err == nil {
			raw = uq
		}
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			s.writeError(w, r, fmt.Errorf("%w: limit %s", errBadRequest, body.Limit))
			return
		}
		if limit == 0 {
			limit = n
		}
	}
	switch body.Policy {
	case "producer_request_hold", "producer_exception", "consumer_backlog_eviction":
	default:
		s.writeError(w, r, fmt.Errorf("%w: backlog quota policy %q", errBadRequest, body.Policy))
		return
	}
	s.updatePolicies(w, r, func(p *broker.Policies) error {
		p.BacklogQuota = &broker.BacklogQuota{LimitBytes: limit, Policy: body.Policy}
		return nil
	})
}

func (s *server) removeBacklogQuota(w http.ResponseWriter, r *http.Request) {
	s.updatePolicies(w, r, func(p *broker.Policies) error {
		p.BacklogQuota = nil
		return nil
	})
}

func (s *server) getBacklogQuotaMap(w http.ResponseWriter, r *http.Request) {
	p, err := s.svc.NamespacePolicies(r.Context(), namespaceOf(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := map[string]backlogQuota{}
	if q := p.BacklogQuota; q != nil {
		out["destination_storage"] = backlogQuota{LimitSize: q.LimitBytes, Policy: q.Policy}
	}
	writeJSON(w, http.StatusOK, out)
}
