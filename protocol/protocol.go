// Package protocol is the protocol-handler framework: a handler serves one
// wire protocol on one listener, using only the broker's Service. Handlers
// register themselves at init time (compiled in, no plugin loading); the
// server's `protocols` setting enables them by name.
package protocol

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

// Handler serves one protocol.
type Handler interface {
	// Serve accepts connections on ln until ln is closed or Close is called;
	// it then returns nil. ctx carries values only (logging), not the lifetime.
	Serve(ctx context.Context, ln net.Listener) error
	// Close stops accepting, closes live connections after in-flight
	// requests finish (bounded by ctx), and waits for Serve to return.
	Close(ctx context.Context) error
}

// Advertiser is implemented by handlers that tell clients where to connect
// (Pulsar's LOOKUP): the server's HTTP lookup must answer the same.
type Advertiser interface {
	// AdvertisedAddr is the host:port clients are told for listener ln
	// (which may be a TLS listener; see IsTLS).
	AdvertisedAddr(ln net.Listener) string
}

// Env is what a handler gets from the server.
type Env struct {
	Broker broker.Service
	Logger *slog.Logger
	// Metrics registers the handler's Prometheus collectors.
	Metrics prometheus.Registerer
	// Auth authenticates clients; nil when authentication is off (the
	// default), in which case every client is accepted as before.
	Auth *auth.Authenticator
	// Authz decides what authenticated roles may do; nil (authentication
	// or authorization off) allows everything. Handlers check it on every
	// request touching a topic, subscription/group or admin operation.
	Authz *auth.Authorizer
	// DataDir is where the broker keeps its data (empty: in memory); Kafka
	// DescribeLogDirs reports it as the log directory.
	DataDir string
}

// Registration describes a compiled-in handler.
type Registration struct {
	// Name is the protocol's name in configuration ("kafka", "pulsar").
	Name string
	// DefaultAddr is the default listen address (e.g. "localhost:9092").
	DefaultAddr string
	// NewConfig returns a pointer to the handler's settings with defaults
	// filled in. The server decodes the config file's section named Name
	// into it (YAML, unknown keys rejected) and then calls Validate if the
	// value has a `Validate() error` method.
	NewConfig func() any
	// New builds the handler from its settings (the value NewConfig returned).
	New func(env Env, cfg any) (Handler, error)
}

var registry struct {
	sync.Mutex
	m map[string]Registration
}

// Register adds a handler; it panics on a duplicate or incomplete registration
// (a programming error caught at start-up).
func Register(r Registration) {
	if r.Name == "" || r.New == nil || r.NewConfig == nil || r.DefaultAddr == "" {
		panic("protocol: incomplete registration " + r.Name)
	}
	registry.Lock()
	defer registry.Unlock()
	if registry.m == nil {
		registry.m = make(map[string]Registration)
	}
	if _, dup := registry.m[r.Name]; dup {
		panic("protocol: duplicate registration " + r.Name)
	}
	registry.m[r.Name] = r
}

// Lookup returns the registration called name.
func Lookup(name string) (Registration, error) {
	registry.Lock()
	defer registry.Unlock()
	r, ok := registry.m[name]
	if !ok {
		return r, fmt.Errorf("protocol: unknown protocol %q (compiled in: %v)", name, namesLocked())
	}
	return r, nil
}

// Names lists the compiled-in protocols, sorted.
func Names() []string {
	registry.Lock()
	defer registry.Unlock()
	return namesLocked()
}

func namesLocked() []string {
	out := make([]string, 0, len(registry.m))
	for n := range registry.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// DialAddr is a listener address as a client on this machine dials it: a
// wildcard host (0.0.0.0, ::) becomes localhost.
func DialAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
