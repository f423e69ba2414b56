package admin

// Lookup: GET /lookup/v2/topic/persistent/{tenant}/{ns}/{topic} (Pulsar's
// TopicLookupBase) answers the serving broker's advertised URLs as
// LookupData. Standalone, every topic of an existing namespace is served
// here; in a cluster, by its owner. The topic itself need not exist yet
// (producers and consumers create it when auto-creation allows).

import (
	"errors"
	"net/http"

	"github.com/kopernik-io/kopernik/broker"
)

// lookupData is Pulsar's LookupData JSON.
type lookupData struct {
	BrokerURL    string `json:"brokerUrl"`
	BrokerURLTLS string `json:"brokerUrlTls,omitempty"`
	HTTPURL      string `json:"httpUrl"`
	HTTPURLTLS   string `json:"httpUrlTls,omitempty"`
	// NativeURL is what newer Pulsar versions add; the same as BrokerURL.
	NativeURL string `json:"nativeUrl"`
}

func (s *server) lookupRoutes(mux *router) {
	mux.HandleFunc("GET /lookup/v2/topic/persistent/{tenant}/{ns}/{topic}", s.lookup)
}

func (s *server) lookup(w http.ResponseWriter, r *http.Request) {
	name, err := topicOf(r)
	if err == nil && isTCAssign(name) {
		// The transaction coordinator is this broker's, also in a cluster
		// (one coordinator per metadata store).
		writeJSON(w, http.StatusOK, lookupData{
			BrokerURL: s.opts.BrokerURL, BrokerURLTLS: s.opts.BrokerURLTLS,
			HTTPURL: s.opts.HTTPURL, HTTPURLTLS: s.opts.HTTPURLTLS, NativeURL: s.opts.BrokerURL,
		})
		return
	}
	if err == nil {
		_, err = s.svc.GetTopic(r.Context(), name)
		if errors.Is(err, broker.ErrTopicNotFound) {
			_, err = s.svc.NamespacePolicies(r.Context(), name.NamespaceName())
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if cl := s.svc.Cluster(); cl != nil {
		// Cluster: the owner's addresses (assigned now if nobody serves
		// the topic), as Pulsar's lookup answers.
		owner, err := cl.Owner(r.Context(), name)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, lookupData{
			BrokerURL: "pulsar://" + owner.Pulsar, HTTPURL: "http://" + owner.HTTP, NativeURL: "pulsar://" + owner.Pulsar,
		})
		return
	}
	writeJSON(w, http.StatusOK, lookupData{
		BrokerURL: s.opts.BrokerURL, BrokerURLTLS: s.opts.BrokerURLTLS,
		HTTPURL: s.opts.HTTPURL, HTTPURLTLS: s.opts.HTTPURLTLS,
		NativeURL: s.opts.BrokerURL,
	})
}
