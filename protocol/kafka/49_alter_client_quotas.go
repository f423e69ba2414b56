package kafka

// AlterClientQuotas (key 49), versions 0-1 (KIP-546).
//
// Refused, entry by entry, with INVALID_REQUEST (not retriable) and a
// message saying why: kopernik does not enforce client quotas, and storing
// one would make tools believe it is enforced. validate_only is refused
// the same way (the quota would not be valid here).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 1, handleAlterClientQuotas) }

const quotasNotEnforced = "kopernik does not enforce Kafka client quotas; the quota was not stored"

func handleAlterClientQuotas(ctx context.Context, c *conn, req *kmsg.AlterClientQuotasRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	for _, e := range req.Entries {
		re := kmsg.NewAlterClientQuotasResponseEntry()
		re.ErrorCode = kerr.InvalidRequest.Code
		re.ErrorMessage = kmsg.StringPtr(quotasNotEnforced)
		for _, ent := range e.Entity {
			re.Entity = append(re.Entity, kmsg.AlterClientQuotasResponseEntryEntity{Type: ent.Type, Name: ent.Name})
		}
		resp.Entries = append(resp.Entries, re)
	}
	return resp, nil
}
