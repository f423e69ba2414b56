package admin

// Tiered storage, as Pulsar's admin API has it:
//
//	PUT  /admin/v2/persistent/{t}/{ns}/{topic}/offload   body: a MessageId; offload the sealed
//	                                                     ledgers before it (in the background)
//	GET  /admin/v2/persistent/{t}/{ns}/{topic}/offload   OffloadProcessStatus: NOT_RUN, RUNNING,
//	                                                     SUCCESS or ERROR with lastError
//	GET|PUT         /admin/v2/namespaces/{t}/{ns}/offloadThreshold           bytes (long; -1 off)
//	GET|PUT         /admin/v2/namespaces/{t}/{ns}/offloadThresholdInSeconds  seconds (long; -1 off)
//	GET|PUT|DELETE  /admin/v2/namespaces/{t}/{ns}/offloadDeletionLagMs       ms (long)
//	GET|POST|DELETE /admin/v2/namespaces/{t}/{ns}/offloadPolicies            OffloadPolicies JSON
//
// A partitioned topic is offloaded per partition ({topic}-partition-N), as
// in Pulsar. The broker owns the work; this file only translates.

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kopernik-io/kopernik/broker"
)

func (s *server) offloadRoutes(mux *router) {
	mux.HandleFunc("PUT "+topicBase+"/{topic}/offload", s.triggerOffload)
	mux.HandleFunc("GET "+topicBase+"/{topic}/offload", s.offloadStatus)
	ns := "/admin/v2/namespaces/{tenant}/{ns}/"
	mux.HandleFunc("GET "+ns+"offloadThreshold", s.getNamespaceLong(func(e broker.Policies) *int64 { return e.OffloadThresholdBytes }, -1))
	mux.HandleFunc("PUT "+ns+"offloadThreshold", s.setNamespaceLong(func(p *broker.Policies, v *int64) { p.OffloadThresholdBytes = v }))
	mux.HandleFunc("GET "+ns+"offloadThresholdInSeconds", s.getNamespaceLong(func(e broker.Policies) *int64 { return e.OffloadThresholdSeconds }, -1))
	mux.HandleFunc("PUT "+ns+"offloadThresholdInSeconds", s.setNamespaceLong(func(p *broker.Policies, v *int64) { p.OffloadThresholdSeconds = v }))
	mux.HandleFunc("GET "+ns+"offloadDeletionLagMs", s.getNamespaceLong(func(e broker.Policies) *int64 {
		if e.OffloadDeletionLag == nil {
			return nil
		}
		ms := e.OffloadDeletionLag.Milliseconds()
		return &ms
	}, -1))
	mux.HandleFunc("PUT "+ns+"offloadDeletionLagMs", s.setNamespaceLong(func(p *broker.Policies, v *int64) {
		d := time.Duration(*v) * time.Millisecond
		p.OffloadDeletionLag = &d
	}))
	mux.HandleFunc("DELETE "+ns+"offloadDeletionLagMs", func(w http.ResponseWriter, r *http.Request) {
		s.updatePolicies(w, r, func(p *broker.Policies) error { p.OffloadDeletionLag = nil; return nil })
	})
	mux.HandleFunc("GET "+ns+"offloadPolicies", s.getOffloadPolicies)
	mux.HandleFunc("POST "+ns+"offloadPolicies", s.setOffloadPolicies)
	mux.HandleFunc("DELETE "+ns+"offloadPolicies", func(w http.ResponseWriter, r *http.Request) {
		s.updatePolicies(w, r, func(p *broker.Policies) error {
			p.OffloadThresholdBytes, p.OffloadThresholdSeconds, p.OffloadDeletionLag, p.OffloadReadPriority = nil, nil, nil, nil
			return nil
		})
	})
}

// offloadProcessStatus is Pulsar's OffloadProcessStatus JSON.
type offloadProcessStatus struct {
	Status                  string     `json:"status"`
	LastError               string     `json:"lastError"`
	FirstUnoffloadedMessage *messageID `json:"firstUnoffloadedMessage,omitempty"`
}

func (s *server) triggerOffload(w http.ResponseWriter, r *http.Request) {
	var id messageID
	present, err := readBody(r, &id)
	if err == nil && !present {
		err = fmt.Errorf("%w: a message id (ledgerId, entryId) is required", errBadRequest)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, _, found := s.partitionOf(w, r)
	if !found {
		return
	}
	if err := p.StartOffload(broker.Position{LedgerID: id.LedgerID, EntryID: id.EntryID}); err != nil {
		s.writeError(w, r, err)
		return
	}
	ok(w)
}

// partitionOf opens the partition the request's path names; on failure it
// has answered the request and found is false.
func (s *server) partitionOf(w http.ResponseWriter, r *http.Request) (p *broker.Partition, name broker.TopicName, found bool) {
	name, err := topicOf(r)
	if err == nil {
		p, err = s.svc.OpenPartition(r.Context(), name, false)
	}
	if err != nil {
		s.writeError(w, r, err)
		return nil, name, false
	}
	return p, name, true
}

func (s *server) offloadStatus(w http.ResponseWriter, r *http.Request) {
	p, name, found := s.partitionOf(w, r)
	if !found {
		return
	}
	st := p.OffloadStatus()
	out := offloadProcessStatus{Status: string(st.State), LastError: st.Error}
	if st.State != "NOT_RUN" && st.State != "RUNNING" {
		out.FirstUnoffloadedMessage = &messageID{LedgerID: st.FirstUnoffloaded.LedgerID, EntryID: st.FirstUnoffloaded.EntryID, PartitionIndex: name.PartitionIndex()}
	}
	writeJSON(w, http.StatusOK, out)
}

// getNamespaceLong answers one namespace policy as a bare JSON number
// (Pulsar's style for these), unset as def.
func (s *server) getNamespaceLong(get func(broker.Policies) *int64, def int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.svc.NamespacePolicies(r.Context(), namespaceOf(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		v := def
		if pv := get(p); pv != nil {
			v = *pv
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// setNamespaceLong sets one namespace policy from a bare JSON number.
func (s *server) setNamespaceLong(set func(*broker.Policies, *int64)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var v int64
		if present, err := readBody(r, &v); err != nil || !present {
			if err == nil {
				err = fmt.Errorf("%w: a number is required", errBadRequest)
			}
			s.writeError(w, r, err)
			return
		}
		s.updatePolicies(w, r, func(p *broker.Policies) error { set(p, &v); return nil })
	}
}

// offloadPolicies is Pulsar's OffloadPolicies JSON, the fields kopernik
// serves per namespace. The driver and its location are broker-wide
// settings (offload-driver, offload-s3-*): a body naming another driver or
// bucket is refused rather than silently ignored.
type offloadPolicies struct {
	Driver             string `json:"managedLedgerOffloadDriver,omitempty"`
	Bucket             string `json:"s3ManagedLedgerOffloadBucket,omitempty"`
	Region             string `json:"s3ManagedLedgerOffloadRegion,omitempty"`
	Endpoint           string `json:"s3ManagedLedgerOffloadServiceEndpoint,omitempty"`
	ThresholdInBytes   *int64 `json:"managedLedgerOffloadThresholdInBytes,omitempty"`
	ThresholdInSeconds *int64 `json:"managedLedgerOffloadThresholdInSeconds,omitempty"`
	DeletionLagInMs    *int64 `json:"managedLedgerOffloadDeletionLagInMillis,omitempty"`
	// DataReadPriority: "tiered-storage-first" or "bookkeeper-first"
	// (Pulsar's name for local-first; "local-first" is accepted too).
	DataReadPriority *string `json:"managedLedgerDataReadPriority,omitempty"`
}

func (s *server) getOffloadPolicies(w http.ResponseWriter, r *http.Request) {
	p, err := s.svc.NamespacePolicies(r.Context(), namespaceOf(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if p.OffloadThresholdBytes == nil && p.OffloadThresholdSeconds == nil && p.OffloadDeletionLag == nil && p.OffloadReadPriority == nil {
		ok(w) // Pulsar: no policies set, no body
		return
	}
	out := offloadPolicies{ThresholdInBytes: p.OffloadThresholdBytes, ThresholdInSeconds: p.OffloadThresholdSeconds}
	if p.OffloadDeletionLag != nil {
		ms := p.OffloadDeletionLag.Milliseconds()
		out.DeletionLagInMs = &ms
	}
	if p.OffloadReadPriority != nil {
		v := *p.OffloadReadPriority
		if v == broker.ReadLocalFirst {
			v = "bookkeeper-first"
		}
		out.DataReadPriority = &v
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) setOffloadPolicies(w http.ResponseWriter, r *http.Request) {
	var body offloadPolicies
	present, err := readBody(r, &body)
	if err == nil && !present {
		err = fmt.Errorf("%w: offload policies required", errBadRequest)
	}
	if err == nil && body.Driver != "" && !strings.EqualFold(body.Driver, "s3") && !strings.EqualFold(body.Driver, "aws-s3") {
		err = fmt.Errorf("%w: offload driver %q: only the broker's s3 driver is served", errBadRequest, body.Driver)
	}
	if err == nil && (body.Bucket != "" || body.Region != "" || body.Endpoint != "") {
		err = fmt.Errorf("%w: the offload bucket, region and endpoint are broker settings (offload-s3-*), not namespace policies", errBadRequest)
	}
	var prio *string
	if err == nil && body.DataReadPriority != nil {
		switch v := *body.DataReadPriority; v {
		case broker.ReadTieredFirst:
			prio = &v
		case "bookkeeper-first", broker.ReadLocalFirst:
			v = broker.ReadLocalFirst
			prio = &v
		default:
			err = fmt.Errorf("%w: managedLedgerDataReadPriority %q: want tiered-storage-first or bookkeeper-first", errBadRequest, v)
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.updatePolicies(w, r, func(p *broker.Policies) error {
		p.OffloadThresholdBytes, p.OffloadThresholdSeconds, p.OffloadReadPriority = body.ThresholdInBytes, body.ThresholdInSeconds, prio
		p.OffloadDeletionLag = nil
		if body.DeletionLagInMs != nil {
			d := time.Duration(*body.DeletionLagInMs) * time.Millisecond
			p.OffloadDeletionLag = &d
		}
		return nil
	})
}
