package kafka

// Transactions in a cluster (docs/cluster.md, "Transactions").
//
// The broker's coordinator routes transactional ids (broker/txncluster.go):
// FindCoordinator for a transactional id answers the owner of the id's
// coordinator unit, and InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn,
// EndTxn and DescribeTransactions reaching another broker get
// NOT_COORDINATOR; ListTransactions lists the ids this broker coordinates.
// TxnOffsetCommit goes to the group's coordinator, as in Kafka. Markers
// and committed offsets of partitions owned elsewhere are forwarded to the
// owner's /internal/kafka/v1/txn-marker and /internal/kafka/v1/txn-offset,
// which answer once the change is durable there.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kopernik-io/kopernik/broker"
)

// txnsFor returns the coordinator of the client's transactional id id and
// the id's coordinator key, failing with NOT_COORDINATOR (cluster mode)
// unless this broker coordinates it.
func (h *Handler) txnsFor(ctx context.Context, id string) (*broker.TxnCoordinator, string, error) {
	co, err := h.txns(ctx)
	if err != nil {
		return nil, "", err
	}
	key := h.txnKey(ctx, id)
	if err := co.Route(ctx, key); err != nil {
		return nil, key, err
	}
	return co, key, nil
}

const (
	txnMarkerPath = "/internal/kafka/v1/txn-marker"
	txnOffsetPath = "/internal/kafka/v1/txn-offset"
)

// txnForward is a forwarded marker (Marker set) or committed offset.
type txnForward struct {
	Partition string            `json:"partition"`
	Marker    *broker.TxnMarker `json:"marker,omitempty"`
	Offset    *broker.TxnOffset `json:"offset,omitempty"`
}

type txnForwardResponse struct {
	ErrorCode int16  `json:"errorCode"`
	Error     string `json:"error,omitempty"`
}

// ForwardTxnMarker implements broker.TxnForwarder: owner writes the marker.
func (h *Handler) ForwardTxnMarker(ctx context.Context, owner broker.BrokerInfo, partition broker.TopicName, m broker.TxnMarker) error {
	return h.forwardTxn(ctx, owner, txnMarkerPath, txnForward{Partition: partition.String(), Marker: &m})
}

// ForwardTxnOffset implements broker.TxnForwarder: owner applies o.
func (h *Handler) ForwardTxnOffset(ctx context.Context, owner broker.BrokerInfo, o broker.TxnOffset) error {
	return h.forwardTxn(ctx, owner, txnOffsetPath, txnForward{Partition: o.Partition, Offset: &o})
}

func (h *Handler) forwardTxn(ctx context.Context, owner broker.BrokerInfo, path string, req txnForward) error {
	if owner.HTTP == "" {
		return fmt.Errorf("kafka: partition owner node %d has no HTTP address", owner.NodeID)
	}
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+owner.HTTP+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set(InternalSecretHeader, h.cfg.InternalSecret)
	resp, err := forwardClient.Do(hreq)
	if err != nil {
		return fmt.Errorf("kafka: forwarding %s of %s to node %d: %w", path, req.Partition, owner.NodeID, err)
	}
	defer resp.Body.Close()
	var out txnForwardResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return fmt.Errorf("kafka: forwarded %s of %s to node %d: HTTP %d: %w", path, req.Partition, owner.NodeID, resp.StatusCode, err)
	}
	if out.ErrorCode != 0 {
		return fmt.Errorf("kafka: node %d: %s: %w", owner.NodeID, out.Error, kerr.ErrorForCode(out.ErrorCode))
	}
	return nil
}

// serveTxnForward runs a forwarded marker or offset on this broker, which
// must own the partition (else the answer is NOT_LEADER_OR_FOLLOWER and
// the coordinator retries later, its transaction still in Prepare).
func (h *Handler) serveTxnForward(w http.ResponseWriter, r *http.Request) {
	var req txnForward
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	name, err := broker.ParseTopicName(req.Partition, h.cfg.Tenant, h.cfg.Namespace)
	var out txnForwardResponse
	switch {
	case err != nil:
		out.ErrorCode, out.Error = kerr.InvalidRequest.Code, err.Error()
	case req.Marker != nil:
		var p *broker.Partition
		if p, err = h.svc.OpenPartition(r.Context(), name, false); err == nil {
			_, err = p.WriteTxnMarker(r.Context(), *req.Marker)
		}
	case req.Offset != nil:
		ap, ok := h.svc.(interface {
			ApplyTxnOffset(context.Context, broker.TxnOffset) error
		})
		if !ok {
			err = fmt.Errorf("kafka: %w: this broker cannot apply transactional offsets", errInvalidRequest)
		} else {
			err = ap.ApplyTxnOffset(r.Context(), *req.Offset)
		}
	default:
		err = fmt.Errorf("kafka: %w: nothing to forward", errInvalidRequest)
	}
	if err != nil && out.ErrorCode == 0 {
		out.ErrorCode, out.Error = errCode(err), err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}
