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
	// SegmentBytes / SegmentAge roll ledgers over.
	SegmentBytes *int64         `json:"segmentBytes,omitempty"`
	SegmentAge   *time.Duration `json:"segmentAge,omitempty"`
	// AutoTopicCreation allows producers/consumers/metadata requests to create topics.
	AutoTopicCreation *bool `json:"autoTopicCreation,omitempty"`
	// AutoTopicPartitions is the partition count of auto-created topics (0 = non-partitioned).
	AutoTopicPartitions *int `json:"autoTopicPartitions,omitempty"`
	// AutoSubscriptionCreation allows consumers to create subscriptions.
	AutoSubscriptionCreation *bool `json:"autoSubscriptionCreation,omitempty"`
	// Extra holds protocol-specific settings the broker stores but does not interpret.
	Extra map[string]string `json:"extra,omitempty"`
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

// EffectivePolicies are Policies with every inheritance resolved.
type EffectivePolicies struct {
	RetentionTime            time.Duration
	RetentionBytes           int64
	MaxMessageBytes          int32
	SegmentBytes             int64
	SegmentAge               time.Duration
	AutoTopicCreation        bool
	AutoTopicPartitions      int
	AutoSubscriptionCreation bool
	Extra                    map[string]string
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
	SetNamespacePolicies(ctx context.Context, namespace string, p Policies) error

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

	// OpenPartition returns the live partition for a non-partitioned topic or
	// one partition ("...-partition-N") of a partitioned topic, loading it if
	// needed. With autoCreate it creates the topic as LookupTopic does.
	OpenPartition(ctx context.Context, name TopicName, autoCreate bool) (*Partition, error)
	// Partitions returns the loaded partitions sorted by name (broker-wide
	// statistics: what this broker serves now).
	Partitions() []*Partition
}
