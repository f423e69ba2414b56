package admin

// Persistent topics: /admin/v2/persistent/{tenant}/{ns}[/{topic}[/...]]
// (Pulsar's PersistentTopicsBase). A partitioned topic's partitions are
// the topics "{topic}-partition-N". Statistics are in stats.go.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/kopernik-io/kopernik/broker"
)

const topicBase = "/admin/v2/persistent/{tenant}/{ns}"

// nonPersistentBase prefixes the non-persistent:// topic routes (listing,
// stats, partitions, delete): kopernik stores those topics like persistent
// ones, apart from them.
const nonPersistentBase = "/admin/v2/non-persistent/{tenant}/{ns}"

// domainOf is the topic domain a request's path names.
func domainOf(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/admin/v2/non-persistent/") {
		return "non-persistent"
	}
	return "persistent"
}

// partitionedMetadata is Pulsar's PartitionedTopicMetadata JSON.
type partitionedMetadata struct {
	Partitions int `json:"partitions"`
}

// messageID is Pulsar's MessageIdImpl JSON (also ResetCursorData's fields).
type messageID struct {
	LedgerID       int64 `json:"ledgerId"`
	EntryID        int64 `json:"entryId"`
	PartitionIndex int   `json:"partitionIndex"`
	BatchIndex     int   `json:"batchIndex,omitempty"`
	// IsExcluded (ResetCursorData): start after the message rather than at it.
	IsExcluded bool `json:"isExcluded,omitempty"`
}

func (s *server) topicRoutes(mux *router) {
	mux.HandleFunc("GET "+topicBase, s.listTopics)
	mux.HandleFunc("GET "+topicBase+"/partitioned", s.listPartitionedTopics)
	mux.HandleFunc("GET "+nonPersistentBase, s.listTopics)
	mux.HandleFunc("GET "+nonPersistentBase+"/partitioned", s.listPartitionedTopics)
	mux.HandleFunc("GET "+nonPersistentBase+"/{topic}/stats", s.topicStats)
	mux.HandleFunc("GET "+nonPersistentBase+"/{topic}/partitioned-stats", s.partitionedStats)
	mux.HandleFunc("GET "+nonPersistentBase+"/{topic}/partitions", s.getPartitions)
	mux.HandleFunc("DELETE "+nonPersistentBase+"/{topic}", s.deleteTopic)
	mux.HandleFunc("PUT "+topicBase+"/{topic}", s.createTopic)
	mux.HandleFunc("DELETE "+topicBase+"/{topic}", s.deleteTopic)
	mux.HandleFunc("PUT "+topicBase+"/{topic}/partitions", s.createPartitionedTopic)
	mux.HandleFunc("POST "+topicBase+"/{topic}/partitions", s.updatePartitions)
	mux.HandleFunc("GET "+topicBase+"/{topic}/partitions", s.getPartitions)
	mux.HandleFunc("DELETE "+topicBase+"/{topic}/partitions", s.deleteTopic)
	mux.HandleFunc("GET "+topicBase+"/{topic}/stats", s.topicStats)
	mux.HandleFunc("GET "+topicBase+"/{topic}/partitioned-stats", s.partitionedStats)
	mux.HandleFunc("GET "+topicBase+"/{topic}/lastMessageId", s.lastMessageID)
	mux.HandleFunc("PUT "+topicBase+"/{topic}/unload", s.unloadTopic)
	mux.HandleFunc("GET "+topicBase+"/{topic}/internalStats", s.topicInternalStats)
	mux.HandleFunc("GET "+topicBase+"/{topic}/messageid/{timestamp}", s.messageIDByTime)
	mux.HandleFunc("GET "+topicBase+"/{topic}/retention", s.getTopicRetention)
	mux.HandleFunc("POST "+topicBase+"/{topic}/retention", s.setTopicRetention)
	mux.HandleFunc("DELETE "+topicBase+"/{topic}/retention", s.removeTopicRetention)
}

// getTopicRetention answers the topic's own retention override (204 when
// it inherits the namespace's), as Pulsar's topic policies do.
func (s *server) getTopicRetention(w http.ResponseWriter, r *http.Request) {
	name, err := topicOf(r)
	var md broker.TopicMetadata
	if err == nil && isTCAssign(name) {
		if name.Local == "transaction_coordinator_assign" {
			md.Partitions = 1 // one coordinator (see txn.go)
		}
		writeJSON(w, http.StatusOK, partitionedMetadata{Partitions: md.Partitions})
		return
	}
	if err == nil {
		md, err = s.svc.GetTopic(r.Context(), name)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if md.Policies.RetentionTime == nil && md.Policies.RetentionBytes == nil {
		ok(w)
		return
	}
	writeJSON(w, http.StatusOK, retentionOf(md.Policies))
}

func (s *server) setTopicRetention(w http.ResponseWriter, r *http.Request) {
	var body retentionPolicies
	if present, err := readBody(r, &body); err != nil || !present {
		if err == nil {
			err = fmt.Errorf("%w: retention policies required", errBadRequest)
		}
		s.writeError(w, r, err)
		return
	}
	s.updateTopicPolicies(w, r, func(p *broker.Policies) { applyRetention(p, body) })
}

func (s *server) removeTopicRetention(w http.ResponseWriter, r *http.Request) {
	s.updateTopicPolicies(w, r, func(p *broker.Policies) { p.RetentionTime, p.RetentionBytes = nil, nil })
}

// updateTopicPolicies is read-modify-write of a topic's own policies
// (partitioned topics by base name: a partition has none of its own), by
// compare-and-swap (change may run more than once).
func (s *server) updateTopicPolicies(w http.ResponseWriter, r *http.Request, change func(*broker.Policies)) {
	name, err := topicOf(r)
	var md broker.TopicMetadata
	if err == nil && isTCAssign(name) {
		if name.Local == "transaction_coordinator_assign" {
			md.Partitions = 1 // one coordinator (see txn.go)
		}
		writeJSON(w, http.StatusOK, partitionedMetadata{Partitions: md.Partitions})
		return
	}
	if err == nil {
		md, err = s.svc.GetTopic(r.Context(), name)
	}
	if err == nil {
		err = s.svc.UpdateTopicPolicies(r.Context(), md.Name, func(p *broker.Policies) error { change(p); return nil })
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ok(w)
}

// unloader is implemented by services that can unload topics (*broker.Broker).
type unloader interface {
	Unload(ctx context.Context, name broker.TopicName) error
}

// unloadTopic closes the topic's loaded partitions; clients reconnect and
// the partitions load again (Pulsar's unload). A service that cannot
// unload answers success after checking the topic exists: single broker,
// nothing to move.
func (s *server) unloadTopic(w http.ResponseWriter, r *http.Request) {
	name, err := topicOf(r)
	if err == nil {
		if u, ok := s.svc.(unloader); ok {
			err = u.Unload(r.Context(), name)
		} else {
			_, err = s.svc.GetTopic(r.Context(), name)
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ok(w)
}

// topicOf parses the request's topic name.
func topicOf(r *http.Request) (broker.TopicName, error) {
	return broker.ParseTopicName(domainOf(r)+"://"+r.PathValue("tenant")+"/"+r.PathValue("ns")+"/"+r.PathValue("topic"), "", "")
}

// topicNames lists the namespace's topics as full names: partitioned
// topics by base name (partitioned true), or every non-partitioned topic and
// every partition (partitioned false), as Pulsar lists them.
func (s *server) topicNames(ctx context.Context, domain, ns string, partitioned bool) ([]string, error) {
	list := s.svc.ListTopics
	if domain == "non-persistent" {
		list = s.svc.ListNonPersistentTopics
	}
	topics, err := list(ctx, ns)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, md := range topics {
		switch {
		case partitioned && md.Partitions > 0:
			out = append(out, md.Name.String())
		case !partitioned && md.Partitions == 0:
			out = append(out, md.Name.String())
		case !partitioned:
			for i := range md.Partitions {
				out = append(out, md.Name.Partition(i).String())
			}
		}
	}
	return out, nil
}

func (s *server) listTopics(w http.ResponseWriter, r *http.Request) {
	names, err := s.topicNames(r.Context(), domainOf(r), namespaceOf(r), false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, names)
}

func (s *server) listPartitionedTopics(w http.ResponseWriter, r *http.Request) {
	names, err := s.topicNames(r.Context(), domainOf(r), namespaceOf(r), true)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, names)
}

func (s *server) createTopic(w http.ResponseWriter, r *http.Request) {
	name, err := topicOf(r)
	if err == nil {
		var props map[string]string // topic properties: accepted, not kept
		_, err = readBody(r, &props)
	}
	if err == nil {
		err = s.svc.CreateTopic(r.Context(), name, 0, broker.Policies{})
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ok(w)
}

// deleteTopic deletes a topic, partitioned or not, with ?force=true even
// while clients are attached.
func (s *server) deleteTopic(w http.ResponseWriter, r *http.Request) {
	name, err := topicOf(r)
	if err == nil {
		err = s.svc.DeleteTopic(r.Context(), name, boolQuery(r, "force"))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ok(w)
}

// partitionCount reads a partition count body: a JSON number (Pulsar's
// Java admin), a quoted number, or {"partitions": N} (pulsaradmin).
func partitionCount(r *http.Request) (int, error) {
	var raw json.RawMessage
	present, err := readBody(r, &raw)
	if err != nil {
		return 0, err
	}
	if !present {
		return 0, fmt.Errorf("%w: partition count required", errBadRequest)
	}
	var n int
	if err := json.Unmarshal(raw, &n); err == nil {
		return n, nil
	}
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(str)); err == nil {
			return n, nil
		}
	}
	var md partitionedMetadata
	if err := json.Unmarshal(raw, &md); err == nil {
		return md.Partitions, nil
	}
	return 0, fmt.Errorf("%w: partition count: %s", errBadRequest, raw)
}

func (s *server) createPartitionedTopic(w http.ResponseWriter, r *http.Request) {
	name, err := topicOf(r)
	var n int
	if err == nil {
		n, err = partitionCount(r)
	}
	if err == nil && n < 1 {
		err = fmt.Errorf("%w: number of partitions must be more than 0", broker.ErrInvalidConfig)
	}
	if err == nil {
		err = s.svc.CreateTopic(r.Context(), name, n, broker.Policies{})
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ok(w)
}

func (s *server) updatePartitions(w http.ResponseWriter, r *http.Request) {
	name, err := topicOf(r)
	var n int
	if err == nil {
		n, err = partitionCount(r)
	}
	if err == nil {
		err = s.svc.SetPartitions(r.Context(), name, n)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ok(w)
}

// getPartitions answers {"partitions": N}: 0 for a non-partitioned topic
// and, as Pulsar does, for a topic that does not exist (in an existing
// namespace). With ?checkAllowAutoCreation=true (the Go client's HTTP
// lookup) a missing topic is created as the namespace's auto-creation
// policy says, as the binary protocol's PARTITIONED_METADATA does.
func (s *server) getPartitions(w http.ResponseWriter, r *http.Request) {
	name, err := topicOf(r)
	var md broker.TopicMetadata
	if err == nil && isTCAssign(name) {
		if name.Local == "transaction_coordinator_assign" {
			md.Partitions = 1 // one coordinator (see txn.go)
		}
		writeJSON(w, http.StatusOK, partitionedMetadata{Partitions: md.Partitions})
		return
	}
	if err == nil {
		md, err = s.svc.LookupTopic(r.Context(), name, boolQuery(r, "checkAllowAutoCreation"))
		if md.Name != name {
			md.Partitions = 0 // a partition of a partitioned topic is not partitioned itself
		}
	}
	if err != nil && errors.Is(err, broker.ErrTopicNotFound) {
		_, err = s.svc.NamespacePolicies(r.Context(), namespaceOf(r))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, partitionedMetadata{Partitions: md.Partitions})
}

// lastMessageID answers the last entry's id ((ledger, -1) when empty).
func (s *server) lastMessageID(w http.ResponseWriter, r *http.Request) {
	p, name, found := s.partitionOf(w, r)
	if !found {
		return
	}
	pos := p.LastConfirmed()
	writeJSON(w, http.StatusOK, messageID{LedgerID: pos.LedgerID, EntryID: pos.EntryID, PartitionIndex: name.PartitionIndex()})
}
