// Package etcdtest starts a real etcd server in-process (go.etcd.io/etcd/server/v3/embed)
// for tests: one member on 127.0.0.1 with free ports and its own data dir.
//
// A package whose tests share one server starts it in TestMain with Main;
// a test that stops and restarts etcd starts its own with Start.
//
// ETCDTEST_ENDPOINTS (comma-separated client URLs) makes Shared use an
// etcd running elsewhere instead, e.g. Debian's etcd-server 3.4, to run the
// same tests against another etcd version; tests that stop etcd still start
// their own.
package etcdtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Server is one embedded etcd member. Stop and Restart keep its data dir and
// ports, as an operator restarting etcd would.
type Server struct {
	external  []string // ETCDTEST_ENDPOINTS: not ours, Stop and Restart refused
	dir       string
	ownDir    bool // dir was made by New and is removed by Remove
	clientURL url.URL
	peerURL   url.URL

	mu struct {
		sync.Mutex
		e *embed.Etcd
	}
}

// New starts a member with its data in dir ("" makes a temp dir that Remove
// deletes).
func New(dir string) (*Server, error) {
	s := &Server{dir: dir}
	if dir == "" {
		d, err := os.MkdirTemp("", "etcdtest-")
		if err != nil {
			return nil, err
		}
		s.dir, s.ownDir = d, true
	}
	client, err := freePort()
	if err != nil {
		return nil, err
	}
	peer, err := freePort()
	if err != nil {
		return nil, err
	}
	s.clientURL = url.URL{Scheme: "http", Host: client}
	s.peerURL = url.URL{Scheme: "http", Host: peer}
	if err := s.Restart(); err != nil {
		s.Remove()
		return nil, err
	}
	return s, nil
}

// Start starts a member for one test; the test's cleanup stops it and
// removes its data.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := New(tb.TempDir())
	if err != nil {
		tb.Fatalf("etcdtest: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// freePort picks a free loopback port. etcd needs the same ports across a
// restart (clients hold the endpoint), so port 0 cannot be left to etcd.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Endpoints are the client URLs, for clientv3 or metadata.OpenEtcd.
func (s *Server) Endpoints() []string {
	if s.external != nil {
		return s.external
	}
	return []string{s.clientURL.String()}
}

// URL is the kopernik setting selecting this server: "etcd:http://127.0.0.1:port".
func (s *Server) URL() string { return "etcd:" + strings.Join(s.Endpoints(), ",") }

// Dir is the member's data dir.
func (s *Server) Dir() string { return s.dir }

// Restart starts the member again on the same data dir and ports after
// Stop (or for the first time, from New). It returns once the member
// serves clients.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.e != nil || s.external != nil {
		return errors.New("etcdtest: already running")
	}
	cfg := embed.NewConfig()
	cfg.Name = "etcdtest"
	cfg.Dir = s.dir
	cfg.ListenClientUrls = []url.URL{s.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{s.clientURL}
	cfg.ListenPeerUrls = []url.URL{s.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{s.peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// One member elects itself; keep its election quick.
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	var e *embed.Etcd
	var err error
	// A port freed by Stop may linger for a moment: retry the bind briefly.
	for range 50 {
		e, err = embed.StartEtcd(cfg)
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("etcdtest: start etcd in %s: %w", s.dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcdtest: etcd failed: %w", err)
	case <-time.After(30 * time.Second):
		e.Close()
		return errors.New("etcdtest: etcd not ready after 30s")
	}
	s.mu.e = e
	return nil
}

// Stop closes the member (embed's Close: clients see connection refused);
// its data stays for Restart. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.e != nil {
		s.mu.e.Close()
		s.mu.e = nil
	}
}

// Remove stops the member and deletes a data dir that New created.
func (s *Server) Remove() {
	s.Stop()
	if s.ownDir && s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

var (
	shared   *Server
	sharedID atomic.Int64
)

// Main runs a test package's tests with one shared member (see Shared) and
// removes it afterwards: `func TestMain(m *testing.M) { os.Exit(etcdtest.Main(m)) }`.
// The member starts on the first Shared call, so packages whose selected
// tests need no etcd start none.
func Main(m *testing.M) int {
	code := m.Run()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		shared.Remove()
		shared = nil
	}
	return code
}

var sharedMu sync.Mutex

// Shared returns the package's shared member, started on first use (the
// package's TestMain must call Main, which removes it), and a key prefix
// unique to this call, so that tests sharing the member do not see each
// other's keys (pass it to metadata.WithEtcdPrefix).
func Shared(tb testing.TB) (*Server, string) {
	tb.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && os.Getenv("ETCDTEST_ENDPOINTS") != "" {
		shared = &Server{external: strings.Split(os.Getenv("ETCDTEST_ENDPOINTS"), ",")}
	}
	if shared == nil {
		s, err := New("")
		if err != nil {
			tb.Fatalf("etcdtest: %v", err)
		}
		shared = s
	}
	// The process id keeps runs against one external etcd apart.
	return shared, fmt.Sprintf("/test-%d-%d", os.Getpid(), sharedID.Add(1))
}
