package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/broker/ownership"
	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/managedledger/objlog"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/objectstore"
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
	secret, err := internalSecret(ctx, s.storage.Store, cfg.ClusterName)
	if err != nil {
		m.Leave(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("cluster %s: internal secret: %w", cfg.ClusterName, err)
	}
	s.internalSecret = secret
	if kc, ok := cfg.Handlers["kafka"].(*kafka.Config); ok {
		kc.NodeID = m.Self().NodeID
		kc.InternalSecret = secret
		if kc.TransactionVersion > 1 {
			// Transactions v2 adds partitions on the partition's owner
			// (Produce v12), which would have to forward that to the
			// id's coordinator: not done, so clients stay on v1.
			s.log.Info("cluster mode: Kafka transaction.version finalized at 1 (v2 is not routed yet; docs/cluster.md)")
			kc.TransactionVersion = 1
		}
	}
	s.log.Info("cluster mode: the log is in object storage, committed through etcd (docs/cluster.md)",
		"cluster", cfg.ClusterName, "broker", name, "node_id", m.Self().NodeID,
		"object_flush_interval", cfg.ObjectFlushInterval, "object_flush_bytes", cfg.ObjectFlushBytes)
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

// objectLog returns, in cluster mode, the setup of the ledgers' write path
// in object storage (managedledger/clusterlog.go): objects in objs,
// commits in etcd, each fenced by the ledger's ownership record as this
// broker's member reads it when the ledger opens. Nil when standalone.
func (s *Server) objectLog(objs objectstore.Store) func(metadata.Store) (*managedledger.ObjectLogOptions, error) {
	cfg := s.cfg
	if cfg.ClusterName == "" {
		return nil
	}
	return func(store metadata.Store) (*managedledger.ObjectLogOptions, error) {
		meta, ok := store.(objlog.Meta)
		if !ok {
			return nil, errors.New("cluster-name needs an etcd metadata store (metadata-store-url etcd:...)")
		}
		if objs == nil {
			return nil, errors.New("cluster-name needs object storage for the log (offload-driver s3)")
		}
		writer := cfg.BrokerName
		if writer == "" {
			writer = "broker" // the log adds a random session id
		}
		return &managedledger.ObjectLogOptions{
			Log: objlog.Options{
				Objects: objs, Meta: meta, Cluster: cfg.ClusterName, Writer: writer,
				FlushInterval: cfg.ObjectFlushInterval, FlushBytes: int(cfg.ObjectFlushBytes),
			},
			Fence: func(ctx context.Context, ledger string) (metadata.Cond, error) {
				if s.member == nil {
					return metadata.Cond{}, errors.New("cluster: not joined yet")
				}
				unit, err := broker.TopicOfLedger(ledger)
				if err != nil {
					return metadata.Cond{}, err
				}
				return s.member.Fence(ctx, unit.String())
			},
		}, nil
	}
}

// internalSecret returns the cluster's secret for the requests brokers
// forward to each other (created by the first broker, random; anyone who
// can read etcd can read it, and may administer the cluster anyway).
func internalSecret(ctx context.Context, store metadata.Store, cluster string) (string, error) {
	sum := sha256.Sum256([]byte(cluster))
	path := "/cluster-internal/" + hex.EncodeToString(sum[:8]) + "/secret"
	for range 3 {
		rec, err := store.Get(ctx, path)
		if err == nil {
			return string(rec.Value), nil
		}
		if !errors.Is(err, metadata.ErrNotFound) {
			return "", err
		}
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		if _, err := store.Put(ctx, path, []byte(hex.EncodeToString(b[:])), metadata.NotExists); err != nil && !errors.Is(err, metadata.ErrExists) && !errors.Is(err, metadata.ErrBadVersion) {
			return "", err
		}
	}
	return "", errors.New("no stable secret after 3 attempts")
}

// internalOnly admits requests carrying the cluster's internal secret.
func (s *Server) internalOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get(kafka.InternalSecretHeader)
		if s.internalSecret == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.internalSecret)) != 1 {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
