package ownership

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/metadata/etcdtest"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Main(m)) }

// node is one simulated broker: its own etcd connection and membership.
type node struct {
	name  string
	store *metadata.Etcd
	m     *Member
}

type cluster struct {
	t      *testing.T
	srv    *etcdtest.Server
	prefix string
}

func newCluster(t *testing.T) *cluster {
	srv, prefix := etcdtest.Shared(t)
	return &cluster{t: t, srv: srv, prefix: prefix}
}

func (c *cluster) join(name string) *node {
	c.t.Helper()
	s, err := metadata.OpenEtcd(c.srv.Endpoints(), metadata.WithEtcdPrefix(c.prefix))
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := Join(ctx, s, Config{Cluster: "c1", Name: name, Kafka: name + ":9092", LeaseTTL: time.Second})
	if err != nil {
		s.Close()
		c.t.Fatal(err)
	}
	n := &node{name: name, store: s, m: m}
	c.t.Cleanup(n.leave)
	return n
}

// leave is a clean shutdown; crash is kill -9: renewal stops, the lease
// runs out on its own.
func (n *node) leave() {
	n.m.Leave(context.Background())
	n.store.Close()
}

func (n *node) crash() {
	n.store.Close() // ends renewal and the watch; the lease is left to expire
	n.m.Leave(context.Background())
}

// waitView waits until cond holds on n's view.
func waitView(t *testing.T, n *node, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not reached in 15s", n.name, what)
		}
		select {
		case <-n.m.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestNodeIDsAreStable(t *testing.T) {
	c := newCluster(t)
	a, b := c.join("a"), c.join("b")
	if a.m.Self().NodeID == b.m.Self().NodeID {
		t.Fatalf("two brokers got node id %d", a.m.Self().NodeID)
	}
	idA := a.m.Self().NodeID
	a.leave()
	a2 := c.join("a")
	if a2.m.Self().NodeID != idA {
		t.Fatalf("rejoined a got node id %d, had %d", a2.m.Self().NodeID, idA)
	}
	waitView(t, b, "both brokers live", func() bool { return len(b.m.Brokers()) == 2 })
}

// TestRejoinAfterCrashWaitsOutOldLease: a broker restarted right after a
// kill finds its old registration still leased; it waits for it instead of
// overwriting it (the old lease would then delete the new registration).
func TestRejoinAfterCrashWaitsOutOldLease(t *testing.T) {
	c := newCluster(t)
	a := c.join("a")
	id := a.m.Self().NodeID
	a.crash()
	a2 := c.join("a")
	if a2.m.Self().NodeID != id {
		t.Fatalf("node id changed across a crash: %d -> %d", id, a2.m.Self().NodeID)
	}
	// Well past the old lease's TTL, the new registration must still be there.
	time.Sleep(2500 * time.Millisecond)
	if _, err := a2.store.Get(context.Background(), a2.m.brokerPath(id)); err != nil {
		t.Fatalf("registration after the old lease expired: %v", err)
	}
}

// TestAssignSpreadsAndAgrees: units assigned concurrently from every broker
// get exactly one owner each, every broker's view agrees with the store,
// and the policy spreads them.
func TestAssignSpreadsAndAgrees(t *testing.T) {
	c := newCluster(t)
	nodes := []*node{c.join("a"), c.join("b"), c.join("c")}
	for _, n := range nodes {
		waitView(t, n, "3 brokers", func() bool { return len(n.m.Brokers()) == 3 })
	}
	const units = 300
	answers := make([][]int32, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		answers[i] = make([]int32, units)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, u := range rand.Perm(units) {
				b, err := n.m.Assign(context.Background(), fmt.Sprintf("persistent://t/ns/topic-%d", u))
				if err != nil {
					t.Error(err)
					return
				}
				answers[i][u] = b.NodeID
			}
		}()
	}
	wg.Wait()
	counts := map[int32]int{}
	for u := 0; u < units; u++ {
		for i := range nodes {
			if answers[i][u] != answers[0][u] {
				t.Fatalf("unit %d: broker %s was told owner %d, broker %s owner %d", u, nodes[i].name, answers[i][u], nodes[0].name, answers[0][u])
			}
		}
		counts[answers[0][u]]++
	}
	for _, n := range nodes {
		waitView(t, n, "all units in view", func() bool {
			for u := 0; u < units; u++ {
				if b, ok := n.m.Lookup(fmt.Sprintf("persistent://t/ns/topic-%d", u)); !ok || b.NodeID != answers[0][u] {
					return false
				}
			}
			return true
		})
		if got, want := len(n.m.Owned()), counts[n.m.Self().NodeID]; got != want {
			t.Fatalf("%s owns %d units, assignments say %d", n.name, got, want)
		}
	}
	for _, n := range nodes {
		if c := counts[n.m.Self().NodeID]; c < units/3/2 {
			t.Fatalf("policy did not spread: %s owns %d of %d (%v)", n.name, c, units, counts)
		}
	}
	t.Logf("owners per broker: %v", counts)
}

// TestFailoverReassigns: a crashed broker's units become unowned once its
// lease expires and are reassigned to live brokers on the next lookup; the
// crashed broker's Owns answers false at once.
func TestFailoverReassigns(t *testing.T) {
	c := newCluster(t)
	a, b, d := c.join("a"), c.join("b"), c.join("d")
	for _, n := range []*node{a, b, d} {
		waitView(t, n, "3 brokers", func() bool { return len(n.m.Brokers()) == 3 })
	}
	var mine []string
	for i := 0; len(mine) < 5 && i < 1000; i++ {
		u := fmt.Sprintf("t-%d", i)
		o, err := b.m.Assign(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		if o.NodeID == a.m.Self().NodeID {
			mine = append(mine, u)
		}
	}
	waitView(t, a, "owns its units", func() bool { return len(a.m.Owned()) > 0 && a.m.Owns(mine[0]) })
	crashed := time.Now()
	a.crash()
	if a.m.Owns(mine[0]) {
		t.Fatal("a crashed member still claims ownership")
	}
	waitView(t, b, "a's registration gone", func() bool { return len(b.m.Brokers()) == 2 })
	gone := time.Since(crashed)
	for _, u := range mine {
		o, err := b.m.Assign(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		if o.NodeID == a.m.Self().NodeID {
			t.Fatalf("%s reassigned to the dead broker", u)
		}
		owner := b
		if o.NodeID == d.m.Self().NodeID {
			owner = d
		}
		waitView(t, owner, "owns "+u, func() bool { return owner.m.Owns(u) })
	}
	t.Logf("dead broker's registration gone %v after the crash (TTL 1s); %d units moved", gone.Round(10*time.Millisecond), len(mine))
}

// TestOwnershipModel runs random joins, leaves, crashes, assignments and
// releases over real etcd and checks, whenever the views have settled:
// every owner record names a registered broker; every live member's view
// equals the store; Assign answers only live brokers; a unit's owner
// changes only when its owner left, crashed or released it.
func TestOwnershipModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("OWNERSHIP_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (OWNERSHIP_SEED to replay)", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	c := newCluster(t)
	live := map[string]*node{}
	names := []string{"n0", "n1", "n2", "n3"}
	want := map[string]int32{} // unit -> owner node id, as the model expects
	ctx := context.Background()
	anyLive := func() *node {
		var ns []*node
		for _, name := range names {
			if n, ok := live[name]; ok {
				ns = append(ns, n)
			}
		}
		if len(ns) == 0 {
			return nil
		}
		return ns[rng.IntN(len(ns))]
	}
	forget := func(id int32) {
		for u, o := range want {
			if o == id {
				delete(want, u)
			}
		}
	}
	steps := 60
	if testing.Short() {
		steps = 25
	}
	for step := 0; step < steps; step++ {
		switch op := rng.IntN(10); {
		case op < 2 || len(live) == 0:
			name := names[rng.IntN(len(names))]
			if _, ok := live[name]; !ok {
				live[name] = c.join(name)
				t.Logf("step %d: join %s (node %d)", step, name, live[name].m.Self().NodeID)
			}
		case op == 2 && len(live) > 1:
			n := anyLive()
			t.Logf("step %d: leave %s", step, n.name)
			n.leave()
			delete(live, n.name)
			forget(n.m.Self().NodeID)
		case op == 3 && len(live) > 1:
			n := anyLive()
			t.Logf("step %d: crash %s", step, n.name)
			n.crash()
			delete(live, n.name)
			// Its lease runs out on its own: wait for the store to drop it
			// (the model's "settled" point).
			id := n.m.Self().NodeID
			other := anyLive()
			waitView(t, other, fmt.Sprintf("node %d expired", id), func() bool { _, ok := other.m.Broker(id); return !ok })
			forget(id)
		case op == 4 && len(want) > 0:
			// Release by the owner.
			for u, id := range want {
				for _, n := range live {
					if n.m.Self().NodeID == id {
						waitView(t, n, "owns "+u, func() bool { return n.m.Owns(u) })
						if err := n.m.Release(ctx, u); err != nil {
							t.Fatal(err)
						}
						t.Logf("step %d: %s releases %s", step, n.name, u)
						delete(want, u)
					}
				}
				break
			}
		default:
			n := anyLive()
			for k := 0; k < 5; k++ {
				u := fmt.Sprintf("unit-%d", rng.IntN(40))
				o, err := n.m.Assign(ctx, u)
				if err != nil {
					t.Fatalf("step %d: assign %s: %v", step, u, err)
				}
				if prev, ok := want[u]; ok && prev != o.NodeID {
					t.Fatalf("step %d: %s moved from node %d to %d without its owner leaving", step, u, prev, o.NodeID)
				}
				alive := false
				for _, l := range live {
					alive = alive || l.m.Self().NodeID == o.NodeID
				}
				if !alive {
					t.Fatalf("step %d: %s assigned to node %d, not live", step, u, o.NodeID)
				}
				want[u] = o.NodeID
			}
		}
		// Settle and compare every live view with the model.
		for _, n := range live {
			waitView(t, n, fmt.Sprintf("step %d: view matches the model", step), func() bool {
				if len(n.m.Brokers()) != len(live) {
					return false
				}
				for u, id := range want {
					if b, ok := n.m.Lookup(u); !ok || b.NodeID != id {
						return false
					}
				}
				owned := 0
				for _, id := range want {
					if id == n.m.Self().NodeID {
						owned++
					}
				}
				return len(n.m.Owned()) == owned
			})
		}
		// The store itself: every owner record names a registered broker.
		if n := anyLive(); n != nil {
			segs, err := n.store.Children(ctx, n.m.root+"/owners")
			if err != nil {
				t.Fatal(err)
			}
			if len(segs) != len(want) {
				t.Fatalf("step %d: store has %d owner records, model %d", step, len(segs), len(want))
			}
		}
	}
	// Nothing to assign to once every broker is gone.
	if n := anyLive(); n != nil {
		for _, l := range live {
			if l != n {
				l.leave()
				delete(live, l.name)
			}
		}
		n.m.Leave(ctx)
		if _, err := n.m.Assign(ctx, "unit-x"); !errors.Is(err, ErrNoBrokers) && err == nil {
			t.Fatalf("assign with no live broker succeeded")
		}
	}
}

// TestRejoinAfterLeaseLost: etcd unreachable past the TTL makes every
// member give up its lease (a paused broker's view of the world); once
// etcd is back, Rejoin registers them again under their node ids, the
// partitions they held are unowned, and assignment works again.
func TestRejoinAfterLeaseLost(t *testing.T) {
	srv := etcdtest.Start(t)
	c := &cluster{t: t, srv: srv}
	a, b := c.join("a"), c.join("b")
	ids := []int32{a.m.Self().NodeID, b.m.Self().NodeID}
	ctx := context.Background()
	if _, err := a.m.Assign(ctx, "held"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	for _, n := range []*node{a, b} {
		select {
		case <-n.m.Lost():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: lease not given up 10s after etcd stopped (TTL 1s)", n.name)
		}
		if n.m.Owns("held") {
			t.Fatalf("%s claims a unit with its lease lost", n.name)
		}
	}
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
	if err := a.m.Rejoin(dctx); err == nil {
		t.Fatal("rejoined with etcd down")
	}
	dcancel()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	for i, n := range []*node{a, b} {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := n.m.Rejoin(rctx)
		cancel()
		if err != nil {
			t.Fatalf("%s: rejoin: %v", n.name, err)
		}
		if n.m.Self().NodeID != ids[i] {
			t.Fatalf("%s: node id %d after rejoin, had %d", n.name, n.m.Self().NodeID, ids[i])
		}
		select {
		case <-n.m.Lost():
			t.Fatalf("%s: new lease already lost: %v", n.name, n.m.sess.Load().lease.Err())
		default:
		}
	}
	for _, n := range []*node{a, b} {
		waitView(t, n, "both brokers live again", func() bool { return len(n.m.Brokers()) == 2 })
	}
	o, err := b.m.Assign(ctx, "held")
	if err != nil {
		t.Fatal(err)
	}
	owner := a
	if o.NodeID == b.m.Self().NodeID {
		owner = b
	}
	waitView(t, owner, "owns the reassigned unit", func() bool { return owner.m.Owns("held") })
	// A member that left does not rejoin.
	a.m.Leave(ctx)
	if err := a.m.Rejoin(ctx); !errors.Is(err, ErrLeft) {
		t.Fatalf("rejoin after Leave: %v, want ErrLeft", err)
	}
}
