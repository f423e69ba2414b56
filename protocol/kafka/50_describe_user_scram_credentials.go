package kafka

// DescribeUserScramCredentials (key 50), version 0 (KIP-554). Served and
// advertised only with authentication on: the SCRAM credentials are the
// store SASL/SCRAM authenticates against, the one the admin API's
// /admin/v2/kopernik/scram resource writes. Null users: every user with a
// credential. Only superusers may describe (CLUSTER_AUTHORIZATION_FAILED);
// with authorization off, any authenticated client.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/auth"
)

func init() { registerAuthOnly(0, 0, handleDescribeUserSCRAMCredentials) }

// scramMechanisms are Kafka's mechanism numbers (ScramMechanism).
var scramMechanisms = map[int8]string{1: auth.SCRAMSHA256, 2: auth.SCRAMSHA512}

// errNoSCRAM answers the SCRAM APIs of a handler whose authentication has
// no SCRAM store.
var errNoSCRAM = fmt.Errorf("%w: SCRAM is not enabled on this listener", kerr.UnsupportedSaslMechanism)

// checkSuperUser refuses a cluster-wide administrative request unless the
// connection's role is a superuser (anyone with authorization off).
func (h *Handler) checkSuperUser(ctx context.Context) error {
	if h.authz == nil || h.authz.IsSuperUser(principal(ctx)) {
		return nil
	}
	return kerr.ClusterAuthorizationFailed
}

func handleDescribeUserSCRAMCredentials(ctx context.Context, c *conn, req *kmsg.DescribeUserSCRAMCredentialsRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	fail := func(err error) (kmsg.Response, error) {
		resp.ErrorCode = errCode(err)
		resp.ErrorMessage = errMsg(err)
		return resp, nil
	}
	if h.auth.SCRAM == nil {
		return fail(errNoSCRAM)
	}
	if err := h.checkSuperUser(ctx); err != nil {
		return fail(err)
	}
	entries, err := h.auth.SCRAM.Users(ctx)
	if err != nil {
		return fail(err)
	}
	// "mechanism:user" -> user -> mechanisms.
	creds := map[string][]string{}
	var all []string
	for _, e := range entries {
		mech, user, ok := strings.Cut(e, ":")
		if !ok {
			continue
		}
		if _, seen := creds[user]; !seen {
			all = append(all, user)
		}
		creds[user] = append(creds[user], mech)
	}
	users := all
	if req.Users != nil {
		users = nil
		for _, u := range req.Users {
			users = append(users, u.Name)
		}
	} else {
		slices.Sort(users)
	}
	for i, user := range users {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = user
		switch {
		case slices.Contains(users[:i], user):
			r.ErrorCode = kerr.DuplicateResource.Code
			r.ErrorMessage = kmsg.StringPtr("user " + user + " asked for twice")
		case len(creds[user]) == 0:
			r.ErrorCode = kerr.ResourceNotFound.Code
			r.ErrorMessage = kmsg.StringPtr("no SCRAM credential for user " + user)
		}
		for _, mech := range creds[user] {
			if r.ErrorCode != 0 {
				break
			}
			cred, err := h.auth.SCRAM.Get(ctx, mech, user)
			if errors.Is(err, auth.ErrUnknownUser) {
				continue // deleted meanwhile
			}
			if err != nil {
				return fail(err)
			}
			info := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
			for num, name := range scramMechanisms {
				if name == mech {
					info.Mechanism = num
				}
			}
			info.Iterations = int32(cred.Iterations)
			r.CredentialInfos = append(r.CredentialInfos, info)
		}
		slices.SortFunc(r.CredentialInfos, func(a, b kmsg.DescribeUserSCRAMCredentialsResponseResultCredentialInfo) int {
			return int(a.Mechanism) - int(b.Mechanism)
		})
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}
