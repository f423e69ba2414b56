package broker

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/managedledger"
	"github.com/kopernik-io/kopernik/metadata"
)

// durableBroker is a broker over a bbolt store and segment files in dir;
// start it again on the same dir to simulate a restart.
type durableBroker struct {
	*Broker
	close func()
}

func startDurable(t *testing.T, dir string, opts Options) durableBroker {
	t.Helper()
	store, err := metadata.OpenBolt(filepath.Join(dir, "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := managedledger.NewFactory(managedledger.FactoryOptions{Dir: filepath.Join(dir, "ledgers"), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	opts.Store, opts.Ledgers = store, f
	b, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	closeAll := func() {
		if !closed {
			closed = true
			b.Close()
			f.Close()
			store.Close()
		}
	}
	t.Cleanup(closeAll)
	return durableBroker{Broker: b, close: closeAll}
}

// TestRestartKeepsDataAndDedup restarts a broker on its data directory: the
// cluster id, topics, data and subscriptions survive, and a producer that
// retries a batch after the restart is deduplicated from the log.
func TestRestartKeepsDataAndDedup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	n := mustTopic(t, "durable")
	req := func(epoch, first, last int64) AppendRequest {
		return AppendRequest{
			Format: FormatKafka, MsgCount: int32(last - first + 1), Data: []byte("payload"),
			Producer: "pid-42", Epoch: epoch, SeqFirst: first, SeqLast: last, StrictSequence: true,
		}
	}

	b := startDurable(t, dir, Options{})
	id := b.ClusterID()
	p, err := b.OpenPartition(ctx, n, true)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := p.Subscription(ctx, "group", true, InitialEarliest)
	if err != nil {
		t.Fatal(err)
	}
	var last AppendResult
	for i := int64(0); i < 4; i++ {
		if last, err = p.Append(ctx, req(3, i*10, i*10+9)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sub.Cursor().SetNextIndex(ctx, 20); err != nil {
		t.Fatal(err)
	}
	b.close()

	b = startDurable(t, dir, Options{})
	if b.ClusterID() != id {
		t.Fatalf("cluster id changed: %s -> %s", id, b.ClusterID())
	}
	p, err = b.OpenPartition(ctx, n, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.NextIndex() != 40 {
		t.Fatalf("next index after restart %d, want 40", p.NextIndex())
	}
	if got := p.LastSequence("pid-42"); got != 39 {
		t.Fatalf("last sequence after restart %d, want 39", got)
	}
	r, err := p.Append(ctx, req(3, 30, 39))
	if err != nil || !r.Duplicate || r.Entry.Position != last.Entry.Position || r.Entry.FirstIndex != 30 {
		t.Fatalf("retry after restart: %+v %v (original %+v)", r, err, last.Entry)
	}
	if _, err := p.Append(ctx, req(2, 40, 40)); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("fenced epoch after restart: %v", err)
	}
	if r, err := p.Append(ctx, req(3, 40, 41)); err != nil || r.Duplicate || r.Entry.FirstIndex != 40 {
		t.Fatalf("next batch after restart: %+v %v", r, err)
	}
	sub, err = p.Subscription(ctx, "group", false, InitialLatest)
	if err != nil {
		t.Fatal(err)
	}
	if got := sub.Cursor().NextIndex(); got != 20 {
		t.Fatalf("committed offset after restart %d, want 20", got)
	}
}

// TestRetentionLoopTrimsConsumedLedgers: with retention 0 and tiny ledgers,
// the background loop deletes consumed ledgers, and a policy change made
// while the partition is open reaches its ledger.
func TestRetentionLoopTrimsConsumedLedgers(t *testing.T) {
	ctx := context.Background()
	b := startDurable(t, t.TempDir(), Options{RetentionInterval: 5 * time.Millisecond})
	n := mustTopic(t, "trim")
	if err := b.CreateTopic(ctx, n, 0, Policies{SegmentBytes: ptr(int64(1024))}); err != nil {
		t.Fatal(err)
	}
	p, err := b.OpenPartition(ctx, n, false)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := p.Subscription(ctx, "s", true, InitialEarliest)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := p.Append(ctx, AppendRequest{Format: FormatKafka, MsgCount: 1, Data: make([]byte, 400)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sub.Cursor().SetNextIndex(ctx, 20); err != nil {
		t.Fatal(err)
	}
	// Default retention keeps consumed data for 7 days: nothing goes.
	time.Sleep(30 * time.Millisecond)
	if p.FirstIndex() != 0 {
		t.Fatalf("first index %d with 7-day retention", p.FirstIndex())
	}
	// Drop retention to 0 on the namespace: the open ledger learns it.
	if err := b.SetNamespacePolicies(ctx, "public/default", Policies{RetentionTime: ptr(time.Duration(0)), RetentionBytes: ptr(int64(0))}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.FirstIndex() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("retention never trimmed: %+v", p.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if p.FirstIndex() > 20 || p.NextIndex() != 20 {
		t.Fatalf("after retention first %d next %d", p.FirstIndex(), p.NextIndex())
	}
}

// TestConcurrentOpenLoadsOnce: concurrent OpenPartition calls for one
// partition share one load and get the same *Partition.
func TestConcurrentOpenLoadsOnce(t *testing.T) {
	ctx := context.Background()
	b := startDurable(t, t.TempDir(), Options{})
	n := mustTopic(t, "busy-open")
	const callers = 16
	got := make([]*Partition, callers)
	errs := make([]error, callers)
	start := make(chan struct{})
	done := make(chan int)
	for i := range callers {
		go func() {
			<-start
			got[i], errs[i] = b.OpenPartition(ctx, n, true)
			done <- i
		}()
	}
	close(start)
	for range callers {
		<-done
	}
	for i := range callers {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if got[i] != got[0] {
			t.Fatalf("caller %d got another partition", i)
		}
	}
	if len(b.Partitions()) != 1 {
		t.Fatalf("%d partitions loaded", len(b.Partitions()))
	}
}

// TestUnloadReloads: an unloaded partition signals Done, refuses appends,
// and the next open loads it again with its data and dedup state.
func TestUnloadReloads(t *testing.T) {
	ctx := context.Background()
	b := startDurable(t, t.TempDir(), Options{})
	n := mustTopic(t, "unload")
	if err := b.CreateTopic(ctx, n, 2, Policies{}); err != nil {
		t.Fatal(err)
	}
	p, err := b.OpenPartition(ctx, n.Partition(1), false)
	if err != nil {
		t.Fatal(err)
	}
	req := AppendRequest{Format: FormatPulsar, MsgCount: 1, Data: []byte("m"), Producer: "prod", SeqFirst: 7, SeqLast: 7}
	if _, err := p.Append(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := b.Unload(ctx, n); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("unloaded partition not done")
	}
	if _, err := p.Append(ctx, req); !errors.Is(err, ErrClosed) {
		t.Fatalf("append to unloaded partition: %v", err)
	}
	p2, err := b.OpenPartition(ctx, n.Partition(1), false)
	if err != nil || p2 == p {
		t.Fatalf("reload: %v", err)
	}
	if r, err := p2.Append(ctx, req); err != nil || !r.Duplicate || p2.NextIndex() != 1 {
		t.Fatalf("retry after reload: %+v %v", r, err)
	}
	if err := b.Unload(ctx, mustTopic(t, "missing")); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("unload missing: %v", err)
	}
}
