package kafka

// FindCoordinator (key 10), versions 0-4 (v4: batched keys, KIP-699).
//
// Standalone, this node coordinates every group and every transactional id
// (key type 1; the coordinator is the broker's, broker/txn.go). In a
// cluster a group's coordinator is the owner of its slot
// (cluster_groups.go), a transactional id's the owner of its unit
// (cluster_txns.go, broker/txncluster.go). An empty key or an unknown key
// type gets INVALID_REQUEST.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kopernik-io/kopernik/broker"
)

func init() { register(0, 4, handleFindCoordinator) }

const (
	coordinatorGroup       = 0
	coordinatorTransaction = 1
)

func handleFindCoordinator(ctx context.Context, c *conn, req *kmsg.FindCoordinatorRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	host, port := c.advertised()
	answer := func(key string) kmsg.FindCoordinatorResponseCoordinator {
		co := kmsg.NewFindCoordinatorResponseCoordinator()
		co.Key, co.NodeID, co.Host, co.Port = key, -1, "", -1
		var e *kerr.Error
		msg := ""
		switch req.CoordinatorType {
		case coordinatorGroup:
			if key == "" {
				e = kerr.InvalidRequest
			} else if c.h.checkGroup(ctx) != nil {
				e = kerr.GroupAuthorizationFailed
			}
		case coordinatorTransaction:
			if key == "" {
				e = kerr.InvalidRequest
			} else if _, err := c.h.txns(ctx); err != nil {
				// Not loaded yet (a store hiccup): retriable.
				e, msg = kerr.CoordinatorNotAvailable, err.Error()
			}
		default:
			e = kerr.InvalidRequest
		}
		if e != nil {
			if msg == "" {
				msg = e.Message
			}
			co.ErrorCode, co.ErrorMessage = e.Code, errMsg(errors.New(msg))
			return co
		}
		var owner broker.BrokerInfo
		clustered := false
		var err error
		if req.CoordinatorType == coordinatorGroup {
			// Cluster mode: the owner of the group's slot (cluster_groups.go).
			owner, _, clustered, err = c.h.groupOwner(ctx, key)
		} else if tc, cerr := c.h.txns(ctx); cerr == nil {
			// Cluster mode: the owner of the id's unit (cluster_txns.go).
			owner, clustered, err = tc.CoordinatorOf(ctx, c.h.txnKey(ctx, key))
			if err != nil {
				err = fmt.Errorf("%w: %w", kerr.CoordinatorNotAvailable, err)
			}
		}
		if clustered {
			h, p, perr := splitHostPort(owner.Kafka)
			if err == nil && perr != nil {
				err = fmt.Errorf("%w: node %d has no Kafka address", kerr.CoordinatorNotAvailable, owner.NodeID)
			}
			if err != nil {
				co.ErrorCode, co.ErrorMessage = errCode(err), errMsg(err)
				return co
			}
			co.NodeID, co.Host, co.Port = owner.NodeID, h, p
			return co
		}
		co.NodeID, co.Host, co.Port = c.h.cfg.NodeID, host, port
		return co
	}
	if req.Version >= 4 {
		for _, k := range req.CoordinatorKeys {
			resp.Coordinators = append(resp.Coordinators, answer(k))
		}
		return resp, nil
	}
	co := answer(req.CoordinatorKey)
	resp.ErrorCode, resp.ErrorMessage = co.ErrorCode, co.ErrorMessage
	resp.NodeID, resp.Host, resp.Port = co.NodeID, co.Host, co.Port
	return resp, nil
}

// splitHostPort splits a registered host:port address.
func splitHostPort(addr string) (string, int32, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	return host, int32(port), err
}
