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
	"github.com/kopernik-io/kopernik/protocol"
	"github.com/kopernik-io/kopernik/segment"
)

// EnvPrefix starts every environment variable the configuration reads:
// KOPERNIK_DATA_DIR sets data-dir, KOPERNIK_KAFKA_ADDR sets kafka-addr,
// KOPERNIK_KAFKA_ADVERTISED_ADDR sets advertised-addr in the kafka section.
const EnvPrefix = "KOPERNIK_"

// Config is the standalone broker's configuration. Precedence, lowest
// first: defaults, the YAML file, KOPERNIK_* environment variables, flags.
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
	// LogLevel is debug, info (default), warn or error; LogFormat text (default) or json.
	LogLevel  string `yaml:"log-level"`
	LogFormat string `yaml:"log-format"`
	// ShutdownTimeout bounds graceful shutdown (default 10s).
	ShutdownTimeout time.Duration `yaml:"shutdown-timeout"`

	// Broker-wide policy defaults; namespaces and topics override them.
	// RetentionTime keeps consumed data (default 168h; Kafka log.retention.hours).
	RetentionTime time.Duration `yaml:"retention-time"`
	// RetentionBytes caps consumed data per partition (default -1, unlimited; Kafka log.retention.bytes).
	RetentionBytes int64 `yaml:"retention-bytes"`
	// MaxMessageBytes is the largest batch accepted (default 1048576; Kafka message.max.bytes).
	MaxMessageBytes int32 `yaml:"max-message-bytes"`
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
		DataDir:                  "./data",
		HTTPAddr:                 "localhost:8080",
		Protocols:                protocol.Names(),
		Fsync:                    "always",
		FsyncInterval:            time.Second,
		LogLevel:                 "info",
		LogFormat:                "text",
		ShutdownTimeout:          10 * time.Second,
		RetentionTime:            d.RetentionTime,
		RetentionBytes:           d.RetentionBytes,
		MaxMessageBytes:          d.MaxMessageBytes,
		SegmentBytes:             d.SegmentBytes,
		SegmentAge:               d.SegmentAge,
		AutoTopicCreation:        d.AutoTopicCreation,
		AutoSubscriptionCreation: d.AutoSubscriptionCreation,
		Addrs:                    map[string]string{},
		TLSAddrs:                 map[string]string{},
		AuthFailureDelay:         time.Second,
		AuthorizationEnabled:     true,
		LedgerCacheBytes:         64 << 20,
		StorageRetryInterval:     time.Second,
		AuthMaxPendingPerAddress: 64,
		OffloadThresholdBytes:    d.OffloadThresholdBytes,
		OffloadThresholdSeconds:  d.OffloadThresholdSeconds,
		OffloadDeletionLag:       d.OffloadDeletionLag,
		OffloadReadPriority:      d.OffloadReadPriority,
		OffloadInterval:          10 * time.Second,
		ExposeTopicLevelMetrics:  true,
		Handlers:                 map[string]any{},
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
// (key -> value, e.g. from flags; keys as in YAML). It reports every problem
// it finds at once.
func Load(file string, environ []string, overrides map[string]string) (*Config, error) {
	c := DefaultConfig()
	var problems []string
	root := map[string]*yaml.Node{}
	if file != "" {
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("config %s: %w", file, err)
		}
		if len(doc.Content) > 0 {
			m := doc.Content[0]
			if m.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("config %s: top level must be a mapping", file)
			}
			for i := 0; i+1 < len(m.Content); i += 2 {
				root[m.Content[i].Value] = m.Content[i+1]
			}
		}
	}
	// Environment and overrides become scalar nodes in the same tree.
	set := func(source, key, value string) {
		if section, sub, ok := c.splitSectionKey(key); ok {
			n := root[section]
			if n == nil || n.Kind != yaml.MappingNode {
				n = &yaml.Node{Kind: yaml.MappingNode}
				root[section] = n
			}
			setMapScalar(n, sub, value)
			return
		}
		if !c.knownTopKey(key) {
			problems = append(problems, fmt.Sprintf("%s: unknown setting %q", source, key))
			return
		}
		if key == "protocols" || key == "superuser-roles" {
			seq := &yaml.Node{Kind: yaml.SequenceNode}
			for _, p := range strings.Split(value, ",") {
				if p = strings.TrimSpace(p); p != "" {
					seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: p})
				}
			}
			root[key] = seq
			return
		}
		root[key] = &yaml.Node{Kind: yaml.ScalarNode, Value: value}
	}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, EnvPrefix) {
			continue
		}
		key := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, EnvPrefix)), "_", "-")
		set("environment "+k, key, v)
	}
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		set("flag --"+k, k, overrides[k])
	}

	// Decode: static keys into c, "<proto>-addr" into Addrs, sections into Handlers.
	static := &yaml.Node{Kind: yaml.MappingNode}
	names := make([]string, 0, len(root))
	for k := range root {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		n := root[k]
		switch {
		case c.Handlers[k] != nil:
			if err := decodeStrict(n, c.Handlers[k]); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", k, err))
			}
		case strings.HasSuffix(k, "-addr") && c.Addrs[strings.TrimSuffix(k, "-addr")] != "":
			if n.Kind != yaml.ScalarNode {
				problems = append(problems, fmt.Sprintf("%s: must be host:port", k))
				continue
			}
			c.Addrs[strings.TrimSuffix(k, "-addr")] = n.Value
		case strings.HasSuffix(k, "-tls-addr") && c.Handlers[strings.TrimSuffix(k, "-tls-addr")] != nil:
			if n.Kind != yaml.ScalarNode {
				problems = append(problems, fmt.Sprintf("%s: must be host:port", k))
				continue
			}
			c.TLSAddrs[strings.TrimSuffix(k, "-tls-addr")] = n.Value
		case c.knownTopKey(k):
			static.Content = append(static.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, n)
		default:
			problems = append(problems, fmt.Sprintf("unknown setting %q (known: %s)", k, strings.Join(c.topKeys(), ", ")))
		}
	}
	if err := decodeStrict(static, c); err != nil {
		problems = append(problems, err.Error())
	}
	if err := c.Validate(); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("invalid configuration:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return c, nil
}

// Validate lists every problem of c.
func (c *Config) Validate() error {
	var problems []string
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if c.DataDir == "" {
		add("data-dir must not be empty")
	}
	if err := validAddr(c.HTTPAddr); err != nil {
		add("http-addr: %v", err)
	}
	if _, err := datadir.ParseMetadataURL(c.MetadataStoreURL); err != nil {
		add("metadata-store-url: %v", err)
	}
	if len(c.Protocols) == 0 {
		add("protocols: enable at least one of %v", protocol.Names())
	}
	for _, p := range c.Protocols {
		if _, err := protocol.Lookup(p); err != nil {
			add("protocols: %v", err)
			continue
		}
		if err := validAddr(c.Addrs[p]); err != nil {
			add("%s-addr: %v", p, err)
		}
		if a := c.TLSAddrs[p]; a != "" {
			if err := validAddr(a); err != nil {
				add("%s-tls-addr: %v", p, err)
			}
		}
		if v, ok := c.Handlers[p].(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				add("%s: %v", p, err)
			}
		}
	}
	if c.HTTPSAddr != "" {
		if err := validAddr(c.HTTPSAddr); err != nil {
			add("https-addr: %v", err)
		}
	}
	if c.tlsListeners() && (c.TLSCertFile == "" || c.TLSKeyFile == "") {
		add("tls-cert-file and tls-key-file are required with a TLS listener (https-addr, <protocol>-tls-addr)")
	}
	if c.AuthTokenSecretKeyFile != "" && c.AuthTokenPublicKeyFile != "" {
		add("auth-token-secret-key-file and auth-token-public-key-file: set at most one")
	}
	if c.AuthFailureDelay < 0 {
		add("auth-failure-delay must be >= 0")
	}
	if c.AuthEnabled && c.AuthorizationEnabled && len(c.SuperUserRoles) == 0 {
		add("auth-enabled with authorization-enabled (the default) needs superuser-roles: without one nobody could create tenants or grant permissions (or set authorization-enabled: false)")
	}
	if c.AuthMaxPendingPerAddress < 0 {
		add("auth-max-pending-per-address must be >= 0")
	}
	if c.LedgerCacheBytes < 0 {
		add("ledger-cache-bytes must be >= 0")
	}
	if c.StorageRetryInterval <= 0 {
		add("storage-retry-interval must be > 0")
	}
	if c.MaxConnectionsPerAddress < 0 {
		add("max-connections-per-address must be >= 0")
	}
	if c.Fsync != "always" && c.Fsync != "interval" {
		add("fsync must be \"always\" or \"interval\", not %q", c.Fsync)
	}
	if c.FsyncInterval <= 0 {
		add("fsync-interval must be > 0")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		add("log-level must be debug, info, warn or error, not %q", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		add("log-format must be text or json, not %q", c.LogFormat)
	}
	if c.ShutdownTimeout <= 0 {
		add("shutdown-timeout must be > 0")
	}
	if c.MaxMessageBytes <= 0 {
		add("max-message-bytes must be > 0")
	}
	if c.SegmentBytes < 1<<10 {
		add("segment-bytes must be >= 1024")
	}
	if c.SegmentAge <= 0 {
		add("segment-age must be > 0")
	}
	switch c.OffloadDriver {
	case "":
	case "s3", "aws-s3", "S3":
		if c.OffloadS3Bucket == "" {
			add("offload-driver %s needs offload-s3-bucket", c.OffloadDriver)
		}
	default:
		add("offload-driver must be empty (off) or s3, not %q", c.OffloadDriver)
	}
	if c.OffloadThresholdBytes < -1 {
		add("offload-threshold-bytes must be >= -1")
	}
	if c.OffloadThresholdSeconds < -1 {
		add("offload-threshold-seconds must be >= -1")
	}
	if c.OffloadDeletionLag < 0 {
		add("offload-deletion-lag must be >= 0")
	}
	if c.OffloadReadPriority != broker.ReadTieredFirst && c.OffloadReadPriority != broker.ReadLocalFirst {
		add("offload-read-priority must be %s or %s, not %q", broker.ReadTieredFirst, broker.ReadLocalFirst, c.OffloadReadPriority)
	}
	if c.OffloadInterval <= 0 {
		add("offload-interval must be > 0")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func validAddr(a string) error {
	host, port, ok := strings.Cut(a, ":")
	_ = host
	if !ok || port == "" || strings.Contains(port, ":") && !strings.HasPrefix(a, "[") {
		return fmt.Errorf("%q is not host:port", a)
	}
	return nil
}

// splitSectionKey maps "kafka-advertised-addr" to ("kafka", "advertised-addr")
// when "kafka" is a protocol section and the whole key is not a top-level one.
func (c *Config) splitSectionKey(key string) (string, string, bool) {
	if c.knownTopKey(key) {
		return "", "", false
	}
	for name := range c.Handlers {
		if rest, ok := strings.CutPrefix(key, name+"-"); ok && rest != "addr" {
			return name, rest, true
		}
	}
	return "", "", false
}

func (c *Config) topKeys() []string {
	keys := []string{"data-dir", "metadata-store-url", "http-addr", "protocols", "fsync", "fsync-interval", "log-level", "log-format",
		"shutdown-timeout", "retention-time", "retention-bytes", "max-message-bytes", "segment-bytes",
		"segment-age", "auto-topic-creation", "auto-subscription-creation",
		"https-addr", "tls-cert-file", "tls-key-file", "tls-client-ca-file",
		"auth-enabled", "auth-token-secret-key-file", "auth-token-public-key-file", "anonymous-role",
		"superuser-roles", "auth-failure-delay", "auth-max-pending-per-address", "authorization-enabled",
		"max-connections-per-address", "ledger-cache-bytes", "storage-retry-interval",
		"offload-driver", "offload-s3-endpoint", "offload-s3-bucket", "offload-s3-region",
		"offload-threshold-bytes", "offload-threshold-seconds", "offload-deletion-lag", "offload-read-priority",
		"offload-interval",

		"expose-topic-level-metrics"}
	for name := range c.Handlers {
		keys = append(keys, name, name+"-addr", name+"-tls-addr")
	}
	sort.Strings(keys)
	return keys
}

func (c *Config) knownTopKey(k string) bool {
	if c.Addrs[strings.TrimSuffix(k, "-addr")] != "" && strings.HasSuffix(k, "-addr") {
		return true
	}
	return slices.Contains(c.topKeys(), k)
}

func setMapScalar(m *yaml.Node, key, value string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Value: value}
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &yaml.Node{Kind: yaml.ScalarNode, Value: value})
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
