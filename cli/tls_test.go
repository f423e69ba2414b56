package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key;
// the certificate is its own CA.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTLSAndToken: every client of the CLI (admin REST, Kafka, Pulsar)
// speaks TLS and authenticates with --token against a broker that
// requires both.
func TestTLSAndToken(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	secret := []byte("0123456789abcdef0123456789abcdef")
	secretFile := filepath.Join(dir, "secret.key")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, map[string]string{"https-addr": "127.0.0.1:0", "kafka-tls-addr": "127.0.0.1:0", "pulsar-tls-addr": "127.0.0.1:0",
		"tls-cert-file": cert, "tls-key-file": key, "auth-enabled": "true", "auth-token-secret-key-file": secretFile,
		"superuser-roles": "admin"})
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "admin"}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs := []string{"--url", "https://" + s.Addr("https").String(), "--kafka", s.Addr("kafka-tls").String(), "--kafka-tls",
		"--pulsar", "pulsar+ssl://" + s.Addr("pulsar-tls").String(), "--timeout", "10s"}
	secure := append(append([]string{}, addrs...), "--tls-ca", cert, "--token", token)
	cmd := func(extra []string, args ...string) []string { return append(append([]string{}, extra...), args...) }

	ok(t, nil, "", cmd(secure, "topics", "create", "secure", "-p", "2")...)
	ok(t, nil, "a\n", cmd(secure, "produce", "secure", "-k", "k")...)
	ok(t, nil, "", cmd(secure, "produce", "secure", "--protocol", "pulsar", "--value", "b")...)
	if out := ok(t, nil, "", cmd(secure, "consume", "secure", "--from", "earliest", "-n", "2")...); out != "a\nb\n" && out != "b\na\n" {
		t.Fatalf("consume over TLS: %q", out)
	}
	if out := ok(t, nil, "", cmd(secure, "consume", "secure", "--protocol", "pulsar", "--from", "earliest", "-n", "2")...); len(out) != 4 {
		t.Fatalf("pulsar consume over TLS: %q", out)
	}
	// The token from a file; the certificate unverified.
	ok(t, nil, "", cmd(addrs, "--tls-insecure", "--token", "@"+tokenFile, "topics", "describe", "secure")...)

	fails(t, nil, 1, "HTTP 401", cmd(addrs, "--tls-ca", cert, "tenants", "list")...)
	fails(t, nil, 1, "certificate", cmd(addrs, "--token", token, "tenants", "list")...)
	fails(t, nil, 1, "no PEM certificate", cmd(addrs, "--tls-ca", secretFile, "--token", token, "tenants", "list")...)
	fails(t, nil, 1, "--token", cmd(addrs, "--token", "@"+filepath.Join(dir, "none"), "tenants", "list")...)
	fails(t, nil, 2, "--tls-cert and --tls-key go together", cmd(addrs, "--tls-cert", cert, "tenants", "list")...)
}
