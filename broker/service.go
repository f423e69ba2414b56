// Package broker is kopernik's protocol-neutral core: tenants, namespaces,
// topics and partitions, producers' deduplication, subscriptions and
// policies. Protocol handlers talk to it through Service and the *Partition
// and *Subscription values it hands out; they never reach into managedledger
// or the metadata store. Wire types never appear here.
package broker

import (
	"context"
	"errors"
	"time"

	"github.com/kopernik-io/kopernik/managedledger"
)

// Storage vocabulary handlers use through the broker.
type (
	Position        = managedledger.Position
	Entry           = managedledger.Entry
	Format          = managedledger.Format
	Cursor          = managedledger.Cursor
	InitialPosition = managedledger.InitialPosition
	// OffloadStatus is a partition's tiered-storage offload state.
	OffloadStatus = managedledger.OffloadStatus
	OffloadState  = managedledger.OffloadState
)

const (
	FormatKafka     = managedledger.FormatKafka
	FormatPulsar    = managedledger.FormatPulsar
	InitialLatest   = managedledger.InitialLatest
	InitialEarliest = managedledger.InitialEarliest
)

var (
	Earliest = managedledger.Earliest
	Latest   = managedledger.Latest
)

// Sentinel errors. Handlers translate them to wire codes once, at the edge, with errors.Is.
var (
	ErrInvalidName          = errors.New("broker: invalid name")
	ErrTenantNotFound       = errors.New("broker: tenant not found")
	ErrNamespaceNotFound    = errors.New("broker: namespace not found")
	ErrTopicNotFound        = errors.New("broker: topic not found")
	ErrSubscriptionNotFound = errors.New("broker: subscription not found")
	ErrAlreadyExists        = errors.New("broker: already exists")
	ErrNotEmpty             = errors.New("broker: not empty")
	ErrInvalidConfig        = errors.New("broker: invalid configuration")
	ErrMessageTooLarge      = errors.New("broker: message too large")
	ErrOffsetOutOfRange     = errors.New("broker: offset out of range")
	ErrDuplicate            = errors.New("broker: duplicate sequence")
	ErrOutOfOrderSequence   = errors.New("broker: out of order sequence")
	ErrProducerFenced       = errors.New("broker: producer fenced")
	ErrInUse                = errors.New("broker: in use")
	ErrClosed               = errors.New("broker: closed")
	// ErrStorage: the partition's log failed on a write or fsync and
	// refuses appends until it recovers by itself (reads keep working).
	// ErrDiskFull is the same for a full disk and matches ErrStorage too.
	ErrStorage  = managedledger.ErrStorage
	ErrDiskFull = managedledger.ErrDiskFull
	// ErrResourceExhausted: the broker ran out of file descriptors or
	// memory opening or writing a partition's log (EMFILE, ENFILE, ENOMEM);
	// retriable, and logged with the partition (Kafka KAFKA_STORAGE_ERROR,
	// Pulsar ServiceNotReady).
	ErrResourceExhausted = errors.New("broker: out of file descriptors or memory")
	// ErrTieredUnavailable: a read of offloaded data failed because the
	// object store is down or slow; retriable, it succeeds once the store
	// is back (Kafka KAFKA_STORAGE_ERROR; Pulsar dispatch retries).
	ErrTieredUnavailable = managedledger.ErrTieredUnavailable
	// ErrNoOffloader: tiered storage is not configured (offload-driver).
	ErrNoOffloader = managedledger.ErrNoOffloader
)

// TenantInfo is a tenant's record.
type TenantInfo struct {
	AdminRoles      []string `json:"adminRoles,omitempty"`
	AllowedClusters []string `json:"allowedClusters,omitempty"`
}

// Policies are per-namespace settings, overridable per topic. A nil pointer
// field means "inherit" (topic from namespace, namespace from broker defaults).
type Policies struct {
	// RetentionTime keeps consumed data this long; negative = forever.
	RetentionTime *time.Duration `json:"retentionTime,omitempty"`
	// RetentionBytes keeps at most this much consumed data; negative = unlimited.
	RetentionBytes *int64 `json:"retentionBytes,omitempty"`
	// MaxMessageBytes is the largest entry (batch) accepted.
	MaxMessageBytes *int32 `json:"maxMessageBytes,omitempty"`
	// CompressionType is Kafka's compression.type, applied to Kafka
	// batches as they are written: "producer" keeps them as produced,
	// "uncompressed", "gzip", "snappy", "lz4" or "zstd" recompress them.
	CompressionType *string `json:"compressionType,omitempty"`
	// SegmentBytes / SegmentAge roll ledgers over.
	SegmentBytes *int64         `json:"segmentBytes,omitempty"`
	SegmentAge   *time.Duration `json:"segmentAge,omitempty"`
	// AutoTopicCreation allows producers/consumers/metadata requests to create topics.
	AutoTopicCreation *bool `json:"autoTopicCreation,omitempty"`
	// AutoTopicPartitions is the partition count of auto-created topics (0 = non-partitioned).
	AutoTopicPartitions *int `json:"autoTopicPartitions,omitempty"`
	// AutoSubscriptionCreation allows consumers to create subscriptions.
	AutoSubscriptionCreation *bool `json:"autoSubscriptionCreation,omitempty"`
	// OffloadThresholdBytes: automatic offload to tiered storage once a
	// partition's sealed, not yet offloaded ledgers hold more (Pulsar's
	// namespace offloadThreshold / managedLedgerOffloadThresholdInBytes);
	// -1 off, 0 every sealed ledger.
	OffloadThresholdBytes *int64 `json:"offloadThresholdBytes,omitempty"`
	// OffloadThresholdSeconds: automatic offload of sealed ledgers closed
	// longer ago (offloadThresholdInSeconds); -1 off.
	OffloadThresholdSeconds *int64 `json:"offloadThresholdSeconds,omitempty"`
	// OffloadDeletionLag keeps local copies of offloaded ledgers this long
	// (offloadDeletionLagMs).
	OffloadDeletionLag *time.Duration `json:"offloadDeletionLag,omitempty"`
	// OffloadReadPriority is "tiered-storage-first" or "local-first"
	// (managedLedgerDataReadPriority).
	OffloadReadPriority *string `json:"offloadReadPriority,omitempty"`
	// CleanupPolicy is Kafka's cleanup.policy: "delete" (retention only),
	// "compact" (keep the latest record per key, forever) or
	// "compact,delete" (both). Compaction: compaction.go.
	CleanupPolicy *string `json:"cleanupPolicy,omitempty"`
	// MinCleanableDirtyRatio (min.cleanable.dirty.ratio): compact once the
	// uncompacted share of the compactable bytes reaches it.
	MinCleanableDirtyRatio *float64 `json:"minCleanableDirtyRatio,omitempty"`
	// MinCompactionLag (min.compaction.lag.ms): records stay uncompacted
	// at least this long.
	MinCompactionLag *time.Duration `json:"minCompactionLag,omitempty"`
	// MaxCompactionLag (max.compaction.lag.ms): records are compacted at
	// the latest this long after they were written, whatever the ratio.
	MaxCompactionLag *time.Duration `json:"maxCompactionLag,omitempty"`
	// DeleteRetention (delete.retention.ms): a tombstone is kept this
	// long after it was written, then compaction removes it.
	DeleteRetention *time.Duration `json:"deleteRetention,omitempty"`
	// CompactionThreshold (Pulsar's namespace compactionThreshold, bytes):
	// compact once this much was written after the cleaned point; 0 off.
	CompactionThreshold *int64 `json:"compactionThreshold,omitempty"`
	// Extra holds protocol-specific settings the broker stores but does
	// not interpret. Records that need read-modify-write get typed fields
	// instead (below): a field is updated alone by CAS, a string map whole.
	Extra map[string]string `json:"extra,omitempty"`
	// BacklogQuota limits a namespace's topics' backlog (Pulsar's
	// destination_storage quota). Namespaces only.
	BacklogQuota *BacklogQuota `json:"backlogQuota,omitempty"`
	// Terminated: the topic takes no more messages (Pulsar terminate).
	// Topics only.
	Terminated bool `json:"terminated,omitempty"`
	// TopicID is the topic's stable identity, 32 hex digits, assigned once
	// (Kafka's topic ID, KIP-516). Topics only.
	TopicID string `json:"topicId,omitempty"`
	// Schemas are the topic's schema versions; version v is Schemas[v]
	// (Pulsar's schema registry). Topics only.
	Schemas []Schema `json:"schemas,omitempty"`
	// Permissions grants roles actions ("produce", "consume") on a
	// namespace's topics (Pulsar's namespace auth_policies). Kept on
	// namespaces only; package auth interprets them.
	Permissions map[string][]string `json:"permissions,omitempty"`
	// TopicPermissions grants roles actions on single topics of the
	// namespace (Pulsar's auth_policies.destination_auth): full topic name
	// (persistent://tenant/ns/topic; a partitioned topic by its base name,
	// covering its partitions) -> role -> actions. Kept on the namespace, not
	// the topic, so a grant may exist before its topic does and one read of
	// the namespace's policies gives every grant in it. Namespaces only;
	// package auth interprets them.
	TopicPermissions map[string]map[string][]string `json:"topicPermissions,omitempty"`
}

// BacklogQuota is Pulsar's BacklogQuota: what happens when a topic's
// backlog exceeds LimitBytes. Policy is producer_request_hold,
// producer_exception or consumer_backlog_eviction.
type BacklogQuota struct {
	LimitBytes int64  `json:"limitBytes"`
	Policy     string `json:"policy"`
}

// Schema is one version of a topic's schema (Pulsar's SchemaInfo). The
// broker stores it; the Pulsar handler and admin API interpret Type.
type Schema struct {
	Name       string            `json:"name"`
	Type       int32             `json:"type"`
	Data       []byte            `json:"data"`
	Properties map[string]string `json:"properties,omitempty"`
}

// EffectivePolicies are Policies with every inheritance resolved.
type EffectivePolicies struct {
	RetentionTime            time.Duration
	RetentionBytes           int64
	MaxMessageBytes          int32
	CompressionType          string
	SegmentBytes             int64
	SegmentAge               time.Duration
	AutoTopicCreation        bool
	AutoTopicPartitions      int
	AutoSubscriptionCreation bool
	OffloadThresholdBytes    int64
	OffloadThresholdSeconds  int64
	OffloadDeletionLag       time.Duration
	OffloadReadPriority      string
	Extra                    map[string]string
	BacklogQuota             *BacklogQuota // nil: none
	Terminated               bool
	CleanupPolicy            string
	MinCleanableDirtyRatio   float64
	MinCompactionLag         time.Duration
	MaxCompactionLag         time.Duration
	DeleteRetention          time.Duration
	CompactionThreshold      int64
}

// TopicMetadata describes a topic as created.
type TopicMetadata struct {
	Name TopicName
	// Partitions is the partition count; 0 for a non-partitioned topic.
	Partitions int
	Created    time.Time
	// Policies are the topic's own overrides; Effective resolves them.
	Policies  Policies
	Effective EffectivePolicies
}

// Service is what protocol handlers (and the admin API) use.
//
// Names: every TopicName is fully qualified; handlers resolve short names
// with ParseTopicName and their own default tenant/namespace.
type Service interface {
	// ClusterID is stable across restarts of the same data directory.
	ClusterID() string
	// Defaults are the broker-wide policies namespaces inherit (e.g. the
	// max message size a protocol announces on connect).
	Defaults() EffectivePolicies

	ListTenants(ctx context.Context) ([]string, error)
	GetTenant(ctx context.Context, tenant string) (TenantInfo, error)
	CreateTenant(ctx context.Context, tenant string, info TenantInfo) error
	UpdateTenant(ctx context.Context, tenant string, info TenantInfo) error
	// DeleteTenant fails with ErrNotEmpty if it still has namespaces.
	DeleteTenant(ctx context.Context, tenant string) error

	// ListNamespaces returns "tenant/ns" names.
	ListNamespaces(ctx context.Context, tenant string) ([]string, error)
	CreateNamespace(ctx context.Context, namespace string, p Policies) error
	// DeleteNamespace fails with ErrNotEmpty if it still has topics.
	DeleteNamespace(ctx context.Context, namespace string) error
	NamespacePolicies(ctx context.Context, namespace string) (Policies, error)
	// SetNamespacePolicies replaces a namespace's policies whole.
	SetNamespacePolicies(ctx context.Context, namespace string, p Policies) error
	// UpdateNamespacePolicies applies change to the namespace's current
	// policies and stores the result with compare-and-swap, re-reading and
	// applying change again after a concurrent update (so change may run
	// more than once). change returning ErrUnchanged ends it without a
	// write. Every read-modify-write of policies goes through it.
	UpdateNamespacePolicies(ctx context.Context, namespace string, change func(*Policies) error) error

	// GetTopic returns a topic's metadata. A partition name
	// ("...-partition-N" of an existing partitioned topic) reports the
	// partitioned topic's metadata. ErrTopicNotFound if absent.
	GetTopic(ctx context.Context, name TopicName) (TopicMetadata, error)
	// LookupTopic is GetTopic that creates the topic when absent and the
	// effective AutoTopicCreation policy allows it (autoCreate false: never).
	LookupTopic(ctx context.Context, name TopicName, autoCreate bool) (TopicMetadata, error)
	// CreateTopic creates a topic with partitions (0 = non-partitioned).
	// ErrAlreadyExists if present.
	CreateTopic(ctx context.Context, name TopicName, partitions int, p Policies) error
	// DeleteTopic deletes a topic (all partitions) and its data. Without
	// force it fails with ErrInUse while producers/consumers are attached.
	DeleteTopic(ctx context.Context, name TopicName, force bool) error
	// SetPartitions grows a partitioned topic; it never shrinks.
	SetPartitions(ctx context.Context, name TopicName, partitions int) error
	// ListTopics lists the namespace's topics (partitioned topics once, by base name).
	ListTopics(ctx context.Context, namespace string) ([]TopicMetadata, error)
	// ListNonPersistentTopics is ListTopics for the namespace's
	// non-persistent:// topics (kept apart: Kafka names never map to them).
	ListNonPersistentTopics(ctx context.Context, namespace string) ([]TopicMetadata, error)
	// SetTopicPolicies replaces a topic's own policy overrides.
	SetTopicPolicies(ctx context.Context, name TopicName, p Policies) error
	// UpdateTopicPolicies is UpdateNamespacePolicies for the topic's own
	// policies (name is the record's name: a partitioned topic's base name).
	UpdateTopicPolicies(ctx context.Context, name TopicName, change func(*Policies) error) error

	// OpenPartition returns the live partition for a non-partitioned topic or
	// one partition ("...-partition-N") of a partitioned topic, loading it if
	// needed. With autoCreate it creates the topic as LookupTopic does.
	OpenPartition(ctx context.Context, name TopicName, autoCreate bool) (*Partition, error)
	// LoadedPartition returns the partition if it is loaded (owned and
	// open) on this broker, else nil; it never loads, blocks or does I/O.
	LoadedPartition(name TopicName) *Partition
	// Partitions returns the loaded partitions sorted by name (broker-wide
	// statistics: what this broker serves now).
	Partitions() []*Partition
	// Cluster is the cluster this broker serves in, nil for a standalone
	// broker (which serves every partition).
	Cluster() Cluster
}
