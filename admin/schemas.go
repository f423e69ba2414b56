package admin

// Topic schemas: GET /admin/v2/schemas/{t}/{ns}/{topic}/schema[/{version}],
// DELETE .../schema (Pulsar's SchemasResource). The Pulsar protocol handler
// stores a topic's schemas in its Policies.Schemas (version v at index v;
// type is the wire enum number; protocol/pulsar/schema.go); this file
// reads and deletes them. A partition's schemas are its partitioned topic's.

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/kopernik-io/kopernik/broker"
)

// schemaTypeNames are Pulsar's SchemaType names by wire enum number.
var schemaTypeNames = map[int32]string{
	0: "NONE", 1: "STRING", 2: "JSON", 3: "PROTOBUF", 4: "AVRO", 5: "BOOLEAN", 6: "INT8", 7: "INT16",
	8: "INT32", 9: "INT64", 10: "FLOAT", 11: "DOUBLE", 12: "DATE", 13: "TIME", 14: "TIMESTAMP",
	15: "KEY_VALUE", 16: "INSTANT", 17: "LOCAL_DATE", 18: "LOCAL_TIME", 19: "LOCAL_DATE_TIME",
	20: "PROTOBUF_NATIVE",
}

// getSchemaResponse is Pulsar's GetSchemaResponse JSON.
type getSchemaResponse struct {
	Version    int64             `json:"version"`
	Type       string            `json:"type"`
	Timestamp  int64             `json:"timestamp"`
	Data       string            `json:"data"`
	Properties map[string]string `json:"properties"`
}

func (s *server) schemaRoutes(mux *router) {
	base := "/admin/v2/schemas/{tenant}/{ns}/{topic}/schema"
	mux.HandleFunc("GET "+base, s.getSchema)
	mux.HandleFunc("GET "+base+"/{version}", s.getSchema)
	mux.HandleFunc("DELETE "+base, s.deleteSchema)
}

// topicSchemas returns the schema-owning topic and its schemas by version.
func (s *server) topicSchemas(r *http.Request) (broker.TopicMetadata, []broker.Schema, error) {
	name, err := topicOf(r)
	if err != nil {
		return broker.TopicMetadata{}, nil, err
	}
	md, err := s.svc.GetTopic(r.Context(), name.Base())
	if err != nil {
		return md, nil, err
	}
	return md, md.Policies.Schemas, nil
}

func (s *server) getSchema(w http.ResponseWriter, r *http.Request) {
	_, all, err := s.topicSchemas(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v := int64(len(all) - 1)
	if vs := r.PathValue("version"); vs != "" {
		if v, err = strconv.ParseInt(vs, 10, 64); err != nil {
			s.writeError(w, r, fmt.Errorf("%w: schema version %q", errBadRequest, vs))
			return
		}
	}
	if v < 0 || v >= int64(len(all)) {
		writeReason(w, http.StatusNotFound, "Schema not found")
		return
	}
	st := all[v]
	typ, ok := schemaTypeNames[st.Type]
	if !ok {
		typ = "NONE"
	}
	writeJSON(w, http.StatusOK, getSchemaResponse{
		Version: v, Type: typ, Data: string(st.Data), Properties: nonNilMap(st.Properties),
	})
}

func (s *server) deleteSchema(w http.ResponseWriter, r *http.Request) {
	md, _, err := s.topicSchemas(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var deleted int
	if err := s.svc.UpdateTopicPolicies(r.Context(), md.Name, func(p *broker.Policies) error {
		deleted, p.Schemas = len(p.Schemas), nil
		return nil
	}); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"version": int64(deleted)})
}
