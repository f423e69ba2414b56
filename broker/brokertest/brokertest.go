// Package brokertest starts brokers for other packages' tests.
package brokertest

import (
	"context"
	"testing"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/metadata/etcdtest"
)

// OnEtcd starts n brokers whose metadata is the test package's shared etcd
// (etcdtest.Shared: the package's TestMain must call etcdtest.Main), under
// a key prefix of this test's own, each with its own etcd client and
// in-memory ledgers: n brokers' worth of writers on one metadata store.
// The test's cleanup closes them.
func OnEtcd(tb testing.TB, n int) []*broker.Broker {
	tb.Helper()
	srv, prefix := etcdtest.Shared(tb)
	var out []*broker.Broker
	for range n {
		store, err := metadata.OpenEtcd(srv.Endpoints(), metadata.WithEtcdPrefix(prefix))
		if err != nil {
			tb.Fatal(err)
		}
		f, err := managedledger.NewFactory(managedledger.FactoryOptions{Store: store})
		if err != nil {
			store.Close()
			tb.Fatal(err)
		}
		b, err := broker.New(context.Background(), broker.Options{Store: store, Ledgers: f})
		if err != nil {
			f.Close()
			store.Close()
			tb.Fatal(err)
		}
		tb.Cleanup(func() { b.Close(); f.Close(); store.Close() })
		out = append(out, b)
	}
	return out
}
