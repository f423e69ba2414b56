package kafka

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/convert"
	"github.com/kopernik-io/kopernik/datadir"
	"github.com/kopernik-io/kopernik/managedledger/compact"
	"github.com/kopernik-io/kopernik/protocol"
	"github.com/kopernik-io/kopernik/segment"
)

// testServer is a broker with the Kafka handler on 127.0.0.1:0.
type testServer struct {
	t       testing.TB
	dir     string // data directory; "" keeps everything in memory
	storage *datadir.Storage
	broker  *broker.Broker
	h       *Handler
	addr    string
	served  chan error
	// compactor keeps compacted views in dir/compacted (in memory: memFS,
	// kept across restarts).
	compactor *compact.Compactor
	memFS     *segment.MemFS
}

func testLogger() *slog.Logger {
	if os.Getenv("KAFKA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer starts a fresh broker and handler on in-memory storage;
// cleanup closes them.
func startServer(t testing.TB, mod ...func(*Config)) *testServer {
	return startServerIn(t, "", mod...)
}

// startDurableServer is startServer over a data directory (bbolt store and
// ledger files), so that restart can reopen everything from disk.
func startDurableServer(t testing.TB, mod ...func(*Config)) *testServer {
	return startServerIn(t, t.TempDir(), mod...)
}

func startServerIn(t testing.TB, dir string, mod ...func(*Config)) *testServer {
	t.Helper()
	s := &testServer{t: t, dir: dir}
	s.openStorage()
	s.start(mod...)
	t.Cleanup(func() {
		s.stop()
		s.storage.Close()
	})
	return s
}

func (s *testServer) openStorage() {
	st, err := datadir.Open(s.dir, testLogger())
	if err != nil {
		s.t.Fatal(err)
	}
	s.storage = st
}

// restart stops everything, closes the storage of a durable server, and
// starts again from what is on disk.
func (s *testServer) restart(mod ...func(*Config)) {
	s.stop()
	if s.dir == "" {
		s.t.Fatal("restart needs startDurableServer")
	}
	s.storage.Close()
	s.openStorage()
	s.start(mod...)
}

// start (re)opens the broker and the handler on the server's store and factory.
func (s *testServer) start(mod ...func(*Config)) {
	t := s.t
	t.Helper()
	ctx := context.Background()
	copts := compact.Options{Dir: filepath.Join(s.dir, "compacted"), Store: s.storage.Store, Codec: convert.CompactionCodec{}, Logger: testLogger()}
	if s.dir == "" {
		if s.memFS == nil {
			s.memFS = segment.NewMemFS()
		}
		copts.Dir, copts.FS = "/compacted", s.memFS
	}
	c, err := compact.New(copts)
	if err != nil {
		t.Fatal(err)
	}
	s.compactor = c
	b, err := broker.New(ctx, broker.Options{Store: s.storage.Store, Ledgers: s.storage.Ledgers, Logger: testLogger(), Compactor: c, CompactionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	// Tests rebalance fast; TestGroupInitialRebalanceDelay checks the delay.
	cfg.GroupInitialRebalanceDelay = 100 * time.Millisecond
	for _, m := range mod {
		m(&cfg)
	}
	h, err := New(protocol.Env{Broker: b, Logger: testLogger(), DataDir: s.dir}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A restart listens on the address clients already know.
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	for i := 0; ; i++ { // the old address may take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.broker, s.h, s.addr = b, h, ln.Addr().String()
	s.served = make(chan error, 1)
	go func() { s.served <- h.Serve(ctx, ln) }()
}

// stop closes the handler, then the broker.
func (s *testServer) stop() {
	if s.h == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.h.Close(ctx); err != nil {
		s.t.Errorf("handler close: %v", err)
	}
	if err := <-s.served; err != nil {
		s.t.Errorf("serve: %v", err)
	}
	s.broker.Close()
	s.compactor.Close()
	s.h = nil
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkFor polls fn until it returns nil or the timeout passes.
func checkFor(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
