package kafka

// Transactions (KIP-98, transactions v1; KIP-890 part 2, transactions v2
// under the handler's TransactionVersion 2, see txnV2): the coordinator is the broker's
// (broker/txn.go); the handlers in 22_init_producer_id.go,
// 24_add_partitions_to_txn.go, 25_add_offsets_to_txn.go, 26_end_txn.go and
// 28_txn_offset_commit.go only translate requests and errors. Transactional
// produce (00_produce.go) appends through the coordinator, which checks
// that the partition is in the producer's ongoing transaction.

import (
	"context"
	"strconv"

	"github.com/kopernik-io/kopernik/broker"
)

// txnService is what the broker offers for transactions; a Service
// without it (none today) keeps transactions refused.
type txnService interface {
	Transactions(ctx context.Context) (*broker.TxnCoordinator, error)
}

// txns returns the transaction coordinator, or errTransactional.
func (h *Handler) txns(ctx context.Context) (*broker.TxnCoordinator, error) {
	ts, ok := h.svc.(txnService)
	if !ok {
		return nil, errTransactional
	}
	return ts.Transactions(ctx)
}

// txnV2 reports whether a request at version, of an API whose
// transactions v2 form starts at v2From, gets v2's semantics: the client
// chose that version (it does only under transaction.version 2) and the
// handler offers v2.
func (h *Handler) txnV2(version, v2From int16) bool {
	return version >= v2From && h.cfg.TransactionVersion >= 2
}

// txnKey is the coordinator's key of a client's transactional id: ids are
// per namespace (the connection's, like consumer groups: group.go), so
// that a tenant can neither fence nor see another tenant's producers.
func (h *Handler) txnKey(ctx context.Context, id string) string {
	tenant, ns := h.namespaceOf(ctx)
	return tenant + "/" + ns + "/" + id
}

// txnOffsetProperties are the cursor properties of a transactional
// commit, as commitOffset sets them (an empty value removes the key).
func txnOffsetProperties(leaderEpoch int32, metadata *string) map[string]string {
	props := map[string]string{propCommitMetadata: "", propCommitLeaderEpoch: ""}
	if metadata != nil {
		props[propCommitMetadata] = *metadata
	}
	if leaderEpoch >= 0 {
		props[propCommitLeaderEpoch] = strconv.Itoa(int(leaderEpoch))
	}
	return props
}
