package broker

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/metadata/etcdtest"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Main(m)) }

// Data dirs written before the typed fields kept them as strings in
// Policies.Extra; they still load, and the next update stores the typed
// form only.
func TestLegacyExtraRecordsLoad(t *testing.T) {
	ctx := context.Background()
	b := newTestBroker(t)
	store := b.store
	legacyNS := `{"extra":{"pulsar.backlogQuota.limitSize":"4096","pulsar.backlogQuota.policy":"producer_exception","other":"kept"}}`
	if _, err := store.Put(ctx, namespacePath("public", "default"), []byte(legacyNS), metadata.AnyVersion); err != nil {
		t.Fatal(err)
	}
	legacyTopic := `{"partitions":0,"created":"2026-01-01T00:00:00Z","policies":{"extra":{` +
		`"kafka.topic.id":"00112233445566778899aabbccddeeff","pulsar.terminated":"true",` +
		`"pulsar.schema.0":"{\"name\":\"s0\",\"type\":2,\"data\":\"e30=\"}","pulsar.schema.1":"{\"name\":\"s1\",\"type\":4,\"data\":\"e30=\",\"properties\":{\"k\":\"v\"}}"}}}`
	topic, _ := ParseTopicName("old", "public", "default")
	if _, err := store.Put(ctx, topicPath(topic), []byte(legacyTopic), metadata.NotExists); err != nil {
		t.Fatal(err)
	}
	md, err := b.GetTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	p := md.Policies
	if p.TopicID != "00112233445566778899aabbccddeeff" || !p.Terminated || len(p.Schemas) != 2 ||
		p.Schemas[0].Name != "s0" || p.Schemas[1].Type != 4 || p.Schemas[1].Properties["k"] != "v" || string(p.Schemas[0].Data) != "{}" {
		t.Fatalf("topic policies from legacy record: %+v", p)
	}
	if len(p.Extra) != 0 {
		t.Fatalf("legacy keys left in Extra: %v", p.Extra)
	}
	if q := md.Effective.BacklogQuota; q == nil || q.LimitBytes != 4096 || q.Policy != "producer_exception" || !md.Effective.Terminated {
		t.Fatalf("effective policies: %+v", md.Effective)
	}
	if md.Effective.Extra["other"] != "kept" {
		t.Fatalf("other Extra keys: %v", md.Effective.Extra)
	}
	// An update rewrites the record in the typed form.
	if err := b.UpdateTopicPolicies(ctx, topic, func(p *Policies) error { p.Schemas = p.Schemas[:1]; return nil }); err != nil {
		t.Fatal(err)
	}
	r, err := store.Get(ctx, topicPath(topic))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(r.Value), "pulsar.") || strings.Contains(string(r.Value), "kafka.") {
		t.Fatalf("legacy keys written back: %s", r.Value)
	}
	var rec topicRecord
	if err := json.Unmarshal(r.Value, &rec); err != nil || len(rec.Policies.Schemas) != 1 || !rec.Policies.Terminated {
		t.Fatalf("rewritten record %s: %v", r.Value, err)
	}
	// A corrupt legacy value is an error, not a crash.
	bad := `{"partitions":0,"policies":{"extra":{"pulsar.schema.0":"not json"}}}`
	badTopic, _ := ParseTopicName("bad", "public", "default")
	if _, err := store.Put(ctx, topicPath(badTopic), []byte(bad), metadata.NotExists); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetTopic(ctx, badTopic); err == nil || !strings.Contains(err.Error(), "legacy schema") {
		t.Fatalf("corrupt legacy schema: %v", err)
	}
}
