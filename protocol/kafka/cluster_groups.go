package kafka

// Groups in a cluster (docs/cluster.md).
//
// A group's coordinator is the broker owning the group's coordinator slot:
// groups hash (FNV-1a of the name) onto coordinatorSlots ownership units
// per namespace, kafka-coordinator://<tenant>/<namespace>/<slot>, owned
// like partitions through lease-bound records (assigned on first
// FindCoordinator, reassigned once the owner's lease expires). Kafka hashes
// groups onto __consumer_offsets partitions the same way. FindCoordinator
// answers the slot's owner; every group request (JoinGroup, SyncGroup,
// Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ConsumerGroupHeartbeat)
// reaching another broker gets NOT_COORDINATOR, and clients find the
// coordinator again. Group state is persisted in the metadata store, so a
// new coordinator loads it; a broker that owns a slot again after losing
// it reloads the group from the store first (its memory may be stale).
//
// Committed offsets are the partitions' subscriptions (group_offsets.go),
// held by each partition's owner: a coordinator commits to, and fetches
// from, a partition owned elsewhere by forwarding over HTTP to that
// owner's /internal/kafka/v1/offsets, which runs the same code there.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kopernik-io/kopernik/broker"
)

// coordinatorSlots is how many coordinator units a namespace's groups
// spread over.
const coordinatorSlots = 16

// coordinatorUnit is the ownership unit of group in tenant/ns.
func coordinatorUnit(tenant, ns, group string) string {
	h := fnv.New32a()
	h.Write([]byte(group))
	return fmt.Sprintf("kafka-coordinator://%s/%s/%d", tenant, ns, h.Sum32()%coordinatorSlots)
}

// groupOwner returns the coordinator broker of group (cluster mode; ok
// false when standalone).
func (h *Handler) groupOwner(ctx context.Context, group string) (b broker.BrokerInfo, unit string, ok bool, err error) {
	cl := h.svc.Cluster()
	if cl == nil {
		return broker.BrokerInfo{}, "", false, nil
	}
	tenant, ns := h.namespaceOf(ctx)
	unit = coordinatorUnit(tenant, ns, group)
	b, err = cl.OwnerOf(ctx, unit)
	if err != nil {
		return b, unit, true, fmt.Errorf("kafka: coordinator of group %q: %w: %w", group, kerr.CoordinatorNotAvailable, err)
	}
	return b, unit, true, nil
}

// loadedUnder remembers, per coordinator and group, the ownership under
// which the group's memory was last read from the store: its Since, and
// the fence of its writes (the unit's owner record as it was then).
var loadedUnder sync.Map // groupKey -> groupLoad

type groupKey struct {
	c     *coordinator
	group string
}

type groupLoad struct {
	since time.Time
	fence broker.Fence
}

// fenceOf returns the fence of writes for group (clustered false when
// standalone; fenced false when the group was not served here under any
// ownership: such a write must not be made).
func (c *coordinator) fenceOf(group string) (fence broker.Fence, clustered, fenced bool) {
	if c.h.svc.Cluster() == nil {
		return broker.Fence{}, false, false
	}
	v, ok := loadedUnder.Load(groupKey{c, group})
	if !ok {
		return broker.Fence{}, true, false
	}
	return v.(groupLoad).fence, true, true
}

// groupCoordinator is coordinator for a request about group: in a cluster
// it fails with NOT_COORDINATOR unless this broker owns the group's slot,
// and reloads the group from the store when the slot was owned anew.
func (h *Handler) groupCoordinator(ctx context.Context, group string) (*coordinator, error) {
	co, err := h.coordinator(ctx)
	if err != nil {
		return nil, err
	}
	owner, unit, clustered, err := h.groupOwner(ctx, group)
	if !clustered {
		return co, nil
	}
	if err != nil {
		return nil, err
	}
	if owner.NodeID != h.cfg.NodeID {
		return nil, fmt.Errorf("kafka: group %q is coordinated by node %d: %w", group, owner.NodeID, kerr.NotCoordinator)
	}
	cl := h.svc.Cluster()
	since, ok := cl.OwnedSince(unit)
	if !ok {
		// Just assigned here; the view has not seen it yet: retriable.
		return nil, fmt.Errorf("kafka: group %q: %w", group, kerr.CoordinatorLoadInProgress)
	}
	key := groupKey{co, group}
	if prev, seen := loadedUnder.Load(key); !seen || !prev.(groupLoad).since.Equal(since) {
		// The fence is taken before the reload: a write built from the
		// memory replaced here carries the previous fence and fails, and
		// one built after it under a fence taken before it is at worst
		// refused too (retriable), never let through.
		fence, err := cl.Fence(ctx, unit)
		if err != nil {
			return nil, fmt.Errorf("kafka: group %q: %w: %w", group, kerr.NotCoordinator, err)
		}
		if err := co.reloadGroup(ctx, group); err != nil {
			return nil, err
		}
		loadedUnder.Store(key, groupLoad{since: since, fence: fence})
	}
	return co, nil
}

// reloadGroup replaces the memory of group with its persisted record (or
// forgets it when there is none), unless members wait in a join or sync
// here: those are live on this broker.
func (c *coordinator) reloadGroup(ctx context.Context, name string) error {
	if c.store == nil {
		return nil
	}
	b, err := c.store.GetState(ctx, c.kind, name)
	var g *group
	switch {
	case errors.Is(err, broker.ErrStateNotFound):
	case err != nil:
		return fmt.Errorf("kafka: loading group %q: %w: %w", name, kerr.CoordinatorLoadInProgress, err)
	default:
		var rec groupRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("kafka: group %q: unreadable record: %w", name, err)
		}
		g = groupFromRecord(name, rec, time.Now())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.mu.groups[name]; old != nil {
		for _, m := range old.members {
			if m.join != nil || m.sync != nil {
				return nil
			}
		}
		old.detachLocked()
	}
	if g == nil {
		delete(c.mu.groups, name)
		return nil
	}
	c.mu.groups[name] = g
	return nil
}

// InternalSecretHeader carries the cluster's internal secret on requests
// brokers forward to each other; the server refuses internal requests
// without it.
const InternalSecretHeader = "Kopernik-Internal-Secret"

// offsetsPath is the internal endpoint of forwarded commits and fetches.
const offsetsPath = "/internal/kafka/v1/offsets"

// offsetsRequest is a forwarded commit (Offset set) or fetch.
type offsetsRequest struct {
	Group       string  `json:"group"`
	Topic       string  `json:"topic"` // full partition name
	Commit      bool    `json:"commit"`
	Offset      int64   `json:"offset"`
	LeaderEpoch int32   `json:"leaderEpoch"`
	Metadata    *string `json:"metadata,omitempty"`
	// Fence, on a commit, is the coordinator's fence of the group
	// (groupLoad): the owner commits only if it still holds.
	Fence *broker.Fence `json:"fence,omitempty"`
}

type offsetsResponse struct {
	Offset      int64  `json:"offset"`
	LeaderEpoch int32  `json:"leaderEpoch"`
	Metadata    string `json:"metadata"`
	ErrorCode   int16  `json:"errorCode"`
	Error       string `json:"error,omitempty"`
}

var forwardClient = &http.Client{Timeout: 10 * time.Second}

// forwardOffsets sends req to owner, the partition's owner.
func (h *Handler) forwardOffsets(ctx context.Context, owner broker.BrokerInfo, req offsetsRequest) (offsetsResponse, error) {
	if owner.HTTP == "" {
		return offsetsResponse{}, fmt.Errorf("kafka: partition owner node %d has no HTTP address: %w", owner.NodeID, broker.ErrNotOwner)
	}
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+owner.HTTP+offsetsPath, bytes.NewReader(body))
	if err != nil {
		return offsetsResponse{}, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set(InternalSecretHeader, h.cfg.InternalSecret)
	resp, err := forwardClient.Do(hreq)
	if err != nil {
		return offsetsResponse{}, fmt.Errorf("kafka: forwarding offsets of %s to node %d: %w: %w", req.Topic, owner.NodeID, broker.ErrNotOwner, err)
	}
	defer resp.Body.Close()
	var out offsetsResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("kafka: forwarded offsets of %s: %w", req.Topic, err)
	}
	if out.ErrorCode != 0 {
		return out, fmt.Errorf("kafka: node %d: %s: %w", owner.NodeID, out.Error, kerr.ErrorForCode(out.ErrorCode))
	}
	return out, nil
}

// InternalHTTP serves forwarded commits and fetches of committed offsets,
// transaction markers and committed transactional offsets
// (cluster_txns.go) for partitions this broker owns (cluster mode). The
// server mounts it on its HTTP listener.
//
// The server admits only requests carrying the cluster's internal secret
// (InternalSecretHeader).
func (h *Handler) InternalHTTP() (pattern string, handler http.Handler) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+txnMarkerPath, h.serveTxnForward)
	mux.HandleFunc("POST "+txnOffsetPath, h.serveTxnForward)
	mux.Handle("POST "+offsetsPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req offsetsRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		name, err := broker.ParseTopicName(req.Topic, h.cfg.Tenant, h.cfg.Namespace)
		var out offsetsResponse
		switch {
		case err != nil:
			out.ErrorCode, out.Error = kerr.InvalidRequest.Code, err.Error()
		case req.Commit && req.Fence != nil && h.svc.Cluster() != nil:
			// A read, then the commit: the sender cannot have written
			// after it lost the group, since its fence is checked after
			// the request left it (docs/cluster.md, Limits).
			if err = h.svc.Cluster().CheckFence(r.Context(), *req.Fence); err == nil {
				err = h.commitOffsetLocal(r.Context(), req.Group, name, req.Offset, req.LeaderEpoch, req.Metadata)
			}
		case req.Commit:
			err = h.commitOffsetLocal(r.Context(), req.Group, name, req.Offset, req.LeaderEpoch, req.Metadata)
		default:
			var c committed
			c, err = h.fetchOffsetLocal(r.Context(), req.Group, name)
			out.Offset, out.LeaderEpoch, out.Metadata = c.offset, c.leaderEpoch, c.metadata
		}
		if err != nil && out.ErrorCode == 0 {
			out.ErrorCode, out.Error = errCode(err), err.Error()
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	}))
	return "POST /internal/kafka/v1/", mux
}

// remoteOwner returns the owner of a partition another broker serves.
func remoteOwner(err error) (broker.BrokerInfo, bool) {
	var no *broker.NotOwnerError
	if errors.As(err, &no) {
		return no.Owner, true
	}
	return broker.BrokerInfo{}, false
}
