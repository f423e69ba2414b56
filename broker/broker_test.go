package broker

import (
	"context"
	"errors"
	"testing"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/metadata"
)

// newTestBroker starts a broker over an in-memory store and ledger factory.
func newTestBroker(t *testing.T) *Broker {
	t.Helper()
	return newTestBrokerOn(t, managedledger.FactoryOptions{})
}

// newTestBrokerOn is newTestBroker over a factory with opts (its Store is
// set here), e.g. ledger files in a Dir, an injected FS.
func newTestBrokerOn(t *testing.T, opts managedledger.FactoryOptions) *Broker {
	t.Helper()
	ctx := context.Background()
	store := metadata.NewMemory()
	opts.Store = store
	f, err := managedledger.NewFactory(opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(ctx, Options{Store: store, Ledgers: f})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); f.Close(); store.Close() })
	return b
}

func TestAutoCreateAppendReadDedup(t *testing.T) {
	ctx := context.Background()
	b := newTestBroker(t)
	name, err := ParseTopicName("orders", "public", "default")
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.OpenPartition(ctx, name, true)
	if err != nil {
		t.Fatal(err)
	}
	req := AppendRequest{Format: FormatKafka, MsgCount: 3, Data: []byte("abc"), Producer: "p1", SeqFirst: 0, SeqLast: 2, StrictSequence: true}
	r1, err := p.Append(ctx, req)
	if err != nil || r1.Duplicate || r1.Entry.FirstIndex != 0 {
		t.Fatalf("first append: %+v %v", r1, err)
	}
	r2, err := p.Append(ctx, req)
	if err != nil || !r2.Duplicate || r2.Entry.Position != r1.Entry.Position {
		t.Fatalf("retried append: %+v %v", r2, err)
	}
	req.SeqFirst, req.SeqLast = 5, 5
	if _, err := p.Append(ctx, req); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap: got %v", err)
	}
	if p.NextIndex() != 3 {
		t.Fatalf("next index %d", p.NextIndex())
	}
	es, err := p.ReadFromIndex(ctx, 1, 10, 1<<20)
	if err != nil || len(es) != 1 || string(es[0].Data) != "abc" {
		t.Fatalf("read: %v %v", es, err)
	}
	topics, err := b.ListTopics(ctx, "public/default")
	if err != nil || len(topics) != 1 || topics[0].Name != name {
		t.Fatalf("list: %v %v", topics, err)
	}
}

func TestParseTopicName(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		part     int
		bad      bool
	}{
		{in: "t", want: "persistent://public/default/t", part: -1},
		{in: "a/b/t-partition-3", want: "persistent://a/b/t-partition-3", part: 3},
		{in: "persistent://a/b/c", want: "persistent://a/b/c", part: -1},
		{in: "non-persistent://a/b/c", want: "non-persistent://a/b/c", part: -1},
		{in: "other://a/b/c", bad: true},
		{in: "a/b", bad: true},
		{in: "bad name", bad: true},
		{in: "", bad: true},
	} {
		n, err := ParseTopicName(tc.in, "public", "default")
		if tc.bad {
			if err == nil {
				t.Errorf("%q: want error, got %v", tc.in, n)
			}
			continue
		}
		if err != nil || n.String() != tc.want || n.PartitionIndex() != tc.part {
			t.Errorf("%q: got %v (%d) %v", tc.in, n, n.PartitionIndex(), err)
		}
	}
}
