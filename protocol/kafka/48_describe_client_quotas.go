package kafka

// DescribeClientQuotas (key 48), versions 0-1 (KIP-546).
//
// kopernik does not enforce Kafka client quotas (produce/fetch byte rates,
// request percentage, connection rate), so none is configured: every
// description answers no entries, which is the truth. AlterClientQuotas
// refuses to store one (48 and 49 together: a UI lists none and cannot
// create one it would believe enforced). Pulsar's namespace rate limits are
// a different, unimplemented feature.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 1, handleDescribeClientQuotas) }

func handleDescribeClientQuotas(ctx context.Context, c *conn, req *kmsg.DescribeClientQuotasRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	resp.Entries = []kmsg.DescribeClientQuotasResponseEntry{}
	return resp, nil
}
