package kafka

// ApiVersions (key 18), versions 0-3.
//
// Answers with the registry's ranges: exactly the APIs and versions this
// handler serves. A request at a version above 3 gets UNSUPPORTED_VERSION
// with a v0 body (KIP-511, see decodeRequest), so that newer clients
// downgrade instead of disconnecting. The response header is always v0.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

const apiVersionsKey = 18

func init() { register(0, 3, handleApiVersions) }

func handleApiVersions(ctx context.Context, c *conn, req *kmsg.ApiVersionsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = apiVersionsKeys(c.h.auth != nil)
	return resp, nil
}
