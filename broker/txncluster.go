package broker

// The transaction coordinator in a cluster (docs/cluster.md, "Transactions").
//
// Transactional ids hash (FNV-1a of the coordinator key, tenant/ns/id)
// onto txnSlots ownership units, kafka-txn-coordinator://<slot>, owned like
// partitions and group slots: lease-bound owner records, assigned on first
// use by the ownership policy, reassigned when the owner's lease expires.
// Only the owner of an id's unit coordinates it (Route; the Kafka handler
// answers NOT_COORDINATOR elsewhere). The records stay where they are
// standalone, in the metadata store, so a broker that becomes a unit's
// owner adopts it: it re-reads every record of the unit into its cache
// (its memory may be stale or empty) and finishes the Prepare ones; its
// background loop then aborts the Ongoing ones that outlive their timeout.
// The loop also assigns the units of records that still have work to do
// (a transaction open or completing), so that the transactions of a dead
// coordinator resume even when its producers never come back.
//
// Markers and committed offsets of partitions owned by other brokers go
// through a TxnForwarder (the Kafka handler's internal HTTP endpoint),
// which runs the same WriteTxnMarker / ApplyTxnOffset on the owner.
//
// A transactional produce reaches the partition's owner, which need not
// coordinate the id: it then checks the record in the store (one
// linearizable read per batch) instead of its cache, holding the
// partition's txnCheck lock (read side) from the read until the batch has
// its log position. A marker takes the write side before its own position
// and the coordinator writes the Prepare state before sending any marker,
// so a batch checked after a marker's position sees the Prepare (or a later
// transaction) and no batch of a transaction lands after its marker.
//
// Pulsar transactions are not routed: the broker a client's NEW_TXN
// reached keeps its transaction, and another broker cannot find it from
// the wire id (a producer id), so its sends and acks there are refused
// (docs/transactions.md, "Not done").

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/kopernik-io/kopernik/metadata"
)

// txnSlots is how many coordinator units transactional ids spread over.
const txnSlots = 16

// TxnUnit is the ownership unit of the transactional id whose coordinator
// key is key (tenant/ns/id).
func TxnUnit(key string) string {
	h := fnv.New32a()
	h.Write([]byte(key))
	return fmt.Sprintf("kafka-txn-coordinator://%d", h.Sum32()%txnSlots)
}

// ErrTxnNotCoordinator: another broker coordinates the transactional id
// (cluster mode). The error is a *TxnNotCoordinatorError naming it.
var ErrTxnNotCoordinator = errors.New("broker: transactional id coordinated by another broker")

// ErrTxnCoordinatorLoading: this broker was just assigned the id's unit
// and is still adopting it; retriable.
var ErrTxnCoordinatorLoading = errors.New("broker: transaction coordinator loading")

// TxnNotCoordinatorError says who coordinates a transactional id.
type TxnNotCoordinatorError struct {
	Key   string
	Owner BrokerInfo
}

func (e *TxnNotCoordinatorError) Error() string {
	return fmt.Sprintf("broker: transactional id %q is coordinated by broker %d (%s)", e.Key, e.Owner.NodeID, e.Owner.Name)
}

func (e *TxnNotCoordinatorError) Unwrap() error { return ErrTxnNotCoordinator }

// TxnForwarder writes to partitions another broker owns on behalf of the
// coordinator (cluster mode). Both calls must answer only once the change
// is durable on the owner.
type TxnForwarder interface {
	ForwardTxnMarker(ctx context.Context, owner BrokerInfo, partition TopicName, m TxnMarker) error
	ForwardTxnOffset(ctx context.Context, owner BrokerInfo, o TxnOffset) error
}

// SetTxnForwarder sets the path of markers and committed offsets to
// partitions owned elsewhere. Without one such writes fail (and the
// transaction stays in its Prepare state, retried by the loop).
func (b *Broker) SetTxnForwarder(f TxnForwarder) {
	b.txns.fwd.Store(&f)
}

func (c *TxnCoordinator) forwarder() TxnForwarder {
	if f := c.fwd.Load(); f != nil {
		return *f
	}
	return nil
}

// CoordinatorOf returns the broker coordinating the transactional id key
// (assigning its unit when nobody owns it); ok false when standalone.
func (c *TxnCoordinator) CoordinatorOf(ctx context.Context, key string) (b BrokerInfo, ok bool, err error) {
	cl := c.b.Cluster()
	if cl == nil {
		return BrokerInfo{}, false, nil
	}
	b, err = cl.OwnerOf(ctx, TxnUnit(key))
	if err != nil {
		return b, true, fmt.Errorf("%w: coordinator of %q: %w", ErrTxnCoordinatorLoading, key, err)
	}
	return b, true, nil
}

// Route checks that this broker coordinates the transactional id key:
// nil when standalone or when it owns the id's unit (adopting the unit
// first if it was owned anew), a *TxnNotCoordinatorError when another
// broker does, ErrTxnCoordinatorLoading (retriable) while the unit is
// just being assigned here.
func (c *TxnCoordinator) Route(ctx context.Context, key string) error {
	owner, clustered, err := c.CoordinatorOf(ctx, key)
	if !clustered {
		return nil
	}
	if err != nil {
		return err
	}
	cl := c.b.Cluster()
	if owner.NodeID != cl.Self().NodeID {
		return &TxnNotCoordinatorError{Key: key, Owner: owner}
	}
	return c.adopt(ctx, TxnUnit(key))
}

// cached reports whether key's cached record is the one to check produces
// against: always standalone (and for Pulsar transactions); in a cluster,
// when this broker owns key's unit and adopted it under that ownership.
func (c *TxnCoordinator) cached(key string) bool {
	cl := c.b.Cluster()
	if cl == nil || isPulsarTxn(key) {
		return true
	}
	unit := TxnUnit(key)
	since, ok := cl.OwnedSince(unit)
	if !ok {
		return false
	}
	v, ok := c.adoptedView.Load(unit)
	return ok && v.(time.Time).Equal(since)
}

// adopt makes sure the cache holds the store's records of unit as of the
// current ownership: when the unit was owned anew since the last adoption,
// every record of the unit is re-read (forgotten when gone) and the
// Prepare ones are finished.
func (c *TxnCoordinator) adopt(ctx context.Context, unit string) error {
	since, ok := c.b.Cluster().OwnedSince(unit)
	if !ok {
		return fmt.Errorf("%w: %s", ErrTxnCoordinatorLoading, unit)
	}
	unfinished, err := c.adoptRecords(ctx, unit, since)
	if err != nil {
		return err
	}
	// Outside adoptMu: finishing forwards markers (HTTP round trips), and
	// other ids' requests wait for adoptMu.
	for _, id := range unfinished {
		e := c.lockEntry(id)
		err := c.finish(ctx, e)
		e.op.Unlock()
		if err != nil {
			c.log.Warn("adopted transaction left unfinished; retried in the background", "transactional_id", id, "err", err)
		}
	}
	return nil
}

// adoptRecords is adopt's reload under adoptMu; it returns the ids left in
// a Prepare state (none when the unit was already adopted under since).
func (c *TxnCoordinator) adoptRecords(ctx context.Context, unit string, since time.Time) ([]string, error) {
	c.adoptMu.Lock()
	defer c.adoptMu.Unlock()
	if prev, seen := c.adopted[unit]; seen && prev.Equal(since) {
		return nil, nil
	}
	names, err := c.b.store.Children(ctx, metadata.Join(pathTransactions))
	if err != nil && !errors.Is(err, metadata.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrTxnCoordinatorLoading, err)
	}
	ids := map[string]bool{}
	for _, n := range names {
		if id, ok := unescapeStateSegment(n); ok && TxnUnit(id) == unit {
			ids[id] = true
		}
	}
	// Cached ids of the unit that are no longer in the store are re-read
	// too (and so forgotten).
	c.mu.Lock()
	for id := range c.mu.txns {
		if TxnUnit(id) == unit {
			ids[id] = true
		}
	}
	c.mu.Unlock()
	var unfinished []string
	for id := range ids {
		m, ok, err := c.reload(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTxnCoordinatorLoading, err)
		}
		if ok && (m.State == TxnPrepareCommit || m.State == TxnPrepareAbort) {
			unfinished = append(unfinished, id)
		}
	}
	c.adopted[unit] = since
	c.adoptedView.Store(unit, since)
	c.log.Info("transaction coordinator unit adopted", "unit", unit, "ids", len(ids), "unfinished", len(unfinished))
	return unfinished, nil
}

// reload replaces id's cached record with the store's (or forgets it).
func (c *TxnCoordinator) reload(ctx context.Context, id string) (TxnMetadata, bool, error) {
	e := c.lockEntry(id)
	defer e.op.Unlock()
	r, err := c.b.store.Get(ctx, txnPath(id))
	if errors.Is(err, metadata.ErrNotFound) {
		e.rw.Lock()
		e.m, e.ok = TxnMetadata{}, false
		e.rw.Unlock()
		return TxnMetadata{}, false, nil
	}
	if err != nil {
		return TxnMetadata{}, false, err
	}
	var m TxnMetadata
	if err := json.Unmarshal(r.Value, &m); err != nil {
		return TxnMetadata{}, false, fmt.Errorf("broker: decoding %s: %w", txnPath(id), err)
	}
	c.cache(e, m)
	return m, true, nil
}

// adoptPending assigns (and, where this broker wins them, adopts) the units
// of records with work left: a transaction Ongoing or completing. Run by
// the background loop in cluster mode before CheckTimeouts. Cost per
// round: one listing of the records, plus one read per record of a unit
// that nobody owns in this broker's view.
func (c *TxnCoordinator) adoptPending(ctx context.Context) {
	names, err := c.b.store.Children(ctx, metadata.Join(pathTransactions))
	if err != nil {
		if !errors.Is(err, metadata.ErrNotFound) && ctx.Err() == nil {
			c.log.Warn("listing transactions to adopt failed", "err", err)
		}
		return
	}
	cl := c.b.Cluster()
	self := cl.Self().NodeID
	checked := map[string]bool{}
	for _, n := range names {
		id, ok := unescapeStateSegment(n)
		if !ok || isPulsarTxn(id) {
			continue
		}
		unit := TxnUnit(id)
		if checked[unit] {
			continue
		}
		if _, owned := cl.OwnedSince(unit); !owned {
			if o, ok := c.b.member.Lookup(unit); ok && o.NodeID != self {
				checked[unit] = true // a live broker coordinates it
				continue
			}
			// Nobody's: only a record with work left makes it worth
			// assigning.
			r, err := c.b.store.Get(ctx, txnPath(id))
			if err != nil {
				continue
			}
			var m TxnMetadata
			if json.Unmarshal(r.Value, &m) != nil || !slices.Contains([]TxnState{TxnOngoing, TxnPrepareCommit, TxnPrepareAbort}, m.State) {
				continue
			}
		}
		checked[unit] = true
		owner, err := cl.OwnerOf(ctx, unit)
		if err != nil || owner.NodeID != self {
			continue
		}
		if err := c.adopt(ctx, unit); err != nil && !errors.Is(err, ErrTxnCoordinatorLoading) {
			c.log.Warn("adopting transactions failed; retried next round", "unit", unit, "err", err)
		}
	}
}

// appendChecked is AppendAsync for a produce whose transactional id this
// broker does not coordinate: the record is read from the store under
// p's txnCheck read lock, held until the batch has its position (see the
// file comment).
func (c *TxnCoordinator) appendChecked(ctx context.Context, p *Partition, key string, epoch int16, req AppendRequest) (*PendingAppend, error) {
	p.txnCheck.RLock()
	defer p.txnCheck.RUnlock()
	r, err := c.b.store.Get(ctx, txnPath(key))
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown transactional id %q", ErrInvalidProducerIDMapping, key)
	}
	if err != nil {
		return nil, err
	}
	var m TxnMetadata
	if err := json.Unmarshal(r.Value, &m); err != nil {
		return nil, fmt.Errorf("broker: decoding %s: %w", txnPath(key), err)
	}
	if err := checkTxnAppend(m, p, req.ProducerID, epoch); err != nil {
		return nil, err
	}
	return p.AppendAsync(req)
}

// AppendTxn is Append for a produce naming its transactional id (Kafka):
// checked against the cached record where this broker coordinates the id
// and has adopted its unit, else against the store's (appendChecked; a
// new coordinator may get a produce of a transaction before any call that
// adopts the unit).
func (c *TxnCoordinator) AppendTxn(ctx context.Context, p *Partition, key string, epoch int16, req AppendRequest) (AppendResult, error) {
	var h *PendingAppend
	var err error
	if c.cached(key) {
		h, err = c.AppendAsync(p, epoch, req)
	} else {
		h, err = c.appendChecked(ctx, p, key, epoch, req)
	}
	if err != nil {
		return AppendResult{}, err
	}
	return h.Wait(ctx)
}

// ApplyTxnOffset applies a committed transaction's offset (or Pulsar acks)
// to a partition this broker owns; the owner's end of ForwardTxnOffset.
func (b *Broker) ApplyTxnOffset(ctx context.Context, o TxnOffset) error {
	return b.applyTxnOffset(ctx, o)
}
