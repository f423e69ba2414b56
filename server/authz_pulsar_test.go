package server

// Authorization of Pulsar clients and of the admin API, end to end: a broker
// with auth-enabled and authorization-enabled, tenants and grants made
// through the admin API, pulsar-client-go and raw protocol frames over
// loopback.

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// authzEnv is a broker with authorization on and two tenants:
//
//	tenant-a  admin role a-admin; tenant-a/ns grants alice and carol
//	          produce+consume, writer produce, reader consume
//	tenant-b  admin role b-admin; tenant-b/ns grants bob produce+consume
type authzEnv struct {
	t     *testing.T
	s     *Server
	addr  string // Pulsar listener
	admin string // admin API base URL
}

func startAuthzEnv(t *testing.T) *authzEnv {
	t.Helper()
	s := startAuthServer(t, map[string]string{"authorization-enabled": "true", "superuser-roles": "admin", "protocols": "pulsar"})
	e := &authzEnv{t: t, s: s, addr: s.Addr("pulsar").String(), admin: "http://" + s.Addr("http").String()}
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/admin/v2/tenants/tenant-a", `{"adminRoles":["a-admin"],"allowedClusters":["standalone"]}`},
		{"PUT", "/admin/v2/tenants/tenant-b", `{"adminRoles":["b-admin"],"allowedClusters":["standalone"]}`},
		{"PUT", "/admin/v2/namespaces/tenant-a/ns", ""},
		{"PUT", "/admin/v2/namespaces/tenant-b/ns", ""},
		{"POST", "/admin/v2/namespaces/tenant-a/ns/permissions/alice", `["produce","consume"]`},
		{"POST", "/admin/v2/namespaces/tenant-a/ns/permissions/carol", `["produce","consume"]`},
		{"POST", "/admin/v2/namespaces/tenant-a/ns/permissions/writer", `["produce"]`},
		{"POST", "/admin/v2/namespaces/tenant-a/ns/permissions/reader", `["consume"]`},
		{"POST", "/admin/v2/namespaces/tenant-b/ns/permissions/bob", `["produce","consume"]`},
	} {
		if code, body := e.rest("admin", c.method, c.path, c.body); code/100 != 2 {
			t.Fatalf("setup %s %s: %d %s", c.method, c.path, code, body)
		}
	}
	return e
}

func (e *authzEnv) token(role string) string {
	return testToken(e.t, testSecret, jwt.MapClaims{"sub": role})
}

// rest makes an admin API request as role and returns status and body.
func (e *authzEnv) rest(role, method, path, body string) (int, string) {
	e.t.Helper()
	return adminREST(e.t, e.s, role, method, path, body)
}

// client is a pulsar-client-go client authenticated as role.
func (e *authzEnv) client(role string) pulsar.Client {
	e.t.Helper()
	cl, err := pulsar.NewClient(pulsar.ClientOptions{URL: "pulsar://" + e.addr,
		Authentication: pulsar.NewAuthenticationToken(e.token(role)), OperationTimeout: 5 * time.Second,
		Logger: plog.DefaultNopLogger()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return cl
}

// produce creates a producer on topic, sends one message and closes it.
func produce(cl pulsar.Client, topic, value string) error {
	p, err := cl.CreateProducer(pulsar.ProducerOptions{Topic: topic, SendTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(value)})
	return err
}

// consumeOne subscribes from the earliest message and returns the first.
func consumeOne(cl pulsar.Client, topic, sub string) (string, error) {
	c, err := cl.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: sub,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	if err != nil {
		return "", err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := c.Receive(ctx)
	if err != nil {
		return "", err
	}
	c.Ack(m)
	return string(m.Payload()), nil
}

// wantAuthzErr fails unless err is the client's report of a refusal
// (the AuthorizationError code, in whatever wrapping the client uses).
func wantAuthzErr(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: allowed, want AuthorizationError", what)
	} else if !strings.Contains(err.Error(), "AuthorizationError") {
		t.Errorf("%s: %v, want AuthorizationError", what, err)
	}
}

func TestPulsarAuthorization(t *testing.T) {
	e := startAuthzEnv(t)
	const topicA, topicB = "persistent://tenant-a/ns/t", "persistent://tenant-b/ns/t"
	if err := produce(e.client("bob"), topicB, "from bob"); err != nil {
		t.Fatalf("bob in his namespace: %v", err)
	}

	t.Run("alice in her namespace", func(t *testing.T) {
		cl := e.client("alice")
		if err := produce(cl, topicA, "from alice"); err != nil {
			t.Fatalf("produce: %v", err)
		}
		if v, err := consumeOne(cl, topicA, "alice-sub"); err != nil || v != "from alice" {
			t.Fatalf("consume: %q, %v", v, err)
		}
		r, err := cl.CreateReader(pulsar.ReaderOptions{Topic: topicA, StartMessageID: pulsar.EarliestMessageID()})
		if err != nil {
			t.Fatalf("reader: %v", err)
		}
		r.Close()
	})

	t.Run("alice refused in tenant-b", func(t *testing.T) {
		cl := e.client("alice")
		own, err := cl.CreateProducer(pulsar.ProducerOptions{Topic: topicA})
		if err != nil {
			t.Fatal(err)
		}
		defer own.Close()
		_, err = cl.CreateProducer(pulsar.ProducerOptions{Topic: topicB})
		wantAuthzErr(t, "producer", err)
		_, err = cl.Subscribe(pulsar.ConsumerOptions{Topic: topicB, SubscriptionName: "alice-sub"})
		wantAuthzErr(t, "consumer", err)
		_, err = cl.CreateReader(pulsar.ReaderOptions{Topic: topicB, StartMessageID: pulsar.EarliestMessageID()})
		wantAuthzErr(t, "reader", err)
		_, err = cl.TopicPartitions(topicB)
		wantAuthzErr(t, "partitioned metadata", err)
		_, err = cl.Subscribe(pulsar.ConsumerOptions{TopicsPattern: "persistent://tenant-b/ns/.*", SubscriptionName: "alice-sub"})
		wantAuthzErr(t, "pattern consumer (topics of namespace)", err)
		// A topic alice may not look up is not created by her asking.
		_, err = cl.CreateProducer(pulsar.ProducerOptions{Topic: "persistent://tenant-b/ns/by-alice"})
		wantAuthzErr(t, "producer on a new topic", err)
		if _, err := e.s.Broker().GetTopic(context.Background(), mustTopic(t, "persistent://tenant-b/ns/by-alice")); !errors.Is(err, broker.ErrTopicNotFound) {
			t.Errorf("tenant-b/ns/by-alice after refusals: %v, want not created", err)
		}
		// Her own producer still works after all that.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := own.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("still here")}); err != nil {
			t.Fatalf("own producer after refusals: %v", err)
		}
	})

	t.Run("raw frames", func(t *testing.T) {
		rc := dialRawPulsar(t, e.addr, e.token("alice"))
		wantRefusal := func(what string, resp *pb.BaseCommand, code pb.ServerError, msg string) {
			t.Helper()
			if code != pb.ServerError_AuthorizationError {
				t.Errorf("%s: answered %v, want AuthorizationError", what, resp)
				return
			}
			if !strings.Contains(msg, `"alice"`) || !strings.Contains(msg, "tenant-b/ns") {
				t.Errorf("%s: message %q does not name the role and the namespace", what, msg)
			}
		}
		r := rc.call(&pb.BaseCommand{Type: pb.BaseCommand_LOOKUP.Enum(), LookupTopic: &pb.CommandLookupTopic{
			Topic: proto.String(topicB), RequestId: proto.Uint64(1)}})
		if lr := r.GetLookupTopicResponse(); lr.GetResponse() != pb.CommandLookupTopicResponse_Failed {
			t.Errorf("LOOKUP: %v, want Failed", r)
		}
		wantRefusal("LOOKUP", r, r.GetLookupTopicResponse().GetError(), r.GetLookupTopicResponse().GetMessage())

		r = rc.call(&pb.BaseCommand{Type: pb.BaseCommand_PARTITIONED_METADATA.Enum(), PartitionMetadata: &pb.CommandPartitionedTopicMetadata{
			Topic: proto.String("persistent://tenant-b/ns/raw-new"), RequestId: proto.Uint64(2)}})
		if pr := r.GetPartitionMetadataResponse(); pr.GetResponse() != pb.CommandPartitionedTopicMetadataResponse_Failed {
			t.Errorf("PARTITIONED_METADATA: %v, want Failed", r)
		}
		wantRefusal("PARTITIONED_METADATA", r, r.GetPartitionMetadataResponse().GetError(), r.GetPartitionMetadataResponse().GetMessage())

		wantError := func(what string, r *pb.BaseCommand, reqID uint64) {
			t.Helper()
			if r.GetType() != pb.BaseCommand_ERROR || r.GetError().GetRequestId() != reqID {
				t.Errorf("%s: %v, want ERROR for request %d", what, r, reqID)
				return
			}
			wantRefusal(what, r, r.GetError().GetError(), r.GetError().GetMessage())
		}
		wantError("PRODUCER", rc.call(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{
			Topic: proto.String("persistent://tenant-b/ns/raw-new"), ProducerId: proto.Uint64(1), RequestId: proto.Uint64(3)}}), 3)
		for i, durable := range []bool{true, false} {
			reqID := uint64(4 + i)
			wantError("SUBSCRIBE", rc.call(&pb.BaseCommand{Type: pb.BaseCommand_SUBSCRIBE.Enum(), Subscribe: &pb.CommandSubscribe{
				Topic: proto.String(topicB), Subscription: proto.String("raw"), SubType: pb.CommandSubscribe_Exclusive.Enum(),
				ConsumerId: proto.Uint64(reqID), RequestId: proto.Uint64(reqID), Durable: proto.Bool(durable),
				ForceTopicCreation: proto.Bool(true)}}), reqID)
		}
		wantError("GET_TOPICS_OF_NAMESPACE", rc.call(&pb.BaseCommand{Type: pb.BaseCommand_GET_TOPICS_OF_NAMESPACE.Enum(),
			GetTopicsOfNamespace: &pb.CommandGetTopicsOfNamespace{Namespace: proto.String("tenant-b/ns"), RequestId: proto.Uint64(6)}}), 6)

		r = rc.call(&pb.BaseCommand{Type: pb.BaseCommand_GET_SCHEMA.Enum(), GetSchema: &pb.CommandGetSchema{
			Topic: proto.String(topicB), RequestId: proto.Uint64(7)}})
		wantRefusal("GET_SCHEMA", r, r.GetGetSchemaResponse().GetErrorCode(), r.GetGetSchemaResponse().GetErrorMessage())
		r = rc.call(&pb.BaseCommand{Type: pb.BaseCommand_GET_OR_CREATE_SCHEMA.Enum(), GetOrCreateSchema: &pb.CommandGetOrCreateSchema{
			Topic: proto.String("persistent://tenant-b/ns/raw-new"), RequestId: proto.Uint64(8),
			Schema: &pb.Schema{Name: proto.String("s"), Type: pb.Schema_String.Enum(), SchemaData: []byte{}}}})
		wantRefusal("GET_OR_CREATE_SCHEMA", r, r.GetGetOrCreateSchemaResponse().GetErrorCode(), r.GetGetOrCreateSchemaResponse().GetErrorMessage())

		if _, err := e.s.Broker().GetTopic(context.Background(), mustTopic(t, "persistent://tenant-b/ns/raw-new")); !errors.Is(err, broker.ErrTopicNotFound) {
			t.Errorf("tenant-b/ns/raw-new after refusals: %v, want not created", err)
		}

		// The connection still serves alice in her namespace.
		r = rc.call(&pb.BaseCommand{Type: pb.BaseCommand_LOOKUP.Enum(), LookupTopic: &pb.CommandLookupTopic{
			Topic: proto.String(topicA), RequestId: proto.Uint64(9)}})
		if r.GetLookupTopicResponse().GetResponse() != pb.CommandLookupTopicResponse_Connect {
			t.Errorf("LOOKUP of her own topic: %v", r)
		}
		r = rc.call(&pb.BaseCommand{Type: pb.BaseCommand_GET_TOPICS_OF_NAMESPACE.Enum(),
			GetTopicsOfNamespace: &pb.CommandGetTopicsOfNamespace{Namespace: proto.String("tenant-a/ns"), RequestId: proto.Uint64(10)}})
		if got := r.GetGetTopicsOfNamespaceResponse().GetTopics(); len(got) == 0 || got[0] != topicA {
			t.Errorf("GET_TOPICS_OF_NAMESPACE of her own namespace: %v", r)
		}
		r = rc.call(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{
			Topic: proto.String(topicA), ProducerId: proto.Uint64(2), RequestId: proto.Uint64(11)}})
		if r.GetType() != pb.BaseCommand_PRODUCER_SUCCESS {
			t.Errorf("PRODUCER on her own topic: %v", r)
		}
		r = rc.call(&pb.BaseCommand{Type: pb.BaseCommand_SUBSCRIBE.Enum(), Subscribe: &pb.CommandSubscribe{
			Topic: proto.String(topicA), Subscription: proto.String("raw-a"), SubType: pb.CommandSubscribe_Shared.Enum(),
			ConsumerId: proto.Uint64(7), RequestId: proto.Uint64(12), Durable: proto.Bool(true)}})
		if r.GetType() != pb.BaseCommand_SUCCESS {
			t.Fatalf("SUBSCRIBE to her own topic: %v", r)
		}

		// Consumer ids belong to their connection: another connection
		// (bob's) cannot act on alice's consumer 7.
		other := dialRawPulsar(t, e.addr, e.token("bob"))
		for _, c := range []*pb.BaseCommand{
			{Type: pb.BaseCommand_SEEK.Enum(), Seek: &pb.CommandSeek{ConsumerId: proto.Uint64(7), RequestId: proto.Uint64(1),
				MessageId: &pb.MessageIdData{LedgerId: proto.Uint64(0), EntryId: proto.Uint64(0)}}},
			{Type: pb.BaseCommand_GET_LAST_MESSAGE_ID.Enum(), GetLastMessageId: &pb.CommandGetLastMessageId{ConsumerId: proto.Uint64(7), RequestId: proto.Uint64(2)}},
			{Type: pb.BaseCommand_UNSUBSCRIBE.Enum(), Unsubscribe: &pb.CommandUnsubscribe{ConsumerId: proto.Uint64(7), RequestId: proto.Uint64(3)}},
		} {
			if r := other.call(c); r.GetType() != pb.BaseCommand_ERROR || r.GetError().GetError() != pb.ServerError_ConsumerNotFound {
				t.Errorf("%s of another connection's consumer: %v, want ERROR ConsumerNotFound", c.GetType(), r)
			}
		}
		if r := other.call(&pb.BaseCommand{Type: pb.BaseCommand_ACK.Enum(), Ack: &pb.CommandAck{ConsumerId: proto.Uint64(7),
			AckType: pb.CommandAck_Cumulative.Enum(), RequestId: proto.Uint64(4),
			MessageId: []*pb.MessageIdData{{LedgerId: proto.Uint64(0), EntryId: proto.Uint64(0)}}}}); r.GetAckResponse().GetError() != pb.ServerError_ConsumerNotFound {
			t.Errorf("ACK on another connection's consumer: %v, want ConsumerNotFound", r)
		}
		if code, subs := e.rest("admin", "GET", "/admin/v2/persistent/tenant-a/ns/t/subscriptions", ""); code != 200 || !strings.Contains(subs, `"raw-a"`) {
			t.Errorf("alice's subscription raw-a after the other connection's attempts: %d %s", code, subs)
		}
	})

	t.Run("produce-only and consume-only grants", func(t *testing.T) {
		w := e.client("writer")
		if err := produce(w, topicA, "from writer"); err != nil {
			t.Fatalf("writer produces: %v", err)
		}
		_, err := w.Subscribe(pulsar.ConsumerOptions{Topic: topicA, SubscriptionName: "writer-sub"})
		wantAuthzErr(t, "writer subscribes", err)
		_, err = w.CreateReader(pulsar.ReaderOptions{Topic: topicA, StartMessageID: pulsar.EarliestMessageID()})
		wantAuthzErr(t, "writer reads", err)

		r := e.client("reader")
		if v, err := consumeOne(r, topicA, "reader-sub"); err != nil || v != "from alice" {
			t.Fatalf("reader consumes: %q, %v", v, err)
		}
		// Lookup passes (consume allows it); PRODUCER itself is refused.
		_, err = r.CreateProducer(pulsar.ProducerOptions{Topic: topicA})
		wantAuthzErr(t, "reader produces", err)
		if err != nil && !strings.Contains(err.Error(), "may not produce") {
			t.Errorf("reader produces: %v, want the PRODUCER refusal", err)
		}
		// A producer that would create a subscription needs consume too.
		rc := dialRawPulsar(t, e.addr, e.token("writer"))
		resp := rc.call(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{
			Topic: proto.String(topicA), ProducerId: proto.Uint64(1), RequestId: proto.Uint64(1),
			InitialSubscriptionName: proto.String("writer-initial")}})
		if resp.GetError().GetError() != pb.ServerError_AuthorizationError || !strings.Contains(resp.GetError().GetMessage(), "may not consume") {
			t.Errorf("writer's PRODUCER with an initial subscription: %v, want AuthorizationError (consume)", resp)
		}
		resp = rc.call(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{
			Topic: proto.String(topicA), ProducerId: proto.Uint64(2), RequestId: proto.Uint64(2)}})
		if resp.GetType() != pb.BaseCommand_PRODUCER_SUCCESS {
			t.Errorf("writer's PRODUCER without one: %v", resp)
		}
	})

	t.Run("tenant admin", func(t *testing.T) {
		cl := e.client("a-admin")
		if err := produce(cl, "persistent://tenant-a/ns/admin-t", "x"); err != nil {
			t.Fatalf("a-admin produces in tenant-a: %v", err)
		}
		if v, err := consumeOne(cl, "persistent://tenant-a/ns/admin-t", "s"); err != nil || v != "x" {
			t.Fatalf("a-admin consumes in tenant-a: %q, %v", v, err)
		}
		wantAuthzErr(t, "a-admin produces in tenant-b", produce(cl, topicB, "x"))
		_, err := cl.Subscribe(pulsar.ConsumerOptions{Topic: topicB, SubscriptionName: "s"})
		wantAuthzErr(t, "a-admin consumes in tenant-b", err)
	})

	t.Run("superuser", func(t *testing.T) {
		cl := e.client("admin")
		for _, topic := range []string{topicA, topicB} {
			if err := produce(cl, topic, "from admin"); err != nil {
				t.Fatalf("admin produces to %s: %v", topic, err)
			}
		}
		if v, err := consumeOne(cl, topicB, "admin-sub"); err != nil || v != "from bob" {
			t.Fatalf("admin consumes in tenant-b: %q, %v", v, err)
		}
	})

	t.Run("revocation", func(t *testing.T) {
		cl := e.client("carol")
		if err := produce(cl, topicA, "from carol"); err != nil {
			t.Fatalf("carol before revocation: %v", err)
		}
		if code, body := e.rest("admin", "DELETE", "/admin/v2/namespaces/tenant-a/ns/permissions/carol", ""); code != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", code, body)
		}
		// At once, on the same client (and connection): no cache wait.
		wantAuthzErr(t, "carol after revocation", produce(cl, topicA, "again"))
	})

	t.Run("admin API", func(t *testing.T) {
		for _, c := range []struct {
			role, method, path, body string
			want                     int
		}{
			{"alice", "GET", "/admin/v2/namespaces/tenant-b/ns/topics", "", 403},
			{"alice", "GET", "/admin/v2/persistent/tenant-b/ns/t/partitions", "", 403},
			{"alice", "GET", "/admin/v2/persistent/tenant-b/ns/t/stats", "", 403},
			{"alice", "GET", "/admin/v2/namespaces/tenant-b/ns/permissions", "", 403},
			{"alice", "POST", "/admin/v2/namespaces/tenant-b/ns/permissions/alice", `["produce"]`, 403},
			{"alice", "GET", "/admin/v2/namespaces/tenant-a/ns/topics", "", 200},      // lookup
			{"alice", "GET", "/admin/v2/namespaces/tenant-a/ns/permissions", "", 403}, // tenant admins only
			{"alice", "PUT", "/admin/v2/persistent/tenant-a/ns/by-alice", "", 403},
			{"a-admin", "GET", "/admin/v2/namespaces/tenant-a/ns/permissions", "", 200},
			{"a-admin", "PUT", "/admin/v2/persistent/tenant-a/ns/by-a-admin", "", 204},
			{"a-admin", "GET", "/admin/v2/persistent/tenant-a/ns/t/stats", "", 200},
			{"a-admin", "POST", "/admin/v2/namespaces/tenant-a/ns/permissions/dave", `["consume"]`, 204},
			{"a-admin", "GET", "/admin/v2/tenants/tenant-a", "", 200},
			{"a-admin", "GET", "/admin/v2/namespaces/tenant-b/ns/permissions", "", 403},
			{"a-admin", "GET", "/admin/v2/tenants/tenant-b", "", 403},
			{"a-admin", "PUT", "/admin/v2/persistent/tenant-b/ns/by-a-admin", "", 403},
			{"alice", "PUT", "/admin/v2/tenants/x", `{"adminRoles":[],"allowedClusters":["standalone"]}`, 403},
			{"a-admin", "PUT", "/admin/v2/tenants/x", `{"adminRoles":[],"allowedClusters":["standalone"]}`, 403},
			{"a-admin", "GET", "/admin/v2/tenants", "", 403},
			{"admin", "PUT", "/admin/v2/tenants/x", `{"adminRoles":[],"allowedClusters":["standalone"]}`, 204},
			{"admin", "GET", "/admin/v2/namespaces/tenant-b/ns/permissions", "", 200},
		} {
			if code, body := e.rest(c.role, c.method, c.path, c.body); code != c.want {
				t.Errorf("%s %s as %s: %d %s, want %d", c.method, c.path, c.role, code, body, c.want)
			}
		}
		// dave's grant (made by the tenant admin) is in force at once.
		if err := produce(e.client("dave"), topicA, "x"); err == nil || !strings.Contains(err.Error(), "may not produce") {
			t.Errorf("dave (consume only) produces: %v, want the PRODUCER refusal", err)
		}
		if _, err := consumeOne(e.client("dave"), topicA, "dave-sub"); err != nil {
			t.Errorf("dave consumes: %v", err)
		}
	})
}

func mustTopic(t *testing.T, s string) broker.TopicName {
	t.Helper()
	n, err := broker.ParseTopicName(s, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// rawPulsar is a Pulsar connection driven frame by frame.
type rawPulsar struct {
	t  *testing.T
	nc net.Conn
}

// dialRawPulsar connects and authenticates with token.
func dialRawPulsar(t *testing.T, addr, token string) *rawPulsar {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	rc := &rawPulsar{t: t, nc: nc}
	r := rc.call(&pb.BaseCommand{Type: pb.BaseCommand_CONNECT.Enum(), Connect: &pb.CommandConnect{
		ClientVersion: proto.String("raw"), ProtocolVersion: proto.Int32(20),
		AuthMethodName: proto.String("token"), AuthData: []byte(token)}})
	if r.GetType() != pb.BaseCommand_CONNECTED {
		t.Fatalf("CONNECT: %v", r)
	}
	return rc
}

// call sends cmd and returns the next command received (PINGs answered
// and skipped). A closed connection fails the test.
func (rc *rawPulsar) call(cmd *pb.BaseCommand) *pb.BaseCommand {
	rc.t.Helper()
	rc.write(cmd)
	for {
		rc.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		var hdr [8]byte
		if _, err := io.ReadFull(rc.nc, hdr[:]); err != nil {
			rc.t.Fatalf("%s: reading the answer: %v", cmd.GetType(), err)
		}
		total, size := binary.BigEndian.Uint32(hdr[:4]), binary.BigEndian.Uint32(hdr[4:])
		frame := make([]byte, total-4)
		if _, err := io.ReadFull(rc.nc, frame); err != nil {
			rc.t.Fatalf("%s: reading the answer: %v", cmd.GetType(), err)
		}
		var resp pb.BaseCommand
		if err := proto.Unmarshal(frame[:size], &resp); err != nil {
			rc.t.Fatal(err)
		}
		if resp.GetType() == pb.BaseCommand_PING {
			rc.write(&pb.BaseCommand{Type: pb.BaseCommand_PONG.Enum(), Pong: &pb.CommandPong{}})
			continue
		}
		return &resp
	}
}

func (rc *rawPulsar) write(cmd *pb.BaseCommand) {
	rc.t.Helper()
	b, err := proto.Marshal(cmd)
	if err != nil {
		rc.t.Fatal(err)
	}
	f := binary.BigEndian.AppendUint32(nil, uint32(len(b)+4))
	f = binary.BigEndian.AppendUint32(f, uint32(len(b)))
	if _, err := rc.nc.Write(append(f, b...)); err != nil {
		rc.t.Fatalf("%s: %v", cmd.GetType(), err)
	}
}
