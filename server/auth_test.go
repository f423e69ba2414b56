package server

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

var (
	testSecret  = []byte("kopernik-test-secret-0123456789ab")
	otherSecret = []byte("some-other-secret-0123456789abcde")
)

func testToken(t *testing.T, key []byte, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startAuthServer starts a broker with auth-enabled and an HS256 secret;
// authorization is off unless extra turns it on.
func startAuthServer(t *testing.T, extra map[string]string) *Server {
	t.Helper()
	f := filepath.Join(t.TempDir(), "secret.key")
	os.WriteFile(f, testSecret, 0o600)
	o := map[string]string{"auth-enabled": "true", "auth-token-secret-key-file": f, "auth-failure-delay": "300ms",
		"authorization-enabled": "false"}
	for k, v := range extra {
		o[k] = v
	}
	return startServer(t, o)
}

// adminREST calls the admin API with a token of role and returns the
// status and body.
func adminREST(t *testing.T, s *Server, role, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.Addr("http").String()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken(t, testSecret, jwt.MapClaims{"sub": role}))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// rawPulsarConnect sends CONNECT with the given credentials and returns the
// one command answered, and whether the broker then closed the connection.
func rawPulsarConnect(t *testing.T, addr, method string, data []byte) (*pb.BaseCommand, bool, time.Duration) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	cmd, _ := proto.Marshal(&pb.BaseCommand{Type: pb.BaseCommand_CONNECT.Enum(), Connect: &pb.CommandConnect{
		ClientVersion: proto.String("raw"), ProtocolVersion: proto.Int32(20),
		AuthMethodName: proto.String(method), AuthData: data,
	}})
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(cmd)+4))
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(cmd)))
	nc.Write(append(frame, cmd...))
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [8]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		t.Fatalf("reading answer: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[4:]))
	io.ReadFull(nc, body)
	elapsed := time.Since(start)
	var resp pb.BaseCommand
	if err := proto.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(time.Second)) // a refusal closes at once
	_, err = nc.Read(make([]byte, 1))
	return &resp, err == io.EOF || (err != nil && !strings.Contains(err.Error(), "timeout")), elapsed
}

func TestPulsarTokenAuth(t *testing.T) {
	s := startAuthServer(t, nil)
	addr := s.Addr("pulsar").String()
	good := testToken(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})

	resp, closed, _ := rawPulsarConnect(t, addr, "token", []byte(good))
	if resp.GetType() != pb.BaseCommand_CONNECTED || closed {
		t.Fatalf("good token: %v closed=%v", resp, closed)
	}
	for name, tc := range map[string]struct {
		method string
		data   string
	}{
		"wrong key":      {"token", testToken(t, otherSecret, jwt.MapClaims{"sub": "alice"})},
		"expired":        {"token", testToken(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()})},
		"garbage":        {"token", "garbage"},
		"no credentials": {"", ""},
		"other method":   {"basic", "alice:pw"},
	} {
		resp, closed, took := rawPulsarConnect(t, addr, tc.method, []byte(tc.data))
		if resp.GetType() != pb.BaseCommand_ERROR || resp.GetError().GetError() != pb.ServerError_AuthenticationError || !closed {
			t.Errorf("%s: got %v, closed=%v; want ERROR AuthenticationError and a close", name, resp, closed)
		}
		if name == "expired" && !strings.Contains(resp.GetError().GetMessage(), "token expired") {
			t.Errorf("expired: message %q does not say so", resp.GetError().GetMessage())
		}
		if took < 250*time.Millisecond {
			t.Errorf("%s: refused after %s, want the failure delay", name, took)
		}
	}

	// The Go client with the right token.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := pulsar.NewClient(pulsar.ClientOptions{URL: "pulsar://" + addr, Authentication: pulsar.NewAuthenticationToken(good), Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p, err := cl.CreateProducer(pulsar.ProducerOptions{Topic: "authed"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	// ... and with a token signed by another key: refused, no crash.
	bad, err := pulsar.NewClient(pulsar.ClientOptions{URL: "pulsar://" + addr, OperationTimeout: 2 * time.Second,
		Authentication: pulsar.NewAuthenticationToken(testToken(t, otherSecret, jwt.MapClaims{"sub": "alice"})), Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.CreateProducer(pulsar.ProducerOptions{Topic: "authed"}); err == nil {
		t.Fatal("producer created with a token signed by another key")
	}
	// The broker still serves the good client.
	if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("y")}); err != nil {
		t.Fatal(err)
	}
}

func TestPulsarAnonymousRole(t *testing.T) {
	s := startAuthServer(t, map[string]string{"anonymous-role": "guest", "protocols": "pulsar"})
	resp, _, _ := rawPulsarConnect(t, s.Addr("pulsar").String(), "", nil)
	if resp.GetType() != pb.BaseCommand_CONNECTED {
		t.Fatalf("anonymous with anonymous-role: %v", resp)
	}
}

func TestAdminRequiresToken(t *testing.T) {
	s := startAuthServer(t, map[string]string{"superuser-roles": "admin", "protocols": "pulsar"})
	base := "http://" + s.Addr("http").String()
	get := func(path, token string) int {
		req, _ := http.NewRequest("GET", base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("/admin/v2/tenants", ""); c != 401 {
		t.Errorf("no token: %d", c)
	}
	if c := get("/admin/v2/tenants", testToken(t, testSecret, jwt.MapClaims{"sub": "alice"})); c != 403 {
		t.Errorf("not a superuser: %d", c)
	}
	if c := get("/admin/v2/tenants", testToken(t, testSecret, jwt.MapClaims{"sub": "admin"})); c != 200 {
		t.Errorf("superuser: %d", c)
	}
	if c := get("/admin/v2/brokers/health", ""); c != 200 {
		t.Errorf("health needs no token: %d", c)
	}
}

// TestPendingPerAddress: connections that have not authenticated are
// bounded per client address, for both protocols.
func TestPendingPerAddress(t *testing.T) {
	s := startAuthServer(t, map[string]string{"auth-max-pending-per-address": "2"})
	for _, proto := range []string{"kafka", "pulsar"} {
		addr := s.Addr(proto).String()
		var conns []net.Conn
		for range 2 {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, nc)
		}
		time.Sleep(100 * time.Millisecond) // let the broker accept them
		third, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		third.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := third.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("%s: third unauthenticated connection: read %v, want it closed", proto, err)
		}
		third.Close()
		conns[0].Close()
		time.Sleep(200 * time.Millisecond)
		// A slot is free again: an authenticated client gets in.
		if proto == "pulsar" {
			good := testToken(t, testSecret, jwt.MapClaims{"sub": "alice"})
			if resp, _, _ := rawPulsarConnect(t, addr, "token", []byte(good)); resp.GetType() != pb.BaseCommand_CONNECTED {
				t.Fatalf("pulsar after a slot freed: %v", resp)
			}
		} else {
			nc, _ := net.Dial("tcp", addr)
			nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, err := nc.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("kafka after a slot freed: %v, want an open connection", err)
			}
			nc.Close()
		}
		conns[1].Close()
		time.Sleep(100 * time.Millisecond)
	}
}

func TestAdminSCRAMResource(t *testing.T) {
	s := startAuthServer(t, map[string]string{"protocols": "kafka"})
	base := "http://" + s.Addr("http").String() + "/admin/v2/kopernik/scram"
	admin := testToken(t, testSecret, jwt.MapClaims{"sub": "admin"})
	do := func(method, url, body string) (int, string) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	for _, bad := range []string{
		`{"mechanism":"SCRAM-MD5","password":"x"}`,
		`{"password":""}`,
		`{"password":"x","namespace":"ns"}`,
		`{"password":"x","tenant":"a/b"}`,
		`{"password":"x","iterations":10}`,
		`not json`,
	} {
		if code, msg := do("PUT", base+"/u", bad); code != http.StatusBadRequest {
			t.Errorf("PUT %s: %d %s, want 400", bad, code, msg)
		}
	}
	if code, msg := do("PUT", base+"/u", `{"password":"x"}`); code != http.StatusNoContent {
		t.Fatalf("PUT default mechanism: %d %s", code, msg)
	}
	if code, msg := do("PUT", base+"/u", `{"password":"y","mechanism":"SCRAM-SHA-512"}`); code != http.StatusNoContent {
		t.Fatalf("PUT 512: %d %s", code, msg)
	}
	if code, list := do("GET", base, ""); code != 200 || list != `["SCRAM-SHA-256:u","SCRAM-SHA-512:u"]` {
		t.Fatalf("GET: %d %s", code, list)
	}
	// The stored record holds no password.
	raw, err := s.Broker().GetState(context.Background(), "auth-scram", "SCRAM-SHA-256:u")
	if err != nil || strings.Contains(string(raw), `"x"`) || !strings.Contains(string(raw), "storedKey") {
		t.Fatalf("stored credential %s (%v)", raw, err)
	}
	if code, _ := do("DELETE", base+"/u?mechanism=SCRAM-SHA-256", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE one: %d", code)
	}
	if _, list := do("GET", base, ""); list != `["SCRAM-SHA-512:u"]` {
		t.Fatalf("after DELETE of one mechanism: %s", list)
	}
	if code, _ := do("DELETE", base+"/u", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE all: %d", code)
	}
	if _, list := do("GET", base, ""); list != `[]` {
		t.Fatalf("after DELETE: %s", list)
	}
}

func TestPulsarAuthTimeout(t *testing.T) {
	s := startAuthServer(t, map[string]string{"protocols": "pulsar", "pulsar-auth-timeout": "500ms"})
	nc, err := net.Dial("tcp", s.Addr("pulsar").String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("silent connection: read %v after %s, want a close at the 500ms auth-timeout", err, time.Since(start))
	}
	// A client that CONNECTs in time keeps its connection past the timeout.
	good := testToken(t, testSecret, jwt.MapClaims{"sub": "alice"})
	cl, err := pulsar.NewClient(pulsar.ClientOptions{URL: "pulsar://" + s.Addr("pulsar").String(),
		Authentication: pulsar.NewAuthenticationToken(good), Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p, err := cl.CreateProducer(pulsar.ProducerOptions{Topic: "timeout-t"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	time.Sleep(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("x")}); err != nil {
		t.Fatalf("send after the auth-timeout: %v", err)
	}
}
