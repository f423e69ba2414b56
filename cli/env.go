package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/kopernik-io/kopernik/broker"
)

// globals are the flags every command accepts.
type globals struct {
	url         string
	kafka       string
	pulsar      string
	token       string
	tlsCA       string
	tlsCert     string
	tlsKey      string
	tlsInsecure bool
	kafkaTLS    bool
	output      string
	timeout     time.Duration
}

var globalNames = map[string]bool{"url": true, "kafka": true, "pulsar": true, "token": true, "tls-ca": true,
	"tls-cert": true, "tls-key": true, "tls-insecure": true, "kafka-tls": true, "o": true, "timeout": true}

func isGlobal(name string) bool { return globalNames[name] }

// register adds the global flags to fs, bound to g: given before the
// command or among its flags, they set the same value.
func (g *globals) register(fs *flag.FlagSet) {
	def := func(p *string, name, value string) {
		if *p == "" {
			*p = value
		}
		fs.StringVar(p, name, *p, "")
	}
	def(&g.url, "url", "http://localhost:8080")
	def(&g.kafka, "kafka", "localhost:9092")
	def(&g.pulsar, "pulsar", "pulsar://localhost:6650")
	def(&g.output, "o", "table")
	fs.Lookup("url").Usage = "admin REST `URL` of the broker (http:// or https://)"
	fs.Lookup("kafka").Usage = "Kafka bootstrap `host:port`s, comma-separated"
	fs.Lookup("pulsar").Usage = "Pulsar service `URL` (pulsar:// or pulsar+ssl://)"
	fs.Lookup("o").Usage = "output `format`: table or json"
	fs.StringVar(&g.token, "token", g.token, "auth token (a `JWT`): admin Bearer, Pulsar token, Kafka SASL/PLAIN \"token:JWT\"; @FILE reads it from FILE")
	fs.StringVar(&g.tlsCA, "tls-ca", g.tlsCA, "PEM `file` of CAs to trust for https://, pulsar+ssl:// and --kafka-tls")
	fs.StringVar(&g.tlsCert, "tls-cert", g.tlsCert, "client certificate PEM `file` (mutual TLS)")
	fs.StringVar(&g.tlsKey, "tls-key", g.tlsKey, "client key PEM `file` (mutual TLS)")
	fs.BoolVar(&g.tlsInsecure, "tls-insecure", g.tlsInsecure, "do not verify the broker's certificate")
	fs.BoolVar(&g.kafkaTLS, "kafka-tls", g.kafkaTLS, "connect to Kafka over TLS (the broker's kafka-tls-addr)")
	if g.timeout == 0 {
		g.timeout = 30 * time.Second
	}
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "deadline of each request to the broker (admin call, Kafka or Pulsar operation)")
}

func (g *globals) validate() error {
	if err := oneOf("o", g.output, "table", "json"); err != nil {
		return err
	}
	if (g.tlsCert == "") != (g.tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	u, err := url.Parse(g.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("--url %q: want http://host:port or https://host:port", g.url)
	}
	if !strings.HasPrefix(g.pulsar, "pulsar://") && !strings.HasPrefix(g.pulsar, "pulsar+ssl://") {
		return usagef("--pulsar %q: want pulsar://host:port or pulsar+ssl://host:port", g.pulsar)
	}
	if strings.HasPrefix(g.token, "@") {
		b, err := os.ReadFile(g.token[1:])
		if err != nil {
			return fmt.Errorf("--token: %w", err)
		}
		g.token = strings.TrimSpace(string(b))
	}
	return nil
}

// env is what a running command has: its writers, the global settings,
// and clients made on first use and closed when the command ends.
type env struct {
	ctx     context.Context
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	globals globals

	kgoClient    *kgo.Client
	pulsarMu     sync.Mutex // pulsarShared: perf's goroutines share one client
	pulsarClient pulsar.Client
}

func (e *env) close() {
	if e.kgoClient != nil {
		e.kgoClient.Close()
	}
	if e.pulsarClient != nil {
		e.pulsarClient.Close()
	}
}

func (e *env) json() bool { return e.globals.output == "json" }

func (e *env) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{InsecureSkipVerify: e.globals.tlsInsecure}
	if e.globals.tlsCA != "" {
		pem, err := os.ReadFile(e.globals.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", e.globals.tlsCA)
		}
		cfg.RootCAs = pool
	}
	if e.globals.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(e.globals.tlsCert, e.globals.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// kafkaOpts are the options every Kafka client of a command starts from.
func (e *env) kafkaOpts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(e.globals.kafka, ",")...), kgo.ClientID("kopernik-cli"),
		kgo.RetryTimeout(e.globals.timeout), kgo.RequestRetries(3)}
	if e.globals.kafkaTLS {
		cfg, err := e.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if e.globals.token != "" {
		// KoP's convention (docs/security.md): the namespace as user, the
		// token as password with a "token:" prefix.
		opts = append(opts, kgo.SASL(plain.Auth{User: "public/default", Pass: "token:" + e.globals.token}.AsMechanism()))
	}
	return opts, nil
}

// kafka returns the command's shared Kafka client (admin and plain reads).
func (e *env) kafka() (*kgo.Client, error) {
	if e.kgoClient != nil {
		return e.kgoClient, nil
	}
	opts, err := e.kafkaOpts()
	if err != nil {
		return nil, err
	}
	c, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	e.kgoClient = c
	return c, nil
}

func (e *env) kadm() (*kadm.Client, error) {
	c, err := e.kafka()
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(c), nil
}

// pulsar returns the command's Pulsar client.
func (e *env) pulsar() (pulsar.Client, error) {
	if e.pulsarClient != nil {
		return e.pulsarClient, nil
	}
	opts := pulsar.ClientOptions{URL: e.globals.pulsar, OperationTimeout: e.globals.timeout,
		ConnectionTimeout: 10 * time.Second, Logger: plog.DefaultNopLogger()}
	if e.globals.token != "" {
		opts.Authentication = pulsar.NewAuthenticationToken(e.globals.token)
	}
	opts.TLSTrustCertsFilePath = e.globals.tlsCA
	opts.TLSAllowInsecureConnection = e.globals.tlsInsecure
	if e.globals.tlsCert != "" {
		opts.Authentication = pulsar.NewAuthenticationTLS(e.globals.tlsCert, e.globals.tlsKey)
		if e.globals.token != "" {
			return nil, usagef("--token and --tls-cert: Pulsar takes one authentication; give one")
		}
	}
	c, err := pulsar.NewClient(opts)
	if err != nil {
		return nil, fmt.Errorf("pulsar client: %w", err)
	}
	e.pulsarClient = c
	return c, nil
}

// apiError is a non-2xx answer of the admin API.
type apiError struct {
	status int
	reason string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.reason, e.status)
}

func isNotFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.status == http.StatusNotFound
}

// admin calls the admin REST API: method on path (under --url), body
// marshalled as JSON when not nil, the answer decoded into out when not
// nil. A non-2xx answer is an *apiError carrying Pulsar's "reason".
func (e *env) admin(method, path string, body, out any) error {
	cfg, err := e.tlsConfig()
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: e.globals.timeout, Transport: &http.Transport{TLSClientConfig: cfg,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
	defer client.CloseIdleConnections()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, strings.TrimRight(e.globals.url, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.globals.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.globals.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s: %w", e.globals.url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin API: reading answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var r struct {
			Reason string `json:"reason"`
		}
		if json.Unmarshal(raw, &r) != nil || r.Reason == "" {
			r.Reason = strings.TrimSpace(string(raw))
			if r.Reason == "" {
				r.Reason = http.StatusText(resp.StatusCode)
			}
		}
		return &apiError{status: resp.StatusCode, reason: r.Reason}
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("admin API %s %s: decoding answer: %w", method, path, err)
		}
	}
	return nil
}

// topicName parses a topic argument: a Kafka-style short name (in
// public/default), tenant/namespace/topic, or a full persistent:// name.
func topicName(s string) (broker.TopicName, error) {
	n, err := broker.ParseTopicName(s, "public", "default")
	if err != nil {
		return n, usagef("topic %q: want NAME, TENANT/NAMESPACE/NAME or persistent://TENANT/NAMESPACE/NAME", s)
	}
	return n, nil
}

// restPath is the admin API path of a topic: /admin/v2/persistent/t/ns/x.
func restPath(n broker.TopicName) string {
	return "/admin/v2/" + n.Domain + "/" + url.PathEscape(n.Tenant) + "/" + url.PathEscape(n.Namespace) + "/" + url.PathEscape(n.Local)
}

// namespaceArg checks a TENANT/NAMESPACE argument.
func namespaceArg(s string) (string, error) {
	t, ns, ok := strings.Cut(s, "/")
	if !ok || t == "" || ns == "" || strings.Contains(ns, "/") {
		return "", usagef("namespace %q: want TENANT/NAMESPACE", s)
	}
	return url.PathEscape(t) + "/" + url.PathEscape(ns), nil
}

// emit prints v as JSON (-o json) or as a table of header and rows.
func (e *env) emit(v any, header []string, rows [][]string) error {
	if e.json() {
		return writeJSON(e.stdout, v)
	}
	return writeTable(e.stdout, header, rows)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeJSONCompact(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header != nil {
		fmt.Fprintln(tw, strings.Join(header, "\t"))
	}
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// done prints a one-line confirmation of a change (table mode) or
// {"ok": true, ...} (JSON mode).
func (e *env) done(msg string, fields map[string]any) error {
	if e.json() {
		out := map[string]any{"ok": true}
		for k, v := range fields {
			out[k] = v
		}
		return writeJSON(e.stdout, out)
	}
	_, err := fmt.Fprintln(e.stdout, msg)
	return err
}

// offsets answers a Kafka topic's start and end offsets per partition; an
// unknown topic is "topic X not found".
func (e *env) offsets(ctx context.Context, topic string) (starts, ends kadm.ListedOffsets, err error) {
	adm, err := e.kadm()
	if err != nil {
		return nil, nil, err
	}
	starts, err = adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err == nil {
		ends, err = adm.ListEndOffsets(ctx, topic)
	}
	if err == nil {
		err = ends.Error()
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return nil, nil, fmt.Errorf("topic %s not found", topic)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	return starts, ends, nil
}
