package broker_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/broker"
	"github.com/kopernik-io/kopernik/broker/brokertest"
)

// TestConcurrentUpdatesLoseNothing: writers on two brokers sharing one etcd
// race random read-modify-writes on one namespace's policies (grants, as
// the admin API and Kafka ACLs make them; backlog quota) and one topic's
// (schemas, settings, partitions); each writer adds distinct items, and
// afterwards every item is there.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	ctx := context.Background()
	brokers := brokertest.OnEtcd(t, 2)
	const ns = "public/default"
	topic, _ := broker.ParseTopicName("shared", "public", "default")
	if err := brokers[0].CreateTopic(ctx, topic, 1, broker.Policies{}); err != nil {
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
						err = b.UpdateNamespacePolicies(ctx, ns, func(p *broker.Policies) error {
							if p.Permissions == nil {
								p.Permissions = map[string][]string{}
							}
							p.Permissions[item] = []string{"produce"}
							return nil
						})
					case 1: // a topic grant (Kafka ACL on a topic)
						err = b.UpdateNamespacePolicies(ctx, ns, func(p *broker.Policies) error {
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
						err = b.UpdateTopicPolicies(ctx, topic, func(p *broker.Policies) error {
							p.Schemas = append(p.Schemas, broker.Schema{Name: item})
							return nil
						})
					case 3: // a protocol setting on the topic
						err = b.UpdateTopicPolicies(ctx, topic, func(p *broker.Policies) error {
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
	// Partitions grow by CAS as well: two brokers asking for 3 and 4 at
	// once end with 4 (asking for 3 after 4 is refused: never shrink).
	var pg sync.WaitGroup
	for i, b := range brokers {
		pg.Go(func() {
			err := b.SetPartitions(ctx, topic, 3+i)
			if err != nil && (i == 1 || !errors.Is(err, broker.ErrInvalidConfig)) {
				t.Errorf("set partitions %d: %v", 3+i, err)
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
	if md.Partitions != 4 {
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

// A policy change made through one broker reaches the partitions another
// broker has loaded (their effective policies), through its store watch.
func TestPolicyChangeReachesOtherBroker(t *testing.T) {
	ctx := context.Background()
	brokers := brokertest.OnEtcd(t, 2)
	topic, _ := broker.ParseTopicName("watched", "public", "default")
	p, err := brokers[1].OpenPartition(ctx, topic, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := brokers[1].GetTopic(ctx, topic); err != nil { // cached now
		t.Fatal(err)
	}
	waitPolicy := func(what string, ok func(broker.EffectivePolicies) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(p.Policies()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not seen by the other broker: %+v", what, p.Policies())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := brokers[0].UpdateTopicPolicies(ctx, topic, func(p *broker.Policies) error {
		p.MaxMessageBytes = ptrTo(int32(4096))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitPolicy("topic max message size", func(e broker.EffectivePolicies) bool { return e.MaxMessageBytes == 4096 })
	// GetTopic's cache on the other broker was dropped too.
	if md, err := brokers[1].GetTopic(ctx, topic); err != nil || md.Effective.MaxMessageBytes != 4096 {
		t.Fatalf("other broker's GetTopic after the change: %+v %v", md.Effective, err)
	}
	if err := brokers[0].UpdateNamespacePolicies(ctx, "public/default", func(p *broker.Policies) error {
		p.BacklogQuota = &broker.BacklogQuota{LimitBytes: 1 << 20, Policy: "producer_request_hold"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitPolicy("namespace backlog quota", func(e broker.EffectivePolicies) bool {
		return e.BacklogQuota != nil && e.BacklogQuota.LimitBytes == 1<<20
	})
}

func ptrTo[T any](v T) *T { return &v }
