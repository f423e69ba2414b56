package auth

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/broker/brokertest"
	"github.com/kopernik-io/kopernik/metadata/etcdtest"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Main(m)) }

// A grant or revocation made through one broker is enforced by another
// broker on the same etcd without waiting for the grant cache's TTL (set to
// an hour here): its store watch invalidates the cache.
func TestGrantChangeSeenByOtherBroker(t *testing.T) {
	ctx := context.Background()
	brokers := brokertest.OnEtcd(t, 2)
	a, other := brokers[0], brokers[1]
	z := NewAuthorizer([]string{"root"}, BrokerGrants{Svc: other})
	z.ttl = time.Hour
	bob := Principal{Role: "bob"}
	allowed := func() bool {
		ok, err := z.Allowed(ctx, bob, "public/default", NeedProduce)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if allowed() {
		t.Fatal("bob may produce before any grant")
	}
	setGrant := func(actions []string) {
		t.Helper()
		err := a.UpdateNamespacePolicies(ctx, "public/default", func(p *broker.Policies) error {
			p.Permissions = map[string][]string{"bob": actions}
			if actions == nil {
				p.Permissions = nil
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, want bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for allowed() != want {
			if time.Now().After(deadline) {
				t.Fatalf("other broker: %s not enforced after 10s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	setGrant([]string{"produce"})
	waitFor("grant", true)
	setGrant(nil)
	waitFor("revocation", false)
}
