package metadata

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/metadata/etcdtest"
)

// TestEtcdLeasedRecords: a leased record exists while its lease lives, is
// created only if absent and its required records exist, and vanishes with
// the lease, also when the lease belongs to another client.
func TestEtcdLeasedRecords(t *testing.T) {
	srv, prefix := etcdtest.Shared(t)
	a := openEtcd(t, srv, WithEtcdPrefix(prefix))
	b := openEtcd(t, srv, WithEtcdPrefix(prefix))
	ctx := context.Background()

	la, err := a.GrantLease(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateLeased(ctx, "/reg/a", []byte("a"), la.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateLeased(ctx, "/reg/a", []byte("x"), la.ID); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	if _, err := b.CreateLeased(ctx, "/own/t1", []byte("a"), la.ID, "/reg/missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("create requiring a missing record: %v, want ErrNotFound", err)
	}
	// b binds a record to a's lease (assigning a topic to broker a).
	if _, err := b.CreateLeased(ctx, "/own/t1", []byte("a"), la.ID, "/reg/a"); err != nil {
		t.Fatal(err)
	}
	// Renewal keeps them past several TTLs.
	time.Sleep(2500 * time.Millisecond)
	for _, p := range []string{"/reg/a", "/own/t1"} {
		if _, err := b.Get(ctx, p); err != nil {
			t.Fatalf("%s after 2.5 TTLs of renewal: %v", p, err)
		}
	}
	select {
	case <-la.Done():
		t.Fatalf("lease lost while renewed: %v", la.Err())
	default:
	}
	if err := la.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	<-la.Done()
	for _, p := range []string{"/reg/a", "/own/t1"} {
		if _, err := b.Get(ctx, p); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s after revoke: %v, want ErrNotFound", p, err)
		}
	}
	if _, err := b.CreateLeased(ctx, "/own/t2", []byte("a"), la.ID); !errors.Is(err, ErrLeaseExpired) {
		t.Fatalf("create on a revoked lease: %v, want ErrLeaseExpired", err)
	}
}

// TestEtcdLeaseExpiresWhenHolderStops: a holder that stops renewing (its
// client closed, as a killed broker's) loses its records within the TTL
// plus etcd's expiry granularity, and its own Done fires.
func TestEtcdLeaseExpiresWhenHolderStops(t *testing.T) {
	srv, prefix := etcdtest.Shared(t)
	a, err := OpenEtcd(srv.Endpoints(), WithEtcdPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	b := openEtcd(t, srv, WithEtcdPrefix(prefix))
	ctx := context.Background()
	la, err := a.GrantLease(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateLeased(ctx, "/reg/a", []byte("a"), la.ID); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	a.Close()
	select {
	case <-la.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the store closed")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := b.Get(ctx, "/reg/a")
		if errors.Is(err, ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leased record still there 10s after its holder stopped: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("leased record gone %v after its holder stopped (TTL %v)", time.Since(stopped).Round(10*time.Millisecond), la.TTL)
}

// TestEtcdLeaseLostWhileEtcdDown: with etcd unreachable the holder cannot
// renew, so Done fires within about one TTL; it must not wait for etcd.
func TestEtcdLeaseLostWhileEtcdDown(t *testing.T) {
	srv := etcdtest.Start(t)
	s := openEtcd(t, srv, WithEtcdDialTimeout(2*time.Second))
	l, err := s.GrantLease(context.Background(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	start := time.Now()
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed 5s after etcd stopped (TTL 1s)")
	}
	if !errors.Is(l.Err(), ErrLeaseExpired) {
		t.Fatalf("Err = %v, want ErrLeaseExpired", l.Err())
	}
	t.Logf("lease given up %v after etcd stopped", time.Since(start).Round(10*time.Millisecond))
}

// TestLeaseHeldOnTheClock: Held judges the lease on the caller's clock, not
// on whether the renewal goroutine has run: once a TTL has passed since the
// last confirmed renewal was sent (a process continued after a pause past
// its TTL, before its renewal goroutine is scheduled), Held is false and
// closes Done. No renewal goroutine runs here, as in that moment.
func TestLeaseHeldOnTheClock(t *testing.T) {
	l := &Lease{ID: 1, TTL: time.Second, done: make(chan struct{}), lastSent: time.Now()}
	if !l.Held() {
		t.Fatal("a lease renewed just now is not held")
	}
	select {
	case <-l.Done():
		t.Fatal("Done closed while the lease is held")
	default:
	}
	l.confirmed(time.Now().Add(-1100 * time.Millisecond)) // older than the last: ignored
	if !l.Held() {
		t.Fatal("an older confirmation moved the renewal time back")
	}
	l.mu.Lock()
	l.lastSent = time.Now().Add(-1100 * time.Millisecond) // paused for 1.1 s since
	l.mu.Unlock()
	if l.Held() {
		t.Fatal("held 1.1s after the last renewal was sent (TTL 1s)")
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("Held found the lease expired but did not close Done")
	}
	if !errors.Is(l.Err(), ErrLeaseExpired) {
		t.Fatalf("Err %v, want ErrLeaseExpired", l.Err())
	}
}
