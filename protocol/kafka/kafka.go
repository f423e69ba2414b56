// Package kafka is kopernik's Kafka wire-protocol handler: Kafka clients
// produce, fetch and administer topics unmodified, on the same topics the
// Pulsar handler serves.
//
// Layout: one file per API key (00_produce.go, 01_fetch.go, ...). Each file
// opens with the versions it serves and registers its handler in the api
// registry (registry.go), which also builds the ApiVersions answer, so that
// nothing is advertised that is not served. conn.go owns framing and
// per-connection ordering, errors.go translates broker errors to Kafka error
// codes (the only place that does), names.go maps Kafka topic names to
// kopernik topics.
//
// Data model: a Kafka topic "t" is persistent://<tenant>/<namespace>/t;
// partition N is the topic "t-partition-N" of the partitioned topic, and a
// non-partitioned topic shows as one partition (partition 0 is the topic
// itself). A Kafka offset is the partition's message index. Produced
// RecordBatches are stored byte for byte; Fetch rewrites only the base offset.
//
// Locks: Handler.mu guards the listener and the connection set and is never
// held while calling out. A fetchSession.mu is held for a whole Fetch
// (sessions serve one request at a time); fetchSessions.mu is never held
// while waiting for a session's lock (eviction only TryLocks). Policy
// read-modify-writes take no lock: they are the broker's compare-and-swap
// updates. budget.mu is a leaf.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol"
)

func init() {
	protocol.Register(protocol.Registration{
		Name:        "kafka",
		DefaultAddr: "localhost:9092",
		NewConfig:   func() any { c := DefaultConfig(); return &c },
		New: func(env protocol.Env, cfg any) (protocol.Handler, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("kafka: config is %T, want *kafka.Config", cfg)
			}
			return New(env, *c)
		},
	})
}

// Config is the Kafka handler's section of the server configuration.
type Config struct {
	// Tenant holds the topics Kafka clients name without a tenant
	// (default "public").
	Tenant string `yaml:"tenant"`
	// Namespace holds the topics Kafka clients name without a namespace
	// (default "default").
	Namespace string `yaml:"namespace"`
	// AdvertisedAddr is the host:port clients are told to connect to in
	// Metadata and DescribeCluster (Kafka advertised.listeners). Default: the
	// listener's actual address ("localhost" replaces a wildcard host).
	AdvertisedAddr string `yaml:"advertised-addr"`
	// AdvertisedTLSAddr is the same for connections that came in on the TLS
	// listener (server setting kafka-tls-addr; Kafka advertised.listeners'
	// SSL/SASL_SSL entry). Default: the TLS listener's actual address.
	AdvertisedTLSAddr string `yaml:"advertised-tls-addr"`
	// AutoCreateTopics lets Metadata and Produce create missing topics
	// (Kafka auto.create.topics.enable, default true). The namespace's
	// AutoTopicCreation policy must allow it too.
	AutoCreateTopics bool `yaml:"auto-create-topics"`
	// DefaultPartitions is the partition count of topics auto-created by
	// Kafka clients and of CreateTopics with num_partitions -1 (Kafka
	// num.partitions, default 1). Kafka-created topics are always
	// partitioned topics.
	DefaultPartitions int `yaml:"default-partitions"`
	// MaxRequestBytes is the largest request frame accepted; larger frames
	// close the connection before anything is allocated (Kafka
	// socket.request.max.bytes, default 100 MiB).
	MaxRequestBytes int `yaml:"max-request-bytes"`
	// IdleTimeout closes connections that send nothing for this long
	// (Kafka connections.max.idle.ms, default 10m).
	IdleTimeout time.Duration `yaml:"idle-timeout"`
	// NodeID is this broker's id in Metadata (Kafka node.id / broker.id,
	// default 0).
	NodeID int32 `yaml:"node-id"`
	// InternalSecret (cluster mode, set by the server) authenticates the
	// requests brokers forward to each other (cluster_groups.go).
	InternalSecret string `yaml:"-"`
	// GroupInitialRebalanceDelay is how long the first rebalance of an
	// empty consumer group waits for more members to join (Kafka
	// group.initial.rebalance.delay.ms, default 3s; 0 completes at once).
	GroupInitialRebalanceDelay time.Duration `yaml:"group-initial-rebalance-delay"`
	// TransactionVersion is the finalized level of Kafka's
	// transaction.version feature that ApiVersions advertises (default 2):
	// 2 serves transactions v2 (KIP-890 part 2: Produce v12 adds
	// partitions to the transaction, TxnOffsetCommit v5 its group, EndTxn
	// v5 bumps the epoch), which Kafka 4 clients then use; 1 keeps them on
	// v1 (AddPartitionsToTxn, AddOffsetsToTxn, one epoch per producer
	// session), as a Kafka 4 cluster that was not upgraded. Kafka's
	// kafka-features --upgrade --feature transaction.version=N.
	TransactionVersion int `yaml:"transaction-version"`
	// SASLTimeout closes a connection that has not completed SASL
	// authentication this long after it opened, when authentication is on
	// (default 30s; no Kafka equivalent, connections.max.idle.ms plays it).
	SASLTimeout time.Duration `yaml:"sasl-timeout"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Tenant:            "public",
		Namespace:         "default",
		AutoCreateTopics:  true,
		DefaultPartitions: 1,
		MaxRequestBytes:   100 << 20,
		IdleTimeout:       10 * time.Minute,

		GroupInitialRebalanceDelay: 3 * time.Second,
		SASLTimeout:                30 * time.Second,
		TransactionVersion:         2,
	}
}

// Validate reports every problem in c at once.
func (c Config) Validate() error {
	var errs []error
	if err := broker.ValidateSegment("tenant", c.Tenant); err != nil {
		errs = append(errs, fmt.Errorf("tenant: %w", err))
	}
	if err := broker.ValidateSegment("namespace", c.Namespace); err != nil {
		errs = append(errs, fmt.Errorf("namespace: %w", err))
	}
	if c.AdvertisedAddr != "" {
		host, port, err := net.SplitHostPort(c.AdvertisedAddr)
		if err != nil {
			errs = append(errs, fmt.Errorf("advertised-addr %q: %w", c.AdvertisedAddr, err))
		} else if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 || host == "" {
			errs = append(errs, fmt.Errorf("advertised-addr %q: want host:port with a port in 1..65535", c.AdvertisedAddr))
		}
	}
	if c.AdvertisedTLSAddr != "" {
		if _, _, err := advertisedAddr(c.AdvertisedTLSAddr, nil); err != nil {
			errs = append(errs, fmt.Errorf("advertised-tls-addr: %w", err))
		}
	}
	if c.TransactionVersion < 1 || c.TransactionVersion > 2 {
		errs = append(errs, fmt.Errorf("transaction-version %d must be 1 or 2", c.TransactionVersion))
	}
	if c.DefaultPartitions < 1 {
		errs = append(errs, fmt.Errorf("default-partitions %d must be >= 1", c.DefaultPartitions))
	}
	if c.MaxRequestBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("max-request-bytes %d must be >= 1024", c.MaxRequestBytes))
	}
	if c.GroupInitialRebalanceDelay < 0 {
		errs = append(errs, fmt.Errorf("group-initial-rebalance-delay %s must be >= 0", c.GroupInitialRebalanceDelay))
	}
	if c.SASLTimeout <= 0 {
		errs = append(errs, fmt.Errorf("sasl-timeout %s must be > 0", c.SASLTimeout))
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("idle-timeout %s must be > 0", c.IdleTimeout))
	}
	if c.NodeID < 0 {
		errs = append(errs, fmt.Errorf("node-id %d must be >= 0", c.NodeID))
	}
	if len(errs) > 0 {
		return fmt.Errorf("kafka: invalid configuration: %w", errors.Join(errs...))
	}
	return nil
}

// Handler serves the Kafka protocol on one or more listeners (plaintext
// and TLS); each connection advertises the address of its own listener.
type Handler struct {
	cfg   Config
	svc   broker.Service
	log   *slog.Logger
	pids  *producerIDs
	fs    *fetchSessions
	m     *metrics
	auth  *auth.Authenticator // nil: authentication off
	authz *auth.Authorizer    // nil: every client may do everything (authz.go)
	// dataDir is the broker's data directory (DescribeLogDirs); "" in memory.
	dataDir string

	// closing is closed by Close: long polls return early and readers stop.
	closing   chan struct{}
	closeOnce sync.Once
	conns     sync.WaitGroup
	serves    sync.WaitGroup // one per running Serve

	mu struct {
		sync.Mutex
		lns   map[net.Listener]struct{}
		conns map[*conn]struct{}
	}
	explain explainer // logs the causes of UNKNOWN_SERVER_ERROR and KAFKA_STORAGE_ERROR
}

// New builds a handler; Serve starts it.
func New(env protocol.Env, cfg Config) (*Handler, error) {
	if env.Broker == nil {
		return nil, errors.New("kafka: Env.Broker is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	h := &Handler{
		cfg:     cfg,
		svc:     env.Broker,
		log:     log.With("protocol", "kafka"),
		pids:    newProducerIDs(),
		fs:      newFetchSessions(),
		m:       newMetrics(env.Metrics),
		auth:    env.Auth,
		authz:   env.Authz,
		dataDir: env.DataDir,
		closing: make(chan struct{}),
	}
	h.mu.conns = make(map[*conn]struct{})
	h.mu.lns = make(map[net.Listener]struct{})
	if ts, ok := env.Broker.(interface{ SetTxnForwarder(broker.TxnForwarder) }); ok {
		// Cluster mode: the coordinator's markers and offsets reach
		// partitions owned elsewhere through this handler (cluster_txns.go).
		ts.SetTxnForwarder(h)
	}
	return h, nil
}

// advertised returns the host and port of the listener c came in on, as
// Metadata, FindCoordinator and DescribeCluster announce them.
func (c *conn) advertised() (string, int32) { return c.advHost, c.advPort }

// AdvertisedAddr implements protocol.Advertiser: the host:port Metadata
// announces to clients of listener ln (the server logs it once, with the
// listener's address).
func (h *Handler) AdvertisedAddr(ln net.Listener) string {
	adv := h.cfg.AdvertisedAddr
	if protocol.IsTLS(ln) {
		adv = h.cfg.AdvertisedTLSAddr
	}
	host, port, err := advertisedAddr(adv, ln.Addr())
	if err != nil {
		return ln.Addr().String()
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// Serve accepts connections on ln until ln is closed or Close is called.
// It may run on several listeners at once (plaintext and TLS): advertised-addr
// applies to plaintext ones, advertised-tls-addr to TLS ones (see
// protocol.IsTLS); by default a listener advertises its own address.
func (h *Handler) Serve(ctx context.Context, ln net.Listener) error {
	adv := h.cfg.AdvertisedAddr
	if protocol.IsTLS(ln) {
		adv = h.cfg.AdvertisedTLSAddr
	}
	host, port, err := advertisedAddr(adv, ln.Addr())
	if err != nil {
		return err
	}
	h.mu.Lock()
	select {
	case <-h.closing: // Close has begun: its serves.Wait must not race this Add
		h.mu.Unlock()
		ln.Close()
		return nil
	default:
	}
	h.mu.lns[ln] = struct{}{}
	h.serves.Add(1)
	h.mu.Unlock()
	defer h.serves.Done()
	select {
	case <-h.closing:
		ln.Close()
		return nil
	default:
	}
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-h.closing:
				return nil
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Temporary failures (EMFILE, ...): back off like net/http does.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			h.log.WarnContext(ctx, "kafka accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := newConn(h, nc)
		c.advHost, c.advPort = host, port
		h.mu.Lock()
		select {
		case <-h.closing:
			h.mu.Unlock()
			nc.Close()
			return nil
		default:
		}
		h.mu.conns[c] = struct{}{}
		h.conns.Add(1)
		h.mu.Unlock()
		go func() {
			defer h.conns.Done()
			defer func() {
				h.mu.Lock()
				delete(h.mu.conns, c)
				h.mu.Unlock()
			}()
			c.serve(ctx)
		}()
	}
}

// Close stops accepting, lets in-flight requests finish (bounded by ctx:
// then connections are cut), and waits for Serve to return.
func (h *Handler) Close(ctx context.Context) error {
	h.closeOnce.Do(func() { close(h.closing) })
	h.mu.Lock()
	for ln := range h.mu.lns {
		ln.Close()
	}
	for c := range h.mu.conns {
		c.stopReading()
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.conns.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		h.mu.Lock()
		for c := range h.mu.conns {
			c.nc.Close()
		}
		h.mu.Unlock()
		<-done
		err = ctx.Err()
	}
	h.serves.Wait()
	return err
}

// advertisedAddr resolves the configured advertised address, defaulting to
// the listener's address with a wildcard host replaced by localhost.
func advertisedAddr(cfg string, la net.Addr) (string, int32, error) {
	addr := cfg
	if addr == "" {
		addr = la.String()
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("kafka: advertised address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("kafka: advertised address %q: bad port", addr)
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return host, int32(port), nil
}
