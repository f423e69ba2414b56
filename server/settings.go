package server

import (
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kopernik-io/kopernik/internal/suggest"
	"github.com/kopernik-io/kopernik/protocol/kafka"
	"github.com/kopernik-io/kopernik/protocol/pulsar"
)

// Kind is how a setting's value is written, the same in YAML, the
// environment and flags.
type Kind int

const (
	// KindString is any text.
	KindString Kind = iota
	// KindBool is true or false (YAML also yes/no, on/off; a flag alone means true).
	KindBool
	// KindInt is a whole number.
	KindInt
	// KindDuration is a Go duration: 500ms, 30s, 4h, 1h30m.
	KindDuration
	// KindBytes is a size: bytes (1048576) or with a unit, 1000-based (KB,
	// MB, GB, TB) or 1024-based (KiB, MiB, GiB, TiB); -1 where the setting
	// says it means unlimited or off.
	KindBytes
	// KindList is comma-separated text in the environment and flags, a
	// YAML sequence (or comma-separated text) in the file.
	KindList
)

// Setting is one row of the settings table, which drives the YAML keys,
// the KOPERNIK_* environment variables, the `kopernik standalone` flags,
// their -h help and docs/configuration.md.
type Setting struct {
	// Key is the flag name (--Key), the YAML key and, upper-cased with _
	// for -, the environment variable after EnvPrefix. A protocol
	// handler's setting (Protocol set) is written in YAML inside the
	// protocol's section: Key "kafka-advertised-addr" is
	// `kafka: {advertised-addr: ...}`.
	Key string
	// Protocol is the handler whose section holds the setting (empty:
	// top level).
	Protocol string
	// Section groups the settings in help and docs.
	Section string
	Kind    Kind
	// Arg names the value in help ("host:port", "path"); empty: from Kind.
	Arg string
	// Help is one line saying what the setting does.
	Help string
	// Mirrors is the Kafka or Pulsar setting it corresponds to, if any.
	Mirrors string
	// DefaultText, if set, describes a default that depends on the build
	// (protocols: the compiled-in handlers).
	DefaultText string
	// field returns a pointer to the value in c: *string, *bool, *int,
	// *int32, *int64, *time.Duration, *[]string, or a mapEntry.
	field func(c *Config) any
}

// mapEntry is a string setting kept in a map (Config.Addrs, TLSAddrs).
type mapEntry struct {
	m   map[string]string
	key string
}

// Env is the environment variable of s.
func (s *Setting) Env() string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(s.Key, "-", "_"))
}

// YAMLKey is how s is written in the configuration file: "fsync" or
// "kafka.advertised-addr" (key advertised-addr in section kafka).
func (s *Setting) YAMLKey() string {
	if s.Protocol == "" {
		return s.Key
	}
	return s.Protocol + "." + s.sub()
}

// sub is the key inside the protocol section.
func (s *Setting) sub() string { return strings.TrimPrefix(s.Key, s.Protocol+"-") }

// Default is the default value as it would be written (or described).
func (s *Setting) Default() string {
	if s.DefaultText != "" {
		return s.DefaultText
	}
	return s.format(DefaultConfig())
}

// argName is the placeholder of the value in help.
func (s *Setting) argName() string {
	if s.Arg != "" {
		return s.Arg
	}
	return [...]string{KindString: "string", KindBool: "bool", KindInt: "int", KindDuration: "duration",
		KindBytes: "size", KindList: "list"}[s.Kind]
}

// format writes the value of s in c as a user would.
func (s *Setting) format(c *Config) string {
	switch p := s.field(c).(type) {
	case *string:
		return *p
	case mapEntry:
		return p.m[p.key]
	case *bool:
		return strconv.FormatBool(*p)
	case *int:
		return s.formatInt(int64(*p))
	case *int32:
		return s.formatInt(int64(*p))
	case *int64:
		return s.formatInt(*p)
	case *time.Duration:
		return formatDuration(*p)
	case *[]string:
		return strings.Join(*p, ",")
	}
	panic("server: setting " + s.Key + " has an unsupported field type")
}

func (s *Setting) formatInt(v int64) string {
	if s.Kind == KindBytes && v > 0 {
		for _, u := range []struct {
			name string
			n    int64
		}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
			if v%u.n == 0 {
				return strconv.FormatInt(v/u.n, 10) + u.name
			}
		}
	}
	return strconv.FormatInt(v, 10)
}

// formatDuration drops the zero units Duration.String keeps: 168h, not 168h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// set parses raw (text from YAML, the environment or a flag) into c. Its
// error says what was wrong with the value, never in Go's terms.
func (s *Setting) set(c *Config, raw string) error {
	switch p := s.field(c).(type) {
	case *string:
		*p = raw
	case mapEntry:
		if raw == "" {
			delete(p.m, p.key) // as never set: TLSAddrs holds only listeners that are on
		} else {
			p.m[p.key] = raw
		}
	case *bool:
		v, err := parseBool(raw)
		if err != nil {
			return err
		}
		*p = v
	case *int:
		v, err := s.parseInt(raw, math.MinInt, math.MaxInt)
		if err != nil {
			return err
		}
		*p = int(v)
	case *int32:
		v, err := s.parseInt(raw, math.MinInt32, math.MaxInt32)
		if err != nil {
			return err
		}
		*p = int32(v)
	case *int64:
		v, err := s.parseInt(raw, math.MinInt64, math.MaxInt64)
		if err != nil {
			return err
		}
		*p = v
	case *time.Duration:
		v, err := time.ParseDuration(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("%q is not a duration (write e.g. 500ms, 30s, 4h, 1h30m)", raw)
		}
		*p = v
	case *[]string:
		*p = splitList(raw)
	default:
		panic("server: setting " + s.Key + " has an unsupported field type")
	}
	return nil
}

func splitList(raw string) []string {
	var out []string
	for _, v := range strings.Split(raw, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func parseBool(raw string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(raw)) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (write true or false)", raw)
}

// byteUnits are the size suffixes KindBytes accepts, longest first so that
// "KiB" is not read as "B".
var byteUnits = []struct {
	suffix string
	n      int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

func (s *Setting) parseInt(raw string, lo, hi int64) (int64, error) {
	text := strings.TrimSpace(raw)
	mult := int64(1)
	if s.Kind == KindBytes {
		for _, u := range byteUnits {
			if n, ok := strings.CutSuffix(text, u.suffix); ok {
				text, mult = strings.TrimSpace(n), u.n
				break
			}
		}
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil && !errorsIsRange(err) {
		if s.Kind == KindBytes {
			return 0, fmt.Errorf("%q is not a size (write bytes, or e.g. 64KiB, 128MiB, 1GiB, 500MB)", raw)
		}
		return 0, fmt.Errorf("%q is not a whole number", raw)
	}
	if err != nil || v > hi/mult || v < lo/mult {
		return 0, fmt.Errorf("%q is out of range (%d to %d)", raw, lo, hi)
	}
	return v * mult, nil
}

func errorsIsRange(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// Settings returns the settings table, in help order.
func Settings() []Setting { return settings }

// settingByKey finds a row by its flag name.
func settingByKey(key string) *Setting {
	for i := range settings {
		if settings[i].Key == key {
			return &settings[i]
		}
	}
	return nil
}

// tableProtocol reports whether protocol name's settings are rows of the
// table (kafka, pulsar); other registered handlers (tests') keep a generic
// section decoded as YAML.
func tableProtocol(name string) bool {
	for i := range settings {
		if settings[i].Protocol == name {
			return true
		}
	}
	return false
}

func kafkaConfig(c *Config) *kafka.Config   { return c.Handlers["kafka"].(*kafka.Config) }
func pulsarConfig(c *Config) *pulsar.Config { return c.Handlers["pulsar"].(*pulsar.Config) }

// Sections of the settings table, in help order.
const (
	secGeneral  = "General"
	secHTTP     = "HTTP: admin REST, metrics, health, console"
	secStorage  = "Storage"
	secPolicies = "Topic policy defaults (namespaces and topics override them)"
	secTiered   = "Tiered storage (docs/storage.md)"
	secCluster  = "Cluster (docs/cluster.md)"
	secTLS      = "TLS (docs/security.md)"
	secAuth     = "Authentication and authorization (docs/security.md)"
	secKafka    = "Kafka protocol"
	secPulsar   = "Pulsar protocol"
)

// settings is the table. Handler-specific rows point into the handler's
// config (kafka.Config, pulsar.Config); TestSettingsCoverHandlerConfigs
// checks that every field of those has a row.
var settings = []Setting{
	{Key: "data-dir", Section: secGeneral, Arg: "path", Help: "directory of the ledgers and the embedded metadata store",
		field: func(c *Config) any { return &c.DataDir }},
	{Key: "metadata-store-url", Section: secGeneral, Arg: "url", Help: `metadata store: empty or "bolt:PATH" the embedded bbolt file in data-dir, "etcd:http://h1:2379,http://h2:2379" etcd, "memory:" nothing kept`,
		Mirrors: "Pulsar metadataStoreUrl", field: func(c *Config) any { return &c.MetadataStoreURL }},
	{Key: "protocols", Section: secGeneral, Kind: KindList, Arg: "names", Help: "protocol handlers to enable (comma-separated)",
		Mirrors: "Pulsar messagingProtocols", DefaultText: "every compiled-in one (kafka,pulsar)", field: func(c *Config) any { return &c.Protocols }},
	{Key: "log-level", Section: secGeneral, Arg: "level", Help: "debug, info, warn or error",
		field: func(c *Config) any { return &c.LogLevel }},
	{Key: "log-format", Section: secGeneral, Arg: "format", Help: "text or json",
		field: func(c *Config) any { return &c.LogFormat }},
	{Key: "shutdown-timeout", Section: secGeneral, Kind: KindDuration, Help: "bound on the graceful part of a shutdown (SIGINT, SIGTERM)",
		field: func(c *Config) any { return &c.ShutdownTimeout }},
	{Key: "transaction-max-timeout", Section: secGeneral, Kind: KindDuration, Help: "largest transaction timeout a transactional producer may ask for (docs/transactions.md)",
		Mirrors: "Kafka transaction.max.timeout.ms", field: func(c *Config) any { return &c.TransactionMaxTimeout }},
	{Key: "transaction-check-interval", Section: secGeneral, Kind: KindDuration, Help: "how often timed-out transactions are aborted, unfinished ones completed and (cluster) a dead coordinator's transactions adopted",
		Mirrors: "Kafka transaction.abort.timed.out.transaction.cleanup.interval.ms", field: func(c *Config) any { return &c.TransactionCheckInterval }},
	{Key: "transactional-id-expiration", Section: secGeneral, Kind: KindDuration, Help: "forget a transactional id with no transaction open this long after its last use (negative: never)",
		Mirrors: "Kafka transactional.id.expiration.ms", field: func(c *Config) any { return &c.TransactionalIDExpiration }},
	{Key: "compaction-interval", Section: secGeneral, Kind: KindDuration, Help: "how often compacting topics are looked at and compacted when due (negative: manual compactions only; docs/compaction.md)",
		Mirrors: "Kafka log.cleaner.backoff.ms", field: func(c *Config) any { return &c.CompactionInterval }},
	{Key: "max-connections-per-address", Section: secGeneral, Kind: KindInt, Help: "open connections of one client host over all listeners (0: no bound)",
		Mirrors: "Kafka max.connections.per.ip, Pulsar maxConnectionsPerIp", field: func(c *Config) any { return &c.MaxConnectionsPerAddress }},

	{Key: "http-addr", Section: secHTTP, Arg: "host:port", Help: "listener of /admin/v2, /metrics, /healthz, /readyz and the console",
		Mirrors: "Pulsar webServicePort", field: func(c *Config) any { return &c.HTTPAddr }},
	{Key: "https-addr", Section: secHTTP, Arg: "host:port", Help: "the same over TLS (empty: off; needs tls-cert-file, tls-key-file)",
		Mirrors: "Pulsar webServicePortTls", field: func(c *Config) any { return &c.HTTPSAddr }},
	{Key: "expose-topic-level-metrics", Section: secHTTP, Kind: KindBool, Help: "/metrics per topic partition and subscription; false: per namespace only, bounding the series",
		Mirrors: "Pulsar exposeTopicLevelMetricsInPrometheus", field: func(c *Config) any { return &c.ExposeTopicLevelMetrics }},
	{Key: "debug-pprof", Section: secHTTP, Kind: KindBool, Help: "serve Go's runtime profiles under /debug/pprof/ on the HTTP listener, without authentication (for operators on a trusted listener)",
		field: func(c *Config) any { return &c.DebugPprof }},

	{Key: "fsync", Section: secStorage, Arg: "policy", Help: `"always": an acknowledged write is on stable storage (group commit); "interval": fsync every fsync-interval`,
		Mirrors: "Kafka log.flush.interval.messages=1, Pulsar journalSyncData", field: func(c *Config) any { return &c.Fsync }},
	{Key: "fsync-interval", Section: secStorage, Kind: KindDuration, Help: `fsync period with fsync "interval"`,
		Mirrors: "Kafka log.flush.interval.ms", field: func(c *Config) any { return &c.FsyncInterval }},
	{Key: "journal", Section: secStorage, Kind: KindBool, Help: `with fsync "always": one shared journal group-commits the appends of all partitions (false: each partition fsyncs its own files)`,
		Mirrors: "BookKeeper journal", field: func(c *Config) any { return &c.Journal }},
	{Key: "journal-checkpoint-interval", Section: secStorage, Kind: KindDuration, Help: "how often partitions' files are fsynced and the journal behind them released",
		Mirrors: "BookKeeper flushInterval", field: func(c *Config) any { return &c.JournalCheckpointInterval }},
	{Key: "max-open-files", Section: secStorage, Kind: KindInt, Help: "file descriptors for partitions' files; idle files are closed, least recently used first, and reopened on use (0: three quarters of the open-file limit; -1: unbounded)",
		Mirrors: "BookKeeper openFileLimit, Kafka's none (one descriptor per segment file)", field: func(c *Config) any { return &c.MaxOpenFiles }},
	{Key: "ledger-cache-bytes", Section: secStorage, Kind: KindBytes, Help: "memory for the newest entries of all ledgers, read by consumers that keep up (0: none; costs up to twice this heap)",
		Mirrors: "Pulsar managedLedgerCacheSizeMB", field: func(c *Config) any { return &c.LedgerCacheBytes }},
	{Key: "storage-retry-interval", Section: secStorage, Kind: KindDuration, Help: "how soon a partition failed by a write or fsync error (a full disk) retries; backs off to 5x",
		field: func(c *Config) any { return &c.StorageRetryInterval }},

	{Key: "retention-time", Section: secPolicies, Kind: KindDuration, Help: "how long consumed data is kept",
		Mirrors: "Kafka log.retention.hours, Pulsar defaultRetentionTimeInMinutes", field: func(c *Config) any { return &c.RetentionTime }},
	{Key: "retention-bytes", Section: secPolicies, Kind: KindBytes, Help: "consumed data kept per partition (-1: unlimited)",
		Mirrors: "Kafka log.retention.bytes, Pulsar defaultRetentionSizeInMB", field: func(c *Config) any { return &c.RetentionBytes }},
	{Key: "max-message-bytes", Section: secPolicies, Kind: KindBytes, Help: "largest batch (Kafka) or message (Pulsar) accepted",
		Mirrors: "Kafka message.max.bytes, Pulsar maxMessageSize", field: func(c *Config) any { return &c.MaxMessageBytes }},
	{Key: "compression-type", Section: secPolicies, Arg: "codec", Help: "Kafka batches are recompressed on write to uncompressed, gzip, snappy, lz4 or zstd (producer: kept as produced)",
		Mirrors: "Kafka compression.type", field: func(c *Config) any { return &c.CompressionType }},
	{Key: "segment-bytes", Section: secPolicies, Kind: KindBytes, Help: "a ledger rolls over at this size (at least 1KiB)",
		Mirrors: "Kafka log.segment.bytes, Pulsar managedLedgerMaxSizePerLedgerMbytes", field: func(c *Config) any { return &c.SegmentBytes }},
	{Key: "segment-age", Section: secPolicies, Kind: KindDuration, Help: "a ledger rolls over at this age",
		Mirrors: "Kafka log.roll.hours, Pulsar managedLedgerMaxLedgerRolloverTimeMinutes", field: func(c *Config) any { return &c.SegmentAge }},
	{Key: "auto-topic-creation", Section: secPolicies, Kind: KindBool, Help: "producers and consumers create missing topics",
		Mirrors: "Kafka auto.create.topics.enable, Pulsar allowAutoTopicCreation", field: func(c *Config) any { return &c.AutoTopicCreation }},
	{Key: "auto-subscription-creation", Section: secPolicies, Kind: KindBool, Help: "consumers create missing subscriptions",
		Mirrors: "Pulsar allowAutoSubscriptionCreation", field: func(c *Config) any { return &c.AutoSubscriptionCreation }},

	{Key: "offload-driver", Section: secTiered, Arg: "driver", Help: `"s3" offloads sealed ledgers to S3-compatible object storage (empty: off)`,
		Mirrors: "Pulsar managedLedgerOffloadDriver", field: func(c *Config) any { return &c.OffloadDriver }},
	{Key: "offload-s3-endpoint", Section: secTiered, Arg: "url", Help: "S3 API endpoint (empty: AWS); credentials from the AWS chain (AWS_ACCESS_KEY_ID, ~/.aws, roles)",
		Mirrors: "Pulsar s3ManagedLedgerOffloadServiceEndpoint", field: func(c *Config) any { return &c.OffloadS3Endpoint }},
	{Key: "offload-s3-bucket", Section: secTiered, Arg: "bucket", Help: "bucket of the offloaded ledgers (required with offload-driver)",
		Mirrors: "Pulsar s3ManagedLedgerOffloadBucket", field: func(c *Config) any { return &c.OffloadS3Bucket }},
	{Key: "offload-s3-region", Section: secTiered, Arg: "region", Help: "bucket region (empty: us-east-1)",
		Mirrors: "Pulsar s3ManagedLedgerOffloadRegion", field: func(c *Config) any { return &c.OffloadS3Region }},
	{Key: "offload-threshold-bytes", Section: secTiered, Kind: KindBytes, Help: "offload a partition's oldest sealed ledgers while its local sealed data exceeds this (-1: off; 0: all)",
		Mirrors: "Pulsar managedLedgerOffloadThresholdInBytes", field: func(c *Config) any { return &c.OffloadThresholdBytes }},
	{Key: "offload-threshold-seconds", Section: secTiered, Kind: KindInt, Arg: "seconds", Help: "offload sealed ledgers closed longer ago than this (-1: off)",
		Mirrors: "Pulsar managedLedgerOffloadThresholdInSeconds", field: func(c *Config) any { return &c.OffloadThresholdSeconds }},
	{Key: "offload-deletion-lag", Section: secTiered, Kind: KindDuration, Help: "keep the local copy of an offloaded ledger this long (0: delete at the next pass)",
		Mirrors: "Pulsar managedLedgerOffloadDeletionLagMs", field: func(c *Config) any { return &c.OffloadDeletionLag }},
	{Key: "offload-read-priority", Section: secTiered, Arg: "priority", Help: "tiered-storage-first or local-first: the copy reads use while both exist",
		Mirrors: "Pulsar managedLedgerDataReadPriority", field: func(c *Config) any { return &c.OffloadReadPriority }},
	{Key: "offload-interval", Section: secTiered, Kind: KindDuration, Help: "period of the pass that offloads, deletes local copies and collects orphan objects",
		field: func(c *Config) any { return &c.OffloadInterval }},
	{Key: "cluster-name", Section: secCluster, Arg: "name", Help: "join the cluster of this name on the etcd of metadata-store-url: serve only the partitions this broker owns (empty: standalone, serve everything)",
		Mirrors: "Pulsar clusterName", field: func(c *Config) any { return &c.ClusterName }},
	{Key: "broker-name", Section: secCluster, Arg: "name", Help: "this broker's stable identity in the cluster; its Kafka node id follows it (default: the Kafka listener's address)",
		Mirrors: "Pulsar advertisedAddress", field: func(c *Config) any { return &c.BrokerName }},
	{Key: "cluster-lease-ttl", Section: secCluster, Kind: KindDuration, Help: "a broker that stops renewing its lease this long loses its partitions to the others (whole seconds)",
		Mirrors: "Pulsar metadataStoreSessionTimeoutMillis", field: func(c *Config) any { return &c.ClusterLeaseTTL }},
	{Key: "object-flush-interval", Section: secCluster, Kind: KindDuration, Help: "a cluster broker's appends wait at most this long to share one object (PUT, then committed in etcd, then acknowledged)",
		field: func(c *Config) any { return &c.ObjectFlushInterval }},
	{Key: "object-flush-bytes", Section: secCluster, Kind: KindBytes, Help: "a cluster broker flushes its pending appends at once when this much is pending",
		field: func(c *Config) any { return &c.ObjectFlushBytes }},

	{Key: "tls-cert-file", Section: secTLS, Arg: "path", Help: "PEM certificate (chain) of every TLS listener",
		Mirrors: "Kafka ssl.keystore.location, Pulsar tlsCertificateFilePath", field: func(c *Config) any { return &c.TLSCertFile }},
	{Key: "tls-key-file", Section: secTLS, Arg: "path", Help: "PEM private key of every TLS listener",
		Mirrors: "Kafka ssl.keystore.location, Pulsar tlsKeyFilePath", field: func(c *Config) any { return &c.TLSKeyFile }},
	{Key: "tls-client-ca-file", Section: secTLS, Arg: "path", Help: "require client certificates signed by these PEM CAs (empty: none asked)",
		Mirrors: "Kafka ssl.client.auth=required, Pulsar tlsTrustCertsFilePath", field: func(c *Config) any { return &c.TLSClientCAFile }},

	{Key: "auth-enabled", Section: secAuth, Kind: KindBool, Help: "clients must authenticate: Pulsar token, Kafka SASL PLAIN (token) or SCRAM-SHA-256/512",
		Mirrors: "Pulsar authenticationEnabled, Kafka SASL listeners", field: func(c *Config) any { return &c.AuthEnabled }},
	{Key: "auth-token-secret-key-file", Section: secAuth, Arg: "path", Help: "HS256 secret tokens are signed with (raw bytes)",
		Mirrors: "Pulsar tokenSecretKey", field: func(c *Config) any { return &c.AuthTokenSecretKeyFile }},
	{Key: "auth-token-public-key-file", Section: secAuth, Arg: "path", Help: "PEM or DER public key of RS256/ES256 tokens (at most one of the two key files)",
		Mirrors: "Pulsar tokenPublicKey", field: func(c *Config) any { return &c.AuthTokenPublicKeyFile }},
	{Key: "anonymous-role", Section: secAuth, Arg: "role", Help: "role of Pulsar clients sending no credentials (empty: refused)",
		Mirrors: "Pulsar anonymousUserRole", field: func(c *Config) any { return &c.AnonymousRole }},
	{Key: "authorization-enabled", Section: secAuth, Kind: KindBool, Help: "with auth-enabled, roles may only do what they were granted (needs superuser-roles)",
		Mirrors: "Pulsar authorizationEnabled", field: func(c *Config) any { return &c.AuthorizationEnabled }},
	{Key: "superuser-roles", Section: secAuth, Kind: KindList, Arg: "roles", Help: "roles that may do anything, tenants included (comma-separated)",
		Mirrors: "Pulsar superUserRoles", field: func(c *Config) any { return &c.SuperUserRoles }},
	{Key: "auth-failure-delay", Section: secAuth, Kind: KindDuration, Help: "delay of the answer to a failed authentication, so that guessing is slow",
		field: func(c *Config) any { return &c.AuthFailureDelay }},
	{Key: "auth-max-pending-per-address", Section: secAuth, Kind: KindInt, Help: "unauthenticated connections of one client host (0: no bound)",
		field: func(c *Config) any { return &c.AuthMaxPendingPerAddress }},

	{Key: "kafka-addr", Section: secKafka, Arg: "host:port", Help: "Kafka listener (port 0 picks a free one; the chosen address is logged)",
		Mirrors: "Kafka listeners", field: func(c *Config) any { return mapEntry{c.Addrs, "kafka"} }},
	{Key: "kafka-tls-addr", Section: secKafka, Arg: "host:port", Help: "Kafka TLS listener (empty: off)",
		Mirrors: "Kafka listeners SSL://, SASL_SSL://", field: func(c *Config) any { return mapEntry{c.TLSAddrs, "kafka"} }},
	{Key: "kafka-advertised-addr", Protocol: "kafka", Section: secKafka, Arg: "host:port", Help: "address clients are told in Metadata (empty: the listener's)",
		Mirrors: "Kafka advertised.listeners", field: func(c *Config) any { return &kafkaConfig(c).AdvertisedAddr }},
	{Key: "kafka-advertised-tls-addr", Protocol: "kafka", Section: secKafka, Arg: "host:port", Help: "the same for the TLS listener",
		Mirrors: "Kafka advertised.listeners SSL://", field: func(c *Config) any { return &kafkaConfig(c).AdvertisedTLSAddr }},
	{Key: "kafka-tenant", Protocol: "kafka", Section: secKafka, Arg: "tenant", Help: "tenant of the topics Kafka clients name without one",
		field: func(c *Config) any { return &kafkaConfig(c).Tenant }},
	{Key: "kafka-namespace", Protocol: "kafka", Section: secKafka, Arg: "namespace", Help: "namespace of the topics Kafka clients name without one",
		field: func(c *Config) any { return &kafkaConfig(c).Namespace }},
	{Key: "kafka-auto-create-topics", Protocol: "kafka", Section: secKafka, Kind: KindBool, Help: "Metadata and Produce create missing topics (auto-topic-creation must allow it too)",
		Mirrors: "Kafka auto.create.topics.enable", field: func(c *Config) any { return &kafkaConfig(c).AutoCreateTopics }},
	{Key: "kafka-default-partitions", Protocol: "kafka", Section: secKafka, Kind: KindInt, Help: "partitions of auto-created topics and of CreateTopics with -1",
		Mirrors: "Kafka num.partitions", field: func(c *Config) any { return &kafkaConfig(c).DefaultPartitions }},
	{Key: "kafka-max-request-bytes", Protocol: "kafka", Section: secKafka, Kind: KindBytes, Help: "largest request frame; larger ones close the connection",
		Mirrors: "Kafka socket.request.max.bytes", field: func(c *Config) any { return &kafkaConfig(c).MaxRequestBytes }},
	{Key: "kafka-idle-timeout", Protocol: "kafka", Section: secKafka, Kind: KindDuration, Help: "close connections silent this long",
		Mirrors: "Kafka connections.max.idle.ms", field: func(c *Config) any { return &kafkaConfig(c).IdleTimeout }},
	{Key: "kafka-node-id", Protocol: "kafka", Section: secKafka, Kind: KindInt, Help: "this broker's id in Metadata",
		Mirrors: "Kafka node.id, broker.id", field: func(c *Config) any { return &kafkaConfig(c).NodeID }},
	{Key: "kafka-group-initial-rebalance-delay", Protocol: "kafka", Section: secKafka, Kind: KindDuration, Help: "first rebalance of an empty group waits this long for more members (0: at once)",
		Mirrors: "Kafka group.initial.rebalance.delay.ms", field: func(c *Config) any { return &kafkaConfig(c).GroupInitialRebalanceDelay }},
	{Key: "kafka-sasl-timeout", Protocol: "kafka", Section: secKafka, Kind: KindDuration, Help: "close connections not through SASL this long after opening (with auth-enabled)",
		field: func(c *Config) any { return &kafkaConfig(c).SASLTimeout }},
	{Key: "kafka-transaction-version", Protocol: "kafka", Section: secKafka, Kind: KindInt, Help: "transactions protocol offered to Kafka 4 clients: 2 (KIP-890, epoch bumped per transaction) or 1",
		Mirrors: "Kafka feature transaction.version", field: func(c *Config) any { return &kafkaConfig(c).TransactionVersion }},

	{Key: "pulsar-addr", Section: secPulsar, Arg: "host:port", Help: "Pulsar binary-protocol listener (port 0 picks a free one)",
		Mirrors: "Pulsar brokerServicePort", field: func(c *Config) any { return mapEntry{c.Addrs, "pulsar"} }},
	{Key: "pulsar-tls-addr", Section: secPulsar, Arg: "host:port", Help: "Pulsar TLS listener (empty: off)",
		Mirrors: "Pulsar brokerServicePortTls", field: func(c *Config) any { return mapEntry{c.TLSAddrs, "pulsar"} }},
	{Key: "pulsar-advertised-addr", Protocol: "pulsar", Section: secPulsar, Arg: "host:port", Help: "address LOOKUP answers with (empty: the listener's)",
		Mirrors: "Pulsar advertisedAddress + brokerServicePort", field: func(c *Config) any { return &pulsarConfig(c).AdvertisedAddr }},
	{Key: "pulsar-advertised-tls-addr", Protocol: "pulsar", Section: secPulsar, Arg: "host:port", Help: "the same for TLS clients",
		Mirrors: "Pulsar advertisedAddress + brokerServicePortTls", field: func(c *Config) any { return &pulsarConfig(c).AdvertisedTLSAddr }},
	{Key: "pulsar-max-message-size", Protocol: "pulsar", Section: secPulsar, Kind: KindBytes, Help: "largest message, announced in CONNECTED (0: max-message-bytes)",
		Mirrors: "Pulsar maxMessageSize", field: func(c *Config) any { return &pulsarConfig(c).MaxMessageSize }},
	{Key: "pulsar-tenant", Protocol: "pulsar", Section: secPulsar, Arg: "tenant", Help: "tenant of short topic names",
		field: func(c *Config) any { return &pulsarConfig(c).Tenant }},
	{Key: "pulsar-namespace", Protocol: "pulsar", Section: secPulsar, Arg: "namespace", Help: "namespace of short topic names",
		field: func(c *Config) any { return &pulsarConfig(c).Namespace }},
	{Key: "pulsar-auto-create-subscriptions", Protocol: "pulsar", Section: secPulsar, Kind: KindBool, Help: "SUBSCRIBE creates missing durable subscriptions (auto-subscription-creation must allow it too)",
		Mirrors: "Pulsar allowAutoSubscriptionCreation", field: func(c *Config) any { return &pulsarConfig(c).AutoCreateSubscriptions }},
	{Key: "pulsar-keepalive", Protocol: "pulsar", Section: secPulsar, Kind: KindDuration, Help: "ping a silent connection after this long, drop it after twice this",
		Mirrors: "Pulsar keepAliveIntervalSeconds", field: func(c *Config) any { return &pulsarConfig(c).Keepalive }},
	{Key: "pulsar-connection-buffer-bytes", Protocol: "pulsar", Section: secPulsar, Kind: KindBytes, Help: "outgoing bytes queued per connection before dispatch waits for the client",
		field: func(c *Config) any { return &pulsarConfig(c).ConnectionBufferBytes }},
	{Key: "pulsar-backlog-quota-check-interval", Protocol: "pulsar", Section: secPulsar, Kind: KindDuration, Help: "a producer rechecks its topic's backlog quota this often (0: every SEND)",
		Mirrors: "Pulsar backlogQuotaCheckIntervalInSeconds", field: func(c *Config) any { return &pulsarConfig(c).BacklogQuotaCheckInterval }},
	{Key: "pulsar-auth-timeout", Protocol: "pulsar", Section: secPulsar, Kind: KindDuration, Help: "close connections not through CONNECT this long after opening (with auth-enabled)",
		field: func(c *Config) any { return &pulsarConfig(c).AuthTimeout }},
}

// RegisterFlags adds one typed flag per setting to fs. A flag given on the
// command line checks its value as it is parsed and records it in
// overrides (key -> text), which Load applies last.
func RegisterFlags(fs *flag.FlagSet, overrides map[string]string) {
	for i := range settings {
		s := &settings[i]
		fs.Var(&settingFlag{s: s, overrides: overrides}, s.Key, s.Help)
	}
}

// settingFlag is the flag.Value of one setting: it checks the value with
// the setting's own parser, on a scratch configuration.
type settingFlag struct {
	s         *Setting
	overrides map[string]string
}

func (f *settingFlag) String() string {
	if f == nil || f.s == nil {
		return ""
	}
	if v, ok := f.overrides[f.s.Key]; ok {
		return v
	}
	return f.s.format(DefaultConfig())
}

func (f *settingFlag) Set(v string) error {
	if err := f.s.set(DefaultConfig(), v); err != nil {
		return err
	}
	f.overrides[f.s.Key] = v
	return nil
}

// IsBoolFlag lets a bool setting be given as --auth-enabled alone.
func (f *settingFlag) IsBoolFlag() bool { return f.s.Kind == KindBool }

// WriteUsage writes every setting as `kopernik standalone -h` shows it,
// grouped by section: flag, value, what it does, default, environment
// variable and the Kafka/Pulsar setting it mirrors.
func WriteUsage(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	section := ""
	for i := range settings {
		s := &settings[i]
		if s.Section != section {
			section = s.Section
			fmt.Fprintf(tw, "\n%s:\n", section)
		}
		arg := " <" + s.argName() + ">"
		if s.Kind == KindBool {
			arg = "[=" + s.argName() + "]"
		}
		fmt.Fprintf(tw, "  --%s%s\t%s\n", s.Key, arg, s.Help)
		notes := "default: " + orNone(s.Default()) + "; env " + s.Env()
		if s.Mirrors != "" {
			notes += "; " + s.Mirrors
		}
		fmt.Fprintf(tw, "\t%s\n", notes)
	}
	tw.Flush()
}

func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}

// WriteConfigDoc writes docs/configuration.md from the table
// (TestConfigurationDoc keeps the file current).
func WriteConfigDoc(w io.Writer) {
	fmt.Fprint(w, `# Configuration

<!-- Generated from server/settings.go by TestConfigurationDoc; edit the table there and run
     go test ./server -run TestConfigurationDoc -update-docs -->

Every setting of `+"`kopernik standalone`"+` can be given three ways, and the later ones win:

1. a YAML file, `+"`--config kopernik.yaml`"+` (an example: [kopernik.yaml](../kopernik.yaml));
   a protocol's settings go in a section named after it (`+"`kafka: {advertised-addr: ...}`"+`);
2. an environment variable, `+"`KOPERNIK_`"+` and the flag name in capitals with `+"`_`"+` for `+"`-`"+`;
3. a flag, `+"`--data-dir /var/lib/kopernik`"+`.

Precedence: defaults < file < environment < flags. Durations are written `+"`500ms`"+`, `+"`30s`"+`,
`+"`4h`"+`; sizes in bytes or with a unit (`+"`64KiB`"+`, `+"`128MiB`"+`, `+"`1GiB`"+`, `+"`500MB`"+`); lists comma-separated
(a YAML sequence in the file); booleans `+"`true`"+`/`+"`false`"+` (a bool flag alone means true).
A wrong setting stops the start with every problem at once, each naming where it was set
(file:line, environment variable or flag) and the value; an unknown key suggests the closest
known one. `+"`kopernik standalone -h`"+` prints the same table.
`)
	section := ""
	for i := range settings {
		s := &settings[i]
		if s.Section != section {
			section = s.Section
			fmt.Fprintf(w, "\n## %s\n\n| flag / YAML key | value | default | what it does | mirrors |\n|---|---|---|---|---|\n", section)
		}
		key := "`--" + s.Key + "`"
		if s.Protocol != "" {
			key += "<br>`" + s.YAMLKey() + "`"
		}
		def := "none"
		if d := s.Default(); d != "" {
			def = "`" + d + "`"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", key, s.argName(), def,
			strings.ReplaceAll(s.Help, "|", `\|`), s.Mirrors)
	}
}

// SuggestFlag returns the setting closest to a mistyped flag name, or "".
func SuggestFlag(name string) string {
	keys := make([]string, len(settings))
	for i := range settings {
		keys[i] = settings[i].Key
	}
	return suggest.Closest(name, keys, max(2, len(name)/4))
}
