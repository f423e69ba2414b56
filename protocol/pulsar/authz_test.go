package pulsar

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// testGrants is a GrantSource the test changes: the actions of role
// "guest" in public/default, or a failure to read them.
type testGrants struct {
	mu      sync.Mutex
	actions []auth.Action
	err     error
}

func (g *testGrants) TenantAdminRoles(context.Context, string) ([]string, error) { return nil, nil }

func (g *testGrants) NamespaceGrants(_ context.Context, ns string) (auth.Grants, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return auth.Grants{}, g.err
	}
	if ns != "public/default" {
		return auth.Grants{}, nil
	}
	return auth.Grants{Namespace: map[string][]auth.Action{"guest": g.actions}}, nil
}

// startAuthzServer serves clients without credentials as role "guest",
// with authorization over grants.
func startAuthzServer(t *testing.T, grants *testGrants) (*server, *auth.Authorizer) {
	z := auth.NewAuthorizer([]string{"root"}, grants)
	s := startServerEnv(t, "", nil, func(env *protocol.Env) {
		env.Auth = auth.New(nil, nil, "guest", 0, testLogger())
		env.Authz = z
	})
	return s, z
}

// refusedCode is the AuthorizationError-or-not of any answer.
func refusedCode(cmd *pb.BaseCommand) pb.ServerError {
	switch cmd.GetType() {
	case pb.BaseCommand_ERROR:
		return cmd.GetError().GetError()
	case pb.BaseCommand_LOOKUP_RESPONSE:
		return cmd.GetLookupTopicResponse().GetError()
	case pb.BaseCommand_PARTITIONED_METADATA_RESPONSE:
		return cmd.GetPartitionMetadataResponse().GetError()
	case pb.BaseCommand_GET_SCHEMA_RESPONSE:
		return cmd.GetGetSchemaResponse().GetErrorCode()
	case pb.BaseCommand_GET_OR_CREATE_SCHEMA_RESPONSE:
		return cmd.GetGetOrCreateSchemaResponse().GetErrorCode()
	}
	return pb.ServerError_UnknownError
}

// authzCommands builds each checked command on topic (ids from id).
var authzCommands = []struct {
	name  string
	needs []auth.Action // any of these allows it
	cmd   func(topic string, id uint64) *pb.BaseCommand
}{
	{"LOOKUP", []auth.Action{auth.ActionProduce, auth.ActionConsume}, func(topic string, id uint64) *pb.BaseCommand {
		return &pb.BaseCommand{Type: pb.BaseCommand_LOOKUP.Enum(), LookupTopic: &pb.CommandLookupTopic{Topic: proto.String(topic), RequestId: proto.Uint64(id)}}
	}},
	{"PARTITIONED_METADATA", []auth.Action{auth.ActionProduce, auth.ActionConsume}, func(topic string, id uint64) *pb.BaseCommand {
		return &pb.BaseCommand{Type: pb.BaseCommand_PARTITIONED_METADATA.Enum(), PartitionMetadata: &pb.CommandPartitionedTopicMetadata{Topic: proto.String(topic), RequestId: proto.Uint64(id)}}
	}},
	{"PRODUCER", []auth.Action{auth.ActionProduce}, func(topic string, id uint64) *pb.BaseCommand {
		return &pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{Topic: proto.String(topic), ProducerId: proto.Uint64(id), RequestId: proto.Uint64(id)}}
	}},
	{"SUBSCRIBE", []auth.Action{auth.ActionConsume}, func(topic string, id uint64) *pb.BaseCommand {
		return &pb.BaseCommand{Type: pb.BaseCommand_SUBSCRIBE.Enum(), Subscribe: &pb.CommandSubscribe{Topic: proto.String(topic),
			Subscription: proto.String("s"), SubType: pb.CommandSubscribe_Shared.Enum(), ConsumerId: proto.Uint64(id), RequestId: proto.Uint64(id)}}
	}},
	{"SUBSCRIBE reader", []auth.Action{auth.ActionConsume}, func(topic string, id uint64) *pb.BaseCommand {
		return &pb.BaseCommand{Type: pb.BaseCommand_SUBSCRIBE.Enum(), Subscribe: &pb.CommandSubscribe{Topic: proto.String(topic),
			Subscription: proto.String("r"), SubType: pb.CommandSubscribe_Exclusive.Enum(), ConsumerId: proto.Uint64(id), RequestId: proto.Uint64(id),
			Durable: proto.Bool(false)}}
	}},
	{"GET_TOPICS_OF_NAMESPACE", []auth.Action{auth.ActionProduce, auth.ActionConsume}, func(_ string, id uint64) *pb.BaseCommand {
		return &pb.BaseCommand{Type: pb.BaseCommand_GET_TOPICS_OF_NAMESPACE.Enum(), GetTopicsOfNamespace: &pb.CommandGetTopicsOfNamespace{
			Namespace: proto.String("public/default"), RequestId: proto.Uint64(id)}}
	}},
	{"GET_SCHEMA", []auth.Action{auth.ActionProduce, auth.ActionConsume}, func(topic string, id uint64) *pb.BaseCommand {
		return &pb.BaseCommand{Type: pb.BaseCommand_GET_SCHEMA.Enum(), GetSchema: &pb.CommandGetSchema{Topic: proto.String(topic), RequestId: proto.Uint64(id)}}
	}},
	{"GET_OR_CREATE_SCHEMA", []auth.Action{auth.ActionProduce}, func(topic string, id uint64) *pb.BaseCommand {
		return &pb.BaseCommand{Type: pb.BaseCommand_GET_OR_CREATE_SCHEMA.Enum(), GetOrCreateSchema: &pb.CommandGetOrCreateSchema{
			Topic: proto.String(topic), RequestId: proto.Uint64(id), Schema: &pb.Schema{Name: proto.String("s"), Type: pb.Schema_String.Enum(), SchemaData: []byte{}}}}
	}},
}

// TestAuthorizationTable checks each command of authz.go's table against
// each grant: refused (AuthorizationError) exactly when the grant lacks
// what the command needs, on one connection that stays open throughout.
func TestAuthorizationTable(t *testing.T) {
	grants := &testGrants{}
	s, z := startAuthzServer(t, grants)
	rc := dialRaw(t, s)
	id := uint64(100)
	for _, granted := range [][]auth.Action{nil, {auth.ActionProduce}, {auth.ActionConsume}, {auth.ActionProduce, auth.ActionConsume}} {
		grants.mu.Lock()
		grants.actions = granted
		grants.mu.Unlock()
		z.Invalidate()
		for _, c := range authzCommands {
			id++
			topic := newTopic("authz")
			rc.send(c.cmd(topic, id), nil)
			resp, _ := rc.recv()
			for resp.GetType() == pb.BaseCommand_PING {
				resp, _ = rc.recv()
			}
			want := false
			for _, a := range granted {
				for _, n := range c.needs {
					want = want || a == n
				}
			}
			if got := refusedCode(resp) != pb.ServerError_AuthorizationError; got != want {
				t.Errorf("%s with grant %v: allowed=%v, want %v (%v)", c.name, granted, got, want, resp)
			}
			if !want {
				if _, err := s.broker.GetTopic(context.Background(), mustName(t, s, topic)); !errors.Is(err, broker.ErrTopicNotFound) {
					t.Errorf("%s with grant %v refused but created the topic (%v)", c.name, granted, err)
				}
			}
		}
	}
}

// TestAuthorizationFailsClosed: when grants cannot be read, requests are
// refused with AuthorizationError, without the cause, and nothing is created.
func TestAuthorizationFailsClosed(t *testing.T) {
	grants := &testGrants{actions: []auth.Action{auth.ActionProduce, auth.ActionConsume}}
	s, z := startAuthzServer(t, grants)
	rc := dialRaw(t, s)
	produce := func(topic string, id uint64) *pb.BaseCommand {
		rc.send(authzCommands[2].cmd(topic, id), nil)
		cmd, _ := rc.recv()
		return cmd
	}
	if r := produce(newTopic("closed"), 1); r.GetType() != pb.BaseCommand_PRODUCER_SUCCESS {
		t.Fatalf("with readable grants: %v", r)
	}
	grants.mu.Lock()
	grants.err = errors.New("store unreachable: secret detail")
	grants.mu.Unlock()
	z.Invalidate()
	topic := newTopic("closed")
	r := produce(topic, 2)
	if r.GetError().GetError() != pb.ServerError_AuthorizationError || !strings.Contains(r.GetError().GetMessage(), "could not be checked") {
		t.Fatalf("grants unreadable: %v, want AuthorizationError", r)
	}
	if strings.Contains(r.GetError().GetMessage(), "secret detail") {
		t.Errorf("the refusal tells the client the cause: %q", r.GetError().GetMessage())
	}
	if _, err := s.broker.GetTopic(context.Background(), mustName(t, s, topic)); !errors.Is(err, broker.ErrTopicNotFound) {
		t.Errorf("refused PRODUCER created its topic (%v)", err)
	}
	grants.mu.Lock()
	grants.err = nil
	grants.mu.Unlock()
	z.Invalidate()
	if r := produce(topic, 3); r.GetType() != pb.BaseCommand_PRODUCER_SUCCESS {
		t.Fatalf("grants readable again: %v", r)
	}
}
