package kafka

// DescribeCluster (key 60), version 0 (Kafka 2.8's maximum).
//
// Standalone, the cluster is this node: it is the only broker and the
// controller. In a cluster the brokers are the live cluster brokers, as in
// Metadata. The cluster id is the broker service's (stable across restarts). Authorized
// operations are not computed and are reported as unknown, as Kafka does
// when the client does not ask for them.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 0, handleDescribeCluster) }

func handleDescribeCluster(ctx context.Context, c *conn, req *kmsg.DescribeClusterRequest) (kmsg.Response, error) {
	h := c.h
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	host, port := c.advertised()
	b := kmsg.NewDescribeClusterResponseBroker()
	b.NodeID, b.Host, b.Port = h.cfg.NodeID, host, port
	resp.Brokers = []kmsg.DescribeClusterResponseBroker{b}
	resp.ClusterID = h.svc.ClusterID()
	resp.ControllerID = h.cfg.NodeID
	if cl := h.svc.Cluster(); cl != nil {
		brokers, controller := clusterBrokers(cl)
		resp.Brokers, resp.ControllerID = nil, controller
		for _, mb := range brokers {
			db := kmsg.NewDescribeClusterResponseBroker()
			db.NodeID, db.Host, db.Port = mb.NodeID, mb.Host, mb.Port
			resp.Brokers = append(resp.Brokers, db)
		}
	}
	return resp, nil
}
