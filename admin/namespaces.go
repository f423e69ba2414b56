package admin

// Namespaces: /admin/v2/namespaces (Pulsar's NamespacesBase). kopernik's
// namespace policies are broker.Policies; the Pulsar JSON views of them are
// the retention policies ({"retentionTimeInMinutes", "retentionSizeInMB"},
// -1 = unlimited) and the auto-creation overrides.

import (
	"fmt"
	"net/http"
	"time"

	"github.com/kopernik-io/kopernik/broker"
)

// retentionPolicies is Pulsar's RetentionPolicies JSON.
type retentionPolicies struct {
	RetentionTimeInMinutes int64 `json:"retentionTimeInMinutes"`
	RetentionSizeInMB      int64 `json:"retentionSizeInMB"`
}

// autoTopicCreationOverride is Pulsar's AutoTopicCreationOverride JSON.
type autoTopicCreationOverride struct {
	AllowAutoTopicCreation bool   `json:"allowAutoTopicCreation"`
	TopicType              string `json:"topicType"` // "partitioned" or "non-partitioned"
	DefaultNumPartitions   *int   `json:"defaultNumPartitions,omitempty"`
}

// autoSubscriptionCreationOverride is Pulsar's AutoSubscriptionCreationOverride JSON.
type autoSubscriptionCreationOverride struct {
	AllowAutoSubscriptionCreation bool `json:"allowAutoSubscriptionCreation"`
}

// namespacePolicies is the part of Pulsar's Policies JSON kopernik keeps.
// Auth is reported, not accepted: grants are changed through the
// permissions endpoints (permissions.go).
type namespacePolicies struct {
	Retention           *retentionPolicies                `json:"retention_policies,omitempty"`
	AutoTopicCreation   *autoTopicCreationOverride        `json:"autoTopicCreationOverride,omitempty"`
	AutoSubscription    *autoSubscriptionCreationOverride `json:"autoSubscriptionCreationOverride,omitempty"`
	ReplicationClusters []string                          `json:"replication_clusters"`
	Auth                *authPolicies                     `json:"auth_policies,omitempty"`
}

// authPolicies is Pulsar's AuthPolicies JSON: namespace grants, topic
// grants by full topic name, and subscription roles (none in kopernik).
type authPolicies struct {
	NamespaceAuth         map[string][]string            `json:"namespace_auth"`
	DestinationAuth       map[string]map[string][]string `json:"destination_auth"`
	SubscriptionAuthRoles map[string][]string            `json:"subscription_auth_roles"`
}

func (s *server) namespaceRoutes(mux *router) {
	mux.HandleFunc("GET /admin/v2/namespaces/{tenant}", s.listNamespaces)
	mux.HandleFunc("PUT /admin/v2/namespaces/{tenant}/{ns}", s.createNamespace)
	mux.HandleFunc("GET /admin/v2/namespaces/{tenant}/{ns}", s.getNamespace)
	mux.HandleFunc("DELETE /admin/v2/namespaces/{tenant}/{ns}", s.deleteNamespace)
	mux.HandleFunc("GET /admin/v2/namespaces/{tenant}/{ns}/topics", s.namespaceTopics)
	mux.HandleFunc("GET /admin/v2/namespaces/{tenant}/{ns}/retention", s.getRetention)
	mux.HandleFunc("POST /admin/v2/namespaces/{tenant}/{ns}/retention", s.setRetention)
	mux.HandleFunc("DELETE /admin/v2/namespaces/{tenant}/{ns}/retention", s.removeRetention)
	mux.HandleFunc("POST /admin/v2/namespaces/{tenant}/{ns}/autoTopicCreation", s.setAutoTopicCreation)
	mux.HandleFunc("DELETE /admin/v2/namespaces/{tenant}/{ns}/autoTopicCreation", s.removeAutoTopicCreation)
}

func namespaceOf(r *http.Request) string { return r.PathValue("tenant") + "/" + r.PathValue("ns") }

func (s *server) listNamespaces(w http.ResponseWriter, r *http.Request) {
	ns, err := s.svc.ListNamespaces(r.Context(), r.PathValue("tenant"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(ns))
}

func (s *server) createNamespace(w http.ResponseWriter, r *http.Request) {
	var body namespacePolicies
	if _, err := readBody(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	var p broker.Policies
	if body.Retention != nil {
		applyRetention(&p, *body.Retention)
	}
	if body.AutoTopicCreation != nil {
		if err := applyAutoTopicCreation(&p, *body.AutoTopicCreation); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if body.AutoSubscription != nil {
		v := body.AutoSubscription.AllowAutoSubscriptionCreation
		p.AutoSubscriptionCreation = &v
	}
	if err := s.svc.CreateNamespace(r.Context(), namespaceOf(r), p); err != nil {
		s.writeError(w, r, err)
		return
	}
	ok(w)
}

func (s *server) getNamespace(w http.ResponseWriter, r *http.Request) {
	p, err := s.svc.NamespacePolicies(r.Context(), namespaceOf(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := namespacePolicies{ReplicationClusters: []string{s.opts.ClusterName}, Auth: &authPolicies{
		NamespaceAuth:         map[string][]string{},
		DestinationAuth:       map[string]map[string][]string{},
		SubscriptionAuthRoles: map[string][]string{},
	}}
	for role, actions := range p.Permissions {
		out.Auth.NamespaceAuth[role] = nonNil(actions)
	}
	for topic, perms := range p.TopicPermissions {
		roles := map[string][]string{}
		for role, actions := range perms {
			roles[role] = nonNil(actions)
		}
		out.Auth.DestinationAuth[topic] = roles
	}
	if p.RetentionTime != nil || p.RetentionBytes != nil {
		rp := retentionOf(p)
		out.Retention = &rp
	}
	if p.AutoTopicCreation != nil || p.AutoTopicPartitions != nil {
		out.AutoTopicCreation = autoTopicCreationOf(p)
	}
	if p.AutoSubscriptionCreation != nil {
		out.AutoSubscription = &autoSubscriptionCreationOverride{AllowAutoSubscriptionCreation: *p.AutoSubscriptionCreation}
	}
	writeJSON(w, http.StatusOK, out)
}

// deleteNamespace deletes an empty namespace; with ?force=true it first
// deletes its topics (disconnecting their clients).
func (s *server) deleteNamespace(w http.ResponseWriter, r *http.Request) {
	ns := namespaceOf(r)
	if boolQuery(r, "force") {
		topics, err := s.svc.ListTopics(r.Context(), ns)
		if err == nil {
			var np []broker.TopicMetadata
			np, err = s.svc.ListNonPersistentTopics(r.Context(), ns)
			topics = append(topics, np...)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		for _, md := range topics {
			if err := s.svc.DeleteTopic(r.Context(), md.Name, true); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
	}
	if err := s.svc.DeleteNamespace(r.Context(), ns); err != nil {
		s.writeError(w, r, err)
		return
	}
	ok(w)
}

// namespaceTopics lists the namespace's topics, partitions included (a
// partitioned topic appears as its partitions): ?mode=PERSISTENT (the
// default, as Pulsar's), NON_PERSISTENT or ALL.
func (s *server) namespaceTopics(w http.ResponseWriter, r *http.Request) {
	mode := r.URL.Query().Get("mode")
	names := []string{}
	for _, domain := range []string{"persistent", "non-persistent"} {
		if (domain == "persistent" && mode == "NON_PERSISTENT") || (domain == "non-persistent" && mode != "NON_PERSISTENT" && mode != "ALL") {
			continue
		}
		more, err := s.topicNames(r.Context(), domain, namespaceOf(r), false)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		names = append(names, more...)
	}
	writeJSON(w, http.StatusOK, names)
}

// getRetention answers the namespace's own retention policies; like Pulsar
// it answers 204 without a body when none are set (the broker defaults apply).
func (s *server) getRetention(w http.ResponseWriter, r *http.Request) {
	p, err := s.svc.NamespacePolicies(r.Context(), namespaceOf(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if p.RetentionTime == nil && p.RetentionBytes == nil {
		ok(w)
		return
	}
	writeJSON(w, http.StatusOK, retentionOf(p))
}

func (s *server) setRetention(w http.ResponseWriter, r *http.Request) {
	var body retentionPolicies
	if present, err := readBody(r, &body); err != nil || !present {
		if err == nil {
			err = fmt.Errorf("%w: retention policies required", errBadRequest)
		}
		s.writeError(w, r, err)
		return
	}
	s.updatePolicies(w, r, func(p *broker.Policies) error { applyRetention(p, body); return nil })
}

func (s *server) removeRetention(w http.ResponseWriter, r *http.Request) {
	s.updatePolicies(w, r, func(p *broker.Policies) error {
		p.RetentionTime, p.RetentionBytes = nil, nil
		return nil
	})
}

func (s *server) setAutoTopicCreation(w http.ResponseWriter, r *http.Request) {
	var body autoTopicCreationOverride
	if present, err := readBody(r, &body); err != nil || !present {
		if err == nil {
			err = fmt.Errorf("%w: autoTopicCreationOverride required", errBadRequest)
		}
		s.writeError(w, r, err)
		return
	}
	s.updatePolicies(w, r, func(p *broker.Policies) error { return applyAutoTopicCreation(p, body) })
}

func (s *server) removeAutoTopicCreation(w http.ResponseWriter, r *http.Request) {
	s.updatePolicies(w, r, func(p *broker.Policies) error {
		p.AutoTopicCreation, p.AutoTopicPartitions = nil, nil
		return nil
	})
}

// updatePolicies is read-modify-write of a namespace's policies, by
// compare-and-swap (change may run more than once).
func (s *server) updatePolicies(w http.ResponseWriter, r *http.Request, change func(*broker.Policies) error) {
	if err := s.svc.UpdateNamespacePolicies(r.Context(), namespaceOf(r), change); err != nil {
		s.writeError(w, r, err)
		return
	}
	ok(w)
}

// retentionOf converts to Pulsar units: negative (unlimited) is -1, an
// unset field is 0.
func retentionOf(p broker.Policies) retentionPolicies {
	rp := retentionPolicies{RetentionTimeInMinutes: 0, RetentionSizeInMB: 0}
	if p.RetentionTime != nil {
		if *p.RetentionTime < 0 {
			rp.RetentionTimeInMinutes = -1
		} else {
			rp.RetentionTimeInMinutes = int64(*p.RetentionTime / time.Minute)
		}
	}
	if p.RetentionBytes != nil {
		if *p.RetentionBytes < 0 {
			rp.RetentionSizeInMB = -1
		} else {
			rp.RetentionSizeInMB = *p.RetentionBytes >> 20
		}
	}
	return rp
}

// applyRetention converts from Pulsar units: negative means unlimited.
func applyRetention(p *broker.Policies, rp retentionPolicies) {
	t := time.Duration(-1)
	if rp.RetentionTimeInMinutes >= 0 {
		t = time.Duration(rp.RetentionTimeInMinutes) * time.Minute
	}
	b := int64(-1)
	if rp.RetentionSizeInMB >= 0 {
		b = rp.RetentionSizeInMB << 20
	}
	p.RetentionTime, p.RetentionBytes = &t, &b
}

func applyAutoTopicCreation(p *broker.Policies, o autoTopicCreationOverride) error {
	allow := o.AllowAutoTopicCreation
	p.AutoTopicCreation = &allow
	switch o.TopicType {
	case "", "non-partitioned":
		n := 0
		p.AutoTopicPartitions = &n
	case "partitioned":
		if o.DefaultNumPartitions == nil || *o.DefaultNumPartitions < 1 {
			return fmt.Errorf("%w: defaultNumPartitions must be >= 1 for partitioned topics", errBadRequest)
		}
		n := *o.DefaultNumPartitions
		p.AutoTopicPartitions = &n
	default:
		return fmt.Errorf("%w: topicType %q", errBadRequest, o.TopicType)
	}
	return nil
}

func autoTopicCreationOf(p broker.Policies) *autoTopicCreationOverride {
	o := &autoTopicCreationOverride{AllowAutoTopicCreation: true, TopicType: "non-partitioned"}
	if p.AutoTopicCreation != nil {
		o.AllowAutoTopicCreation = *p.AutoTopicCreation
	}
	if p.AutoTopicPartitions != nil && *p.AutoTopicPartitions > 0 {
		o.TopicType = "partitioned"
		n := *p.AutoTopicPartitions
		o.DefaultNumPartitions = &n
	}
	return o
}
