// Package pulsar serves the Apache Pulsar binary protocol (version 20) on
// kopernik topics, for unmodified Pulsar clients (pulsar-client-go is the
// judge). Commands served: see docs/compatibility.md, section Pulsar.
//
// Structure: one reader goroutine per connection decodes frames and handles
// commands in order; one writer goroutine drains a bounded frame queue
// (ConnectionBufferBytes; when full, dispatch and replies block: that is
// the backpressure on slow clients). Each producer has a goroutine that
// appends its SENDs in order and writes the receipts. Subscription dispatch
// (permits, shared/failover/key-shared routing, redelivery) is the broker's
// protocol-neutral broker.Dispatcher; this package supplies the wire side.
//
// Lock order: Handler.mu, then conn.mu. Neither is held while writing to a
// connection or calling the broker.
package pulsar

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/protocol"
)

// Handler serves the Pulsar protocol on one or more listeners.
type Handler struct {
	env     protocol.Env
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu struct {
		sync.Mutex
		closed       bool
		listeners    map[net.Listener]struct{}
		conns        map[*conn]struct{}
		advertise    string
		advertiseTLS string // "" until a TLS listener serves
	}
	wg sync.WaitGroup
	// pendingAuth holds, per connection not yet through CONNECT, its
	// *pendingAuth (auth.go); empty with auth off.
	pendingAuth sync.Map
}

var _ protocol.Handler = (*Handler)(nil)

// New builds a handler; cfg is validated.
func New(env protocol.Env, cfg *Config) (*Handler, error) {
	if env.Broker == nil {
		return nil, errors.New("pulsar: Env.Broker is required")
	}
	if cfg == nil {
		cfg = DefaultConfig()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Handler{env: env, cfg: *cfg, log: env.Logger, metrics: newMetrics(env.Metrics)}
	if h.cfg.MaxMessageSize == 0 {
		h.cfg.MaxMessageSize = int(env.Broker.Defaults().MaxMessageBytes)
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.log = h.log.With("protocol", "pulsar")
	h.mu.listeners = make(map[net.Listener]struct{})
	h.mu.conns = make(map[*conn]struct{})
	h.mu.advertise = cfg.AdvertisedAddr
	return h, nil
}

// Serve accepts connections on ln until ln or the handler is closed.
func (h *Handler) Serve(ctx context.Context, ln net.Listener) error {
	h.mu.Lock()
	if h.mu.closed {
		h.mu.Unlock()
		return nil
	}
	h.mu.listeners[ln] = struct{}{}
	if protocol.IsTLS(ln) {
		h.mu.advertiseTLS = h.AdvertisedAddr(ln)
	} else if h.mu.advertise == "" {
		h.mu.advertise = h.AdvertisedAddr(ln)
	}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			h.mu.Lock()
			closed := h.mu.closed
			if closed || errors.Is(err, net.ErrClosed) {
				delete(h.mu.listeners, ln)
				h.mu.Unlock()
				return nil
			}
			h.mu.Unlock()
			// Anything else (EMFILE, ENFILE, ENOMEM, ECONNABORTED) is
			// temporary: back off, as net/http does, and keep serving the
			// connections that exist; never stop the listener for it.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else {
				backoff = min(2*backoff, time.Second)
			}
			if backoff == time.Second || backoff == 5*time.Millisecond {
				h.log.Warn("pulsar: accept failed; retrying", "addr", ln.Addr().String(), "err", err, "retry_in", backoff)
			}
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := newConn(h, nc)
		if !h.admit(c) {
			nc.Close()
			continue
		}
		h.mu.Lock()
		if h.mu.closed {
			h.mu.Unlock()
			nc.Close()
			h.admitted(c)
			return nil
		}
		h.mu.conns[c] = struct{}{}
		h.wg.Add(1)
		h.mu.Unlock()
		go func() {
			defer h.wg.Done()
			h.metrics.connections.Inc()
			defer h.metrics.connections.Dec()
			c.serve()
			h.admitted(c)
			h.mu.Lock()
			delete(h.mu.conns, c)
			h.mu.Unlock()
		}()
	}
}

// AdvertisedAddr is what LOOKUP tells clients of listener ln: the
// configured advertised address of its kind (TLS or not), else ln's own.
func (h *Handler) AdvertisedAddr(ln net.Listener) string {
	a := h.cfg.AdvertisedAddr
	if protocol.IsTLS(ln) {
		a = h.cfg.AdvertisedTLSAddr
	}
	if a == "" {
		a = protocol.DialAddr(ln.Addr())
	}
	return a
}

var _ protocol.Advertiser = (*Handler)(nil)

func (h *Handler) advertisedURL() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return "pulsar://" + h.mu.advertise
}

// advertisedTLSURL is LOOKUP's brokerServiceUrlTls (pulsar+ssl://...), or
// nil while no TLS listener serves. Clients with a pulsar+ssl:// service URL
// connect to it.
func (h *Handler) advertisedTLSURL() *string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.advertiseTLS == "" {
		return nil
	}
	u := "pulsar+ssl://" + h.mu.advertiseTLS
	return &u
}

// Close stops accepting; each connection stops reading, writes the
// receipts of SENDs already read, and closes (its producers and consumers
// detach: a subscription's dispatcher stops with its last consumer).
// Bounded by ctx: past it, connections are closed at once.
func (h *Handler) Close(ctx context.Context) error {
	h.mu.Lock()
	h.mu.closed = true
	for ln := range h.mu.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(h.mu.conns))
	for c := range h.mu.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	// Graceful first: stop reading, answer the SENDs already read. The
	// drain is bounded by ctx (at most 5 s without a deadline).
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	for _, c := range conns {
		c.shutdown(deadline)
	}
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		for _, c := range conns {
			c.close()
		}
	}
	return err
}

// topicName resolves a client's topic name with the configured defaults.
func (h *Handler) topicName(s string) (broker.TopicName, error) {
	return broker.ParseTopicName(s, h.cfg.Tenant, h.cfg.Namespace)
}
