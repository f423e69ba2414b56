package kafka

// DescribeCluster (key 60), version 0 (Kafka 2.8's maximum).
//
// The cluster is this node: it is the only broker and the controller; the
// cluster id is the broker service's (stable across restarts). Authorized
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
	return resp, nil
}
