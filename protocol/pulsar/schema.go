package pulsar

// GET_SCHEMA, GET_OR_CREATE_SCHEMA, and producers' schemas.
//
// Schemas are stored per topic (the partitioned topic for its partitions)
// in the topic's Policies.Schemas (version v at index v), so they live in
// the broker's metadata with the topic and disappear with it. A new version
// is added by compare-and-swap: two brokers registering schemas at once
// both get theirs, with distinct versions.
// Versions count from 0 and go on the wire as 8-byte big-endian integers,
// like Pulsar's. Compatibility check: a schema identical to a stored
// version gets that version; anything else becomes a new version (the
// equivalent of compatibility strategy ALWAYS_COMPATIBLE).

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"

	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// storedSchema is the broker's record of one schema version.
type storedSchema broker.Schema

func toStored(s *pb.Schema) storedSchema {
	st := storedSchema{Name: s.GetName(), Type: int32(s.GetType()), Data: s.GetSchemaData()}
	for _, kv := range s.GetProperties() {
		if st.Properties == nil {
			st.Properties = map[string]string{}
		}
		st.Properties[kv.GetKey()] = kv.GetValue()
	}
	return st
}

func (st storedSchema) wire() *pb.Schema {
	s := &pb.Schema{Name: proto.String(st.Name), Type: pb.Schema_Type(st.Type).Enum(), SchemaData: st.Data}
	for k, v := range st.Properties {
		s.Properties = append(s.Properties, &pb.KeyValue{Key: proto.String(k), Value: proto.String(v)})
	}
	return s
}

func (st storedSchema) equal(o storedSchema) bool {
	return st.Type == o.Type && bytes.Equal(st.Data, o.Data) && maps.Equal(st.Properties, o.Properties)
}

func schemaVersion(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// schemas returns the topic (record) name and its stored schemas by version.
func (h *Handler) schemas(ctx context.Context, name broker.TopicName) (broker.TopicMetadata, []storedSchema, error) {
	md, err := h.env.Broker.GetTopic(ctx, name)
	if err != nil {
		return md, nil, err
	}
	out := make([]storedSchema, len(md.Policies.Schemas))
	for i, s := range md.Policies.Schemas {
		out[i] = storedSchema(s)
	}
	return md, out, nil
}

// getOrCreateSchema returns the version of s on the topic, adding it as a new version if needed.
func (h *Handler) getOrCreateSchema(ctx context.Context, name broker.TopicName, s *pb.Schema) ([]byte, error) {
	md, all, err := h.schemas(ctx, name)
	if err != nil {
		return nil, err
	}
	want := toStored(s)
	if v := findSchema(all, want); v >= 0 {
		return schemaVersion(int64(v)), nil
	}
	// Compare-and-swap: another producer (on this broker or another) may
	// add the same schema or another one meanwhile.
	var version int
	err = h.env.Broker.UpdateTopicPolicies(ctx, md.Name, func(p *broker.Policies) error {
		cur := make([]storedSchema, len(p.Schemas))
		for i, s := range p.Schemas {
			cur[i] = storedSchema(s)
		}
		if version = findSchema(cur, want); version >= 0 {
			return broker.ErrUnchanged
		}
		version = len(p.Schemas)
		p.Schemas = append(p.Schemas, broker.Schema(want))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return schemaVersion(int64(version)), nil
}

// findSchema returns the newest version of all equal to want, or -1.
func findSchema(all []storedSchema, want storedSchema) int {
	for v := len(all) - 1; v >= 0; v-- {
		if all[v].equal(want) {
			return v
		}
	}
	return -1
}

func (c *conn) handleGetSchema(ctx context.Context, cmd *pb.CommandGetSchema) error {
	reqID := cmd.GetRequestId()
	fail := func(code pb.ServerError, err error) error {
		return c.send(&pb.BaseCommand{Type: pb.BaseCommand_GET_SCHEMA_RESPONSE.Enum(), GetSchemaResponse: &pb.CommandGetSchemaResponse{
			RequestId: proto.Uint64(reqID), ErrorCode: code.Enum(), ErrorMessage: proto.String(err.Error()),
		}})
	}
	name, err := c.h.topicName(cmd.GetTopic())
	if err == nil {
		err = c.authorizeTopic(ctx, name, auth.NeedLookup)
	}
	if err != nil {
		return fail(serverError(err), err)
	}
	_, all, err := c.h.schemas(ctx, name)
	if err != nil {
		return fail(serverError(err), err)
	}
	v := int64(len(all) - 1)
	if sv := cmd.GetSchemaVersion(); len(sv) == 8 {
		v = int64(binary.BigEndian.Uint64(sv))
	}
	if v < 0 || v >= int64(len(all)) {
		return fail(pb.ServerError_TopicNotFound, fmt.Errorf("no schema version %d on %s", v, name))
	}
	return c.send(&pb.BaseCommand{Type: pb.BaseCommand_GET_SCHEMA_RESPONSE.Enum(), GetSchemaResponse: &pb.CommandGetSchemaResponse{
		RequestId: proto.Uint64(reqID), Schema: all[v].wire(), SchemaVersion: schemaVersion(v),
	}})
}

func (c *conn) handleGetOrCreateSchema(ctx context.Context, cmd *pb.CommandGetOrCreateSchema) error {
	reqID := cmd.GetRequestId()
	resp := &pb.CommandGetOrCreateSchemaResponse{RequestId: proto.Uint64(reqID)}
	name, err := c.h.topicName(cmd.GetTopic())
	if err == nil {
		err = c.authorizeTopic(ctx, name, auth.NeedProduce)
	}
	if err == nil {
		if _, err = c.h.env.Broker.LookupTopic(ctx, name, true); err == nil {
			resp.SchemaVersion, err = c.h.getOrCreateSchema(ctx, name, cmd.GetSchema())
		}
	}
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = serverError(err).Enum(), proto.String(err.Error())
	}
	return c.send(&pb.BaseCommand{Type: pb.BaseCommand_GET_OR_CREATE_SCHEMA_RESPONSE.Enum(), GetOrCreateSchemaResponse: resp})
}
