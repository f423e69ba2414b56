package broker

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/metadata"
)

// step is one call in a table test: run returns the error to compare with want.
type step struct {
	name string
	run  func(ctx context.Context, b *Broker) error
	want error // nil: success
}

func runSteps(t *testing.T, b *Broker, steps []step) {
	t.Helper()
	ctx := context.Background()
	for _, s := range steps {
		err := s.run(ctx, b)
		switch {
		case s.want == nil && err != nil:
			t.Errorf("%s: unexpected error %v", s.name, err)
		case s.want != nil && !errors.Is(err, s.want):
			t.Errorf("%s: got %v, want %v", s.name, err, s.want)
		}
	}
}

func mustTopic(t *testing.T, s string) TopicName {
	t.Helper()
	n, err := ParseTopicName(s, "public", "default")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// expect turns a check into a step error.
func expect(ok bool, format string) error {
	if ok {
		return nil
	}
	return errors.New("check failed: " + format)
}

func TestTenants(t *testing.T) {
	b := newTestBroker(t)
	runSteps(t, b, []step{
		{"create", func(ctx context.Context, b *Broker) error {
			return b.CreateTenant(ctx, "acme", TenantInfo{AdminRoles: []string{"root"}, AllowedClusters: []string{"standalone"}})
		}, nil},
		{"create again", func(ctx context.Context, b *Broker) error { return b.CreateTenant(ctx, "acme", TenantInfo{}) }, ErrAlreadyExists},
		{"invalid name", func(ctx context.Context, b *Broker) error { return b.CreateTenant(ctx, "a/b", TenantInfo{}) }, ErrInvalidName},
		{"empty name", func(ctx context.Context, b *Broker) error { return b.CreateTenant(ctx, "", TenantInfo{}) }, ErrInvalidName},
		{"get", func(ctx context.Context, b *Broker) error {
			info, err := b.GetTenant(ctx, "acme")
			if err != nil {
				return err
			}
			return expect(reflect.DeepEqual(info.AdminRoles, []string{"root"}) && reflect.DeepEqual(info.AllowedClusters, []string{"standalone"}), "tenant info")
		}, nil},
		{"get missing", func(ctx context.Context, b *Broker) error { _, err := b.GetTenant(ctx, "nope"); return err }, ErrTenantNotFound},
		{"update missing", func(ctx context.Context, b *Broker) error { return b.UpdateTenant(ctx, "nope", TenantInfo{}) }, ErrTenantNotFound},
		{"update", func(ctx context.Context, b *Broker) error {
			if err := b.UpdateTenant(ctx, "acme", TenantInfo{AdminRoles: []string{"ops"}}); err != nil {
				return err
			}
			info, err := b.GetTenant(ctx, "acme")
			return errors.Join(err, expect(reflect.DeepEqual(info.AdminRoles, []string{"ops"}), "updated roles"))
		}, nil},
		{"list", func(ctx context.Context, b *Broker) error {
			ts, err := b.ListTenants(ctx)
			return errors.Join(err, expect(reflect.DeepEqual(ts, []string{"acme", "public"}), "tenant list"))
		}, nil},
		{"namespace blocks delete", func(ctx context.Context, b *Broker) error {
			if err := b.CreateNamespace(ctx, "acme/ns", Policies{}); err != nil {
				return err
			}
			return b.DeleteTenant(ctx, "acme")
		}, ErrNotEmpty},
		{"delete", func(ctx context.Context, b *Broker) error {
			if err := b.DeleteNamespace(ctx, "acme/ns"); err != nil {
				return err
			}
			return b.DeleteTenant(ctx, "acme")
		}, nil},
		{"deleted", func(ctx context.Context, b *Broker) error { _, err := b.GetTenant(ctx, "acme"); return err }, ErrTenantNotFound},
		{"delete missing", func(ctx context.Context, b *Broker) error { return b.DeleteTenant(ctx, "acme") }, ErrTenantNotFound},
	})
}

func TestNamespaces(t *testing.T) {
	b := newTestBroker(t)
	tn := mustTopic(t, "acme/app/t")
	runSteps(t, b, []step{
		{"missing tenant", func(ctx context.Context, b *Broker) error { return b.CreateNamespace(ctx, "acme/app", Policies{}) }, ErrTenantNotFound},
		{"tenant", func(ctx context.Context, b *Broker) error { return b.CreateTenant(ctx, "acme", TenantInfo{}) }, nil},
		{"no slash", func(ctx context.Context, b *Broker) error { return b.CreateNamespace(ctx, "acme", Policies{}) }, ErrInvalidName},
		{"too many parts", func(ctx context.Context, b *Broker) error { return b.CreateNamespace(ctx, "acme/a/b", Policies{}) }, ErrInvalidName},
		{"bad char", func(ctx context.Context, b *Broker) error { return b.CreateNamespace(ctx, "acme/a b", Policies{}) }, ErrInvalidName},
		{"bad policies", func(ctx context.Context, b *Broker) error {
			return b.CreateNamespace(ctx, "acme/app", Policies{MaxMessageBytes: ptr(int32(0))})
		}, ErrInvalidConfig},
		{"create", func(ctx context.Context, b *Broker) error {
			return b.CreateNamespace(ctx, "acme/app", Policies{RetentionTime: ptr(time.Hour)})
		}, nil},
		{"create again", func(ctx context.Context, b *Broker) error { return b.CreateNamespace(ctx, "acme/app", Policies{}) }, ErrAlreadyExists},
		{"create second", func(ctx context.Context, b *Broker) error { return b.CreateNamespace(ctx, "acme/db", Policies{}) }, nil},
		{"list", func(ctx context.Context, b *Broker) error {
			ns, err := b.ListNamespaces(ctx, "acme")
			return errors.Join(err, expect(reflect.DeepEqual(ns, []string{"acme/app", "acme/db"}), "namespace list"))
		}, nil},
		{"list missing tenant", func(ctx context.Context, b *Broker) error { _, err := b.ListNamespaces(ctx, "nope"); return err }, ErrTenantNotFound},
		{"policies", func(ctx context.Context, b *Broker) error {
			p, err := b.NamespacePolicies(ctx, "acme/app")
			return errors.Join(err, expect(p.RetentionTime != nil && *p.RetentionTime == time.Hour, "retention kept"))
		}, nil},
		{"policies missing", func(ctx context.Context, b *Broker) error {
			_, err := b.NamespacePolicies(ctx, "acme/nope")
			return err
		}, ErrNamespaceNotFound},
		{"set policies missing", func(ctx context.Context, b *Broker) error {
			return b.SetNamespacePolicies(ctx, "acme/nope", Policies{})
		}, ErrNamespaceNotFound},
		{"set invalid policies", func(ctx context.Context, b *Broker) error {
			return b.SetNamespacePolicies(ctx, "acme/app", Policies{SegmentBytes: ptr(int64(10))})
		}, ErrInvalidConfig},
		{"topic blocks delete", func(ctx context.Context, b *Broker) error {
			if err := b.CreateTopic(ctx, tn, 0, Policies{}); err != nil {
				return err
			}
			return b.DeleteNamespace(ctx, "acme/app")
		}, ErrNotEmpty},
		{"delete", func(ctx context.Context, b *Broker) error {
			if err := b.DeleteTopic(ctx, tn, false); err != nil {
				return err
			}
			return b.DeleteNamespace(ctx, "acme/app")
		}, nil},
		{"delete missing", func(ctx context.Context, b *Broker) error { return b.DeleteNamespace(ctx, "acme/app") }, ErrNamespaceNotFound},
		{"topic in missing namespace", func(ctx context.Context, b *Broker) error { return b.CreateTopic(ctx, tn, 0, Policies{}) }, ErrNamespaceNotFound},
	})
}

func TestTopics(t *testing.T) {
	b := newTestBroker(t)
	plain := mustTopic(t, "plain")
	parted := mustTopic(t, "parted")
	runSteps(t, b, []step{
		{"create plain", func(ctx context.Context, b *Broker) error { return b.CreateTopic(ctx, plain, 0, Policies{}) }, nil},
		{"create plain again", func(ctx context.Context, b *Broker) error { return b.CreateTopic(ctx, plain, 0, Policies{}) }, ErrAlreadyExists},
		{"negative partitions", func(ctx context.Context, b *Broker) error {
			return b.CreateTopic(ctx, mustTopic(t, "neg"), -1, Policies{})
		}, ErrInvalidConfig},
		{"invalid name", func(ctx context.Context, b *Broker) error {
			return b.CreateTopic(ctx, TopicName{Domain: "persistent", Tenant: "public", Namespace: "default", Local: "a b"}, 0, Policies{})
		}, ErrInvalidName},
		{"partitioned named like a partition", func(ctx context.Context, b *Broker) error {
			return b.CreateTopic(ctx, mustTopic(t, "x-partition-1"), 2, Policies{})
		}, ErrInvalidName},
		{"create partitioned", func(ctx context.Context, b *Broker) error { return b.CreateTopic(ctx, parted, 3, Policies{}) }, nil},
		{"partition exists as part of the topic", func(ctx context.Context, b *Broker) error {
			return b.CreateTopic(ctx, parted.Partition(1), 0, Policies{})
		}, ErrAlreadyExists},
		{"get partitioned", func(ctx context.Context, b *Broker) error {
			md, err := b.GetTopic(ctx, parted)
			return errors.Join(err, expect(md.Partitions == 3 && md.Name == parted && !md.Created.IsZero(), "metadata"))
		}, nil},
		{"get partition reports base", func(ctx context.Context, b *Broker) error {
			md, err := b.GetTopic(ctx, parted.Partition(2))
			return errors.Join(err, expect(md.Partitions == 3 && md.Name == parted, "partition metadata"))
		}, nil},
		{"partition out of range", func(ctx context.Context, b *Broker) error { _, err := b.GetTopic(ctx, parted.Partition(3)); return err }, ErrTopicNotFound},
		{"open partitioned base", func(ctx context.Context, b *Broker) error { _, err := b.OpenPartition(ctx, parted, false); return err }, ErrInvalidName},
		{"open partition", func(ctx context.Context, b *Broker) error {
			p, err := b.OpenPartition(ctx, parted.Partition(0), false)
			return errors.Join(err, expect(err != nil || p.Name() == parted.Partition(0), "partition name"))
		}, nil},
		{"open missing without create", func(ctx context.Context, b *Broker) error {
			_, err := b.OpenPartition(ctx, mustTopic(t, "nope"), false)
			return err
		}, ErrTopicNotFound},
		{"grow", func(ctx context.Context, b *Broker) error {
			if err := b.SetPartitions(ctx, parted, 5); err != nil {
				return err
			}
			_, err := b.OpenPartition(ctx, parted.Partition(4), false)
			return err
		}, nil},
		{"shrink", func(ctx context.Context, b *Broker) error { return b.SetPartitions(ctx, parted, 2) }, ErrInvalidConfig},
		{"partition plain", func(ctx context.Context, b *Broker) error { return b.SetPartitions(ctx, plain, 2) }, ErrInvalidConfig},
		{"partition missing", func(ctx context.Context, b *Broker) error { return b.SetPartitions(ctx, mustTopic(t, "nope"), 2) }, ErrTopicNotFound},
		{"list", func(ctx context.Context, b *Broker) error {
			ts, err := b.ListTopics(ctx, "public/default")
			if err != nil {
				return err
			}
			var names []string
			for _, md := range ts {
				names = append(names, md.Name.Local)
			}
			return expect(reflect.DeepEqual(names, []string{"parted", "plain"}), "topic list")
		}, nil},
		{"delete one partition", func(ctx context.Context, b *Broker) error { return b.DeleteTopic(ctx, parted.Partition(0), true) }, ErrInvalidName},
		{"delete in use", func(ctx context.Context, b *Broker) error {
			p, err := b.OpenPartition(ctx, parted.Partition(1), false)
			if err != nil {
				return err
			}
			p.Attach()
			return b.DeleteTopic(ctx, parted, false)
		}, ErrInUse},
		{"force delete", func(ctx context.Context, b *Broker) error { return b.DeleteTopic(ctx, parted, true) }, nil},
		{"deleted", func(ctx context.Context, b *Broker) error { _, err := b.GetTopic(ctx, parted.Partition(1)); return err }, ErrTopicNotFound},
		{"delete missing", func(ctx context.Context, b *Broker) error { return b.DeleteTopic(ctx, parted, false) }, ErrTopicNotFound},
		{"delete unused", func(ctx context.Context, b *Broker) error { return b.DeleteTopic(ctx, plain, false) }, nil},
		{"partitioned over an existing partition name", func(ctx context.Context, b *Broker) error {
			if err := b.CreateTopic(ctx, mustTopic(t, "clash-partition-1"), 0, Policies{}); err != nil {
				return err
			}
			return b.CreateTopic(ctx, mustTopic(t, "clash"), 2, Policies{})
		}, ErrAlreadyExists},
		{"grow over an existing partition name", func(ctx context.Context, b *Broker) error {
			if err := b.CreateTopic(ctx, mustTopic(t, "clash"), 1, Policies{}); err != nil {
				return err
			}
			return b.SetPartitions(ctx, mustTopic(t, "clash"), 3)
		}, ErrAlreadyExists},
		{"recreate after delete is empty", func(ctx context.Context, b *Broker) error {
			if err := b.CreateTopic(ctx, parted, 2, Policies{}); err != nil {
				return err
			}
			p, err := b.OpenPartition(ctx, parted.Partition(1), false)
			return errors.Join(err, expect(err != nil || p.NextIndex() == 0, "fresh partition"))
		}, nil},
	})
}

func TestLookupAutoCreate(t *testing.T) {
	b := newTestBroker(t)
	runSteps(t, b, []step{
		{"lookup without create", func(ctx context.Context, b *Broker) error {
			_, err := b.LookupTopic(ctx, mustTopic(t, "a"), false)
			return err
		}, ErrTopicNotFound},
		{"lookup creates", func(ctx context.Context, b *Broker) error {
			md, err := b.LookupTopic(ctx, mustTopic(t, "a"), true)
			return errors.Join(err, expect(md.Partitions == 0, "non-partitioned"))
		}, nil},
		{"partition name creates partitioned", func(ctx context.Context, b *Broker) error {
			md, err := b.LookupTopic(ctx, mustTopic(t, "b-partition-2"), true)
			return errors.Join(err, expect(md.Partitions == 3 && md.Name.Local == "b", "partitioned from partition name"))
		}, nil},
		{"namespace default partitions", func(ctx context.Context, b *Broker) error {
			if err := b.SetNamespacePolicies(ctx, "public/default", Policies{AutoTopicPartitions: ptr(4)}); err != nil {
				return err
			}
			md, err := b.LookupTopic(ctx, mustTopic(t, "c"), true)
			return errors.Join(err, expect(md.Partitions == 4, "auto partitions"))
		}, nil},
		{"auto creation off", func(ctx context.Context, b *Broker) error {
			if err := b.SetNamespacePolicies(ctx, "public/default", Policies{AutoTopicCreation: ptr(false)}); err != nil {
				return err
			}
			_, err := b.OpenPartition(ctx, mustTopic(t, "d"), true)
			return err
		}, ErrTopicNotFound},
		{"missing namespace", func(ctx context.Context, b *Broker) error {
			_, err := b.LookupTopic(ctx, mustTopic(t, "public/nope/x"), true)
			return err
		}, ErrNamespaceNotFound},
	})
}

func TestPolicyInheritance(t *testing.T) {
	ctx := context.Background()
	b := newTestBroker(t)
	def := DefaultPolicies()
	n := mustTopic(t, "pol")
	if err := b.CreateTopic(ctx, n, 0, Policies{}); err != nil {
		t.Fatal(err)
	}
	p, err := b.OpenPartition(ctx, n, false)
	if err != nil {
		t.Fatal(err)
	}
	eff := func() EffectivePolicies {
		md, err := b.GetTopic(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Policies(); !reflect.DeepEqual(got, md.Effective) {
			t.Fatalf("loaded partition has %+v, metadata says %+v", got, md.Effective)
		}
		return md.Effective
	}
	if got := eff(); !reflect.DeepEqual(got, def) {
		t.Fatalf("defaults: %+v, want %+v", got, def)
	}

	// Namespace overrides reach the loaded partition.
	err = b.SetNamespacePolicies(ctx, "public/default", Policies{
		MaxMessageBytes: ptr(int32(8)), RetentionTime: ptr(time.Hour), Extra: map[string]string{"a": "ns", "b": "ns"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := eff()
	if got.MaxMessageBytes != 8 || got.RetentionTime != time.Hour || got.RetentionBytes != def.RetentionBytes {
		t.Fatalf("namespace level: %+v", got)
	}
	if _, err := p.Append(ctx, AppendRequest{Format: FormatKafka, MsgCount: 1, Data: make([]byte, 9)}); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("append over namespace limit: %v", err)
	}

	// Topic overrides win over the namespace, field by field.
	err = b.SetTopicPolicies(ctx, n, Policies{MaxMessageBytes: ptr(int32(64)), Extra: map[string]string{"b": "topic"}})
	if err != nil {
		t.Fatal(err)
	}
	got = eff()
	if got.MaxMessageBytes != 64 || got.RetentionTime != time.Hour {
		t.Fatalf("topic level: %+v", got)
	}
	if want := map[string]string{"a": "ns", "b": "topic"}; !reflect.DeepEqual(got.Extra, want) {
		t.Fatalf("extra: %v, want %v", got.Extra, want)
	}
	if _, err := p.Append(ctx, AppendRequest{Format: FormatKafka, MsgCount: 1, Data: make([]byte, 9)}); err != nil {
		t.Fatalf("append under topic limit: %v", err)
	}
	if err := b.SetTopicPolicies(ctx, mustTopic(t, "nope"), Policies{}); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("missing topic: %v", err)
	}
	if err := b.SetTopicPolicies(ctx, n, Policies{SegmentAge: ptr(time.Duration(-1))}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("invalid topic policies: %v", err)
	}
}

func TestBrokerReopenOnBolt(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	open := func() (*Broker, func()) {
		store, err := metadata.OpenBolt(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := managedledger.NewFactory(managedledger.FactoryOptions{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(ctx, Options{Store: store, Ledgers: f})
		if err != nil {
			t.Fatal(err)
		}
		return b, func() { b.Close(); f.Close(); store.Close() }
	}
	b, closeAll := open()
	id := b.ClusterID()
	if id == "" {
		t.Fatal("empty cluster id")
	}
	must(t, b.CreateTenant(ctx, "acme", TenantInfo{AdminRoles: []string{"r"}}))
	must(t, b.CreateNamespace(ctx, "acme/app", Policies{RetentionBytes: ptr(int64(1 << 30))}))
	must(t, b.CreateTopic(ctx, mustTopic(t, "acme/app/orders"), 4, Policies{MaxMessageBytes: ptr(int32(4096))}))
	must(t, b.CreateTopic(ctx, mustTopic(t, "acme/app/plain"), 0, Policies{}))
	closeAll()

	b, closeAll = open()
	defer closeAll()
	if b.ClusterID() != id {
		t.Fatalf("cluster id %q after reopen, was %q", b.ClusterID(), id)
	}
	if ts, _ := b.ListTenants(ctx); !reflect.DeepEqual(ts, []string{"acme", "public"}) {
		t.Fatalf("tenants %v", ts)
	}
	if info, _ := b.GetTenant(ctx, "acme"); !reflect.DeepEqual(info.AdminRoles, []string{"r"}) {
		t.Fatalf("tenant info %+v", info)
	}
	if ns, _ := b.ListNamespaces(ctx, "public"); !reflect.DeepEqual(ns, []string{"public/default"}) {
		t.Fatalf("public namespaces %v", ns)
	}
	md, err := b.GetTopic(ctx, mustTopic(t, "acme/app/orders"))
	if err != nil || md.Partitions != 4 || md.Effective.MaxMessageBytes != 4096 || md.Effective.RetentionBytes != 1<<30 {
		t.Fatalf("topic after reopen: %+v %v", md, err)
	}
	if ts, _ := b.ListTopics(ctx, "acme/app"); len(ts) != 2 {
		t.Fatalf("topics after reopen: %+v", ts)
	}
}

func TestDedupRecoveredAfterReload(t *testing.T) {
	ctx := context.Background()
	b := newTestBroker(t)
	n := mustTopic(t, "dedup")
	p, err := b.OpenPartition(ctx, n, true)
	if err != nil {
		t.Fatal(err)
	}
	appendReq := func(producer string, epoch, first, last int64) AppendRequest {
		return AppendRequest{
			Format: FormatKafka, MsgCount: int32(last - first + 1), Data: []byte("x"),
			Producer: producer, Epoch: epoch, SeqFirst: first, SeqLast: last, StrictSequence: true,
		}
	}
	var firstResults []AppendResult
	for i := int64(0); i < 3; i++ {
		r, err := p.Append(ctx, appendReq("kafka-7", 2, i*2, i*2+1))
		if err != nil {
			t.Fatal(err)
		}
		firstResults = append(firstResults, r)
	}
	if _, err := p.Append(ctx, appendReq("pulsar-a", 0, 10, 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(ctx, AppendRequest{Format: FormatPulsar, MsgCount: 1, Data: []byte("anon")}); err != nil {
		t.Fatal(err)
	}

	// Simulate a restart: drop the loaded partition (its in-memory state)
	// and load it again from the same log.
	b.mu.Lock()
	delete(b.mu.partitions, n.String())
	b.mu.Unlock()
	p2, err := b.OpenPartition(ctx, n, false)
	if err != nil {
		t.Fatal(err)
	}
	if p2 == p {
		t.Fatal("partition was not reloaded")
	}
	if got := p2.LastSequence("kafka-7"); got != 5 {
		t.Fatalf("recovered last sequence %d, want 5", got)
	}
	if got := p2.LastSequence("pulsar-a"); got != 10 {
		t.Fatalf("recovered pulsar last sequence %d, want 10", got)
	}
	// A retry of a recent batch is a duplicate answered with the original position.
	r, err := p2.Append(ctx, appendReq("kafka-7", 2, 2, 3))
	if err != nil || !r.Duplicate || r.Entry.Position != firstResults[1].Entry.Position || r.Entry.FirstIndex != firstResults[1].Entry.FirstIndex {
		t.Fatalf("retry after reload: %+v %v (want position %v)", r, err, firstResults[1].Entry.Position)
	}
	if _, err := p2.Append(ctx, appendReq("kafka-7", 1, 6, 6)); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("older epoch after reload: %v", err)
	}
	if _, err := p2.Append(ctx, appendReq("kafka-7", 2, 7, 7)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap after reload: %v", err)
	}
	if r, err := p2.Append(ctx, appendReq("kafka-7", 2, 6, 6)); err != nil || r.Duplicate {
		t.Fatalf("next sequence after reload: %+v %v", r, err)
	}
	if r, err := p2.Append(ctx, appendReq("pulsar-a", 0, 10, 10)); err != nil || !r.Duplicate {
		t.Fatalf("pulsar retry after reload: %+v %v", r, err)
	}
	if p2.NextIndex() != 9 {
		t.Fatalf("next index %d, want 9 (no duplicate appended)", p2.NextIndex())
	}
}

func TestDedupRecoveryReadsOnlyTheTail(t *testing.T) {
	ctx := context.Background()
	b := newTestBroker(t)
	n := mustTopic(t, "tail")
	p, err := b.OpenPartition(ctx, n, true)
	if err != nil {
		t.Fatal(err)
	}
	old := DedupRecoveryEntries
	DedupRecoveryEntries = 10
	t.Cleanup(func() { DedupRecoveryEntries = old })
	if _, err := p.Append(ctx, AppendRequest{Format: FormatKafka, MsgCount: 1, Data: []byte("x"), Producer: "early", SeqFirst: 0, SeqLast: 0}); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if _, err := p.Append(ctx, AppendRequest{Format: FormatKafka, MsgCount: 1, Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	b.mu.Lock()
	delete(b.mu.partitions, n.String())
	b.mu.Unlock()
	p2, err := b.OpenPartition(ctx, n, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := p2.LastSequence("early"); got != -1 {
		t.Fatalf("producer beyond the recovery window was recovered: %d", got)
	}

	// The byte budget shortens the scan too.
	DedupRecoveryEntries = 1000
	oldBytes := DedupRecoveryBytes
	DedupRecoveryBytes = 1
	t.Cleanup(func() { DedupRecoveryBytes = oldBytes })
	if _, err := p2.Append(ctx, AppendRequest{Format: FormatKafka, MsgCount: 1, Data: []byte("x"), Producer: "late", SeqFirst: 0, SeqLast: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := p2.Append(ctx, AppendRequest{Format: FormatKafka, MsgCount: 1, Data: []byte("x"), Producer: "last", SeqFirst: 0, SeqLast: 0}); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	delete(b.mu.partitions, n.String())
	b.mu.Unlock()
	p3, err := b.OpenPartition(ctx, n, false)
	if err != nil {
		t.Fatal(err)
	}
	if p3.LastSequence("late") != -1 || p3.LastSequence("last") != 0 {
		t.Fatalf("byte budget: late %d last %d", p3.LastSequence("late"), p3.LastSequence("last"))
	}
}

func TestEncodeProducer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		epoch int64
	}{{"p", 0}, {"p", 7}, {"a;epoch=x", 0}, {"a;epoch=x", 3}, {"a;epoch=5", 0}, {"kafka-1", 2}, {"", 0}} {
		name, epoch := decodeProducer(encodeProducer(tc.name, tc.epoch))
		if name != tc.name || epoch != tc.epoch {
			t.Errorf("%q/%d: decoded %q/%d", tc.name, tc.epoch, name, epoch)
		}
	}
}

func TestRetentionLoopAndPartitions(t *testing.T) {
	ctx := context.Background()
	store := metadata.NewMemory()
	f, err := managedledger.NewFactory(managedledger.FactoryOptions{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	defer f.Close()
	b, err := New(ctx, Options{Store: store, Ledgers: f, RetentionInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"b", "a"} {
		if _, err := b.OpenPartition(ctx, mustTopic(t, s), true); err != nil {
			t.Fatal(err)
		}
	}
	ps := b.Partitions()
	if len(ps) != 2 || ps[0].Name().Local != "a" || ps[1].Name().Local != "b" {
		t.Fatalf("partitions %v", ps)
	}
	time.Sleep(10 * time.Millisecond) // let the loop run a few times
	if err := b.ApplyRetention(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { b.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the retention loop")
	}
	if len(b.Partitions()) != 0 {
		t.Fatal("partitions still loaded after Close")
	}
	if _, err := b.OpenPartition(ctx, mustTopic(t, "c"), true); !errors.Is(err, ErrClosed) {
		t.Fatalf("open after close: %v", err)
	}
}

func TestClientRegistries(t *testing.T) {
	ctx := context.Background()
	b := newTestBroker(t)
	p, err := b.OpenPartition(ctx, mustTopic(t, "reg"), true)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := p.AddProducer(ctx, ProducerSpec{Info: ProducerInfo{Name: "p1", Protocol: "pulsar"}, TopicEpoch: -1})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := p.AddProducer(ctx, ProducerSpec{Info: ProducerInfo{Name: "p2", Protocol: "kafka"}, TopicEpoch: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddProducer(ctx, ProducerSpec{Info: ProducerInfo{Name: "p2"}, TopicEpoch: -1}); !errors.Is(err, ErrProducerBusy) {
		t.Fatalf("duplicate producer name: %v", err)
	}
	if got := p.Producers(); len(got) != 2 || got[0].Name != "p1" || got[1].Name != "p2" || got[0].ConnectedSince.IsZero() {
		t.Fatalf("producers %+v", got)
	}
	if err := b.DeleteTopic(ctx, mustTopic(t, "reg"), false); !errors.Is(err, ErrInUse) {
		t.Fatalf("delete with producers attached: %v", err)
	}
	r1.Close()
	r1.Close()
	if got := p.Producers(); len(got) != 1 || got[0].Name != "p2" {
		t.Fatalf("after remove %+v", got)
	}
	r2.Close()
	if n := p.ProducerNames(); len(n) != 0 {
		t.Fatalf("names after close: %v", n)
	}

	s, err := p.Subscription(ctx, "sub", true, InitialEarliest)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := s.AddConsumer(ctx, ConsumerSpec{Info: ConsumerInfo{Name: "c1", Type: "Shared"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Consumers(); len(got) != 1 || got[0].Type != "Shared" {
		t.Fatalf("consumers %+v", got)
	}
	if err := p.DeleteSubscription(ctx, "sub", false); !errors.Is(err, ErrInUse) {
		t.Fatalf("delete a held subscription: %v", err)
	}
	rc.Close()
	rc.Close()
	if len(s.Consumers()) != 0 {
		t.Fatal("consumer not removed")
	}
	s.AddDelivered(3, 30)
	if m, by := s.OutCounters(); m != 3 || by != 30 {
		t.Fatalf("out counters %d %d", m, by)
	}
	if _, err := p.Append(ctx, AppendRequest{Format: FormatKafka, MsgCount: 2, Data: []byte("abcd"), Producer: "x", SeqFirst: 0, SeqLast: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(ctx, AppendRequest{Format: FormatKafka, MsgCount: 2, Data: []byte("abcd"), Producer: "x", SeqFirst: 0, SeqLast: 1}); err != nil {
		t.Fatal(err)
	}
	if m, by := p.InCounters(); m != 2 || by != 4 {
		t.Fatalf("in counters %d %d (duplicates must not count)", m, by)
	}
}

func ptr[T any](v T) *T { return &v }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRateMeter(t *testing.T) {
	var m rateMeter
	t0 := time.Unix(1000, 0)
	if r, _ := m.rates(t0, 0, 0); r != 0 {
		t.Fatalf("first sample rate %v", r)
	}
	if r, _ := m.rates(t0.Add(time.Second), 50, 500); r != 0 {
		t.Fatalf("rate before a window passed %v", r)
	}
	r, br := m.rates(t0.Add(10*time.Second), 100, 1000)
	if r != 10 || br != 100 {
		t.Fatalf("rates %v %v, want 10 100", r, br)
	}
	if r, _ := m.rates(t0.Add(11*time.Second), 1000, 1000); r != 10 {
		t.Fatalf("rate within the next window %v, want the last measured 10", r)
	}
}
