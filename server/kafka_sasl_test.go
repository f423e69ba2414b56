package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kopernik-io/kopernik/broker"
)

// kafkaProduce produces one record with mech and reports the error.
func kafkaProduce(t *testing.T, addr, topic string, mech sasl.Mechanism) error {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second), kgo.AllowAutoTopicCreation()}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr()
}

// kafkaPing connects with mech and sends one Metadata request.
func kafkaPing(t *testing.T, addr string, mech sasl.Mechanism) error {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(mech))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

func plainToken(user, token string) sasl.Mechanism {
	return plain.Auth{User: user, Pass: "token:" + token}.AsMechanism()
}

func TestKafkaSASLPlainToken(t *testing.T) {
	s := startAuthServer(t, nil)
	addr := s.Addr("kafka").String()
	ctx := context.Background()
	if err := s.Broker().CreateTenant(ctx, "acme", broker.TenantInfo{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Broker().CreateNamespace(ctx, "acme/apps", broker.Policies{}); err != nil {
		t.Fatal(err)
	}
	good := testToken(t, testSecret, jwt.MapClaims{"sub": "app", "exp": time.Now().Add(time.Hour).Unix()})

	if err := kafkaProduce(t, addr, "plain-t", plainToken("public", good)); err != nil {
		t.Fatalf("right token: %v", err)
	}
	// username tenant/namespace: short names resolve there.
	if err := kafkaProduce(t, addr, "in-acme", plainToken("acme/apps", good)); err != nil {
		t.Fatalf("right token, acme/apps: %v", err)
	}
	if _, err := s.Broker().GetTopic(ctx, broker.TopicName{Domain: "persistent", Tenant: "acme", Namespace: "apps", Local: "in-acme"}); err != nil {
		t.Fatalf("short name of an acme/apps client: %v", err)
	}

	for name, mech := range map[string]sasl.Mechanism{
		"other key":   plainToken("public", testToken(t, otherSecret, jwt.MapClaims{"sub": "app"})),
		"expired":     plainToken("public", testToken(t, testSecret, jwt.MapClaims{"sub": "app", "exp": time.Now().Add(-time.Minute).Unix()})),
		"no prefix":   plain.Auth{User: "public", Pass: good}.AsMechanism(),
		"bad tenant":  plainToken("a/b/c", good),
		"not a token": plainToken("public", "xyz"),
	} {
		start := time.Now()
		err := kafkaPing(t, addr, mech)
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("%s: %v, want SASL_AUTHENTICATION_FAILED", name, err)
		}
		if time.Since(start) < 250*time.Millisecond {
			t.Errorf("%s: refused without the failure delay", name)
		}
	}
	// No SASL at all: the first request after ApiVersions closes the connection.
	cl, _ := kgo.NewClient(kgo.SeedBrokers(addr))
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err == nil {
		t.Fatal("unauthenticated client produced")
	}

	// librdkafka (kcat), SASL/PLAIN with a token, if installed.
	if kcat, err := exec.LookPath("kcat"); err == nil {
		kctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		args := []string{"-b", addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=PLAIN",
			"-X", "sasl.username=acme/apps", "-X", "sasl.password=token:" + good, "-L", "-t", "in-acme"}
		out, err := exec.CommandContext(kctx, kcat, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `topic "in-acme"`) {
			t.Fatalf("kcat PLAIN: %v\n%s", err, out)
		}
	}

	// sarama, SASL/PLAIN with handshake v1.
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	cfg.Net.SASL.User = "public/default"
	cfg.Net.SASL.Password = "token:" + good
	cfg.Producer.Return.Successes = true
	sp, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("sarama: %v", err)
	}
	if _, _, err := sp.SendMessage(&sarama.ProducerMessage{Topic: "plain-t", Value: sarama.StringEncoder("s")}); err != nil {
		t.Fatalf("sarama send: %v", err)
	}
	sp.Close()
	cfg.Net.SASL.Password = "token:" + testToken(t, otherSecret, jwt.MapClaims{"sub": "app"})
	cfg.Metadata.Retry.Max = 0
	if _, err := sarama.NewSyncProducer([]string{addr}, cfg); err == nil {
		t.Fatal("sarama with a token signed by another key connected")
	}
}

// putSCRAM sets a SCRAM credential through the admin API.
func putSCRAM(t *testing.T, s *Server, user, mech, password, tenant, ns string) {
	t.Helper()
	body := fmt.Sprintf(`{"mechanism":%q,"password":%q,"tenant":%q,"namespace":%q}`, mech, password, tenant, ns)
	req, _ := http.NewRequest("PUT", "http://"+s.Addr("http").String()+"/admin/v2/kopernik/scram/"+user, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken(t, testSecret, jwt.MapClaims{"sub": "admin"}))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT scram %s: %d %s", user, resp.StatusCode, msg)
	}
}

func TestKafkaSASLSCRAM(t *testing.T) {
	s := startAuthServer(t, nil)
	addr := s.Addr("kafka").String()
	putSCRAM(t, s, "alice", "SCRAM-SHA-256", "alice-secret", "", "")
	putSCRAM(t, s, "bob", "SCRAM-SHA-512", "bob-secret", "public", "default")

	if err := kafkaProduce(t, addr, "scram-t", scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha256Mechanism()); err != nil {
		t.Fatalf("SCRAM-SHA-256: %v", err)
	}
	if err := kafkaProduce(t, addr, "scram-t", scram.Auth{User: "bob", Pass: "bob-secret"}.AsSha512Mechanism()); err != nil {
		t.Fatalf("SCRAM-SHA-512: %v", err)
	}
	for name, mech := range map[string]sasl.Mechanism{
		"wrong password":  scram.Auth{User: "alice", Pass: "nope"}.AsSha256Mechanism(),
		"wrong mechanism": scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha512Mechanism(),
		"unknown user":    scram.Auth{User: "carol", Pass: "x"}.AsSha256Mechanism(),
	} {
		if err := kafkaPing(t, addr, mech); !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("%s: %v, want SASL_AUTHENTICATION_FAILED", name, err)
		}
	}

	if kcat, err := exec.LookPath("kcat"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		base := []string{"-b", addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-256",
			"-X", "sasl.username=alice", "-X", "sasl.password=alice-secret"}
		cmd := exec.CommandContext(ctx, kcat, append(base, "-P", "-t", "kcat-scram")...)
		cmd.Stdin = strings.NewReader("a\nb\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat produce: %v\n%s", err, out)
		}
		out, err := exec.CommandContext(ctx, kcat, append(base, "-C", "-t", "kcat-scram", "-o", "beginning", "-e")...).Output()
		if err != nil || strings.TrimSpace(string(out)) != "a\nb" {
			t.Fatalf("kcat consume: %v %q", err, out)
		}
	}
}

// rawKafka frames req (v = its version) and returns the response body, or
// an error when the broker closed the connection instead.
func rawKafka(nc net.Conn, req kmsg.Request, corr int32) ([]byte, error) {
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw"))
	if _, err := nc.Write(f.AppendRequest(nil, req, corr)); err != nil {
		return nil, err
	}
	var sz [4]byte
	if _, err := io.ReadFull(nc, sz[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(sz[:]))
	_, err := io.ReadFull(nc, b)
	return b, err
}

func TestKafkaSASLHalfFinishedAndGate(t *testing.T) {
	s := startAuthServer(t, map[string]string{"kafka-sasl-timeout": "1s", "protocols": "kafka"})
	addr := s.Addr("kafka").String()

	// ApiVersions advertises the SASL APIs.
	nc, _ := net.DialTimeout("tcp", addr, 5*time.Second)
	defer nc.Close()
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 0
	b, err := rawKafka(nc, av, 1)
	if err != nil {
		t.Fatal(err)
	}
	avr := kmsg.NewPtrApiVersionsResponse()
	avr.Version = 0
	avr.ReadFrom(b[4:])
	keys := map[int16]bool{}
	for _, k := range avr.ApiKeys {
		keys[k.ApiKey] = true
	}
	if !keys[17] || !keys[36] {
		t.Fatalf("auth on: SASL APIs not advertised: %v", avr.ApiKeys)
	}
	// Metadata before authenticating: closed.
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 4
	if _, err := rawKafka(nc, md, 2); err == nil {
		t.Fatal("Metadata before authentication was answered")
	}

	// A SCRAM exchange that stops after the first message: closed at sasl-timeout.
	nc2, _ := net.DialTimeout("tcp", addr, 5*time.Second)
	defer nc2.Close()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, "SCRAM-SHA-256"
	if _, err := rawKafka(nc2, hs, 1); err != nil {
		t.Fatal(err)
	}
	au := kmsg.NewPtrSASLAuthenticateRequest()
	au.Version, au.SASLAuthBytes = 1, []byte("n,,n=alice,r=abcdefgh")
	if _, err := rawKafka(nc2, au, 2); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	nc2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc2.Read(make([]byte, 1)); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("half-finished exchange: read %v after %s, want a close at the 1s sasl-timeout", err, time.Since(start))
	}
}

func TestKafkaSASLHiddenWhenAuthOff(t *testing.T) {
	s := startServer(t, map[string]string{"protocols": "kafka"})
	nc, err := net.DialTimeout("tcp", s.Addr("kafka").String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 0
	b, err := rawKafka(nc, av, 1)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte{0, 17, 0}) || bytes.Contains(b, []byte{0, 36, 0}) {
		avr := kmsg.NewPtrApiVersionsResponse()
		avr.Version = 0
		avr.ReadFrom(b[4:])
		for _, k := range avr.ApiKeys {
			if k.ApiKey == 17 || k.ApiKey == 36 {
				t.Fatalf("auth off advertises SASL API %d", k.ApiKey)
			}
		}
	}
}

// TestSASLOverTLS: SASL_SSL for Kafka (SCRAM) and a token over pulsar+ssl.
func TestSASLOverTLS(t *testing.T) {
	certs := newTestCerts(t)
	s := startAuthServer(t, map[string]string{
		"tls-cert-file": certs.certFile, "tls-key-file": certs.keyFile,
		"kafka-tls-addr": "127.0.0.1:0", "pulsar-tls-addr": "127.0.0.1:0",
	})
	putSCRAM(t, s, "tls-user", "SCRAM-SHA-512", "pw-over-tls", "", "")
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka-tls").String()), kgo.AllowAutoTopicCreation(),
		kgo.DialTLSConfig(&tls.Config{RootCAs: certs.pool}),
		kgo.SASL(scram.Auth{User: "tls-user", Pass: "pw-over-tls"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "sasl-ssl", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("SASL_SSL produce: %v", err)
	}

	token := testToken(t, testSecret, jwt.MapClaims{"sub": "alice"})
	pcl, err := pulsar.NewClient(pulsar.ClientOptions{URL: "pulsar+ssl://" + s.Addr("pulsar-tls").String(),
		TLSTrustCertsFilePath: certs.caFile, Authentication: pulsar.NewAuthenticationToken(token), Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	p, err := pcl.CreateProducer(pulsar.ProducerOptions{Topic: "sasl-ssl"})
	if err != nil {
		t.Fatalf("pulsar+ssl with a token: %v", err)
	}
	defer p.Close()
	if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
}

// TestKafkaSASLHandshakeV0: after SaslHandshake v0 the PLAIN message goes
// as a bare [size][bytes] frame and success is an empty bare frame; a
// failure closes without an answer.
func TestKafkaSASLHandshakeV0(t *testing.T) {
	s := startAuthServer(t, map[string]string{"protocols": "kafka"})
	good := testToken(t, testSecret, jwt.MapClaims{"sub": "app"})
	for _, tc := range []struct {
		token string
		ok    bool
	}{{good, true}, {testToken(t, otherSecret, jwt.MapClaims{"sub": "app"}), false}} {
		nc, err := net.DialTimeout("tcp", s.Addr("kafka").String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version, hs.Mechanism = 0, "PLAIN"
		b, err := rawKafka(nc, hs, 1)
		if err != nil {
			t.Fatal(err)
		}
		hr := kmsg.NewPtrSASLHandshakeResponse()
		hr.Version = 0
		if err := hr.ReadFrom(b[4:]); err != nil || hr.ErrorCode != 0 {
			t.Fatalf("handshake v0: %v %d", err, hr.ErrorCode)
		}
		msg := []byte("\x00public\x00token:" + tc.token)
		nc.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(msg))), msg...))
		var sz [4]byte
		_, err = io.ReadFull(nc, sz[:])
		if tc.ok {
			if err != nil || binary.BigEndian.Uint32(sz[:]) != 0 {
				t.Fatalf("v0 PLAIN with a good token: %v %v", err, sz)
			}
			md := kmsg.NewPtrMetadataRequest()
			md.Version = 4
			if _, err := rawKafka(nc, md, 2); err != nil {
				t.Fatalf("Metadata after v0 authentication: %v", err)
			}
		} else if err == nil {
			t.Fatalf("v0 PLAIN with a bad token answered %v", sz)
		}
		nc.Close()
	}
}
