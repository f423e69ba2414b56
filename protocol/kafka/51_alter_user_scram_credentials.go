package kafka

// AlterUserScramCredentials (key 51), version 0 (KIP-554). Served and
// advertised only with authentication on; writes the store SASL/SCRAM
// authenticates against (the admin API's /admin/v2/kopernik/scram).
// Clients send the salted password (Hi(password, salt, iterations)), never
// the password; the broker derives and keeps StoredKey and ServerKey, as
// Kafka does. An upserted credential keeps the tenant and namespace of the
// one it replaces. Per user: UNSUPPORTED_SASL_MECHANISM,
// UNACCEPTABLE_CREDENTIAL (iterations outside 4096..16384, a malformed
// salted password), RESOURCE_NOT_FOUND (deleting a missing credential),
// DUPLICATE_RESOURCE (one user twice in the request). Superusers only.

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
)

func init() { registerAuthOnly(0, 0, handleAlterUserSCRAMCredentials) }

// maxSCRAMIterations is Kafka's upper bound for SCRAM iterations.
const maxSCRAMIterations = 16384

func handleAlterUserSCRAMCredentials(ctx context.Context, c *conn, req *kmsg.AlterUserSCRAMCredentialsRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	refused := h.checkSuperUser(ctx)
	if h.auth.SCRAM == nil {
		refused = errNoSCRAM
	}
	seen := map[string]int{}
	for _, d := range req.Deletions {
		seen[d.Name]++
	}
	for _, u := range req.Upsertions {
		seen[u.Name]++
	}
	result := func(user string, err error) {
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User = user
		if err != nil {
			r.ErrorCode = errCode(err)
			r.ErrorMessage = errMsg(err)
		}
		resp.Results = append(resp.Results, r)
	}
	check := func(user string, mechanism int8) (string, error) {
		mech, ok := scramMechanisms[mechanism]
		switch {
		case refused != nil:
			return "", refused
		case seen[user] > 1:
			return "", fmt.Errorf("%w: user %s altered more than once in one request", kerr.DuplicateResource, user)
		case user == "":
			return "", fmt.Errorf("%w: empty user name", kerr.UnacceptableCredential)
		case !ok:
			return "", fmt.Errorf("%w: mechanism %d (want 1, SCRAM-SHA-256, or 2, SCRAM-SHA-512)", kerr.UnsupportedSaslMechanism, mechanism)
		}
		return mech, nil
	}
	for _, d := range req.Deletions {
		mech, err := check(d.Name, d.Mechanism)
		if err == nil {
			if _, err = h.auth.SCRAM.Get(ctx, mech, d.Name); errors.Is(err, auth.ErrUnknownUser) {
				err = fmt.Errorf("%w: no %s credential for user %s", kerr.ResourceNotFound, mech, d.Name)
			}
		}
		if err == nil {
			err = h.auth.SCRAM.Delete(ctx, d.Name, mech)
		}
		result(d.Name, err)
	}
	for _, u := range req.Upsertions {
		mech, err := check(u.Name, u.Mechanism)
		var cred auth.SCRAMCredential
		if err == nil && u.Iterations > maxSCRAMIterations {
			err = fmt.Errorf("%w: %d iterations: at most %d", kerr.UnacceptableCredential, u.Iterations, maxSCRAMIterations)
		}
		if err == nil {
			if cred, err = auth.NewSCRAMCredentialSalted(mech, u.Salt, u.SaltedPassword, int(u.Iterations)); err != nil {
				err = fmt.Errorf("%w: %w", kerr.UnacceptableCredential, err)
			}
		}
		if err == nil {
			if old, gerr := h.auth.SCRAM.Get(ctx, mech, u.Name); gerr == nil {
				cred.Tenant, cred.Namespace = old.Tenant, old.Namespace
			}
			err = h.auth.SCRAM.Put(ctx, u.Name, cred)
		}
		if err == nil {
			h.log.InfoContext(ctx, "kafka: SCRAM credential set", "user", u.Name, "mechanism", mech)
		}
		result(u.Name, err)
	}
	return resp, nil
}
