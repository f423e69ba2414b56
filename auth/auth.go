// Package auth authenticates clients of every protocol handler: JWT tokens
// (Pulsar's token authentication, and Kafka SASL/PLAIN with a "token:<jwt>"
// password as KoP does) and SCRAM-SHA-256/512 (Kafka SASL/SCRAM, RFC 5802 and
// RFC 7677) with salted credentials kept in the broker's state store.
//
// An authenticated client becomes a Principal: its role (the token's "sub",
// or the SCRAM user) and, for Kafka clients, the tenant and namespace its
// short topic names resolve in. Authorization (what a role may do) is not
// decided here yet.
//
// Wire types never enter this package: handlers pass it strings and bytes.
package auth

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ErrAuthentication is the error of every failed authentication; the
// wrapped message says why (for logs; clients get a generic text).
var ErrAuthentication = errors.New("auth: authentication failed")

// ErrTokenExpired marks a failure due to a token past its "exp".
var ErrTokenExpired = errors.New("token expired")

// PublicReason is what a refused client may be told about err: whether its
// token expired, not which other check failed.
func PublicReason(err error) string {
	if errors.Is(err, ErrTokenExpired) {
		return "token expired"
	}
	return "invalid credentials"
}

// Principal is who an authenticated connection acts as.
type Principal struct {
	// Role is the token's subject or the SCRAM user name.
	Role string
	// Tenant and Namespace, when set, are where the client's short topic
	// names resolve (Kafka SASL/PLAIN username "tenant" or "tenant/ns";
	// SCRAM credentials carry them). Empty: the handler's defaults.
	Tenant, Namespace string
}

// Authenticator holds the broker's authentication settings; handlers get
// it through protocol.Env. A nil *Authenticator means authentication is off.
type Authenticator struct {
	// Tokens verifies JWTs; nil refuses every token.
	Tokens *TokenVerifier
	// SCRAM holds SCRAM credentials; nil refuses SCRAM.
	SCRAM *SCRAMStore
	// AnonymousRole, if not empty, is given to Pulsar clients that present
	// no credentials.
	AnonymousRole string
	// FailureDelay delays the answer to a failed attempt (default 0 here;
	// the server sets 1s).
	FailureDelay time.Duration
	// Log receives one line per failure.
	Log *slog.Logger
	// MaxPendingPerAddress bounds the connections of one client address
	// that have not authenticated yet (0: no bound). Beyond it, new
	// connections from that address are closed before any attempt, so that
	// the failure delay bounds the attempts per address per second.
	MaxPendingPerAddress int

	unauthenticated AddressCounter

	// pending bounds the failures being delayed at once: beyond it, the
	// connection is refused without the delay (and without a goroutine
	// parked for it). Created by New.
	pending chan struct{}
}

// maxPendingFailures bounds delayed failures in flight.
const maxPendingFailures = 256

// New returns an Authenticator with its limits set up.
func New(tokens *TokenVerifier, scram *SCRAMStore, anonymousRole string, failureDelay time.Duration, log *slog.Logger) *Authenticator {
	if log == nil {
		log = slog.Default()
	}
	return &Authenticator{Tokens: tokens, SCRAM: scram, AnonymousRole: anonymousRole, FailureDelay: failureDelay,
		Log: log.With("component", "auth"), pending: make(chan struct{}, maxPendingFailures)}
}

// AuthenticateToken verifies a JWT.
func (a *Authenticator) AuthenticateToken(token string) (Principal, error) {
	if a.Tokens == nil {
		return Principal{}, errors.Join(ErrAuthentication, errors.New("token authentication is not configured"))
	}
	return a.Tokens.Verify(token)
}

// Failed logs a failed attempt and waits FailureDelay (or until ctx ends)
// before the caller answers the client and closes the connection. When too
// many failures are already waiting it returns at once.
func (a *Authenticator) Failed(ctx context.Context, protocol, remote, mechanism string, err error) {
	a.Log.WarnContext(ctx, "authentication failed", "protocol", protocol, "remote", remote, "mechanism", mechanism, "err", err)
	if a.FailureDelay <= 0 {
		return
	}
	select {
	case a.pending <- struct{}{}:
		defer func() { <-a.pending }()
	default:
		return
	}
	t := time.NewTimer(a.FailureDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Admit counts a new connection from remote ("host:port") as waiting to
// authenticate. ok is false when its host already has MaxPendingPerAddress
// such connections: the caller closes it at once. Otherwise release (safe
// to call more than once) must be called when the connection authenticates
// or ends.
func (a *Authenticator) Admit(remote string) (release func(), ok bool) {
	return a.unauthenticated.Admit(remote, a.MaxPendingPerAddress)
}

// AddressCounter counts connections per client host. The zero value is
// ready to use.
type AddressCounter struct {
	mu     sync.Mutex
	byHost map[string]int
}

// Admit counts a connection from remote ("host:port", or a bare host)
// unless its host already has max of them (max <= 0: no bound). When ok,
// release (idempotent) must be called once the connection no longer counts.
func (c *AddressCounter) Admit(remote string, max int) (release func(), ok bool) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if max > 0 && c.byHost[host] >= max {
		return func() {}, false
	}
	if c.byHost == nil {
		c.byHost = map[string]int{}
	}
	c.byHost[host]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.byHost[host]--; c.byHost[host] <= 0 {
				delete(c.byHost, host)
			}
		})
	}, true
}
