package kafka

// ApiVersions (key 18), versions 0-3.
//
// Answers with the registry's ranges: exactly the APIs and versions this
// handler serves. v3 also lists the one feature whose level changes what
// clients send: transaction.version, supported 0-2 and finalized at the
// handler's TransactionVersion (the finalized-features epoch is constant:
// the level only changes with a restart). A request at a version above 3 gets UNSUPPORTED_VERSION
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
	if req.Version >= 3 {
		sf := kmsg.NewApiVersionsResponseSupportedFeature()
		sf.Name, sf.MinVersion, sf.MaxVersion = featureTransactionVersion, 0, 2
		resp.SupportedFeatures = []kmsg.ApiVersionsResponseSupportedFeature{sf}
		ff := kmsg.NewApiVersionsResponseFinalizedFeature()
		ff.Name = featureTransactionVersion
		ff.MinVersionLevel, ff.MaxVersionLevel = int16(c.h.cfg.TransactionVersion), int16(c.h.cfg.TransactionVersion)
		resp.FinalizedFeatures = []kmsg.ApiVersionsResponseFinalizedFeature{ff}
		resp.FinalizedFeaturesEpoch = 1
	}
	return resp, nil
}

const featureTransactionVersion = "transaction.version"
