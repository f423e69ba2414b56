package server

import (
	"log/slog"

	"github.com/kopernik-io/kopernik/auth"
	"github.com/kopernik-io/kopernik/broker"
)

// authenticator builds the broker's authenticator, or nil with
// auth-enabled off.
func (c *Config) authenticator(b *broker.Broker, log *slog.Logger) (*auth.Authenticator, error) {
	if !c.AuthEnabled {
		return nil, nil
	}
	tokens, err := auth.LoadTokenVerifier(c.AuthTokenSecretKeyFile, c.AuthTokenPublicKeyFile)
	if err != nil {
		return nil, err
	}
	if tokens == nil {
		log.Warn("auth-enabled without a token key: only SCRAM users can authenticate")
	}
	a := auth.New(tokens, auth.NewSCRAMStore(b), c.AnonymousRole, c.AuthFailureDelay, log)
	a.MaxPendingPerAddress = c.AuthMaxPendingPerAddress
	return a, nil
}

// authorizer builds the broker's authorizer, or nil when every
// authenticated role may do everything (auth or authorization off).
func (c *Config) authorizer(b *broker.Broker) *auth.Authorizer {
	if !c.AuthEnabled || !c.AuthorizationEnabled {
		return nil
	}
	return auth.NewAuthorizer(c.SuperUserRoles, auth.BrokerGrants{Svc: b})
}
