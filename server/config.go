package server

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/datadir"
	"github.com/kopernik-io/kopernik/internal/suggest"
	"github.com/kopernik-io/kopernik/protocol"
	"github.com/kopernik-io/kopernik/segment"
)

// EnvPrefix starts every environment variable the configuration reads:
// KOPERNIK_DATA_DIR sets data-dir, KOPERNIK_KAFKA_ADDR sets kafka-addr,
// KOPERNIK_KAFKA_ADVERTISED_ADDR sets advertised-addr in the kafka section.
const EnvPrefix = "KOPERNIK_"

// Config is the standalone broker's configuration. Precedence, lowest
// first: defaults, the YAML file, KOPERNIK_* environment variables, flags.
// Each YAML field (and each of the Kafka and Pulsar sections') is a row of
// the settings table (settings.go), which parses, documents and names it
// for users; a new field needs a row (TestSettingsCoverConfig).
type Config struct {
	// DataDir holds ledgers and metadata (default ./data).
	DataDir string `yaml:"data-dir"`
	// MetadataStoreURL selects the metadata store (Pulsar
	// metadataStoreUrl): empty (default) or "bolt:<path>" the embedded
	// bbolt file (<data-dir>/metadata.db), "etcd:http://h1:2379,http://h2:2379"
	// an etcd v3 cluster, "memory:" nothing kept. Ledgers stay in data-dir.
	MetadataStoreURL string `yaml:"metadata-store-url"`
	// HTTPAddr serves /metrics, /admin/v2 and health (default localhost:8080).
	HTTPAddr string `yaml:"http-addr"`
	// Protocols enables handlers by name (default: every compiled-in one).
	Protocols []string `yaml:"protocols"`
	// Fsync is the durability policy: "always" (default: an acknowledged
	// write is on stable storage) or "interval" (fsync every FsyncInterval).
	Fsync string `yaml:"fsync"`
	// FsyncInterval is the fsync period of Fsync "interval" (default 1s).
	FsyncInterval time.Duration `yaml:"fsync-interval"`
	// Journal (default true) makes Fsync "always" group-commit the appends
	// of all partitions in one shared journal (docs/storage.md); false
	// fsyncs each partition's own files. JournalCheckpointInterval is how
	// often partitions' files are fsynced and the journal released
	// (default 10s).
	Journal                   bool          `yaml:"journal"`
	JournalCheckpointInterval time.Duration `yaml:"journal-checkpoint-interval"`
	// MaxOpenFiles bounds the file descriptors of partitions' files (idle
	// ones are closed and reopened on use): 0 (default) three quarters of
	// the process's open-file limit, -1 unbounded.
	MaxOpenFiles int `yaml:"max-open-files"`
	// LogLevel is debug, info (default), warn or error; LogFormat text (default) or json.
	LogLevel  string `yaml:"log-level"`
	LogFormat string `yaml:"log-format"`
	// ShutdownTimeout bounds graceful shutdown (default 10s).
	ShutdownTimeout time.Duration `yaml:"shutdown-timeout"`
	// TransactionMaxTimeout bounds a transactional producer's timeout
	// (default 15m; Kafka transaction.max.timeout.ms; docs/transactions.md).
	TransactionMaxTimeout time.Duration `yaml:"transaction-max-timeout"`
	// TransactionalIDExpiration forgets a transactional id with no
	// transaction open this long after its last change (Kafka
	// transactional.id.expiration.ms, default 7 days; negative: never).
	TransactionalIDExpiration time.Duration `yaml:"transactional-id-expiration"`
	// TransactionCheckInterval is how often the coordinator aborts
	// timed-out transactions, finishes unfinished ones and (cluster mode)
	// adopts the transactions of a dead coordinator (default 10s; Kafka
	// transaction.abort.timed.out.transaction.cleanup.interval.ms).
	TransactionCheckInterval time.Duration `yaml:"transaction-check-interval"`
	// CompactionInterval is how often the compaction pass looks at
	// compacting topics (default 30s; negative: only manual compactions;
	// docs/compaction.md).
	CompactionInterval time.Duration `yaml:"compaction-interval"`

	// Broker-wide policy defaults; namespaces and topics override them.
	// RetentionTime keeps consumed data (default 168h; Kafka log.retention.hours).
	RetentionTime time.Duration `yaml:"retention-time"`
	// RetentionBytes caps consumed data per partition (default -1, unlimited; Kafka log.retention.bytes).
	RetentionBytes int64 `yaml:"retention-bytes"`
	// MaxMessageBytes is the largest batch accepted (default 1048576; Kafka message.max.bytes).
	MaxMessageBytes int32 `yaml:"max-message-bytes"`
	// CompressionType recompresses Kafka batches on write (default
	// producer: as produced; Kafka compression.type).
	CompressionType string `yaml:"compression-type"`
	// SegmentBytes rolls ledgers over (default 128 MiB; Kafka log.segment.bytes).
	SegmentBytes int64 `yaml:"segment-bytes"`
	// SegmentAge rolls ledgers over by age (default 4h; Kafka log.roll.hours).
	SegmentAge time.Duration `yaml:"segment-age"`
	// AutoTopicCreation (default true; Kafka auto.create.topics.enable, Pulsar allowAutoTopicCreation).
	AutoTopicCreation bool `yaml:"auto-topic-creation"`
	// AutoSubscriptionCreation (default true; Pulsar allowAutoSubscriptionCreation).
	AutoSubscriptionCreation bool `yaml:"auto-subscription-creation"`

	// Addrs maps a protocol to its listen address; YAML key "<protocol>-addr"
	// (defaults: kafka localhost:9092, pulsar localhost:6650).
	Addrs map[string]string `yaml:"-"`
	// TLSAddrs maps a protocol to its TLS listen address; YAML key
	// "<protocol>-tls-addr" (default empty: no TLS listener). Kafka's
	// SSL/SASL_SSL listener, Pulsar's brokerServicePortTls.
	TLSAddrs map[string]string `yaml:"-"`

	// HTTPSAddr serves the same as http-addr over TLS (default empty: off;
	// Pulsar webServicePortTls).
	HTTPSAddr string `yaml:"https-addr"`
	// TLSCertFile and TLSKeyFile are the PEM certificate (chain) and private
	// key of every TLS listener; required when one is configured (Kafka
	// ssl.keystore.*, Pulsar tlsCertificateFilePath / tlsKeyFilePath).
	TLSCertFile string `yaml:"tls-cert-file"`
	TLSKeyFile  string `yaml:"tls-key-file"`
	// TLSClientCAFile, if set, makes TLS listeners require a client
	// certificate signed by one of its PEM CAs (default empty: none asked;
	// Kafka ssl.client.auth=required, Pulsar tlsTrustCertsFilePath +
	// tlsRequireTrustedClientCertOnConnect).
	TLSClientCAFile string `yaml:"tls-client-ca-file"`

	// Cluster (docs/cluster.md): ClusterName joins the brokers of that
	// name on the etcd of MetadataStoreURL (empty: standalone). BrokerName
	// is this broker's stable identity (default: the Kafka listener's
	// address); ClusterLeaseTTL bounds how long a dead broker keeps its
	// partitions (default 5s).
	ClusterName     string        `yaml:"cluster-name"`
	BrokerName      string        `yaml:"broker-name"`
	ClusterLeaseTTL time.Duration `yaml:"cluster-lease-ttl"`
	// ObjectFlushInterval and ObjectFlushBytes shape a cluster broker's
	// write path (docs/cluster.md): the first append of a flush waits at
	// most ObjectFlushInterval (default 5ms) for others to share its
	// object, or until ObjectFlushBytes (default 4 MiB) are pending.
	ObjectFlushInterval time.Duration `yaml:"object-flush-interval"`
	ObjectFlushBytes    int64         `yaml:"object-flush-bytes"`

	// AuthEnabled requires clients to authenticate (default false; Pulsar
	// authenticationEnabled, Kafka SASL listeners): Pulsar CONNECT with a
	// token, Kafka SASL PLAIN (token) or SCRAM-SHA-256/512.
	AuthEnabled bool `yaml:"auth-enabled"`
	// AuthTokenSecretKeyFile holds the HS256 secret tokens are signed with
	// (raw bytes; Pulsar tokenSecretKey). AuthTokenPublicKeyFile holds the
	// PEM or DER public key of RS256/ES256 tokens (Pulsar tokenPublicKey).
	// At most one; with neither, only SCRAM authenticates.
	AuthTokenSecretKeyFile string `yaml:"auth-token-secret-key-file"`
	AuthTokenPublicKeyFile string `yaml:"auth-token-public-key-file"`
	// AnonymousRole, if set, is the role of Pulsar clients that send no
	// credentials while auth is enabled (default empty: they are refused;
	// Pulsar anonymousUserRole).
	AnonymousRole string `yaml:"anonymous-role"`
	// AuthorizationEnabled decides, while auth is enabled, what each role
	// may do (default true; Pulsar authorizationEnabled): superusers
	// anything, tenant admin roles their tenants, other roles what their
	// namespaces grant them. It then needs SuperUserRoles. With it false,
	// every authenticated role may do everything.
	AuthorizationEnabled bool `yaml:"authorization-enabled"`
	// SuperUserRoles may do anything, including administering tenants
	// (Pulsar superUserRoles). With authorization off, empty lets any
	// authenticated role use the admin API.
	SuperUserRoles []string `yaml:"superuser-roles"`
	// AuthFailureDelay delays the answer to a failed authentication
	// (default 1s), so that guessing credentials is slow.
	AuthFailureDelay time.Duration `yaml:"auth-failure-delay"`
	// AuthMaxPendingPerAddress bounds the connections of one client host
	// that have not authenticated yet; more are closed at once (default 64;
	// 0: no bound). Together with the failure delay it bounds credential
	// guessing per address.
	AuthMaxPendingPerAddress int `yaml:"auth-max-pending-per-address"`
	// LedgerCacheBytes is the memory kept for the newest entries of all
	// ledgers, so that consumers keeping up read them without touching
	// files (default 64 MiB; 0: no cache; Pulsar managedLedgerCacheSizeMB).
	// Costs up to about twice this much heap.
	LedgerCacheBytes int64 `yaml:"ledger-cache-bytes"`
	// MaxConnectionsPerAddress bounds the open connections of one client
	// host over all listeners, authenticated or not (default 0: no bound;
	// Kafka max.connections.per.ip, Pulsar maxConnectionsPerIp).
	MaxConnectionsPerAddress int `yaml:"max-connections-per-address"`
	// StorageRetryInterval is how soon a partition whose log failed on a
	// write or fsync (a full disk, an I/O error) tries to recover by
	// itself; failed attempts back off to five times this (default 1s).
	// Appends to it fail meanwhile (Kafka KAFKA_STORAGE_ERROR, Pulsar
	// PersistenceError), reads keep working; see docs/durability.md.
	StorageRetryInterval time.Duration `yaml:"storage-retry-interval"`
	// Tiered storage (Pulsar's managedLedgerOffload* settings; see
	// docs/storage.md). OffloadDriver "s3" enables it (default empty: off;
	// managedLedgerOffloadDriver): sealed ledgers are offloaded to the
	// bucket OffloadS3Bucket (s3ManagedLedgerOffloadBucket) of the S3 API
	// at OffloadS3Endpoint (s3ManagedLedgerOffloadServiceEndpoint; empty:
	// AWS) in OffloadS3Region (s3ManagedLedgerOffloadRegion; default
	// us-east-1), with credentials from the standard AWS chain
	// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws, AWS_PROFILE, roles).
	OffloadDriver     string `yaml:"offload-driver"`
	OffloadS3Endpoint string `yaml:"offload-s3-endpoint"`
	OffloadS3Bucket   string `yaml:"offload-s3-bucket"`
	OffloadS3Region   string `yaml:"offload-s3-region"`
	// OffloadThresholdBytes offloads a partition's oldest sealed ledgers
	// automatically while its local sealed data exceeds it (default -1:
	// off; 0: every sealed ledger; managedLedgerOffloadThresholdInBytes).
	// Namespaces override it (offloadThreshold, offloadPolicies).
	OffloadThresholdBytes int64 `yaml:"offload-threshold-bytes"`
	// OffloadThresholdSeconds offloads sealed ledgers closed longer ago
	// (default -1: off; managedLedgerOffloadThresholdInSeconds).
	OffloadThresholdSeconds int64 `yaml:"offload-threshold-seconds"`
	// OffloadDeletionLag keeps the local copy of an offloaded ledger this
	// long after the upload was verified (default 4h; 0: deleted by the
	// next offload pass; managedLedgerOffloadDeletionLagMs).
	OffloadDeletionLag time.Duration `yaml:"offload-deletion-lag"`
	// OffloadReadPriority is tiered-storage-first (default) or local-first:
	// which copy reads use while both exist (managedLedgerDataReadPriority).
	OffloadReadPriority string `yaml:"offload-read-priority"`
	// OffloadInterval is the period of the background pass that offloads
	// by the thresholds, deletes local copies past the lag and collects
	// orphan objects (default 10s).
	OffloadInterval time.Duration `yaml:"offload-interval"`
	// ExposeTopicLevelMetrics exports /metrics per topic partition and per
	// subscription (default true; Pulsar
	// exposeTopicLevelMetricsInPrometheus). False aggregates them per
	// namespace and drops per-subscription and per-consumer series, so
	// that the number of series stays bounded with many topics.
	ExposeTopicLevelMetrics bool `yaml:"expose-topic-level-metrics"`
	// DebugPprof serves Go's runtime profiles (net/http/pprof) under
	// /debug/pprof/ on the HTTP listener (default false). They are not
	// behind the admin API's authentication: turn it on where the HTTP
	// listener is reachable only by operators (loopback, a debugging
	// session), to read a live broker's heap or CPU profile.
	DebugPprof bool `yaml:"debug-pprof"`
	// LedgerFS, if set, replaces the file system under the ledger files.
	// Test hook only (not a setting): tests inject a full disk or failed
	// fsyncs with segment.FaultFS. The metadata store is not affected.
	LedgerFS segment.FS `yaml:"-"`
	// Handlers holds each protocol's own settings (YAML section named after
	// the protocol), as returned by its Registration.NewConfig.
	Handlers map[string]any `yaml:"-"`
}

// DefaultConfig returns the embedded defaults.
func DefaultConfig() *Config {
	d := broker.DefaultPolicies()
	c := &Config{
		DataDir:                   "./data",
		HTTPAddr:                  "localhost:8080",
		Protocols:                 protocol.Names(),
		Fsync:                     "always",
		FsyncInterval:             time.Second,
		Journal:                   true,
		JournalCheckpointInterval: 10 * time.Second,
		LogLevel:                  "info",
		LogFormat:                 "text",
		ShutdownTimeout:           10 * time.Second,
		TransactionMaxTimeout:     15 * time.Minute,
		TransactionalIDExpiration: 7 * 24 * time.Hour,
		TransactionCheckInterval:  10 * time.Second,
		CompactionInterval:        30 * time.Second,
		RetentionTime:             d.RetentionTime,
		RetentionBytes:            d.RetentionBytes,
		MaxMessageBytes:           d.MaxMessageBytes,
		CompressionType:           d.CompressionType,
		SegmentBytes:              d.SegmentBytes,
		SegmentAge:                d.SegmentAge,
		AutoTopicCreation:         d.AutoTopicCreation,
		AutoSubscriptionCreation:  d.AutoSubscriptionCreation,
		Addrs:                     map[string]string{},
		TLSAddrs:                  map[string]string{},
		AuthFailureDelay:          time.Second,
		AuthorizationEnabled:      true,
		LedgerCacheBytes:          64 << 20,
		StorageRetryInterval:      time.Second,
		AuthMaxPendingPerAddress:  64,
		OffloadThresholdBytes:     d.OffloadThresholdBytes,
		OffloadThresholdSeconds:   d.OffloadThresholdSeconds,
		OffloadDeletionLag:        d.OffloadDeletionLag,
		OffloadReadPriority:       d.OffloadReadPriority,
		OffloadInterval:           10 * time.Second,
		ObjectFlushInterval:       5 * time.Millisecond,
		ObjectFlushBytes:          4 << 20,
		ExposeTopicLevelMetrics:   true,
		Handlers:                  map[string]any{},
	}
	for _, name := range protocol.Names() {
		r, _ := protocol.Lookup(name)
		c.Addrs[name] = r.DefaultAddr
		c.Handlers[name] = r.NewConfig()
	}
	return c
}

// Policies returns the broker-wide policy defaults.
func (c *Config) Policies() broker.EffectivePolicies {
	p := broker.DefaultPolicies()
	p.RetentionTime = c.RetentionTime
	p.RetentionBytes = c.RetentionBytes
	p.MaxMessageBytes = c.MaxMessageBytes
	p.CompressionType = c.CompressionType
	p.SegmentBytes = c.SegmentBytes
	p.SegmentAge = c.SegmentAge
	p.AutoTopicCreation = c.AutoTopicCreation
	p.AutoSubscriptionCreation = c.AutoSubscriptionCreation
	p.OffloadThresholdBytes = c.OffloadThresholdBytes
	p.OffloadThresholdSeconds = c.OffloadThresholdSeconds
	p.OffloadDeletionLag = c.OffloadDeletionLag
	p.OffloadReadPriority = c.OffloadReadPriority
	return p
}

// Load builds a configuration: defaults, then file (if not empty), then the
// environment (entries "KEY=value", as os.Environ returns), then overrides
// (key -> value, e.g. from flags; keys as the flags are named). It reports
// every problem it finds at once, each naming where the value came from
// (file:line, environment variable, flag) and the value; an unknown key
// gets the closest known one suggested.
func Load(file string, environ []string, overrides map[string]string) (*Config, error) {
	l := &loader{c: DefaultConfig(), file: file, sources: map[string]string{}, sections: map[string]*yaml.Node{}}
	if file != "" {
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("config %s: %w", file, err)
		}
		if len(doc.Content) > 0 && doc.Content[0].Tag != "!!null" { // a file of comments only is empty
			m := doc.Content[0]
			if m.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("config %s:%d: the top level must be a mapping of settings (key: value)", file, m.Line)
			}
			for i := 0; i+1 < len(m.Content); i += 2 {
				k := m.Content[i]
				l.apply(fmt.Sprintf("%s:%d", file, k.Line), k.Value, m.Content[i+1], false)
			}
		}
	}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, EnvPrefix) {
			continue
		}
		key := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, EnvPrefix)), "_", "-")
		l.apply("environment "+k, key, &yaml.Node{Kind: yaml.ScalarNode, Value: v}, true)
	}
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		l.apply("flag --"+k, k, &yaml.Node{Kind: yaml.ScalarNode, Value: overrides[k]}, true)
	}
	names := make([]string, 0, len(l.sections))
	for name := range l.sections {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := decodeStrict(l.sections[name], l.c.Handlers[name]); err != nil {
			l.problems = append(l.problems, fmt.Sprintf("%s: %v", name, err))
		}
	}
	for _, p := range l.c.validate() {
		if src := l.sourceOf(p); src != "" {
			l.problems = append(l.problems, src+": "+p.msg)
		} else {
			l.problems = append(l.problems, p.msg)
		}
	}
	if len(l.problems) > 0 {
		return nil, fmt.Errorf("invalid configuration:\n  - %s", strings.Join(l.problems, "\n  - "))
	}
	return l.c, nil
}

// loader applies settings from their sources in precedence order,
// remembering where each one was last set.
type loader struct {
	c    *Config
	file string
	// sources maps a setting's key to where its value came from.
	sources  map[string]string
	problems []string
	// sections holds the YAML of protocol sections that are not rows of
	// the settings table (handlers registered by tests), decoded at the end.
	sections map[string]*yaml.Node
}

func (l *loader) fail(source, format string, a ...any) {
	l.problems = append(l.problems, source+": "+fmt.Sprintf(format, a...))
}

// apply sets key (a flag name; in the file also a protocol section) to n.
// flat marks environment variables and flags, where a section's setting is
// written "<protocol>-<key>".
func (l *loader) apply(source, key string, n *yaml.Node, flat bool) {
	if s := settingByKey(key); s != nil {
		l.set(source, s, n)
		return
	}
	if !flat && tableProtocol(key) {
		if n.Tag == "!!null" {
			return // "kafka:" with nothing under it
		}
		if n.Kind != yaml.MappingNode {
			l.fail(source, "%s: want a mapping of %s settings (%s: {advertised-addr: ...})", key, key, key)
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			src := fmt.Sprintf("%s:%d", l.file, k.Line) // flat is false: n is from the file
			if s := settingByKey(key + "-" + k.Value); s != nil && s.Protocol == key {
				l.set(src, s, n.Content[i+1])
				continue
			}
			var subs []string
			for j := range settings {
				if settings[j].Protocol == key {
					subs = append(subs, settings[j].sub())
				}
			}
			l.fail(src, "unknown setting %q in section %s%s", k.Value, key, didYouMean(k.Value, subs))
		}
		return
	}
	for name := range l.c.Handlers {
		if tableProtocol(name) {
			continue
		}
		switch {
		case key == name+"-addr" || key == name+"-tls-addr":
			if n.Kind != yaml.ScalarNode {
				l.fail(source, "%s: want host:port", key)
				return
			}
			if key == name+"-addr" {
				l.c.Addrs[name] = n.Value
			} else {
				l.c.TLSAddrs[name] = n.Value
			}
			l.sources[key] = source
			return
		case !flat && key == name:
			if n.Tag == "!!null" {
				return
			}
			if n.Kind != yaml.MappingNode {
				l.fail(source, "%s: want a mapping of %s settings", key, key)
				return
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				setMapNode(l.section(name), n.Content[i].Value, n.Content[i+1])
			}
			return
		case flat && strings.HasPrefix(key, name+"-"):
			setMapNode(l.section(name), strings.TrimPrefix(key, name+"-"), n)
			return
		}
	}
	l.fail(source, "unknown setting %q%s", key, didYouMean(key, l.knownKeys(flat)))
}

// set applies one YAML value (or the text of a variable or flag) to s.
func (l *loader) set(source string, s *Setting, n *yaml.Node) {
	var raw string
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		if s.Kind != KindList {
			return // "key:" with no value keeps the default
		}
	case n.Kind == yaml.ScalarNode:
		raw = n.Value
	case n.Kind == yaml.SequenceNode && s.Kind == KindList:
		vals := make([]string, 0, len(n.Content))
		for _, e := range n.Content {
			if e.Kind != yaml.ScalarNode {
				l.fail(source, "%s: want a list of names", s.YAMLKey())
				return
			}
			vals = append(vals, e.Value)
		}
		raw = strings.Join(vals, ",")
	default:
		l.fail(source, "%s: want a single %s value, not a %s", s.YAMLKey(), s.argName(), kindName(n))
		return
	}
	if err := s.set(l.c, raw); err != nil {
		l.fail(source, "%s: %v", s.YAMLKey(), err)
		return
	}
	l.sources[s.Key] = source
}

func kindName(n *yaml.Node) string {
	if n.Kind == yaml.SequenceNode {
		return "list"
	}
	return "mapping"
}

func (l *loader) section(name string) *yaml.Node {
	n := l.sections[name]
	if n == nil {
		n = &yaml.Node{Kind: yaml.MappingNode}
		l.sections[name] = n
	}
	return n
}

// knownKeys lists what apply accepts: flag names, and in the file the
// protocol sections.
func (l *loader) knownKeys(flat bool) []string {
	var keys []string
	for i := range settings {
		if !flat && settings[i].Protocol != "" {
			continue
		}
		keys = append(keys, settings[i].Key)
	}
	for name := range l.c.Handlers {
		if !flat {
			keys = append(keys, name)
		}
		if !tableProtocol(name) {
			keys = append(keys, name+"-addr", name+"-tls-addr")
		}
	}
	sort.Strings(keys)
	return keys
}

// didYouMean suggests the known key closest to key, or points to the list.
func didYouMean(key string, known []string) string {
	if best := suggest.Closest(key, known, max(2, len(key)/4)); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return "; kopernik standalone -h lists every setting"
}

// sourceOf says where the value a problem is about came from: the
// setting's source, or for a protocol section's problem the sources of
// the section's settings it mentions. Empty: defaults only.
func (l *loader) sourceOf(p problem) string {
	if src := l.sources[p.key]; src != "" {
		return src
	}
	var srcs []string
	for i := range settings {
		s := &settings[i]
		if s.Protocol == p.key && l.sources[s.Key] != "" && strings.Contains(p.msg, s.sub()) && !slices.Contains(srcs, l.sources[s.Key]) {
			srcs = append(srcs, l.sources[s.Key])
		}
	}
	return strings.Join(srcs, ", ")
}

// problem is one thing wrong with a configuration, about setting key.
type problem struct{ key, msg string }

// Validate lists every problem of c.
func (c *Config) Validate() error {
	ps := c.validate()
	if len(ps) == 0 {
		return nil
	}
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.msg
	}
	return errors.New(strings.Join(msgs, "; "))
}

func (c *Config) validate() []problem {
	var problems []problem
	add := func(key, format string, a ...any) {
		problems = append(problems, problem{key, fmt.Sprintf(format, a...)})
	}
	if c.DataDir == "" {
		add("data-dir", "data-dir must not be empty")
	}
	if err := validAddr(c.HTTPAddr); err != nil {
		add("http-addr", "http-addr: %v", err)
	}
	if c.ClusterName != "" && !strings.HasPrefix(c.MetadataStoreURL, "etcd:") {
		add("cluster-name", "cluster-name %q needs metadata-store-url etcd:http://... (the brokers of a cluster share one etcd)", c.ClusterName)
	}
	if c.ClusterName != "" && c.OffloadDriver == "" {
		add("offload-driver", "cluster-name %q needs object storage for the log: set offload-driver s3 and the offload-s3-* settings", c.ClusterName)
	}
	if c.ObjectFlushInterval <= 0 {
		add("object-flush-interval", "object-flush-interval must be > 0, not %v", c.ObjectFlushInterval)
	}
	if c.ObjectFlushBytes <= 0 {
		add("object-flush-bytes", "object-flush-bytes must be > 0, not %d", c.ObjectFlushBytes)
	}
	if c.ClusterLeaseTTL < 0 {
		add("cluster-lease-ttl", "cluster-lease-ttl must be positive, not %v", c.ClusterLeaseTTL)
	}
	if _, err := datadir.ParseMetadataURL(c.MetadataStoreURL); err != nil {
		add("metadata-store-url", "metadata-store-url: %v", err)
	}
	if len(c.Protocols) == 0 {
		add("protocols", "protocols: enable at least one of %v", protocol.Names())
	}
	for _, p := range c.Protocols {
		if _, err := protocol.Lookup(p); err != nil {
			add("protocols", "protocols: %q is not a protocol (compiled in: %s)%s", p, strings.Join(protocol.Names(), ", "),
				strings.TrimSuffix(didYouMean(p, protocol.Names()), "; kopernik standalone -h lists every setting"))
			continue
		}
		if err := validAddr(c.Addrs[p]); err != nil {
			add(p+"-addr", "%s-addr: %v", p, err)
		}
		if a := c.TLSAddrs[p]; a != "" {
			if err := validAddr(a); err != nil {
				add(p+"-tls-addr", "%s-tls-addr: %v", p, err)
			}
		}
		if v, ok := c.Handlers[p].(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				// One problem per line of the handler's report, each
				// named as in the file: kafka.idle-timeout ...
				text := strings.TrimPrefix(err.Error(), p+": ")
				text = strings.TrimPrefix(text, "invalid configuration: ")
				for _, part := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' }) {
					for _, msg := range strings.Split(part, "; ") {
						add(p, "%s.%s", p, msg)
					}
				}
			}
		}
	}
	if c.HTTPSAddr != "" {
		if err := validAddr(c.HTTPSAddr); err != nil {
			add("https-addr", "https-addr: %v", err)
		}
	}
	if c.tlsListeners() && (c.TLSCertFile == "" || c.TLSKeyFile == "") {
		add("tls-cert-file", "tls-cert-file and tls-key-file are required with a TLS listener (https-addr, <protocol>-tls-addr)")
	}
	if c.AuthTokenSecretKeyFile != "" && c.AuthTokenPublicKeyFile != "" {
		add("auth-token-public-key-file", "auth-token-secret-key-file and auth-token-public-key-file: set at most one")
	}
	if c.AuthFailureDelay < 0 {
		add("auth-failure-delay", "auth-failure-delay must be >= 0, not %s", c.AuthFailureDelay)
	}
	if c.AuthEnabled && c.AuthorizationEnabled && len(c.SuperUserRoles) == 0 {
		add("auth-enabled", "auth-enabled with authorization-enabled (the default) needs superuser-roles: without one nobody could create tenants or grant permissions (or set authorization-enabled: false)")
	}
	if c.AuthMaxPendingPerAddress < 0 {
		add("auth-max-pending-per-address", "auth-max-pending-per-address must be >= 0, not %d", c.AuthMaxPendingPerAddress)
	}
	if c.LedgerCacheBytes < 0 {
		add("ledger-cache-bytes", "ledger-cache-bytes must be >= 0, not %d", c.LedgerCacheBytes)
	}
	if c.StorageRetryInterval <= 0 {
		add("storage-retry-interval", "storage-retry-interval must be > 0, not %s", c.StorageRetryInterval)
	}
	if c.MaxConnectionsPerAddress < 0 {
		add("max-connections-per-address", "max-connections-per-address must be >= 0, not %d", c.MaxConnectionsPerAddress)
	}
	if c.Fsync != "always" && c.Fsync != "interval" {
		add("fsync", "fsync must be \"always\" or \"interval\", not %q", c.Fsync)
	}
	if c.TransactionalIDExpiration == 0 {
		add("transactional-id-expiration", "transactional-id-expiration must be > 0 (or negative: never), not 0")
	}
	if c.TransactionCheckInterval <= 0 {
		add("transaction-check-interval", "transaction-check-interval must be > 0, not %s", c.TransactionCheckInterval)
	}
	if c.TransactionMaxTimeout <= 0 {
		add("transaction-max-timeout", "transaction-max-timeout must be > 0, not %s", c.TransactionMaxTimeout)
	}
	if c.FsyncInterval <= 0 {
		add("fsync-interval", "fsync-interval must be > 0, not %s", c.FsyncInterval)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		add("log-level", "log-level must be debug, info, warn or error, not %q", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		add("log-format", "log-format must be text or json, not %q", c.LogFormat)
	}
	if c.ShutdownTimeout <= 0 {
		add("shutdown-timeout", "shutdown-timeout must be > 0, not %s", c.ShutdownTimeout)
	}
	if !slices.Contains(broker.CompressionTypes, c.CompressionType) {
		add("compression-type", "compression-type must be one of %v, not %q", broker.CompressionTypes, c.CompressionType)
	}
	if c.JournalCheckpointInterval <= 0 {
		add("journal-checkpoint-interval", "journal-checkpoint-interval must be positive, not %v", c.JournalCheckpointInterval)
	}
	if c.MaxOpenFiles < -1 {
		add("max-open-files", "max-open-files must be -1 (unbounded), 0 (three quarters of the open-file limit) or a bound, not %d", c.MaxOpenFiles)
	}
	if c.MaxMessageBytes <= 0 {
		add("max-message-bytes", "max-message-bytes must be > 0, not %d", c.MaxMessageBytes)
	}
	if c.SegmentBytes < 1<<10 {
		add("segment-bytes", "segment-bytes must be >= 1024, not %d", c.SegmentBytes)
	}
	if c.SegmentAge <= 0 {
		add("segment-age", "segment-age must be > 0, not %s", c.SegmentAge)
	}
	switch c.OffloadDriver {
	case "":
	case "s3", "aws-s3", "S3":
		if c.OffloadS3Bucket == "" {
			add("offload-driver", "offload-driver %s needs offload-s3-bucket", c.OffloadDriver)
		}
	default:
		add("offload-driver", "offload-driver must be empty (off) or s3, not %q", c.OffloadDriver)
	}
	if c.OffloadThresholdBytes < -1 {
		add("offload-threshold-bytes", "offload-threshold-bytes must be >= -1, not %d", c.OffloadThresholdBytes)
	}
	if c.OffloadThresholdSeconds < -1 {
		add("offload-threshold-seconds", "offload-threshold-seconds must be >= -1, not %d", c.OffloadThresholdSeconds)
	}
	if c.OffloadDeletionLag < 0 {
		add("offload-deletion-lag", "offload-deletion-lag must be >= 0, not %s", c.OffloadDeletionLag)
	}
	if c.OffloadReadPriority != broker.ReadTieredFirst && c.OffloadReadPriority != broker.ReadLocalFirst {
		add("offload-read-priority", "offload-read-priority must be %s or %s, not %q", broker.ReadTieredFirst, broker.ReadLocalFirst, c.OffloadReadPriority)
	}
	if c.OffloadInterval <= 0 {
		add("offload-interval", "offload-interval must be > 0, not %s", c.OffloadInterval)
	}
	return problems
}

func validAddr(a string) error {
	host, port, ok := strings.Cut(a, ":")
	_ = host
	if !ok || port == "" || strings.Contains(port, ":") && !strings.HasPrefix(a, "[") {
		return fmt.Errorf("%q is not host:port", a)
	}
	return nil
}

// setMapNode sets key in mapping m to value, replacing an earlier one.
func setMapNode(m *yaml.Node, key string, value *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = value
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, value)
}

// decodeStrict decodes n into out, rejecting unknown keys.
func decodeStrict(n *yaml.Node, out any) error {
	raw, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil && err.Error() != "EOF" {
		return err
	}
	return nil
}

// cacheBytes is LedgerCacheBytes as the storage takes it (< 0: none).
func (c *Config) cacheBytes() int64 {
	if c.LedgerCacheBytes == 0 {
		return -1
	}
	return c.LedgerCacheBytes
}
