package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/twmb/franz-go/pkg/kgo"
)

// testCerts writes a self-signed CA and a server certificate for
// 127.0.0.1/localhost into dir; it returns the file names and the CA pool.
type testCerts struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	client                    tls.Certificate // signed by the CA, for client auth
}

func newTestCerts(t *testing.T) testCerts {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kopernik test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	c := testCerts{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), pool: x509.NewCertPool()}
	os.WriteFile(c.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	os.WriteFile(c.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(c.keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	c.pool.AddCert(caCert)

	ckey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ctmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	cder, err := x509.CreateCertificate(rand.Reader, ctmpl, caCert, &ckey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	c.client = tls.Certificate{Certificate: [][]byte{cder}, PrivateKey: ckey}
	return c
}

// bothProtocols is the settings of a broker with both protocols on port
// 0 in a fresh data dir, with extra on top.
func bothProtocols(t *testing.T, extra map[string]string) map[string]string {
	o := map[string]string{
		"data-dir": t.TempDir(), "http-addr": "127.0.0.1:0", "protocols": "kafka,pulsar",
		"kafka-addr": "127.0.0.1:0", "pulsar-addr": "127.0.0.1:0",
	}
	for k, v := range extra {
		o[k] = v
	}
	return o
}

// startServer starts a broker with both protocols on port 0 and extra settings.
func startServer(t *testing.T, extra map[string]string) *Server {
	t.Helper()
	cfg, err := Load("", nil, bothProtocols(t, extra))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestTLSListeners(t *testing.T) {
	certs := newTestCerts(t)
	s := startServer(t, map[string]string{
		"tls-cert-file": certs.certFile, "tls-key-file": certs.keyFile,
		"kafka-tls-addr": "127.0.0.1:0", "pulsar-tls-addr": "127.0.0.1:0", "https-addr": "127.0.0.1:0",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Kafka over TLS: Metadata must advertise the TLS listener, or the
	// client's next connection would go to the plaintext port.
	kcl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka-tls").String()),
		kgo.DialTLSConfig(&tls.Config{RootCAs: certs.pool}), kgo.ConsumeTopics("tls-k"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	if err := kcl.ProduceSync(ctx, &kgo.Record{Topic: "tls-k", Value: []byte("over tls")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fs := kcl.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "over tls" {
		t.Fatalf("kafka over TLS consumed %v", recs)
	}
	// The plaintext listener still works beside it.
	plain, _ := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka").String()))
	defer plain.Close()
	if err := plain.ProduceSync(ctx, &kgo.Record{Topic: "tls-k", Value: []byte("plain")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Pulsar over TLS.
	pcl, err := pulsar.NewClient(pulsar.ClientOptions{URL: "pulsar+ssl://" + s.Addr("pulsar-tls").String(),
		TLSTrustCertsFilePath: certs.caFile, Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	cons, err := pcl.Subscribe(pulsar.ConsumerOptions{Topic: "tls-p", SubscriptionName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	prod, err := pcl.CreateProducer(pulsar.ProducerOptions{Topic: "tls-p"})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := prod.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("pulsar tls")}); err != nil {
		t.Fatal(err)
	}
	m, err := cons.Receive(ctx)
	if err != nil || string(m.Payload()) != "pulsar tls" {
		t.Fatalf("pulsar over TLS: %v %v", m, err)
	}

	// HTTPS admin.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.pool}}, Timeout: 10 * time.Second}
	resp, err := hc.Get("https://" + s.Addr("https").String() + "/admin/v2/brokers/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("https health: %d %q", resp.StatusCode, body)
	}
}

func TestTLSClientCertRequired(t *testing.T) {
	certs := newTestCerts(t)
	s := startServer(t, map[string]string{
		"tls-cert-file": certs.certFile, "tls-key-file": certs.keyFile, "tls-client-ca-file": certs.caFile,
		"protocols": "kafka", "kafka-tls-addr": "127.0.0.1:0",
	})
	// No client certificate: the handshake fails.
	c, err := tls.Dial("tcp", s.Addr("kafka-tls").String(), &tls.Config{RootCAs: certs.pool})
	if err == nil {
		_, err = c.Read(make([]byte, 1)) // TLS 1.3 reports the refusal on the first read
		c.Close()
	}
	if err == nil {
		t.Fatal("TLS without a client certificate was accepted")
	}
	// With a CA-signed client certificate: served.
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka-tls").String()),
		kgo.DialTLSConfig(&tls.Config{RootCAs: certs.pool, Certificates: []tls.Certificate{certs.client}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
}

func TestTLSConfigValidation(t *testing.T) {
	_, err := Load("", nil, map[string]string{"data-dir": t.TempDir(), "kafka-tls-addr": "127.0.0.1:0",
		"auth-token-secret-key-file": "a", "auth-token-public-key-file": "b"})
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"tls-cert-file", "at most one"} {
		if !contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
