// Package ownership is cluster membership and topic ownership for N stateless
// brokers on one etcd (Pulsar's model: brokers register with a lease, topics
// are owned through lease-bound keys, any broker answers where a topic lives).
//
// # Records (under /cluster/<cluster>)
//
//	node-ids/<escaped broker name>  {"nodeId": 3}        durable: a broker keeps its id across restarts
//	next-node-id                    {"next": 4}          CAS counter allocating node ids
//	brokers/<nodeId>                BrokerInfo JSON      bound to the broker's lease
//	owners/<escaped unit>           Owner JSON           bound to the OWNER's lease
//
// A broker's name is its advertised identity (host:port of its first
// listener, or a configured name); node ids are Kafka's broker ids, stable
// for a name. A unit is what is owned: a topic-partition's name.
//
// # Assignment (the policy)
//
// Any broker may assign an unowned unit: Assign picks the live broker that
// owns the fewest units (from its watched view of the owners), breaking ties
// by rendezvous hashing of (unit, node id) so that brokers whose views lag
// one another still spread units instead of all choosing the lowest id; it
// then creates the owner record bound to the chosen broker's lease, in one
// transaction that requires the record to be absent and the chosen broker's
// registration to exist. Whoever wins that transaction decides; the others
// read the winner. So a unit has at most one owner at any revision, always a
// broker whose lease was alive when it was assigned, and the record vanishes
// with that lease: a dead or paused broker's units become unowned within its
// TTL, and the next lookup assigns them to a live broker. No data moves:
// the log is in shared storage, so an owner change is a metadata change.
//
// # Fencing
//
// A member must stop serving its units as soon as its lease is lost
// (Member.Lost): it can no longer be sure it owns them. Writes a stale
// owner still attempts are fenced by the storage commit, which checks the
// owner record's version in the same etcd transaction (managed-ledger
// commits in cluster mode); this package only provides OwnerRecord to
// build that check.
package ownership

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kopernik-io/kopernik/metadata"
)

// Store is what membership needs: the metadata store contract plus leases
// (the etcd store).
type Store interface {
	metadata.Store
	metadata.Leases
}

// BrokerInfo is a live broker's registration.
type BrokerInfo struct {
	NodeID int32  `json:"nodeId"`
	Name   string `json:"name"`
	// Addresses clients connect to ("host:port"; empty when the listener is off).
	Kafka  string `json:"kafka,omitempty"`
	Pulsar string `json:"pulsar,omitempty"`
	HTTP   string `json:"http,omitempty"`
	// Lease the registration (and every unit this broker owns) is bound to.
	Lease   metadata.LeaseID `json:"lease"`
	Started time.Time        `json:"started"`
}

// Owner is an owner record's value.
type Owner struct {
	NodeID int32     `json:"nodeId"`
	Name   string    `json:"name"`
	Since  time.Time `json:"since"`
}

// Config is a member's identity and lease.
type Config struct {
	Cluster string // cluster name; records live under /cluster/<Cluster>
	Name    string // advertised identity, stable across restarts
	Kafka   string
	Pulsar  string
	HTTP    string
	// LeaseTTL bounds how long a dead broker keeps its units (default 5s;
	// etcd counts whole seconds).
	LeaseTTL time.Duration
	Logger   *slog.Logger
}

// ErrNoBrokers: no live broker to assign a unit to.
var ErrNoBrokers = errors.New("ownership: no live brokers")

// ErrLost: this member's lease is lost; it owns nothing until it rejoins.
var ErrLost = errors.New("ownership: membership lease lost")

// ErrLeft: the member left the cluster (Leave); it does not rejoin.
var ErrLeft = errors.New("ownership: left the cluster")

// Member is one broker's membership: its registration, and a watched view
// of the live brokers and of every owner record.
type Member struct {
	store Store
	cfg   Config
	root  string
	id    int32 // node id, fixed for the broker's name
	sess  atomic.Pointer[session]
	log   *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  chan struct{} // closed once the first full read of the view is done

	mu struct {
		sync.Mutex
		brokers map[int32]BrokerInfo
		owners  map[string]ownerEntry // unit -> owner
		counts  map[int32]int         // units owned per node
		changed chan struct{}         // closed and replaced on every view change
	}
}

// session is one lease and the registration bound to it; Rejoin replaces
// a lost one.
type session struct {
	lease *metadata.Lease
	self  BrokerInfo
}

type ownerEntry struct {
	Owner
	version int64
}

// Join registers the broker: allocates (or finds) its node id, grants its
// lease, creates its registration, and starts watching the view. The
// returned member is ready: Brokers includes itself.
func Join(ctx context.Context, store Store, cfg Config) (*Member, error) {
	if cfg.Cluster == "" || cfg.Name == "" {
		return nil, errors.New("ownership: cluster name and broker name are required")
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Member{store: store, cfg: cfg, root: metadata.Join("cluster", escape(cfg.Cluster)), log: cfg.Logger, ready: make(chan struct{})}
	m.mu.brokers = map[int32]BrokerInfo{}
	m.mu.owners = map[string]ownerEntry{}
	m.mu.counts = map[int32]int{}
	m.mu.changed = make(chan struct{})

	id, err := m.nodeID(ctx)
	if err != nil {
		return nil, err
	}
	m.id = id
	if err := m.startSession(ctx); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.wg.Add(1)
	go m.watch(wctx)
	select {
	case <-m.ready:
	case <-ctx.Done():
		m.Leave(context.WithoutCancel(ctx))
		return nil, ctx.Err()
	}
	m.log.Info("joined cluster", "cluster", cfg.Cluster, "broker", cfg.Name, "node_id", id, "lease_ttl", m.sess.Load().lease.TTL)
	return m, nil
}

// startSession grants a lease and registers under it.
func (m *Member) startSession(ctx context.Context) error {
	lease, err := m.store.GrantLease(ctx, m.cfg.LeaseTTL)
	if err != nil {
		return fmt.Errorf("ownership: grant lease: %w", err)
	}
	self := BrokerInfo{NodeID: m.id, Name: m.cfg.Name, Kafka: m.cfg.Kafka, Pulsar: m.cfg.Pulsar, HTTP: m.cfg.HTTP, Lease: lease.ID, Started: time.Now().UTC()}
	val, _ := json.Marshal(self)
	if err := m.register(ctx, val, lease.ID); err != nil {
		_ = lease.Revoke(context.WithoutCancel(ctx))
		return err
	}
	m.sess.Store(&session{lease: lease, self: self})
	return nil
}

// Rejoin starts a new session after the lease was lost (a pause past the
// TTL, etcd unreachable): it revokes the old lease if etcd still has it
// (its units are released at once), then grants a new lease and registers
// under the same node id. Partitions owned under the
// old lease are gone; they are assigned anew on their next lookup. It is
// a no-op while the current lease is held.
func (m *Member) Rejoin(ctx context.Context) error {
	old := m.sess.Load()
	select {
	case <-old.lease.Done():
	default:
		return nil
	}
	if errors.Is(old.lease.Err(), metadata.ErrLeaseRevoked) {
		return ErrLeft
	}
	// The lost lease may still be alive in etcd: etcd renews every lease
	// in full when it restarts, and a holder judging on its own clock
	// gives up before etcd expires it. Its registration and owner records
	// would keep this broker's units from every broker (and its new
	// registration waiting) for up to a TTL. Nothing is served under it
	// any more (the caller stopped serving when Lost closed), so end it.
	if err := old.lease.Revoke(ctx); err != nil {
		return fmt.Errorf("ownership: ending the lost lease: %w", err)
	}
	if err := m.startSession(ctx); err != nil {
		return err
	}
	m.log.Info("rejoined cluster after losing the lease", "cluster", m.cfg.Cluster, "broker", m.cfg.Name, "node_id", m.id, "lost", old.lease.Err())
	return nil
}

// register creates brokers/<id>. A record left by this broker's previous
// life (killed before its lease expired) is waited out: its lease is not
// ours, and overwriting it would let the old lease delete our
// registration when it expires.
func (m *Member) register(ctx context.Context, val []byte, lease metadata.LeaseID) error {
	path := m.brokerPath(m.id)
	for {
		_, err := m.store.CreateLeased(ctx, path, val, lease)
		if err == nil {
			return nil
		}
		if !errors.Is(err, metadata.ErrExists) {
			return fmt.Errorf("ownership: register %s: %w", path, err)
		}
		m.log.Info("previous registration still leased; waiting for it to expire", "path", path)
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("ownership: register %s: previous registration did not expire: %w", path, ctx.Err())
		case <-t.C:
		}
	}
}

// nodeID finds this name's id or allocates the next one with CAS.
func (m *Member) nodeID(ctx context.Context) (int32, error) {
	idPath := metadata.Join("cluster", escape(m.cfg.Cluster), "node-ids", escape(m.cfg.Name))
	counter := m.root + "/next-node-id"
	for {
		if rec, err := m.store.Get(ctx, idPath); err == nil {
			var v struct {
				NodeID int32 `json:"nodeId"`
			}
			if err := json.Unmarshal(rec.Value, &v); err != nil {
				return 0, fmt.Errorf("ownership: %s: %w", idPath, err)
			}
			return v.NodeID, nil
		} else if !errors.Is(err, metadata.ErrNotFound) {
			return 0, fmt.Errorf("ownership: %s: %w", idPath, err)
		}
		next, version := int32(0), metadata.NotExists
		if rec, err := m.store.Get(ctx, counter); err == nil {
			var v struct {
				Next int32 `json:"next"`
			}
			if err := json.Unmarshal(rec.Value, &v); err != nil {
				return 0, fmt.Errorf("ownership: %s: %w", counter, err)
			}
			next, version = v.Next, rec.Version
		} else if !errors.Is(err, metadata.ErrNotFound) {
			return 0, fmt.Errorf("ownership: %s: %w", counter, err)
		}
		val, _ := json.Marshal(map[string]int32{"next": next + 1})
		if _, err := m.store.Put(ctx, counter, val, version); err != nil {
			if errors.Is(err, metadata.ErrBadVersion) || errors.Is(err, metadata.ErrExists) || errors.Is(err, metadata.ErrNotFound) {
				continue // another broker allocated; read again
			}
			return 0, fmt.Errorf("ownership: %s: %w", counter, err)
		}
		idVal, _ := json.Marshal(map[string]int32{"nodeId": next})
		if _, err := m.store.Put(ctx, idPath, idVal, metadata.NotExists); err != nil {
			if errors.Is(err, metadata.ErrExists) {
				continue // the same name joined concurrently: use its id (ours is skipped)
			}
			return 0, fmt.Errorf("ownership: %s: %w", idPath, err)
		}
		return next, nil
	}
}

// Self is this broker's registration.
func (m *Member) Self() BrokerInfo { return m.sess.Load().self }

// Lost is closed when this member's current lease is lost (or Leave was
// called): the member must stop serving every unit, and may Rejoin.
func (m *Member) Lost() <-chan struct{} { return m.sess.Load().lease.Done() }

// Held reports whether this member still holds its current lease, judged
// now on its own clock (metadata.Lease.Held): false as soon as no renewal
// was confirmed for a TTL, even before Lost is closed by the renewal
// goroutine. Every decision to act as an owner checks it.
func (m *Member) Held() bool { return m.sess.Load().lease.Held() }

// Brokers returns the live brokers, by node id.
func (m *Member) Brokers() []BrokerInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]BrokerInfo, 0, len(m.mu.brokers))
	for _, b := range m.mu.brokers {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// Broker returns the live broker with node id, if any.
func (m *Member) Broker(id int32) (BrokerInfo, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.mu.brokers[id]
	return b, ok
}

// Changed returns a channel closed at the next change of the view.
func (m *Member) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.changed
}

// Lookup returns the unit's owner as this member's view knows it.
func (m *Member) Lookup(unit string) (BrokerInfo, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.mu.owners[unit]
	if !ok {
		return BrokerInfo{}, false
	}
	b, ok := m.mu.brokers[o.NodeID]
	return b, ok
}

// Owns reports whether this member owns unit and still holds its lease.
func (m *Member) Owns(unit string) bool {
	if !m.Held() {
		return false
	}
	b, ok := m.Lookup(unit)
	return ok && b.NodeID == m.id
}

// OwnedSince returns the Since of unit's owner record in this member's
// view, if the record names this member (and its lease is held).
func (m *Member) OwnedSince(unit string) (time.Time, bool) {
	if !m.Owns(unit) {
		return time.Time{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.mu.owners[unit]
	return o.Since, ok && o.NodeID == m.id
}

// Owned returns the units this member owns, sorted.
func (m *Member) Owned() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for u, o := range m.mu.owners {
		if o.NodeID == m.id {
			out = append(out, u)
		}
	}
	sort.Strings(out)
	return out
}

// Assign returns the unit's owner, assigning it first if it has none (see
// the package doc for the policy). The answer is authoritative as of the
// store read or transaction it came from.
func (m *Member) Assign(ctx context.Context, unit string) (BrokerInfo, error) {
	if unit == "" {
		return BrokerInfo{}, errors.New("ownership: empty unit")
	}
	path := m.ownerPath(unit)
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return BrokerInfo{}, err
		}
		if b, ok := m.Lookup(unit); ok {
			return b, nil
		}
		// The view may lag the store: read the record itself.
		if rec, err := m.store.Get(ctx, path); err == nil {
			var o Owner
			if err := json.Unmarshal(rec.Value, &o); err != nil {
				return BrokerInfo{}, fmt.Errorf("ownership: %s: %w", path, err)
			}
			if b, ok := m.waitBroker(ctx, o.NodeID); ok {
				return b, nil
			}
			return BrokerInfo{}, fmt.Errorf("ownership: %s owned by node %d, which is not registered", unit, o.NodeID)
		} else if !errors.Is(err, metadata.ErrNotFound) {
			return BrokerInfo{}, fmt.Errorf("ownership: %s: %w", path, err)
		}
		cand, ok := m.choose(unit)
		if !ok {
			return BrokerInfo{}, ErrNoBrokers
		}
		val, _ := json.Marshal(Owner{NodeID: cand.NodeID, Name: cand.Name, Since: time.Now().UTC()})
		_, err := m.store.CreateLeased(ctx, path, val, cand.Lease, m.brokerPath(cand.NodeID))
		switch {
		case err == nil:
			m.log.Debug("assigned", "unit", unit, "node_id", cand.NodeID)
			return cand, nil
		case errors.Is(err, metadata.ErrExists):
			// Someone else assigned it: read theirs.
		case errors.Is(err, metadata.ErrNotFound), errors.Is(err, metadata.ErrLeaseExpired):
			// The candidate died since our view saw it: forget it and choose again.
			m.dropBroker(cand.NodeID)
		default:
			return BrokerInfo{}, fmt.Errorf("ownership: assign %s: %w", unit, err)
		}
		if attempt > 20 {
			return BrokerInfo{}, fmt.Errorf("ownership: assign %s: no stable owner after %d attempts", unit, attempt)
		}
	}
}

// Release gives up a unit this member owns (unload): the owner record is
// deleted if it still names this member. Other members assign it anew.
func (m *Member) Release(ctx context.Context, unit string) error {
	m.mu.Lock()
	o, ok := m.mu.owners[unit]
	m.mu.Unlock()
	if !ok || o.NodeID != m.id {
		return nil
	}
	err := m.store.Delete(ctx, m.ownerPath(unit), o.version)
	if err != nil && !errors.Is(err, metadata.ErrNotFound) && !errors.Is(err, metadata.ErrBadVersion) {
		return fmt.Errorf("ownership: release %s: %w", unit, err)
	}
	return nil
}

// OwnerRecord returns the path and version of the unit's owner record in
// this member's view, for storage commits that must fail once ownership
// moved (fencing). ok is false unless this member owns the unit.
func (m *Member) OwnerRecord(unit string) (path string, version int64, ok bool) {
	if !m.Owns(unit) {
		return "", 0, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.mu.owners[unit]
	return m.ownerPath(unit), o.version, true
}

// Fence returns the condition under which this member may write for unit
// (fencing, like BookKeeper's): the unit's owner record with the value it
// holds now, read from the store, which must name this member. A record
// re-created for another owner (or for this member again, later) holds
// another value, so a write conditioned on this one fails once ownership
// moved, however briefly.
func (m *Member) Fence(ctx context.Context, unit string) (metadata.Cond, error) {
	if !m.Held() {
		return metadata.Cond{}, ErrLost
	}
	path := m.ownerPath(unit)
	rec, err := m.store.Get(ctx, path)
	if err != nil {
		return metadata.Cond{}, fmt.Errorf("ownership: fence of %s: %w", unit, err)
	}
	var o Owner
	if err := json.Unmarshal(rec.Value, &o); err != nil {
		return metadata.Cond{}, fmt.Errorf("ownership: %s: %w", path, err)
	}
	if o.NodeID != m.id {
		return metadata.Cond{}, fmt.Errorf("ownership: %s is owned by node %d, not %d", unit, o.NodeID, m.id)
	}
	return metadata.Cond{Path: path, Value: rec.Value}, nil
}

// ErrFenceMoved: a fence (Fence) no longer holds: the unit's owner record
// is gone or was re-created.
var ErrFenceMoved = errors.New("ownership: unit owned anew since the fence was taken")

// CheckFence fails with ErrFenceMoved unless the store still holds fence's
// owner record with fence's value. Only owner records of this cluster
// fence: any other condition is refused (ErrFenceMoved), since it may come
// from another broker's request. A read, not a transaction: a write made
// after it is fenced only as far as the time between the two.
func (m *Member) CheckFence(ctx context.Context, fence metadata.Cond) error {
	if !strings.HasPrefix(fence.Path, m.root+"/owners/") || fence.Value == nil || fence.Absent {
		return fmt.Errorf("%w: %q is not an owner record's fence", ErrFenceMoved, fence.Path)
	}
	rec, err := m.store.Get(ctx, fence.Path)
	if errors.Is(err, metadata.ErrNotFound) {
		return fmt.Errorf("%w: %s has no owner", ErrFenceMoved, fence.Path)
	}
	if err != nil {
		return fmt.Errorf("ownership: checking fence %s: %w", fence.Path, err)
	}
	if !bytes.Equal(rec.Value, fence.Value) {
		return fmt.Errorf("%w: %s", ErrFenceMoved, fence.Path)
	}
	return nil
}

// Leave revokes the lease (registration and owned units vanish at once)
// and stops the view. Idempotent.
func (m *Member) Leave(ctx context.Context) error {
	err := m.sess.Load().lease.Revoke(ctx)
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	return err
}

// choose picks the candidate for unit: fewest owned units, ties broken by
// rendezvous hash.
func (m *Member) choose(unit string) (BrokerInfo, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var best BrokerInfo
	found := false
	var bestCount int
	var bestHash uint64
	for _, b := range m.mu.brokers {
		c := m.mu.counts[b.NodeID]
		h := rendezvous(unit, b.NodeID)
		if !found || c < bestCount || (c == bestCount && h > bestHash) {
			best, bestCount, bestHash, found = b, c, h, true
		}
	}
	return best, found
}

func rendezvous(unit string, node int32) uint64 {
	h := fnv.New64a()
	h.Write([]byte(unit))
	h.Write([]byte{0, byte(node >> 24), byte(node >> 16), byte(node >> 8), byte(node)})
	return h.Sum64()
}

// waitBroker returns the registration of node, reading the store when the
// view does not have it yet.
func (m *Member) waitBroker(ctx context.Context, node int32) (BrokerInfo, bool) {
	if b, ok := m.Broker(node); ok {
		return b, true
	}
	rec, err := m.store.Get(ctx, m.brokerPath(node))
	if err != nil {
		return BrokerInfo{}, false
	}
	var b BrokerInfo
	if json.Unmarshal(rec.Value, &b) != nil {
		return BrokerInfo{}, false
	}
	return b, true
}

func (m *Member) dropBroker(node int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.mu.brokers[node]; ok {
		delete(m.mu.brokers, node)
		m.notifyLocked()
	}
}

func (m *Member) notifyLocked() {
	close(m.mu.changed)
	m.mu.changed = make(chan struct{})
}

func (m *Member) brokerPath(id int32) string {
	return m.root + "/brokers/" + strconv.Itoa(int(id))
}

func (m *Member) ownerPath(unit string) string { return m.root + "/owners/" + escape(unit) }

// escape makes any string one path segment ("u" + path escape, so that
// "." and ".." cannot occur and '/' is %2F).
func escape(s string) string { return "u" + url.PathEscape(s) }

func unescape(seg string) (string, bool) {
	if !strings.HasPrefix(seg, "u") {
		return "", false
	}
	s, err := url.PathUnescape(seg[1:])
	return s, err == nil
}
