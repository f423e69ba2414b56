package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol"
)

// lineProtocol is a tiny test protocol: each line "topic payload" is
// appended to topic through the broker service and answered with its offset.
// It exercises the handler framework end to end (registry, config section,
// listener, broker access, shutdown) without depending on the real handlers.
type lineProtocol struct {
	env   protocol.Env
	cfg   *lineConfig
	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

type lineConfig struct {
	Greeting string `yaml:"greeting"`
}

func (c *lineConfig) Validate() error {
	if c.Greeting == "" {
		return io.ErrUnexpectedEOF
	}
	return nil
}

func init() {
	protocol.Register(protocol.Registration{
		Name: "line", DefaultAddr: "127.0.0.1:0",
		NewConfig: func() any { return &lineConfig{Greeting: "hello"} },
		New: func(env protocol.Env, cfg any) (protocol.Handler, error) {
			return &lineProtocol{env: env, cfg: cfg.(*lineConfig), conns: map[net.Conn]struct{}{}}, nil
		},
	})
}

func (l *lineProtocol) Serve(ctx context.Context, ln net.Listener) error {
	l.mu.Lock()
	l.ln = ln
	l.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		l.mu.Lock()
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer c.Close()
			io.WriteString(c, l.cfg.Greeting+"\n")
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				topic, payload, _ := strings.Cut(sc.Text(), " ")
				name, err := broker.ParseTopicName(topic, "public", "default")
				if err != nil {
					io.WriteString(c, "ERR "+err.Error()+"\n")
					continue
				}
				p, err := l.env.Broker.OpenPartition(ctx, name, true)
				if err != nil {
					io.WriteString(c, "ERR "+err.Error()+"\n")
					continue
				}
				res, err := p.Append(ctx, broker.AppendRequest{Format: broker.FormatKafka, MsgCount: 1, Data: []byte(payload)})
				if err != nil {
					io.WriteString(c, "ERR "+err.Error()+"\n")
					continue
				}
				io.WriteString(c, "OK "+itoa(res.Entry.FirstIndex)+"\n")
			}
		}()
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

func (l *lineProtocol) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.ln != nil {
		l.ln.Close()
	}
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	return nil
}

func testConfig(t *testing.T) *Config {
	t.Helper()
	cfg, err := Load("", nil, map[string]string{
		"data-dir": t.TempDir(), "http-addr": "127.0.0.1:0", "protocols": "line",
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestStartServeHealthClose(t *testing.T) {
	cfg := testConfig(t)
	s, err := Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	resp, err := http.Get("http://" + s.Addr("http").String() + "/admin/v2/brokers/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("health: %d %q", resp.StatusCode, body)
	}

	c, err := net.Dial("tcp", s.Addr("line").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if hello, _ := r.ReadString('\n'); hello != "hello\n" {
		t.Fatalf("greeting %q", hello)
	}
	for i, want := range []string{"OK 0\n", "OK 1\n"} {
		io.WriteString(c, "t1 msg\n")
		got, _ := r.ReadString('\n')
		if got != want {
			t.Fatalf("append %d: %q", i, got)
		}
	}
	io.WriteString(c, "bad/name msg\n")
	if got, _ := r.ReadString('\n'); !strings.HasPrefix(got, "ERR ") {
		t.Fatalf("bad name: %q", got)
	}

	resp, err = http.Get("http://" + s.Addr("http").String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "go_goroutines") {
		t.Fatalf("metrics missing go collector")
	}

	// A second broker on the same data dir is refused.
	if _, err := Start(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second start on same dir: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "LOCK")); err != nil {
		t.Fatal(err)
	}
}

// TestHTTPLookupAdvertises: the admin API's lookup answers the Pulsar
// handler's advertised addresses, as its binary LOOKUP does.
func TestHTTPLookupAdvertises(t *testing.T) {
	certs := newTestCerts(t)
	s := startServer(t, map[string]string{"pulsar-advertised-addr": "broker.example:6650",
		"pulsar-advertised-tls-addr": "broker.example:6651", "pulsar-tls-addr": "127.0.0.1:0",
		"tls-cert-file": certs.certFile, "tls-key-file": certs.keyFile})
	resp, err := http.Get("http://" + s.Addr("http").String() + "/lookup/v2/topic/persistent/public/default/t")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct{ BrokerURL, BrokerURLTLS string }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.BrokerURL != "pulsar://broker.example:6650" || got.BrokerURLTLS != "pulsar+ssl://broker.example:6651" {
		t.Errorf("lookup: %+v", got)
	}
}
