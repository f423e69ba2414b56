package server

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/protocol/kafka"
	"github.com/kopernik-io/kopernik/protocol/pulsar"
)

var updateDocs = flag.Bool("update-docs", false, "TestConfigurationDoc: rewrite docs/configuration.md from the settings table")

// TestSettingsCoverConfig: every YAML field of Config and of the Kafka and
// Pulsar sections is a row of the table, once, and every row's default
// reads back as the default.
func TestSettingsCoverConfig(t *testing.T) {
	rows := map[string]bool{}
	for _, s := range Settings() {
		if rows[s.YAMLKey()] {
			t.Errorf("%s: two rows", s.YAMLKey())
		}
		rows[s.YAMLKey()] = true
		if s.Help == "" || s.Section == "" {
			t.Errorf("%s: no help or section", s.Key)
		}
		c := DefaultConfig()
		def := s.format(c)
		if err := s.set(c, def); err != nil {
			t.Errorf("%s: default %q does not parse: %v", s.Key, def, err)
		} else if !reflect.DeepEqual(c, DefaultConfig()) {
			t.Errorf("%s: default %q reads back as another value", s.Key, def)
		}
	}
	check := func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			tag := typ.Field(i).Tag.Get("yaml")
			if tag == "" || tag == "-" {
				continue
			}
			if !rows[prefix+tag] {
				t.Errorf("%s%s (%s) has no row in the settings table", prefix, tag, typ.Field(i).Name)
			}
		}
	}
	check("", reflect.TypeOf(Config{}))
	check("kafka.", reflect.TypeOf(kafka.Config{}))
	check("pulsar.", reflect.TypeOf(pulsar.Config{}))
	for _, p := range []string{"kafka", "pulsar"} {
		for _, k := range []string{p + "-addr", p + "-tls-addr"} {
			if !rows[k] {
				t.Errorf("%s has no row", k)
			}
		}
	}
}

// TestConfigurationDoc: docs/configuration.md is the table as
// WriteConfigDoc renders it (-update-docs rewrites it).
func TestConfigurationDoc(t *testing.T) {
	var b bytes.Buffer
	WriteConfigDoc(&b)
	const path = "../docs/configuration.md"
	if *updateDocs {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, b.Bytes()) {
		t.Fatalf("%s is stale: go test ./server -run TestConfigurationDoc -update-docs", path)
	}
	for _, s := range Settings() {
		if !strings.Contains(b.String(), "`--"+s.Key+"`") {
			t.Errorf("%s missing from the doc", s.Key)
		}
	}
}

// TestExampleConfigLoads: the kopernik.yaml shipped in the repo loads and
// its values arrive.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Load("../kopernik.yaml", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LedgerCacheBytes != 64<<20 || cfg.SegmentBytes != 128<<20 || cfg.Addrs["kafka"] != "localhost:9092" ||
		kafkaConfig(cfg).DefaultPartitions != 1 || pulsarConfig(cfg).Keepalive != 30*time.Second {
		t.Fatalf("example values not applied: %+v", cfg)
	}
}

// TestPrecedence: for a top-level string, a size, a list, a bool and a
// protocol section's setting, each source beats the ones before it.
func TestPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "k.yaml")
	os.WriteFile(file, []byte(`
pulsar:
data-dir: /file
ledger-cache-bytes: 1MiB
superuser-roles: [a, b]
auto-topic-creation: false
kafka:
  idle-timeout: 1m
  node-id: 7
`), 0o644)
	type want struct {
		dataDir string
		cache   int64
		roles   []string
		auto    bool
		idle    time.Duration
		node    int32
	}
	get := func(c *Config) want {
		return want{c.DataDir, c.LedgerCacheBytes, c.SuperUserRoles, c.AutoTopicCreation, kafkaConfig(c).IdleTimeout, kafkaConfig(c).NodeID}
	}
	env := []string{"KOPERNIK_LEDGER_CACHE_BYTES=2MiB", "KOPERNIK_SUPERUSER_ROLES=c", "KOPERNIK_KAFKA_IDLE_TIMEOUT=2m", "KOPERNIK_DATA_DIR=/env"}
	flags := map[string]string{"data-dir": "/flag", "kafka-idle-timeout": "3m", "auto-topic-creation": "true"}
	for _, c := range []struct {
		name  string
		file  string
		env   []string
		flags map[string]string
		want  want
	}{
		{"defaults", "", nil, nil, want{"./data", 64 << 20, nil, true, 10 * time.Minute, 0}},
		{"file", file, nil, nil, want{"/file", 1 << 20, []string{"a", "b"}, false, time.Minute, 7}},
		{"env beats file", file, env, nil, want{"/env", 2 << 20, []string{"c"}, false, 2 * time.Minute, 7}},
		{"flags beat env", file, env, flags, want{"/flag", 2 << 20, []string{"c"}, true, 3 * time.Minute, 7}},
	} {
		cfg, err := Load(c.file, c.env, c.flags)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := get(cfg); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestErrorTexts: each problem names its source and value, in the user's
// terms, and unknown keys get the closest known one.
func TestErrorTexts(t *testing.T) {
	file := filepath.Join(t.TempDir(), "k.yaml")
	os.WriteFile(file, []byte(`fsync-interval: soon
ledger-cach-bytes: 1
max-message-bytes: 4GiB
segment-bytes: 12 parsecs
protocols: {kafka: yes}
kafka:
  advertized-addr: h:1
  default-partitions: 0
fsync: sometimes
`), 0o644)
	env := []string{"KOPERNIK_AUTH_ENABLED=maybe", "KOPERNIK_PULSAR_KEEPALIVE=1ms", "KOPERNIK_XYZZY=1"}
	_, err := Load(file, env, map[string]string{"http-addr": "nowhere"})
	if err == nil {
		t.Fatal("want an error")
	}
	got := err.Error()
	for _, want := range []string{
		file + `:1: fsync-interval: "soon" is not a duration (write e.g. 500ms, 30s, 4h, 1h30m)`,
		file + `:2: unknown setting "ledger-cach-bytes" (did you mean "ledger-cache-bytes"?)`,
		file + `:3: max-message-bytes: "4GiB" is out of range (-2147483648 to 2147483647)`,
		file + `:4: segment-bytes: "12 parsecs" is not a size (write bytes, or e.g. 64KiB, 128MiB, 1GiB, 500MB)`,
		file + `:5: protocols: want a single names value, not a mapping`,
		file + `:7: unknown setting "advertized-addr" in section kafka (did you mean "advertised-addr"?)`,
		file + `:8: kafka.default-partitions 0 must be >= 1`,
		file + `:9: fsync must be "always" or "interval", not "sometimes"`,
		`environment KOPERNIK_AUTH_ENABLED: auth-enabled: "maybe" is not a boolean (write true or false)`,
		`environment KOPERNIK_PULSAR_KEEPALIVE: pulsar.keepalive 1ms: want >= 100ms`,
		`environment KOPERNIK_XYZZY: unknown setting "xyzzy"; kopernik standalone -h lists every setting`,
		`flag --http-addr: http-addr: "nowhere" is not host:port`,
	} {
		if !strings.Contains(got, "\n  - "+want+"\n") && !strings.HasSuffix(got, "\n  - "+want) {
			t.Errorf("missing line %q in:\n%s", want, got)
		}
	}
	for _, goType := range []string{"int32", "int64", "time.Duration", "!!", "unmarshal", "[]string", "strconv"} {
		if strings.Contains(got, goType) {
			t.Errorf("error speaks Go (%s):\n%s", goType, got)
		}
	}
}

func TestSizesAndBools(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{{"1048576", 1 << 20}, {"64MiB", 64 << 20}, {"1GB", 1e9}, {"2 KiB", 2048}, {"-1", -1}, {"512B", 512}, {"1TiB", 1 << 40}} {
		cfg, err := Load("", nil, map[string]string{"retention-bytes": c.in})
		if err != nil || cfg.RetentionBytes != c.want {
			t.Errorf("retention-bytes %q: %v, %v", c.in, cfg, err)
		}
	}
	for _, bad := range []string{"1.5GiB", "MiB", "10PB", "9999999TiB"} {
		if _, err := Load("", nil, map[string]string{"retention-bytes": bad}); err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("retention-bytes %q: %v", bad, err)
		}
	}
	for in, want := range map[string]bool{"true": true, "yes": true, "off": false, "FALSE": false} {
		cfg, err := Load("", nil, map[string]string{"expose-topic-level-metrics": in})
		if err != nil || cfg.ExposeTopicLevelMetrics != want {
			t.Errorf("bool %q: %v %v", in, cfg, err)
		}
	}
}

// TestFlags: every setting is a typed flag; values are checked as they
// are parsed, a bool flag alone is true, and only given flags override.
func TestFlags(t *testing.T) {
	parse := func(args ...string) (map[string]string, error) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(new(bytes.Buffer))
		overrides := map[string]string{}
		RegisterFlags(fs, overrides)
		return overrides, fs.Parse(args)
	}
	o, err := parse("--ledger-cache-bytes", "1MiB", "--auth-enabled", "--kafka-advertised-addr=h:9", "--superuser-roles", "x,y")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ledger-cache-bytes": "1MiB", "auth-enabled": "true", "kafka-advertised-addr": "h:9", "superuser-roles": "x,y"}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("overrides %v, want %v", o, want)
	}
	cfg, err := Load("", nil, o)
	if err != nil || cfg.LedgerCacheBytes != 1<<20 || !cfg.AuthEnabled || kafkaConfig(cfg).AdvertisedAddr != "h:9" {
		t.Fatalf("%+v %v", cfg, err)
	}
	for _, bad := range [][]string{{"--fsync-interval", "soon"}, {"--auth-enabled=maybe"}, {"--kafka-node-id", "x"}, {"--segment-bytes", "lots"}} {
		if _, err := parse(bad...); err == nil || !strings.Contains(err.Error(), bad[0][2:strings.IndexAny(bad[0]+"=", "=")]) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	RegisterFlags(fs, map[string]string{})
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n != len(Settings()) {
		t.Fatalf("%d flags for %d settings", n, len(Settings()))
	}
	if SuggestFlag("ledger-cache") != "ledger-cache-bytes" || SuggestFlag("fsnyc") != "fsync" || SuggestFlag("zzzzzz") != "" {
		t.Fatal("SuggestFlag")
	}
}

// TestUsageGroupsBySection: -h lists every setting once, under its
// section, sections in table order, each with default and variable.
func TestUsageGroupsBySection(t *testing.T) {
	var b bytes.Buffer
	WriteUsage(&b)
	out := b.String()
	section := ""
	pos := 0
	for _, s := range Settings() {
		if s.Section != section {
			section = s.Section
			i := strings.Index(out, "\n"+section+":\n")
			if i < pos {
				t.Fatalf("section %q missing or out of order:\n%s", section, out)
			}
			pos = i
		}
		flagLine := "  --" + s.Key + " "
		if s.Kind == KindBool {
			flagLine = "  --" + s.Key + "[=bool]"
		}
		i := strings.Index(out, flagLine)
		if i < pos || strings.Count(out, "--"+s.Key+" ")+strings.Count(out, "--"+s.Key+"[") != 1 {
			t.Errorf("%s not once under %q", s.Key, section)
			continue
		}
		pos = i
		rest := out[i:]
		rest = rest[:strings.Index(rest[strings.Index(rest, "\n")+1:], "\n")+strings.Index(rest, "\n")+1]
		if !strings.Contains(rest, "env "+s.Env()) || !strings.Contains(rest, "default: ") || s.Mirrors != "" && !strings.Contains(rest, s.Mirrors) {
			t.Errorf("%s: notes incomplete: %q", s.Key, rest)
		}
	}
}
