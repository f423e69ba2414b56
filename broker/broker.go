package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kopernik-io/kopernik/broker/ownership"
	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/managedledger/compact"
	"github.com/kopernik-io/kopernik/metadata"
)

// Metadata layout (paths in the metadata store):
//
//	/admin/cluster                     {"clusterId": "..."}
//	/admin/tenants/<tenant>            TenantInfo
//	/admin/policies/<tenant>/<ns>      Policies
//	/admin/topics/<tenant>/<ns>/<topic> topicRecord
const (
	pathCluster  = "/admin/cluster"
	pathTenants  = "/admin/tenants"
	pathPolicies = "/admin/policies"
	pathTopics   = "/admin/topics"
)

// topicRecord is a topic's persisted metadata.
type topicRecord struct {
	Partitions int       `json:"partitions"`
	Created    time.Time `json:"created"`
	Policies   Policies  `json:"policies"`
}

// Options configures a Broker.
type Options struct {
	Store   metadata.Store
	Ledgers *managedledger.Factory
	// Defaults are the broker-wide policies namespaces inherit.
	Defaults EffectivePolicies
	// Sync is the durability policy of every ledger (Sync and SyncInterval used).
	Sync   managedledger.Config
	Logger *slog.Logger
	// RetentionInterval is how often loaded partitions apply their retention
	// policy (default 1 minute; negative disables the loop, ApplyRetention
	// still works). Pulsar's retentionCheckIntervalInSeconds, Kafka's
	// log.retention.check.interval.ms.
	RetentionInterval time.Duration
	// Transactions configures the transaction coordinator (txn.go).
	Transactions TxnOptions
	// Cluster, when set, is this broker's membership in a cluster of
	// brokers sharing the metadata store: it serves only the partitions
	// it owns (ErrNotOwner for the others) and unloads those it loses.
	Cluster *ownership.Member
	// Compactor stores compacted views (compaction.go); nil: compaction off.
	Compactor *compact.Compactor
	// CompactionInterval is how often the compaction pass runs (default
	// 30 s, Kafka's log.cleaner.backoff.ms order; negative disables it).
	CompactionInterval time.Duration
}

// DefaultPolicies are the broker-wide defaults: keep consumed data 7 days
// (Kafka's retention.ms default), no size limit, 1 MiB messages (Kafka's
// message.max.bytes and Pulsar's maxMessageSize are both about that), 128 MiB
// ledgers, auto-creation on, non-partitioned auto-created topics.
func DefaultPolicies() EffectivePolicies {
	return EffectivePolicies{
		RetentionTime:            7 * 24 * time.Hour,
		RetentionBytes:           -1,
		MaxMessageBytes:          1 << 20,
		CompressionType:          "producer",
		SegmentBytes:             128 << 20,
		SegmentAge:               4 * time.Hour,
		AutoTopicCreation:        true,
		AutoTopicPartitions:      0,
		AutoSubscriptionCreation: true,
		OffloadThresholdBytes:    -1,
		OffloadThresholdSeconds:  -1,
		OffloadDeletionLag:       4 * time.Hour,
		OffloadReadPriority:      ReadTieredFirst,
		CleanupPolicy:            CleanupDelete,
		MinCleanableDirtyRatio:   0.5,
		MaxCompactionLag:         math.MaxInt64,
		DeleteRetention:          24 * time.Hour,
	}
}

// Offload read priorities (Pulsar's managedLedgerDataReadPriority values).
const (
	ReadTieredFirst = "tiered-storage-first"
	ReadLocalFirst  = "local-first"
)

// Broker implements Service over a metadata store and a managed-ledger factory.
//
// Lock order in this file, partition.go and registry.go (outer first):
// Broker.createMu, Broker.mu, Partition.appendMu, Partition.mu,
// Subscription.mu; managedledger's locks are taken inside all of them and
// never call back. Partitions are closed (Partition.close) without
// Broker.mu held, and no metadata-store call is made with Broker.mu held.
type Broker struct {
	store     metadata.Store
	ledgers   *managedledger.Factory
	compactor *compact.Compactor // nil: compaction off
	defaults  EffectivePolicies
	sync      managedledger.Config
	log       *slog.Logger
	clusterID string
	member    *ownership.Member // nil: standalone, every partition is served here

	// createMu serialises topic creation/deletion so that check-then-create is atomic.
	createMu sync.Mutex

	stop chan struct{}  // closed by Close: ends background loops
	bg   sync.WaitGroup // background loops

	mu struct {
		sync.Mutex
		closed     bool
		partitions map[string]*Partition // by full partition name
		loading    map[string]*loadCall  // partitions being loaded, by full name
		listeners  []func(MetadataChange)
	}
	topics topicCache
	txns   *TxnCoordinator
}

// loadCall is one partition load that concurrent OpenPartition calls
// share, or (held) a hold on loading while a partition is unloaded or
// deleted (holdLoads).
type loadCall struct {
	done chan struct{}
	p    *Partition
	err  error
	held bool
}

var _ Service = (*Broker)(nil)

// New opens the broker: it ensures the cluster id, tenant "public" and
// namespace "public/default" exist.
func New(ctx context.Context, opts Options) (*Broker, error) {
	if opts.Store == nil || opts.Ledgers == nil {
		return nil, errors.New("broker: Store and Ledgers are required")
	}
	b := &Broker{store: opts.Store, ledgers: opts.Ledgers, defaults: opts.Defaults, sync: opts.Sync, log: opts.Logger, member: opts.Cluster, compactor: opts.Compactor}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.defaults.MaxMessageBytes == 0 {
		b.defaults = DefaultPolicies()
	}
	b.mu.partitions = make(map[string]*Partition)
	b.mu.loading = make(map[string]*loadCall)
	b.stop = make(chan struct{})
	id, err := b.ensureClusterID(ctx)
	if err != nil {
		return nil, err
	}
	b.clusterID = id
	if err := b.CreateTenant(ctx, "public", TenantInfo{}); err != nil && !errors.Is(err, ErrAlreadyExists) {
		return nil, err
	}
	if err := b.CreateNamespace(ctx, "public/default", Policies{}); err != nil && !errors.Is(err, ErrAlreadyExists) {
		return nil, err
	}
	if err := b.startMetadataWatch(); err != nil {
		return nil, err
	}
	b.txns = newTxnCoordinator(b, opts.Transactions)
	// Transactions left in a Prepare state by a crash are finished now,
	// in the background: loading them opens their partitions.
	b.bg.Go(func() {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-b.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		if _, err := b.Transactions(ctx); err != nil && ctx.Err() == nil {
			b.log.Warn("transaction coordinator load failed; retried on first use", "err", err)
		}
	})
	interval := opts.RetentionInterval
	if interval == 0 {
		interval = time.Minute
	}
	if interval > 0 {
		b.bg.Go(func() { b.every(interval, "retention", b.ApplyRetention) })
	}
	if b.member != nil {
		b.bg.Go(b.ownershipLoop)
	}
	if ci := opts.CompactionInterval; b.compactor != nil && ci >= 0 {
		if ci == 0 {
			ci = 30 * time.Second
		}
		b.bg.Go(func() { b.every(ci, "compaction pass", b.CompactionPass) })
	}
	return b, nil
}

// every runs pass every interval until the broker stops; a pass in flight
// is cancelled by the stop. A failed pass is logged as what.
func (b *Broker) every(interval time.Duration, what string, pass func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-b.stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		if err := pass(ctx); err != nil {
			b.log.Warn(what+" failed", "err", err)
		}
		cancel()
	}
}

// ApplyRetention applies the retention policy of every loaded partition now
// (the background loop calls it every Options.RetentionInterval). It returns
// the partitions' errors joined.
func (b *Broker) ApplyRetention(ctx context.Context) error {
	var errs []error
	for _, p := range b.Partitions() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.ml.ApplyRetention(ctx); err != nil && !errors.Is(err, managedledger.ErrClosed) {
			errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
		}
	}
	return errors.Join(errs...)
}

// StorageFailure is a loaded partition whose log refuses appends after a
// failed write or fsync (see ErrStorage).
type StorageFailure struct {
	Partition TopicName
	Err       error
	Since     time.Time
}

// StorageFailures lists the loaded partitions failed by storage errors,
// sorted by name (health, metrics).
func (b *Broker) StorageFailures() []StorageFailure {
	var out []StorageFailure
	for _, p := range b.Partitions() {
		if since, err := p.StorageFailure(); err != nil {
			out = append(out, StorageFailure{Partition: p.name, Err: err, Since: since})
		}
	}
	return out
}

// Partitions returns the loaded partitions sorted by name.
func (b *Broker) Partitions() []*Partition {
	// Sorted by the map's keys (the names' strings, already built): a
	// comparator building both names' strings allocated ~34 strings per
	// partition per call, 300 MB of garbage at 100,000 partitions for
	// every metrics scrape.
	type keyed struct {
		name string
		p    *Partition
	}
	b.mu.Lock()
	ks := make([]keyed, 0, len(b.mu.partitions))
	for name, p := range b.mu.partitions {
		ks = append(ks, keyed{name, p})
	}
	b.mu.Unlock()
	slices.SortFunc(ks, func(x, y keyed) int { return strings.Compare(x.name, y.name) })
	out := make([]*Partition, len(ks))
	for i, k := range ks {
		out[i] = k.p
	}
	return out
}

func (b *Broker) ensureClusterID(ctx context.Context) (string, error) {
	var rec struct {
		ClusterID string `json:"clusterId"`
	}
	r, err := b.store.Get(ctx, pathCluster)
	if err == nil {
		if err := json.Unmarshal(r.Value, &rec); err != nil {
			return "", fmt.Errorf("broker: cluster record: %w", err)
		}
		return rec.ClusterID, nil
	}
	if !errors.Is(err, metadata.ErrNotFound) {
		return "", err
	}
	var raw [16]byte
	rand.Read(raw[:])
	rec.ClusterID = "kopernik-" + hex.EncodeToString(raw[:8])
	val, _ := json.Marshal(rec)
	if _, err := b.store.Put(ctx, pathCluster, val, metadata.NotExists); err != nil {
		if errors.Is(err, metadata.ErrExists) {
			return b.ensureClusterID(ctx)
		}
		return "", err
	}
	return rec.ClusterID, nil
}

// ClusterID implements Service.
func (b *Broker) ClusterID() string { return b.clusterID }

// Defaults implements Service.
func (b *Broker) Defaults() EffectivePolicies { return b.defaults }

// Close stops the background loops and closes every loaded partition
// (producers and consumers see ErrClosed). It does not close the store or
// the ledger factory: their owner does, after the broker.
func (b *Broker) Close() error {
	b.mu.Lock()
	if !b.mu.closed {
		close(b.stop)
	}
	b.mu.closed = true
	parts := b.mu.partitions
	b.mu.partitions = map[string]*Partition{}
	b.mu.Unlock()
	b.bg.Wait()
	for _, p := range parts {
		p.close()
	}
	return nil
}

// ---- tenants ----

func (b *Broker) ListTenants(ctx context.Context) ([]string, error) {
	return b.store.Children(ctx, pathTenants)
}

func (b *Broker) GetTenant(ctx context.Context, tenant string) (TenantInfo, error) {
	var info TenantInfo
	if err := ValidateSegment("tenant", tenant); err != nil {
		return info, err
	}
	err := b.getJSON(ctx, metadata.Join("admin", "tenants", tenant), &info)
	if errors.Is(err, metadata.ErrNotFound) {
		return info, fmt.Errorf("%w: %s", ErrTenantNotFound, tenant)
	}
	return info, err
}

func (b *Broker) CreateTenant(ctx context.Context, tenant string, info TenantInfo) error {
	if err := ValidateSegment("tenant", tenant); err != nil {
		return err
	}
	err := b.putJSON(ctx, metadata.Join("admin", "tenants", tenant), info, metadata.NotExists)
	if errors.Is(err, metadata.ErrExists) {
		return fmt.Errorf("%w: tenant %s", ErrAlreadyExists, tenant)
	}
	return err
}

func (b *Broker) DeleteTenant(ctx context.Context, tenant string) error {
	if _, err := b.GetTenant(ctx, tenant); err != nil {
		return err
	}
	ns, err := b.ListNamespaces(ctx, tenant)
	if err != nil {
		return err
	}
	if len(ns) > 0 {
		return fmt.Errorf("%w: tenant %s has namespaces %v", ErrNotEmpty, tenant, ns)
	}
	return b.store.Delete(ctx, metadata.Join("admin", "tenants", tenant), metadata.AnyVersion)
}

// ---- namespaces ----

func splitNamespace(ns string) (string, string, error) {
	t, n, ok := strings.Cut(ns, "/")
	if !ok || strings.Contains(n, "/") {
		return "", "", fmt.Errorf("%w: namespace %q must be tenant/namespace", ErrInvalidName, ns)
	}
	if err := ValidateSegment("tenant", t); err != nil {
		return "", "", err
	}
	if err := ValidateSegment("namespace", n); err != nil {
		return "", "", err
	}
	return t, n, nil
}

func (b *Broker) ListNamespaces(ctx context.Context, tenant string) ([]string, error) {
	if _, err := b.GetTenant(ctx, tenant); err != nil {
		return nil, err
	}
	names, err := b.store.Children(ctx, metadata.Join("admin", "policies", tenant))
	if err != nil {
		return nil, err
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = tenant + "/" + n
	}
	return out, nil
}

func (b *Broker) CreateNamespace(ctx context.Context, namespace string, p Policies) error {
	t, n, err := splitNamespace(namespace)
	if err != nil {
		return err
	}
	if _, err := b.GetTenant(ctx, t); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	err = b.putJSON(ctx, metadata.Join("admin", "policies", t, n), p, metadata.NotExists)
	if errors.Is(err, metadata.ErrExists) {
		return fmt.Errorf("%w: namespace %s", ErrAlreadyExists, namespace)
	}
	return err
}

func (b *Broker) DeleteNamespace(ctx context.Context, namespace string) error {
	t, n, err := splitNamespace(namespace)
	if err != nil {
		return err
	}
	if _, err := b.NamespacePolicies(ctx, namespace); err != nil {
		return err
	}
	topics, err := b.store.Children(ctx, metadata.Join("admin", "topics", t, n))
	if err != nil {
		return err
	}
	np, err := b.store.Children(ctx, metadata.Join("admin", "non-persistent-topics", t, n))
	if err != nil {
		return err
	}
	if len(topics)+len(np) > 0 {
		return fmt.Errorf("%w: namespace %s has %d topics", ErrNotEmpty, namespace, len(topics)+len(np))
	}
	defer b.topics.invalidate()
	return b.store.Delete(ctx, metadata.Join("admin", "policies", t, n), metadata.AnyVersion)
}

func (b *Broker) NamespacePolicies(ctx context.Context, namespace string) (Policies, error) {
	var p Policies
	t, n, err := splitNamespace(namespace)
	if err != nil {
		return p, err
	}
	err = b.getJSON(ctx, metadata.Join("admin", "policies", t, n), &p)
	if errors.Is(err, metadata.ErrNotFound) {
		return p, fmt.Errorf("%w: %s", ErrNamespaceNotFound, namespace)
	}
	return p, err
}

// ---- topics ----

// topicPath is a topic's metadata record. Non-persistent topics live under
// their own root so that listings of persistent topics do not see them.
func topicPath(n TopicName) string {
	return topicsRoot(n.Domain, n.Tenant, n.Namespace) + "/" + n.Local
}

// topicsRoot holds the topic records of one domain of a namespace.
func topicsRoot(domain, tenant, ns string) string {
	if domain == "non-persistent" {
		return metadata.Join("admin", "non-persistent-topics", tenant, ns)
	}
	return metadata.Join("admin", "topics", tenant, ns)
}

func (b *Broker) readTopic(ctx context.Context, n TopicName) (topicRecord, bool, error) {
	var rec topicRecord
	err := b.getJSON(ctx, topicPath(n), &rec)
	if errors.Is(err, metadata.ErrNotFound) {
		return rec, false, nil
	}
	return rec, err == nil, err
}

// resolveTopic finds the record for n: n itself, or the partitioned topic
// that n is a partition of. It returns the metadata of the record found.
func (b *Broker) resolveTopic(ctx context.Context, n TopicName) (TopicMetadata, bool, error) {
	rec, ok, err := b.readTopic(ctx, n)
	if err != nil {
		return TopicMetadata{}, false, err
	}
	name := n
	if !ok && n.PartitionIndex() >= 0 {
		base := n.Base()
		rec, ok, err = b.readTopic(ctx, base)
		if err != nil || !ok || n.PartitionIndex() >= rec.Partitions {
			return TopicMetadata{}, false, err
		}
		name = base
	}
	if !ok {
		return TopicMetadata{}, false, nil
	}
	eff, err := b.effective(ctx, name, rec.Policies)
	if err != nil {
		return TopicMetadata{}, false, err
	}
	return TopicMetadata{Name: name, Partitions: rec.Partitions, Created: rec.Created, Policies: rec.Policies, Effective: eff}, true, nil
}

// GetTopic implements Service. Answers are cached (topicCache) until a
// namespace or topic record changes.
func (b *Broker) GetTopic(ctx context.Context, name TopicName) (TopicMetadata, error) {
	if err := name.Validate(); err != nil {
		return TopicMetadata{}, err
	}
	md, gen, ok := b.topics.get(name)
	if ok {
		return md, nil
	}
	if i := name.PartitionIndex(); i >= 0 {
		// A partition of a partitioned topic resolves to its topic's
		// record (no partition of one is a record of its own: CreateTopic
		// and checkPartitionNamesFree keep the names apart), so the
		// partitions share their topic's entry: the cache holds topics,
		// and 10,000 partitions' first lookups cost 100 topics' reads.
		if tmd, _, ok := b.topics.get(name.Base()); ok && i < tmd.Partitions {
			return tmd, nil
		}
	}
	md, ok, err := b.resolveTopic(ctx, name)
	if err != nil {
		return md, err
	}
	if !ok {
		return md, fmt.Errorf("%w: %s", ErrTopicNotFound, name)
	}
	b.topics.put(gen, md.Name, md)
	return md, nil
}

func (b *Broker) LookupTopic(ctx context.Context, name TopicName, autoCreate bool) (TopicMetadata, error) {
	md, err := b.GetTopic(ctx, name)
	if err == nil || !errors.Is(err, ErrTopicNotFound) || !autoCreate {
		return md, err
	}
	nsp, err := b.NamespacePolicies(ctx, name.NamespaceName())
	if err != nil {
		return md, err
	}
	eff := b.defaults.resolve(nsp)
	if !eff.AutoTopicCreation {
		return md, fmt.Errorf("%w: %s (auto-creation is off)", ErrTopicNotFound, name)
	}
	partitions := eff.AutoTopicPartitions
	if name.PartitionIndex() >= 0 {
		// A client asking for a partition of a missing topic: create the
		// partitioned topic big enough to hold it.
		if partitions <= name.PartitionIndex() {
			partitions = name.PartitionIndex() + 1
		}
		name = name.Base()
	}
	if err := b.CreateTopic(ctx, name, partitions, Policies{}); err != nil && !errors.Is(err, ErrAlreadyExists) {
		return md, err
	}
	return b.GetTopic(ctx, name)
}

func (b *Broker) CreateTopic(ctx context.Context, name TopicName, partitions int, p Policies) error {
	if err := name.Validate(); err != nil {
		return err
	}
	if partitions < 0 {
		return fmt.Errorf("%w: partitions %d", ErrInvalidConfig, partitions)
	}
	if err := p.Validate(); err != nil {
		return err
	}
	if _, err := b.NamespacePolicies(ctx, name.NamespaceName()); err != nil {
		return err
	}
	b.createMu.Lock()
	defer b.createMu.Unlock()
	if _, ok, err := b.resolveTopic(ctx, name); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%w: topic %s", ErrAlreadyExists, name)
	}
	if partitions > 0 && name.PartitionIndex() >= 0 {
		return fmt.Errorf("%w: a partitioned topic's name cannot end in -partition-N: %s", ErrInvalidName, name)
	}
	if err := b.checkPartitionNamesFree(ctx, name, 0, partitions); err != nil {
		return err
	}
	rec := topicRecord{Partitions: partitions, Created: time.Now().UTC(), Policies: p}
	err := b.putJSON(ctx, topicPath(name), rec, metadata.NotExists)
	b.topics.invalidate()
	if errors.Is(err, metadata.ErrExists) {
		return fmt.Errorf("%w: topic %s", ErrAlreadyExists, name)
	}
	return err
}

func (b *Broker) DeleteTopic(ctx context.Context, name TopicName, force bool) error {
	md, err := b.GetTopic(ctx, name)
	if err != nil {
		return err
	}
	if md.Name != name {
		return fmt.Errorf("%w: delete the partitioned topic %s, not one partition", ErrInvalidName, md.Name)
	}
	b.createMu.Lock()
	defer b.createMu.Unlock()
	parts := partitionNames(md)
	if !force {
		for _, pn := range parts {
			if p := b.loaded(pn); p != nil && p.inUse() {
				return fmt.Errorf("%w: %s has producers or consumers", ErrInUse, pn)
			}
		}
	}
	// Loads of the partitions wait until the topic is gone, then fail: a
	// producer retrying during the delete must not reopen (and recover) a
	// ledger whose files are being removed.
	var releases []func(error)
	defer func() {
		for _, release := range releases {
			release(fmt.Errorf("%w: %s", errDeletedWhileLoading, name))
		}
	}()
	for _, pn := range parts {
		p, release, err := b.holdLoads(ctx, pn.String())
		if err != nil {
			return err
		}
		releases = append(releases, release)
		if p != nil {
			p.close()
		}
		if err := b.ledgers.Delete(ctx, pn.LedgerName()); err != nil {
			return err
		}
		if b.compactor != nil {
			if err := b.compactor.Delete(ctx, pn.LedgerName()); err != nil {
				return err
			}
		}
		if err := b.store.Delete(ctx, txnLogPath(pn), metadata.AnyVersion); err != nil && !errors.Is(err, metadata.ErrNotFound) {
			return err
		}
	}
	defer b.topics.invalidate()
	return b.store.Delete(ctx, topicPath(name), metadata.AnyVersion)
}

// holdLoads takes the loaded partition key out of the broker and keeps
// it from being loaded again until release is called; loads asked
// meanwhile wait and then get release's error (nil: they load again).
// It waits for a load in progress to finish first.
func (b *Broker) holdLoads(ctx context.Context, key string) (p *Partition, release func(error), err error) {
	for {
		b.mu.Lock()
		c := b.mu.loading[key]
		if c == nil {
			c = &loadCall{done: make(chan struct{}), held: true}
			b.mu.loading[key] = c
			p = b.mu.partitions[key]
			delete(b.mu.partitions, key)
			b.mu.Unlock()
			return p, func(err error) {
				b.mu.Lock()
				delete(b.mu.loading, key)
				b.mu.Unlock()
				c.err = err
				close(c.done)
			}, nil
		}
		b.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// Unload closes the loaded partitions of a topic (all partitions of a
// partitioned topic's base name) without deleting anything: attached
// clients see Partition.Done and ErrClosed, and the next OpenPartition loads
// the partition again from storage (Pulsar's topic unload).
func (b *Broker) Unload(ctx context.Context, name TopicName) error {
	md, err := b.GetTopic(ctx, name)
	if err != nil {
		return err
	}
	parts := []TopicName{name}
	if md.Name == name {
		parts = partitionNames(md)
	}
	for _, pn := range parts {
		p, release, err := b.holdLoads(ctx, pn.String())
		if err != nil {
			return err
		}
		if p != nil {
			p.close()
		}
		release(nil) // loads may begin again, on the closed ledger's files
	}
	return nil
}

// checkPartitionNamesFree fails with ErrAlreadyExists if a non-partitioned
// topic already holds the name of partition from..to-1 of name.
// createMu is held.
func (b *Broker) checkPartitionNamesFree(ctx context.Context, name TopicName, from, to int) error {
	for i := from; i < to; i++ {
		_, ok, err := b.readTopic(ctx, name.Partition(i))
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("%w: topic %s exists and would be partition %d of %s", ErrAlreadyExists, name.Partition(i), i, name)
		}
	}
	return nil
}

// partitionNames lists the names holding data for a topic.
func partitionNames(md TopicMetadata) []TopicName {
	if md.Partitions == 0 {
		return []TopicName{md.Name}
	}
	out := make([]TopicName, md.Partitions)
	for i := range out {
		out[i] = md.Name.Partition(i)
	}
	return out
}

func (b *Broker) SetPartitions(ctx context.Context, name TopicName, partitions int) error {
	// createMu keeps a topic from being created under a new partition's
	// name by this broker meanwhile; the record itself changes by CAS.
	b.createMu.Lock()
	defer b.createMu.Unlock()
	return b.updateTopic(ctx, name, func(rec *topicRecord) error {
		if rec.Partitions == 0 {
			return fmt.Errorf("%w: %s is not partitioned", ErrInvalidConfig, name)
		}
		if partitions < rec.Partitions {
			return fmt.Errorf("%w: %s has %d partitions; partitions can only grow", ErrInvalidConfig, name, rec.Partitions)
		}
		if err := b.checkPartitionNamesFree(ctx, name, rec.Partitions, partitions); err != nil {
			return err
		}
		rec.Partitions = partitions
		return nil
	})
}

func (b *Broker) ListTopics(ctx context.Context, namespace string) ([]TopicMetadata, error) {
	return b.listTopics(ctx, "persistent", namespace)
}

// ListNonPersistentTopics implements Service.
func (b *Broker) ListNonPersistentTopics(ctx context.Context, namespace string) ([]TopicMetadata, error) {
	return b.listTopics(ctx, "non-persistent", namespace)
}

func (b *Broker) listTopics(ctx context.Context, domain, namespace string) ([]TopicMetadata, error) {
	t, n, err := splitNamespace(namespace)
	if err != nil {
		return nil, err
	}
	if _, err := b.NamespacePolicies(ctx, namespace); err != nil {
		return nil, err
	}
	names, err := b.store.Children(ctx, topicsRoot(domain, t, n))
	if err != nil {
		return nil, err
	}
	out := make([]TopicMetadata, 0, len(names))
	for _, local := range names {
		md, ok, err := b.resolveTopic(ctx, TopicName{Domain: domain, Tenant: t, Namespace: n, Local: local})
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, md)
		}
	}
	return out, nil
}

// OpenPartition implements Service.
func (b *Broker) OpenPartition(ctx context.Context, name TopicName, autoCreate bool) (*Partition, error) {
	if p := b.loaded(name); p != nil {
		return p, nil
	}
	md, err := b.LookupTopic(ctx, name, autoCreate)
	if err != nil {
		return nil, err
	}
	if md.Partitions > 0 && name.PartitionIndex() < 0 {
		return nil, fmt.Errorf("%w: %s is partitioned; open one of its %d partitions", ErrInvalidName, name, md.Partitions)
	}
	p, err := b.load(ctx, name, md.Effective)
	if errors.Is(err, errDeletedWhileLoading) {
		// The topic was deleted while this load waited: look it up again,
		// so that auto-creation re-creates it (as for any new topic) or
		// the caller gets a plain not-found. Answering not-found at once
		// would make a Pulsar client that reconnects through a delete give
		// up for good (pulsar-client-go stops reconnecting on
		// TopicNotFound) while its producer re-creates the topic.
		return b.OpenPartition(ctx, name, autoCreate)
	}
	return p, err
}

// errDeletedWhileLoading is what loads held by a topic delete get.
var errDeletedWhileLoading = fmt.Errorf("%w: deleted while loading", ErrTopicNotFound)

// load opens the partition's ledger and rebuilds its dedup state, once,
// however many callers ask concurrently. The broker lock is not held while
// the log is read.
func (b *Broker) load(ctx context.Context, name TopicName, eff EffectivePolicies) (*Partition, error) {
	key := name.String()
	b.mu.Lock()
	if b.mu.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	if p := b.mu.partitions[key]; p != nil {
		b.mu.Unlock()
		return p, nil
	}
	c := b.mu.loading[key]
	if c == nil {
		c = &loadCall{done: make(chan struct{})}
		b.mu.loading[key] = c
		b.mu.Unlock()
		c.p, c.err = b.loadNow(ctx, name, eff)
		var orphan *Partition // loaded while the broker closed
		b.mu.Lock()
		delete(b.mu.loading, key)
		if c.err == nil {
			if b.mu.closed {
				orphan = c.p
				c.p, c.err = nil, ErrClosed
			} else {
				b.mu.partitions[key] = c.p
			}
		}
		b.mu.Unlock()
		if orphan != nil {
			orphan.close()
		}
		close(c.done)
		return c.p, c.err
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		if c.held && c.err == nil {
			return b.load(ctx, name, eff) // unloaded meanwhile: load again
		}
		return c.p, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *Broker) loadNow(ctx context.Context, name TopicName, eff EffectivePolicies) (*Partition, error) {
	if err := b.checkOwner(ctx, name); err != nil {
		return nil, err
	}
	ml, err := b.ledgers.Open(ctx, name.LedgerName(), b.ledgerConfig(eff))
	if err != nil {
		return nil, fmt.Errorf("broker: %s: opening its log: %w", name, mapLedgerErr(err))
	}
	p := newPartition(b, name, ml, eff)
	p.installReleased(ctx)
	if err := p.recoverDedup(ctx); err != nil {
		// Closed, as below: the next load opens the log again.
		ml.Close()
		return nil, fmt.Errorf("broker: %s: rebuilding producer state: %w", name, err)
	}
	if err := p.recoverTxns(ctx); err != nil {
		ml.Close()
		return nil, fmt.Errorf("broker: %s: rebuilding transaction state: %w", name, err)
	}
	return p, nil
}

// LoadedPartition implements Service.
func (b *Broker) LoadedPartition(name TopicName) *Partition { return b.loaded(name) }

func (b *Broker) loaded(name TopicName) *Partition {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.partitions[name.String()]
}

// refreshPolicies re-resolves policies of loaded partitions matching match.
func (b *Broker) refreshPolicies(ctx context.Context, match func(TopicName) bool) {
	b.mu.Lock()
	var parts []*Partition
	for _, p := range b.mu.partitions {
		if match(p.name) {
			parts = append(parts, p)
		}
	}
	b.mu.Unlock()
	for _, p := range parts {
		md, err := b.GetTopic(ctx, p.name)
		if err != nil {
			continue
		}
		p.setPolicies(md.Effective)
	}
}

func (b *Broker) effective(ctx context.Context, name TopicName, topic Policies) (EffectivePolicies, error) {
	nsp, err := b.NamespacePolicies(ctx, name.NamespaceName())
	if err != nil {
		return EffectivePolicies{}, err
	}
	return b.defaults.resolve(nsp).resolve(topic), nil
}

func (b *Broker) getJSON(ctx context.Context, path string, v any) error {
	r, err := b.store.Get(ctx, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(r.Value, v); err != nil {
		return fmt.Errorf("broker: decoding %s: %w", path, err)
	}
	return nil
}

func (b *Broker) putJSON(ctx context.Context, path string, v any, version int64) error {
	val, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = b.store.Put(ctx, path, val, version)
	return err
}
