package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/kopernik-io/kopernik/broker/ownership"
	"github.com/kopernik-io/kopernik/protocol/kafka"
	"github.com/kopernik-io/kopernik/protocol/pulsar"
)

// joinCluster registers this broker in cluster cfg.ClusterName with the
// addresses clients reach it at: the handlers' advertised addresses, else
// the listeners' (bound before the broker starts, so that port 0 works).
// The Kafka handler's node id becomes the cluster's node id for the
// broker's name.
func (s *Server) joinCluster(ctx context.Context, lns map[string]net.Listener) (*ownership.Member, error) {
	cfg := s.cfg
	store, ok := s.storage.Store.(ownership.Store)
	if !ok {
		return nil, errors.New("cluster-name needs an etcd metadata store (metadata-store-url etcd:...)")
	}
	addr := func(proto, advertised string) string {
		if advertised != "" {
			return advertised
		}
		ln := lns[proto]
		if ln == nil {
			return ""
		}
		return reachable(ln.Addr())
	}
	var kafkaAddr, pulsarAddr string
	if kc, ok := cfg.Handlers["kafka"].(*kafka.Config); ok {
		kafkaAddr = addr("kafka", kc.AdvertisedAddr)
	}
	if pc, ok := cfg.Handlers["pulsar"].(*pulsar.Config); ok {
		pulsarAddr = addr("pulsar", pc.AdvertisedAddr)
	}
	name := cfg.BrokerName
	if name == "" {
		name = kafkaAddr
		if name == "" {
			name = pulsarAddr
		}
	}
	if name == "" {
		return nil, errors.New("cluster: set broker-name (no Kafka or Pulsar listener to name this broker after)")
	}
	m, err := ownership.Join(ctx, store, ownership.Config{
		Cluster: cfg.ClusterName, Name: name, Kafka: kafkaAddr, Pulsar: pulsarAddr,
		HTTP: addr("http", ""), LeaseTTL: cfg.ClusterLeaseTTL, Logger: s.log.With("component", "cluster"),
	})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cfg.ClusterName, err)
	}
	if kc, ok := cfg.Handlers["kafka"].(*kafka.Config); ok {
		kc.NodeID = m.Self().NodeID
	}
	s.log.Warn("cluster mode is experimental: ownership and routing only; each broker's log is still on its own disk, so a partition that moves does not take its data along (docs/cluster.md)",
		"cluster", cfg.ClusterName, "broker", name, "node_id", m.Self().NodeID)
	return m, nil
}

// reachable is a listener's address as another host would dial it: an
// unspecified host (0.0.0.0, [::]) becomes the host name.
func reachable(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	return net.JoinHostPort(host, fmt.Sprint(tcp.Port))
}
