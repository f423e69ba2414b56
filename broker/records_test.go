package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/metadata"
	"github.com/kopernik-io/kopernik/metadata/etcdtest"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Main(m)) }

// newEtcdBrokers starts n brokers whose metadata is one real etcd (under a
// prefix of their own test), each with its own client and in-memory ledgers:
// n brokers' worth of writers.
func newEtcdBrokers(t *testing.T, n int) []*Broker {
	t.Helper()
	srv, prefix := etcdtest.Shared(t)
	var out []*Broker
	for range n {
		store, err := metadata.OpenEtcd(srv.Endpoints(), metadata.WithEtcdPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		f, err := managedledger.NewFactory(managedledger.FactoryOptions{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(context.Background(), Options{Store: store, Ledgers: f})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close(); f.Close(); store.Close() })
		out = append(out, b)
	}
	return out
}

// TestConcurrentUpdatesLoseNothing: writers on two brokers sharing one etcd
// race random read-modify-writes on one namespace's policies (grants, as
// the admin API and Kafka ACLs make them; backlog quota) and one topic's
// (schemas, settings, partitions); each writer adds distinct items, and
// afterwards every item is there.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	ctx := context.Background()
	brokers := newEtcdBrokers(t, 2)
	const ns = "public/default"
	topic, _ := ParseTopicName("shared", "public", "default")
	if err := brokers[0].CreateTopic(ctx, topic, 1, Policies{}); err != nil {
		t.Fatal(err)
	}
	const writersPerBroker, updates = 3, 12
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	var wg sync.WaitGroup
	for bi, b := range brokers {
		for w := range writersPerBroker {
			id := fmt.Sprintf("b%dw%d", bi, w)
			rng := rand.New(rand.NewPCG(seed, uint64(bi*100+w)))
			wg.Go(func() {
				for u := range updates {
					item := fmt.Sprintf("%s-%d", id, u)
					var err error
					switch rng.IntN(4) {
					case 0: // a namespace grant (admin API permissions)
						err = b.UpdateNamespacePolicies(ctx, ns, func(p *Policies) error {
							if p.Permissions == nil {
								p.Permissions = map[string][]string{}
							}
							p.Permissions[item] = []string{"produce"}
							return nil
						})
					case 1: // a topic grant (Kafka ACL on a topic)
						err = b.UpdateNamespacePolicies(ctx, ns, func(p *Policies) error {
							if p.TopicPermissions == nil {
								p.TopicPermissions = map[string]map[string][]string{}
							}
							tp := p.TopicPermissions[topic.String()]
							if tp == nil {
								tp = map[string][]string{}
								p.TopicPermissions[topic.String()] = tp
							}
							tp[item] = []string{"consume"}
							return nil
						})
					case 2: // a schema version
						err = b.UpdateTopicPolicies(ctx, topic, func(p *Policies) error {
							p.Schemas = append(p.Schemas, Schema{Name: item})
							return nil
						})
					case 3: // a protocol setting on the topic
						err = b.UpdateTopicPolicies(ctx, topic, func(p *Policies) error {
							if p.Extra == nil {
								p.Extra = map[string]string{}
							}
							p.Extra[item] = "x"
							return nil
						})
					}
					if err != nil {
						t.Errorf("%s: %v", item, err)
						return
					}
					record(item)
				}
			})
		}
	}
	wg.Wait()
	// Partitions grow by CAS as well: both brokers asking for more at
	// once end with the larger count.
	var pg sync.WaitGroup
	for i, b := range brokers {
		pg.Go(func() {
			if err := b.SetPartitions(ctx, topic, 3+i); err != nil {
				t.Errorf("set partitions: %v", err)
			}
		})
	}
	pg.Wait()

	nsp, err := brokers[1].NamespacePolicies(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	md, err := brokers[0].GetTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if md.Partitions != 3 && md.Partitions != 4 {
		t.Errorf("partitions %d", md.Partitions)
	}
	schemas := map[string]bool{}
	for _, s := range md.Policies.Schemas {
		if schemas[s.Name] {
			t.Errorf("schema %s twice", s.Name)
		}
		schemas[s.Name] = true
	}
	missing := 0
	for _, item := range recorded() {
		_, grant := nsp.Permissions[item]
		_, topicGrant := nsp.TopicPermissions[topic.String()][item]
		_, extra := md.Policies.Extra[item]
		if !grant && !topicGrant && !extra && !schemas[item] {
			t.Errorf("update %s lost", item)
			missing++
		}
	}
	if n := len(recorded()); n != 2*writersPerBroker*updates {
		t.Fatalf("%d updates acknowledged, want %d", n, 2*writersPerBroker*updates)
	}
	t.Logf("%d updates, %d lost", len(recorded()), missing)
}

var (
	recordedMu    sync.Mutex
	recordedItems []string
)

func record(item string) {
	recordedMu.Lock()
	recordedItems = append(recordedItems, item)
	recordedMu.Unlock()
}

func recorded() []string {
	recordedMu.Lock()
	defer recordedMu.Unlock()
	return append([]string(nil), recordedItems...)
}

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

// A policy change made through one broker reaches the partitions another
// broker has loaded (their effective policies), through its store watch.
func TestPolicyChangeReachesOtherBroker(t *testing.T) {
	ctx := context.Background()
	brokers := newEtcdBrokers(t, 2)
	topic, _ := ParseTopicName("watched", "public", "default")
	p, err := brokers[1].OpenPartition(ctx, topic, true)
	if err != nil {
		t.Fatal(err)
	}
	waitPolicy := func(what string, ok func(EffectivePolicies) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(p.Policies()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not seen by the other broker: %+v", what, p.Policies())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := brokers[0].UpdateTopicPolicies(ctx, topic, func(p *Policies) error {
		p.MaxMessageBytes = ptr(int32(4096))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitPolicy("topic max message size", func(e EffectivePolicies) bool { return e.MaxMessageBytes == 4096 })
	if err := brokers[0].UpdateNamespacePolicies(ctx, "public/default", func(p *Policies) error {
		p.BacklogQuota = &BacklogQuota{LimitBytes: 1 << 20, Policy: "producer_request_hold"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitPolicy("namespace backlog quota", func(e EffectivePolicies) bool { return e.BacklogQuota != nil && e.BacklogQuota.LimitBytes == 1<<20 })
}
