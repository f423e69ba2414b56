package kafka

// SaslAuthenticate (key 36), versions 0-2, served when authentication is on
// (see sasl.go).
//
// Carries the SASL exchange of the mechanism SaslHandshake chose: one round
// for PLAIN, two for SCRAM. A failure answers SASL_AUTHENTICATION_FAILED
// with a message after the failure delay, then closes the connection.
// session_lifetime_ms (v1+) is 0: no re-authentication is required.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
)

const saslAuthenticateKey = 36

func init() {
	registerAuthOnly(0, 2, handleSaslAuthenticate)
}

func handleSaslAuthenticate(ctx context.Context, c *conn, req *kmsg.SASLAuthenticateRequest) (kmsg.Response, error) {
	if c.sasl == nil {
		return nil, errors.New("kafka: SaslAuthenticate with authentication off")
	}
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	out, err := c.sasl.authenticate(ctx, req.SASLAuthBytes)
	if err != nil {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "Authentication failed: " + auth.PublicReason(err)
		if c.sasl.mechanism == saslPlain {
			msg += " (PLAIN wants username tenant[/namespace] and password token:<jwt>)"
		}
		resp.ErrorMessage = &msg
		return resp, nil
	}
	resp.SASLAuthBytes = out
	return resp, nil
}
