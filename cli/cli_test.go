package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kopernik-io/kopernik/server"
)

// testBroker is one in-process kopernik with every listener on 127.0.0.1:0.
type testBroker struct {
	admin, kafka, pulsar string
}

func startBroker(t *testing.T) *testBroker {
	t.Helper()
	s := startServer(t, nil)
	return &testBroker{admin: "http://" + s.Addr("http").String(), kafka: s.Addr("kafka").String(),
		pulsar: "pulsar://" + s.Addr("pulsar").String()}
}

// startServer starts a broker on 127.0.0.1:0 listeners with extra
// settings; the test's cleanup stops it.
func startServer(t *testing.T, extra map[string]string) *server.Server {
	t.Helper()
	settings := map[string]string{"data-dir": t.TempDir(), "http-addr": "127.0.0.1:0",
		"kafka-addr": "127.0.0.1:0", "pulsar-addr": "127.0.0.1:0", "fsync": "interval"}
	for k, v := range extra {
		settings[k] = v
	}
	cfg, err := server.Load("", nil, settings)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs one command line through the entry point, against b when not
// nil (global flags first, as a user may give them).
func run(t *testing.T, b *testBroker, stdin string, args ...string) result {
	t.Helper()
	if b != nil {
		args = append([]string{"--url", b.admin, "--kafka", b.kafka, "--pulsar", b.pulsar, "--timeout", "20s"}, args...)
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := Run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return result{out.String(), errb.String(), code}
}

// ok runs a command that must succeed and returns its stdout.
func ok(t *testing.T, b *testBroker, stdin string, args ...string) string {
	t.Helper()
	r := run(t, b, stdin, args...)
	if r.code != 0 {
		t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs a command that must exit with code and mention want on stderr.
func fails(t *testing.T, b *testBroker, code int, want string, args ...string) {
	t.Helper()
	r := run(t, b, "", args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		t.Fatalf("%v: want exit %d mentioning %q, got %d\nstdout: %s\nstderr: %s", args, code, want, r.code, r.stdout, r.stderr)
	}
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
	return v
}

func TestHelpUsageAndExitCodes(t *testing.T) {
	out := ok(t, nil, "", "help")
	for _, cmd := range []string{"topics", "groups", "subscriptions", "tenants", "namespaces", "produce", "consume", "peek", "perf", "--url", "--token", "--tls-ca", "Exit status"} {
		if !strings.Contains(out, cmd) {
			t.Errorf("help lacks %q:\n%s", cmd, out)
		}
	}
	// -h on every command prints its usage to stdout and exits 0.
	var walk func(path []string, c *command)
	walk = func(path []string, c *command) {
		for _, s := range c.subs {
			p := append(append([]string{}, path...), s.name)
			r := run(t, nil, "", append(p, "-h")...)
			if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, s.summary) {
				t.Errorf("%v -h: exit %d\n%s%s", p, r.code, r.stdout, r.stderr)
			}
			walk(p, s)
		}
	}
	walk(nil, commands())
	if out := ok(t, nil, "", "help", "topics", "create"); !strings.Contains(out, "-p int") || !strings.Contains(out, "Example:") {
		t.Errorf("help topics create:\n%s", out)
	}

	fails(t, nil, 2, `unknown command "topcis" (did you mean "topics"?)`, "topcis")
	fails(t, nil, 2, `unknown command "lst" (did you mean "list"?)`, "topics", "lst")
	fails(t, nil, 2, "Commands:", "topics")
	fails(t, nil, 2, "flag provided but not defined: -bogus", "topics", "list", "--bogus")
	fails(t, nil, 2, "missing TOPIC", "topics", "create")
	fails(t, nil, 2, "unexpected arguments [b]", "topics", "describe", "a", "b")
	fails(t, nil, 2, `-o "yaml": want one of table, json`, "-o", "yaml", "topics", "list")
	fails(t, nil, 2, "want http://host:port", "--url", "localhost:8080", "topics", "list")
	fails(t, nil, 2, "invalid value", "topics", "create", "t", "-p", "many")
	fails(t, nil, 2, "--protocol \"amqp\"", "produce", "t", "--protocol", "amqp")
	fails(t, nil, 2, "give --topic and exactly one of", "groups", "reset-offsets", "g", "--topic", "t")
	fails(t, nil, 2, "give --duration or -n", "perf", "produce", "--duration", "0")
	// No broker there: the command ran and failed.
	fails(t, nil, 1, "admin API at http://127.0.0.1:1", "--url", "http://127.0.0.1:1", "tenants", "list")

	if out := ok(t, nil, "", "version"); !strings.HasPrefix(out, "kopernik ") {
		t.Errorf("version: %q", out)
	}
	if out := ok(t, nil, "", "--version"); !strings.HasPrefix(out, "kopernik ") {
		t.Errorf("--version: %q", out)
	}
}

func TestVersionNamesTheCommit(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "6d23c7f0123"}, {Key: "vcs.time", Value: "2026-12-02T03:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := versionOf(bi), "kopernik (devel) commit 6d23c7f0123 (modified) 2026-12-02T03:00:00Z go1.26.8"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	bi.Settings = nil
	if got, want := versionOf(bi), "kopernik (devel) go1.26.8"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestTopics(t *testing.T) {
	b := startBroker(t)
	if out := ok(t, b, "", "topics", "create", "orders", "-p", "3", "-c", "retention.ms=86400000"); !strings.Contains(out, "created persistent://public/default/orders with 3 partitions") {
		t.Fatalf("create: %q", out)
	}
	fails(t, b, 1, "TOPIC_ALREADY_EXISTS", "topics", "create", "orders")
	fails(t, b, 1, "INVALID_CONFIG", "topics", "create", "bad", "-c", "no.such.config=1")
	ok(t, b, "", "topics", "create", "plain", "-p", "0")

	out := ok(t, b, "", "topics", "list")
	if !strings.Contains(out, "TOPIC") || !strings.Contains(out, "persistent://public/default/orders  3") || !strings.Contains(out, "persistent://public/default/plain   0") {
		t.Fatalf("list table:\n%s", out)
	}
	list := decode[[]topicListEntry](t, ok(t, b, "", "topics", "list", "-o", "json"))
	if len(list) != 2 || list[0] != (topicListEntry{"persistent://public/default/orders", 3}) || list[1] != (topicListEntry{"persistent://public/default/plain", 0}) {
		t.Fatalf("list json: %+v", list)
	}

	ok(t, b, "a\nb\nc\n", "produce", "orders", "--partition", "1")
	d := decode[topicDescription](t, ok(t, b, "", "topics", "describe", "orders", "-o", "json"))
	if d.Partitions != 3 || len(d.PartitionList) != 3 || d.PartitionList[1].EndOffset != 3 || d.PartitionList[0].EndOffset != 0 || d.PartitionList[1].StorageBytes == 0 {
		t.Fatalf("describe: %+v", d)
	}
	if c := configOf(d, "retention.ms"); c.Value != "86400000" || c.Source == "default" {
		t.Fatalf("retention.ms: %+v", c)
	}
	out = ok(t, b, "", "topics", "describe", "orders")
	for _, want := range []string{"KAFKA NAME     orders", "PARTITION  START-OFFSET  END-OFFSET", "1          0             3", "retention.ms"} {
		if !strings.Contains(out, want) {
			t.Fatalf("describe table lacks %q:\n%s", want, out)
		}
	}

	ok(t, b, "", "topics", "alter-config", "orders", "--set", "retention.bytes=1048576", "--delete", "retention.ms")
	d = decode[topicDescription](t, ok(t, b, "", "topics", "describe", "orders", "-o", "json"))
	if c := configOf(d, "retention.bytes"); c.Value != "1048576" {
		t.Fatalf("retention.bytes after alter: %+v", c)
	}
	if c := configOf(d, "retention.ms"); c.Source != "default" {
		t.Fatalf("retention.ms after delete: %+v", c)
	}
	fails(t, b, 1, "INVALID_CONFIG", "topics", "alter-config", "orders", "--set", "cleanup.policy=shred")
	fails(t, b, 2, "nothing to alter", "topics", "alter-config", "orders")

	if out := ok(t, b, "", "topics", "set-partitions", "orders", "-p", "4"); !strings.Contains(out, "now has 4 partitions (had 3)") {
		t.Fatalf("set-partitions: %q", out)
	}
	if d := decode[topicDescription](t, ok(t, b, "", "topics", "describe", "orders", "-o", "json")); d.Partitions != 4 || len(d.PartitionList) != 4 {
		t.Fatalf("after set-partitions: %+v", d)
	}
	fails(t, b, 1, "HTTP", "topics", "set-partitions", "orders", "-p", "2")
	fails(t, b, 1, "is not partitioned", "topics", "set-partitions", "plain", "-p", "2")
	fails(t, b, 2, "-p N", "topics", "set-partitions", "orders")
	fails(t, b, 1, "topic persistent://public/default/nope not found", "topics", "describe", "nope")
	fails(t, b, 1, "topic persistent://public/default/nope not found", "topics", "delete", "nope")
	fails(t, b, 2, "want NAME, TENANT/NAMESPACE/NAME", "topics", "describe", "a/b")
	if out := ok(t, b, "", "topics", "delete", "orders", "-o", "json"); decode[map[string]any](t, out)["ok"] != true {
		t.Fatalf("delete json: %s", out)
	}
	ok(t, b, "", "topics", "delete", "persistent://public/default/plain")
	if list := decode[[]topicListEntry](t, ok(t, b, "", "topics", "list", "-o", "json")); len(list) != 0 {
		t.Fatalf("after delete: %+v", list)
	}
}

func configOf(d topicDescription, name string) configEntry {
	for _, c := range d.Configs {
		if c.Name == name {
			return c
		}
	}
	return configEntry{}
}

func TestProduceConsumePeekGroups(t *testing.T) {
	b := startBroker(t)
	ok(t, b, "", "topics", "create", "events", "-p", "2")
	out := ok(t, b, "one\ntwo\n", "produce", "events", "-k", "k1", "-H", "src=cli", "-H", "bin=x")
	if strings.Count(out, "produced to events partition") != 2 {
		t.Fatalf("kafka produce: %q", out)
	}
	acks := strings.Split(strings.TrimSpace(ok(t, b, "", "produce", "events", "--protocol", "pulsar", "-k", "k2", "-H", "p=1", "--value", "three", "-o", "json")), "\n")
	if a := decode[ack](t, acks[0]); len(acks) != 1 || a.MessageID == "" {
		t.Fatalf("pulsar produce: %v", acks)
	}
	ok(t, b, `{"key":"k3","value":{"n":4},"headers":{"h":"v"}}`+"\n"+`{"key":"k3","value":null}`+"\n", "produce", "events", "--format", "json")
	fails(t, b, 1, "input line", "produce", "events", "--format", "json", "--value", "{not json")
	fails(t, b, 1, "topic nope not found", "produce", "nope", "--value", "x")
	ok(t, b, "", "produce", "events", "--partition", "0", "--value", "") // an empty value, not stdin

	// Kafka view of all five, no group.
	lines := strings.Split(strings.TrimSpace(ok(t, b, "", "consume", "events", "--from", "earliest", "-n", "6", "--format", "json")), "\n")
	if len(lines) != 6 {
		t.Fatalf("consume: %v", lines)
	}
	byValue := map[string]message{}
	for _, l := range lines {
		m := decode[message](t, l)
		if m.Offset == nil || m.Timestamp == nil {
			t.Fatalf("kafka view lacks offset or timestamp: %s", l)
		}
		if m.Null {
			byValue["<null>"] = m
		} else {
			byValue[m.Value] = m
		}
	}
	if m := byValue["one"]; m.Key != "k1" || m.Headers["src"] != "cli" || m.Headers["bin"] != "x" {
		t.Fatalf("one: %+v", m)
	}
	if m := byValue["three"]; m.Key != "k2" || m.Headers["p"] != "1" {
		t.Fatalf("three (produced over Pulsar): %+v", m)
	}
	if m := byValue[`{"n":4}`]; m.Key != "k3" || m.Headers["h"] != "v" {
		t.Fatalf("json value: %+v", m)
	}
	if _, found := byValue["<null>"]; !found {
		t.Fatalf("no tombstone: %v", lines)
	}

	// Pulsar view through a template.
	out = ok(t, b, "", "consume", "events", "--protocol", "pulsar", "--from", "earliest", "-n", "6", "--format", "template",
		"--template", "{{.Key}}={{.Value}} id={{.MessageID}} off={{with .Offset}}{{.}}{{end}}")
	for _, want := range []string{"k1=one id=", "k1=two id=", "k2=three id=", `k3={"n":4} id=`} {
		if !strings.Contains(out, want) {
			t.Fatalf("pulsar consume lacks %q:\n%s", want, out)
		}
	}
	fails(t, b, 2, "--template", "consume", "events", "--format", "template", "--template", "{{.Nope")

	// One key, both protocols: one partition (Kafka's placement).
	ok(t, b, "", "topics", "create", "keyed", "-p", "4")
	for i := range 4 {
		proto := []string{"kafka", "pulsar"}[i%2]
		ok(t, b, "", "produce", "keyed", "--protocol", proto, "-k", fmt.Sprintf("key-%d", i/2), "--value", proto)
	}
	placed := map[string]int32{}
	for _, l := range strings.Split(strings.TrimSpace(ok(t, b, "", "consume", "keyed", "--from", "earliest", "-n", "4", "--format", "json")), "\n") {
		m := decode[message](t, l)
		if p, seen := placed[m.Key]; seen && p != m.Partition {
			t.Fatalf("key %s on partitions %d and %d", m.Key, p, m.Partition)
		}
		placed[m.Key] = m.Partition
	}

	// peek: both views of every message, paired by offset; nothing consumed.
	peekedList := decode[[]peeked](t, ok(t, b, "", "peek", "events", "-o", "json"))
	if len(peekedList) != 6 {
		t.Fatalf("peek: %+v", peekedList)
	}
	for _, p := range peekedList {
		if p.Kafka == nil || p.Pulsar == nil || p.Pulsar.MessageID == "" || p.Kafka.Key != p.Pulsar.Key {
			t.Fatalf("peek entry lacks a view or views disagree: %+v kafka %+v pulsar %+v", p, p.Kafka, p.Pulsar)
		}
		for k, v := range p.Kafka.Headers {
			if p.Pulsar.Properties[k] != v {
				t.Fatalf("header %s: kafka %q pulsar %q", k, v, p.Pulsar.Properties[k])
			}
		}
	}
	if out := ok(t, b, "", "peek", "events", "-n", "1"); !strings.Contains(out, "MESSAGE-ID") || strings.Count(out, "\n") != 3 {
		t.Fatalf("peek table, one per partition:\n%s", out)
	}
	if subs := decode[[]subscriptionSummary](t, ok(t, b, "", "subscriptions", "list", "events", "-o", "json")); len(subs) != 0 {
		t.Fatalf("peek or a groupless consume left subscriptions: %+v", subs)
	}

	// A group consumes three and commits them; describe shows the lag.
	if out := ok(t, b, "", "consume", "events", "--group", "billing", "--from", "earliest", "-n", "3"); strings.Count(out, "\n") != 3 {
		t.Fatalf("group consume: %q", out)
	}
	if out := ok(t, b, "", "groups", "list"); !strings.Contains(out, "billing") || !strings.Contains(out, "GROUP") {
		t.Fatalf("groups list:\n%s", out)
	}
	gd := decode[groupDescription](t, ok(t, b, "", "groups", "describe", "billing", "-o", "json"))
	if gd.TotalLag != 3 || len(gd.Partitions) != 2 {
		t.Fatalf("describe after 3 of 6: %+v", gd)
	}
	if out := ok(t, b, "", "groups", "describe", "billing"); !strings.Contains(out, "TOTAL-LAG 3") || !strings.Contains(out, "LOG-END-OFFSET") {
		t.Fatalf("describe table:\n%s", out)
	}
	ok(t, b, "", "groups", "reset-offsets", "billing", "--topic", "events", "--to-earliest")
	if gd := decode[groupDescription](t, ok(t, b, "", "groups", "describe", "billing", "-o", "json")); gd.TotalLag != 6 {
		t.Fatalf("after reset to earliest: %+v", gd)
	}
	// The group is the subscription of the same name: its backlog is the
	// lag (now that both partitions have a commit; a partition without
	// one has no cursor yet, where Kafka counts its whole log as lag).
	subs := decode[[]subscriptionSummary](t, ok(t, b, "", "subscriptions", "list", "events", "-o", "json"))
	if len(subs) != 1 || subs[0].Name != "billing" || subs[0].Backlog != 6 {
		t.Fatalf("subscriptions of the group: %+v", subs)
	}
	dry := ok(t, b, "", "groups", "reset-offsets", "billing", "--topic", "events", "--to-latest", "--dry-run", "-o", "json")
	if !strings.Contains(dry, `"dryRun": true`) {
		t.Fatalf("dry run: %s", dry)
	}
	if gd := decode[groupDescription](t, ok(t, b, "", "groups", "describe", "billing", "-o", "json")); gd.TotalLag != 6 {
		t.Fatalf("a dry run moved offsets: %+v", gd)
	}
	ok(t, b, "", "groups", "reset-offsets", "billing", "--topic", "events", "--shift-by", "1")
	if gd := decode[groupDescription](t, ok(t, b, "", "groups", "describe", "billing", "-o", "json")); gd.TotalLag != 4 {
		t.Fatalf("after shift by 1 on 2 partitions: %+v", gd)
	}
	fails(t, b, 1, "topic nope not found", "groups", "reset-offsets", "billing", "--topic", "nope", "--to-earliest")
	fails(t, b, 1, "group nosuch not found", "groups", "describe", "nosuch")
	ok(t, b, "", "groups", "delete", "billing")
	fails(t, b, 1, "group billing not found", "groups", "delete", "billing")
	fails(t, b, 1, "not found", "consume", "nope", "--from", "earliest", "-n", "1")
}

func TestSubscriptionsTenantsNamespaces(t *testing.T) {
	b := startBroker(t)
	ok(t, b, "", "tenants", "create", "acme", "--admin-roles", "alice,bob")
	if out := ok(t, b, "", "tenants", "list"); !strings.Contains(out, "acme") || !strings.Contains(out, "public") {
		t.Fatalf("tenants list:\n%s", out)
	}
	if ti := decode[tenantInfo](t, ok(t, b, "", "tenants", "describe", "acme", "-o", "json")); strings.Join(ti.AdminRoles, ",") != "alice,bob" {
		t.Fatalf("tenant: %+v", ti)
	}
	ok(t, b, "", "tenants", "update", "acme", "--admin-roles", "carol")
	if out := ok(t, b, "", "tenants", "describe", "acme"); !strings.Contains(out, "carol") {
		t.Fatalf("tenant after update:\n%s", out)
	}
	fails(t, b, 1, "acme", "tenants", "create", "acme")

	ok(t, b, "", "namespaces", "create", "acme/prod")
	if nss := decode[[]string](t, ok(t, b, "", "namespaces", "list", "acme", "-o", "json")); len(nss) != 1 || nss[0] != "acme/prod" {
		t.Fatalf("namespaces: %v", nss)
	}
	ok(t, b, "", "namespaces", "set-retention", "acme/prod", "--time", "7d", "--size", "10G")
	if r := decode[retention](t, ok(t, b, "", "namespaces", "get-retention", "acme/prod", "-o", "json")); r != (retention{7 * 24 * 60, 10 << 10}) {
		t.Fatalf("retention: %+v", r)
	}
	if out := ok(t, b, "", "namespaces", "get-retention", "acme/prod"); !strings.Contains(out, "10080m") {
		t.Fatalf("retention table:\n%s", out)
	}
	fails(t, b, 2, "--time \"soon\"", "namespaces", "set-retention", "acme/prod", "--time", "soon", "--size", "1G")
	ok(t, b, "", "namespaces", "remove-retention", "acme/prod")
	ok(t, b, "", "namespaces", "grant-permission", "acme/prod", "--role", "dave", "--actions", "produce")
	if perms := decode[map[string][]string](t, ok(t, b, "", "namespaces", "permissions", "acme/prod", "-o", "json")); strings.Join(perms["dave"], ",") != "produce" {
		t.Fatalf("permissions: %v", perms)
	}
	fails(t, b, 1, "HTTP 400", "namespaces", "grant-permission", "acme/prod", "--role", "dave", "--actions", "fly")
	fails(t, b, 2, "--role is required", "namespaces", "revoke-permission", "acme/prod")
	ok(t, b, "", "namespaces", "revoke-permission", "acme/prod", "--role", "dave")
	if out := ok(t, b, "", "namespaces", "describe", "acme/prod"); !strings.Contains(out, "replication_clusters") {
		t.Fatalf("describe:\n%s", out)
	}
	fails(t, b, 2, "want TENANT/NAMESPACE", "namespaces", "describe", "acme")

	ok(t, b, "", "topics", "create", "acme/prod/jobs", "-p", "2")
	if out := ok(t, b, "", "topics", "list", "--all"); !strings.Contains(out, "persistent://acme/prod/jobs") {
		t.Fatalf("list --all:\n%s", out)
	}
	ok(t, b, "a\nb\nc\nd\n", "produce", "acme/prod/jobs")
	ok(t, b, "", "subscriptions", "create", "acme/prod/jobs", "workers", "--position", "earliest")
	ok(t, b, "", "subscriptions", "create", "acme/prod/jobs", "late")
	subs := decode[[]subscriptionSummary](t, ok(t, b, "", "subscriptions", "list", "acme/prod/jobs", "-o", "json"))
	if len(subs) != 2 || subs[0].Name != "late" || subs[0].Backlog != 0 || subs[1].Name != "workers" || subs[1].Backlog != 4 {
		t.Fatalf("subscriptions: %+v", subs)
	}
	fails(t, b, 1, "HTTP 409", "subscriptions", "create", "acme/prod/jobs", "workers")
	ok(t, b, "", "subscriptions", "reset", "acme/prod/jobs", "late", "--to-earliest")
	ok(t, b, "", "subscriptions", "skip", "acme/prod/jobs", "workers", "-n", "1")
	subs = decode[[]subscriptionSummary](t, ok(t, b, "", "subscriptions", "list", "acme/prod/jobs", "-o", "json"))
	if subs[0].Backlog != 4 || subs[1].Backlog >= 4 {
		t.Fatalf("after reset and skip: %+v", subs)
	}
	ok(t, b, "", "subscriptions", "reset", "acme/prod/jobs", "workers", "--to-time", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if out := ok(t, b, "", "subscriptions", "list", "acme/prod/jobs"); !strings.Contains(out, "workers       Exclusive  0") {
		t.Fatalf("after reset to the future:\n%s", out)
	}
	fails(t, b, 2, "exactly one of", "subscriptions", "reset", "acme/prod/jobs", "workers")
	ok(t, b, "", "subscriptions", "delete", "acme/prod/jobs", "workers")
	fails(t, b, 1, "not found", "subscriptions", "delete", "acme/prod/jobs", "workers")

	fails(t, b, 1, "HTTP 409", "namespaces", "delete", "acme/prod")
	ok(t, b, "", "namespaces", "delete", "acme/prod", "--force")
	ok(t, b, "", "tenants", "delete", "acme")
	fails(t, b, 1, "HTTP 404", "tenants", "describe", "acme")
}

// endOffsets sums a topic's end offsets: what the broker holds.
func endOffsets(t *testing.T, b *testBroker, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	return sum
}

func TestPerf(t *testing.T) {
	b := startBroker(t)
	r := run(t, b, "", "perf", "produce", "--topic", "load", "--partitions", "3", "--producers", "2", "-n", "600",
		"--duration", "60s", "--size", "512", "--compression", "lz4", "-o", "json")
	if r.code != 0 {
		t.Fatalf("perf produce: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	s := decode[perfSummary](t, r.stdout)
	if s.Produced == nil || s.Produced.Messages != 600 || s.Produced.Bytes != 600*512 || s.Produced.Errors != 0 ||
		s.Produced.LatencyMs.Count != 600 || s.Partitions != 3 || s.Produced.LatencyMs.P50 <= 0 {
		t.Fatalf("summary: %+v %+v", s, s.Produced)
	}
	var inHistogram int64
	for _, bk := range s.Produced.LatencyMs.Histogram {
		inHistogram += bk.Count
	}
	if inHistogram != 600 {
		t.Fatalf("histogram holds %d of 600: %+v", inHistogram, s.Produced.LatencyMs.Histogram)
	}
	if got := endOffsets(t, b, "load"); got != 600 {
		t.Fatalf("broker holds %d records, perf reported 600", got)
	}

	// Pulsar producers, table output with a progress line and a histogram.
	r = run(t, b, "", "perf", "produce", "--protocol", "pulsar", "--topic", "load", "--rate", "400", "--duration", "1500ms")
	if r.code != 0 {
		t.Fatalf("perf produce pulsar: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"perf produce: pulsar", "produced: ", "acknowledgement latency (ms): min", "latency (ms)        count   share"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("summary lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "produced ") || !strings.Contains(r.stderr, "msg/s") || !strings.Contains(r.stderr, "p999") {
		t.Fatalf("no progress line:\n%s", r.stderr)
	}
	var pulsarN int64
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "produced: ") {
			pulsarN = decodeCount(t, l)
		}
	}
	total := endOffsets(t, b, "load")
	if total != 600+pulsarN || pulsarN == 0 {
		t.Fatalf("broker holds %d records, perf reported 600 + %d", total, pulsarN)
	}

	// perf consume reads them all back, Kafka then Pulsar.
	for _, proto := range []string{"kafka", "pulsar"} {
		r = run(t, b, "", "perf", "consume", "--protocol", proto, "--topic", "load", "-n", "10000", "--idle", "3s", "--duration", "60s", "-o", "json")
		if r.code != 0 {
			t.Fatalf("perf consume %s: %d\n%s\n%s", proto, r.code, r.stdout, r.stderr)
		}
		if s := decode[perfSummary](t, r.stdout); s.Consumed == nil || s.Consumed.Messages != total {
			t.Fatalf("perf consume %s read %+v of %d", proto, s.Consumed, total)
		}
	}

	// e2e: every acknowledged message of the run is consumed.
	for _, proto := range []string{"kafka", "pulsar"} {
		r = run(t, b, "", "perf", "e2e", "--protocol", proto, "--topic", "e2e", "--rate", "300", "--duration", "1s", "-o", "json")
		if r.code != 0 {
			t.Fatalf("perf e2e %s: %d\n%s\n%s", proto, r.code, r.stdout, r.stderr)
		}
		s := decode[perfSummary](t, r.stdout)
		if s.Produced.Messages == 0 || s.Consumed.Messages != s.Produced.Messages || s.Consumed.LatencyMs.Count != s.Consumed.Messages {
			t.Fatalf("perf e2e %s: produced %+v consumed %+v", proto, s.Produced, s.Consumed)
		}
	}
}

// decodeCount reads N from "produced: N messages, ...".
func decodeCount(t *testing.T, line string) int64 {
	t.Helper()
	var n int64
	f := strings.Fields(strings.TrimPrefix(line, "produced: "))
	if len(f) == 0 {
		t.Fatalf("line %q", line)
	}
	if err := json.Unmarshal([]byte(f[0]), &n); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return n
}
