package pulsar

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/convert"
	"github.com/kopernik-io/kopernik/datadir"
	"github.com/kopernik-io/kopernik/managedledger/compact"
	"github.com/kopernik-io/kopernik/protocol"
	"github.com/kopernik-io/kopernik/segment"
)

// server is an in-process broker with the Pulsar handler on loopback.
type server struct {
	t       testing.TB
	storage *datadir.Storage
	broker  *broker.Broker
	h       *Handler
	ln      net.Listener
	url     string
	cfg     *Config
	dir     string // data directory of a durable server
	// env, when set, adjusts the handler's Env (auth, authorization).
	env func(*protocol.Env)
	// compactor keeps compacted views in dir/compacted (in memory: memFS).
	compactor *compact.Compactor
	memFS     *segment.MemFS
}

func testLogger() *slog.Logger {
	if os.Getenv("PULSAR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func startServer(t testing.TB) *server { return startServerWith(t, nil) }

// startServerWith lets the test adjust the handler's configuration.
func startServerWith(t testing.TB, adjust func(*Config)) *server {
	return startServerIn(t, "", adjust)
}

// startDurableServer is startServer over a data directory (bbolt store and
// ledger files), so that restart reopens everything from disk.
func startDurableServer(t testing.TB) *server { return startServerIn(t, t.TempDir(), nil) }

func startServerIn(t testing.TB, dir string, adjust func(*Config)) *server {
	return startServerEnv(t, dir, adjust, nil)
}

// startServerEnv is startServerIn with env adjusting the handler's Env.
func startServerEnv(t testing.TB, dir string, adjust func(*Config), env func(*protocol.Env)) *server {
	t.Helper()
	s := &server{t: t, cfg: DefaultConfig(), dir: dir, env: env}
	if adjust != nil {
		adjust(s.cfg)
	}
	s.openStorage()
	s.start("127.0.0.1:0")
	t.Cleanup(func() {
		s.stop()
		s.storage.Close()
	})
	return s
}

func (s *server) openStorage() {
	st, err := datadir.Open(s.dir, testLogger())
	if err != nil {
		s.t.Fatal(err)
	}
	s.storage = st
}

// restart stops handler and broker, closes and reopens the storage of a
// durable server from disk, and serves again on the same address.
func (s *server) restart() {
	s.t.Helper()
	addr := s.ln.Addr().String()
	s.stop()
	if s.dir == "" {
		s.t.Fatal("restart needs startDurableServer")
	}
	s.storage.Close()
	s.openStorage()
	s.start(addr)
}

// start opens a broker on the server's store and ledgers and serves on addr.
func (s *server) start(addr string) {
	s.t.Helper()
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
		s.t.Fatal(err)
	}
	s.compactor = c
	b, err := broker.New(ctx, broker.Options{Store: s.storage.Store, Ledgers: s.storage.Ledgers, Logger: testLogger(), Compactor: c, CompactionInterval: -1})
	if err != nil {
		s.t.Fatal(err)
	}
	env := protocol.Env{Broker: b, Logger: testLogger()}
	if s.env != nil {
		s.env(&env)
	}
	h, err := New(env, s.cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.broker, s.h, s.ln = b, h, ln
	s.url = "pulsar://" + ln.Addr().String()
	go h.Serve(ctx, ln)
}

// stop closes the handler, then the broker.
func (s *server) stop() {
	if s.h == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.h.Close(ctx)
	s.broker.Close()
	s.compactor.Close()
	s.h = nil
}

func (s *server) client(t testing.TB) pulsar.Client {
	t.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{
		URL: s.url, OperationTimeout: 10 * time.Second, ConnectionTimeout: 5 * time.Second,
		Logger: plog.DefaultNopLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

var topicSeq atomic.Int64

func newTopic(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", strings.ToLower(prefix), time.Now().UnixNano()%1e6, topicSeq.Add(1))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func produce(t testing.TB, p pulsar.Producer, n int, prefix string) []pulsar.MessageID {
	t.Helper()
	ids := make([]pulsar.MessageID, n)
	errs := make(chan error, n)
	for i := range n {
		p.SendAsync(context.Background(), &pulsar.ProducerMessage{
			Payload: fmt.Appendf(nil, "%s-%d", prefix, i), Key: fmt.Sprintf("k%d", i%7),
		}, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err == nil {
				ids[i] = id
			}
			errs <- err
		})
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func receive(t testing.TB, c pulsar.Consumer, n int, ack bool) []pulsar.Message {
	t.Helper()
	ctx := ctxT(t)
	out := make([]pulsar.Message, 0, n)
	for len(out) < n {
		m, err := c.Receive(ctx)
		if err != nil {
			t.Fatalf("received %d of %d: %v", len(out), n, err)
		}
		if ack {
			if err := c.Ack(m); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, m)
	}
	return out
}

// expectNone checks that nothing arrives within d.
func expectNone(t testing.TB, c pulsar.Consumer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if m, err := c.Receive(ctx); err == nil {
		t.Fatalf("unexpected message %q (%v)", m.Payload(), m.ID())
	}
}

func payloads(ms []pulsar.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Payload())
	}
	return out
}

func contextWithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

func brokerPolicies() broker.Policies { return broker.Policies{} }

func mustName(t testing.TB, s *server, topic string) broker.TopicName {
	t.Helper()
	n, err := s.h.topicName(topic)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func quietLogger() plog.Logger { return plog.DefaultNopLogger() }
