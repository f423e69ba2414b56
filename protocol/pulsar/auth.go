package pulsar

// Authentication of CONNECT (Pulsar's authenticationEnabled with
// AuthenticationProviderToken): with env.Auth set, CONNECT must carry
// auth_method_name "token" and the JWT as auth_data, unless an anonymous
// role is configured and no credentials are sent. A refused CONNECT is
// answered, after the failure delay, with ERROR AuthenticationError (the
// client logs its message and retries with backoff), and the connection
// closes. The role is kept on the connection for authorization. Until
// CONNECT, a connection counts against its address's
// auth-max-pending-per-address and is closed at auth-timeout.
//
// Not done: AUTH_CHALLENGE / token refresh (an expired token keeps its
// connection until it closes), other auth methods (tls, oauth2, basic).

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/protocol/pulsar/pb"
)

// authMethodToken is the auth_method_name of token authentication.
const authMethodToken = "token"

// authenticate checks cmd's credentials and sets c.principal. A non-nil
// error closes the connection; the client has been told why.
func (c *conn) authenticate(cmd *pb.CommandConnect) error {
	a := c.h.env.Auth
	if a == nil {
		return nil
	}
	method := cmd.GetAuthMethodName()
	var p auth.Principal
	var err error
	switch {
	case method == "" && len(cmd.GetAuthData()) == 0 && a.AnonymousRole != "":
		p = auth.Principal{Role: a.AnonymousRole}
	case method == authMethodToken:
		p, err = a.AuthenticateToken(string(cmd.GetAuthData()))
	case method == "":
		err = fmt.Errorf("%w: no credentials", auth.ErrAuthentication)
	default:
		err = fmt.Errorf("%w: unsupported auth method %q", auth.ErrAuthentication, method)
	}
	if err == nil {
		c.h.admitted(c)
		c.principal = p
		c.log.Debug("authenticated", "role", p.Role, "method", method)
		return nil
	}
	a.Failed(context.Background(), "pulsar", c.nc.RemoteAddr().String(), method, err)
	// Written directly: nothing else is queued before CONNECTED, and the
	// frame must be on the wire before the close.
	f, ferr := appendFrame(nil, &pb.BaseCommand{Type: pb.BaseCommand_ERROR.Enum(), Error: &pb.CommandError{
		RequestId: proto.Uint64(0), Error: pb.ServerError_AuthenticationError.Enum(),
		Message: proto.String("Unable to authenticate: " + auth.PublicReason(err)),
	}}, nil, nil)
	if ferr == nil {
		c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.nc.Write(f)
	}
	return err
}

// pendingAuth is a connection that has not been through CONNECT yet.
type pendingAuth struct {
	release func()      // its auth.Admit count
	timer   *time.Timer // closes it at auth-timeout
}

// admit counts c among its address's connections waiting for CONNECT and
// starts its auth-timeout; false when there are too many (the caller
// closes it).
func (h *Handler) admit(c *conn) bool {
	if h.env.Auth == nil {
		return true
	}
	release, ok := h.env.Auth.Admit(c.nc.RemoteAddr().String())
	if !ok {
		c.log.Warn("closing connection: too many unauthenticated connections from its address", "max", h.env.Auth.MaxPendingPerAddress)
		return false
	}
	p := &pendingAuth{release: release}
	h.pendingAuth.Store(c, p)
	p.timer = time.AfterFunc(h.cfg.AuthTimeout, func() {
		if _, still := h.pendingAuth.Load(c); still {
			c.log.Warn("closing connection that did not CONNECT in time", "auth_timeout", h.cfg.AuthTimeout)
			c.close()
		}
	})
	return true
}

// admitted ends c's wait begun by admit (after CONNECT, or when c ends).
func (h *Handler) admitted(c *conn) {
	if v, ok := h.pendingAuth.LoadAndDelete(c); ok {
		p := v.(*pendingAuth)
		p.timer.Stop()
		p.release()
	}
}
