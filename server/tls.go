package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// tlsConfig builds the TLS settings shared by every TLS listener (Kafka,
// Pulsar, HTTPS) from tls-cert-file and tls-key-file (PEM), or returns nil
// when no TLS listener is configured. With tls-client-ca-file, clients must
// present a certificate signed by one of its CAs (Kafka ssl.client.auth=required,
// Pulsar tlsRequireTrustedClientCertOnConnect).
func (c *Config) tlsConfig() (*tls.Config, error) {
	if !c.tlsListeners() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.TLSClientCAFile != "" {
		pem, err := os.ReadFile(c.TLSClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls-client-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("tls-client-ca-file: no PEM certificate found")
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// tlsListeners reports whether any TLS listener is configured.
func (c *Config) tlsListeners() bool {
	if c.HTTPSAddr != "" {
		return true
	}
	for _, p := range c.Protocols {
		if c.TLSAddrs[p] != "" {
			return true
		}
	}
	return false
}
