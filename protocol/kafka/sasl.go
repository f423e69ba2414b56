package kafka

// SASL authentication (KIP-43, KIP-152), on when the server's auth-enabled
// setting gives the handler an auth.Authenticator:
//
//   - Until a connection has authenticated, only ApiVersions, SaslHandshake
//     and SaslAuthenticate are served; any other request closes it.
//   - Mechanisms: PLAIN with KoP's token convention (username "tenant" or
//     "tenant/namespace", password "token:<jwt>"), SCRAM-SHA-256 and
//     SCRAM-SHA-512 (credentials from the admin API, kept by the broker).
//   - A failed attempt is logged, answered after the failure delay with
//     SASL_AUTHENTICATION_FAILED and a message, and the connection closes.
//   - A connection that has not authenticated within sasl-timeout of
//     opening (an exchange stopped halfway, or none started) is closed.
//   - The principal's tenant/namespace (if any) is where the connection's
//     short topic names resolve (Handler.namespaceOf).
//
// Not served: re-authentication (KIP-368),
// OAUTHBEARER, GSSAPI. With authentication off the SASL APIs are neither
// advertised nor served.
//
// All state is touched by the connection's serving goroutine only, except
// done (read by the timeout timer).

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

const (
	saslPlain = "PLAIN"
	// plainTokenPrefix starts a PLAIN password that is a JWT (KoP).
	plainTokenPrefix = "token:"
)

// saslMechanisms is what SaslHandshake offers.
var saslMechanisms = []string{saslPlain, auth.SCRAMSHA256, auth.SCRAMSHA512}

// saslState is a connection's authentication progress.
type saslState struct {
	c         *conn
	mechanism string // chosen by SaslHandshake; "" before
	scram     *auth.SCRAMServer
	principal auth.Principal
	done      atomic.Bool // authenticated
	fail      bool        // the response being written refuses: close after it
	timer     *time.Timer
	release   func() // ends the connection's count in auth.Admit
}

// newSASLState returns nil when authentication is off; otherwise it starts
// the sasl-timeout clock.
func newSASLState(c *conn) *saslState {
	if c.h.auth == nil {
		return nil
	}
	s := &saslState{c: c}
	var ok bool
	if s.release, ok = c.h.auth.Admit(c.nc.RemoteAddr().String()); !ok {
		c.log.Warn("kafka: closing connection: too many unauthenticated connections from its address", "max", c.h.auth.MaxPendingPerAddress)
		c.h.m.closed.WithLabelValues("auth-pending-limit").Inc()
		c.nc.Close()
	}
	s.timer = time.AfterFunc(c.h.cfg.SASLTimeout, func() {
		if !s.done.Load() {
			c.log.Warn("kafka: closing connection that did not authenticate in time", "sasl_timeout", c.h.cfg.SASLTimeout)
			c.h.m.closed.WithLabelValues("auth-timeout").Inc()
			c.nc.Close()
		}
	})
	return s
}

// stop releases the timer when the connection ends.
func (s *saslState) stop() {
	if s != nil {
		s.timer.Stop()
		s.release()
	}
}

// failed reports whether the response just written refused authentication.
func (s *saslState) failed() bool { return s != nil && s.fail }

// gate refuses requests other than ApiVersions and SASL before the
// connection has authenticated; the error closes the connection.
func (s *saslState) gate(key int16) error {
	if s == nil || s.done.Load() {
		return nil
	}
	switch key {
	case apiVersionsKey, saslHandshakeKey, saslAuthenticateKey:
		return nil
	}
	return fmt.Errorf("kafka: %w: request before SASL authentication", auth.ErrAuthentication)
}

type principalKey struct{}

// context carries the principal to the request's handler.
func (s *saslState) context(ctx context.Context) context.Context {
	if s == nil || !s.done.Load() {
		return ctx
	}
	return context.WithValue(ctx, principalKey{}, s.principal)
}

// namespaceOf is where short topic names of the request's connection
// resolve: its principal's tenant/namespace, else the configured ones.
func (h *Handler) namespaceOf(ctx context.Context) (tenant, ns string) {
	tenant, ns = h.cfg.Tenant, h.cfg.Namespace
	if p, ok := ctx.Value(principalKey{}).(auth.Principal); ok && p.Tenant != "" {
		tenant = p.Tenant
		if p.Namespace != "" {
			ns = p.Namespace
		}
	}
	return tenant, ns
}

// authenticate runs one SaslAuthenticate step. It returns the bytes for
// the client, or an error wrapping auth.ErrAuthentication (already logged
// and delayed) whose message the client is told.
func (s *saslState) authenticate(ctx context.Context, msg []byte) ([]byte, error) {
	resp, err := s.step(ctx, msg)
	if err != nil {
		s.fail = true
		s.c.h.auth.Failed(ctx, "kafka", s.c.nc.RemoteAddr().String(), s.mechanism, err)
		s.c.h.m.closed.WithLabelValues("auth-failed").Inc()
	}
	return resp, err
}

func (s *saslState) step(ctx context.Context, msg []byte) ([]byte, error) {
	switch {
	case s.done.Load():
		return nil, fmt.Errorf("%w: already authenticated (re-authentication is not supported)", auth.ErrAuthentication)
	case s.mechanism == "":
		return nil, fmt.Errorf("%w: SaslAuthenticate before SaslHandshake", auth.ErrAuthentication)
	case s.mechanism == saslPlain:
		p, err := s.plain(msg)
		if err != nil {
			return nil, err
		}
		s.succeed(ctx, p)
		return nil, nil
	}
	if s.scram == nil {
		if s.c.h.auth.SCRAM == nil {
			return nil, fmt.Errorf("%w: SCRAM is not configured", auth.ErrAuthentication)
		}
		var err error
		if s.scram, err = s.c.h.auth.SCRAM.NewSCRAMServer(s.mechanism); err != nil {
			return nil, fmt.Errorf("%w: %w", auth.ErrAuthentication, err)
		}
	}
	resp, done, p, err := s.scram.Step(ctx, msg)
	if err != nil {
		return nil, err
	}
	if done {
		s.succeed(ctx, p)
	}
	return resp, nil
}

func (s *saslState) succeed(ctx context.Context, p auth.Principal) {
	s.principal = p
	s.done.Store(true)
	s.timer.Stop()
	s.release()
	s.c.log.InfoContext(ctx, "kafka: authenticated", "mechanism", s.mechanism, "role", p.Role, "tenant", p.Tenant, "namespace", p.Namespace)
}

// plain checks a PLAIN message "authzid NUL username NUL password" (RFC
// 4616) with KoP's convention: the password is "token:<jwt>", the username
// names the tenant or tenant/namespace the client works in.
func (s *saslState) plain(msg []byte) (auth.Principal, error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return auth.Principal{}, fmt.Errorf("%w: malformed PLAIN message", auth.ErrAuthentication)
	}
	authzid, user, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if authzid != "" && authzid != user {
		return auth.Principal{}, fmt.Errorf("%w: PLAIN authorization id %q differs from user %q", auth.ErrAuthentication, authzid, user)
	}
	token, ok := strings.CutPrefix(pass, plainTokenPrefix)
	if !ok {
		return auth.Principal{}, fmt.Errorf("%w: PLAIN password must be %q followed by a token", auth.ErrAuthentication, plainTokenPrefix)
	}
	tenant, ns, _ := strings.Cut(user, "/")
	if err := errors.Join(validOptional("tenant", tenant), validOptional("namespace", ns)); err != nil || strings.Contains(ns, "/") {
		return auth.Principal{}, fmt.Errorf("%w: PLAIN username %q must be a tenant or tenant/namespace", auth.ErrAuthentication, user)
	}
	p, err := s.c.h.auth.AuthenticateToken(token)
	if err != nil {
		return auth.Principal{}, err
	}
	p.Tenant, p.Namespace = tenant, ns
	return p, nil
}

func validOptional(kind, s string) error {
	if s == "" {
		return nil
	}
	return broker.ValidateSegment(kind, s)
}

// rawFramesAfter returns how many bare SASL tokens follow r: after a
// SaslHandshake v0, one for PLAIN and two for SCRAM. Called by the reader
// goroutine, which must not decode those frames as requests.
func (s *saslState) rawFramesAfter(r *request) int {
	if s == nil || r.err != nil || r.key != saslHandshakeKey || r.version != 0 {
		return 0
	}
	hs, ok := r.req.(*kmsg.SASLHandshakeRequest)
	if !ok {
		return 0
	}
	switch hs.Mechanism {
	case saslPlain:
		return 1
	case auth.SCRAMSHA256, auth.SCRAMSHA512:
		return 2
	}
	return 0
}

// rawSASLRequest serves a bare token as a SaslAuthenticate v0 whose answer
// is written bare (appendRawSASL).
func rawSASLRequest(buf []byte) *request {
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version = 0
	req.SASLAuthBytes = buf
	return &request{key: saslAuthenticateKey, version: 0, req: req, raw: true}
}

// appendRawSASL writes a bare token's answer: [int32 size][bytes]; nothing
// on failure (the connection then closes, as Kafka does for v0).
func appendRawSASL(dst []byte, resp kmsg.Response) []byte {
	r, ok := resp.(*kmsg.SASLAuthenticateResponse)
	if !ok || r.ErrorCode != 0 {
		return dst
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(r.SASLAuthBytes)))
	return append(dst, r.SASLAuthBytes...)
}
