package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kopernik-io/kopernik/broker/ownership"
	"github.com/kopernik-io/kopernik/metadata"
)

// BrokerInfo is a live cluster broker's registration.
type BrokerInfo = ownership.BrokerInfo

// ErrNotOwner: another broker serves the partition (cluster mode). The
// error is a *NotOwnerError naming the owner; Kafka answers
// NOT_LEADER_OR_FOLLOWER so that clients refresh their metadata, Pulsar's
// lookup redirects to the owner.
var ErrNotOwner = errors.New("broker: partition served by another broker")

// NotOwnerError says who owns a partition this broker does not.
type NotOwnerError struct {
	Partition TopicName
	Owner     BrokerInfo
}

func (e *NotOwnerError) Error() string {
	return fmt.Sprintf("broker: %s is served by broker %d (%s)", e.Partition, e.Owner.NodeID, e.Owner.Name)
}

func (e *NotOwnerError) Unwrap() error { return ErrNotOwner }

// Cluster is the view handlers need of the brokers serving the cluster.
// A standalone broker has none (Service.Cluster returns nil) and serves
// every partition itself.
type Cluster interface {
	// Self is this broker's registration.
	Self() BrokerInfo
	// Brokers are the live brokers by node id.
	Brokers() []BrokerInfo
	// Owner returns the broker serving partition, assigning one (by the
	// ownership policy) when none does.
	Owner(ctx context.Context, partition TopicName) (BrokerInfo, error)
	// OwnerOf is Owner for any ownership unit (a group coordinator's slot).
	OwnerOf(ctx context.Context, unit string) (BrokerInfo, error)
	// OwnedSince reports when this broker's current ownership of unit
	// began, as its watched view knows it (ok false: it does not own unit,
	// or the view has not seen the record yet). A new value means the
	// unit was lost and owned again.
	OwnedSince(unit string) (since time.Time, ok bool)
	// Fence returns the condition of writes this broker makes as owner of
	// unit, read from the store now: its owner record as it is, which must
	// name this broker (otherwise an error wrapping ErrUnitFenced). A
	// record re-created since (another owner, or this broker again later)
	// holds another value, so a write made under this fence fails once the
	// unit moved, however briefly (PutStateFenced, CheckFence).
	Fence(ctx context.Context, unit string) (Fence, error)
	// CheckFence fails with an error wrapping ErrUnitFenced unless f still
	// holds in the store. It is a read, not a transaction: it serves
	// writers that cannot put the fence in their own write's transaction
	// (a forwarded offset commit, checked by the partition's owner).
	CheckFence(ctx context.Context, f Fence) error
}

// Fence is the etcd condition under which a broker writes as owner of an
// ownership unit (Cluster.Fence): the unit's owner record with the exact
// value it held when the fence was taken. It is plain data, so it can be
// sent to another broker with a forwarded request.
type Fence = metadata.Cond

// ErrUnitFenced: the writer no longer owns the ownership unit its write
// was made for (its lease expired or was revoked, the unit moved): the
// write was not made. Kafka answers NOT_COORDINATOR for a group's unit,
// and the client finds the coordinator again.
var ErrUnitFenced = errors.New("broker: ownership unit moved: write fenced")

// cluster adapts an ownership.Member to Cluster.
type cluster struct{ m *ownership.Member }

func (c cluster) Self() BrokerInfo      { return c.m.Self() }
func (c cluster) Brokers() []BrokerInfo { return c.m.Brokers() }
func (c cluster) Owner(ctx context.Context, p TopicName) (BrokerInfo, error) {
	return c.m.Assign(ctx, p.String())
}
func (c cluster) OwnerOf(ctx context.Context, unit string) (BrokerInfo, error) {
	return c.m.Assign(ctx, unit)
}
func (c cluster) OwnedSince(unit string) (time.Time, bool) { return c.m.OwnedSince(unit) }
func (c cluster) Fence(ctx context.Context, unit string) (Fence, error) {
	f, err := c.m.Fence(ctx, unit)
	if err != nil {
		return Fence{}, fmt.Errorf("%w: %w", ErrUnitFenced, err)
	}
	return f, nil
}
func (c cluster) CheckFence(ctx context.Context, f Fence) error {
	if err := c.m.CheckFence(ctx, f); err != nil {
		if errors.Is(err, ownership.ErrFenceMoved) {
			return fmt.Errorf("%w: %w", ErrUnitFenced, err)
		}
		return err
	}
	return nil
}

// Cluster implements Service.
func (b *Broker) Cluster() Cluster {
	if b.member == nil {
		return nil
	}
	return cluster{b.member}
}

// checkOwner fails with a *NotOwnerError unless this broker serves name
// (assigning the partition first when nobody does). Assign's answer comes
// from the watched view or the store, so a partition just assigned to this
// broker is served before the view catches up.
func (b *Broker) checkOwner(ctx context.Context, name TopicName) error {
	if b.member == nil {
		return nil
	}
	owner, err := b.member.Assign(ctx, name.String())
	if err != nil {
		// No live broker (every lease lost in an etcd outage), etcd
		// unreachable: nobody may serve it now, and clients must retry
		// (NOT_LEADER_OR_FOLLOWER, ServiceNotReady), not fail.
		return fmt.Errorf("broker: %s: finding its owner: %w: %w", name, ErrNotOwner, err)
	}
	if !b.member.Held() {
		// Not ours to serve any more: clients must look for the owner
		// (NOT_LEADER_OR_FOLLOWER, ServiceNotReady), not fail the request.
		return fmt.Errorf("broker: %s: %w: %w", name, ErrNotOwner, ownership.ErrLost)
	}
	if owner.NodeID != b.member.Self().NodeID {
		return &NotOwnerError{Partition: name, Owner: owner}
	}
	return nil
}

// ownershipLoop unloads partitions this broker no longer owns: their owner
// record moved or vanished, or the broker lost its lease (then it unloads
// everything, since it must not serve what it can no longer prove it owns,
// and rejoins with a new lease; a paused broker that wakes up is fenced
// first and then serves again).
func (b *Broker) ownershipLoop() {
	for {
		changed := b.member.Changed()
		lost := false
		select {
		case <-b.stop:
			return
		case <-changed:
		case <-b.member.Lost():
			lost = true
		}
		// Partitions close in parallel: each close waits for its appends in
		// flight, which cannot commit while etcd is away (up to the drain
		// timeout), and one after another they held the rejoin back by
		// that much per partition.
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		for _, p := range b.Partitions() {
			if !lost && b.member.Owns(p.Name().String()) {
				continue
			}
			// The view may lag a fresh assignment: ask the store.
			if !lost && b.checkOwner(context.Background(), p.Name()) == nil {
				continue
			}
			b.log.Info("unloading partition: ownership moved", "partition", p.Name(), "lease_lost", lost)
			sem <- struct{}{}
			wg.Add(1)
			go func(name string) {
				defer func() { <-sem; wg.Done() }()
				p, release, err := b.holdLoads(context.Background(), name)
				if err != nil {
					return
				}
				if p != nil {
					p.close()
				}
				release(nil)
			}(p.Name().String())
		}
		wg.Wait()
		if lost && !b.rejoin() {
			return
		}
	}
}

// rejoin retries Member.Rejoin until it succeeds (true) or the broker
// closes or left the cluster (false).
func (b *Broker) rejoin() bool {
	b.log.Error("cluster lease lost: every partition unloaded; rejoining", "node_id", b.member.Self().NodeID)
	backoff := 200 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := b.member.Rejoin(ctx)
		cancel()
		if err == nil {
			return true
		}
		if errors.Is(err, ownership.ErrLeft) {
			return false
		}
		b.log.Warn("cluster rejoin failed; retrying", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-b.stop:
			t.Stop()
			return false
		case <-t.C:
		}
		// At most a second: every second without a lease is a second
		// nothing of this broker's is served, and a failed attempt costs
		// one refused RPC (with 5 s, acks resumed up to 5.6 s after a
		// long etcd outage instead of ~1.3 s).
		backoff = min(2*backoff, time.Second)
	}
}
