package kafka

// SaslHandshake (key 17), versions 0-1, served when authentication is on
// (see sasl.go).
//
// Chooses the mechanism of the SaslAuthenticate exchange that follows (v1),
// or of the bare SASL tokens that follow (v0: [int32 size][token] frames
// outside Kafka's request framing, answered the same way; a failure closes
// the connection without an answer). An unknown mechanism gets
// UNSUPPORTED_SASL_MECHANISM and the list offered. librdkafka needs v0
// advertised to use SASL at all, and then speaks v1.

import (
	"context"
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const saslHandshakeKey = 17

func init() {
	registerAuthOnly(0, 1, handleSaslHandshake)
}

func handleSaslHandshake(ctx context.Context, c *conn, req *kmsg.SASLHandshakeRequest) (kmsg.Response, error) {
	if c.sasl == nil {
		return nil, errors.New("kafka: SaslHandshake with authentication off")
	}
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = saslMechanisms
	switch {
	case c.sasl.done.Load() || c.sasl.mechanism != "":
		resp.ErrorCode = kerr.IllegalSaslState.Code
		c.sasl.fail = true
	case !slices.Contains(saslMechanisms, req.Mechanism):
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
	default:
		c.sasl.mechanism = req.Mechanism
	}
	return resp, nil
}
