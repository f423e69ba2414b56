package admin

// Topic termination: POST /admin/v2/persistent/{t}/{ns}/{topic}/terminate
// (Pulsar's terminateTopic). The topic is marked terminated in its
// Policies.Terminated; the Pulsar protocol handler then
// closes its producers and refuses new ones with TopicTerminatedError
// (protocol/pulsar/quota.go). The answer is the last message id.

import (
	"net/http"

	"github.com/kopernik-io/kopernik/broker"
)

func (s *server) terminateRoutes(mux *router) {
	mux.HandleFunc("POST "+topicBase+"/{topic}/terminate", s.terminateTopic)
}

func (s *server) terminateTopic(w http.ResponseWriter, r *http.Request) {
	name, err := topicOf(r)
	var md broker.TopicMetadata
	if err == nil {
		md, err = s.svc.GetTopic(r.Context(), name)
	}
	if err == nil && md.Partitions > 0 {
		writeReason(w, http.StatusMethodNotAllowed, "Termination of a partitioned topic is not allowed")
		return
	}
	var p *broker.Partition
	if err == nil {
		err = s.svc.UpdateTopicPolicies(r.Context(), md.Name, func(p *broker.Policies) error { p.Terminated = true; return nil })
		if err == nil {
			p, err = s.svc.OpenPartition(r.Context(), name, false)
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pos := p.LastConfirmed()
	writeJSON(w, http.StatusOK, messageID{LedgerID: pos.LedgerID, EntryID: pos.EntryID, PartitionIndex: name.PartitionIndex()})
}
