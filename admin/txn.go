package admin

// Pulsar transactions over REST: the transaction coordinator assign topic
// (partitions and lookup, for clients that look up over HTTP) and
// GET /admin/v3/transactions/transactionMetadata/{most}/{least}.

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/kopernik-io/kopernik/broker"
)

// isTCAssign reports whether name is Pulsar's transaction coordinator
// assign topic or one of its partitions: it stores nothing, it only tells
// clients that there is one coordinator (0), on this broker.
func isTCAssign(name broker.TopicName) bool {
	const local = "transaction_coordinator_assign"
	return name.Domain == "persistent" && name.Tenant == "pulsar" && name.Namespace == "system" &&
		(name.Local == local || strings.HasPrefix(name.Local, local+broker.PartitionSuffix))
}

type txnService interface {
	Transactions(ctx context.Context) (*broker.TxnCoordinator, error)
}

func (s *server) txnRoutes(mux *router) {
	mux.HandleFunc("GET /admin/v3/transactions/transactionMetadata/{most}/{least}", s.txnMetadata)
}

// txnMetadata is Pulsar's TransactionMetadata, the fields kopernik knows.
type txnMetadata struct {
	TxnID              string                         `json:"txnId"`
	Status             string                         `json:"status"`
	OpenTimestamp      int64                          `json:"openTimestamp"`
	TimeoutAt          int64                          `json:"timeoutAt"`
	ProducedPartitions map[string]struct{}            `json:"producedPartitions"`
	AckedPartitions    map[string]map[string]struct{} `json:"ackedPartitions"`
}

// pulsarTxnStatus maps coordinator states to Pulsar's TxnStatus names.
var pulsarTxnStatus = map[broker.TxnState]string{
	broker.TxnEmpty: "OPEN", broker.TxnOngoing: "OPEN",
	broker.TxnPrepareCommit: "COMMITTING", broker.TxnPrepareAbort: "ABORTING",
	broker.TxnCompleteCommit: "COMMITTED", broker.TxnCompleteAbort: "ABORTED",
}

func (s *server) txnMetadata(w http.ResponseWriter, r *http.Request) {
	most, err1 := strconv.ParseUint(r.PathValue("most"), 10, 64)
	least, err2 := strconv.ParseInt(r.PathValue("least"), 10, 64)
	if err1 != nil || err2 != nil {
		s.writeError(w, r, fmt.Errorf("%w: transaction id (%s,%s)", errBadRequest, r.PathValue("most"), r.PathValue("least")))
		return
	}
	ts, ok := s.svc.(txnService)
	if !ok || most != 0 {
		writeReason(w, http.StatusNotFound, fmt.Sprintf("transaction (%d,%d) not found", most, least))
		return
	}
	tc, err := ts.Transactions(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	tx, err := tc.LookupPulsarTxn(least)
	var m broker.TxnMetadata
	if err == nil {
		m, err = tc.Describe(r.Context(), tx.ID)
	}
	if err != nil {
		writeReason(w, http.StatusNotFound, broker.Reason(err))
		return
	}
	out := txnMetadata{TxnID: fmt.Sprintf("(%d,%d)", most, least), Status: pulsarTxnStatus[m.State],
		OpenTimestamp: m.StartMs, TimeoutAt: m.StartMs + int64(m.TimeoutMs),
		ProducedPartitions: map[string]struct{}{}, AckedPartitions: map[string]map[string]struct{}{}}
	// Keyed by the topic strings the client used, as Pulsar does.
	as := func(full string) string {
		if s, ok := m.ClientNames[full]; ok {
			return s
		}
		return full
	}
	for _, p := range m.Partitions {
		out.ProducedPartitions[as(p)] = struct{}{}
	}
	for _, o := range m.PendingOffsets {
		k := as(o.Partition)
		if out.AckedPartitions[k] == nil {
			out.AckedPartitions[k] = map[string]struct{}{}
		}
		out.AckedPartitions[k][o.Group] = struct{}{}
	}
	writeJSON(w, http.StatusOK, out)
}
