package metadata

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// LeaseID names a liveness lease of a store that has them (etcd's lease id).
type LeaseID int64

// Leases is implemented by stores whose records can be bound to a liveness
// lease (Etcd): a leased record disappears when its lease ends, whoever
// wrote it. This is how cluster brokers register and own topics (Pulsar's
// ephemeral ownership nodes): a broker that stops renewing, because it died
// or was paused, loses every key bound to its lease within the lease's TTL,
// and another broker may take them.
type Leases interface {
	// GrantLease creates a lease with the given TTL and keeps it alive in
	// the background until Revoke or until renewal fails (see Lease.Done).
	GrantLease(ctx context.Context, ttl time.Duration) (*Lease, error)
	// CreateLeased creates path with value bound to lease, in one
	// transaction that also requires every path in mustExist to exist: the
	// record is created only if path is absent (else ErrExists) and every
	// mustExist record is present (else ErrNotFound naming the first
	// missing one). Binding to another holder's lease is allowed: the
	// record then lives exactly as long as that holder.
	CreateLeased(ctx context.Context, path string, value []byte, lease LeaseID, mustExist ...string) (int64, error)
}

// Lease is a granted liveness lease, renewed every TTL/3.
//
// Done is closed once the holder can no longer be sure the lease is alive:
// the store said it expired or was revoked, or no renewal succeeded for TTL
// since the last successful one was sent. The latter is a conservative
// bound: the store counts a TTL from when it processed a renewal, which was
// after the holder sent it, so when Done closes for that reason the lease
// may still be alive for a moment, never the other way round. A holder
// acting on leased records (owning topics) must stop as soon as Done is
// closed; writes it still makes are fenced by the store's transactions.
type Lease struct {
	ID  LeaseID
	TTL time.Duration

	lessor clientv3.Lease
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	err      error     // why Done was closed
	lastSent time.Time // when the last confirmed renewal (or the grant) was sent
}

// Done is closed when the lease is lost or revoked.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Err says why Done was closed (nil before).
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Held reports whether the holder may still act on the lease: Done is not
// closed and a renewal sent less than TTL ago was confirmed. It is Done's
// condition evaluated now, on the caller's clock, so that a check does not
// depend on the renewal goroutine having run: a process continued after a
// pause past its TTL runs its request handlers and its timers in any
// order, and a handler must not act as owner in between. When the bound
// has passed, Held closes Done itself (the renewal goroutine would do the
// same at its next turn).
func (l *Lease) Held() bool {
	l.mu.Lock()
	expired := l.err == nil && !time.Now().Before(l.lastSent.Add(l.TTL))
	lost := l.err != nil
	l.mu.Unlock()
	if expired {
		l.finish(fmt.Errorf("%w: lease %x: no renewal confirmed for %v", ErrLeaseExpired, l.ID, l.TTL))
	}
	return !lost && !expired
}

// confirmed records that a renewal sent at sent was confirmed.
func (l *Lease) confirmed(sent time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sent.After(l.lastSent) {
		l.lastSent = sent
	}
}

func (l *Lease) sentAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastSent
}

// Revoke ends the lease at once: the store deletes every record bound to
// it. Revoking a lost lease returns nil.
func (l *Lease) Revoke(ctx context.Context) error {
	l.finish(ErrLeaseRevoked) // first: ending renewal would report ErrClosed
	l.cancel()
	l.wg.Wait()
	_, err := l.lessor.Revoke(ctx, clientv3.LeaseID(l.ID))
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("%w: revoke lease %x: %w", ErrUnavailable, l.ID, err)
	}
	return nil
}

var (
	// ErrLeaseRevoked: the holder revoked the lease (Lease.Err after Revoke).
	ErrLeaseRevoked = errors.New("metadata: lease revoked")
	// ErrLeaseExpired: the store no longer knows the lease.
	ErrLeaseExpired = errors.New("metadata: lease expired")
)

func (l *Lease) finish(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	l.err = err
	close(l.done)
}

// keepAlive renews every TTL/3 (at least every 50ms apart). A renewal that
// fails with a transport error, or gets no answer within a second, is
// retried at once (after a short pause) until TTL has passed since the last
// confirmed renewal was sent.
func (l *Lease) keepAlive(ctx context.Context) {
	defer l.wg.Done()
	interval := max(l.TTL/3, 50*time.Millisecond)
	for {
		wait := interval
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-l.done:
			// Given up (Held found it expired): renewing on would keep
			// alive in etcd what the holder no longer acts on.
			t.Stop()
			return
		case <-t.C:
		}
		for {
			deadline := l.sentAt().Add(l.TTL)
			if !time.Now().Before(deadline) {
				l.finish(fmt.Errorf("%w: lease %x: no renewal confirmed for %v", ErrLeaseExpired, l.ID, l.TTL))
				return
			}
			sent := time.Now()
			// One attempt waits at most a second (or the renewal interval):
			// an attempt sent while etcd was away can hang on a dead
			// connection, and left to run until the lease's deadline it
			// would keep the holder from renewing once etcd is back (seen
			// after a 5 s etcd outage with a 10 s TTL: no renewal for 6 s,
			// and the lease given up in the next outage 4 s in).
			attempt := sent.Add(min(interval, time.Second))
			if attempt.After(deadline) {
				attempt = deadline
			}
			rctx, cancel := context.WithDeadline(ctx, attempt)
			// The renewal runs aside and the deadline is kept here, not
			// left to the RPC's context alone: the holder must give the
			// lease up on time whatever the client's retries and
			// reconnects do.
			type renewal struct {
				resp *clientv3.LeaseKeepAliveResponse
				err  error
			}
			got := make(chan renewal, 1)
			go func() {
				resp, err := l.lessor.KeepAliveOnce(rctx, clientv3.LeaseID(l.ID))
				got <- renewal{resp, err}
			}()
			expire := time.NewTimer(time.Until(deadline))
			var resp *clientv3.LeaseKeepAliveResponse
			var err error
			select {
			case r := <-got:
				resp, err = r.resp, r.err
			case <-expire.C:
				cancel()
				l.finish(fmt.Errorf("%w: lease %x: no renewal confirmed for %v", ErrLeaseExpired, l.ID, l.TTL))
				return
			case <-l.done: // given up (Held) or revoked
				cancel()
				expire.Stop()
				return
			case <-ctx.Done():
				cancel()
				expire.Stop()
				return
			}
			expire.Stop()
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err == nil && resp.TTL > 0 {
				l.confirmed(sent)
				break
			}
			if err == nil || errors.Is(err, rpctypes.ErrLeaseNotFound) {
				l.finish(fmt.Errorf("%w: lease %x", ErrLeaseExpired, l.ID))
				return
			}
			pause := time.NewTimer(min(interval/4, 100*time.Millisecond))
			select {
			case <-ctx.Done():
				pause.Stop()
				return
			case <-pause.C:
			}
		}
	}
}

// GrantLease grants an etcd lease of ttl (rounded up to whole seconds, at
// least 1s, as etcd counts) and keeps it alive.
func (s *Etcd) GrantLease(ctx context.Context, ttl time.Duration) (*Lease, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	secs := int64((ttl + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	sent := time.Now() // etcd starts the TTL after this: the grant counts as a renewal sent here
	resp, err := s.cli.Lease.Grant(ctx, secs)
	if err != nil {
		return nil, fail(ctx, "grant lease", "", err)
	}
	lctx, cancel := context.WithCancel(s.base)
	l := &Lease{
		ID:       LeaseID(resp.ID),
		TTL:      time.Duration(secs) * time.Second,
		lessor:   s.cli.Lease,
		cancel:   cancel,
		done:     make(chan struct{}),
		lastSent: sent,
	}
	l.wg.Add(1)
	go l.keepAlive(lctx)
	// Closing the store ends renewal; the lease is then as good as lost.
	go func() {
		select {
		case <-lctx.Done():
			l.wg.Wait()
			l.finish(ErrClosed)
		case <-l.done:
		}
	}()
	return l, nil
}

func (s *Etcd) CreateLeased(ctx context.Context, path string, value []byte, lease LeaseID, mustExist ...string) (int64, error) {
	if err := ValidatePath(path); err != nil {
		return 0, err
	}
	for _, p := range mustExist {
		if err := ValidatePath(p); err != nil {
			return 0, err
		}
	}
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	conds := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(path), "=", 0)}
	for _, p := range mustExist {
		conds = append(conds, clientv3.Compare(clientv3.CreateRevision(p), ">", 0))
	}
	// The Else branch reads what made the transaction fail.
	var elses []clientv3.Op
	elses = append(elses, clientv3.OpGet(path, clientv3.WithKeysOnly()))
	for _, p := range mustExist {
		elses = append(elses, clientv3.OpGet(p, clientv3.WithKeysOnly()))
	}
	resp, err := s.kv.Txn(ctx).
		If(conds...).
		Then(clientv3.OpPut(path, string(value), clientv3.WithLease(clientv3.LeaseID(lease)))).
		Else(elses...).
		Commit()
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return 0, fmt.Errorf("%w: lease %x for %s", ErrLeaseExpired, lease, path)
		}
		return 0, fail(ctx, "create leased", path, err)
	}
	if resp.Succeeded {
		return 1, nil
	}
	if len(resp.Responses[0].GetResponseRange().Kvs) > 0 {
		return 0, fmt.Errorf("%w: %s", ErrExists, path)
	}
	for i, p := range mustExist {
		if len(resp.Responses[i+1].GetResponseRange().Kvs) == 0 {
			return 0, fmt.Errorf("%w: %s", ErrNotFound, p)
		}
	}
	return 0, fmt.Errorf("%w: %s: transaction failed", ErrBadVersion, path)
}

var _ Leases = (*Etcd)(nil)
