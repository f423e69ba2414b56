package admin

// Topic compaction, as Pulsar's admin API has it (docs/compaction.md):
//
//	PUT  /admin/v2/persistent/{t}/{ns}/{topic}/compaction  compact now, in the background
//	                                                       (409 while one runs)
//	GET  /admin/v2/persistent/{t}/{ns}/{topic}/compaction  LongRunningProcessStatus: NOT_RUN,
//	                                                       RUNNING, SUCCESS or ERROR with lastError
//	GET|POST|PUT|DELETE /admin/v2/namespaces/{t}/{ns}/compactionThreshold
//	                                                       bytes (long; 0 off): compact a topic
//	                                                       once this much was written since
//	GET|POST|PUT|DELETE /admin/v2/persistent/{t}/{ns}/{topic}/compactionThreshold
//	                                                       the same as the topic's own policy
//
// A partitioned topic is compacted per partition ({topic}-partition-N). A
// manual compaction compacts everything written so far (the active ledger
// included), as Pulsar does; the threshold is checked by the broker's
// compaction pass. The same views serve Kafka's cleanup.policy=compact.

import (
	"fmt"
	"net/http"

	"github.com/kopernik-io/kopernik/broker"
)

func (s *server) compactionRoutes(mux *router) {
	mux.HandleFunc("PUT "+topicBase+"/{topic}/compaction", s.triggerCompaction)
	mux.HandleFunc("GET "+topicBase+"/{topic}/compaction", s.compactionStatus)
	ns := "/admin/v2/namespaces/{tenant}/{ns}/"
	mux.HandleFunc("GET "+ns+"compactionThreshold", s.getNamespaceLong(func(e broker.Policies) *int64 { return e.CompactionThreshold }, 0))
	set := s.setNamespaceLong(func(p *broker.Policies, v *int64) { p.CompactionThreshold = v })
	mux.HandleFunc("POST "+ns+"compactionThreshold", set)
	mux.HandleFunc("PUT "+ns+"compactionThreshold", set)
	mux.HandleFunc("DELETE "+ns+"compactionThreshold", func(w http.ResponseWriter, r *http.Request) {
		s.updatePolicies(w, r, func(p *broker.Policies) error { p.CompactionThreshold = nil; return nil })
	})
	// The topic's own policy (Pulsar's topic policies; partitioned topics
	// by base name).
	mux.HandleFunc("GET "+topicBase+"/{topic}/compactionThreshold", s.getTopicCompactionThreshold)
	setTopic := func(w http.ResponseWriter, r *http.Request) {
		var v int64
		if present, err := readBody(r, &v); err != nil || !present || v < 0 {
			if err == nil {
				err = fmt.Errorf("%w: a number >= 0 is required", errBadRequest)
			}
			s.writeError(w, r, err)
			return
		}
		s.updateTopicPolicies(w, r, func(p *broker.Policies) { p.CompactionThreshold = &v })
	}
	mux.HandleFunc("POST "+topicBase+"/{topic}/compactionThreshold", setTopic)
	mux.HandleFunc("PUT "+topicBase+"/{topic}/compactionThreshold", setTopic)
	mux.HandleFunc("DELETE "+topicBase+"/{topic}/compactionThreshold", func(w http.ResponseWriter, r *http.Request) {
		s.updateTopicPolicies(w, r, func(p *broker.Policies) { p.CompactionThreshold = nil })
	})
}

// getTopicCompactionThreshold answers the topic's own threshold, no body
// when it has none (as Pulsar's topic policies do).
func (s *server) getTopicCompactionThreshold(w http.ResponseWriter, r *http.Request) {
	name, err := topicOf(r)
	var md broker.TopicMetadata
	if err == nil {
		md, err = s.svc.GetTopic(r.Context(), name)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if md.Policies.CompactionThreshold == nil {
		ok(w)
		return
	}
	writeJSON(w, http.StatusOK, *md.Policies.CompactionThreshold)
}

// longRunningProcessStatus is Pulsar's LongRunningProcessStatus JSON.
type longRunningProcessStatus struct {
	Status    string `json:"status"`
	LastError string `json:"lastError"`
}

func (s *server) triggerCompaction(w http.ResponseWriter, r *http.Request) {
	p, _, found := s.partitionOf(w, r)
	if !found {
		return
	}
	if err := p.TriggerCompaction(); err != nil {
		s.writeError(w, r, err)
		return
	}
	ok(w)
}

func (s *server) compactionStatus(w http.ResponseWriter, r *http.Request) {
	p, _, found := s.partitionOf(w, r)
	if !found {
		return
	}
	st := p.CompactionStatus()
	writeJSON(w, http.StatusOK, longRunningProcessStatus{Status: string(st.State), LastError: st.LastError})
}
